"""``ClusterAutoscaler``: the Kubernetes cluster autoscaler, as explicit Kubernetes objects (no
Helm chart), and the IAM role it calls AWS with.

An IRSA role that may resize only this cluster's Auto Scaling groups (``iam_policy``), a
ServiceAccount, RBAC limited to what the autoscaler uses (``cluster_rules``,
``namespace_rules``), a one-replica Deployment on the system node group, its NetworkPolicy and,
optionally, a VPA. The image's minor version must match the cluster's (``RELEASES``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.lib.component import Component
from components.lib.irsa import OidcIssuer, irsa_role
from components.lib.kube import pods
from components.lib.kube.network_policies import Allowance, Peer, allow
from components.lib.kube.vpa import mode_for, vertical_autoscaler
from components.lib.naming import Naming
from components.platform.vpa import VerticalPodAutoscaler

COMPONENT = "autoscaler"
NAME = "cluster-autoscaler"
"""Name of every Kubernetes object, of the leader-election Lease, and the IRSA subject's SA."""
NAMESPACE = "kube-system"
IMAGE = "registry.k8s.io/autoscaling/cluster-autoscaler"
RELEASES: Mapping[str, str] = {
    "1.30": "v1.30.4",
    "1.31": "v1.31.1",
    "1.32": "v1.32.3",
    "1.33": "v1.33.1",
}
"""Cluster minor version -> the upstream cluster-autoscaler release of that same minor. The
autoscaler embeds the scheduler of its minor, and its simulation is only right against a control
plane of the same minor: a cluster version with no entry stops the program (``image_tag``)
instead of running a mismatched autoscaler. Upgrading the cluster adds its minor here in the
same change."""
UID = 65534
"""``nobody``: the user the upstream image runs as."""
PORT = 8085
"""Metrics (``/metrics``) and health (``/health-check``) port of the autoscaler."""
STATUS_CONFIGMAP = "cluster-autoscaler-status"
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
DISCOVERY_TAG = "k8s.io/cluster-autoscaler/enabled"

READ_ACTIONS = (
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeLaunchConfigurations",
    "autoscaling:DescribeScalingActivities",
    "autoscaling:DescribeTags",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:GetInstanceTypesFromInstanceRequirements",
    "eks:DescribeNodegroup",
)
"""Discovery and node-template simulation: read-only, and none of them takes a resource ARN
the autoscaler could know in advance, hence ``Resource: *``."""
SCALE_ACTIONS = (
    "autoscaling:SetDesiredCapacity",
    "autoscaling:TerminateInstanceInAutoScalingGroup",
)
"""The only calls that change anything: allowed on this cluster's groups only."""

rbac = k8s.rbac.v1
core = k8s.core.v1


def owner_tag(cluster_name: str) -> str:
    """``k8s.io/cluster-autoscaler/<cluster>``: set to ``owned`` on the cluster's groups."""
    return f"k8s.io/cluster-autoscaler/{cluster_name}"


def image_tag(cluster_version: str) -> str:
    """The autoscaler release for a cluster minor version (``"1.33"`` -> ``"v1.33.1"``)."""
    try:
        return RELEASES[cluster_version]
    except KeyError:
        known = ", ".join(sorted(RELEASES, key=lambda v: tuple(map(int, v.split(".")))))
        raise ValueError(
            f"no cluster-autoscaler release is pinned for Kubernetes {cluster_version!r}; "
            f"known versions: {known}. Add the matching release to "
            "components.platform.autoscaler.RELEASES: the autoscaler must match the cluster's minor"
        ) from None


def image(cluster_version: str) -> str:
    return f"{IMAGE}:{image_tag(cluster_version)}"


def command(cluster_name: str) -> list[str]:
    """The autoscaler's command line for the cluster named ``cluster_name``."""
    return [
        "/cluster-autoscaler",
        "--cloud-provider=aws",
        # Only Auto Scaling groups carrying both tags: this cluster's managed node groups.
        f"--node-group-auto-discovery=asg:tag={DISCOVERY_TAG},{owner_tag(cluster_name)}",
        # Node groups of the same shape in different zones grow together, keeping zones even.
        "--balance-similar-node-groups",
        "--expander=least-waste",
        # kube-system pods (add-ons) and emptyDir volumes do not pin a node forever; PDBs and
        # safe-to-evict annotations still protect what must not move.
        "--skip-nodes-with-system-pods=false",
        "--skip-nodes-with-local-storage=false",
        "--stderrthreshold=info",
        "--v=4",
    ]


