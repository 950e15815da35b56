"""``Monitoring``: the cluster objects that run Prometheus and its core scrape targets.

Creates the ``monitoring`` namespace (Pod Security ``restricted``) and the ``node-exporter``
namespace (``privileged``: node-exporter reads the host; the exemption and its reason are
recorded in ``components.lib.kube.namespaces.PRIVILEGED_NAMESPACES`` and in the policy pack's
``k8s-namespace-pss.exempt``), each with the default-deny baseline. The names are the ones
``prometheus.yml`` discovers targets in (``components.monitoring.prometheus``), so they are
fixed, not derived. In ``monitoring``:

* Prometheus: a one-replica StatefulSet on the system pool with a gp3 volume (retention and
  size from the ``prometheus*`` settings), its ``prometheus.yml`` and rule files in one
  ConfigMap built by the functions the preview's ``monitoring`` stage uses, their checksum on
  the pod template (a change rolls it), a read-only ClusterRole for discovery, the API server's
  ``/metrics`` and the kubelets through the API server's node proxy, and its Service;
* kube-state-metrics: a Deployment reporting only the resources its ClusterRole may list and
  watch, and Service ``kube-state-metrics`` (port ``http-metrics``, 8080).

In ``node-exporter``: node-exporter's DaemonSet (``components.monitoring.node_exporter``: one
pod on every node, host PID and network, read-only ``/proc``, ``/sys`` and ``/``; the policy
pack accepts that only there and only for such a node agent, ``policies/rules/node_agents.py``),
its ServiceAccount (no token, no role) and Service ``node-exporter`` (port ``metrics``, 9100).

NetworkPolicies: Prometheus reaches only its scrape targets and the API server, and only
Grafana reaches it; kube-state-metrics and node-exporter admit only Prometheus. node-exporter
runs in the host's network namespace, so its address is the node's: the VPC CNI's policy agent
neither enforces policies on such pods nor resolves them as pod peers, so Prometheus reaches
them through the nodes' subnets (``node_cidrs``) on 9100 only, and what guards the port is the
cluster security group the nodes share (EKS's rule admits traffic from its own members only:
the nodes and their pods; no node has a public address). The node-exporter policy stays, for
the coverage check and for a CNI that does enforce on host-network pods.

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
from components.lib.kube.pods import CHECKSUM_ANNOTATION, checksum
from components.lib.naming import Naming
from components.monitoring import monitoring_workloads as pods
from components.monitoring import node_exporter
from components.monitoring.exporters import (
    POSTGRES_EXPORTER,
    POSTGRES_EXPORTER_PORT,
    REDIS_EXPORTER,
    REDIS_EXPORTER_PORT,
)
from components.monitoring.prometheus import (
    APP_NAMESPACE,
    BLACKBOX_PORT,
    EDGE_LOG_METRICS_PORT,
    EDGE_NGINX_METRICS_PORT,
    MONITORING_NAMESPACE,
    NODE_EXPORTER_NAMESPACE,
    render_prometheus,
)
from components.monitoring.render import rule_files
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
}
"""Pods of the other monitoring components (``app.kubernetes.io/name``) Prometheus scrapes in
``monitoring``, with their metrics ports (the numbers ``prometheus.yml``'s Services name)."""
STORAGE_CLASS = "gp3"
"""The cluster's default StorageClass (``components.eks.addons``): encrypted gp3."""
PROMETHEUS_RULES: tuple[k8s.rbac.v1.PolicyRuleArgs, ...] = (
    k8s.rbac.v1.PolicyRuleArgs(
        api_groups=[""],
        resources=["nodes", "nodes/proxy", "services", "endpoints", "pods"],
        verbs=["get", "list", "watch"],
    ),
    k8s.rbac.v1.PolicyRuleArgs(non_resource_urls=["/metrics"], verbs=["get"]),
)
"""Prometheus's discovery (nodes, and the endpoints, Services and pods of its jobs), the
kubelets and cAdvisor through the API server's node proxy (``nodes/proxy``), and the API
server's own ``/metrics``: read-only, nothing else."""
KUBE_STATE_METRICS_GROUPS = {
    "": ("namespaces", "nodes", "persistentvolumeclaims", "persistentvolumes", "pods"),
    "apps": ("daemonsets", "deployments", "replicasets", "statefulsets"),
    "batch": ("cronjobs", "jobs"),
    "autoscaling": ("horizontalpodautoscalers",),
    "policy": ("poddisruptionbudgets",),
}
"""API group to the resources kube-state-metrics lists and watches: exactly its
``--resources`` (``monitoring_workloads.KUBE_STATE_METRICS_RESOURCES``)."""
APP_TARGETS = {
    "server": (METRICS_PORT,),
    "edge": (EDGE_NGINX_METRICS_PORT[1], EDGE_LOG_METRICS_PORT[1]),
    POSTGRES_EXPORTER: (POSTGRES_EXPORTER_PORT,),
    REDIS_EXPORTER: (REDIS_EXPORTER_PORT,),
}
"""Pods Prometheus scrapes in the application's namespace: the server and the edge (the
``django`` and ``edge-*`` jobs), and the database exporters, which run there beside the
database credentials, on the nodes the data stores admit (``exporters``)."""


@dataclass(frozen=True)
class MonitoringArgs:
    settings: StackSettings
    """The stack's settings: Prometheus's configuration and rules are rendered from them."""
    naming: Naming
    """Names and labels of the stack."""
    kubernetes: k8s.Provider
    """The cluster's provider."""
    api_server_cidrs: tuple[str, ...]
    """Where the API server is: its endpoints (the control plane's network interfaces, in the
    private subnets) and the ``kubernetes`` Service's address (``KUBERNETES_SERVICE_IP``/32),
    which in-cluster clients dial and the VPC CNI's policy agent judges before translating it
    (the Service has no selector, so the agent cannot map it to the endpoints). Prometheus and
    kube-state-metrics reach it there on 443, nowhere else."""
    node_cidrs: tuple[str, ...]
    """Where the nodes are (the private subnets of the node groups): node-exporter listens on
    each node's own address (host network), which Prometheus reaches there on 9100 only."""


class Monitoring(Component):
    """Prometheus and its core targets on the cluster, in namespaces of their own
    (``depends_on``: the nodes and add-ons, like every cluster component)."""

    TYPE = "exposcholar:monitoring:Monitoring"

    namespace: pulumi.Output[str]
    """The ``monitoring`` namespace's name, known once the namespace exists."""
    config_checksum: str
    """SHA-256 of Prometheus's configuration and rules (on its pod template: a change of
    them rolls the StatefulSet)."""

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
        in_node_exporter = self.child_opts(
            provider=args.kubernetes, depends_on=[namespaces[NODE_EXPORTER_NAMESPACE]]
        )
        _network_policies(name, args, in_monitoring, in_node_exporter)
        self.config_checksum = _prometheus(name, args, in_monitoring)
        _kube_state_metrics(name, args, in_monitoring)
        _node_exporter(name, args, in_node_exporter)
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
        # node-exporter's pods have the node's address (host network): a CNI that leaves them
        # out of pod peers, as the VPC CNI's does, still lets Prometheus reach them here
        Peer((Port(NODE_EXPORTER_PORT),), cidrs=args.node_cidrs),
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


def _meta(
    name: str, part: str, naming: Naming, namespace: str | None = MONITORING_NAMESPACE
) -> k8s.meta.v1.ObjectMetaArgs:
    return k8s.meta.v1.ObjectMetaArgs(
        name=name, namespace=namespace, labels=naming.k8s_labels(part, COMPONENT)
    )


def _service_account_with_role(
    name: str,
    part: str,
    rules: list[k8s.rbac.v1.PolicyRuleArgs],
    *,
    args: MonitoringArgs,
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.ServiceAccount:
    """ServiceAccount ``part`` (no token unless the pod asks for it), the ClusterRole of the
    same name with ``rules``, and the binding of the two."""
    naming = args.naming
    account = k8s.core.v1.ServiceAccount(
        f"{name}-service-account",
        metadata=_meta(part, part, naming),
        automount_service_account_token=False,
        opts=opts,
    )
    cluster_name = f"{MONITORING_NAMESPACE}-{part}"
    role = k8s.rbac.v1.ClusterRole(
        f"{name}-cluster-role",
        metadata=_meta(cluster_name, part, naming, None),
        rules=rules,
        opts=opts,
    )
    k8s.rbac.v1.ClusterRoleBinding(
        f"{name}-cluster-role-binding",
        metadata=_meta(cluster_name, part, naming, None),
        role_ref=k8s.rbac.v1.RoleRefArgs(
            api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=cluster_name
        ),
        subjects=[
            k8s.rbac.v1.SubjectArgs(
                kind="ServiceAccount", name=part, namespace=MONITORING_NAMESPACE
            )
        ],
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[role, account])),
    )
    return account


