"""``Monitoring``: the cluster objects that run Prometheus and its core scrape targets.

Creates the ``monitoring`` namespace (Pod Security ``restricted``) and the ``node-exporter``
namespace (``privileged``, the one exemption recorded in
``components.lib.kube.namespaces.PRIVILEGED_NAMESPACES``: node-exporter reads the host), each
with the default-deny baseline. The namespace names are the ones ``prometheus.yml`` discovers
targets in (``components.monitoring.prometheus``), so they are fixed, not derived.

``namespace`` is what the other monitoring components (Alertmanager, Grafana, the exporters)
run in: they list this component in ``depends_on``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.app.pod_spec import METRICS_PORT
from components.lib.component import Component
from components.lib.kube.namespaces import namespace
from components.lib.kube.network_policies import Allowance, Peer, Port, allow, namespace_baseline
from components.lib.naming import Naming
from components.monitoring.prometheus import (
    APP_NAMESPACE,
    BLACKBOX_PORT,
    EDGE_LOG_METRICS_PORT,
    EDGE_NGINX_METRICS_PORT,
    MONITORING_NAMESPACE,
    NODE_EXPORTER_NAMESPACE,
)
from components.settings import StackSettings

COMPONENT = "monitoring"
PROMETHEUS = "prometheus"
PROMETHEUS_PORT = 9090
KUBE_STATE_METRICS = "kube-state-metrics"
KUBE_STATE_METRICS_PORT = 8080
NODE_EXPORTER = "node-exporter"
NODE_EXPORTER_PORT = 9100
API_SERVER_PORT = 443
MONITORING_TARGETS = {
    "alertmanager": 9093,
    "blackbox-exporter": BLACKBOX_PORT,
    "postgres-exporter": 9187,
    "redis-exporter": 9121,
}
"""Pods of the other monitoring components (``app.kubernetes.io/name``) Prometheus scrapes in
``monitoring``, with their metrics ports (the numbers ``prometheus.yml``'s Services name)."""
APP_TARGETS = {
    "server": (METRICS_PORT,),
    "edge": (EDGE_NGINX_METRICS_PORT[1], EDGE_LOG_METRICS_PORT[1]),
}
"""Application pods Prometheus scrapes directly (the ``django`` and ``edge-*`` jobs)."""


@dataclass(frozen=True)
class MonitoringArgs:
    settings: StackSettings
    """The stack's settings: Prometheus's configuration and rules are rendered from them."""
    naming: Naming
    """Names and labels of the stack."""
    kubernetes: k8s.Provider
    """The cluster's provider."""
    api_server_cidrs: tuple[str, ...]
    """Where the API server's endpoints are (the control plane's network interfaces, in the
    private subnets): Prometheus and kube-state-metrics reach it there on 443, nowhere else."""


class Monitoring(Component):
    """Prometheus, kube-state-metrics and node-exporter on the cluster, in namespaces of
    their own (``depends_on``: the nodes and add-ons, like every cluster component)."""

    TYPE = "exposcholar:monitoring:Monitoring"

    namespace: pulumi.Output[str]
    """The ``monitoring`` namespace's name, known once the namespace exists."""

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, opts)
        on_cluster = self.child_opts(provider=args.kubernetes)
        version = args.settings.cluster.version
        namespaces = {}
        for key, ns_name in (
            ("namespace", MONITORING_NAMESPACE),
            ("node-exporter-namespace", NODE_EXPORTER_NAMESPACE),
        ):
            ns = namespace(
                f"{name}-{key}",
                name=ns_name,
                cluster_version=version,
                naming=args.naming,
                component=COMPONENT,
                opts=on_cluster,
            )
            namespace_baseline(
                f"{name}-{key}-netpol",
                namespace=ns.metadata.name,
                naming=args.naming,
                opts=self.child_opts(provider=args.kubernetes, depends_on=[ns]),
            )
            namespaces[ns_name] = ns
        self.namespace = namespaces[MONITORING_NAMESPACE].metadata.name
        in_monitoring = self.child_opts(
            provider=args.kubernetes, depends_on=[namespaces[MONITORING_NAMESPACE]]
        )
        _network_policies(
            name,
            args,
            in_monitoring,
            self.child_opts(
                provider=args.kubernetes, depends_on=[namespaces[NODE_EXPORTER_NAMESPACE]]
            ),
        )
        self.register()


def _network_policies(
    name: str,
    args: MonitoringArgs,
    in_monitoring: pulumi.ResourceOptions,
    in_node_exporter: pulumi.ResourceOptions,
) -> None:
    """Prometheus reaches its scrape targets and the API server (discovery, the kubelets
    through the API server's node proxy) and nothing else, and is reached only by Grafana;
    kube-state-metrics and node-exporter are reached only by Prometheus."""
    naming = args.naming
    by_name = {"app.kubernetes.io/name": PROMETHEUS}
    api_server = Peer((Port(API_SERVER_PORT),), cidrs=args.api_server_cidrs)
    scrapes = (
        Peer((Port(KUBE_STATE_METRICS_PORT),), pods={"app.kubernetes.io/name": KUBE_STATE_METRICS}),
        Peer(
            (Port(NODE_EXPORTER_PORT),),
            pods={"app.kubernetes.io/name": NODE_EXPORTER},
            namespace=NODE_EXPORTER_NAMESPACE,
        ),
        *(
            Peer((Port(port),), pods={"app.kubernetes.io/name": target})
            for target, port in MONITORING_TARGETS.items()
        ),
        *(
            Peer(
                tuple(Port(p) for p in ports),
                pods={"app.kubernetes.io/name": target},
                namespace=APP_NAMESPACE,
            )
            for target, ports in APP_TARGETS.items()
        ),
    )
    allow(
        f"{name}-netpol-prometheus",
        Allowance(
            PROMETHEUS,
            by_name,
            ingress=(Peer((Port(PROMETHEUS_PORT),), pods={"app.kubernetes.io/name": "grafana"}),),
            egress=(api_server, *scrapes),
        ),
        namespace=MONITORING_NAMESPACE,
        naming=naming,
        opts=in_monitoring,
    )
    allow(
        f"{name}-netpol-kube-state-metrics",
        Allowance(
            KUBE_STATE_METRICS,
            {"app.kubernetes.io/name": KUBE_STATE_METRICS},
            ingress=(Peer((Port(KUBE_STATE_METRICS_PORT),), pods=by_name),),
            egress=(api_server,),
        ),
        namespace=MONITORING_NAMESPACE,
        naming=naming,
        opts=in_monitoring,
    )
    allow(
        f"{name}-netpol-node-exporter",
        Allowance(
            NODE_EXPORTER,
            {"app.kubernetes.io/name": NODE_EXPORTER},
            ingress=(
                Peer((Port(NODE_EXPORTER_PORT),), pods=by_name, namespace=MONITORING_NAMESPACE),
            ),
        ),
        namespace=NODE_EXPORTER_NAMESPACE,
        naming=naming,
        opts=in_node_exporter,
    )
