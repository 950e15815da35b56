"""``Cluster``: the EKS control plane, who may use it, and the identity plumbing for pods.

Creates the cluster (private endpoint, Secrets encrypted with the cluster key, every
control-plane log type kept with bounded retention, deletion protection) with its IAM role; the
access entries of the administrators, viewers and CI roles; the OIDC provider for IRSA
(``lib.irsa``); the node role the node groups share; and the add-ons nodes need to become Ready
(``BEFORE_COMPUTE``). ``kubeconfig`` is a secret that authenticates as the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_aws import eks, iam

from components.eks.addons import BEFORE_COMPUTE, managed_addons
from components.lib.aws import retained_log_group, service_role
from components.lib.component import Component
from components.lib.irsa import AUDIENCE, OidcIssuer
from components.lib.naming import Naming
from components.settings import CLUSTER_SERVICE_CIDR, ClusterSettings

COMPONENT = "cluster"
LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
VIEW_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
ADMIN_VIEW_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminViewPolicy"
ADMIN_GROUP = "exposcholar:admins"
VIEWER_GROUP = "exposcholar:viewers"
PREVIEW_GROUP = "exposcholar:previewers"
_Policy = tuple[str, str, eks.AccessPolicyAssociationAccessScopeArgs]
"""An access policy association: name suffix, policy ARN, scope."""
NODE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
)
"""The node role's only policies: the CNI's permissions live on its own IRSA role."""


@dataclass(frozen=True)
class ClusterArgs:
    settings: ClusterSettings
    """Version, endpoint access, logs, add-on versions, administrators."""
    naming: Naming
    """Names and tags of the stack."""
    account_id: str
    """The stack's account: scopes the access entries' principals."""
    region: str
    """The stack's region, for the kubeconfig."""
    subnet_ids: Sequence[pulumi.Input[str]]
    """Private subnets: the control plane's ENIs (the node groups use the same subnets)."""
    secrets_key_arn: pulumi.Input[str]
    """KMS key for envelope encryption of Kubernetes Secrets."""
    logs_key_arn: pulumi.Input[str]
    """The stack's ``logs`` key: encrypts the control plane's log group."""
    admin_role_arns: Sequence[str]
    """People's roles: cluster administrators."""
    deploy_role_arns: Sequence[pulumi.Input[str]] = ()
    """Roles that deploy the stack from CI: cluster administrators like the people."""
    preview_role_arns: Sequence[pulumi.Input[str]] = ()
    """Roles that preview changes from pull requests: view access only."""
    preview_secret_namespaces: Sequence[str] = ()
    """Namespaces whose charts look up a Secret while rendering: previews may read there."""


