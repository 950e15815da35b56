"""The Cache component: ElastiCache as the program registers it, for both stacks, and built
alone with chosen client security groups."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from components.aws.cache import Cache, CacheArgs
from components.lib.aws import Placement
from components.lib.naming import Naming
from components.settings import StackSettings
from tests.conftest import component_plan, key_arn, node_security_group, only
from tools.mocks import MASK
from tools.plan import Plan
from tools.program import capture, run_program
from tools.project import StackConfig

GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cache(plan: Plan) -> Plan:
    return component_plan(plan, "exposcholar:data:Cache")


def test_encrypted_in_transit_and_at_rest_with_auth(cache: Plan, plan: Plan) -> None:
    group = only(cache, GROUP).inputs
    assert group["engine"] == "redis" and group["engineVersion"] == "7.1"
    assert group["atRestEncryptionEnabled"] is True
    assert group["kmsKeyId"] == key_arn(plan, "data")
    assert group["transitEncryptionEnabled"] is True
    assert group["transitEncryptionMode"] == "required"
    assert group["authToken"] == MASK, "the AUTH token is a secret end to end"
    assert group["authTokenUpdateStrategy"] == "ROTATE"
    assert group["port"] == 6379


@pytest.mark.parametrize(("stack", "nodes", "ha"), [("staging", 1, False), ("prod", 2, True)])
def test_failover_and_multi_az_per_stack(
    plans: dict[str, Plan], stack: str, nodes: int, ha: bool
) -> None:
    group = only(component_plan(plans[stack], "exposcholar:data:Cache"), GROUP)
    assert group.inputs["numCacheClusters"] == nodes
    assert group.inputs["automaticFailoverEnabled"] is ha
    assert group.inputs["multiAzEnabled"] is ha
    assert group.protect is (stack == "prod")


def test_snapshots_are_the_backup_base(
    cache: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings[cache.stack].cache
    group = only(cache, GROUP).inputs
    assert group["snapshotRetentionLimit"] == settings.snapshot_retention_days == 7
    assert group["snapshotWindow"] == "01:00-02:00"
    assert group["maintenanceWindow"] == "sun:05:30-sun:06:30"
    assert group["finalSnapshotIdentifier"] == f"exposcholar-{cache.stack}-cache-redis-final"


def test_slow_and_engine_logs_go_to_retained_groups(
    cache: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    group = only(cache, GROUP).inputs
    logs = {g.inputs["name"]: g for g in cache.of_type("aws:cloudwatch/logGroup:LogGroup")}
    deliveries = {d["logType"]: d for d in group["logDeliveryConfigurations"]}
    assert set(deliveries) == {"slow-log", "engine-log"}
    for kind, delivery in deliveries.items():
        assert delivery["destinationType"] == "cloudwatch-logs"
        assert delivery["destination"] == f"/aws/elasticache/{group['replicationGroupId']}/{kind}"
        assert logs[delivery["destination"]].inputs["retentionInDays"] == (
            stack_settings[cache.stack].cache.log_retention_days
        )


def test_runs_in_the_isolated_subnets_and_admits_only_the_nodes(cache: Plan, plan: Plan) -> None:
    subnets = only(cache, "aws:elasticache/subnetGroup:SubnetGroup")
    assert subnets.inputs["subnetIds"] == plan.outputs["isolatedSubnetIds"]
    group = only(cache, "aws:ec2/securityGroup:SecurityGroup")
    assert only(cache, GROUP).inputs["securityGroupIds"] == [group.id]
    (rule,) = cache.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert rule.inputs["referencedSecurityGroupId"] == node_security_group(plan)
    assert (rule.inputs["fromPort"], rule.inputs["toPort"]) == (6379, 6379)


def test_admits_6379_only_from_the_security_groups_passed_in(
    stack_configs: dict[str, StackConfig], stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings["staging"]

    def program() -> None:
        Cache(
            "redis",
            CacheArgs(
                settings=settings.cache,
                naming=Naming.for_stack(settings),
                placement=Placement(
                    vpc_id="vpc-0123456789abcdef0",
                    subnet_ids=["subnet-a", "subnet-b"],
                    allowed_security_group_ids=["sg-nodes"],
                ),
                kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/k",
                logs_key_arn="arn:aws:kms:eu-west-1:123456789012:key/logs",
                protect=True,
            ),
        )

    plan = capture(stack_configs["staging"], program)
    (rule,) = plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert rule.inputs["referencedSecurityGroupId"] == "sg-nodes"
    assert (rule.inputs["fromPort"], rule.inputs["toPort"]) == (6379, 6379)
    assert "cidrIpv4" not in rule.inputs
    assert only(plan, GROUP).protect


def test_a_restore_rebuilds_the_group_from_an_exported_rdb(
    stack_configs: dict[str, StackConfig],
) -> None:
    """cacheRestoreFrom (docs/runbooks/restore-redis.md): the group is created from the RDB in
    S3; the group's id is fixed, so the old group goes first; and once restored, clearing the
    setting does not replace the group again."""
    arn = "arn:aws:s3:::exposcholar-staging-backups/redis/20261130T0230Z/cache-backup-0001.rdb"
    config = stack_configs["staging"]
    values = {**config.values, "exposcholar:cacheRestoreFrom": arn}
    restoring = run_program(REPO_ROOT, dataclasses.replace(config, values=values))
    group = only(restoring, GROUP)
    assert group.inputs["snapshotArns"] == [arn]
    assert group.options["deleteBeforeReplace"] is True
    assert "snapshotArns" not in group.options["ignoreChanges"], "setting it replaces the group"

    normal = only(run_program(REPO_ROOT, config), GROUP)
    assert "snapshotArns" not in normal.inputs
    assert normal.options["deleteBeforeReplace"] is True
    assert normal.options["ignoreChanges"] == ["snapshotArns"], "clearing it changes nothing"