def prometheus_files(settings: StackSettings) -> dict[str, str]:
    """``prometheus.yml`` and ``rules/<name>``: the very files the preview renders
    (``render.render_all``), by the same path."""
    rules = rule_files(settings)
    return {"prometheus.yml": render_prometheus(settings, sorted(rules)), **rules}


def config_map_key(path: str) -> str:
    """A ConfigMap key for a file's path (keys cannot hold ``/``): ``rules/x.yml`` is
    ``rules_x.yml``; the volume's items put each back at its path."""
    return path.replace("/", "_")


def _prometheus(name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions) -> str:
    """Prometheus's ServiceAccount and RBAC, its configuration and rules (one ConfigMap), its
    Service and its StatefulSet with a gp3 volume; returns the configuration's checksum."""
    naming = args.naming
    settings = args.settings.prometheus
    files = prometheus_files(args.settings)
    digest = checksum(files)
    prefix = f"{name}-prometheus"
    account = _service_account_with_role(
        prefix, PROMETHEUS, list(PROMETHEUS_RULES), args=args, opts=opts
    )
    config = k8s.core.v1.ConfigMap(
        f"{prefix}-config",
        metadata=_meta(f"{PROMETHEUS}-config", PROMETHEUS, naming),
        data={config_map_key(path): text for path, text in files.items()},
        immutable=False,
        opts=opts,
    )
    selector = naming.k8s_selector(PROMETHEUS)
    service = k8s.core.v1.Service(
        f"{prefix}-service",
        metadata=_meta(PROMETHEUS, PROMETHEUS, naming),
        spec=k8s.core.v1.ServiceSpecArgs(
            type="ClusterIP",
            selector=selector,
            ports=[
                k8s.core.v1.ServicePortArgs(
                    name="http", port=PROMETHEUS_PORT, target_port="http", protocol="TCP"
                )
            ],
        ),
        opts=opts,
    )
    pod = pods.prometheus_pod(
        service_account=account.metadata.name,
        config_map=config.metadata.name,
        config_items=[
            k8s.core.v1.KeyToPathArgs(key=config_map_key(path), path=path) for path in sorted(files)
        ],
        retention_days=settings.retention_days,
        retention_size_gb=settings.retention_size_gb,
        compute=k8s.core.v1.ResourceRequirementsArgs(
            requests=settings.resources.requests(), limits=settings.resources.limits()
        ),
        port=PROMETHEUS_PORT,
    )
    k8s.apps.v1.StatefulSet(
        f"{prefix}-statefulset",
        metadata=_meta(PROMETHEUS, PROMETHEUS, naming),
        spec=k8s.apps.v1.StatefulSetSpecArgs(
            replicas=1,
            service_name=service.metadata.name,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
            pod_management_policy="OrderedReady",
            update_strategy=k8s.apps.v1.StatefulSetUpdateStrategyArgs(type="RollingUpdate"),
            # the volume outlives the StatefulSet: deleting it does not delete the history
            persistent_volume_claim_retention_policy=(
                k8s.apps.v1.StatefulSetPersistentVolumeClaimRetentionPolicyArgs(
                    when_deleted="Retain", when_scaled="Retain"
                )
            ),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    labels=naming.k8s_labels(PROMETHEUS, COMPONENT),
                    annotations={CHECKSUM_ANNOTATION: digest},
                ),
                spec=pod,
            ),
            volume_claim_templates=[
                k8s.core.v1.PersistentVolumeClaimArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(name="data"),
                    spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                        access_modes=["ReadWriteOnce"],
                        storage_class_name=STORAGE_CLASS,
                        resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                            requests={"storage": f"{settings.storage_gb}Gi"}
                        ),
                    ),
                )
            ],
        ),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[config])),
    )
    return digest


