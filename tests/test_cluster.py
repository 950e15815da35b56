"""The EKS cluster, its node groups, add-ons, IRSA roles and Kubernetes provider, for both
stacks."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pulumi
import pytest

from components.eks.addons import AFTER_COMPUTE, BEFORE_COMPUTE
from components.eks.cluster import Cluster, ClusterArgs
from components.lib.irsa import irsa_trust_policy
from components.lib.naming import Naming
from components.settings import CLUSTER_SERVICE_CIDR, KUBERNETES_SERVICE_IP, StackSettings
from tests.conftest import component_plan, key_arn, only
from tools.mocks import MASK
from tools.plan import Plan
from tools.preview import REPO_ROOT
from tools.program import capture, run_program
from tools.project import StackConfig

EKS = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
ADDON = "aws:eks/addon:Addon"
TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"


@pytest.fixture
def cluster(plan: Plan) -> Plan:
    return component_plan(plan, "exposcholar:cluster:Cluster")


def test_control_plane(cluster: Plan, plan: Plan, stack_settings: dict[str, StackSettings]) -> None:
    settings = stack_settings[plan.stack].cluster
    eks = only(cluster, EKS).inputs
    assert eks["name"] == f"exposcholar-{plan.stack}-cluster-eks"
    assert eks["version"] == settings.version == "1.33"
    vpc = eks["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is True
    assert vpc["publicAccessCidrs"] == list(settings.public_access_cidrs) == ["203.0.113.0/24"]
    assert "0.0.0.0/0" not in vpc["publicAccessCidrs"]
    assert vpc["subnetIds"] == plan.outputs["privateSubnetIds"]
    encryption = eks["encryptionConfig"]
    assert encryption["resources"] == ["secrets"]
    assert encryption["provider"]["keyArn"] == key_arn(plan, "cluster")
    assert eks["enabledClusterLogTypes"] == [
        "api", "audit", "authenticator", "controllerManager", "scheduler"
    ]  # fmt: skip
    assert eks["accessConfig"]["authenticationMode"] == "API"
    assert eks["accessConfig"]["bootstrapClusterCreatorAdminPermissions"] is False
    assert eks["bootstrapSelfManagedAddons"] is False
    assert eks["deletionProtection"] is True
    # explicit, so NetworkPolicies can name the kubernetes Service (its first address)
    network = eks["kubernetesNetworkConfig"]
    assert network == {"ipFamily": "ipv4", "serviceIpv4Cidr": CLUSTER_SERVICE_CIDR}
    first = next(ipaddress.ip_network(CLUSTER_SERVICE_CIDR).hosts())
    assert str(first) == KUBERNETES_SERVICE_IP


def test_control_plane_logs_are_retained(
    cluster: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    eks = only(cluster, EKS)
    group = only(cluster, "aws:cloudwatch/logGroup:LogGroup")
    assert group.inputs["name"] == f"/aws/eks/{eks.inputs['name']}/cluster"
    assert (
        group.inputs["retentionInDays"] == stack_settings[cluster.stack].cluster.log_retention_days
    )
    assert group.urn in eks.dependencies


def test_public_endpoint_is_off_without_cidrs(stack_configs: dict[str, StackConfig]) -> None:
    config = stack_configs["staging"]
    values = {**config.values, "exposcholar:clusterPublicAccessCidrs": "[]"}
    plan = run_program(REPO_ROOT, StackConfig(config.stack, values, config.secret_keys, ()))
    vpc = only(plan, EKS).inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is False
    assert vpc["endpointPrivateAccess"] is True
    assert "publicAccessCidrs" not in vpc


def test_access_entries_for_admins_viewers_and_the_workflow_roles(
    cluster: Plan, plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    """People and the CI deploy role administer; viewers and the CI preview role view, and the
    preview role reads Secrets only where the load balancer controller's chart looks one up
    while rendering (kube-system), never in the application's namespace."""
    settings = stack_settings[cluster.stack]
    entries = {
        e.inputs["principalArn"]: e for e in cluster.of_type("aws:eks/accessEntry:AccessEntry")
    }
    policies: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for association in cluster.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation"):
        inputs = association.inputs
        policies.setdefault(inputs["principalArn"], []).append(
            (inputs["policyArn"].rsplit("/", 1)[1], inputs["accessScope"])
        )
    cluster_wide: dict[str, Any] = {"type": "cluster"}
    admin = [("AmazonEKSClusterAdminPolicy", cluster_wide)]
    expected = {arn: ("exposcholar:admins", admin) for arn in settings.account.admin_role_arns}
    expected |= {
        arn: ("exposcholar:viewers", [("AmazonEKSViewPolicy", cluster_wide)])
        for arn in settings.cluster.read_only_role_arns
    }
    expected[plan.outputs["githubDeployRoleArn"]] = ("exposcholar:admins", admin)
    expected[plan.outputs["githubPreviewRoleArn"]] = (
        "exposcholar:previewers",
        [
            ("AmazonEKSViewPolicy", cluster_wide),
            ("AmazonEKSAdminViewPolicy", {"type": "namespace", "namespaces": ["kube-system"]}),
        ],
    )
    assert set(entries) == set(policies) == set(expected)
    for arn, (group, granted) in expected.items():
        assert entries[arn].inputs["kubernetesGroups"] == [group]
        assert sorted(policies[arn], key=str) == sorted(granted, key=str), arn
    assert len(settings.cluster.read_only_role_arns) == (1 if cluster.stack == "prod" else 0)


