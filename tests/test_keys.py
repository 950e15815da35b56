"""KMS keys: one per data domain, rotated, with policies that name who may use them."""

from __future__ import annotations

import json

import pytest

from components.aws.keys import DOMAIN_SERVICES, key_policy
from components.settings import StackSettings
from tests.conftest import component_plan
from tools.plan import Plan

KEY = "aws:kms/key:Key"


@pytest.mark.parametrize(
    ("stack", "domains"),
    [
        ("staging", {"data", "backups", "storage", "cluster", "images"}),
        ("prod", {"data", "backups", "storage", "cluster", "images", "backups-replica"}),
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
