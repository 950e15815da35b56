"""The Grafana dashboards (``components/monitoring/dashboards/*.json``), proven without Grafana.

There is no Grafana here and no official schema, so each dashboard is checked in four ways:

- its structure, against what Grafana's file provisioning needs: a unique ``uid`` and a title,
  ``schemaVersion``, panels with ids unique in the dashboard and a grid position, every query
  panel on the one Prometheus datasource (uid ``prometheus``, the uid Grafana's datasource is
  provisioned with) with a unit and thresholds, every target with an ``expr``;
- every query, panel targets and template variables alike, by a real Prometheus (Debian's, on
  loopback, one for the module) through ``/api/v1/format_query``, after Grafana's variables are
  substituted as Grafana would (``$__rate_interval`` and the other intervals by a duration, the
  dashboard's own variables by a value; a variable the dashboard does not define is a fault);
- every metric name the queries use is in ``components/monitoring/metrics.yaml``, the checked
  list of what the scraped exporters produce. Names are read (``tests.promql``, shared with
  the alert rules' tests) from Prometheus's own formatting of the query;
- every query, evaluated by that Prometheus over an hour of sample series labelled as each
  exporter and scrape job labels them (``sample_series``; loaded as TSDB blocks with promtool),
  returns data, and its series carry the labels its legend shows (``{{pod}}``) or its variable
  lists: a label or value no exporter produces, a legend of a label the query aggregates away,
  or a join Prometheus refuses (many-to-many), fails. The samples include the unhealthy cases
  the panels look for (a pod waiting, a Deployment short of replicas, a failed backup run).

The files checked are those the offline preview writes to ``build/<stack>/monitoring/
dashboards/``, read through the same registry (``components.monitoring.render.dashboards``):
the repository's files, unchanged and the same for every stack.

Each check is one function returning the problems it finds; the seeded-fault tests break a copy
of a real dashboard and assert the problem is reported, so none of the checks can pass on
nothing. A missing ``prometheus`` fails the module (``scripts/install-monitoring-tools.sh``
installs it; ``make test`` runs it first).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.monitoring.prometheus import render_prometheus
from components.monitoring.render import dashboards
from components.settings import StackSettings
from tests.promql import metric_names
from tools.preview import REPO_ROOT

METRICS = REPO_ROOT / "components" / "monitoring" / "metrics.yaml"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
"""Every query panel, target and query variable names this datasource (provisioned by uid)."""
TOPICS = {
    "exposcholar-overview", "exposcholar-edge", "exposcholar-postgresql", "exposcholar-redis",
    "exposcholar-nodes", "exposcholar-pods", "exposcholar-backups", "exposcholar-uptime",
}  # fmt: skip
"""The dashboards issue 15 asks for, by uid."""
SAMPLE_DURATION = "5m"
"""What Grafana's interval variables become in the checked queries."""
INTERVALS = ("__rate_interval", "__interval", "__range", "__auto")
QUERY_PANELS = {"stat", "timeseries", "table", "gauge", "bargauge", "piechart", "heatmap"}
UNITS = {
    "none", "short", "percent", "percentunit", "s", "ms", "dtdurations", "dateTimeAsIso",
    "bytes", "decbytes", "Bps", "binBps", "reqps", "ops", "rps", "wps", "iops", "d", "h", "m",
}  # fmt: skip
"""Grafana unit ids the dashboards may use (a typo would show raw numbers without a unit)."""
VARIABLE = re.compile(r"\$\{([A-Za-z_]\w*)(?::\w+)?\}|\$([A-Za-z_]\w*)|\[\[([A-Za-z_]\w*)\]\]")
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>[A-Za-z_]\w*)\)$")
LEGEND_LABEL = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")
Dashboard = dict[str, Any]


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a dashboard and where it is."""

    where: str
    """``<panel title> / <refId>`` or ``variable <name>``."""
    expr: str
    """As written in the dashboard (Grafana variables not yet substituted)."""
    labels: frozenset[str] = frozenset()
    """Labels each series it returns must carry: those its legend shows (``{{pod}}``), or the
    label a variable lists the values of."""


# ------------------------------------------------------------------------------ reading


def load() -> dict[str, Dashboard]:
    """Every dashboard the offline preview writes (``render.dashboards``, the registry of the
    monitoring files), by file name; a file that is not a JSON object fails."""
    found = {}
    for path, text in sorted(dashboards().items()):
        document = json.loads(text)
        assert isinstance(document, dict), f"{path}: not a JSON object"
        found[Path(path).name] = document
    return found


def panels(dashboard: Dashboard) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: Dashboard) -> list[Query]:
    """Every panel target's ``expr`` and the selector of every ``label_values`` variable."""
    found = [
        Query(
            f"{panel.get('title')} / {target.get('refId')}",
            str(target.get("expr", "")),
            frozenset(LEGEND_LABEL.findall(str(target.get("legendFormat", "")))),
        )
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            match = LABEL_VALUES.match(_variable_query(variable))
            if match and match["selector"]:
                where = f"variable {variable['name']}"
                found.append(Query(where, match["selector"], frozenset({match["label"]})))
    return found


def _variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query")
    return str(query.get("query", "") if isinstance(query, dict) else query or "")


def known_metrics(path: Path = METRICS) -> dict[str, str]:
    """The checked list, metric name -> exporter. Read as a ``metric: exporter`` mapping, at the
    top level or under ``metrics:``, or as ``exporter: [metric, ...]``."""
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), f"{path}: not a mapping"
    if isinstance(document.get("metrics"), dict | list):
        document = document["metrics"]
    mapping: dict[str, str] = {}
    items = document.items() if isinstance(document, dict) else enumerate(document)
    for key, value in items:
        if isinstance(value, str):
            mapping[str(key)] = value
        elif isinstance(value, list):
            mapping.update({str(metric): str(key) for metric in value})
        elif isinstance(value, dict) and "exporter" in value:
            mapping[str(value.get("name", key))] = str(value["exporter"])
        else:
            raise AssertionError(f"{path}: cannot read the entry {key!r}: {value!r}")
    return mapping