class Cluster(Component):
    """EKS control plane with access entries, OIDC provider, node role and network add-ons
    (``depends_on``: the network, so it is created before and destroyed after the cluster).

    Teardown order: node groups list the cluster in ``depends_on``, add-ons the node groups, and
    Kubernetes objects use the provider built from ``kubeconfig``. Pulumi destroys in reverse,
    so every Kubernetes object, including the Ingress whose load balancer the controller made,
    goes first, while the controllers still run and reach AWS; then the nodes and the cluster;
    only then the VPC (docs/teardown.md).

    Changing the cluster name (derived from the stack), the subnets' VPC or the Secrets
    encryption key replaces the cluster; version upgrades happen in place.
    """

    TYPE = "exposcholar:cluster:Cluster"

    name: str
    """Physical name (known before deploy: tags and names can use it)."""
    eks_name: pulumi.Output[str]
    """The same name as an Output of the cluster, for resources that must wait for it."""
    endpoint: pulumi.Output[str]
    """The API server's URL."""
    oidc: OidcIssuer
    """The cluster's OIDC issuer, for IRSA roles."""
    node_security_group_id: pulumi.Output[str]
    """The cluster security group every node carries: data stores admit it."""
    node_role_arn: pulumi.Output[str]
    """The IAM role of the managed nodes."""
    kubeconfig: pulumi.Output[str]
    """Secret: reaches the cluster as the caller, once the access entries exist."""

    def __init__(
        self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, opts)
        settings = args.settings
        naming = args.naming
        cluster_name = naming.cluster_name
        self.name = cluster_name

        role = service_role(
            f"{name}-role",
            opts=self.child_opts(),
            role_name=naming.physical(COMPONENT, "control-plane", max_length=64),
            service="eks.amazonaws.com",
            description="EKS control plane of the ExpoScholar cluster",
            tags=naming.tags(COMPONENT, "control-plane"),
            managed_policy_arns=["arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"],
        )
        logs = retained_log_group(
            f"{name}-logs",
            opts=self.child_opts(),
            log_group_name=f"/aws/eks/{cluster_name}/cluster",
            retention_days=settings.log_retention_days,
            kms_key_arn=args.logs_key_arn,
            tags=naming.tags(COMPONENT, "logs"),
        )
        public = bool(settings.public_access_cidrs)
        cluster = eks.Cluster(
            f"{name}-eks",
            name=cluster_name,
            version=settings.version,
            role_arn=role.arn,
            vpc_config=eks.ClusterVpcConfigArgs(
                subnet_ids=list(args.subnet_ids),
                endpoint_private_access=True,
                # off, or on only for the CIDRs in settings (which refuse 0.0.0.0/0)
                endpoint_public_access=public,
                public_access_cidrs=list(settings.public_access_cidrs) if public else None,
            ),
            # explicit, so the API server's Service address is known to NetworkPolicies
            kubernetes_network_config=eks.ClusterKubernetesNetworkConfigArgs(
                ip_family="ipv4", service_ipv4_cidr=CLUSTER_SERVICE_CIDR
            ),
            encryption_config=eks.ClusterEncryptionConfigArgs(
                provider=eks.ClusterEncryptionConfigProviderArgs(key_arn=args.secrets_key_arn),
                resources=["secrets"],
            ),
            enabled_cluster_log_types=list(LOG_TYPES),
            # access entries only (no aws-auth ConfigMap), no implicit admin for the creator
            access_config=eks.ClusterAccessConfigArgs(
                authentication_mode="API",
                bootstrap_cluster_creator_admin_permissions=False,
            ),
            bootstrap_self_managed_addons=False,  # the pinned managed add-ons replace them
            upgrade_policy=eks.ClusterUpgradePolicyArgs(support_type="STANDARD"),
            # in every stack, like the database: a teardown turns it off deliberately
            deletion_protection=True,
            tags=naming.tags(COMPONENT, "eks"),
            # the log group first, so EKS never creates a never-expiring one
            opts=self.child_opts(depends_on=[logs]),
        )
        access = self._access(name, cluster_name, cluster, args)

        issuer = cluster.identities.apply(lambda ids: ids[0].oidcs[0].issuer or "")  # type: ignore[index]
        provider = iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=issuer,
            client_id_lists=[AUDIENCE],
            tags=naming.tags(COMPONENT, "oidc"),
            opts=self.child_opts(),
        )
        self.oidc = OidcIssuer(provider_arn=provider.arn, issuer_url=issuer)

        node_role = service_role(
            f"{name}-node-role",
            opts=self.child_opts(),
            role_name=naming.physical(COMPONENT, "nodes", max_length=64),
            service="ec2.amazonaws.com",
            description="EKS managed nodes of the ExpoScholar cluster",
            tags=naming.tags(COMPONENT, "nodes"),
            managed_policy_arns=NODE_POLICIES,
        )
        managed_addons(
            f"{name}-addon",
            opts=self.child_opts(),
            cluster_name=cluster.name,
            names=BEFORE_COMPUTE,
            versions=settings.addons,
            oidc=self.oidc,
            naming=naming,
        )

        self.eks_name = cluster.name
        self.endpoint = cluster.endpoint
        self.node_security_group_id = cluster.vpc_config.cluster_security_group_id
        self.node_role_arn = node_role.arn
        # A caller reaches the cluster only once its access entry and policy associations
        # exist (authentication mode API, no creator admin): the kubeconfig resolves after all
        # of them, so the Kubernetes provider built from it -- and every object on it -- waits
        # for that access on create and is destroyed before it on teardown.
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(
                kubeconfig(cluster_name, cluster, args.region),
                *[association.id for association in access],
            ).apply(lambda values: str(values[0]))
        )
        self.register()

    def _access(
        self, name: str, cluster_name: str, cluster: eks.Cluster, args: ClusterArgs
    ) -> list[eks.AccessPolicyAssociation]:
        """Access entries and their policy associations, all returned: administrators (people
        and the CI deploy role), viewers, and the CI preview role.

        The preview role views cluster-wide and reads Secrets (``AmazonEKSAdminViewPolicy``)
        only in ``preview_secret_namespaces``, whose charts look a Secret up while ``pulumi
        preview`` renders them against the cluster; dry runs that RBAC forbids fall back to
        client-side diffs, so previews need no write access. Each entry also maps to a
        Kubernetes group that in-cluster RBAC can refer to."""
        scope = eks.AccessPolicyAssociationAccessScopeArgs
        admin: list[_Policy] = [("policy", ADMIN_POLICY, scope(type="cluster"))]
        view: list[_Policy] = [("policy", VIEW_POLICY, scope(type="cluster"))]
        namespaces = list(args.preview_secret_namespaces)
        secrets: list[_Policy] = (
            [("secrets-policy", ADMIN_VIEW_POLICY, scope(type="namespace", namespaces=namespaces))]
            if namespaces
            else []
        )
        grants: list[tuple[str, Sequence[pulumi.Input[str]], str, list[_Policy]]] = [
            ("admin", args.admin_role_arns, ADMIN_GROUP, admin),
            ("deploy", args.deploy_role_arns, ADMIN_GROUP, admin),
            ("viewer", args.settings.read_only_role_arns, VIEWER_GROUP, view),
            ("preview", args.preview_role_arns, PREVIEW_GROUP, view + secrets),
        ]
        associations: list[eks.AccessPolicyAssociation] = []
        for kind, arns, group, policies in grants:
            for index, arn in enumerate(arns):
                entry = eks.AccessEntry(
                    f"{name}-{kind}-{index}",
                    cluster_name=cluster.name,
                    principal_arn=arn,
                    type="STANDARD",
                    kubernetes_groups=[group],
                    tags=args.naming.tags(COMPONENT, f"{kind}-{index}"),
                    opts=self.child_opts(),
                )
                for suffix, policy, reach in policies:
                    associations.append(
                        eks.AccessPolicyAssociation(
                            f"{name}-{kind}-{index}-{suffix}",
                            cluster_name=cluster.name,
                            principal_arn=entry.principal_arn,
                            policy_arn=policy,
                            access_scope=reach,
                            opts=self.child_opts(),
                        )
                    )
        return associations


def kubeconfig(cluster_name: str, cluster: eks.Cluster, region: str) -> pulumi.Output[str]:
    """A kubeconfig for the cluster that authenticates with ``aws eks get-token`` as the
    caller's own AWS identity: whoever runs Pulumi (an administrator, or a workflow role) gets
    the access its own entry grants, and no identity needs another's role."""
    return pulumi.Output.json_dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": cluster_name,
                    "cluster": {
                        "server": cluster.endpoint,
                        "certificate-authority-data": cluster.certificate_authority.data,
                    },
                }
            ],
            "contexts": [
                {"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}
            ],
            "current-context": cluster_name,
            "users": [
                {
                    "name": cluster_name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": [
                                "eks",
                                "get-token",
                                "--cluster-name",
                                cluster_name,
                                "--region",
                                region,
                            ],
                            "interactiveMode": "Never",
                        }
                    },
                }
            ],
        }
    )
