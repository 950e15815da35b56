"""The Grafana dashboards (``components/monitoring/dashboards/*.json``), proven without Grafana.

There is no Grafana here and no official schema, so each dashboard is checked in three ways:

- its structure, against what Grafana's file provisioning needs: a unique ``uid`` and a title,
  ``schemaVersion``, panels with ids unique in the dashboard and a grid position, every query
  panel on the one Prometheus datasource (uid ``prometheus``, the uid Grafana's datasource is
  provisioned with) with a unit and thresholds, every target with an ``expr``;
- every query, panel targets and template variables alike, by a real Prometheus (Debian's, on
  loopback, one for the module) through ``/api/v1/format_query``, after Grafana's variables are
  substituted as Grafana would (``$__rate_interval`` and the other intervals by a duration, the
  dashboard's own variables by a value; a variable the dashboard does not define is a fault);
- every metric name the queries use is in ``components/monitoring/metrics.yaml``, the checked
  list of what the scraped exporters produce. Names are read from Prometheus's own formatting of
  the query (strings, matchers, ranges and grouping labels removed first).

The files checked are the repository's: the offline preview copies them unchanged into
``build/<stack>/monitoring/dashboards/``, so the copies hold nothing the sources do not.

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

from tools.preview import REPO_ROOT

DASHBOARDS = REPO_ROOT / "components" / "monitoring" / "dashboards"
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
KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan", "atan2",
}  # fmt: skip
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?!\w)(\s*\()?")
VARIABLE = re.compile(r"\$\{([A-Za-z_]\w*)(?::\w+)?\}|\$([A-Za-z_]\w*)|\[\[([A-Za-z_]\w*)\]\]")
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>[A-Za-z_]\w*)\)$")

Dashboard = dict[str, Any]


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a dashboard and where it is."""

    where: str
    """``<panel title> / <refId>`` or ``variable <name>``."""
    expr: str
    """As written in the dashboard (Grafana variables not yet substituted)."""


# ------------------------------------------------------------------------------ reading


def load(folder: Path = DASHBOARDS) -> dict[str, Dashboard]:
    """Every dashboard of ``folder`` by file name; a file that is not a JSON object fails."""
    found = {}
    for path in sorted(folder.glob("*.json")):
        document = json.loads(path.read_text())
        assert isinstance(document, dict), f"{path.name}: not a JSON object"
        found[path.name] = document
    return found


def panels(dashboard: Dashboard) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: Dashboard) -> list[Query]:
    """Every panel target's ``expr`` and the selector of every ``label_values`` variable."""
    found = [
        Query(f"{panel.get('title')} / {target.get('refId')}", str(target.get("expr", "")))
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            match = LABEL_VALUES.match(_variable_query(variable))
            if match and match["selector"]:
                found.append(Query(f"variable {variable['name']}", match["selector"]))
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
        values[variable["name"]] = (
            str(variable.get("query", "")) if variable.get("type") == "constant" else "value"
        )
    undefined = []

    def replace(match: re.Match[str]) -> str:
        name = match[1] or match[2] or match[3]
        if name not in values:
            undefined.append(name)
            return match[0]
        return values[name]

    return VARIABLE.sub(replace, expr), undefined


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects: identifiers that are not called (functions,
    aggregations), not keywords, once strings, label matchers, ranges and grouping label lists
    are gone. ``expr`` is best Prometheus's own formatting of the query."""
    text = STRING.sub('""', expr)
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)
    text = GROUPING.sub(" ", text)
    return {
        match[1]
        for match in IDENTIFIER.finditer(text)
        if not match[2] and match[1].lower() not in KEYWORDS
    }


# ------------------------------------------------------------------------------ Prometheus


class Prometheus:
    """Debian's ``prometheus`` on loopback with an empty configuration and a scratch TSDB."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus missing: scripts/install-monitoring-tools.sh installs it"
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

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path_factory.mktemp("prometheus"))
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