# ------------------------------------------------------------------------------ checks


def structure_problems(dashboard: Dashboard) -> list[str]:
    """What Grafana's provisioning and a reader need, missing or wrong in ``dashboard``."""
    problems = []
    uid = dashboard.get("uid")
    if not isinstance(uid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid):
        problems.append(f"uid {uid!r}: 1-40 letters, digits, - or _")
    if not dashboard.get("title"):
        problems.append("no title")
    if not isinstance(dashboard.get("schemaVersion"), int):
        problems.append("no schemaVersion")
    if dashboard.get("id") is not None:
        problems.append("a database id: Grafana assigns it, provisioning files must not")
    seen: set[int] = set()
    for panel in panels(dashboard):
        problems += panel_problems(panel, seen)
    problems += variable_problems(dashboard)
    return problems


def panel_problems(panel: dict[str, Any], seen: set[int]) -> list[str]:
    """One panel's problems; ``seen`` collects the dashboard's panel ids."""
    title = panel.get("title") or "(untitled)"
    problems = []
    panel_id = panel.get("id")
    if not isinstance(panel_id, int) or panel_id in seen:
        problems.append(f"{title}: id {panel_id!r} missing or not unique")
    else:
        seen.add(panel_id)
    if not {"h", "w", "x", "y"} <= set(panel.get("gridPos", {})):
        problems.append(f"{title}: no gridPos")
    if panel.get("type") == "row":
        return problems
    if panel.get("type") not in QUERY_PANELS:
        problems.append(f"{title}: panel type {panel.get('type')!r}")
    if not panel.get("title"):
        problems.append(f"panel {panel_id}: no title")
    if panel.get("datasource") != DATASOURCE:
        problems.append(f"{title}: datasource {panel.get('datasource')!r}, not {DATASOURCE}")
    return problems + field_problems(title, panel) + target_problems(title, panel)


def field_problems(title: str, panel: dict[str, Any]) -> list[str]:
    """A unit Grafana knows, and thresholds from a base step upwards."""
    problems = []
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    if defaults.get("unit") not in UNITS:
        problems.append(f"{title}: unit {defaults.get('unit')!r}")
    steps = defaults.get("thresholds", {}).get("steps", [])
    if not steps or steps[0].get("value") is not None:
        problems.append(f"{title}: thresholds must start with a base step (value null)")
    values = [step["value"] for step in steps[1:]]
    if values != sorted(values):
        problems.append(f"{title}: thresholds not ascending: {values}")
    return problems


def target_problems(title: str, panel: dict[str, Any]) -> list[str]:
    """At least one target; each with its own refId, an expr, and the one datasource."""
    problems = []
    targets = panel.get("targets", [])
    if not targets:
        problems.append(f"{title}: no targets")
    refs = [target.get("refId") for target in targets]
    if len(set(refs)) != len(refs) or None in refs:
        problems.append(f"{title}: refIds {refs} missing or repeated")
    for target in targets:
        if not isinstance(target.get("expr"), str) or not target["expr"].strip():
            problems.append(f"{title} / {target.get('refId')}: no expr")
        if target.get("datasource", DATASOURCE) != DATASOURCE:
            problems.append(f"{title} / {target.get('refId')}: datasource {target['datasource']}")
    return problems


def variable_problems(dashboard: Dashboard) -> list[str]:
    """Template variables: unique names; query variables on the datasource, as label_values."""
    problems = []
    variables = dashboard.get("templating", {}).get("list", [])
    names = [variable.get("name") for variable in variables]
    if len(set(names)) != len(names):
        problems.append(f"variables repeated: {names}")
    for variable in variables:
        if variable.get("type") != "query":
            continue
        if variable.get("datasource") != DATASOURCE:
            problems.append(f"variable {variable.get('name')}: datasource not {DATASOURCE}")
        if not LABEL_VALUES.match(_variable_query(variable)):
            problems.append(f"variable {variable.get('name')}: not label_values(selector, label)")
    return problems


def substitute(expr: str, dashboard: Dashboard) -> tuple[str, list[str]]:
    """``expr`` with Grafana's variables replaced as Grafana would, and the variables it uses
    that neither Grafana nor the dashboard defines."""
    values = {name: SAMPLE_DURATION for name in INTERVALS}
    for variable in dashboard.get("templating", {}).get("list", []):
        values[variable["name"]] = _current(variable)
    undefined = []

    def replace(match: re.Match[str]) -> str:
        name = match[1] or match[2] or match[3]
        if name not in values:
            undefined.append(name)
            return match[0]
        return values[name]

    return VARIABLE.sub(replace, expr), undefined