def _kube_state_metrics(name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions) -> None:
    """kube-state-metrics: ServiceAccount, list/watch ClusterRole, Deployment, Service."""
    naming = args.naming
    prefix = f"{name}-kube-state-metrics"
    rules = [
        k8s.rbac.v1.PolicyRuleArgs(
            api_groups=[group], resources=list(resources), verbs=["list", "watch"]
        )
        for group, resources in KUBE_STATE_METRICS_GROUPS.items()
    ]
    account = _service_account_with_role(prefix, KUBE_STATE_METRICS, rules, args=args, opts=opts)
    selector = naming.k8s_selector(KUBE_STATE_METRICS)
    k8s.apps.v1.Deployment(
        f"{prefix}-deployment",
        metadata=_meta(KUBE_STATE_METRICS, KUBE_STATE_METRICS, naming),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            replicas=1,
            revision_history_limit=5,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    labels=naming.k8s_labels(KUBE_STATE_METRICS, COMPONENT)
                ),
                spec=pods.kube_state_metrics_pod(
                    service_account=account.metadata.name,
                    port=KUBE_STATE_METRICS_PORT,
                    compute=pods.resources("50m", "128Mi", "200m", "256Mi"),
                ),
            ),
        ),
        opts=opts,
    )
    _metrics_service(
        f"{prefix}-service",
        KUBE_STATE_METRICS,
        port_name="http-metrics",
        port=KUBE_STATE_METRICS_PORT,
        namespace=MONITORING_NAMESPACE,
        naming=naming,
        opts=opts,
    )