def test_oidc_provider_for_irsa(cluster: Plan) -> None:
    eks = only(cluster, EKS)
    provider = only(cluster, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert provider.inputs["url"] == eks.outputs["identities"][0]["oidcs"][0]["issuer"]
    assert provider.inputs["clientIdLists"] == ["sts.amazonaws.com"]


def _irsa_roles(plan: Plan) -> dict[str, Any]:
    """Roles assumed through the cluster's OIDC issuer (GitHub's roles are tested elsewhere)."""
    return {
        r.name: json.loads(r.inputs["assumeRolePolicy"])
        for r in plan.of_type("aws:iam/role:Role")
        if "AssumeRoleWithWebIdentity" in r.inputs["assumeRolePolicy"]
        and "token.actions.githubusercontent.com" not in r.inputs["assumeRolePolicy"]
    }


def test_irsa_trust_names_issuer_audience_and_exact_service_account(plan: Plan) -> None:
    cluster = component_plan(plan, "exposcholar:cluster:Cluster")
    provider = only(cluster, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    issuer = provider.inputs["url"].removeprefix("https://")
    roles = _irsa_roles(plan)
    expected = {
        "cluster-addon-vpc-cni-role": "system:serviceaccount:kube-system:aws-node",
        "addons-aws-ebs-csi-driver-role": "system:serviceaccount:kube-system:ebs-csi-controller-sa",
        "autoscaler-irsa": "system:serviceaccount:kube-system:cluster-autoscaler",
        "lb-controller-role": "system:serviceaccount:kube-system:aws-load-balancer-controller",
        "app-server-role": "system:serviceaccount:exposcholar:server",
        "app-database-credentials-role": "system:serviceaccount:exposcholar:database-credentials",
        **{
            f"backups-{job}-role": f"system:serviceaccount:exposcholar:{job}"
            for job in ("backup-postgres", "backup-redis", "backup-media", "restore-test")
        },
    }
    assert set(roles) == set(expected)
    for name, subject in expected.items():
        (statement,) = roles[name]["Statement"]
        assert statement["Principal"] == {"Federated": provider.outputs["arn"]}
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Condition"] == {
            "StringEquals": {f"{issuer}:aud": "sts.amazonaws.com", f"{issuer}:sub": subject}
        }


def test_irsa_trust_policy_function() -> None:
    policy = json.loads(
        irsa_trust_policy(
            "arn:aws:iam::1:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC",
            "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC",
            "exposcholar",
            "server",
        )
    )
    condition = policy["Statement"][0]["Condition"]
    assert list(condition) == ["StringEquals"], "exact match only, never StringLike wildcards"
    assert condition["StringEquals"] == {
        "oidc.eks.eu-west-1.amazonaws.com/id/ABC:aud": "sts.amazonaws.com",
        "oidc.eks.eu-west-1.amazonaws.com/id/ABC:sub": "system:serviceaccount:exposcholar:server",
    }


def test_node_role_has_no_cni_permissions(cluster: Plan) -> None:
    role = next(r for r in cluster.of_type("aws:iam/role:Role") if r.name == "cluster-node-role")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "ec2.amazonaws.com"}
    attached = {
        a.inputs["policyArn"].rsplit("/", 1)[-1]
        for a in cluster.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if a.name.startswith("cluster-node-role")
    }
    assert attached == {"AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly"}


