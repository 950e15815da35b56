"""``Monitoring`` as the program declares it, for both stacks: its objects, the namespaces' Pod
Security levels and the recorded exemption, exact RBAC, the ConfigMap holding the very files
the preview renders, the checksum that rolls Prometheus when they change, and the
NetworkPolicies of Prometheus and kube-state-metrics."""

from __future__ import annotations

import json
from typing import Any

from components.lib.kube.namespaces import PRIVILEGED_NAMESPACES, pss_labels
from components.lib.kube.pods import CHECKSUM_ANNOTATION
from components.monitoring.alertmanager import SECRET_KEYS
from components.monitoring.monitoring import config_map_key, prometheus_files
from components.monitoring.render import render_all
from components.settings import KUBERNETES_SERVICE_IP, StackSettings
from components.settings.subnets import Tier, plan_subnets
from policies.rules.node_agents import NODE_AGENT_NAMESPACES
from tests.conftest import component_plan
from tools.edge.run import override
from tools.mocks import CapturedResource
from tools.plan import Plan
from tools.preview import REPO_ROOT
from tools.program import run_program
from tools.project import StackConfig

K = "kubernetes:"
TYPE = "exposcholar:monitoring:Monitoring"


def _objects(plan: Plan) -> dict[tuple[str, str], CapturedResource]:
    own = component_plan(plan, TYPE)
    return {
        (r.type.removeprefix(K), r.inputs["metadata"]["name"]): r for r in own.resources if r.custom
    }


def _one(plan: Plan, kind: str, name: str) -> dict[str, Any]:
    return _objects(plan)[(kind, name)].inputs


def test_monitoring_creates_exactly_its_objects(plan: Plan) -> None:
    assert set(_objects(plan)) == {
        ("core/v1:Namespace", "monitoring"),
        ("core/v1:Namespace", "node-exporter"),
        ("networking.k8s.io/v1:NetworkPolicy", "default-deny"),
        ("networking.k8s.io/v1:NetworkPolicy", "allow-dns"),
        ("networking.k8s.io/v1:NetworkPolicy", "allow-prometheus"),
        ("networking.k8s.io/v1:NetworkPolicy", "allow-kube-state-metrics"),
        ("networking.k8s.io/v1:NetworkPolicy", "allow-node-exporter"),
        ("core/v1:ServiceAccount", "prometheus"),
        ("rbac.authorization.k8s.io/v1:ClusterRole", "monitoring-prometheus"),
        ("rbac.authorization.k8s.io/v1:ClusterRoleBinding", "monitoring-prometheus"),
        ("core/v1:ConfigMap", "prometheus-config"),
        ("core/v1:Service", "prometheus"),
        ("apps/v1:StatefulSet", "prometheus"),
        ("core/v1:ServiceAccount", "kube-state-metrics"),
        ("rbac.authorization.k8s.io/v1:ClusterRole", "monitoring-kube-state-metrics"),
        ("rbac.authorization.k8s.io/v1:ClusterRoleBinding", "monitoring-kube-state-metrics"),
        ("apps/v1:Deployment", "kube-state-metrics"),
        ("core/v1:Service", "kube-state-metrics"),
        ("core/v1:ServiceAccount", "node-exporter"),
        ("apps/v1:DaemonSet", "node-exporter"),
        ("core/v1:Service", "node-exporter"),
    }
    # two namespaces, each with its default deny and DNS: four baseline policies in all
    own = component_plan(plan, TYPE)
    baselines = [
        r for r in own.of_type(f"{K}networking.k8s.io/v1:NetworkPolicy")
        if r.inputs["metadata"]["name"] in ("default-deny", "allow-dns")
    ]  # fmt: skip
    assert sorted(r.inputs["metadata"]["namespace"] for r in baselines) == [
        "monitoring", "monitoring", "node-exporter", "node-exporter"
    ]  # fmt: skip


