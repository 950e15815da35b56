"""``LoadBalancerController``: the AWS Load Balancer Controller, which turns the Ingress into an
Application Load Balancer.

Creates the controller's IRSA role, whose policy (``controller_policy``) lets it change only the
load balancers, target groups and security groups tagged for this cluster, and its pinned Helm
chart in ``kube-system``: two replicas on the system node group, the stack's tags on every AWS
object the controller makes, the ``alb`` IngressClass and the webhooks that check Ingresses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.lib.component import Component
from components.lib.irsa import OidcIssuer, irsa_role
from components.lib.kube.charts import ChartPin, chart
from components.lib.kube.pods import chart_placement, chart_security
from components.lib.naming import Naming

COMPONENT = "load-balancer"
CHART = ChartPin("aws-load-balancer-controller", "1.13.4", "https://aws.github.io/eks-charts")
"""Chart 1.13.4 installs controller v2.13.4."""
NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "aws-load-balancer-controller"
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
REPLICAS = 2
CONTROLLER_UID = 65532
"""The controller image's own non-root user (any non-root uid works: it writes no files)."""
CLUSTER_TAG = "elbv2.k8s.aws/cluster"
"""Tag the controller puts on every load balancer, target group and security group it creates;
its value is the cluster name."""

_ELB = "arn:aws:elasticloadbalancing:*:*"
_LOAD_BALANCERS_AND_TARGET_GROUPS = [
    f"{_ELB}:targetgroup/*/*",
    f"{_ELB}:loadbalancer/net/*/*",
    f"{_ELB}:loadbalancer/app/*/*",
]
_LISTENERS_AND_RULES = [
    f"{_ELB}:listener/net/*/*/*",
    f"{_ELB}:listener/app/*/*/*",
    f"{_ELB}:listener-rule/net/*/*/*",
    f"{_ELB}:listener-rule/app/*/*/*",
]
_SECURITY_GROUPS = "arn:aws:ec2:*:*:security-group/*"

DISCOVERY_ACTIONS = (
    "ec2:DescribeAccountAttributes",
    "ec2:DescribeAddresses",
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeInternetGateways",
    "ec2:DescribeVpcs",
    "ec2:DescribeVpcPeeringConnections",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeInstances",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeTags",
    "ec2:DescribeRouteTables",
    "ec2:DescribeIpamPools",
    "ec2:GetCoipPoolUsage",
    "ec2:DescribeCoipPools",
    "ec2:GetSecurityGroupsForVpc",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeLoadBalancerAttributes",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeListenerAttributes",
    "elasticloadbalancing:DescribeListenerCertificates",
    "elasticloadbalancing:DescribeSSLPolicies",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetGroupAttributes",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:DescribeTags",
    "elasticloadbalancing:DescribeTrustStores",
    "elasticloadbalancing:DescribeCapacityReservation",
)
"""Read-only calls the controller makes to discover subnets, groups and its own objects."""

INTEGRATION_ACTIONS = (
    "acm:ListCertificates",
    "acm:DescribeCertificate",
    "iam:ListServerCertificates",
    "iam:GetServerCertificate",
    "cognito-idp:DescribeUserPoolClient",
    "wafv2:GetWebACL",
    "wafv2:GetWebACLForResource",
    "wafv2:AssociateWebACL",
    "wafv2:DisassociateWebACL",
)
"""Certificates for the HTTPS listener, Cognito authentication and the WAFv2 web ACL."""

OWNED_LOAD_BALANCER_ACTIONS = (
    "elasticloadbalancing:ModifyLoadBalancerAttributes",
    "elasticloadbalancing:SetIpAddressType",
    "elasticloadbalancing:SetSecurityGroups",
    "elasticloadbalancing:SetSubnets",
    "elasticloadbalancing:DeleteLoadBalancer",
    "elasticloadbalancing:ModifyTargetGroup",
    "elasticloadbalancing:ModifyTargetGroupAttributes",
    "elasticloadbalancing:DeleteTargetGroup",
    "elasticloadbalancing:ModifyListenerAttributes",
    "elasticloadbalancing:ModifyCapacityReservation",
    "elasticloadbalancing:ModifyIpPools",
)
"""Changes to load balancers and target groups: only those tagged for this cluster."""

