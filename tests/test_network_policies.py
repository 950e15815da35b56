"""NetworkPolicies, for both stacks: from the rendered policies alone, which workload may reach
which (labels, namespaces, ports), compared with the intended matrix and nothing more; and the
semantics of the reachability model itself."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.lib.kube.network_policies import Allowance, Peer, Port
from components.settings import KUBERNETES_SERVICE_IP, StackSettings
from components.settings.subnets import Tier, plan_subnets
from tools import render
from tools.plan import Plan
from tools.reachability import Endpoint, Policies

WORKLOAD_KINDS = ("Deployment", "Job", "StatefulSet", "DaemonSet", "CronJob")
NODE_HOST = 150
"""Where a node is in the first private subnet (host-network pods have its address)."""
BACKUP_JOBS = ("backup-postgres", "backup-redis", "backup-media", "restore-test")


def _template(document: dict[str, Any]) -> dict[str, Any]:
    """The pod template of a workload (a CronJob's is inside its job template)."""
    spec = document["spec"]
    if document["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"])


def _subnet_host(settings: StackSettings, tier: Tier, host: int) -> str:
    network = settings.network
    (first, *_) = [
        p for p in plan_subnets(network.vpc_cidr, network.availability_zones,
                                network.subnet_prefixes)
        if p.tier is tier
    ]  # fmt: skip
    return str(ipaddress.ip_network(first.cidr)[host])


@pytest.fixture
def documents(plan: Plan, tmp_path: Path) -> list[dict[str, Any]]:
    """The rendered manifests, read back from their files."""
    return [yaml.safe_load(p.read_text()) for p in render.write(plan, tmp_path / plan.stack)]