def _current(variable: dict[str, Any]) -> str:
    """What Grafana puts for ``variable`` when the dashboard opens: a constant's value, else
    the saved current value, "All" being the variable's ``allValue``."""
    if variable.get("type") == "constant":
        return str(variable.get("query", ""))
    value = variable.get("current", {}).get("value")
    if value in (None, "", "$__all", ["$__all"]):
        return str(variable.get("allValue") or ".*")
    return "|".join(map(str, value)) if isinstance(value, list) else str(value)


# ------------------------------------------------------------------------------ sample series

SAMPLE_START = 1_790_000_000
"""The first sample's time (seconds); samples follow every ``SAMPLE_STEP`` for an hour."""
SAMPLE_STEP = 30
SAMPLE_COUNT = 121
EVALUATION_TIME = SAMPLE_START + SAMPLE_STEP * (SAMPLE_COUNT - 1)
"""When the queries are evaluated: the last sample."""


@dataclass(frozen=True)
class Series:
    """One series as its exporter and the scrape job would label it."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float
    """A gauge's value, or a counter's increase per sample."""
    counter: bool = False


def _gauge(job: str, name: str, value: float, **labels: str) -> Series:
    """A gauge of ``job``'s targets."""
    return Series(name, tuple(sorted({**TARGET_LABELS[job], **labels}.items())), value)


def _counter(job: str, name: str, rate: float, **labels: str) -> Series:
    """A counter of ``job``'s targets growing by ``rate`` each sample."""
    return Series(name, tuple(sorted({**TARGET_LABELS[job], **labels}.items())), rate, True)


TARGET_LABELS = {
    "django": {"job": "django", "namespace": "exposcholar", "pod": "server-5c9d-x1",
               "instance": "10.0.1.5:8001"},
    "edge-nginx": {"job": "edge-nginx", "namespace": "exposcholar", "pod": "edge-7f4b-y2",
                   "instance": "10.0.1.6:9113"},
    "edge-logs": {"job": "edge-logs", "namespace": "exposcholar", "pod": "edge-7f4b-y2",
                  "instance": "10.0.1.6:3903"},
    "kube-state-metrics": {"job": "kube-state-metrics", "instance": "10.0.2.7:8080"},
    "cadvisor": {"job": "cadvisor", "instance": "ip-10-0-1-10.ec2.internal"},
    "node-exporter": {"job": "node-exporter", "namespace": "node-exporter",
                      "pod": "node-exporter-z3", "instance": "10.0.1.10:9100"},
    "postgres-exporter": {"job": "postgres-exporter", "namespace": "monitoring",
                          "instance": "10.0.2.8:9187"},
    "redis-exporter": {"job": "redis-exporter", "namespace": "monitoring",
                       "instance": "10.0.2.9:9121"},
    "blackbox-https": {"job": "blackbox-https", "instance": "https://exposcholar.example/"},
}  # fmt: skip
"""The labels each scrape job adds (components/monitoring/prometheus.py): namespace and pod of
the scraped pod; kube-state-metrics's own namespace and pod labels are those of the objects."""


def django_series() -> list[Series]:
    """django-prometheus's middleware and migration metrics, as exposed: the Python client
    appends ``_total`` to a counter's name (the gauge keeps its own)."""
    found = []
    for view, method in (("api:papers", "GET"), ("api:login", "POST")):
        found.append(
            _counter(
                "django",
                "django_http_requests_total_by_view_transport_method_total",
                20,
                view=view,
                transport="https",
                method=method,
            )
        )
        for status, rate in (("200", 18), ("404", 1), ("500", 1)):
            found.append(
                _counter(
                    "django",
                    "django_http_responses_total_by_status_view_method_total",
                    rate,
                    status=status,
                    view=view,
                    method=method,
                )
            )
        for le, rate in (("0.1", 10), ("0.5", 18), ("1.0", 19), ("+Inf", 20)):
            found.append(
                _counter(
                    "django",
                    "django_http_requests_latency_seconds_by_view_method_bucket",
                    rate,
                    view=view,
                    method=method,
                    le=le,
                )
            )
    found.append(
        _counter(
            "django",
            "django_http_exceptions_total_by_type_total",
            0.1,
            type="OperationalError",
        )
    )
    found.append(_gauge("django", "django_migrations_unapplied_total", 0, connection="default"))
    return found


def edge_series() -> list[Series]:
    """nginx-prometheus-exporter (stub_status) and the edge's log-to-metrics counters."""
    found = [_gauge("edge-nginx", "nginx_up", 1)]
    found += [
        _gauge("edge-nginx", f"nginx_connections_{state}", 5)
        for state in ("active", "reading", "writing", "waiting")
    ]
    found += [
        _counter("edge-nginx", f"nginx_connections_{what}", 10) for what in ("accepted", "handled")
    ]
    found.append(_counter("edge-nginx", "nginx_http_requests_total", 40))
    decisions = (
        ("pass", "200"),
        ("pass", "503"),  # the server's
        ("maintenance", "503"),
        ("good-bot", "200"),
        ("limited-bot", "429"),
        ("blocked-agent", "403"),
        ("blocked-ip", "403"),
        ("blocked-referrer", "403"),
        ("honeypot", "403"),
        ("allowlisted", "200"),
    )
    found += [
        _counter("edge-logs", "edge_requests_total", 3, decision=d, status=s) for d, s in decisions
    ]
    found.append(_counter("edge-logs", "edge_honeypot_hits_total", 1))
    return found