LISTENER_ACTIONS = (
    "elasticloadbalancing:CreateListener",
    "elasticloadbalancing:DeleteListener",
    "elasticloadbalancing:ModifyListener",
    "elasticloadbalancing:CreateRule",
    "elasticloadbalancing:DeleteRule",
    "elasticloadbalancing:ModifyRule",
    "elasticloadbalancing:AddListenerCertificates",
    "elasticloadbalancing:RemoveListenerCertificates",
    "elasticloadbalancing:SetWebAcl",
)
"""Listeners and rules carry no cluster tag of their own (upstream grants these unscoped)."""


def _statement(
    sid: str,
    actions: Sequence[str],
    resources: str | Sequence[str] = "*",
    condition: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": list(actions),
        "Resource": resources if isinstance(resources, str) else list(resources),
    }
    if condition:
        statement["Condition"] = condition
    return statement


def controller_policy(cluster_name: str) -> str:
    """The controller's documented IAM policy (pure: tested directly), narrowed from upstream's
    "the cluster tag is present" to "the tag names this cluster". Creating a load balancer,
    target group or security group requires the request to tag it for ``cluster_name``;
    changing or deleting one requires it to carry that tag already; re-tagging may not touch
    the tag. So the controller changes only what it created for this cluster."""
    tagged_here = {"StringEquals": {f"aws:ResourceTag/{CLUSTER_TAG}": cluster_name}}
    tagging_for_here = {f"aws:RequestTag/{CLUSTER_TAG}": cluster_name}
    keeps_cluster_tag = {
        "Null": {f"aws:RequestTag/{CLUSTER_TAG}": "true"},
        "StringEquals": {f"aws:ResourceTag/{CLUSTER_TAG}": cluster_name},
    }
    statements = [
        _statement(
            "ElbServiceLinkedRole",
            ["iam:CreateServiceLinkedRole"],
            condition={
                "StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}
            },
        ),
        _statement("Discover", DISCOVERY_ACTIONS),
        _statement("ListenerIntegrations", INTEGRATION_ACTIONS),
        # Security groups: the controller opens the nodes' groups (not its own) to the load
        # balancer's group, so ingress rules cannot be scoped by the cluster tag.
        _statement(
            "EditIngressRules",
            ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"],
        ),
        _statement("CreateSecurityGroups", ["ec2:CreateSecurityGroup"]),
        _statement(
            "TagNewSecurityGroups",
            ["ec2:CreateTags"],
            _SECURITY_GROUPS,
            {"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup", **tagging_for_here}},
        ),
        _statement(
            "RetagOwnedSecurityGroups",
            ["ec2:CreateTags", "ec2:DeleteTags"],
            _SECURITY_GROUPS,
            keeps_cluster_tag,
        ),
        _statement(
            "ManageOwnedSecurityGroups",
            [
                "ec2:AuthorizeSecurityGroupIngress",
                "ec2:RevokeSecurityGroupIngress",
                "ec2:DeleteSecurityGroup",
            ],
            condition=tagged_here,
        ),
        # Load balancers and target groups.
        _statement(
            "CreateLoadBalancers",
            ["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup"],
            condition={"StringEquals": tagging_for_here},
        ),
        _statement(
            "TagOnCreate",
            ["elasticloadbalancing:AddTags"],
            _LOAD_BALANCERS_AND_TARGET_GROUPS,
            {
                "StringEquals": {
                    "elasticloadbalancing:CreateAction": [
                        "CreateTargetGroup",
                        "CreateLoadBalancer",
                    ],
                    **tagging_for_here,
                }
            },
        ),
        _statement(
            "RetagOwnedLoadBalancers",
            ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
            _LOAD_BALANCERS_AND_TARGET_GROUPS,
            keeps_cluster_tag,
        ),
        _statement("ManageOwnedLoadBalancers", OWNED_LOAD_BALANCER_ACTIONS, condition=tagged_here),
        _statement(
            "RegisterTargets",
            ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"],
            f"{_ELB}:targetgroup/*/*",
        ),
        # Listeners and rules.
        _statement("ManageListeners", LISTENER_ACTIONS),
        _statement(
            "TagListenersAndRules",
            ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
            _LISTENERS_AND_RULES,
        ),
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def chart_values(
    *,
    cluster_name: str,
    region: str,
    vpc_id: pulumi.Input[str],
    role_arn: pulumi.Input[str],
    tags: dict[str, str],
) -> dict[str, Any]:
    """The chart's values (plain data, Outputs allowed as leaves)."""
    return {
        "clusterName": cluster_name,
        "region": region,
        "vpcId": vpc_id,
        "serviceAccount": {
            "create": True,
            "name": SERVICE_ACCOUNT,
            "annotations": {ROLE_ANNOTATION: role_arn},
        },
        "replicaCount": REPLICAS,
        **chart_placement(),
        "podDisruptionBudget": {"maxUnavailable": 1},  # one may be down during a node drain
        **chart_security(uid=CONTROLLER_UID),
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "512Mi"},
        },
        # Services of type LoadBalancer keep the in-tree behaviour, not rewritten to NLBs.
        "enableServiceMutatorWebhook": False,
        # Only WAFv2 is used; classic WAF and Shield Advanced are off, and not in the policy.
        "enableWafv2": True,
        "enableWaf": False,
        "enableShield": False,
        # Reuse the webhook's TLS secret on upgrades instead of minting a new CA each time.
        "keepTLSSecret": True,
        "defaultTags": tags,
    }