def test_namespaces_pss_levels_and_the_recorded_exemption(
    plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    version = stack_settings[plan.stack].cluster.version
    own = component_plan(plan, TYPE)
    labels = {
        r.inputs["metadata"]["name"]: r.inputs["metadata"]["labels"]
        for r in own.of_type(f"{K}core/v1:Namespace")
    }
    assert pss_labels("restricted", version).items() <= labels["monitoring"].items()
    assert pss_labels("privileged", version).items() <= labels["node-exporter"].items()
    assert set(PRIVILEGED_NAMESPACES) == {"node-exporter"}
    assert "host" in PRIVILEGED_NAMESPACES["node-exporter"]
    # the policy pack's one list of node-agent namespaces is the program's privileged ones,
    # and the stack's config does not list them a second time
    assert set(NODE_AGENT_NAMESPACES) == set(PRIVILEGED_NAMESPACES)
    assert all(NODE_AGENT_NAMESPACES.values())
    config = json.loads((REPO_ROOT / "policies" / "config" / f"{plan.stack}.json").read_text())
    configured = {e["namespace"] for e in config["k8s-namespace-pss"]["exempt"]}
    assert not configured & set(NODE_AGENT_NAMESPACES)


def _rules(plan: Plan, role: str) -> list[dict[str, Any]]:
    return list(_one(plan, "rbac.authorization.k8s.io/v1:ClusterRole", role)["rules"])


def test_rbac_is_exactly_read_only_discovery_and_reporting(plan: Plan) -> None:
    assert _rules(plan, "monitoring-prometheus") == [
        {
            "apiGroups": [""],
            "resources": ["nodes", "nodes/proxy", "services", "endpoints", "pods"],
            "verbs": ["get", "list", "watch"],
        },
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
    ]
    assert _rules(plan, "monitoring-kube-state-metrics") == [
        {"apiGroups": [""], "verbs": ["list", "watch"],
         "resources": ["namespaces", "nodes", "persistentvolumeclaims", "persistentvolumes",
                       "pods"]},
        {"apiGroups": ["apps"], "verbs": ["list", "watch"],
         "resources": ["daemonsets", "deployments", "replicasets", "statefulsets"]},
        {"apiGroups": ["batch"], "verbs": ["list", "watch"], "resources": ["cronjobs", "jobs"]},
        {"apiGroups": ["autoscaling"], "verbs": ["list", "watch"],
         "resources": ["horizontalpodautoscalers"]},
        {"apiGroups": ["policy"], "verbs": ["list", "watch"],
         "resources": ["poddisruptionbudgets"]},
    ]  # fmt: skip
    # kube-state-metrics is told to report exactly what it may list
    args = _one(plan, "apps/v1:Deployment", "kube-state-metrics")["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    (flag,) = [a for a in args if a.startswith("--resources=")]
    granted = {
        res for rule in _rules(plan, "monitoring-kube-state-metrics") for res in rule["resources"]
    }
    assert set(flag.removeprefix("--resources=").split(",")) == granted
    for part in ("prometheus", "kube-state-metrics"):
        binding = _one(
            plan, "rbac.authorization.k8s.io/v1:ClusterRoleBinding", f"monitoring-{part}"
        )
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": f"monitoring-{part}",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": part, "namespace": "monitoring"}
        ]
        # the account mounts no token by default; only the pod that calls the API asks for it
        assert _one(plan, "core/v1:ServiceAccount", part)["automountServiceAccountToken"] is False