def postgres_series() -> list[Series]:
    """postgres_exporter's default collectors against one server with two databases."""
    found = [
        _gauge("postgres-exporter", "pg_up", 1),
        _gauge("postgres-exporter", "pg_settings_max_connections", 400),
    ]
    for datname in ("exposcholar", "postgres"):
        for column in (
            "xact_commit",
            "xact_rollback",
            "blks_hit",
            "blks_read",
            "tup_fetched",
            "tup_returned",
            "tup_inserted",
            "tup_updated",
            "tup_deleted",
            "deadlocks",
            "conflicts",
            "temp_bytes",
        ):
            found.append(
                _counter(
                    "postgres-exporter",
                    f"pg_stat_database_{column}",
                    5,
                    datid="16384",
                    datname=datname,
                )
            )
        found.append(
            _gauge(
                "postgres-exporter",
                "pg_stat_database_numbackends",
                12,
                datid="16384",
                datname=datname,
            )
        )
        found.append(_gauge("postgres-exporter", "pg_database_size_bytes", 2e9, datname=datname))
        for state in ("active", "idle", "idle in transaction"):
            found.append(
                _gauge(
                    "postgres-exporter", "pg_stat_activity_count", 3, datname=datname, state=state
                )
            )
            found.append(
                _gauge(
                    "postgres-exporter",
                    "pg_stat_activity_max_tx_duration",
                    2,
                    datname=datname,
                    state=state,
                )
            )
    return found


def redis_series() -> list[Series]:
    """redis_exporter against one ElastiCache node."""
    gauges: dict[str, float] = {
        "redis_up": 1,
        "redis_memory_used_bytes": 3e8,
        "redis_memory_max_bytes": 1e9,
        "redis_connected_clients": 40,
        "redis_blocked_clients": 0,
    }
    counters = (
        "redis_commands_processed_total",
        "redis_keyspace_hits_total",
        "redis_keyspace_misses_total",
        "redis_evicted_keys_total",
        "redis_expired_keys_total",
        "redis_rejected_connections_total",
        "redis_net_input_bytes_total",
        "redis_net_output_bytes_total",
    )
    found = [_gauge("redis-exporter", name, value) for name, value in gauges.items()]
    found += [_counter("redis-exporter", name, 7) for name in counters]
    found.append(_gauge("redis-exporter", "redis_db_keys", 5000, db="db0"))
    for cmd in ("get", "set"):
        found.append(_counter("redis-exporter", "redis_commands_total", 9, cmd=cmd))
        found.append(
            _counter(
                "redis-exporter",
                "redis_commands_duration_seconds_total",
                0.01,
                cmd=cmd,
            )
        )
    return found


def node_series() -> list[Series]:
    """node-exporter on one node, and kube-state-metrics's node objects."""
    node = "ip-10-0-1-10.ec2.internal"
    found = [_gauge("node-exporter", "node_uname_info", 1, nodename=node, sysname="Linux")]
    for cpu in ("0", "1"):
        for mode, rate in (("idle", 20), ("user", 8), ("system", 2)):
            found.append(
                _counter(
                    "node-exporter",
                    "node_cpu_seconds_total",
                    rate,
                    cpu=cpu,
                    mode=mode,
                )
            )
    found += [
        _gauge("node-exporter", "node_memory_MemAvailable_bytes", 4e9),
        _gauge("node-exporter", "node_memory_MemTotal_bytes", 8e9),
        _gauge("node-exporter", "node_load1", 1.2),
    ]
    for fstype, mountpoint in (("xfs", "/"), ("tmpfs", "/run")):
        labels = {"device": "/dev/nvme0n1p1", "fstype": fstype, "mountpoint": mountpoint}
        found.append(_gauge("node-exporter", "node_filesystem_avail_bytes", 3e10, **labels))
        found.append(_gauge("node-exporter", "node_filesystem_size_bytes", 8e10, **labels))
    for direction in ("receive", "transmit"):
        found.append(
            _counter(
                "node-exporter",
                f"node_network_{direction}_bytes_total",
                1e5,
                device="ens5",
            )
        )
    found.append(_counter("node-exporter", "node_disk_io_time_seconds_total", 3, device="nvme0n1"))
    ksm = "kube-state-metrics"
    for condition, true in (
        ("Ready", True),
        ("MemoryPressure", False),
        ("DiskPressure", False),
        ("PIDPressure", False),
    ):
        for status in ("true", "false", "unknown"):
            value = 1 if (status == "true") == true and status != "unknown" else 0
            found.append(
                _gauge(
                    ksm,
                    "kube_node_status_condition",
                    value,
                    node=node,
                    condition=condition,
                    status=status,
                )
            )
    for resource, unit, capacity in (
        ("cpu", "core", 2.0),
        ("memory", "byte", 7e9),
        ("pods", "integer", 29.0),
    ):
        found.append(
            _gauge(
                ksm,
                "kube_node_status_allocatable",
                capacity,
                node=node,
                resource=resource,
                unit=unit,
            )
        )
    return found