@dataclass(frozen=True)
class LoadBalancerControllerArgs:
    cluster_name: str
    """Physical cluster name: scopes the controller's IAM policy and its tags."""
    region: str
    """The stack's region."""
    vpc_id: pulumi.Input[str]
    """The VPC the load balancers go in."""
    oidc: OidcIssuer
    """The cluster's OIDC issuer, for the controller's IRSA role."""
    naming: Naming
    """Names and tags of the stack."""
    kubernetes: k8s.Provider
    """The cluster's Kubernetes provider."""


class LoadBalancerController(Component):
    """The AWS Load Balancer Controller and its IRSA role (``depends_on``: the nodes and add-ons
    its pods need). Its webhooks refuse an Ingress created before their pods run, so the
    ``Ingress`` component lists this one in its ``depends_on``."""

    TYPE = "exposcholar:cluster:LoadBalancerController"

    role_arn: pulumi.Output[str]
    """The controller's IRSA role."""

    def __init__(
        self,
        name: str,
        args: LoadBalancerControllerArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(name, opts)
        naming = args.naming
        role = irsa_role(
            f"{name}-role",
            opts=self.child_opts(),
            oidc=args.oidc,
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            role_name=naming.physical(COMPONENT, "controller", max_length=64),
            tags=naming.tags(COMPONENT, "controller"),
            inline_policy=controller_policy(args.cluster_name),
        )
        # Resolves only once the inline policy is attached, so the chart depends on it: the
        # controller starts with its permissions, and a teardown removes it (after the Ingress)
        # before them, so it can delete the load balancers it made for as long as it runs.
        self.role_arn = role.arn
        chart(
            f"{name}-chart",
            CHART,
            release_name=CHART.chart,
            namespace=NAMESPACE,
            values=chart_values(
                cluster_name=args.cluster_name,
                region=args.region,
                vpc_id=args.vpc_id,
                role_arn=self.role_arn,
                tags={**naming.default_tags(), "Component": COMPONENT},
            ),
            opts=self.child_opts(provider=args.kubernetes),
        )
        self.register()
