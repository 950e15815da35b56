"""RBAC in the program's own objects, for both stacks: no wildcards, tokens only where the API
is called, and the cluster's access entries (admin and read-only)."""

from __future__ import annotations

from components.settings import StackSettings
from tools.plan import Plan

RBAC = "kubernetes:rbac.authorization.k8s.io/v1:"


def test_roles_name_verbs_and_resources_without_wildcards(plan: Plan) -> None:
    roles = [r for r in plan.resources if r.type in (f"{RBAC}Role", f"{RBAC}ClusterRole")]
    assert roles
    for role in roles:
        for rule in role.inputs["rules"]:
            for key in ("verbs", "resources", "apiGroups", "resourceNames"):
                assert "*" not in rule.get(key, []), (role.name, rule)
            assert rule["verbs"], (role.name, rule)


def test_bindings_grant_to_service_accounts_only(plan: Plan) -> None:
    bindings = [
        r for r in plan.resources if r.type in (f"{RBAC}RoleBinding", f"{RBAC}ClusterRoleBinding")
    ]
    assert len(bindings) >= 2, "the autoscaler's RoleBinding and ClusterRoleBinding at least"
    for binding in bindings:
        for subject in binding.inputs["subjects"]:
            assert subject["kind"] == "ServiceAccount", (binding.name, subject)
        assert binding.inputs["roleRef"]["name"] not in ("cluster-admin", "admin", "edit")


def test_api_tokens_only_where_the_api_is_called(plan: Plan) -> None:
    calls_api = {"cluster-autoscaler"}
    accounts = plan.of_type("kubernetes:core/v1:ServiceAccount")
    assert len(accounts) >= 4
    for account in accounts:
        name = account.inputs["metadata"]["name"]
        assert account.inputs["automountServiceAccountToken"] is (name in calls_api), name


def test_access_entries_map_admins_and_viewers_to_groups(
    plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    """Cluster admin only for the administrators and the CI deploy role, in the admins group;
    everyone else views, in a group of their own (Secrets only where a chart must read one)."""
    settings = stack_settings[plan.stack]
    entries = plan.of_type("aws:eks/accessEntry:AccessEntry")
    policies: dict[str, set[str]] = {}
    for association in plan.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation"):
        policy = association.inputs["policyArn"].rsplit("/", 1)[1]
        policies.setdefault(association.inputs["principalArn"], set()).add(policy)
    admins = {*settings.account.admin_role_arns, plan.outputs["githubDeployRoleArn"]}
    viewers = set(settings.cluster.read_only_role_arns)
    previewers = {plan.outputs["githubPreviewRoleArn"]}
    assert {e.inputs["principalArn"] for e in entries} == admins | viewers | previewers
    for entry in entries:
        arn = entry.inputs["principalArn"]
        (group,) = entry.inputs["kubernetesGroups"]
        if arn in admins:
            assert (policies[arn], group) == ({"AmazonEKSClusterAdminPolicy"}, "exposcholar:admins")
        elif arn in viewers:
            assert (policies[arn], group) == ({"AmazonEKSViewPolicy"}, "exposcholar:viewers")
        else:
            assert policies[arn] == {"AmazonEKSViewPolicy", "AmazonEKSAdminViewPolicy"}
            assert group == "exposcholar:previewers"
