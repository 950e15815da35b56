"""The cluster autoscaler: its image matches the cluster's minor version, it discovers only this
cluster's node groups, runs restricted on the system pool, and its RBAC and IAM permissions
are the least it needs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.eks.nodes import NodeGroup, NodeGroupArgs
from components.lib.irsa import OidcIssuer
from components.lib.kube.pods import SYSTEM_TAINTS
from components.lib.naming import Naming
from components.lib.providers import aws_provider, kubernetes_provider
from components.platform.autoscaler import (
    IMAGE,
    NAME,
    READ_ACTIONS,
    RELEASES,
    SCALE_ACTIONS,
    ClusterAutoscaler,
    ClusterAutoscalerArgs,
    iam_policy,
    image_tag,
)
from components.settings import StackSettings
from tests import STACKS
from tests.conftest import assert_valid_manifests, only
from tools import render
from tools.plan import Plan
from tools.program import StageError, capture
from tools.project import StackConfig

COMPONENT_TYPE = "exposcholar:cluster:ClusterAutoscaler"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
CLUSTER_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"
CLUSTER_ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
IAM_ROLE = "aws:iam/role:Role"
ISSUER = "oidc.eks.eu-west-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF"
MUTATING_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


def _cluster_name(settings: StackSettings) -> str:
    return Naming.for_stack(settings).physical("cluster", "eks", max_length=100)


def _build(config: StackConfig, settings: StackSettings, cluster_version: str) -> Plan:
    """The component on its own, with a real system node group to depend on, under explicit
    providers (the stacks disable default providers)."""
    naming = Naming.for_stack(settings)
    cluster_name = _cluster_name(settings)
    account = settings.account.account_id

    def program() -> None:
        aws = aws_provider("aws", settings, naming)
        nodes = NodeGroup(
            "nodes-system",
            NodeGroupArgs(
                settings=settings.cluster.system_nodes,
                role="system",
                naming=naming,
                cluster_name=cluster_name,
                cluster=cluster_name,
                node_role_arn=f"arn:aws:iam::{account}:role/nodes",
                subnet_ids=["subnet-a", "subnet-b"],
                security_group_id="sg-0123456789abcdef0",
                disk_size_gb=20,
                taints=SYSTEM_TAINTS,
            ),
            opts=pulumi.ResourceOptions(providers=[aws]),
        )
        oidc = OidcIssuer(
            provider_arn=pulumi.Output.from_input(f"arn:aws:iam::{account}:oidc-provider/{ISSUER}"),
            issuer_url=pulumi.Output.from_input(f"https://{ISSUER}"),
        )
        ClusterAutoscaler(
            "autoscaler",
            ClusterAutoscalerArgs(
                cluster_name=cluster_name,
                cluster_version=cluster_version,
                oidc=oidc,
                naming=naming,
                kubernetes=kubernetes_provider("k8s", "{}"),
                vertical_scaling=False,  # no VPA chart here
            ),
            opts=pulumi.ResourceOptions(providers=[aws], depends_on=[nodes]),
        )

    return capture(config, program)


@pytest.fixture(scope="module")
def autoscaler_plans(
    stack_configs: dict[str, StackConfig], stack_settings: dict[str, StackSettings]
) -> dict[str, Plan]:
    return {
        stack: _build(stack_configs[stack], settings, settings.cluster.version)
        for stack, settings in stack_settings.items()
    }


@pytest.fixture(params=STACKS)
def plan(request: pytest.FixtureRequest, autoscaler_plans: dict[str, Plan]) -> Plan:
    """The component's program for one stack (shadows conftest's whole-program ``plan``)."""
    return autoscaler_plans[request.param]


@pytest.fixture
def autoscaler(plan: Plan) -> Plan:
    return plan.subtree(plan.component(COMPONENT_TYPE).urn)


def _template(autoscaler: Plan) -> dict[str, Any]:
    spec: dict[str, Any] = only(autoscaler, DEPLOYMENT).inputs["spec"]["template"]
    return spec


def _container(autoscaler: Plan) -> dict[str, Any]:
    (container,) = _template(autoscaler)["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def _rules(autoscaler: Plan, typ: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = only(autoscaler, typ).inputs["rules"]
    assert rules, f"{typ} grants nothing"
    return rules


def test_image_matches_the_cluster_minor_version(
    autoscaler: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    version = stack_settings[autoscaler.stack].cluster.version
    image = _container(autoscaler)["image"]
    repository, tag = image.rsplit(":", 1)
    assert repository == IMAGE == "registry.k8s.io/autoscaling/cluster-autoscaler"
    match = re.fullmatch(r"v(\d+\.\d+)\.\d+", tag)
    assert match and match.group(1) == version, (tag, version)
    labels = only(autoscaler, DEPLOYMENT).inputs["metadata"]["labels"]
    assert labels["app.kubernetes.io/version"] == tag


def test_every_pinned_release_is_of_its_own_minor() -> None:
    assert "1.33" in RELEASES
    for minor, tag in RELEASES.items():
        assert re.fullmatch(rf"v{re.escape(minor)}\.\d+", tag), (minor, tag)
        assert image_tag(minor) == tag


def test_unknown_cluster_version_is_refused_naming_it_and_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'1\.29'") as raised:
        image_tag("1.29")
    assert RELEASES
    for known in RELEASES:
        assert known in str(raised.value)


def test_unknown_cluster_version_stops_the_program(
    stack_configs: dict[str, StackConfig], stack_settings: dict[str, StackSettings]
) -> None:
    with pytest.raises(StageError) as raised:
        _build(stack_configs["staging"], stack_settings["staging"], "1.99")
    text = "\n".join(raised.value.lines)
    assert "ValueError" in text and "'1.99'" in text


def test_command_discovers_only_this_clusters_groups(
    autoscaler: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    cluster_name = _cluster_name(stack_settings[autoscaler.stack])
    assert cluster_name == f"exposcholar-{autoscaler.stack}-cluster-eks"
    command = _container(autoscaler)["command"]
    assert command[0] == "/cluster-autoscaler"
    flags = command[1:]
    assert len(flags) == len(set(flags))
    assert (
        "--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,"
        f"k8s.io/cluster-autoscaler/{cluster_name}"
    ) in flags
    assert {
        "--cloud-provider=aws",
        "--balance-similar-node-groups",
        "--skip-nodes-with-system-pods=false",
        "--skip-nodes-with-local-storage=false",
        "--expander=least-waste",
    } <= set(flags)


def test_discovery_and_ownership_tags_are_the_ones_the_node_groups_carry(
    plan: Plan, autoscaler: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    tags = only(plan, "aws:eks/nodeGroup:NodeGroup").inputs["tags"]
    flag = next(
        f for f in _container(autoscaler)["command"] if f.startswith("--node-group-auto-discovery")
    )
    for key in flag.removeprefix("--node-group-auto-discovery=asg:tag=").split(","):
        assert key in tags, key
    policy = json.loads(iam_policy(_cluster_name(stack_settings[plan.stack])))
    (scale,) = [s for s in policy["Statement"] if "Condition" in s]
    ((key, value),) = scale["Condition"]["StringEquals"].items()
    assert tags[key.removeprefix("aws:ResourceTag/")] == value == "owned"


def test_one_replica_on_the_system_pool_never_evicted_by_itself(autoscaler: Plan) -> None:
    deployment = only(autoscaler, DEPLOYMENT).inputs
    assert deployment["metadata"]["namespace"] == "kube-system"
    assert deployment["spec"]["replicas"] == 1
    template = _template(autoscaler)
    assert template["metadata"]["annotations"] == {
        "cluster-autoscaler.kubernetes.io/safe-to-evict": "false"
    }
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    assert "app.kubernetes.io/version" not in selector, "a selector cannot change on upgrades"
    spec = template["spec"]
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["nodeSelector"] == {"exposcholar.io/pool": "system"}
    assert spec["tolerations"] == [
        {"key": "CriticalAddonsOnly", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    ]
    assert spec["serviceAccountName"] == NAME
    assert spec["automountServiceAccountToken"] is True


def test_runs_restricted_with_bounded_resources_and_probes(autoscaler: Plan) -> None:
    spec = _template(autoscaler)["spec"]
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65534,
        "runAsGroup": 65534,
        "fsGroup": 65534,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for key in ("hostNetwork", "hostPID", "hostIPC", "volumes"):
        assert key not in spec, key
    container = _container(autoscaler)
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    resources = container["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
    assert container["ports"] == [{"name": "metrics", "containerPort": 8085, "protocol": "TCP"}]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health-check", "port": 8085}, probe


def test_rbac_has_no_wildcards_and_no_secrets(autoscaler: Plan) -> None:
    for typ in (CLUSTER_ROLE, ROLE):
        for rule in _rules(autoscaler, typ):
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                for value in rule.get(field, []):
                    assert "*" not in value, (typ, rule)
            assert "secrets" not in rule["resources"]
            assert "nonResourceURLs" not in rule
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule


def test_cluster_wide_writes_are_only_the_autoscalers_own(autoscaler: Plan) -> None:
    writes = {
        (group, resource, verb)
        for rule in _rules(autoscaler, CLUSTER_ROLE)
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        if verb in MUTATING_VERBS
    }
    assert writes == {
        ("", "events", "create"),
        ("", "events", "patch"),
        ("", "pods/eviction", "create"),
        ("", "pods/status", "update"),
        ("", "nodes", "update"),
    }
    reads = {
        (group, resource)
        for rule in _rules(autoscaler, CLUSTER_ROLE)
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        if {"list", "watch"} <= set(rule["verbs"])
    }
    # The scheduler simulation blocks on these informers (volumeattachments since 1.32).
    assert {("", "nodes"), ("", "pods"), ("storage.k8s.io", "volumeattachments")} <= reads
    assert ("", "configmaps") not in reads


def test_namespaced_rights_are_by_name_where_the_verb_allows(autoscaler: Plan) -> None:
    role = only(autoscaler, ROLE).inputs
    assert role["metadata"]["namespace"] == "kube-system"
    granted = {
        (resource, verb, tuple(rule.get("resourceNames", [])))
        for rule in role["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == {
        ("leases", "create", ()),  # create cannot be limited to a name
        ("leases", "get", ("cluster-autoscaler",)),
        ("leases", "update", ("cluster-autoscaler",)),
        ("configmaps", "create", ()),
        ("configmaps", "get", ("cluster-autoscaler-status",)),
        ("configmaps", "update", ("cluster-autoscaler-status",)),
        ("configmaps", "delete", ("cluster-autoscaler-status",)),
    }


def test_bindings_grant_the_roles_to_the_service_account_only(autoscaler: Plan) -> None:
    subject = {"kind": "ServiceAccount", "name": NAME, "namespace": "kube-system"}
    for typ, kind in ((CLUSTER_ROLE_BINDING, "ClusterRole"), (ROLE_BINDING, "Role")):
        binding = only(autoscaler, typ).inputs
        assert binding["subjects"] == [subject]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": kind,
            "name": NAME,
        }
    assert only(autoscaler, ROLE_BINDING).inputs["metadata"]["namespace"] == "kube-system"


def test_service_account_carries_the_irsa_role(autoscaler: Plan) -> None:
    account = only(autoscaler, SERVICE_ACCOUNT).inputs
    role = only(autoscaler, IAM_ROLE)
    assert account["metadata"]["name"] == NAME
    assert account["metadata"]["namespace"] == "kube-system"
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": role.outputs["arn"]}
    assert role.outputs["arn"].endswith(f"role/exposcholar-{autoscaler.stack}-autoscaler-{NAME}")
    assert account["automountServiceAccountToken"] is True
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Condition"] == {
        "StringEquals": {
            f"{ISSUER}:aud": "sts.amazonaws.com",
            f"{ISSUER}:sub": "system:serviceaccount:kube-system:cluster-autoscaler",
        }
    }


def test_role_has_only_the_inline_policy(
    autoscaler: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    assert not autoscaler.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    (policy,) = autoscaler.of_type("aws:iam/rolePolicy:RolePolicy")
    assert policy.inputs["role"] == only(autoscaler, IAM_ROLE).id
    assert policy.inputs["policy"] == iam_policy(_cluster_name(stack_settings[autoscaler.stack]))


def test_iam_policy_scales_only_groups_owned_by_the_cluster() -> None:
    policy = json.loads(iam_policy("exposcholar-prod-cluster-eks"))
    assert policy["Version"] == "2012-10-17"
    statements = policy["Statement"]
    assert all(s["Effect"] == "Allow" for s in statements)
    actions = [a for s in statements for a in s["Action"]]
    assert sorted(actions) == sorted((*READ_ACTIONS, *SCALE_ACTIONS))
    assert not any("*" in action for action in actions)
    (scale,) = [s for s in statements if set(s["Action"]) & set(SCALE_ACTIONS)]
    assert sorted(scale["Action"]) == sorted(SCALE_ACTIONS)
    assert scale["Condition"] == {
        "StringEquals": {
            "aws:ResourceTag/k8s.io/cluster-autoscaler/exposcholar-prod-cluster-eks": "owned"
        }
    }
    for statement in statements:
        if statement is scale:
            continue
        assert "Condition" not in statement
        for action in statement["Action"]:
            assert action.split(":", 1)[1].startswith(("Describe", "Get")), action


def test_children_use_the_explicit_providers(plan: Plan, autoscaler: Plan) -> None:
    k8s = only(plan, "pulumi:providers:kubernetes")
    aws = only(plan, "pulumi:providers:aws")
    component = plan.component(COMPONENT_TYPE)
    # both providers' resources are among the children, so both branches are checked
    assert {DEPLOYMENT, IAM_ROLE} <= {r.type for r in autoscaler.resources}
    for resource in autoscaler.resources:
        assert resource.parent == component.urn, resource.name
        assert resource.name.startswith("autoscaler-"), resource.name
        expected = k8s if resource.type.startswith("kubernetes:") else aws
        assert resource.provider and resource.provider.startswith(expected.urn), resource.name


def test_deployment_waits_for_the_node_groups_its_account_and_its_rights(
    plan: Plan, autoscaler: Plan
) -> None:
    deployment = only(autoscaler, DEPLOYMENT)
    node_group = only(plan, "aws:eks/nodeGroup:NodeGroup")
    assert node_group.urn in deployment.dependencies
    for typ in (SERVICE_ACCOUNT, CLUSTER_ROLE_BINDING, ROLE_BINDING):
        assert only(autoscaler, typ).urn in deployment.dependencies, typ


def test_manifests_validate_against_the_cluster_version_schemas(
    autoscaler: Plan, stack_settings: dict[str, StackSettings], tmp_path: Path
) -> None:
    written = render.write(autoscaler, tmp_path / autoscaler.stack)
    kinds = sorted(path.name.split("__")[1] for path in written)
    assert kinds == [
        "clusterrole", "clusterrolebinding", "deployment", "networkpolicy", "role", "rolebinding",
        "serviceaccount",
    ]  # fmt: skip
    assert_valid_manifests(written, stack_settings[autoscaler.stack].cluster.version)
