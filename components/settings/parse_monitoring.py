"""Section parser for the alert rules' thresholds (``components.monitoring.rules``).

Each threshold is an integer within the range where the alert still means what its runbook
says (a 5xx share of 0 % would fire on the first error; a backup age under a day would fire
between two daily runs). Across keys: the almost-full disk level lies below the filling-up
level, since the almost-full alert is the later, critical stage of the same trouble.

Prometheus's storage: the retained blocks' size cap leaves ``VOLUME_HEADROOM_PERCENT`` of the
volume free for the write-ahead log and compactions.
"""

from __future__ import annotations

from components.settings.model import AlertThresholds, PrometheusSettings
from components.settings.parse_cluster import resources
from components.settings.parsers import integer
from components.settings.reader import Reader

PERCENT = integer(1, 99)
"""A share that can be crossed both ways: 0 and 100 would make an alert never or always fire."""


def alert_thresholds(r: Reader) -> AlertThresholds:
    filling_up = r.get("alertDiskFillingUpFreePercent", integer(2, 50))
    almost_full = r.get("alertDiskAlmostFullFreePercent", integer(1, 49))
    r.check(
        "alertDiskAlmostFullFreePercent",
        lambda: almost_full < filling_up,
        f"less than alertDiskFillingUpFreePercent ({r.raw.get('alertDiskFillingUpFreePercent')})"
        ": almost full is the later stage of filling up",
        needs=("alertDiskFillingUpFreePercent",),
    )
    return AlertThresholds(
        disk_filling_up_free_percent=filling_up,
        disk_almost_full_free_percent=almost_full,
        node_memory_percent=r.get("alertNodeMemoryPercent", integer(50, 99)),
        node_cpu_percent=r.get("alertNodeCpuPercent", integer(50, 99)),
        postgres_connections_percent=r.get("alertPostgresConnectionsPercent", integer(50, 99)),
        postgres_cache_hit_percent=r.get("alertPostgresCacheHitPercent", integer(50, 99)),
        redis_memory_percent=r.get("alertRedisMemoryPercent", integer(50, 99)),
        django_5xx_percent=r.get("alertDjango5xxPercent", PERCENT),
        django_latency_p95_ms=r.get("alertDjangoLatencyP95Ms", integer(10, 60_000)),
        certificate_expiry_days=r.get("alertCertificateExpiryDays", integer(7, 60)),
        edge_blocked_per_minute=r.get("alertEdgeBlockedPerMinute", integer(1, 1_000_000)),
        edge_honeypot_per_minute=r.get("alertEdgeHoneypotPerMinute", integer(1, 1_000_000)),
        edge_spike_factor=r.get("alertEdgeSpikeFactor", integer(2, 100)),
        backup_max_age_hours=r.get("alertBackupMaxAgeHours", integer(25, 168)),
        restore_test_max_age_days=r.get("alertRestoreTestMaxAgeDays", integer(8, 60)),
    )


VOLUME_HEADROOM_PERCENT = 20
"""Share of Prometheus's volume kept free of retained blocks (WAL, head, compaction output)."""
MAX_VOLUME_GB = 16_384
"""The largest gp3 volume (16 TiB)."""


def prometheus(r: Reader) -> PrometheusSettings:
    storage = r.get("prometheusStorageGb", integer(10, MAX_VOLUME_GB))
    size = r.get("prometheusRetentionSizeGb", integer(1, MAX_VOLUME_GB))
    fits = (storage or 0) * (100 - VOLUME_HEADROOM_PERCENT) // 100
    r.check(
        "prometheusRetentionSizeGb",
        lambda: size <= fits,
        f"at most {fits} ({100 - VOLUME_HEADROOM_PERCENT}% of prometheusStorageGb, "
        f"{r.raw.get('prometheusStorageGb')}): the write-ahead log and compactions need the rest "
        "of the volume",
        needs=("prometheusStorageGb",),
    )
    return PrometheusSettings(
        retention_days=r.get("prometheusRetentionDays", integer(1, 3650)),
        retention_size_gb=size,
        storage_gb=storage,
        resources=resources(r, "prometheus"),
    )
