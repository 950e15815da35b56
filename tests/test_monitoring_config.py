"""The monitoring configuration as the offline preview renders it for each stack
(``build/<stack>/monitoring/``), proven by the real tools of each file:

* ``prometheus.yml`` with ``promtool check config`` (rule files beside it). Debian's Prometheus
  2.42 is built without Kubernetes service discovery (``field kubernetes_sd_configs not
  found``), so promtool checks a copy in which each ``kubernetes_sd_configs`` is swapped for an
  empty ``static_configs`` (everything else as rendered: auth, TLS, relabeling, rule files),
  and the Kubernetes discovery blocks themselves are checked here against the documented fields,
  roles and each role's ``__meta_kubernetes_*`` labels (a misspelt meta label keeps nothing and
  scrapes nothing, silently);
* ``alertmanager.yml`` with ``amtool check-config`` and ``amtool config routes test
  --verify.receivers`` per severity, and the inhibition with a real Alertmanager on loopback
  (alerts posted through the v2 API, the warning's suppression read back);
* ``blackbox.yml`` with ``prometheus-blackbox-exporter --config.check``, which must also refuse
  a seeded misspelt field.

A missing tool fails the test with the script that installs it (scripts/install-monitoring-
tools.sh, a prerequisite of ``make unit``); nothing here skips.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pulumi_kubernetes as k8s
import pytest
import yaml

from components.monitoring import prometheus as prom
from components.monitoring.alertmanager import (
    CHAT,
    DEADMANS_SWITCH,
    EMAIL,
    NULL,
    alertmanager_secret_text,
)
from components.monitoring.render import render_all
from components.settings import StackSettings, parse_settings
from tests import STACKS
from tools.mocks import MASK
from tools.preview import PreviewContext, run_pipeline, stage_config, stage_monitoring
from tools.program import capture
from tools.project import StackConfig

INSTALL = "bash scripts/install-monitoring-tools.sh (a prerequisite of make unit)"


def tool(name: str) -> str:
    """The tool's path; a missing tool fails (never skips) the test."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; run {INSTALL}")
    return path


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )  # fmt: skip


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each stack's ``monitoring/`` folder, written by the preview's own stages (config, then
    monitoring: the program's run adds nothing these files depend on)."""
    out = tmp_path_factory.mktemp("preview")
    folders = {}
    for stack in STACKS:
        ctx = PreviewContext(stack=stack, out_root=out, quiet=True)
        code = run_pipeline(ctx, [("config", stage_config), ("monitoring", stage_monitoring)])
        assert code == 0, f"the preview's monitoring stage failed for {stack}"
        folders[stack] = out / stack / "monitoring"
    return folders


@pytest.fixture(params=STACKS)
def folder(request: pytest.FixtureRequest, rendered: dict[str, Path]) -> Path:
    return rendered[request.param]


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


# --- prometheus.yml ----------------------------------------------------------------------------

ROLE_META = {
    "node": ("__meta_kubernetes_node_",),
    "pod": ("__meta_kubernetes_namespace", "__meta_kubernetes_pod_"),
    "endpoints": (
        "__meta_kubernetes_namespace",
        "__meta_kubernetes_endpoints_",
        "__meta_kubernetes_endpoint_",
        "__meta_kubernetes_service_",
        "__meta_kubernetes_pod_",
    ),
}
"""Each discovery role's meta label prefixes (Prometheus's kubernetes_sd_config docs)."""
META_NAMES = {
    "__meta_kubernetes_node_name",
    "__meta_kubernetes_namespace",
    "__meta_kubernetes_pod_name",
    "__meta_kubernetes_pod_node_name",
    "__meta_kubernetes_pod_phase",
    "__meta_kubernetes_pod_container_name",
    "__meta_kubernetes_pod_container_port_name",
    "__meta_kubernetes_service_name",
    "__meta_kubernetes_endpoint_port_name",
    "__meta_kubernetes_endpoint_node_name",
}
"""The fixed-name meta labels the configuration may use (the ``_label_<name>`` families aside)."""
SD_FIELDS = {"role", "namespaces", "selectors", "api_server", "kubeconfig_file", "attach_metadata"}


def _sd_blocks(config: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], list[Any]]]:
    """(job or 'alerting', one kubernetes_sd_configs entry, that block's relabel_configs)."""
    for job in config["scrape_configs"]:
        for sd in job.get("kubernetes_sd_configs", []):
            yield job["job_name"], sd, job.get("relabel_configs", [])
    for am in config["alerting"]["alertmanagers"]:
        for sd in am.get("kubernetes_sd_configs", []):
            yield "alerting", sd, am.get("relabel_configs", [])