@pytest.mark.parametrize("role", ["system", "app"])
def test_launch_template_is_hardened(plan: Plan, role: str) -> None:
    nodes = plan.subtree(next(c.urn for c in plan.resources if c.name == f"nodes-{role}"))
    template = only(nodes, TEMPLATE).inputs
    metadata = template["metadataOptions"]
    assert metadata["httpTokens"] == "required"
    assert metadata["httpPutResponseHopLimit"] == 1
    assert metadata["httpEndpoint"] == "enabled"
    (device,) = template["blockDeviceMappings"]
    assert device["ebs"]["encrypted"] == "true"
    assert device["ebs"]["volumeType"] == "gp3"
    (interface,) = template["networkInterfaces"]
    assert interface["associatePublicIpAddress"] == "false"
    group = only(nodes, NODE_GROUP)
    assert group.inputs["launchTemplate"]["id"] == only(nodes, TEMPLATE).id


@pytest.mark.parametrize(
    ("stack", "system", "app"), [("staging", (1, 2, 1), (1, 4, 2)), ("prod", (2, 3, 2), (3, 12, 3))]
)
def test_node_groups_sizes_and_autoscaling(
    plans: dict[str, Plan], stack: str, system: tuple[int, int, int], app: tuple[int, int, int]
) -> None:
    plan = plans[stack]
    cluster_name = f"exposcholar-{stack}-cluster-eks"
    groups = {g.inputs["nodeGroupName"].rsplit("-", 1)[-1]: g for g in plan.of_type(NODE_GROUP)}
    assert set(groups) == {"system", "app"}
    for role, (low, high, desired) in (("system", system), ("app", app)):
        group = groups[role]
        scaling = group.inputs["scalingConfig"]
        assert (scaling["minSize"], scaling["maxSize"], scaling["desiredSize"]) == (
            low,
            high,
            desired,
        )
        assert group.inputs["tags"]["k8s.io/cluster-autoscaler/enabled"] == "true"
        assert group.inputs["tags"][f"k8s.io/cluster-autoscaler/{cluster_name}"] == "owned"
        assert group.inputs["subnetIds"] == plan.outputs["privateSubnetIds"]
        assert group.inputs["amiType"] == "AL2023_x86_64_STANDARD"
        assert group.inputs["labels"]["exposcholar.io/pool"] == role
    assert groups["system"].inputs["taints"] == [
        {"key": "CriticalAddonsOnly", "value": "true", "effect": "NO_SCHEDULE"}
    ]
    assert not groups["app"].inputs.get("taints")


