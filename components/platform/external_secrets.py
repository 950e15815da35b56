"""``ExternalSecretsOperator``: the External Secrets Operator, which copies secrets from AWS
Secrets Manager into Kubernetes Secrets and keeps them in sync.

Why it exists: RDS manages and rotates the database master password in Secrets Manager. A
password copied into the stack at deploy time would go stale at the first rotation; the
operator re-reads the secret on every refresh interval and updates the Kubernetes Secret, so
the application follows a rotation without a deploy (see ``components.app.workloads``).

Installed from its Helm chart (a third-party controller; version pinned) into its own
``restricted`` namespace, on the system node group, with its CRDs. The operator itself has no
AWS permissions: each ``SecretStore`` authenticates with the token of a service account in its
own namespace, whose IRSA role may read only that namespace's secrets (least privilege per
namespace, instead of one controller role that can read everything).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.lib.kube.namespaces import namespace
from components.lib.kube.network_policies import Allowance, Peer, Port, allow, namespace_baseline
from components.lib.kube.pods import chart_placement, chart_security
from components.lib.naming import Naming

CHART = "external-secrets"
CHART_VERSION = "0.19.2"
REPOSITORY = "https://charts.external-secrets.io"
NAMESPACE = "external-secrets"
WEBHOOK_PORT = 10250
"""The chart's admission webhook container port."""
API_VERSION = "external-secrets.io/v1"
"""API of the ``SecretStore`` and ``ExternalSecret`` objects this chart version serves."""


BUDGET = {"enabled": True, "minAvailable": None, "maxUnavailable": 1}
"""The chart defaults minAvailable to 1; a budget may not set both, so it is cleared."""


def chart_values() -> dict[str, Any]:
    """Values for the chart: CRDs on, every pod restricted and on the system node group."""
    placement = {
        **chart_placement(),
        **chart_security(),
        "resources": {
            "requests": {"cpu": "50m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
    }
    return {
        "installCRDs": True,
        "replicaCount": 2,
        "leaderElect": True,  # two replicas: one reconciles
        "podDisruptionBudget": BUDGET,
        **placement,
        "webhook": {"replicaCount": 2, **placement,
                    "podDisruptionBudget": BUDGET},
        "certController": {**placement},
        # Only namespaced SecretStores: no ClusterSecretStore may read across namespaces.
        "processClusterStore": False,
        "processClusterExternalSecret": False,
    }  # fmt: skip


@dataclass(frozen=True)
class ExternalSecretsOperatorArgs:
    naming: Naming
    cluster_version: str
    kubernetes: k8s.Provider
    control_plane_cidrs: tuple[str, ...] = ()
    """Subnets of the EKS control plane's network interfaces: the API server calls the
    operator's admission webhook from there."""
    depends_on: Sequence[pulumi.Resource] = ()
    """The node groups its pods schedule on."""


class ExternalSecretsOperator(pulumi.ComponentResource):
    """The operator's namespace and chart; ``ready`` is what SecretStores must wait for."""

    ready: Sequence[pulumi.Resource]

    def __init__(
        self,
        name: str,
        args: ExternalSecretsOperatorArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("exposcholar:cluster:ExternalSecretsOperator", name, None, opts)
        ns = namespace(
            f"{name}-namespace",
            name=NAMESPACE,
            cluster_version=args.cluster_version,
            naming=args.naming,
            component="secrets",
            parent=self,
            provider=args.kubernetes,
            depends_on=args.depends_on,
        )
        policy_opts: dict[str, Any] = {
            "namespace": NAMESPACE, "naming": args.naming, "parent": self,
            "provider": args.kubernetes, "depends_on": [ns],
        }  # fmt: skip
        namespace_baseline(f"{name}-netpol", **policy_opts)
        allow(
            f"{name}-netpol-operator",
            Allowance(
                "operator",
                {},
                ingress=(Peer((Port(WEBHOOK_PORT),), cidrs=args.control_plane_cidrs),),
                # the Kubernetes API, STS and Secrets Manager, over HTTPS
                egress=(Peer.https_anywhere(),),
            ),
            **policy_opts,
        )
        chart = k8s.helm.v4.Chart(
            f"{name}-chart",
            chart=CHART,
            version=CHART_VERSION,
            repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo=REPOSITORY),
            namespace=NAMESPACE,
            values=chart_values(),
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.kubernetes, depends_on=[ns, *args.depends_on]
            ),
        )
        self.ready = [chart]
        self.register_outputs({})