def pod_series() -> list[Series]:
    """kube-state-metrics's pods, Deployments and HPAs of the app's namespace (the server at
    its HPA's maximum, one edge pod waiting and not ready), and cAdvisor's containers."""
    ksm, node, namespace = "kube-state-metrics", "ip-10-0-1-10.ec2.internal", "exposcholar"
    found = []
    pods = (
        ("server-5c9d-x1", "server", "Running", True),
        ("edge-7f4b-y2", "edge", "Running", True),
        ("edge-7f4b-y3", "edge", "Pending", False),
    )
    for pod, container, phase, ready in pods:
        at = {"namespace": namespace, "pod": pod}
        found.append(_gauge(ksm, "kube_pod_info", 1, node=node, **at))
        for each in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
            found.append(_gauge(ksm, "kube_pod_status_phase", int(each == phase), phase=each, **at))
        found.append(
            _gauge(ksm, "kube_pod_container_status_ready", int(ready), container=container, **at)
        )
        found.append(
            _counter(
                ksm,
                "kube_pod_container_status_restarts_total",
                0.1,
                container=container,
                **at,
            )
        )
        if not ready:
            found.append(
                _gauge(
                    ksm,
                    "kube_pod_container_status_waiting_reason",
                    1,
                    container=container,
                    reason="ContainerCreating",
                    **at,
                )
            )
        for resource, unit, value in (("cpu", "core", 0.25), ("memory", "byte", 5e8)):
            for kind in ("requests", "limits"):
                found.append(
                    _gauge(
                        ksm,
                        f"kube_pod_container_resource_{kind}",
                        value,
                        container=container,
                        node=node,
                        resource=resource,
                        unit=unit,
                        **at,
                    )
                )
        found += [
            _counter(
                "cadvisor",
                "container_cpu_usage_seconds_total",
                3,
                container=container,
                cpu="total",
                **at,
            ),
            _gauge(
                "cadvisor", "container_memory_working_set_bytes", 2e8, container=container, **at
            ),
            _counter(
                "cadvisor",
                "container_cpu_cfs_periods_total",
                300,
                container=container,
                **at,
            ),
            _counter(
                "cadvisor",
                "container_cpu_cfs_throttled_periods_total",
                20,
                container=container,
                **at,
            ),
        ]
        for direction in ("receive", "transmit"):
            found.append(
                _counter(
                    "cadvisor",
                    f"container_network_{direction}_bytes_total",
                    1e4,
                    interface="eth0",
                    **at,
                )
            )
    for deployment, desired, available in (("server", 2, 2), ("edge", 3, 2)):
        at = {"namespace": namespace, "deployment": deployment}
        found.append(_gauge(ksm, "kube_deployment_spec_replicas", desired, **at))
        found.append(_gauge(ksm, "kube_deployment_status_replicas_available", available, **at))
        at = {"namespace": namespace, "horizontalpodautoscaler": deployment}
        found.append(
            _gauge(ksm, "kube_horizontalpodautoscaler_status_current_replicas", desired, **at)
        )
        found.append(_gauge(ksm, "kube_horizontalpodautoscaler_spec_max_replicas", 2, **at))
    return found


def backup_series() -> list[Series]:
    """kube-state-metrics's CronJobs and Jobs of the backups (backup-media has never succeeded:
    its only run failed, so it has no last successful time)."""
    ksm, namespace, end = "kube-state-metrics", "exposcholar", EVALUATION_TIME
    found = []
    for cronjob, age in (
        ("backup-postgres", 3600),
        ("backup-redis", 3000),
        ("backup-media", None),
        ("restore-test", 86400 * 3),
    ):
        at = {"namespace": namespace, "cronjob": cronjob}
        found += [
            _gauge(ksm, "kube_cronjob_status_last_schedule_time", end - 3600, **at),
            _gauge(ksm, "kube_cronjob_created", end - 86400 * 10, **at),
            _gauge(ksm, "kube_cronjob_next_schedule_time", end + 82800, **at),
            _gauge(ksm, "kube_cronjob_status_active", 0, **at),
            _gauge(ksm, "kube_cronjob_spec_suspend", 0, **at),
        ]
        if age is not None:
            found.append(_gauge(ksm, "kube_cronjob_status_last_successful_time", end - age, **at))
        job = {"namespace": namespace, "job_name": f"{cronjob}-29420000"}
        failed = age is None
        found += [
            _gauge(
                ksm,
                "kube_job_owner",
                1,
                owner_kind="CronJob",
                owner_name=cronjob,
                owner_is_controller="true",
                **job,
            ),
            _gauge(ksm, "kube_job_status_start_time", end - 3600, **job),
            _gauge(ksm, "kube_job_status_succeeded", int(not failed), **job),
            _gauge(
                ksm, "kube_job_status_failed", int(failed), reason="BackoffLimitExceeded", **job
            ),
        ]
        if not failed:
            found.append(_gauge(ksm, "kube_job_status_completion_time", end - 3000, **job))
    return found