def test_addons_are_pinned_and_ordered_around_the_nodes(
    plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    versions = stack_settings[plan.stack].cluster.addons
    addons = {a.inputs["addonName"]: a for a in plan.of_type(ADDON)}
    assert set(addons) == set(BEFORE_COMPUTE) | set(AFTER_COMPUTE)
    for name, addon in addons.items():
        assert addon.inputs["addonVersion"] == versions[name]
        assert addon.inputs["resolveConflictsOnUpdate"] == "OVERWRITE"
    node_groups = {g.urn for g in plan.of_type(NODE_GROUP)}
    assert len(node_groups) == 2, "the system and app pools: an empty set is a subset of anything"
    for name in BEFORE_COMPUTE:  # nodes become Ready only with these
        for group in plan.of_type(NODE_GROUP):
            assert addons[name].urn in group.dependencies, (name, group.name)
    for name in AFTER_COMPUTE:  # these need nodes to schedule on
        assert node_groups <= set(addons[name].dependencies), name
    roles = {r.name: r for r in plan.of_type("aws:iam/role:Role")}
    assert (
        addons["vpc-cni"].inputs["serviceAccountRoleArn"]
        == roles["cluster-addon-vpc-cni-role"].outputs["arn"]
    )
    assert (
        addons["aws-ebs-csi-driver"].inputs["serviceAccountRoleArn"]
        == (roles["addons-aws-ebs-csi-driver-role"].outputs["arn"])
    )


def test_default_storage_class_is_encrypted_gp3(plan: Plan) -> None:
    storage_class = only(plan, "kubernetes:storage.k8s.io/v1:StorageClass")
    inputs = storage_class.inputs
    assert (
        inputs["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    )
    assert inputs["provisioner"] == "ebs.csi.aws.com"
    assert inputs["parameters"] == {"type": "gp3", "encrypted": "true", "fsType": "ext4"}
    assert inputs["volumeBindingMode"] == "WaitForFirstConsumer"
    k8s = only(plan, "pulumi:providers:kubernetes")
    assert storage_class.provider and storage_class.provider.startswith(k8s.urn)


def test_kubernetes_provider_uses_the_cluster_kubeconfig_kept_secret(plan: Plan) -> None:
    k8s = only(plan, "pulumi:providers:kubernetes")
    assert k8s.inputs["kubeconfig"] == MASK
    assert plan.outputs["kubeconfig"] == MASK
    assert only(plan, EKS).urn in k8s.dependencies


def test_kubeconfig_authenticates_with_aws_eks_get_token(
    stack_configs: dict[str, StackConfig], stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings["prod"]

    def program() -> None:
        cluster = Cluster(
            "c",
            ClusterArgs(
                settings=settings.cluster,
                naming=Naming.for_stack(settings),
                account_id=settings.account.account_id,
                region=settings.account.region,
                subnet_ids=["subnet-a", "subnet-b"],
                secrets_key_arn="arn:aws:kms:eu-west-1:210987654321:key/k",
                logs_key_arn="arn:aws:kms:eu-west-1:210987654321:key/logs",
                admin_role_arns=settings.account.admin_role_arns,
            ),
        )
        pulumi.export("secret", cluster.kubeconfig)
        pulumi.export("revealed", pulumi.Output.unsecret(cluster.kubeconfig))

    plan = capture(stack_configs["prod"], program)
    assert plan.outputs["secret"] == MASK
    config = json.loads(plan.outputs["revealed"])
    eks = only(plan, EKS)
    (entry,) = config["clusters"]
    assert entry["cluster"]["server"] == eks.outputs["endpoint"]
    assert (
        entry["cluster"]["certificate-authority-data"]
        == eks.outputs["certificateAuthority"]["data"]
    )
    (user,) = config["users"]
    assert user["user"]["exec"]["command"] == "aws"
    assert user["user"]["exec"]["args"] == [
        "eks", "get-token", "--cluster-name", "exposcholar-prod-cluster-eks",
        "--region", "eu-west-1",
    ]  # fmt: skip  # as the caller: each identity reaches the cluster through its own entry
    assert config["current-context"] == "exposcholar-prod-cluster-eks"


def _closure(plan: Plan, urn: str) -> set[str]:
    """Everything ``urn`` depends on, directly or through other resources."""
    seen: set[str] = set()
    todo = [urn]
    while todo:
        for dependency in plan.by_urn(todo.pop()).dependencies:
            if dependency not in seen:
                seen.add(dependency)
                todo.append(dependency)
    return seen


def test_teardown_order_cluster_outlives_nothing_in_the_network(plan: Plan) -> None:
    """Destroy runs in reverse dependency order: the cluster (and all that depends on it: node
    groups, add-ons, Kubernetes objects and the load balancers they make) goes before every
    subnet, route, NAT gateway, endpoint, security group and the VPC itself."""
    network = component_plan(plan, "exposcholar:network:Network")
    eks = only(plan, EKS)
    kinds = {
        "aws:ec2/natGateway:NatGateway", "aws:ec2/route:Route", "aws:ec2/subnet:Subnet",
        "aws:ec2/vpcEndpoint:VpcEndpoint", "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/internetGateway:InternetGateway", "aws:ec2/vpc:Vpc",
        "aws:ec2/routeTableAssociation:RouteTableAssociation",
    }  # fmt: skip
    needed = {r.urn for r in network.resources if r.type in kinds}
    assert len(needed) > 20
    assert needed <= _closure(plan, eks.urn)
    groups = plan.of_type(NODE_GROUP)
    assert len(groups) == 2, [g.name for g in groups]
    for group in groups:
        assert eks.urn in _closure(plan, group.urn)
    storage_class = only(plan, "kubernetes:storage.k8s.io/v1:StorageClass")
    k8s = only(plan, "pulumi:providers:kubernetes")
    assert eks.urn in _closure(plan, k8s.urn)
    assert storage_class.provider and storage_class.provider.startswith(k8s.urn)
