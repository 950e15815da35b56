"""The whole program under mocks, for both stacks: providers, tags, structure, outputs."""

from __future__ import annotations

import importlib
import inspect
import json
import re
from functools import cache
from typing import Any

from components.lib.naming import REQUIRED_TAG_KEYS
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
    assert len(zones) >= 2, zones
    for tier in ("public", "private", "isolated"):
        ids = outputs[f"{tier}SubnetIds"]
        assert len(ids) == len(zones)
        assert all(i.startswith("subnet-") for i in ids)


STATEFUL = {
    "aws:ecr/repository:Repository",
    "aws:rds/instance:Instance",
    "aws:elasticache/replicationGroup:ReplicationGroup",
    "aws:s3/bucket:Bucket",
    "aws:kms/key:Key",
}
PROD_ONLY_TYPES = {
    # present because prod sets backupObjectLockDays > 0 and backupReplicaRegion; staging
    # declares 0 days and no replica (retention and count, the only ways stacks may differ)
    "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
    "aws:s3/bucketReplicationConfig:BucketReplicationConfig",
}
STAGING_ONLY_TYPES = {
    # identity, not safety: staging has its certificate issued and DNS-validated in its zone
    # (appHostedZoneId); prod brings an existing one (appCertificateArn). Both serve TLS 1.2+.
    "aws:acm/certificate:Certificate",
    "aws:acm/certificateValidation:CertificateValidation",
    "aws:route53/record:Record",
}


def test_stacks_create_the_same_kinds_of_resources(
    plans: dict[str, Plan], stack_settings: dict[str, Any]
) -> None:
    staging = set(plans["staging"].counts_by_type())
    prod = set(plans["prod"].counts_by_type())
    assert staging - prod == STAGING_ONLY_TYPES
    assert prod - staging == PROD_ONLY_TYPES
    assert stack_settings["staging"].workloads.hosted_zone_id is not None
    assert stack_settings["prod"].workloads.certificate_arn is not None
    assert stack_settings["staging"].storage.object_lock_days == 0
    assert stack_settings["staging"].storage.replica_region is None


_REFERENCE = re.compile(
    r"(arn:aws|\b(sg|subnet|vpc|rtb|igw|nat|eipalloc|vpce|lt|sgr|fl|db)-[0-9a-f]{8,}|"
    r"\b(staging|prod)\b|123456789012|210987654321|[0-9a-f]{8}-[0-9a-f]{4}-|"
    r"amazonaws\.com|eu-(west|central)-1|exposcholar\.org|\b[0-9a-f]{10,64}\b|"
    r"(?<![\d.])(?!0\.0\.0\.0/0)\d+\.\d+\.\d+\.\d+/\d+)",  # a subnet's range (not "anywhere")
    re.IGNORECASE,  # EXPO-PROD: the cost center names the stack too
)


