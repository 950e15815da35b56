"""The monitoring workloads on the cluster (components/monitoring/alerting.py and
grafana.py), for both stacks under mocks: Alertmanager's configuration only in a Secret (secret
in state, never in a ConfigMap); Grafana's admin password only in a Secret read from a file, its
provisioned datasource and every dashboard in a ConfigMap of its own; the checksums that roll
the pods; the Services of the scrape contract (components/monitoring/prometheus.py); restricted
pods on the system pool, pinned images; the NetworkPolicies' peers and ports. Reachability as a
whole: tests/test_network_policies.py; the grafanaAdminPassword rules: tests/test_settings.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from components.lib.kube.pods import CHECKSUM_ANNOTATION, checksum
from components.monitoring import grafana as grafana_module
from components.monitoring.alerting import ALERTMANAGER_IMAGE, BLACKBOX_IMAGE, smtp_port
from components.monitoring.prometheus import EXPORTER_SERVICES, MONITORING_NAMESPACE
from components.monitoring.render import BLACKBOX_FILE, dashboards
from components.settings import StackSettings
from tests.conftest import component_plan
from tools.mocks import MASK
from tools.plan import Plan
from tools.project import SECRET_PLACEHOLDERS

ALERTING = "exposcholar:monitoring:Alerting"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
SECRET = "kubernetes:core/v1:Secret"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SERVICES = {"alertmanager": ("http", 9093), "blackbox-exporter": ("http", 9115)}
"""Service -> (port name, number), as prometheus.py's scrape jobs and alerting target name them."""


@pytest.fixture
def alerting(plan: Plan) -> Plan:
    return component_plan(plan, ALERTING)


def _named(plan: Plan, typ: str) -> dict[str, dict[str, Any]]:
    return {r.inputs["metadata"]["name"]: r.inputs for r in plan.of_type(typ)}


def _pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return dict(deployment["spec"]["template"]["spec"])


def test_alertmanager_configuration_is_only_in_a_secret(plan: Plan, alerting: Plan) -> None:
    secrets = _named(alerting, SECRET)
    assert set(secrets) == {"alertmanager-config"}
    secret = secrets["alertmanager-config"]
    assert secret["metadata"]["namespace"] == MONITORING_NAMESPACE
    # the plan masks secret values: the document is a secret Output, encrypted in state
    assert secret["stringData"] == {"alertmanager.yml": MASK}
    # no ConfigMap of the whole program carries any secret setting's value
    for config_map in plan.of_type(CONFIG_MAP):
        text = repr(config_map.inputs)
        for key, value in SECRET_PLACEHOLDERS.items():
            assert value not in text, f"{config_map.urn} holds {key}"
        assert "offline-preview-placeholder" not in text, config_map.urn


def test_services_are_the_scrape_contract(alerting: Plan) -> None:
    services = _named(alerting, SERVICE)
    assert set(services) == set(SERVICES)
    for name, (port_name, number) in SERVICES.items():
        spec = services[name]["spec"]
        assert services[name]["metadata"]["namespace"] == MONITORING_NAMESPACE
        assert spec["type"] == "ClusterIP"
        assert spec["ports"] == [
            {"name": port_name, "port": number, "targetPort": port_name, "protocol": "TCP"}
        ]
        # the Service's selector selects the Deployment's pods, whose port has that name
        pod = _named(alerting, DEPLOYMENT)[name]["spec"]["template"]
        labels = pod["metadata"]["labels"]
        assert spec["selector"].items() <= labels.items()
        ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
        assert ports[port_name] == number
    # the blackbox exporter is where prometheus.py looks for it
    assert EXPORTER_SERVICES["blackbox-exporter"] == (
        MONITORING_NAMESPACE,
        "blackbox-exporter",
        "http",
    )