def test_config_map_holds_the_rendered_files_at_their_paths(
    plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings[plan.stack]
    rendered = render_all(settings, dict.fromkeys(SECRET_KEYS, "placeholder"))
    expected = {
        path: text
        for path, text in rendered.items()
        if path == "prometheus.yml" or path.startswith("rules/")
    }
    assert prometheus_files(settings) == expected
    data = _one(plan, "core/v1:ConfigMap", "prometheus-config")["data"]
    assert data == {config_map_key(path): text for path, text in expected.items()}
    pod = _one(plan, "apps/v1:StatefulSet", "prometheus")["spec"]["template"]["spec"]
    (config,) = [v for v in pod["volumes"] if v["name"] == "config"]
    items = {item["key"]: item["path"] for item in config["configMap"]["items"]}
    assert {items[key]: data[key] for key in data} == expected
    (container,) = pod["containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["config"] == {"name": "config", "mountPath": "/etc/prometheus", "readOnly": True}
    assert "--config.file=/etc/prometheus/prometheus.yml" in container["args"]


def test_prometheus_statefulset_from_settings_restricted_and_probed(
    plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings[plan.stack].prometheus
    spec = _one(plan, "apps/v1:StatefulSet", "prometheus")["spec"]
    assert spec["replicas"] == 1
    assert spec["serviceName"] == "prometheus"
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "gp3",
        "resources": {"requests": {"storage": f"{settings.storage_gb}Gi"}},
    }
    assert spec["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    assert pod["serviceAccountName"] == "prometheus"
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert f"--storage.tsdb.retention.time={settings.retention_days}d" in container["args"]
    assert f"--storage.tsdb.retention.size={settings.retention_size_gb}GB" in container["args"]
    assert settings.retention_size_gb < settings.storage_gb
    assert container["resources"] == {
        "requests": settings.resources.requests(),
        "limits": settings.resources.limits(),
    }
    assert container["image"].startswith("quay.io/prometheus/prometheus:v")
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert container["ports"] == [{"name": "http", "containerPort": 9090, "protocol": "TCP"}]


def test_services_are_the_ones_prometheus_yml_discovers(plan: Plan) -> None:
    for name, namespace, port_name, port in (
        ("prometheus", "monitoring", "http", 9090),
        ("kube-state-metrics", "monitoring", "http-metrics", 8080),
        ("node-exporter", "node-exporter", "metrics", 9100),
    ):
        service = _one(plan, "core/v1:Service", name)
        assert service["metadata"]["namespace"] == namespace
        (found,) = service["spec"]["ports"]
        assert (found["name"], found["port"], found["targetPort"]) == (port_name, port, port_name)
        assert service["spec"]["type"] == "ClusterIP"


def _peers(rule: dict[str, Any], key: str) -> list[tuple[Any, ...]]:
    return [
        (
            json.dumps(peer.get("podSelector", {}).get("matchLabels"), sort_keys=True),
            json.dumps(peer.get("namespaceSelector", {}).get("matchLabels"), sort_keys=True),
            peer.get("ipBlock", {}).get("cidr"),
            tuple(p["port"] for p in rule["ports"]),
        )
        for peer in rule[key]
    ]


def test_prometheus_reaches_only_its_targets_and_its_targets_only_it(
    plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    prometheus = _one(plan, "networking.k8s.io/v1:NetworkPolicy", "allow-prometheus")["spec"]
    egress = {peer for rule in prometheus["egress"] for peer in _peers(rule, "to")}
    network = stack_settings[plan.stack].network
    private = {
        p.cidr
        for p in plan_subnets(network.vpc_cidr, network.availability_zones, network.subnet_prefixes)
        if p.tier is Tier.PRIVATE
    }
    here, app = "null", '{"kubernetes.io/metadata.name": "exposcholar"}'

    def pods(name: str, namespace: str, *ports: int) -> tuple[Any, ...]:
        return (json.dumps({"app.kubernetes.io/name": name}), namespace, None, ports)

    assert egress == {
        # the API server (discovery, its /metrics, the kubelets through its node proxy): its
        # endpoints, and the kubernetes Service's address that in-cluster clients dial
        *{("null", "null", cidr, (443,)) for cidr in private},
        ("null", "null", f"{KUBERNETES_SERVICE_IP}/32", (443,)),
        pods("kube-state-metrics", here, 8080),
        pods("node-exporter", '{"kubernetes.io/metadata.name": "node-exporter"}', 9100),
        # node-exporter again, at the nodes' addresses (host network): nothing else there
        *{("null", "null", cidr, (9100,)) for cidr in private},
        pods("alertmanager", here, 9093),
        pods("blackbox-exporter", here, 9115),
        # the database exporters run in the app's namespace, on the nodes the data stores admit
        pods("postgres-exporter", app, 9187),
        pods("redis-exporter", app, 9121),
        pods("server", app, 8001),
        pods("edge", app, 9113, 3903),
    }
    assert [p for rule in prometheus["ingress"] for p in _peers(rule, "from")] == [
        ('{"app.kubernetes.io/name": "grafana"}', "null", None, (9090,))
    ]
    prometheus_pods = '{"app.kubernetes.io/name": "prometheus"}'
    for policy, namespace_selector, port in (
        ("allow-kube-state-metrics", "null", 8080),
        ("allow-node-exporter", '{"kubernetes.io/metadata.name": "monitoring"}', 9100),
    ):
        spec = _one(plan, "networking.k8s.io/v1:NetworkPolicy", policy)["spec"]
        assert [p for rule in spec["ingress"] for p in _peers(rule, "from")] == [
            (prometheus_pods, namespace_selector, None, (port,))
        ]


def _inputs_by_urn(plan: Plan) -> dict[str, str]:
    return {r.urn: json.dumps(r.inputs, sort_keys=True) for r in plan.resources}


def test_a_rule_threshold_change_rolls_prometheus_and_nothing_else(
    stack_configs: dict[str, StackConfig], plans: dict[str, Plan]
) -> None:
    before = plans["staging"]
    after = run_program(REPO_ROOT, override(stack_configs["staging"], ("alertNodeCpuPercent=77",)))
    old, new = _inputs_by_urn(before), _inputs_by_urn(after)
    assert old.keys() == new.keys()
    changed = {urn for urn in old if old[urn] != new[urn]}
    config_map = _objects(before)[("core/v1:ConfigMap", "prometheus-config")].urn
    statefulset = _objects(before)[("apps/v1:StatefulSet", "prometheus")].urn
    assert changed == {config_map, statefulset}
    old_set, new_set = json.loads(old[statefulset]), json.loads(new[statefulset])
    old_annotations = old_set["spec"]["template"]["metadata"].pop("annotations")
    new_annotations = new_set["spec"]["template"]["metadata"].pop("annotations")
    assert old_set == new_set
    assert old_annotations[CHECKSUM_ANNOTATION] != new_annotations[CHECKSUM_ANNOTATION]