def _node_exporter(name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions) -> None:
    """node-exporter in its namespace: a ServiceAccount of its own (no token, bound to no role:
    it never calls the Kubernetes API), the DaemonSet on every node, and the Service whose
    endpoints Prometheus discovers."""
    naming = args.naming
    prefix = f"{name}-node-exporter"
    account = k8s.core.v1.ServiceAccount(
        f"{prefix}-service-account",
        metadata=_meta(NODE_EXPORTER, NODE_EXPORTER, naming, NODE_EXPORTER_NAMESPACE),
        automount_service_account_token=False,
        opts=opts,
    )
    selector = naming.k8s_selector(NODE_EXPORTER)
    k8s.apps.v1.DaemonSet(
        f"{prefix}-daemonset",
        metadata=_meta(NODE_EXPORTER, NODE_EXPORTER, naming, NODE_EXPORTER_NAMESPACE),
        spec=k8s.apps.v1.DaemonSetSpecArgs(
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
            revision_history_limit=5,
            # one node at a time; no surge: the new pod would need the port the old one holds
            update_strategy=k8s.apps.v1.DaemonSetUpdateStrategyArgs(
                type="RollingUpdate",
                rolling_update=k8s.apps.v1.RollingUpdateDaemonSetArgs(
                    max_unavailable=1, max_surge=0
                ),
            ),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    labels=naming.k8s_labels(NODE_EXPORTER, COMPONENT)
                ),
                spec=node_exporter.node_exporter_pod(
                    service_account=account.metadata.name,
                    port=NODE_EXPORTER_PORT,
                    compute=pods.resources("25m", "48Mi", "250m", "128Mi"),
                ),
            ),
        ),
        opts=opts,
    )
    _metrics_service(
        f"{name}-node-exporter-service",
        NODE_EXPORTER,
        port_name=node_exporter.PORT_NAME,
        port=NODE_EXPORTER_PORT,
        namespace=NODE_EXPORTER_NAMESPACE,
        naming=args.naming,
        opts=opts,
    )


def _metrics_service(
    resource_name: str,
    part: str,
    *,
    port_name: str,
    port: int,
    namespace: str,
    naming: Naming,
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.Service:
    """The Service ``prometheus.yml`` discovers ``part``'s endpoints through (its port name
    and number are the ones the scrape job keeps)."""
    return k8s.core.v1.Service(
        resource_name,
        metadata=_meta(part, part, naming, namespace),
        spec=k8s.core.v1.ServiceSpecArgs(
            type="ClusterIP",
            selector=naming.k8s_selector(part),
            ports=[
                k8s.core.v1.ServicePortArgs(
                    name=port_name, port=port, target_port=port_name, protocol="TCP"
                )
            ],
        ),
        opts=opts,
    )