def iam_policy(cluster_name: str) -> str:
    """The autoscaler role's inline policy (pure: tested directly): the read-only calls on
    ``*``, and the two mutating ones only on Auto Scaling groups tagged ``owner_tag`` =
    ``owned``. EKS puts that tag (and ``DISCOVERY_TAG``) on the Auto Scaling group of every
    managed node group of the cluster, and ``NodeGroup`` sets the same pair on the node groups,
    so the role can resize this cluster's groups and no one else's."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "DiscoverAndSimulate",
            "Effect": "Allow",
            "Action": list(READ_ACTIONS),
            "Resource": "*",
        },
        {
            "Sid": "ScaleOnlyThisClustersGroups",
            "Effect": "Allow",
            "Action": list(SCALE_ACTIONS),
            "Resource": "*",
            "Condition": {"StringEquals": {f"aws:ResourceTag/{owner_tag(cluster_name)}": "owned"}},
        },
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _rule(
    groups: Sequence[str],
    resources: Sequence[str],
    verbs: Sequence[str],
    names: Sequence[str] = (),
) -> k8s.rbac.v1.PolicyRuleArgs:
    return rbac.PolicyRuleArgs(
        api_groups=list(groups),
        resources=list(resources),
        verbs=list(verbs),
        resource_names=list(names) or None,
    )


READ = ("get", "list", "watch")


def cluster_rules() -> list[k8s.rbac.v1.PolicyRuleArgs]:
    """What the upstream autoscaler uses across the cluster: reads of what the scheduler
    simulation and the drain checks look at, and its few writes (events; ``nodes`` update for
    its scale-down taints; evictions and ``pods/status`` when it drains a node). No wildcard, no
    Secrets, nothing in ``extensions`` (no longer served), no ``endpoints`` (the leader lock is
    a Lease), and no ``patch`` on Jobs (upstream's example grants it; the autoscaler never uses
    it)."""
    return [
        _rule([""], ["events"], ["create", "patch"]),
        _rule([""], ["pods/eviction"], ["create"]),
        _rule([""], ["pods/status"], ["update"]),
        _rule([""], ["nodes"], [*READ, "update"]),
        _rule(
            [""],
            [
                "namespaces",
                "pods",
                "services",
                "replicationcontrollers",
                "persistentvolumeclaims",
                "persistentvolumes",
            ],
            READ,
        ),
        _rule(["apps"], ["daemonsets", "replicasets", "statefulsets"], READ),
        _rule(["batch"], ["jobs"], READ),
        _rule(["policy"], ["poddisruptionbudgets"], ["list", "watch"]),
        _rule(
            ["storage.k8s.io"],
            [
                "storageclasses",
                "csinodes",
                "csidrivers",
                "csistoragecapacities",
                "volumeattachments",
            ],
            READ,
        ),
        _rule(["resource.k8s.io"], ["deviceclasses", "resourceclaims", "resourceslices"], READ),
    ]


def namespace_rules() -> list[k8s.rbac.v1.PolicyRuleArgs]:
    """What the autoscaler needs in its own namespace: its Lease and its status ConfigMap, each
    by name (``create`` cannot be limited by name, so it is granted on its own). Upstream's
    ``list``/``watch`` on ConfigMaps serve only the priority expander, not used here."""
    return [
        _rule(["coordination.k8s.io"], ["leases"], ["create"]),
        _rule(["coordination.k8s.io"], ["leases"], ["get", "update"], [NAME]),
        _rule([""], ["configmaps"], ["create"]),
        _rule([""], ["configmaps"], ["get", "update", "delete"], [STATUS_CONFIGMAP]),
    ]


@dataclass(frozen=True)
class ClusterAutoscalerArgs:
    cluster_name: str
    """Physical EKS cluster name: the discovery and ownership tags are spelled with it."""
    cluster_version: str
    """The cluster's minor version (``"1.33"``): picks the autoscaler release."""
    oidc: OidcIssuer
    """The cluster's OIDC issuer, for the autoscaler's IRSA role."""
    naming: Naming
    """Names, tags and labels of the stack."""
    kubernetes: k8s.Provider
    """The cluster's provider."""
    vertical_scaling: bool = True
    """Give the autoscaler a VPA in ``Auto`` mode (no HPA scales it); the VPA component must
    then be in this component's ``depends_on`` (its CRD)."""