def _without_kubernetes_sd(node: Any) -> Any:
    """The document with each ``kubernetes_sd_configs`` replaced by an empty static config."""
    if isinstance(node, dict):
        return {
            ("static_configs" if k == "kubernetes_sd_configs" else k): (
                [{"targets": []}] if k == "kubernetes_sd_configs" else _without_kubernetes_sd(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_without_kubernetes_sd(item) for item in node]
    return node


def _checkable(config: dict[str, Any], account: Path) -> str:
    """The configuration as promtool here can check it: no Kubernetes discovery, and the
    service account's token and CA (which promtool requires to exist) in ``account``."""
    account.mkdir()
    (account / "token").write_text("token\n")
    (account / "ca.crt").write_text("")
    text = yaml.safe_dump(_without_kubernetes_sd(config), sort_keys=False)
    assert prom.SERVICE_ACCOUNT_DIR in text
    return text.replace(prom.SERVICE_ACCOUNT_DIR, str(account))


def test_promtool_accepts_prometheus_yml(folder: Path, tmp_path: Path) -> None:
    promtool = tool("promtool")
    config = _load(folder / "prometheus.yml")
    as_rendered = run(promtool, "check", "config", str(folder / "prometheus.yml"))
    if as_rendered.returncode != 0:  # a promtool without Kubernetes discovery (Debian's)
        errors = re.findall(r"line \d+: (.*)", as_rendered.stdout + as_rendered.stderr)
        assert errors, as_rendered.stdout + as_rendered.stderr
        assert {e for e in errors} <= {
            "field kubernetes_sd_configs not found in type config.ScrapeConfig",
            "field kubernetes_sd_configs not found in type config.AlertmanagerConfig",
        }, errors
    shutil.copytree(folder, tmp_path / "m")
    checked = tmp_path / "m" / "prometheus.yml"
    checked.write_text(_checkable(config, tmp_path / "serviceaccount"))
    result = run(promtool, "check", "config", str(checked))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    # every rule file is named literally (promtool checked each) and all of them are named
    assert config["rule_files"] == sorted(
        f"rules/{path.name}" for path in (folder / "rules").glob("*.yml")
    )
    assert len(config["rule_files"]) >= 5
    assert re.search(r"SUCCESS: \d+ rules found", result.stdout), result.stdout


def test_promtool_refuses_a_seeded_error(folder: Path, tmp_path: Path) -> None:
    """The check above can fail: a bad relabel action is refused."""
    promtool = tool("promtool")
    shutil.copytree(folder, tmp_path / "m")
    config = _load(folder / "prometheus.yml")
    config["scrape_configs"][1]["relabel_configs"][0]["action"] = "kept"
    broken = tmp_path / "m" / "prometheus.yml"
    broken.write_text(_checkable(config, tmp_path / "serviceaccount"))
    result = run(promtool, "check", "config", str(broken))
    assert result.returncode != 0 and "kept" in result.stdout + result.stderr


def test_promtool_refuses_a_missing_rule_file(folder: Path, tmp_path: Path) -> None:
    """The rule files are checked with the configuration: one gone fails it."""
    shutil.copytree(folder, tmp_path / "m")
    config = _load(folder / "prometheus.yml")
    (tmp_path / "m" / config["rule_files"][0]).unlink()
    checked = tmp_path / "m" / "prometheus.yml"
    checked.write_text(_checkable(config, tmp_path / "serviceaccount"))
    result = run(tool("promtool"), "check", "config", str(checked))
    assert result.returncode != 0
    assert "does not point to an existing file" in result.stdout + result.stderr


def test_kubernetes_discovery_uses_only_documented_fields_and_labels(folder: Path) -> None:
    config = _load(folder / "prometheus.yml")
    blocks = list(_sd_blocks(config))
    assert len(blocks) >= 10
    for job, sd, relabels in blocks:
        assert set(sd) <= SD_FIELDS, (job, sd)
        role = sd["role"]
        assert role in ROLE_META, (job, role)
        for step in relabels:
            for label in step.get("source_labels", []):
                if not label.startswith("__meta_kubernetes_"):
                    continue
                assert label.startswith(ROLE_META[role]), f"{job}: {label} is not a {role} label"
                family = re.match(r"__meta_kubernetes_(pod|node|service)_label_", label)
                assert family or label in META_NAMES, f"{job}: unknown meta label {label}"


def test_every_job_of_the_contract_is_scraped(folder: Path) -> None:
    jobs = {job["job_name"]: job for job in _load(folder / "prometheus.yml")["scrape_configs"]}
    assert set(jobs) == {
        "prometheus", "alertmanager", "apiserver", "kubelet", "cadvisor", "node-exporter",
        "kube-state-metrics", "django", "edge-nginx", "edge-logs", "postgres-exporter",
        "redis-exporter", "blackbox-exporter", "blackbox-https", "blackbox-tls",
        "blackbox-internal",
    }  # fmt: skip
    for name in ("apiserver", "kubelet", "cadvisor"):
        job = jobs[name]
        assert job["scheme"] == "https" and job["tls_config"]["insecure_skip_verify"] is False
        assert job["authorization"]["credentials_file"].endswith("/serviceaccount/token")
    assert jobs["kube-state-metrics"]["honor_labels"] is True
    assert jobs["apiserver"]["tls_config"]["server_name"] == "kubernetes"
    instance = {"source_labels": ["__meta_kubernetes_node_name"], "target_label": "instance"}
    assert instance in jobs["kubelet"]["relabel_configs"]
    proxy = jobs["cadvisor"]["relabel_configs"][-1]
    assert proxy["replacement"] == "/api/v1/nodes/$1/proxy/metrics/cadvisor"


EXPORTER_JOBS = {
    "alertmanager": ("alertmanager",),
    "blackbox-exporter": ("blackbox-https", "blackbox-tls", "blackbox-internal"),
    "cadvisor": ("cadvisor",),
    "django-prometheus": ("django",),
    "edge-log-metrics": ("edge-logs",),
    "kube-state-metrics": ("kube-state-metrics",),
    "kubelet": ("kubelet",),
    "nginx-prometheus-exporter": ("edge-nginx",),
    "node-exporter": ("node-exporter",),
    "postgres-exporter": ("postgres-exporter",),
    "prometheus": ("prometheus",),
    "redis-exporter": ("redis-exporter",),
}
"""The exporters of ``metrics.yaml`` and the scrape jobs that collect what they produce."""


def test_every_exporter_of_the_metrics_list_is_scraped(folder: Path) -> None:
    metrics = _load(prom_dir() / "metrics.yaml")
    exporters = set(metrics.values())
    assert exporters <= set(EXPORTER_JOBS), exporters - set(EXPORTER_JOBS)
    jobs = {job["job_name"]: job for job in _load(folder / "prometheus.yml")["scrape_configs"]}
    for exporter in exporters:
        assert set(EXPORTER_JOBS[exporter]) <= set(jobs), exporter
    dropped = re.compile(prom.CADVISOR_DROPPED)
    (drop,) = jobs["cadvisor"]["metric_relabel_configs"]
    assert drop["regex"] == prom.CADVISOR_DROPPED
    assert dropped.fullmatch("container_tasks_state")
    assert not [m for m in metrics if dropped.fullmatch(m)], "a used metric would be dropped"


def prom_dir() -> Path:
    return Path(prom.__file__).parent


def test_probes_use_modules_of_blackbox_yml_and_the_stack_host(
    folder: Path, stack_settings: dict[str, StackSettings]
) -> None:
    modules = _load(folder / "blackbox.yml")["modules"]
    jobs = [j for j in _load(folder / "prometheus.yml")["scrape_configs"] if "params" in j]
    assert len(jobs) == 3
    for job in jobs:
        (module,) = job["params"]["module"]
        assert module in modules, job["job_name"]
        assert job["metrics_path"] == "/probe"
        assert job["relabel_configs"][-1]["replacement"] == prom.BLACKBOX_ADDRESS
    stack = folder.parent.name
    host = stack_settings[stack].workloads.host
    https = next(j for j in jobs if j["job_name"] == "blackbox-https")
    assert https["static_configs"] == [{"targets": [f"https://{host}/healthz"]}]
    assert https["params"]["module"] == ["https_2xx"]


def test_maintenance_mode_changes_nothing_of_prometheus(
    stack_settings: dict[str, StackSettings],
) -> None:
    """Issue 13: toggling maintenance changes only the edge's ConfigMap and rolls only the
    edge; the public probe reads the edge's health check, 200 in maintenance too."""
    settings = stack_settings["staging"]
    on = replace(settings, edge=replace(settings.edge, maintenance=replace(
        settings.edge.maintenance, enabled=True)))  # fmt: skip
    assert prom.scrape_configs(on) == prom.scrape_configs(settings)


# --- alertmanager.yml --------------------------------------------------------------------------


def test_amtool_accepts_alertmanager_yml(folder: Path) -> None:
    result = run(tool("amtool"), "check-config", str(folder / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "4 receivers" in result.stdout


ROUTES = [
    (("alertname=PostgreSQLDown", "severity=critical", "namespace=monitoring"), f"{EMAIL},{CHAT}"),
    (("alertname=KubePodNotReady", "severity=warning", "namespace=exposcholar"), CHAT),
    (("alertname=NodeCPUHighUsage", "severity=info"), NULL),
    (("alertname=InfoInhibitor", "severity=none"), NULL),
    (("alertname=Watchdog", "severity=none"), DEADMANS_SWITCH),
    (("alertname=Watchdog", "severity=critical"), DEADMANS_SWITCH),  # by name, never to people
    (("alertname=NoSeverityLabel",), CHAT),
]


@pytest.mark.parametrize(("labels", "receivers"), ROUTES)
def test_each_severity_reaches_its_receivers(
    folder: Path, labels: tuple[str, ...], receivers: str
) -> None:
    amtool = tool("amtool")
    config = f"--config.file={folder / 'alertmanager.yml'}"
    result = run(amtool, "config", "routes", "test", config, *labels)
    assert result.stdout.strip() == receivers, result.stdout + result.stderr
    verified = run(amtool, "config", "routes", "test", config, f"--verify.receivers={receivers}",
                   *labels)  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    wrong = run(amtool, "config", "routes", "test", config, "--verify.receivers=nobody", *labels)
    assert wrong.returncode == 1, "--verify.receivers fails on the wrong receivers"


def test_notification_templates_render(folder: Path, tmp_path: Path) -> None:
    """The receivers' templated fields execute in Alertmanager's template engine (a typo in
    one would fail only when a notification is sent)."""
    amtool = tool("amtool")
    (tmp_path / "none.tmpl").write_text("")
    glob = f"--template.glob={tmp_path / '*.tmpl'}"
    receivers = _load(folder / "alertmanager.yml")["receivers"]
    fields = [
        value
        for receiver in receivers
        for key, configs in receiver.items()
        if key.endswith("_configs")
        for config in configs
        for value in config.values()
        if isinstance(value, str) and "{{" in value
    ]
    assert len(fields) >= 2
    for text in fields:
        result = run(amtool, "template", "render", glob, f"--template.text={text}")
        assert result.returncode == 0, (text, result.stderr)
    broken = run(amtool, "template", "render", glob, "--template.text={{ .CommonLabel.x }}")
    assert broken.returncode == 1, "a field that does not exist fails the render"


def test_secrets_are_the_previews_placeholders(folder: Path) -> None:
    text = (folder / "alertmanager.yml").read_text()
    config = yaml.safe_load(text)
    assert (
        config["global"]["smtp_auth_password"]
        == "offline-preview-placeholder-secret-alertSmtpPassword"
    )
    hooks = {r["name"]: r for r in config["receivers"]}
    assert "offline-preview-placeholder" in hooks[CHAT]["slack_configs"][0]["api_url"]
    assert "offline-preview-placeholder" in hooks[DEADMANS_SWITCH]["webhook_configs"][0]["url"]
    assert config["global"]["smtp_require_tls"] is True


def test_the_secrets_text_is_the_rendered_configuration_and_stays_secret(
    stack_configs: dict[str, StackConfig], rendered: dict[str, Path]
) -> None:
    """What the Kubernetes Secret gets (``alertmanager_secret_text``) is the file the preview
    renders, with the secret settings' values, and is a secret Output (masked in the plan)."""
    config = stack_configs["prod"]
    alerting = parse_settings("prod", config.values).alerting
    seen: list[str] = []

    def program() -> None:
        text = alertmanager_secret_text(alerting)
        text.apply(seen.append)
        k8s.core.v1.Secret("alertmanager", string_data={"alertmanager.yml": text})

    plan = capture(config, program)
    (secret,) = plan.of_type("kubernetes:core/v1:Secret")
    assert secret.inputs["stringData"] == {"alertmanager.yml": MASK}
    assert json.loads(seen[0]) == _load(rendered["prod"] / "alertmanager.yml")


def test_render_all_needs_every_secret(stack_settings: dict[str, StackSettings]) -> None:
    """A secret left out is named, never rendered as an empty value Alertmanager would take."""
    with pytest.raises(KeyError, match="alertDeadMansSwitchUrl"):
        render_all(stack_settings["staging"], {"alertWebhookUrl": "x", "alertSmtpPassword": "y"})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _api(port: int, path: str, body: Any = None) -> Any:
    """One call of Alertmanager's v2 API on loopback: POST ``body`` as JSON, or GET."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        if body is None:
            connection.request("GET", f"/api/v2{path}")
        else:
            headers = {"Content-Type": "application/json"}
            connection.request("POST", f"/api/v2{path}", json.dumps(body), headers)
        answer = connection.getresponse()
        raw = answer.read()
        assert answer.status == 200, (answer.status, raw[:500])
    finally:
        connection.close()
    return json.loads(raw) if raw else None


@contextlib.contextmanager
def _server(what: str, command: list[str], ready: Callable[[], object]) -> Iterator[None]:
    """``command`` running until the block ends, once ``ready()`` stops raising ``OSError``
    (within 15 s; a server that exits or never gets ready fails the test with its stderr)."""
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                ready()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    pytest.fail(f"{what} did not start: {process.communicate()[1][-2000:]}")
                time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.contextmanager
def alertmanager(config: Path, storage: Path) -> Iterator[int]:
    """A throw-away Alertmanager on loopback (no cluster listener), yielding its port."""
    port = _free_port()
    command = [
        tool("prometheus-alertmanager"), f"--config.file={config}", f"--storage.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
    ]  # fmt: skip
    with _server("alertmanager", command, lambda: _api(port, "/status")):
        yield port


def test_critical_inhibits_the_warning_of_the_same_alert_and_namespace(
    rendered: dict[str, Path], tmp_path: Path
) -> None:
    config = _load(rendered["prod"] / "alertmanager.yml")
    config["global"]["smtp_smarthost"] = f"127.0.0.1:{_free_port()}"  # never the real relay
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))

    def alert(severity: str, namespace: str) -> dict[str, Any]:
        labels = {"alertname": "PostgreSQLHighConnections", "severity": severity}
        return {"labels": {**labels, "namespace": namespace}}

    with alertmanager(path, tmp_path / "data") as port:
        _api(port, "/alerts", [
            alert("critical", "monitoring"), alert("warning", "monitoring"),
            alert("warning", "exposcholar"),
        ])  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            states = {
                (a["labels"]["severity"], a["labels"]["namespace"]): a["status"]
                for a in _api(port, "/alerts")
            }
            if len(states) == 3 and states[("warning", "monitoring")]["state"] == "suppressed":
                break
            assert time.monotonic() < deadline, states
            time.sleep(0.2)
    assert states[("warning", "monitoring")]["inhibitedBy"], states
    assert states[("critical", "monitoring")]["state"] == "active"
    assert states[("warning", "exposcholar")]["state"] == "active", (
        "another namespace: not inhibited"
    )
    assert states[("warning", "exposcholar")]["inhibitedBy"] == []


# --- blackbox.yml ------------------------------------------------------------------------------

PROBERS = {"http", "tcp", "icmp", "dns", "grpc"}


def test_blackbox_exporter_accepts_blackbox_yml(folder: Path) -> None:
    exporter = tool("prometheus-blackbox-exporter")
    result = run(exporter, "--config.check", f"--config.file={folder / 'blackbox.yml'}")
    assert result.returncode == 0, result.stderr
    modules = _load(folder / "blackbox.yml")["modules"]
    assert {"http_2xx", "https_2xx", "tls_connect", "tcp_connect", "http_maintenance"} <= set(
        modules
    )
    # --config.check passes a misspelt prober, which fails only at probe time ("Unknown prober")
    assert {m["prober"] for m in modules.values()} <= PROBERS
    for name, module in modules.items():
        settings = module.get(module["prober"], {})
        assert settings.get("preferred_ip_protocol") == "ip4", name
        assert settings.get("tls_config", {}).get("insecure_skip_verify", False) is False, name
    assert modules["https_2xx"]["http"]["fail_if_not_ssl"] is True
    assert modules["tls_connect"]["tcp"]["tls"] is True


def test_blackbox_exporter_refuses_a_misspelt_field(folder: Path, tmp_path: Path) -> None:
    text = (folder / "blackbox.yml").read_text()
    assert "fail_if_not_ssl: true" in text
    broken = tmp_path / "blackbox.yml"
    broken.write_text(text.replace("fail_if_not_ssl: true", "fail_if_not_tls: true", 1))
    exporter = tool("prometheus-blackbox-exporter")
    result = run(exporter, "--config.check", f"--config.file={broken}")
    assert result.returncode == 1
    assert "fail_if_not_tls" in result.stderr


class _Site(http.server.BaseHTTPRequestHandler):
    """``/ok`` 200, ``/maintenance`` 503 with Retry-After (the edge's maintenance page),
    anything else 502 (a dead upstream)."""

    def do_GET(self) -> None:
        status = {"/ok": 200, "/maintenance": 503}.get(self.path, 502)
        self.send_response(status)
        if status == 503:
            self.send_header("Retry-After", "120")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@contextlib.contextmanager
def _site() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def _blackbox(config: Path) -> Iterator[int]:
    """A throw-away blackbox exporter on loopback, yielding its port."""
    port = _free_port()
    command = [
        tool("prometheus-blackbox-exporter"), f"--config.file={config}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]  # fmt: skip
    with _server("blackbox exporter", command, lambda: _get(f"http://127.0.0.1:{port}/")):
        yield port


def _probe(port: int, module: str, target: str) -> float:
    """``probe_success`` of one probe."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request("GET", f"/probe?module={module}&target={target}")
        body = connection.getresponse().read().decode()
    finally:
        connection.close()
    (value,) = re.findall(r"^probe_success (\S+)$", body, re.MULTILINE)
    return float(value)


def test_blackbox_modules_probe_as_intended(rendered: dict[str, Path], tmp_path: Path) -> None:
    """The modules against a server on loopback: 2xx passes and 502 fails; the public module
    refuses plain HTTP and the TLS module a server without TLS; the maintenance module passes
    only a 503 with Retry-After (its HTTPS requirement lifted for the plain test server)."""
    config = _load(rendered["staging"] / "blackbox.yml")
    lifted = dict(config["modules"]["http_maintenance"])
    lifted["http"] = {**lifted["http"], "fail_if_not_ssl": False}
    config["modules"]["maintenance_plain"] = lifted
    path = tmp_path / "blackbox.yml"
    path.write_text(yaml.safe_dump(config))
    with _site() as site, _blackbox(path) as port:
        base = f"http://127.0.0.1:{site}"
        assert _probe(port, "http_2xx", f"{base}/ok") == 1
        assert _probe(port, "http_2xx", f"{base}/down") == 0
        assert _probe(port, "http_2xx", f"{base}/maintenance") == 0
        assert _probe(port, "https_2xx", f"{base}/ok") == 0, "plain HTTP fails the public probe"
        assert _probe(port, "tcp_connect", f"127.0.0.1:{site}") == 1
        assert _probe(port, "tls_connect", f"127.0.0.1:{site}") == 0, "no TLS, no success"
        assert _probe(port, "maintenance_plain", f"{base}/maintenance") == 1
        assert _probe(port, "maintenance_plain", f"{base}/ok") == 0
        assert _probe(port, "maintenance_plain", f"{base}/down") == 0


# --- the metric names of Prometheus, Alertmanager and the blackbox exporter, from the real tools


def _listed(exporter: str) -> set[str]:
    """The names ``components/monitoring/metrics.yaml`` says ``exporter`` produces."""
    mapping = _load(Path(prom.__file__).parent / "metrics.yaml")
    return {name for name, source in mapping.items() if source == exporter}


def _names(text: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][\w:]*)(?:\{| )", text, re.M)}


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback
        return str(answer.read().decode())


def test_alertmanager_and_prometheus_produce_their_listed_metrics(
    rendered: dict[str, Path], tmp_path: Path
) -> None:
    """Alertmanager with the stack's configuration, and a Prometheus sending it alerts from a
    rule file: every name metrics.yaml lists for them is on their /metrics (``up`` is made by
    Prometheus for each target, so it is read from a query)."""
    config = _load(rendered["prod"] / "alertmanager.yml")
    config["global"]["smtp_smarthost"] = f"127.0.0.1:{_free_port()}"
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    with alertmanager(path, tmp_path / "am") as am_port:
        assert _listed("alertmanager") <= _names(_get(f"http://127.0.0.1:{am_port}/metrics"))
        port = _free_port()
        rules = tmp_path / "rules.yml"
        rules.write_text(
            "groups:\n- name: self\n  interval: 1s\n  rules:\n"
            "  - alert: Watchdog\n    expr: vector(1)\n    labels: {severity: none}\n"
        )
        (tmp_path / "prometheus.yml").write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(rules)],
                    "alerting": {"alertmanagers": [
                        {"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}
                    ]},
                    "scrape_configs": [{"job_name": "prometheus",
                                        "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
                }
            )
        )  # fmt: skip
        command = [
            tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
        ]  # fmt: skip
        with _server("prometheus", command, lambda: _get(f"http://127.0.0.1:{port}/-/ready")):
            deadline, missing = time.monotonic() + 30, {"?"}
            while missing and time.monotonic() < deadline:
                time.sleep(0.5)
                with contextlib.suppress(OSError):
                    names = _names(_get(f"http://127.0.0.1:{port}/metrics"))
                    up = _get(f"http://127.0.0.1:{port}/api/v1/query?query=up")
                    if '"__name__":"up"' in up:
                        names.add("up")
                    missing = _listed("prometheus") - names
            assert not missing, f"prometheus does not produce {sorted(missing)}"


def test_the_blackbox_exporter_produces_its_listed_metrics(
    rendered: dict[str, Path], tmp_path: Path
) -> None:
    """The HTTP module's probe of a site and the TLS module's of a TLS server (its certificate
    trusted for the test only): every probe_* name metrics.yaml lists is in their answers."""
    config = _load(rendered["staging"] / "blackbox.yml")
    tls = dict(config["modules"]["tls_connect"])
    tls["tcp"] = {**tls.get("tcp", {}), "tls_config": {"insecure_skip_verify": True}}
    config["modules"]["tls_test"] = tls
    path = tmp_path / "blackbox.yml"
    path.write_text(yaml.safe_dump(config))
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = run(tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
               "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert))  # fmt: skip
    assert made.returncode == 0, made.stderr
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with _site() as site, _blackbox(path) as port:
            seen = set()
            for module, target in (
                ("http_2xx", f"http://127.0.0.1:{site}/ok"),
                ("tls_test", f"127.0.0.1:{server.server_address[1]}"),
            ):
                answer = _get(f"http://127.0.0.1:{port}/probe?module={module}&target={target}")
                assert re.search(r"^probe_success 1$", answer, re.M), (module, answer[-1500:])
                seen |= _names(answer)
            assert _listed("blackbox-exporter") <= seen, sorted(_listed("blackbox-exporter") - seen)
    finally:
        server.shutdown()
        server.server_close()
