"""KMS keys: one per data domain, rotated, with policies that name who may use them."""

from __future__ import annotations

import json

import pytest

from components.aws.keys import DOMAIN_SERVICES, LOGS_DOMAIN, key_policy, logs_key_policy
from components.settings import StackSettings
from tests.conftest import component_plan
from tools.plan import Plan

KEY = "aws:kms/key:Key"


@pytest.mark.parametrize(
    ("stack", "domains"),
    [
        ("staging", {"data", "backups", "storage", "cluster", "images", "logs"}),
        ("prod", {"data", "backups", "storage", "cluster", "images", "logs", "backups-replica"}),
    ],
)
def test_one_key_per_domain(
    plans: dict[str, Plan], stack_settings: dict[str, StackSettings], stack: str, domains: set[str]
) -> None:
    plan = plans[stack]
    settings = stack_settings[stack]
    keys = component_plan(plan, "exposcholar:security:Keys")
    found = {k.name.removeprefix("keys-"): k for k in keys.of_type(KEY)}
    assert set(found) == domains
    aliases = {a.inputs["name"]: a for a in keys.of_type("aws:kms/alias:Alias")}
    assert set(aliases) == {f"alias/exposcholar-{stack}-keys-{d}" for d in domains}
    for domain, key in found.items():
        assert key.inputs["enableKeyRotation"] is True
        assert key.inputs["rotationPeriodInDays"] == settings.account.kms_key_rotation_days
        assert key.inputs["deletionWindowInDays"] == 30
        assert key.protect is (stack == "prod")
        region = settings.storage.replica_region if domain == "backups-replica" else "eu-west-1"
        assert key.outputs["arn"].startswith(f"arn:aws:kms:{region}:")
        policy = json.loads(key.inputs["policy"])
        admins = next(s for s in policy["Statement"] if s["Sid"] == "KeyAdministrators")
        assert admins["Principal"]["AWS"] == list(settings.account.admin_role_arns)
        if domain == LOGS_DOMAIN:
            account = settings.account
            assert policy == logs_key_policy(
                account.account_id, account.region, account.admin_role_arns
            )
            continue
        use = next(s for s in policy["Statement"] if s["Sid"] == "UseThroughNamedServicesOnly")
        assert use["Condition"]["StringEquals"]["kms:ViaService"] == [
            f"{service}.{region}.amazonaws.com" for service in DOMAIN_SERVICES[domain]
        ]
        alias = aliases[f"alias/exposcholar-{stack}-keys-{domain}"]
        assert alias.inputs["targetKeyId"] == key.outputs["keyId"]
        assert alias.provider == key.provider


def test_key_policy_never_grants_use_outside_the_account_or_the_named_services() -> None:
    policy = key_policy("123456789012", "eu-west-1", ["arn:aws:iam::123456789012:role/a"], ["rds"])
    # the use statement (any principal, conditioned) is among them, so its branch is checked
    assert any(s["Principal"]["AWS"] == "*" for s in policy["Statement"]), policy
    for statement in policy["Statement"]:
        principal = statement["Principal"]["AWS"]
        if principal == "*":
            condition = statement["Condition"]["StringEquals"]
            assert condition["kms:CallerAccount"] == "123456789012"
            assert condition["kms:ViaService"] == ["rds.eu-west-1.amazonaws.com"]
            assert "kms:*" not in statement["Action"]
        else:
            assert "123456789012" in json.dumps(principal)
    admin = policy["Statement"][1]
    assert not {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"} & set(admin["Action"])


def test_logs_key_serves_cloudwatch_logs_only_for_this_accounts_log_groups() -> None:
    policy = logs_key_policy("123456789012", "eu-west-1", ["arn:aws:iam::123456789012:role/a"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    logs = statements["CloudWatchLogsForThisAccountsLogGroups"]
    assert logs["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    assert logs["Condition"] == {
        "ArnLike": {
            "kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:eu-west-1:123456789012:log-group:*"
        }
    }
    assert "kms:*" not in logs["Action"] and "kms:CreateGrant" not in logs["Action"]
    # no other statement admits a principal outside the account
    for sid, statement in statements.items():
        if sid != "CloudWatchLogsForThisAccountsLogGroups":
            assert "123456789012" in json.dumps(statement["Principal"]), sid


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_every_log_group_is_encrypted_with_the_logs_key(plans: dict[str, Plan], stack: str) -> None:
    """Flow logs, the EKS control plane, PostgreSQL and Redis: all under the logs key (never
    the AWS-owned one), passed as a reference to the key resource."""
    plan = plans[stack]
    keys = component_plan(plan, "exposcholar:security:Keys")
    (logs_key,) = [k for k in keys.of_type(KEY) if k.name == f"keys-{LOGS_DOMAIN}"]
    groups = plan.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert {g.inputs["name"].split("/")[2] for g in groups} >= {"vpc", "eks", "rds", "elasticache"}
    for group in groups:
        assert group.inputs.get("kmsKeyId") == logs_key.outputs["arn"], group.name
        assert logs_key.urn in group.property_dependencies.get("kmsKeyId", []), group.name