def blackbox_series() -> list[Series]:
    """blackbox_exporter's probe of the public URL."""
    found = [
        _gauge("blackbox-https", name, value)
        for name, value in (
            ("probe_success", 1),
            ("probe_duration_seconds", 0.3),
            ("probe_http_status_code", 200),
            ("probe_ssl_earliest_cert_expiry", EVALUATION_TIME + 40 * 86400),
        )
    ]
    for phase in ("resolve", "connect", "tls", "processing", "transfer"):
        found.append(_gauge("blackbox-https", "probe_http_duration_seconds", 0.05, phase=phase))
    return found


def sample_series() -> list[Series]:
    """Every exporter's series, as the dashboards expect to find them."""
    return [
        *django_series(), *edge_series(), *postgres_series(), *redis_series(),
        *node_series(), *pod_series(), *backup_series(), *blackbox_series(),
    ]  # fmt: skip


def openmetrics(series: list[Series]) -> str:
    """``series`` sampled every ``SAMPLE_STEP`` from ``SAMPLE_START``, as OpenMetrics text for
    ``promtool tsdb create-blocks-from openmetrics`` (each metric's samples together)."""
    lines = []
    for name in sorted({each.name for each in series}):
        for each in (one for one in series if one.name == name):
            labels = ",".join(f'{key}="{value}"' for key, value in each.labels)
            for step in range(SAMPLE_COUNT):
                value = each.value * step if each.counter else each.value
                lines.append(f"{name}{{{labels}}} {value} {SAMPLE_START + step * SAMPLE_STEP}")
    return "\n".join([*lines, "# EOF", ""])


# ------------------------------------------------------------------------------ Prometheus


class Prometheus:
    """Debian's ``prometheus`` on loopback, scraping nothing, its TSDB holding ``series`` (written
    as blocks by ``promtool tsdb create-blocks-from openmetrics`` before it starts)."""

    def __init__(self, folder: Path, series: list[Series]) -> None:
        binary, promtool = shutil.which("prometheus"), shutil.which("promtool")
        assert binary and promtool, "prometheus missing: scripts/install-monitoring-tools.sh"
        samples = folder / "samples.om"
        samples.write_text(openmetrics(series))
        subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(samples),
             str(folder / "data")],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        config = folder / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1m\n")
        self.url = f"http://127.0.0.1:{port}"
        self.log = folder / "prometheus.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"prometheus exited: {self.log.read_text()}"
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"prometheus not ready in 30 s: {self.log.read_text()}")

    def format_query(self, expr: str) -> tuple[bool, str]:
        """(True, Prometheus's formatting of ``expr``) or (False, its parse error)."""
        body = urllib.parse.urlencode({"query": expr}).encode()
        request = urllib.request.Request(f"{self.url}/api/v1/format_query", data=body)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                reply = json.load(answer)
        except urllib.error.HTTPError as error:
            reply = json.load(error)
        if reply.get("status") == "success":
            return True, str(reply["data"])
        return False, str(reply.get("error"))

    def query(self, expr: str) -> tuple[str | None, list[dict[str, str]]]:
        """(``expr``'s evaluation error or None, the labels of each series it returns) at
        ``EVALUATION_TIME``; a scalar is one series without labels."""
        body = urllib.parse.urlencode({"query": expr, "time": EVALUATION_TIME}).encode()
        request = urllib.request.Request(f"{self.url}/api/v1/query", data=body)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                reply = json.load(answer)
        except urllib.error.HTTPError as error:
            reply = json.load(error)
        if reply.get("status") != "success":
            return str(reply.get("error")), []
        if reply["data"]["resultType"] == "scalar":
            return None, [{}]
        return None, [series["metric"] for series in reply["data"]["result"]]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), sample_series())
    yield server
    server.stop()


def query_problems(
    dashboard: Dashboard, prometheus: Prometheus, known: dict[str, str]
) -> tuple[list[str], int]:
    """Every query of ``dashboard`` parsed by Prometheus and its metrics looked up in ``known``:
    the problems found and the number of queries checked."""
    problems = []
    checked = queries(dashboard)
    for query in checked:
        expr, undefined = substitute(query.expr, dashboard)
        if undefined:
            problems.append(f"{query.where}: undefined variables {undefined}")
            continue
        accepted, answer = prometheus.format_query(expr)
        if not accepted:
            problems.append(f"{query.where}: {answer}\n    {expr}")
            continue
        unknown = sorted(metric_names(answer) - known.keys())
        if unknown:
            problems.append(f"{query.where}: metrics not in metrics.yaml: {unknown}")
            continue
        error, results = prometheus.query(expr)
        if error or not results:
            problems.append(f"{query.where}: {error or 'no data from the sample series'}\n"
                            f"    {expr}")  # fmt: skip
            continue
        missing = sorted({label for one in results for label in query.labels - one.keys()})
        if missing:
            problems.append(f"{query.where}: results lack the labels {missing} it shows")
    return problems, len(checked)


# ------------------------------------------------------------------------------ the dashboards

ALL = load()


def test_the_dashboards_issue_15_asks_for_are_there() -> None:
    assert {dashboard.get("uid") for dashboard in ALL.values()} >= TOPICS


def test_uids_and_titles_are_unique() -> None:
    uids = [dashboard.get("uid") for dashboard in ALL.values()]
    titles = [dashboard.get("title") for dashboard in ALL.values()]
    assert len(set(uids)) == len(uids), uids
    assert len(set(titles)) == len(titles), titles


