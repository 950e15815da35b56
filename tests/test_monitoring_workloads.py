"""The monitoring workloads on the cluster (components/monitoring/alerting.py), for both stacks
under mocks: Alertmanager's configuration only in a Secret (secret in state, never in a
ConfigMap), the checksums that roll the pods, the Services of the scrape contract
(components/monitoring/prometheus.py), restricted pods on the system pool, pinned images, and
the NetworkPolicies' peers and ports. Reachability as a whole: tests/test_network_policies.py."""

from __future__ import annotations

import re
from typing import Any

import pytest

from components.lib.kube.pods import CHECKSUM_ANNOTATION, checksum
from components.monitoring.alerting import ALERTMANAGER_IMAGE, BLACKBOX_IMAGE, smtp_port
from components.monitoring.prometheus import EXPORTER_SERVICES, MONITORING_NAMESPACE
from components.monitoring.render import BLACKBOX_FILE
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