def _shape(value: Any) -> Any:
    """The value with every reference to another resource, the stack, its account or region
    replaced by a marker: what is left is configuration."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        shaped = [_shape(v) for v in value]
        if shaped and all(v == "<ref>" for v in shaped):
            return "<refs>"
        # one entry per zone or subnet: the count may differ (a size), the entries may not
        if len(shaped) > 1 and all(v == shaped[0] for v in shaped):
            return ["<each>", shaped[0]]
        return shaped
    if isinstance(value, str) and _REFERENCE.search(value):
        return "<ref>"
    return value


def _differences(a: Any, b: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths (keys from the top) at which two shaped values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            found
            for key in a.keys() | b.keys()
            for found in _differences(a.get(key), b.get(key), (*path, str(key)))
        ]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [found for i, (x, y) in enumerate(zip(a, b, strict=True))
                for found in _differences(x, y, (*path, _item(x, i)))]  # fmt: skip
    if (
        isinstance(a, str)
        and isinstance(b, str)
        and (
            path[-1:] in _RENDERED_SIZES
            or path[-2:-1] == ("args",)
            or (path[:1] == ("data",) and path[-1].startswith("rules_"))
        )
    ):
        # configuration files that carry sizes as numbers (the edge's rates, bursts and
        # connection limits per pod, the alert rules' thresholds) and command-line flags
        # (Prometheus's retention): equal once the numbers are set aside
        return [] if _NUMBER.sub("N", a) == _NUMBER.sub("N", b) else [path]
    return [] if a == b else [path]


def _item(value: Any, index: int) -> str:
    """A list item's place in a path: its name when it has one (an environment variable, a
    container), else its index."""
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return str(value["name"])
    return str(index)


_NUMBER = re.compile(r"\d+")
_RENDERED_SIZES = {("limits.conf",), ("server.conf",), ("workers.conf",)}


def test_stacks_differ_only_in_sizes_counts_and_retention(plans: dict[str, Plan]) -> None:
    """Resource by resource (same logical name in both stacks), once references to other
    resources and the stack's identity are set aside, only inputs that carry a size, count,
    retention or zone may differ; every safety flag is the same."""
    allowed = {
        "allocatedStorage", "maxAllocatedStorage", "instanceClass", "nodeType", "instanceTypes",
        "numCacheClusters", "multiAz", "multiAzEnabled", "automaticFailoverEnabled",
        "backupRetentionPeriod", "performanceInsightsRetentionPeriod", "monitoringInterval",
        "retentionInDays", "cidrBlock", "cidrIpv4", "scalingConfig", "rules",
        "objectLockEnabled", "tags", "defaultTags",
        # Kubernetes: quota, requests and limits, replica bounds, scale-down window, log level
        "hard", "resources", "default", "defaultRequest", "maxAllowed", "minReplicas",
        "maxReplicas", "stabilizationWindowSeconds", "DJANGO_LOG_LEVEL",
        # the backups' volumes and the restore test's pg_restore workers (from its CPU)
        "sizeLimit", "RESTORE_TEST_JOBS",
    }  # fmt: skip
    staging = {r.urn.split("::", 2)[2]: r for r in plans["staging"].resources}
    prod = {r.urn.split("::", 2)[2]: r for r in plans["prod"].resources}
    # the pairing by logical name holds: what staging has and prod lacks is its own types only
    unpaired = {staging[key].type for key in staging.keys() - prod.keys()}
    assert unpaired <= STAGING_ONLY_TYPES, unpaired
    for key in staging.keys() & prod.keys():
        differing = _differences(_shape(staging[key].inputs), _shape(prod[key].inputs))
        unexpected = [path for path in differing if not allowed.intersection(path)]
        assert not unexpected, (key, unexpected)


PROTECTED_BY_NAME = {"deploy-github-oidc"}
"""The account's GitHub OIDC provider: other stacks of the account may deploy through it."""


def test_stateful_resources_are_protected_in_prod_only(plan: Plan) -> None:
    stateful = [r for r in plan.resources if r.type in STATEFUL or r.name in PROTECTED_BY_NAME]
    assert len(stateful) >= 9
    for resource in stateful:
        assert resource.protect is (plan.stack == "prod"), resource.urn
    for resource in plan.resources:
        if resource not in stateful:
            assert not resource.protect, resource.urn


def test_data_stores_are_not_reachable_from_anywhere_by_cidr(plan: Plan) -> None:
    """Only the interface endpoints admit a CIDR (the VPC's own, on 443)."""
    rules = plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert len(rules) >= 3, "the database's, the cache's and the endpoints' rules"
    for rule in rules:
        if "cidrIpv4" in rule.inputs:
            assert rule.name == "network-endpoints-https"
            assert rule.inputs["cidrIpv4"] == plan.outputs["vpcCidr"]


def test_every_resource_uses_an_explicit_provider(plan: Plan) -> None:
    """The stack files disable default providers; under mocks that is checked here."""
    custom = [r for r in plan.resources if r.custom and not r.type.startswith("pulumi:providers:")]
    providers = {r.urn for r in plan.resources if r.type.startswith("pulumi:providers:")}
    kinds = {plan.by_urn(urn).type.removeprefix("pulumi:providers:") for urn in providers}
    assert kinds == {"aws", "docker", "kubernetes"}
    assert len(custom) > 100, len(custom)
    for resource in custom:
        assert resource.provider, f"{resource.urn} would use a default provider"
        assert resource.provider.rsplit("::", 1)[0] in providers, resource.urn