@pytest.mark.parametrize("name", sorted(ALL))
def test_structure(name: str) -> None:
    assert structure_problems(ALL[name]) == []


def test_every_query_parses_and_uses_listed_metrics(prometheus: Prometheus) -> None:
    known = known_metrics()
    problems, checked = [], 0
    for name, dashboard in ALL.items():
        found, count = query_problems(dashboard, prometheus, known)
        problems += [f"{name}: {problem}" for problem in found]
        checked += count
    assert not problems, "\n".join(problems)
    panel_count = sum(1 for d in ALL.values() for p in panels(d) if p.get("type") != "row")
    print(f"{len(ALL)} dashboards, {panel_count} panels, {checked} queries parsed by Prometheus")
    assert checked >= len(ALL) * 5


def test_every_listed_metric_names_its_exporter() -> None:
    for metric, exporter in known_metrics().items():
        assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", metric), metric
        assert exporter.strip(), metric


def test_a_backup_that_never_succeeded_shows_as_overdue(prometheus: Prometheus) -> None:
    """kube-state-metrics has no last successful time for a CronJob that never succeeded: the
    freshness panels then count from its creation, so it shows red instead of vanishing."""
    panel = next(p for p in panels(ALL["backups.json"]) if p["title"].startswith("Since last"))
    expr, _ = substitute(panel["targets"][0]["expr"], ALL["backups.json"])
    error, overdue = prometheus.query(f"({expr}) > 93600")
    assert error is None and overdue == [{"cronjob": "backup-media"}]


# ------------------------------------------------------------------------------ seeded faults


def _copy(name: str = "overview.json") -> Dashboard:
    return copy.deepcopy(ALL[name])


def _first_query_panel(dashboard: Dashboard) -> dict[str, Any]:
    return next(panel for panel in panels(dashboard) if panel.get("targets"))


@pytest.mark.parametrize(
    ("typo", "error"),
    [
        ("sum(rate(django_http_requests_total_by_view_transport_method[5m])", "unclosed"),
        ("sum by (view (rate(django_http_requests_total_by_view_transport_method[5m]))", "parse"),
        ("rate(django_http_requests_total_by_view_transport_method[5])", "unit"),
        ("histogram_quantil(0.9, django_http_requests_latency_seconds_by_view_method_bucket)",
         "unknown function"),
    ],
)  # fmt: skip
def test_a_typo_in_a_query_fails(prometheus: Prometheus, typo: str, error: str) -> None:
    dashboard = _copy()
    _first_query_panel(dashboard)["targets"][0]["expr"] = typo
    problems, _ = query_problems(dashboard, prometheus, known_metrics())
    assert len(problems) == 1 and error in problems[0], problems


def test_an_unsubstituted_interval_would_not_parse(prometheus: Prometheus) -> None:
    """Why the variables are substituted first: Prometheus refuses Grafana's ``$__rate_interval``
    in a range, and accepts the query once it is replaced."""
    expr = "rate(nginx_http_requests_total[$__rate_interval])"
    assert not prometheus.format_query(expr)[0]
    assert prometheus.format_query(substitute(expr, _copy())[0])[0]


def test_an_unknown_metric_fails(prometheus: Prometheus) -> None:
    dashboard = _copy("edge.json")
    target = _first_query_panel(dashboard)["targets"][0]
    target["expr"] = "sum(rate(nginx_http_request_total[$__rate_interval])) / sum(nginx_up)"
    problems, _ = query_problems(dashboard, prometheus, known_metrics())
    assert problems and "['nginx_http_request_total']" in problems[0], problems


def test_a_label_value_no_exporter_produces_fails(prometheus: Prometheus) -> None:
    """A query that parses but selects nothing (here a status the edge never logs) is
    reported: each query must return data from the exporters' sample series."""
    dashboard = _copy("edge.json")
    panel = next(p for p in panels(dashboard) if p.get("title") == "Rate limited")
    panel["targets"][0]["expr"] = panel["targets"][0]["expr"].replace('"429"', '"492"')
    problems, _ = query_problems(dashboard, prometheus, known_metrics())
    assert len(problems) == 1 and "Rate limited / A: no data" in problems[0], problems


def test_a_join_that_fails_at_evaluation_fails(prometheus: Prometheus) -> None:
    """Matching the backup Jobs to their CronJobs on the namespace alone is many-to-many: it
    parses, and Prometheus refuses it when evaluated."""
    dashboard = _copy("backups.json")
    panel = next(p for p in panels(dashboard) if p.get("title") == "Failed runs")
    panel["targets"][0]["expr"] = panel["targets"][0]["expr"].replace(
        "on (namespace, job_name)", "on (namespace)"
    )
    problems, _ = query_problems(dashboard, prometheus, known_metrics())
    assert len(problems) == 1 and "many-to-many" in problems[0], problems


def test_a_legend_showing_a_label_the_query_drops_fails(prometheus: Prometheus) -> None:
    """``sum by (pod)`` keeps no ``instance``: a legend of ``{{instance}}`` would be empty."""
    dashboard = _copy("edge.json")
    panel = next(p for p in panels(dashboard) if p.get("title") == "Requests per pod")
    panel["targets"][0]["legendFormat"] = "{{instance}}"
    problems, _ = query_problems(dashboard, prometheus, known_metrics())
    assert problems == ["Requests per pod / A: results lack the labels ['instance'] it shows"]


