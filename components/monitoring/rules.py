"""The alert rules, as the files of Prometheus's rule ConfigMap, rendered from the stack's
settings.

The rules are Prometheus rule files kept in ``rules/``, one per area (general, node,
Kubernetes, Prometheus and Alertmanager, blackbox, PostgreSQL, Redis, Django, edge, backups).
Every file is a template: its ``{{name}}`` placeholders take the thresholds operators tune
(``AlertThresholds``), the backup CronJobs' namespace and names (from ``components.backups``,
so a renamed CronJob cannot leave its alert watching nothing) and ``{{runbook}}``, the page of
``docs/runbooks/alerts/`` the file's alerts link to. Rendering is strict
(``components.lib.template``): a placeholder without a value, or a value no placeholder uses,
is an error. Prometheus's own ``{{ $labels.x }}`` templates (with spaces) pass through.

Conventions every rule follows (the tests check them): a ``severity`` label, ``critical``
(pages: email and chat), ``warning`` (chat) or ``info`` (nowhere; for troubleshooting), except
``Watchdog``, whose ``none`` keeps it out of every severity route (Alertmanager sends it to the
dead man's switch by name); ``summary`` and ``description`` annotations; a ``runbook_url`` to
a heading of the area's runbook on GitHub (``https://github.com/<repository>/blob/main/``,
the repository from ``githubRepository``, the branch the deploy workflow runs from).
"""

from __future__ import annotations

import re
from pathlib import Path

from components.app.scope import NAMESPACE
from components.backups.backups import MEDIA, POSTGRES, REDIS, RESTORE_TEST
from components.lib.template import fill
from components.settings import AlertThresholds, StackSettings

RULES_DIR = Path(__file__).resolve().parent / "rules"
RULE_SUFFIX = ".yml"
RUNBOOKS_PATH = "docs/runbooks/alerts"
"""Where the runbooks are, relative to the repository's root: one page per rule file (same
stem, ``.md``), one heading per alert."""
BRANCH = "main"
"""The branch whose runbooks the links show: the one the deploy workflow runs from."""
BACKUP_CRONJOBS = (POSTGRES, REDIS, MEDIA)
"""The daily backups, one per data store; the restore test is ``RESTORE_TEST``."""


def runbook_base(repository: str) -> str:
    """The URL of ``docs/runbooks/alerts/`` on GitHub for ``githubRepository``; the immutable
    form ``owner@<id>/name@<id>`` is written without its ids, as GitHub's web URLs are."""
    plain = re.sub(r"@\d+", "", repository)
    return f"https://github.com/{plain}/blob/{BRANCH}/{RUNBOOKS_PATH}"


def template_values(thresholds: AlertThresholds) -> dict[str, dict[str, str]]:
    """Each rule file's placeholder values, ``{{runbook}}`` aside (file stem to values)."""
    t = thresholds
    disks = {
        "disk_filling_up_free_percent": str(t.disk_filling_up_free_percent),
        "disk_almost_full_free_percent": str(t.disk_almost_full_free_percent),
    }
    return {
        "general": {},
        "node": {
            **disks,
            "node_memory_percent": str(t.node_memory_percent),
            "node_cpu_percent": str(t.node_cpu_percent),
        },
        "kubernetes": disks,
        "prometheus-alertmanager": {},
        "blackbox": {"certificate_expiry_days": str(t.certificate_expiry_days)},
        "postgresql": {
            "postgres_connections_percent": str(t.postgres_connections_percent),
            "postgres_cache_hit_percent": str(t.postgres_cache_hit_percent),
        },
        "redis": {"redis_memory_percent": str(t.redis_memory_percent)},
        "django": {
            "django_error_percent": str(t.django_5xx_percent),
            "django_latency_ms": str(t.django_latency_p95_ms),
        },
        "edge": {
            "edge_blocked_per_minute": str(t.edge_blocked_per_minute),
            "edge_honeypot_per_minute": str(t.edge_honeypot_per_minute),
            "edge_spike_factor": str(t.edge_spike_factor),
        },
        "backups": {
            "namespace": NAMESPACE,
            "backup_cronjobs": "|".join(BACKUP_CRONJOBS),
            "postgres_cronjob": POSTGRES,
            "redis_cronjob": REDIS,
            "media_cronjob": MEDIA,
            "restore_test_cronjob": RESTORE_TEST,
            "backup_max_age_hours": str(t.backup_max_age_hours),
            "restore_test_max_age_days": str(t.restore_test_max_age_days),
        },
    }


def render(thresholds: AlertThresholds, repository: str) -> dict[str, str]:
    """The rule files (file name to content) for ``thresholds``, linking to the runbooks of
    ``repository`` (``owner/name``)."""
    values = template_values(thresholds)
    base = runbook_base(repository)
    files: dict[str, str] = {}
    for path in sorted(RULES_DIR.glob(f"*{RULE_SUFFIX}")):
        stem = path.name.removesuffix(RULE_SUFFIX)
        if stem not in values:
            raise ValueError(f"{path.name}: a rule file without template values in rules.py")
        own = {**values.pop(stem), "runbook": f"{base}/{stem}.md"}
        files[path.name] = fill(path.name, path.read_text(encoding="utf-8"), own)
    if values:
        raise ValueError(f"template values for rule files that do not exist: {sorted(values)}")
    return files


def render_rules(settings: StackSettings) -> dict[str, str]:
    """The stack's rule files (file name to content), as Prometheus loads them: its alert
    thresholds and its repository's runbooks. Pure: the preview, the tests and the ConfigMap
    all use what this returns."""
    return render(settings.alert_thresholds, settings.deploy.repository)
