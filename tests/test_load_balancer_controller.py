"""The AWS Load Balancer Controller: pinned chart, IRSA role and its tag-scoped policy, chart
values (placement, security, webhook), for both stacks, built alone under the mocks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest
from pulumi_aws import cloudwatch

from components.lib.irsa import OidcIssuer
from components.lib.kube import pods
from components.lib.kube.pods import SYSTEM_TAINTS
from components.lib.naming import Naming
from components.lib.providers import aws_provider, kubernetes_provider
from components.platform.load_balancer_controller import CHART as PINNED
from components.platform.load_balancer_controller import (
    CLUSTER_TAG,
    CONTROLLER_UID,
    LoadBalancerController,
    LoadBalancerControllerArgs,
    controller_policy,
)
from components.settings import StackSettings
from tests import STACKS
from tests.conftest import only
from tools.plan import Plan
from tools.program import capture
from tools.project import StackConfig

CHART = "kubernetes:helm.sh/v4:Chart"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ISSUER = "oidc.eks.eu-west-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF"
VPC_ID = "vpc-0a1b2c3d4e5f60718"
SUBJECT = "system:serviceaccount:kube-system:aws-load-balancer-controller"


def cluster_name(stack: str) -> str:
    return f"exposcholar-{stack}-cluster-eks"


@dataclass(frozen=True)
class Built:
    controller: LoadBalancerController
    aws: aws.Provider
    kubernetes: k8s.Provider


def build(settings: StackSettings) -> Built:
    """The controller with explicit providers and stand-in inputs (call inside a program)."""
    naming = Naming.for_stack(settings)
    aws_p = aws_provider("aws", settings, naming)
    kubernetes = kubernetes_provider("k8s", pulumi.Output.secret("apiVersion: v1\nkind: Config"))
    nodes_ready = cloudwatch.LogGroup(  # stands in for the node groups the pods need
        "nodes-ready", opts=pulumi.ResourceOptions(provider=aws_p)
    )
    account = settings.account.account_id
    controller = LoadBalancerController(
        "lbc",
        LoadBalancerControllerArgs(
            cluster_name=cluster_name(settings.stack),
            region=settings.account.region,
            vpc_id=pulumi.Output.from_input(VPC_ID),
            oidc=OidcIssuer(
                provider_arn=pulumi.Output.from_input(
                    f"arn:aws:iam::{account}:oidc-provider/{ISSUER}"
                ),
                issuer_url=pulumi.Output.from_input(f"https://{ISSUER}"),
            ),
            naming=naming,
            kubernetes=kubernetes,
        ),
        opts=pulumi.ResourceOptions(providers=[aws_p], depends_on=[nodes_ready]),
    )
    return Built(controller, aws_p, kubernetes)


def build_only(settings: StackSettings) -> None:
    build(settings)


@pytest.fixture(scope="module")
def controller_plans(
    stack_configs: dict[str, StackConfig], stack_settings: dict[str, StackSettings]
) -> dict[str, Plan]:
    def run(stack: str) -> Plan:
        return capture(stack_configs[stack], lambda: build_only(stack_settings[stack]))

    return {stack: run(stack) for stack in STACKS}


@pytest.fixture(params=STACKS)
def plan(request: pytest.FixtureRequest, controller_plans: dict[str, Plan]) -> Plan:
    return controller_plans[request.param]


def values(plan: Plan) -> dict[str, Any]:
    return dict(only(plan, CHART).inputs["values"])


def test_chart_is_pinned_in_kube_system(plan: Plan) -> None:
    chart = only(plan, CHART)
    assert chart.inputs["chart"] == "aws-load-balancer-controller"
    assert chart.inputs["version"] == PINNED.version
    assert [int(part) for part in PINNED.version.split(".")][:2] == [1, 13]
    assert chart.inputs["repositoryOpts"] == {"repo": "https://aws.github.io/eks-charts"}
    assert chart.inputs["namespace"] == "kube-system"
    assert chart.inputs["name"] == "aws-load-balancer-controller"
    component = plan.component("exposcholar:cluster:LoadBalancerController")
    assert chart.parent == component.urn
    k8s = only(plan, "pulumi:providers:kubernetes")
    assert chart.provider and chart.provider.startswith(k8s.urn)


def test_irsa_role_trusts_only_the_controller_service_account(plan: Plan) -> None:
    role = only(plan, ROLE)
    assert role.inputs["name"] == f"exposcholar-{plan.stack}-load-balancer-controller"
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"].endswith(f":oidc-provider/{ISSUER}")
    assert statement["Condition"] == {
        "StringEquals": {f"{ISSUER}:aud": "sts.amazonaws.com", f"{ISSUER}:sub": SUBJECT}
    }
    aws = only(plan, "pulumi:providers:aws")
    assert role.provider and role.provider.startswith(aws.urn)
    assert not plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")


def test_role_carries_the_tag_scoped_policy(plan: Plan) -> None:
    role = only(plan, ROLE)
    policy = only(plan, ROLE_POLICY)
    assert policy.inputs["role"] == role.id
    assert policy.inputs["policy"] == controller_policy(cluster_name(plan.stack))
    aws = only(plan, "pulumi:providers:aws")
    assert policy.provider and policy.provider.startswith(aws.urn)


def test_chart_waits_for_its_permissions_and_the_given_dependencies(plan: Plan) -> None:
    chart = only(plan, CHART)
    assert only(plan, ROLE_POLICY).urn in chart.dependencies
    assert only(plan, "aws:cloudwatch/logGroup:LogGroup").urn in chart.dependencies
    assert only(plan, ROLE).urn in chart.dependencies  # through the role ARN value


def test_values_name_the_cluster_and_the_role(plan: Plan) -> None:
    chart_values = values(plan)
    assert chart_values["clusterName"] == cluster_name(plan.stack)
    assert chart_values["region"] == "eu-west-1"
    assert chart_values["vpcId"] == VPC_ID
    assert chart_values["serviceAccount"] == {
        "create": True,
        "name": "aws-load-balancer-controller",
        "annotations": {"eks.amazonaws.com/role-arn": only(plan, ROLE).outputs["arn"]},
    }
    tags = chart_values["defaultTags"]
    assert tags["Environment"] == plan.stack
    assert {"Project", "ManagedBy", "Owner", "CostCenter", "Component"} <= set(tags)


def test_values_place_two_replicas_on_the_system_pool(plan: Plan) -> None:
    chart_values = values(plan)
    assert chart_values["replicaCount"] == 2
    assert chart_values["podDisruptionBudget"] == {"maxUnavailable": 1}
    assert chart_values["nodeSelector"] == {pods.POOL_LABEL: "system"}
    assert chart_values["tolerations"] == [
        {"key": t.key, "operator": "Equal", "value": t.value, "effect": "NoSchedule"}
        for t in SYSTEM_TAINTS
    ]
    assert chart_values["resources"]["requests"] and chart_values["resources"]["limits"]


def test_values_security_contexts_are_restricted(plan: Plan) -> None:
    chart_values = values(plan)
    shared = pods.chart_security(uid=CONTROLLER_UID)
    assert chart_values["securityContext"] == shared["securityContext"]
    assert chart_values["podSecurityContext"] == shared["podSecurityContext"]
    container = chart_values["securityContext"]
    typed = pods.container_security_context()
    assert container["runAsNonRoot"] is typed.run_as_non_root is True
    assert container["allowPrivilegeEscalation"] is typed.allow_privilege_escalation is False
    assert container["readOnlyRootFilesystem"] is typed.read_only_root_filesystem is True
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["runAsUser"] == CONTROLLER_UID != 0
    pod = chart_values["podSecurityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}


def test_values_leave_services_alone_and_use_only_wafv2(plan: Plan) -> None:
    chart_values = values(plan)
    assert chart_values["enableServiceMutatorWebhook"] is False
    assert chart_values["enableWafv2"] is True
    assert chart_values["enableWaf"] is False
    assert chart_values["enableShield"] is False


# The policy itself, as a pure function.

POLICY = json.loads(controller_policy("exposcholar-prod-cluster-eks"))
OWNED = {f"aws:ResourceTag/{CLUSTER_TAG}": "exposcholar-prod-cluster-eks"}
FOR_THIS_CLUSTER = {f"aws:RequestTag/{CLUSTER_TAG}": "exposcholar-prod-cluster-eks"}


def granting(action: str) -> list[dict[str, Any]]:
    """The statements that allow ``action``."""
    return [s for s in POLICY["Statement"] if action in s["Action"]]


@pytest.mark.parametrize(
    "action",
    [
        "elasticloadbalancing:DeleteLoadBalancer",
        "elasticloadbalancing:ModifyLoadBalancerAttributes",
        "elasticloadbalancing:SetSecurityGroups",
        "elasticloadbalancing:SetSubnets",
        "elasticloadbalancing:DeleteTargetGroup",
        "elasticloadbalancing:ModifyTargetGroup",
        "elasticloadbalancing:ModifyTargetGroupAttributes",
        "ec2:DeleteSecurityGroup",
    ],
)
def test_changing_or_deleting_requires_this_clusters_tag(action: str) -> None:
    statements = granting(action)
    assert statements, action
    for statement in statements:
        assert statement["Condition"]["StringEquals"].items() >= OWNED.items(), action


@pytest.mark.parametrize(
    "action", ["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup"]
)
def test_creating_requires_tagging_for_this_cluster(action: str) -> None:
    (statement,) = granting(action)
    assert statement["Resource"] == "*"
    assert statement["Condition"] == {"StringEquals": FOR_THIS_CLUSTER}


def test_new_security_groups_are_tagged_only_while_created_for_this_cluster() -> None:
    statements = granting("ec2:CreateTags")
    for statement in statements:
        assert statement["Resource"] == "arn:aws:ec2:*:*:security-group/*"
    on_create = next(s for s in statements if s["Sid"] == "TagNewSecurityGroups")
    assert on_create["Condition"] == {
        "StringEquals": {"ec2:CreateAction": "CreateSecurityGroup", **FOR_THIS_CLUSTER}
    }
    (retag,) = [s for s in statements if s is not on_create]
    # Re-tagging: only groups of this cluster, and never the cluster tag itself.
    assert retag["Condition"] == {
        "Null": {f"aws:RequestTag/{CLUSTER_TAG}": "true"},
        "StringEquals": OWNED,
    }


def test_load_balancer_tags_only_on_create_or_on_owned_ones() -> None:
    statements = granting("elasticloadbalancing:AddTags")
    lb_statements = [s for s in statements if any("loadbalancer/" in r for r in s["Resource"])]
    assert {s["Sid"] for s in lb_statements} == {"TagOnCreate", "RetagOwnedLoadBalancers"}
    on_create = next(s for s in lb_statements if s["Sid"] == "TagOnCreate")
    assert on_create["Condition"]["StringEquals"]["elasticloadbalancing:CreateAction"] == [
        "CreateTargetGroup",
        "CreateLoadBalancer",
    ]
    assert on_create["Condition"]["StringEquals"].items() >= FOR_THIS_CLUSTER.items()
    retag = next(s for s in lb_statements if s["Sid"] == "RetagOwnedLoadBalancers")
    assert retag["Condition"]["StringEquals"] == OWNED
    assert retag["Condition"]["Null"] == {f"aws:RequestTag/{CLUSTER_TAG}": "true"}


def test_policy_shape() -> None:
    actions = {a for s in POLICY["Statement"] for a in s["Action"]}
    assert all(s["Effect"] == "Allow" for s in POLICY["Statement"])
    assert len({s["Sid"] for s in POLICY["Statement"]}) == len(POLICY["Statement"])
    assert not any("*" in a for a in actions), "no wildcard actions"
    # Classic WAF and Shield are switched off in the chart, so not granted.
    assert not {a for a in actions if a.startswith(("waf-regional:", "shield:"))}
    assert {"wafv2:AssociateWebACL", "acm:DescribeCertificate"} <= actions
    (slr,) = granting("iam:CreateServiceLinkedRole")
    assert slr["Condition"] == {
        "StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}
    }
    # Nothing is scoped only by the tag's presence: always by this cluster's name.
    nulls = [s for s in POLICY["Statement"] if "Null" in s.get("Condition", {})]
    assert len(nulls) >= 2, "the re-tagging statements (security groups, load balancers)"
    for statement in POLICY["Statement"]:
        for operator, keys in statement.get("Condition", {}).items():
            if operator == "Null":
                assert all(value == "true" for value in keys.values()), statement["Sid"]


def test_policy_names_the_cluster_it_is_for() -> None:
    staging = controller_policy("exposcholar-staging-cluster-eks")
    assert "exposcholar-staging-cluster-eks" in staging
    assert "exposcholar-prod-cluster-eks" not in staging
