"""The whole program under mocks, for both stacks: providers, tags, structure, outputs."""

from __future__ import annotations

import importlib
import inspect
import json
from functools import cache
from typing import Any

from components.naming import REQUIRED_TAG_KEYS
from components.settings import parse_settings
from tools.mocks import CapturedResource
from tools.plan import Plan
from tools.project import StackConfig

AWS_PROVIDER = "pulumi:providers:aws"


@cache
def _taggable(typ: str) -> bool:
    _, module_path, cls = typ.split(":")
    package = module_path.split("/", 1)[0]
    module = importlib.import_module(f"pulumi_aws.{package}")
    init = getattr(module, cls)._internal_init
    return "tags" in inspect.signature(init).parameters


def _effective_tags(plan: Plan, resource: CapturedResource) -> dict[str, Any]:
    provider_urn = (resource.provider or "").rsplit("::", 1)[0]
    provider = plan.by_urn(provider_urn)
    defaults = json.loads(provider.inputs["defaultTags"])["tags"]
    return {**defaults, **(resource.inputs.get("tags") or {})}


def test_every_aws_resource_uses_the_explicit_provider_and_carries_required_tags(
    plan: Plan,
) -> None:
    aws_resources = [r for r in plan.resources if r.type.startswith("aws:")]
    assert len(aws_resources) > 30
    tagged = 0
    for resource in aws_resources:
        provider = plan.by_urn((resource.provider or "").rsplit("::", 1)[0])
        assert provider.type == AWS_PROVIDER, resource.urn
        if not _taggable(resource.type):
            continue
        tagged += 1
        tags = _effective_tags(plan, resource)
        missing = [k for k in REQUIRED_TAG_KEYS if not tags.get(k)]
        assert not missing, f"{resource.urn} lacks {missing}"
        assert tags["Environment"] == plan.stack
        assert tags["ManagedBy"] == "pulumi"
        assert tags["Name"].startswith(f"exposcholar-{plan.stack}-{tags['Component']}-")
    assert tagged > 20


def test_provider_is_pinned_to_the_stack_account_and_region(
    plan: Plan, stack_configs: dict[str, StackConfig]
) -> None:
    settings = parse_settings(plan.stack, stack_configs[plan.stack].values)
    providers = {p.name: p for p in plan.of_type(AWS_PROVIDER)}
    expected = {"aws": settings.account.region}
    if settings.storage.replica_region:
        expected["aws-replica"] = settings.storage.replica_region
    assert {name: p.inputs["region"] for name, p in providers.items()} == expected
    for provider in providers.values():
        assert json.loads(provider.inputs["allowedAccountIds"]) == [settings.account.account_id]
        assert json.loads(provider.inputs["defaultTags"])["tags"]["Environment"] == plan.stack


def test_stack_outputs(plan: Plan) -> None:
    outputs = plan.outputs
    assert outputs["vpcId"].startswith("vpc-")
    zones = outputs["availabilityZones"]
    for tier in ("public", "private", "isolated"):
        ids = outputs[f"{tier}SubnetIds"]
        assert len(ids) == len(zones)
        assert all(i.startswith("subnet-") for i in ids)
