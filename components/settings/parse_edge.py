"""Section parser for the edge (the nginx front door) and the namespace quota it shares with
the server.

Besides each key's own rule it checks what spans keys: replica bounds in order, production's
floor of two edge replicas, stack-wide rates that leave every pod at least one request a
minute, block and allow lists that are CIDRs, a maintenance allowlist that does not open the
site to everyone, and a namespace quota with room for the server, the edge and the backup
CronJobs' pods at their peak.
"""

from __future__ import annotations

from functools import partial

from components.settings.model import (
    DATABASE_EXPORTERS,
    EDGE_SIDECARS,
    BackupSettings,
    EdgeSettings,
    MaintenanceSettings,
    QuotaSettings,
    RateLimit,
    Resources,
    WorkloadSettings,
)
from components.settings.parse_cluster import covers, replicas, resources
from components.settings.parsers import boolean, cidr_allowlist, integer
from components.settings.reader import Reader


def edge(r: Reader) -> EdgeSettings:
    low, high = replicas(r, "edge")
    api = RateLimit(
        per_minute=_times(r.get("edgeApiRatePerSecond", integer(1, 100_000)), 60),
        burst=r.get("edgeApiBurst", integer(1, 100_000)),
    )
    auth = RateLimit(
        r.get("edgeAuthRatePerMinute", integer(1, 100_000)),
        r.get("edgeAuthBurst", integer(1, 10_000)),
    )
    bots = RateLimit(r.get("edgeBotRatePerMinute", integer(1, 100_000)), 1)
    for key, limit in (("edgeAuthRatePerMinute", auth), ("edgeBotRatePerMinute", bots)):
        r.check(
            key,
            partial(_at_least, limit.per_minute, low),
            f"at least edgeMinReplicas ({low}): the rate is shared among the edge pods, and "
            "each needs at least one request a minute",
            needs=("edgeMinReplicas",),
        )
    lists = cidr_allowlist(allow_empty=True)
    settings = EdgeSettings(
        min_replicas=low,
        max_replicas=high,
        resources=resources(r, "edge"),
        api=api,
        auth=auth,
        bots=bots,
        connections_per_client=r.get("edgeConnectionsPerClient", integer(1, 10_000)),
        max_body_mb=r.get("edgeMaxBodyMb", integer(1, 1024)),
        allowed_cidrs=r.get("edgeAllowedCidrs", lists),
        blocked_cidrs=r.get("edgeBlockedCidrs", lists),
        maintenance=MaintenanceSettings(
            enabled=r.get("maintenanceEnabled", boolean),
            allowlist=r.get("maintenanceAllowlist", lists),
        ),
    )
    r.check(
        "edgeConnectionsPerClient",
        lambda: settings.connections_per_client >= low,
        f"at least edgeMinReplicas ({low}): the limit is shared among the edge pods",
        needs=("edgeMinReplicas",),
    )
    return settings


def _at_least(value: int, floor: int) -> bool:
    return value >= floor


def _times(value: int | None, factor: int) -> int:
    return value * factor if value is not None else 0


def namespace_quota(
    r: Reader, workloads: WorkloadSettings, edge: EdgeSettings, backups: BackupSettings
) -> None:
    """The application namespace's quota holds the server (every replica, the surge and the
    migration Job), the edge (every replica and the surge, each with its metrics sidecars,
    ``EDGE_SIDECARS``), the backup CronJobs' pods (each
    CronJob runs one at a time, and the four may overlap) and the database exporters
    (``DATABASE_EXPORTERS``) at their peak."""
    sizing = (
        "serverMaxReplicas", "serverCpuLimit", "serverMemoryLimit",
        "edgeMaxReplicas", "edgeCpuLimit", "edgeMemoryLimit",
        "backupCpuLimit", "backupMemoryLimit", "restoreTestCpu", "restoreTestMemory",
    )  # fmt: skip
    if not r.ok(*sizing):
        return
    quota: QuotaSettings = workloads.quota
    server_pods, edge_pods = workloads.peak_pods(), edge.peak_pods()
    backup_pods = backups.peak_pods()
    exporters = DATABASE_EXPORTERS
    demand = (
        f"{server_pods} server pods (serverMaxReplicas {workloads.max_replicas} + "
        f"rolling-update surge + the migration Job), {edge_pods} edge pods "
        f"(edgeMaxReplicas {edge.max_replicas} + surge; each with metrics sidecars of "
        f"{EDGE_SIDECARS.cpu.text} CPU, {EDGE_SIDECARS.memory.text}), {backup_pods} backup "
        f"pods (three daily backups and the restore test) and {exporters.pods} database "
        f"exporter pods (limits {exporters.cpu.text} CPU, {exporters.memory.text} in all)"
    )
    pods = server_pods + edge_pods + backup_pods + exporters.pods
    r.check("namespaceQuotaPods", lambda: quota.pods >= pods, f"at least {pods}: {demand}")
    restore = backups.restore_test
    for key, used, kind, restore_size in (
        ("namespaceQuotaCpu", quota.cpu, "cpu_limit", restore.cpu),
        ("namespaceQuotaMemory", quota.memory, "memory_limit", restore.memory),
    ):
        server: Resources = workloads.server
        limits = (
            getattr(server, kind), getattr(edge.resources, kind),
            getattr(backups.resources, kind), restore_size,
            getattr(exporters, kind.removesuffix("_limit")),
            getattr(EDGE_SIDECARS, kind.removesuffix("_limit")),
        )  # fmt: skip
        r.check(
            key,
            partial(
                covers, used, limits, (server_pods, edge_pods, backup_pods - 1, 1, 1, edge_pods)
            ),
            f"room for the workloads' limits at peak: {demand}, at "
            f"{', '.join(limit.text for limit in limits)} each",
        )