def test_a_variable_over_a_label_the_metric_lacks_fails(prometheus: Prometheus) -> None:
    dashboard = _copy("pods.json")
    variable = dashboard["templating"]["list"][0]
    variable["query"]["query"] = "label_values(kube_pod_info, namespaces)"
    problems, _ = query_problems(dashboard, prometheus, known_metrics())
    assert problems == ["variable namespace: results lack the labels ['namespaces'] it shows"]


def test_the_sample_series_come_from_scrape_jobs(stack_settings: dict[str, StackSettings]) -> None:
    """The samples' ``job`` labels are jobs of each stack's ``prometheus.yml``, so the dashboards'
    ``job`` selectors are checked against the jobs that exist."""
    for stack, settings in stack_settings.items():
        config = yaml.safe_load(render_prometheus(settings, []))
        jobs = {job["job_name"] for job in config["scrape_configs"]}
        assert {labels["job"] for labels in TARGET_LABELS.values()} <= jobs, stack


def test_the_sample_series_are_of_listed_metrics() -> None:
    """The modelled exporters produce only metrics of the checked list."""
    assert {series.name for series in sample_series()} <= known_metrics().keys()


def test_a_metric_missing_from_the_list_fails(prometheus: Prometheus) -> None:
    known = known_metrics()
    del known["redis_evicted_keys_total"]
    problems, _ = query_problems(_copy("redis.json"), prometheus, known)
    assert problems and all("redis_evicted_keys_total" in problem for problem in problems)


def test_an_undefined_variable_fails(prometheus: Prometheus) -> None:
    dashboard = _copy("pods.json")
    target = _first_query_panel(dashboard)["targets"][0]
    target["expr"] = target["expr"].replace("$namespace", "$namspace")
    problems, _ = query_problems(dashboard, prometheus, known_metrics())
    assert problems == [f"{_first_query_panel(dashboard)['title']} / A: undefined variables "
                        "['namspace']"]  # fmt: skip


def test_a_variable_query_is_checked(prometheus: Prometheus) -> None:
    dashboard = _copy("postgresql.json")
    variable = dashboard["templating"]["list"][0]
    variable["query"]["query"] = "label_values(pg_upp, instance)"
    problems, _ = query_problems(dashboard, prometheus, known_metrics())
    assert problems == [f"variable {variable['name']}: metrics not in metrics.yaml: ['pg_upp']"]


@pytest.mark.parametrize(
    ("break_it", "problem"),
    [
        (lambda d, p: p.update(id=d["panels"][0]["id"]), "not unique"),
        (lambda d, p: p.update(datasource={"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}),
         "datasource"),
        (lambda d, p: p["targets"][0].update(datasource={"uid": "other"}), "datasource"),
        (lambda d, p: p["targets"][0].pop("expr"), "no expr"),
        (lambda d, p: p.update(targets=[]), "no targets"),
        (lambda d, p: p["fieldConfig"]["defaults"].pop("unit"), "unit None"),
        (lambda d, p: p["fieldConfig"]["defaults"].update(unit="seconds"), "unit 'seconds'"),
        (lambda d, p: p["fieldConfig"]["defaults"]["thresholds"]["steps"].reverse(), "thresholds"),
        (lambda d, p: p.pop("gridPos"), "gridPos"),
        (lambda d, p: d.pop("uid"), "uid None"),
        (lambda d, p: d.update(uid="a uid with spaces"), "uid"),
        (lambda d, p: d.pop("schemaVersion"), "schemaVersion"),
        (lambda d, p: d.update(id=7), "database id"),
        (lambda d, p: d["templating"]["list"].append(dict(d["templating"]["list"][0])),
         "variables repeated"),
    ],
)  # fmt: skip
def test_a_broken_structure_fails(break_it: Any, problem: str) -> None:
    dashboard = _copy("postgresql.json")
    assert structure_problems(dashboard) == []
    panel = next(p for p in panels(dashboard) if p["type"] == "stat" and p.get("targets"))
    break_it(dashboard, panel)
    problems = structure_problems(dashboard)
    assert any(problem in found for found in problems), problems


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (view) (rate(a_total{status=~"5..", view!="x y"}[5m]))', {"a_total"}),
        ("histogram_quantile(0.95, sum by (le) (rate(b_bucket[5m]))) > bool 0.5", {"b_bucket"}),
        ("a * on (namespace, job_name) group_left (owner_name) b", {"a", "b"}),
        ('label_replace(up, "x", "$1", "job", "(.*)") unless c offset 1h', {"up", "c"}),
        ("time() - max(d) + 1e3 + 0x1f - vector(1)", {"d"}),
        ("count without (cpu, mode) (node_cpu_seconds_total) and e or f",
         {"node_cpu_seconds_total", "e", "f"}),
        ("sum(rate(g[5m:1m])) / ignoring (x) h", {"g", "h"}),
        ("job:request:rate5m", {"job:request:rate5m"}),
    ],
)  # fmt: skip
def test_metric_names_are_read_from_a_query(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