class ClusterAutoscaler(Component):
    """The cluster autoscaler: IRSA role, ServiceAccount, RBAC and Deployment (``depends_on``:
    the node groups, so its pod has a node and is removed before them; and the VPA component
    when ``vertical_scaling``)."""

    TYPE = "exposcholar:cluster:ClusterAutoscaler"

    role_arn: pulumi.Output[str]
    """The autoscaler's IRSA role."""

    def __init__(
        self, name: str, args: ClusterAutoscalerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        tag = image_tag(args.cluster_version)  # an unknown version fails before anything exists
        super().__init__(name, opts)
        if args.vertical_scaling:
            self.require(VerticalPodAutoscaler, "its VerticalPodAutoscaler object is its kind")
        naming = args.naming
        labels = naming.k8s_labels(NAME, COMPONENT, version=tag)
        selector = naming.k8s_selector(NAME)
        on_cluster = self.child_opts(provider=args.kubernetes)

        def metadata(
            namespaced: bool = True, annotations: Mapping[str, pulumi.Input[str]] | None = None
        ) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(
                name=NAME,
                namespace=NAMESPACE if namespaced else None,
                labels=labels,
                annotations=dict(annotations) if annotations else None,
            )

        irsa = irsa_role(
            f"{name}-irsa",
            opts=self.child_opts(),
            oidc=args.oidc,
            namespace=NAMESPACE,
            service_account=NAME,
            role_name=naming.physical(COMPONENT, NAME, max_length=64),
            tags=naming.tags(COMPONENT, NAME),
            inline_policy=iam_policy(args.cluster_name),
        )
        self.role_arn = irsa.arn
        service_account = core.ServiceAccount(
            f"{name}-service-account",
            metadata=metadata(annotations={"eks.amazonaws.com/role-arn": irsa.arn}),
            # it watches the API server with this token; EKS projects the IRSA token separately
            automount_service_account_token=True,
            opts=on_cluster,
        )
        subject = rbac.SubjectArgs(kind="ServiceAccount", name=NAME, namespace=NAMESPACE)
        cluster_role = rbac.ClusterRole(
            f"{name}-cluster-role",
            metadata=metadata(namespaced=False),
            rules=cluster_rules(),
            opts=on_cluster,
        )
        cluster_binding = rbac.ClusterRoleBinding(
            f"{name}-cluster-role-binding",
            metadata=metadata(namespaced=False),
            role_ref=rbac.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=NAME
            ),
            subjects=[subject],
            opts=self.child_opts(provider=args.kubernetes, depends_on=[cluster_role]),
        )
        role = rbac.Role(
            f"{name}-role",
            metadata=metadata(),
            rules=namespace_rules(),
            opts=on_cluster,
        )
        binding = rbac.RoleBinding(
            f"{name}-role-binding",
            metadata=metadata(),
            role_ref=rbac.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="Role", name=NAME
            ),
            subjects=[subject],
            opts=self.child_opts(provider=args.kubernetes, depends_on=[role]),
        )
        node_selector, tolerations = pods.system_pool()
        health = core.HTTPGetActionArgs(path="/health-check", port=PORT)
        resources = {"cpu": "100m", "memory": "600Mi"}
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=metadata(),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=1,  # leader election makes more pointless
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                template=core.PodTemplateSpecArgs(
                    # safe-to-evict "false": the autoscaler never evicts itself
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=labels, annotations={SAFE_TO_EVICT: "false"}
                    ),
                    spec=core.PodSpecArgs(
                        service_account_name=NAME,
                        automount_service_account_token=True,
                        priority_class_name="system-cluster-critical",
                        node_selector=node_selector,
                        tolerations=tolerations,
                        security_context=pods.pod_security_context(uid=UID),
                        containers=[
                            core.ContainerArgs(
                                name=NAME,
                                image=f"{IMAGE}:{tag}",
                                image_pull_policy="Always",
                                command=command(args.cluster_name),
                                ports=[
                                    core.ContainerPortArgs(
                                        name="metrics", container_port=PORT, protocol="TCP"
                                    )
                                ],
                                liveness_probe=core.ProbeArgs(
                                    http_get=health,
                                    initial_delay_seconds=30,
                                    period_seconds=10,
                                    timeout_seconds=5,
                                    failure_threshold=3,
                                ),
                                readiness_probe=core.ProbeArgs(
                                    http_get=health, period_seconds=10, timeout_seconds=5
                                ),
                                resources=core.ResourceRequirementsArgs(
                                    requests=resources, limits=resources
                                ),
                                security_context=pods.container_security_context(),
                            )
                        ],
                    ),
                ),
            ),
            opts=self.child_opts(
                provider=args.kubernetes,
                depends_on=[service_account, cluster_binding, binding],
            ),
        )
        allow(
            f"{name}-network-policy",
            Allowance(
                NAME,
                selector,
                ingress=(Peer.monitoring(PORT),),
                # the Kubernetes API and the Auto Scaling / EC2 / EKS APIs, over HTTPS
                egress=(Peer.https_anywhere(),),
            ),
            namespace=NAMESPACE,
            naming=naming,
            opts=on_cluster,
            dns=True,
        )
        if args.vertical_scaling:
            vertical_autoscaler(
                f"{name}-vpa",
                namespace=NAMESPACE,
                target_kind="Deployment",
                target_name=NAME,
                mode=mode_for(scaled_by_hpa_on_resources=False),
                max_allowed={"cpu": "1", "memory": "2Gi"},
                labels=labels,
                opts=self.child_opts(provider=args.kubernetes, depends_on=[deployment]),
            )
        self.register()
