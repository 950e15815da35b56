"""``ClusterAddons``: the EKS managed add-ons whose pods need nodes, and the default
StorageClass.

Add-ons come in two phases: ``BEFORE_COMPUTE`` ones are created by ``Cluster``, since nodes only
turn Ready once the CNI runs; ``AFTER_COMPUTE`` ones (CoreDNS, the EBS CSI driver and
metrics-server, which the HPAs need) here, after the node groups their pods schedule on. Every
version is pinned in settings; add-ons that call AWS get their own IRSA role. The encrypted
``gp3`` StorageClass is made the cluster default.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from pulumi_aws import eks

from components.lib.component import Component
from components.lib.irsa import OidcIssuer, irsa_role
from components.lib.naming import Naming

COMPONENT = "addons"
BEFORE_COMPUTE = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
AFTER_COMPUTE = ("coredns", "aws-ebs-csi-driver", "metrics-server")
IRSA = {
    "vpc-cni": ("aws-node", "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"),
    "aws-ebs-csi-driver": (
        "ebs-csi-controller-sa",
        "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy",
    ),
}
"""Add-ons that call AWS: their kube-system service account and managed policy. Each runs under
its own IRSA role instead of borrowing the node role."""
CONFIGURATION = {
    # The VPC CNI's network policy agent enforces NetworkPolicies (off by default on EKS).
    "vpc-cni": {"enableNetworkPolicy": "true"},
}
"""Add-on configuration values (JSON), for the add-ons that need any."""


def managed_addons(
    name: str,
    *,
    opts: pulumi.ResourceOptions,
    cluster_name: pulumi.Input[str],
    names: Sequence[str],
    versions: Mapping[str, str],
    oidc: OidcIssuer,
    naming: Naming,
) -> list[eks.Addon]:
    """Pinned managed add-ons ``names``, with an IRSA role for those that call AWS."""
    addons = []
    for addon in names:
        role_arn: pulumi.Output[str] | None = None
        if addon in IRSA:
            service_account, policy = IRSA[addon]
            role_arn = irsa_role(
                f"{name}-{addon}-role",
                opts=opts,
                oidc=oidc,
                namespace="kube-system",
                service_account=service_account,
                role_name=naming.physical(COMPONENT, addon, max_length=64),
                tags=naming.tags(COMPONENT, addon),
                managed_policy_arns=[policy],
            ).arn
        addons.append(
            eks.Addon(
                f"{name}-{addon}",
                cluster_name=cluster_name,
                addon_name=addon,
                addon_version=versions[addon],
                service_account_role_arn=role_arn,
                configuration_values=(
                    json.dumps(CONFIGURATION[addon]) if addon in CONFIGURATION else None
                ),
                # conflicts resolve to the configuration in code
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="OVERWRITE",
                tags=naming.tags(COMPONENT, addon),
                opts=opts,
            )
        )
    return addons


@dataclass(frozen=True)
class ClusterAddonsArgs:
    cluster_name: pulumi.Input[str]
    """The cluster's name as an Output (the add-ons wait for the cluster)."""
    versions: Mapping[str, str]
    """Pinned version of every add-on."""
    oidc: OidcIssuer
    """The cluster's OIDC issuer, for the add-ons' IRSA roles."""
    naming: Naming
    """Names and tags of the stack."""
    kubernetes: k8s.Provider
    """The cluster's Kubernetes provider (for the StorageClass)."""


class ClusterAddons(Component):
    """Add-ons that run on nodes, and the default gp3 StorageClass (``depends_on``: the node
    groups the add-ons' pods schedule on)."""

    TYPE = "exposcholar:cluster:ClusterAddons"

    def __init__(
        self, name: str, args: ClusterAddonsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, opts)
        managed_addons(
            name,
            opts=self.child_opts(),
            cluster_name=args.cluster_name,
            names=AFTER_COMPUTE,
            versions=args.versions,
            oidc=args.oidc,
            naming=args.naming,
        )
        k8s.storage.v1.StorageClass(
            f"{name}-gp3",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="gp3",
                annotations={"storageclass.kubernetes.io/is-default-class": "true"},
                labels=args.naming.k8s_labels("gp3", "storage"),
            ),
            provisioner="ebs.csi.aws.com",
            parameters={"type": "gp3", "encrypted": "true", "fsType": "ext4"},
            volume_binding_mode="WaitForFirstConsumer",  # volumes are made in the pod's zone
            reclaim_policy="Delete",
            allow_volume_expansion=True,
            opts=self.child_opts(provider=args.kubernetes),
        )
        self.register()
