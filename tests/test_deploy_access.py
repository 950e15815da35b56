"""The deploy path's AWS side: GitHub's OIDC provider and the preview and deploy roles the
workflows assume, for both stacks and built alone with chosen settings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.aws.deploy_access import (
    ATTACHABLE_POLICIES,
    DEPLOY_SESSION_SECONDS,
    POWER_USER,
    READ_ONLY,
    GitHubDeployAccess,
    GitHubDeployAccessArgs,
    github_subject,
    github_trust_policy,
)
from components.lib.naming import Naming
from components.settings import DeploySettings, StackSettings
from tests.conftest import component_plan, only
from tools.mocks import CapturedResource
from tools.plan import Plan
from tools.program import capture
from tools.project import StackConfig

COMPONENT = "exposcholar:deploy:GitHubDeployAccess"
ROLE = "aws:iam/role:Role"
OIDC = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"
HOST = "token.actions.githubusercontent.com"


def _role(access: Plan, suffix: str) -> CapturedResource:
    (role,) = [r for r in access.of_type(ROLE) if r.name.endswith(f"-{suffix}")]
    return role


def _attached(access: Plan, role: CapturedResource) -> tuple[list[str], dict[str, Any]]:
    """Managed policy ARNs and the inline policy document of ``role``."""
    prefix = role.name
    managed = [
        str(r.inputs["policyArn"])
        for r in access.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if r.name.startswith(f"{prefix}-")
    ]
    (inline,) = [
        r for r in access.of_type("aws:iam/rolePolicy:RolePolicy") if r.name == f"{prefix}-policy"
    ]
    return managed, json.loads(str(inline.inputs["policy"]))


def _statements(document: dict[str, Any], effect: str) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in document["Statement"] if s["Effect"] == effect}


@pytest.fixture
def access(plan: Plan) -> Plan:
    return component_plan(plan, COMPONENT)


def test_trust_policies_name_one_repository_and_one_kind_of_job(
    access: Plan, plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings[plan.stack]
    repo = settings.deploy.repository
    provider = only(access, OIDC)
    assert provider.inputs["url"] == f"https://{HOST}"
    assert provider.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    assert "thumbprintLists" not in provider.inputs  # AWS validates GitHub through its CAs
    expected = {
        "preview": f"repo:{repo}:pull_request",
        "deploy": (
            f"repo:{repo}:environment:production"
            if settings.is_production
            else f"repo:{repo}:ref:refs/heads/main"
        ),
    }
    for suffix, subject in expected.items():
        trust = json.loads(str(_role(access, suffix).inputs["assumeRolePolicy"]))
        (statement,) = trust["Statement"]
        assert statement["Principal"] == {"Federated": provider.outputs["arn"]}
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Condition"] == {
            "StringEquals": {f"{HOST}:aud": "sts.amazonaws.com", f"{HOST}:sub": subject}
        }
        assert "*" not in json.dumps(statement)


def test_preview_role_reads_but_never_platform_data(
    access: Plan, plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    deploy = stack_settings[plan.stack].deploy
    role = _role(access, "preview")
    assert role.inputs["name"] == f"exposcholar-{plan.stack}-deploy-github-preview"
    managed, document = _attached(access, role)
    assert managed == [READ_ONLY]
    allowed = _statements(document, "Allow")
    assert allowed["StateObjects"]["Action"] == ["s3:GetObject"]  # previews take no lock
    assert allowed["StateObjects"]["Resource"] == [f"arn:aws:s3:::{deploy.state_bucket}/*"]
    assert allowed["StackSecrets"] == {
        "Sid": "StackSecrets",
        "Effect": "Allow",
        "Action": ["kms:Decrypt"],
        "Resource": [deploy.secrets_key_arn],
    }
    assert "sts:AssumeRole" not in json.dumps(document), "no other identity from a PR"
    denied = _statements(document, "Deny")
    data = [
        r.inputs["bucket"]
        for r in plan.of_type("aws:s3/bucket:Bucket")
        if not r.name.endswith("-static")  # the public site's files
    ]
    # backups, media, logs; in prod also the backups' replica and its logs bucket
    assert len(data) == (5 if plan.stack == "prod" else 3)
    assert set(denied["NoPlatformData"]["Resource"]) == {f"arn:aws:s3:::{b}/*" for b in data}
    assert "secretsmanager:GetSecretValue" in denied["NoSecretValues"]["Action"]


def test_deploy_role_is_scoped_to_the_stack_and_cannot_widen_itself(
    access: Plan, plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings[plan.stack]
    role = _role(access, "deploy")
    assert role.inputs["maxSessionDuration"] == DEPLOY_SESSION_SECONDS
    managed, document = _attached(access, role)
    assert managed == [POWER_USER]
    allowed = _statements(document, "Allow")
    account = settings.account.account_id
    assert allowed["OwnRoles"]["Resource"] == [
        f"arn:aws:iam::{account}:role/exposcholar-{plan.stack}-*"
    ]
    assert "iam:PassRole" in allowed["OwnRoles"]["Action"]
    assert not any(a.startswith("iam:") and a.endswith("*") for a in allowed["OwnRoles"]["Action"])
    assert not any("sts:" in json.dumps(s) for s in allowed.values())  # the cluster knows it
    assert set(allowed["StateObjects"]["Action"]) == {
        "s3:GetObject", "s3:PutObject", "s3:DeleteObject"
    }  # fmt: skip
    denied = _statements(document, "Deny")
    attachable = denied["OnlyTheProgramsManagedPolicies"]["Condition"]["ArnNotEquals"]
    assert set(attachable["iam:PolicyARN"]) == set(ATTACHABLE_POLICIES)
    assert not any("AdministratorAccess" in p or "IAMFullAccess" in p for p in ATTACHABLE_POLICIES)
    assert denied["NoOtherIdentities"]["Action"] == ["sts:AssumeRole"]
    region = settings.account.region
    assert allowed["OidcProviders"]["Resource"] == [
        f"arn:aws:iam::{account}:oidc-provider/oidc.eks.{region}.amazonaws.com/id/*",
        f"arn:aws:iam::{account}:oidc-provider/token.actions.githubusercontent.com",
    ]
    assert set(denied["NoSelfChange"]["Resource"]) == {
        str(_role(access, suffix).inputs["name"]).join([f"arn:aws:iam::{account}:role/", ""])
        for suffix in ("preview", "deploy")
    }
    assert {"iam:AttachRolePolicy", "iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy"} <= set(
        denied["NoSelfChange"]["Action"]
    )


def test_the_deploy_role_may_attach_every_policy_the_program_attaches(plan: Plan) -> None:
    """Kept in step: a component that starts attaching another managed policy must add it to
    ATTACHABLE_POLICIES, or CI deploys would be refused."""
    access = component_plan(plan, COMPONENT)
    workflow = {r.urn for r in access.resources}
    attached = {
        str(r.inputs["policyArn"])
        for r in plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if r.urn not in workflow
    }
    assert attached == set(ATTACHABLE_POLICIES)


def test_role_arns_are_stack_outputs_once_permissions_exist(access: Plan, plan: Plan) -> None:
    for output, suffix in (("githubPreviewRoleArn", "preview"), ("githubDeployRoleArn", "deploy")):
        assert plan.outputs[output] == _role(access, suffix).outputs["arn"]
    assert only(access, OIDC).protect is (plan.stack == "prod")


def _alone(config: StackConfig, settings: DeploySettings, *, production: bool) -> Plan:
    naming = Naming("exposcholar", "dr", "platform@exposcholar.org", "EXPO-DR")

    def program() -> None:
        GitHubDeployAccess(
            "deploy",
            GitHubDeployAccessArgs(
                settings=settings,
                naming=naming,
                account_id="210987654321",
                production=production,
                data_buckets=["exposcholar-dr-data"],
                region="eu-central-1",
            ),
        )

    return capture(config, program)


def test_a_second_stack_in_the_account_reuses_the_provider_and_other_backends_get_no_grants(
    stack_configs: dict[str, StackConfig],
) -> None:
    existing = f"arn:aws:iam::210987654321:oidc-provider/{HOST}"
    settings = DeploySettings("acme@1/infra@2", existing, None, None)
    plan = _alone(stack_configs["prod"], settings, production=True)
    assert plan.of_type(OIDC) == []
    for suffix, kept in (("preview", "NoPlatformData"), ("deploy", "NoSelfChange")):
        role = _role(plan, suffix)
        trust = json.loads(str(role.inputs["assumeRolePolicy"]))
        assert trust["Statement"][0]["Principal"] == {"Federated": existing}
        _, document = _attached(plan, role)
        sids = {s["Sid"] for s in document["Statement"]}
        assert kept in sids, sids  # the policy is read: the role's own guard is in it
        assert not sids & {"StateList", "StateObjects", "StackSecrets"}
    deploy_trust = json.loads(str(_role(plan, "deploy").inputs["assumeRolePolicy"]))
    condition = deploy_trust["Statement"][0]["Condition"]["StringEquals"]
    assert condition[f"{HOST}:sub"] == "repo:acme@1/infra@2:environment:production"


@pytest.mark.parametrize(
    ("production", "subject"),
    [
        (None, "repo:o/r:pull_request"),
        (False, "repo:o/r:ref:refs/heads/main"),
        (True, "repo:o/r:environment:production"),
    ],
)
def test_subjects(production: bool | None, subject: str) -> None:
    assert github_subject("o/r", production=production) == subject
    policy = json.loads(github_trust_policy("arn:aws:iam::1:oidc-provider/x", subject))
    assert policy["Statement"][0]["Condition"]["StringEquals"][f"{HOST}:sub"] == subject