def endpoints(documents: list[dict[str, Any]], settings: StackSettings) -> dict[str, Endpoint]:
    """Our workloads (from their pod templates), the pods of charts and of components still to
    come, and the addresses outside the cluster that matter."""
    found: dict[str, Endpoint] = {}
    pod_host = 10
    for document in documents:
        if document["kind"] not in WORKLOAD_KINDS:
            continue
        template = _template(document)
        name = template["metadata"]["labels"]["app.kubernetes.io/name"]
        ports = {
            port["name"]: port["containerPort"]
            for container in template["spec"]["containers"]
            for port in container.get("ports", [])
            if "name" in port
        }
        if template["spec"].get("hostNetwork"):
            # a host-network pod has its node's address, and the VPC CNI's policy agent neither
            # isolates it nor resolves it as a pod peer: to NetworkPolicies it is the node
            address = _subnet_host(settings, Tier.PRIVATE, NODE_HOST)
            found[name] = Endpoint(name, address, named_ports=ports)
            continue
        found[name] = Endpoint(
            name,
            _subnet_host(settings, Tier.PRIVATE, pod_host),
            document["metadata"]["namespace"],
            template["metadata"]["labels"],
            ports,
        )
        pod_host += 1

    def pod(name: str, namespace: str, labels: dict[str, str]) -> Endpoint:
        nonlocal pod_host
        pod_host += 1
        return Endpoint(name, _subnet_host(settings, Tier.PRIVATE, pod_host), namespace, labels)

    return {
        # Prometheus stands in for itself until its StatefulSet is among the documents
        "prometheus": pod("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}),
        **found,
        "external-secrets": pod(
            "external-secrets", "external-secrets", {"app.kubernetes.io/name": "external-secrets"}
        ),
        "coredns": pod("coredns", "kube-system", {"k8s-app": "kube-dns"}),
        "other-pod": pod("other-pod", "default", {"app": "something-else"}),
        "api-server": Endpoint("api-server", _subnet_host(settings, Tier.PRIVATE, 200)),
        # the kubernetes Service's address, which in-cluster clients dial: the VPC CNI's agent
        # judges it untranslated (the Service has no selector to map it to the endpoints)
        "api-service": Endpoint("api-service", KUBERNETES_SERVICE_IP),
        "alb": Endpoint("alb", _subnet_host(settings, Tier.PUBLIC, 20)),
        "database": Endpoint("database", _subnet_host(settings, Tier.ISOLATED, 20)),
        "cache": Endpoint("cache", _subnet_host(settings, Tier.ISOLATED, 21)),
        "internet": Endpoint("internet", "52.95.110.1"),
    }


OURS = {
    "edge", "server", "migrate", "cluster-autoscaler", "external-secrets", *BACKUP_JOBS,
    "prometheus", "kube-state-metrics",
    "alertmanager", "blackbox-exporter", "grafana",
    "postgres-exporter", "redis-exporter", "postgres-monitor-role",
}  # fmt: skip
"""Workloads the program runs (the charts' pods included): the matrix is every pair with one
of these on at least one side."""
PORTS: dict[str, tuple[tuple[int, str], ...]] = {
    # the edge: nginx, its stub_status (loopback only: nobody may reach it), its metrics sidecars
    "edge": ((8080, "TCP"), (8081, "TCP"), (9113, "TCP"), (3903, "TCP")),
    "server": ((8000, "TCP"), (8001, "TCP")),
    "migrate": ((8000, "TCP"),),
    "cluster-autoscaler": ((8085, "TCP"),),
    "external-secrets": ((10250, "TCP"), (8080, "TCP")),
    **{job: ((8080, "TCP"), (443, "TCP")) for job in BACKUP_JOBS},  # they listen on nothing
    "prometheus": ((9090, "TCP"),),
    "kube-state-metrics": ((8080, "TCP"), (8081, "TCP")),
    "alertmanager": ((9093, "TCP"),),
    "blackbox-exporter": ((9115, "TCP"),),
    "grafana": ((3000, "TCP"),),
    "node-exporter": ((9100, "TCP"),),
    "postgres-exporter": ((9187, "TCP"),),
    "redis-exporter": ((9121, "TCP"),),
    "postgres-monitor-role": ((8080, "TCP"),),  # listens on nothing
    "coredns": ((53, "UDP"), (53, "TCP")),
    "other-pod": ((8080, "TCP"),),
    "api-server": ((443, "TCP"),),
    "api-service": ((443, "TCP"),),
    "alb": ((443, "TCP"),),
    "database": ((5432, "TCP"),),
    "cache": ((6379, "TCP"),),
    "internet": ((443, "TCP"), (80, "TCP"), (587, "TCP"), (25, "TCP")),
}
"""The ports each destination listens on."""

DNS = {("coredns", 53, "UDP"), ("coredns", 53, "TCP")}
PRIVATE_SUBNET_SOURCES = {"coredns", "other-pod", "api-server", "node-exporter"}
"""Sources with no egress policy of ours whose address is in the private subnets, where the
control plane's network interfaces also are: they can reach the operator's webhook port (the
webhook itself authenticates the API server with TLS). node-exporter is one: on the host
network, no NetworkPolicy applies to it (it opens no connection; its node could)."""
HTTPS_ANYWHERE = {"internet", "api-server", "api-service", "alb"}
"""What "HTTPS to anywhere" (AWS and Kubernetes APIs, whose addresses are not fixed) reaches:
also the platform's own load balancer, which is public anyway."""
INTENDED = {
    # the edge: from the load balancer only, out to the server only
    ("alb", "edge", 8080, "TCP"),
    *{("edge", *dns) for dns in DNS},
    ("edge", "server", 8000, "TCP"),
    # the app: from the edge only, scraped by Prometheus, out to its data and AWS
    ("prometheus", "server", 8001, "TCP"),
    ("prometheus", "edge", 9113, "TCP"),  # the edge's sidecars: nginx's and its log's metrics
    ("prometheus", "edge", 3903, "TCP"),
    *{("server", *dns) for dns in DNS},
    ("server", "database", 5432, "TCP"),
    ("server", "cache", 6379, "TCP"),
    *{("server", target, 443, "TCP") for target in HTTPS_ANYWHERE},
    # migrations: the database, nothing else
    *{("migrate", *dns) for dns in DNS},
    ("migrate", "database", 5432, "TCP"),
    # the cluster autoscaler: the Kubernetes and AWS APIs; scraped
    *{("cluster-autoscaler", *dns) for dns in DNS},
    *{("cluster-autoscaler", target, 443, "TCP") for target in HTTPS_ANYWHERE},
    # the secrets operator: the Kubernetes API and Secrets Manager; its webhook called
    *{("external-secrets", *dns) for dns in DNS},
    *{("external-secrets", target, 443, "TCP") for target in HTTPS_ANYWHERE},
    *{(source, "external-secrets", 10250, "TCP") for source in PRIVATE_SUBNET_SOURCES},
    # the backups: S3, STS and ElastiCache over HTTPS; the PostgreSQL dump the database too;
    # the restore test's servers run in its own pod. Nothing reaches them.
    *{(job, *dns) for job in BACKUP_JOBS for dns in DNS},
    *{(job, target, 443, "TCP") for job in BACKUP_JOBS for target in HTTPS_ANYWHERE},
    ("backup-postgres", "database", 5432, "TCP"),
    # Prometheus: its scrape targets and the API server (discovery, the kubelets through its
    # node proxy); nothing reaches it yet (Grafana, with its own egress allowance, will)
    *{("prometheus", *dns) for dns in DNS},
    ("prometheus", "api-server", 443, "TCP"),
    ("prometheus", "api-service", 443, "TCP"),
    ("prometheus", "kube-state-metrics", 8080, "TCP"),
    # kube-state-metrics: the API server; scraped by Prometheus (above), its telemetry by none
    *{("kube-state-metrics", *dns) for dns in DNS},
    ("kube-state-metrics", "api-server", 443, "TCP"),
    ("kube-state-metrics", "api-service", 443, "TCP"),
    # Alertmanager: asked by Prometheus only; out to the SMTP relay (587) and the webhooks
    ("prometheus", "alertmanager", 9093, "TCP"),
    *{("alertmanager", *dns) for dns in DNS},
    *{("alertmanager", target, 443, "TCP") for target in HTTPS_ANYWHERE},
    ("alertmanager", "internet", 587, "TCP"),
    # the blackbox exporter: asked by Prometheus only; probes the public site (HTTPS) and the
    # edge's and server's health endpoints
    ("prometheus", "blackbox-exporter", 9115, "TCP"),
    *{("blackbox-exporter", *dns) for dns in DNS},
    *{("blackbox-exporter", target, 443, "TCP") for target in HTTPS_ANYWHERE},
    ("blackbox-exporter", "edge", 8080, "TCP"),
    ("blackbox-exporter", "server", 8000, "TCP"),
    # Grafana: Prometheus only; no pod reaches it (operators port-forward)
    *{("grafana", *dns) for dns in DNS},
    ("grafana", "prometheus", 9090, "TCP"),
    # node-exporter (host network, the node's address): of our pods only Prometheus reaches it,
    # through the nodes' subnets on 9100; NetworkPolicies cannot isolate it, the nodes' cluster
    # security group does (its members only)
    ("prometheus", "node-exporter", 9100, "TCP"),
    # the database exporters (in the app's namespace): scraped by Prometheus only, out to their
    # data store only; the monitoring role's Job: the database only, nothing reaches it
    ("prometheus", "postgres-exporter", 9187, "TCP"),
    *{("postgres-exporter", *dns) for dns in DNS},
    ("postgres-exporter", "database", 5432, "TCP"),
    ("prometheus", "redis-exporter", 9121, "TCP"),
    *{("redis-exporter", *dns) for dns in DNS},
    ("redis-exporter", "cache", 6379, "TCP"),
    *{("postgres-monitor-role", *dns) for dns in DNS},
    ("postgres-monitor-role", "database", 5432, "TCP"),
}


def test_reachability_matrix_is_exactly_the_intended_one(
    plan: Plan, documents: list[dict[str, Any]], stack_settings: dict[str, StackSettings]
) -> None:
    everyone = endpoints(documents, stack_settings[plan.stack])
    assert set(everyone) >= OURS, sorted(everyone)
    policies = Policies.from_documents(documents)
    allowed = {
        (source, target, port, protocol)
        for source in everyone
        for target in everyone
        if source != target and (source in OURS or target in OURS)
        for port, protocol in PORTS[target]
        if policies.allows(everyone[source], everyone[target], port, protocol)
    }
    assert allowed - INTENDED == set(), "more is reachable than intended"
    assert INTENDED - allowed == set(), "something needed is blocked"


def test_every_namespace_we_create_denies_by_default(documents: list[dict[str, Any]]) -> None:
    namespaces = {d["metadata"]["name"] for d in documents if d["kind"] == "Namespace"}
    denying = {
        d["metadata"]["namespace"]
        for d in documents
        if d["kind"] == "NetworkPolicy"
        and not d["spec"]["podSelector"].get("matchLabels")
        and set(d["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not d["spec"].get("ingress")
        and not d["spec"].get("egress")
    }
    assert namespaces and namespaces <= denying


def test_every_workload_is_selected_by_a_policy(documents: list[dict[str, Any]]) -> None:
    policies = [d for d in documents if d["kind"] == "NetworkPolicy"]
    workloads = [d for d in documents if d["kind"] in WORKLOAD_KINDS]
    names = {_template(d)["metadata"]["labels"]["app.kubernetes.io/name"] for d in workloads}
    assert {"edge", "server", "migrate", "cluster-autoscaler", *BACKUP_JOBS} <= names, sorted(names)
    for document in workloads:
        labels = _template(document)["metadata"]["labels"]
        named = [
            p for p in policies
            if p["metadata"]["namespace"] == document["metadata"]["namespace"]
            and p["spec"]["podSelector"].get("matchLabels")
            and p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        ]  # fmt: skip
        assert named, f"{document['metadata']['name']} has no allowance of its own"


# --- the model's own semantics ---------------------------------------------------------------


def _policy(namespace: str, selector: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {
        "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": namespace},
        "spec": {"podSelector": {"matchLabels": selector}, **spec},
    }


A = Endpoint("a", "10.0.0.1", "ns", {"app": "a"})
B = Endpoint("b", "10.0.0.2", "ns", {"app": "b"}, {"web": 8080})
OUTSIDE = Endpoint("outside", "52.0.0.1")


def test_model_no_policy_means_open() -> None:
    assert Policies.from_documents([]).allows(A, B, 8080)


def test_model_isolation_needs_a_matching_rule_and_port() -> None:
    ingress = _policy("ns", {"app": "b"}, policyTypes=["Ingress"], ingress=[
        {"from": [{"podSelector": {"matchLabels": {"app": "a"}}}], "ports": [{"port": "web"}]}
    ])  # fmt: skip
    policies = Policies.from_documents([ingress])
    assert policies.allows(A, B, 8080)
    assert not policies.allows(A, B, 9090)
    assert not policies.allows(OUTSIDE, B, 8080)
    assert not policies.allows(Endpoint("c", "10.0.0.3", "other", {"app": "a"}), B, 8080)


def test_model_egress_ip_blocks_and_protocols() -> None:
    egress = _policy("ns", {"app": "a"}, policyTypes=["Egress"], egress=[
        {"to": [{"ipBlock": {"cidr": "52.0.0.0/8", "except": ["52.1.0.0/16"]}}],
         "ports": [{"port": 443, "protocol": "TCP"}]}
    ])  # fmt: skip
    policies = Policies.from_documents([egress])
    assert policies.allows(A, OUTSIDE, 443)
    assert not policies.allows(A, OUTSIDE, 443, "UDP")
    assert not policies.allows(A, Endpoint("x", "52.1.2.3"), 443)
    assert not policies.allows(A, B, 443), "B's address is outside the block"


def test_model_refuses_selectors_it_does_not_model() -> None:
    odd = _policy("ns", {}, policyTypes=["Ingress"])
    odd["spec"]["podSelector"] = {"matchExpressions": [{"key": "app", "operator": "Exists"}]}
    with pytest.raises(ValueError, match="not modelled"):
        Policies.from_documents([odd]).allows(A, B, 8080)


def test_peer_is_pods_or_addresses_on_named_ports() -> None:
    with pytest.raises(ValueError, match="either pods or address blocks"):
        Peer((Port(80),), pods={"a": "b"}, cidrs=("10.0.0.0/8",))
    with pytest.raises(ValueError, match="names its ports"):
        Peer((), cidrs=("10.0.0.0/8",))
    assert Allowance("x", {"a": "b"}).ingress == ()
