"""``ExternalSecretsOperator``: the External Secrets Operator, which copies secrets from AWS
Secrets Manager into Kubernetes Secrets and keeps them in sync.

RDS rotates the database master password in Secrets Manager: a copy taken at deploy time would
go stale at the first rotation, while the operator re-reads the secret on every refresh, so the
application follows a rotation without a deploy. Installed from its pinned Helm chart, with its
CRDs, into its own ``restricted`` namespace behind default-deny NetworkPolicies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.lib.component import Component
from components.lib.kube.charts import ChartPin, chart
from components.lib.kube.namespaces import namespace
from components.lib.kube.network_policies import Allowance, Peer, Port, allow, namespace_baseline
from components.lib.kube.pods import chart_placement, chart_security
from components.lib.naming import Naming

CHART = ChartPin("external-secrets", "0.19.2", "https://charts.external-secrets.io")
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
        # Only namespaced SecretStores: no ClusterSecretStore may read across namespaces. The
        # operator has no AWS permissions of its own: each SecretStore authenticates as a
        # service account of its namespace, whose IRSA role reads only that namespace's secrets.
        "processClusterStore": False,
        "processClusterExternalSecret": False,
    }  # fmt: skip


@dataclass(frozen=True)
class ExternalSecretsOperatorArgs:
    naming: Naming
    """Names and labels of the stack."""
    cluster_version: str
    """Kubernetes minor version: pins the namespace's Pod Security labels."""
    kubernetes: k8s.Provider
    """The cluster's provider."""
    control_plane_cidrs: tuple[str, ...] = ()
    """Subnets of the EKS control plane's network interfaces: the API server calls the
    operator's admission webhook from there."""


class ExternalSecretsOperator(Component):
    """The operator's namespace, NetworkPolicies and chart (``depends_on``: the nodes and
    add-ons its pods need). Components that declare SecretStores or ExternalSecrets list this
    one in their ``depends_on`` (its CRDs and webhook)."""

    TYPE = "exposcholar:cluster:ExternalSecretsOperator"

    def __init__(
        self,
        name: str,
        args: ExternalSecretsOperatorArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(name, opts)
        on_cluster = self.child_opts(provider=args.kubernetes)
        ns = namespace(
            f"{name}-namespace",
            name=NAMESPACE,
            cluster_version=args.cluster_version,
            naming=args.naming,
            component="secrets",
            opts=on_cluster,
        )
        in_namespace = self.child_opts(provider=args.kubernetes, depends_on=[ns])
        namespace_baseline(
            f"{name}-netpol", namespace=NAMESPACE, naming=args.naming, opts=in_namespace
        )
        allow(
            f"{name}-netpol-operator",
            Allowance(
                "operator",
                {},
                ingress=(Peer((Port(WEBHOOK_PORT),), cidrs=args.control_plane_cidrs),),
                # the Kubernetes API, STS and Secrets Manager, over HTTPS
                egress=(Peer.https_anywhere(),),
            ),
            namespace=NAMESPACE,
            naming=args.naming,
            opts=in_namespace,
        )
        chart(
            f"{name}-chart",
            CHART,
            namespace=NAMESPACE,
            values=chart_values(),
            opts=in_namespace,
        )
        self.register()