def test_alertmanager_pod(alerting: Plan) -> None:
    deployment = _named(alerting, DEPLOYMENT)["alertmanager"]
    assert deployment["spec"]["replicas"] == 1
    pod = _pod(deployment)
    (container,) = pod["containers"]
    assert container["image"] == ALERTMANAGER_IMAGE
    args = container["args"]
    # one replica: no gossip listener (an empty address turns clustering off)
    assert "--cluster.listen-address=" in args
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in args
    assert "--storage.path=/alertmanager" in args
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["secret"]["secretName"] == "alertmanager-config"
    assert "sizeLimit" in volumes["data"]["emptyDir"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/alertmanager"]["readOnly"] is True
    assert mounts["/alertmanager"]["name"] == "data"
    assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy"


def test_blackbox_pod_reads_the_packaged_modules(alerting: Plan) -> None:
    config_maps = _named(alerting, CONFIG_MAP)
    assert config_maps["blackbox-exporter-config"]["data"] == {
        "blackbox.yml": BLACKBOX_FILE.read_text()
    }
    pod = _pod(_named(alerting, DEPLOYMENT)["blackbox-exporter"])
    (container,) = pod["containers"]
    assert container["image"] == BLACKBOX_IMAGE
    assert "--config.file=/etc/blackbox_exporter/blackbox.yml" in container["args"]
    (volume,) = pod["volumes"]
    assert volume["configMap"]["name"] == "blackbox-exporter-config"


def test_checksums_roll_the_pods_and_are_not_secret(alerting: Plan) -> None:
    deployments = _named(alerting, DEPLOYMENT)
    digests = {
        name: d["spec"]["template"]["metadata"]["annotations"][CHECKSUM_ANNOTATION]
        for name, d in deployments.items()
    }
    assert digests["blackbox-exporter"] == checksum(BLACKBOX_FILE.read_text())
    # a secret annotation would make the whole Deployment secret (unreviewable in diffs)
    assert re.fullmatch(r"[0-9a-f]{64}", digests["alertmanager"]), digests["alertmanager"]
    assert digests["alertmanager"] != digests["blackbox-exporter"]


def test_pods_are_restricted_on_the_system_pool(alerting: Plan) -> None:
    for name, deployment in _named(alerting, DEPLOYMENT).items():
        pod = _pod(deployment)
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 65534
        assert pod["nodeSelector"] == {"exposcholar.io/pool": "system"}
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert container["resources"]["limits"]["memory"]
            # pinned release tags, never :latest
            assert re.search(r":v\d+\.\d+\.\d+$", container["image"]), container["image"]


def _rules(policy: dict[str, Any], direction: str) -> list[dict[str, Any]]:
    return list(policy["spec"].get(direction) or [])


def _ports(rule: dict[str, Any]) -> set[tuple[int, str]]:
    return {(p["port"], p["protocol"]) for p in rule["ports"]}


def test_network_policies(alerting: Plan, stack_settings: dict[str, StackSettings]) -> None:
    settings = stack_settings[alerting.stack]
    policies = _named(alerting, NETPOL)
    assert set(policies) == {"allow-alertmanager", "allow-blackbox-exporter"}
    prometheus = {"app.kubernetes.io/name": "prometheus"}
    for name, port in (("alertmanager", 9093), ("blackbox-exporter", 9115)):
        policy = policies[f"allow-{name}"]
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        (ingress,) = _rules(policy, "ingress")
        assert _ports(ingress) == {(port, "TCP")}
        (peer,) = ingress["from"]
        assert peer["podSelector"]["matchLabels"] == prometheus
        assert peer["namespaceSelector"]["matchLabels"] == {
            "kubernetes.io/metadata.name": MONITORING_NAMESPACE
        }
    # Alertmanager: the SMTP relay's port (from the settings) and HTTPS, nothing else
    (egress,) = _rules(policies["allow-alertmanager"], "egress")
    assert _ports(egress) == {(smtp_port(settings.alerting.smtp.smarthost), "TCP"), (443, "TCP")}
    # blackbox: HTTPS to the public site; the edge's and the server's health ports in-cluster
    egress_ports = [_ports(r) for r in _rules(policies["allow-blackbox-exporter"], "egress")]
    assert egress_ports == [{(443, "TCP")}, {(8080, "TCP")}, {(8000, "TCP")}]


def test_smtp_port() -> None:
    assert smtp_port("email-smtp.eu-west-1.amazonaws.com:587") == 587
    assert smtp_port("relay.example.org:465") == 465


# ── Grafana ──────────────────────────────────────────────────────────────────────────────────

GRAFANA = "exposcholar:monitoring:Grafana"


@pytest.fixture
def grafana(plan: Plan) -> Plan:
    return component_plan(plan, GRAFANA)


def test_grafana_admin_password_only_in_a_secret_read_from_a_file(grafana: Plan) -> None:
    secrets = _named(grafana, SECRET)
    assert set(secrets) == {"grafana-admin"}
    assert secrets["grafana-admin"]["stringData"] == {"admin-password": MASK}
    pod = _pod(_named(grafana, DEPLOYMENT)["grafana"])
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert all("valueFrom" not in e for e in env.values())
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"]["value"] == "/etc/grafana/secrets/admin-password"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["admin"]["secret"]["secretName"] == "grafana-admin"
    # nothing calls out, no one signs up or looks in anonymously
    for key in ("GF_ANALYTICS_REPORTING_ENABLED", "GF_USERS_ALLOW_SIGN_UP",
                "GF_AUTH_ANONYMOUS_ENABLED", "GF_ANALYTICS_CHECK_FOR_UPDATES"):  # fmt: skip
        assert env[key]["value"] == "false", key


def test_grafana_provisions_prometheus_and_every_dashboard(grafana: Plan) -> None:
    config_maps = _named(grafana, CONFIG_MAP)
    provisioning = config_maps["grafana-provisioning"]["data"]
    (source,) = yaml.safe_load(provisioning["datasources.yaml"])["datasources"]
    assert source["uid"] == "prometheus" and source["type"] == "prometheus"
    assert source["url"] == "http://prometheus.monitoring.svc:9090"
    (provider,) = yaml.safe_load(provisioning["dashboards.yaml"])["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana-dashboards"
    assert provider["allowUiUpdates"] is False
    # every dashboard file in a ConfigMap of its own, unchanged, projected into the folder
    files = dashboards()
    boards = {n: c["data"] for n, c in config_maps.items() if n.startswith("grafana-dashboard-")}
    assert len(boards) == len(files)
    for path, text in files.items():
        stem = path.rsplit("/", 1)[-1].removesuffix(".json")
        assert boards[f"grafana-dashboard-{stem}"] == {f"{stem}.json": text}
    pod = _pod(_named(grafana, DEPLOYMENT)["grafana"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    projected = {s["configMap"]["name"] for s in volumes["dashboards"]["projected"]["sources"]}
    assert projected == set(boards)
    items = {i["path"] for i in volumes["provisioning"]["configMap"]["items"]}
    assert items == {"datasources/datasources.yaml", "dashboards/dashboards.yaml"}
    digest = _named(grafana, DEPLOYMENT)["grafana"]["spec"]["template"]["metadata"]
    assert re.fullmatch(r"[0-9a-f]{64}", digest["annotations"][CHECKSUM_ANNOTATION])


def test_grafana_pod_is_restricted_and_writes_only_emptydirs(grafana: Plan) -> None:
    pod = _pod(_named(grafana, DEPLOYMENT)["grafana"])
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    volumes = {v["name"]: v for v in pod["volumes"]}
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/var/lib/grafana", "/tmp"}  # noqa: S108
    for mount in container["volumeMounts"]:
        if mount["mountPath"] in writable:
            assert "sizeLimit" in volumes[mount["name"]]["emptyDir"]
    (service,) = _named(grafana, SERVICE).values()
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"][0]["port"] == 3000


def test_grafana_network_policy(grafana: Plan) -> None:
    (policy,) = _named(grafana, NETPOL).values()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert _rules(policy, "ingress") == []  # no pod reaches Grafana; operators port-forward
    (egress,) = _rules(policy, "egress")
    assert _ports(egress) == {(9090, "TCP")}
    assert egress["to"][0]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}


def test_an_oversized_dashboard_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grafana_module, "dashboards", lambda: {"dashboards/big.json": " " * 2**20})
    with pytest.raises(ValueError, match=r"dashboards/big.json is 1048576 bytes"):
        grafana_module.dashboard_config_maps()
