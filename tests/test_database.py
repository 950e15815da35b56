"""The Database component: RDS PostgreSQL as the program registers it, for both stacks, and
built alone with chosen client security groups."""

from __future__ import annotations

import json

import pulumi
import pytest

from components.aws.database import Database, DatabaseArgs
from components.lib.aws import Placement
from components.lib.naming import Naming
from components.settings import StackSettings
from tests.conftest import component_plan, key_arn, node_security_group, only
from tools.plan import Plan
from tools.program import capture
from tools.project import StackConfig

INSTANCE = "aws:rds/instance:Instance"


@pytest.fixture
def db(plan: Plan) -> Plan:
    return component_plan(plan, "exposcholar:data:Database")


def _data_key(plan: Plan) -> str:
    return key_arn(plan, "data")


def test_instance_is_encrypted_private_and_production_grade(
    db: Plan, plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings[plan.stack].database
    instance = only(db, INSTANCE).inputs
    data_key = _data_key(plan)
    assert instance["engine"] == "postgres"
    assert instance["engineVersion"] == settings.engine_version == "17"
    assert instance["storageEncrypted"] is True
    assert instance["kmsKeyId"] == data_key
    assert instance["storageType"] == "gp3"
    assert instance["maxAllocatedStorage"] >= instance["allocatedStorage"] >= 20
    assert instance["publiclyAccessible"] is False
    assert instance["deletionProtection"] is True
    assert instance["skipFinalSnapshot"] is False
    assert (
        instance["finalSnapshotIdentifier"] == f"exposcholar-{plan.stack}-database-postgres-final"
    )
    assert instance["copyTagsToSnapshot"] is True
    assert instance["iamDatabaseAuthenticationEnabled"] is True
    assert instance["autoMinorVersionUpgrade"] is True
    assert instance["performanceInsightsEnabled"] is True
    assert instance["performanceInsightsKmsKeyId"] == data_key
    assert instance["enabledCloudwatchLogsExports"] == ["postgresql", "upgrade"]
    assert instance["caCertIdentifier"].startswith("rds-ca-")


def test_master_password_is_managed_by_rds(db: Plan, plan: Plan) -> None:
    instance = only(db, INSTANCE).inputs
    assert instance["manageMasterUserPassword"] is True
    assert "password" not in instance and "passwordWo" not in instance
    assert instance["masterUserSecretKmsKeyId"] == _data_key(plan)
    assert plan.outputs["databaseMasterSecretArn"].startswith("arn:aws:secretsmanager:eu-west-1:")


@pytest.mark.parametrize(
    ("stack", "multi_az", "retention"), [("staging", False, 7), ("prod", True, 14)]
)
def test_availability_and_backups_per_stack(
    plans: dict[str, Plan], stack: str, multi_az: bool, retention: int
) -> None:
    db = component_plan(plans[stack], "exposcholar:data:Database")
    instance = only(db, INSTANCE)
    assert instance.inputs["multiAz"] is multi_az
    assert instance.inputs["backupRetentionPeriod"] == retention
    assert instance.inputs["backupWindow"] == "02:00-03:00"
    assert instance.inputs["maintenanceWindow"] == "sun:04:00-sun:05:00"
    assert instance.protect is (stack == "prod")


def test_parameter_group_forces_tls_and_tracks_queries(
    db: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    group = only(db, "aws:rds/parameterGroup:ParameterGroup")
    assert group.inputs["family"] == "postgres17"
    params = {p["name"]: p for p in group.inputs["parameters"]}
    assert params["rds.force_ssl"]["value"] == "1"
    assert "pg_stat_statements" in params["shared_preload_libraries"]["value"]
    assert params["shared_preload_libraries"]["applyMethod"] == "pending-reboot"
    slow = stack_settings[db.stack].database.slow_query_ms
    assert params["log_min_duration_statement"]["value"] == str(slow)
    instance = only(db, INSTANCE)
    assert instance.inputs["parameterGroupName"] == group.inputs["name"]


def test_runs_in_the_isolated_subnets_behind_its_own_group(db: Plan, plan: Plan) -> None:
    subnets = only(db, "aws:rds/subnetGroup:SubnetGroup")
    assert subnets.inputs["subnetIds"] == plan.outputs["isolatedSubnetIds"]
    group = only(db, "aws:ec2/securityGroup:SecurityGroup")
    instance = only(db, INSTANCE)
    assert instance.inputs["vpcSecurityGroupIds"] == [group.id]
    assert instance.inputs["dbSubnetGroupName"] == subnets.inputs["name"]
    assert not group.inputs.get("ingress") and not group.inputs.get("egress")
    # only the cluster's nodes may connect
    (rule,) = db.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert rule.inputs["referencedSecurityGroupId"] == node_security_group(plan)
    assert (rule.inputs["fromPort"], rule.inputs["toPort"]) == (5432, 5432)


def test_logs_and_monitoring(db: Plan, stack_settings: dict[str, StackSettings]) -> None:
    settings = stack_settings[db.stack].database
    instance = only(db, INSTANCE)
    groups = {g.inputs["name"]: g for g in db.of_type("aws:cloudwatch/logGroup:LogGroup")}
    identifier = instance.inputs["identifier"]
    assert set(groups) == {f"/aws/rds/instance/{identifier}/{k}" for k in ("postgresql", "upgrade")}
    for group in groups.values():
        assert group.inputs["retentionInDays"] == settings.log_retention_days
        assert group.urn in instance.dependencies, "log groups exist before RDS writes to them"
    role = only(db, "aws:iam/role:Role")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "monitoring.rds.amazonaws.com"}
    assert instance.inputs["monitoringRoleArn"].endswith(f":role/{role.inputs['name']}")
    assert instance.inputs["monitoringInterval"] == settings.monitoring_interval_seconds > 0
    attachment = only(db, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert attachment.inputs["policyArn"].endswith("/AmazonRDSEnhancedMonitoringRole")


def test_admits_5432_only_from_the_security_groups_passed_in(
    stack_configs: dict[str, StackConfig], stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings["prod"]

    def program() -> None:
        Database(
            "db",
            DatabaseArgs(
                settings=settings.database,
                naming=Naming.for_stack(settings),
                account_id=settings.account.account_id,
                placement=Placement(
                    vpc_id="vpc-0123456789abcdef0",
                    subnet_ids=["subnet-a", "subnet-b"],
                    allowed_security_group_ids=["sg-nodes", pulumi.Output.from_input("sg-jobs")],
                ),
                kms_key_arn="arn:aws:kms:eu-west-1:210987654321:key/k",
                logs_key_arn="arn:aws:kms:eu-west-1:210987654321:key/logs",
                protect=False,
            ),
        )

    plan = capture(stack_configs["prod"], program)
    rules = plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    group = only(plan, "aws:ec2/securityGroup:SecurityGroup")
    assert sorted(r.inputs["referencedSecurityGroupId"] for r in rules) == ["sg-jobs", "sg-nodes"]
    for rule in rules:
        assert rule.inputs["securityGroupId"] == group.id
        assert (rule.inputs["fromPort"], rule.inputs["toPort"], rule.inputs["ipProtocol"]) == (
            5432,
            5432,
            "tcp",
        )
        assert "cidrIpv4" not in rule.inputs and "cidrIpv6" not in rule.inputs
    assert all(r.name == "db" or r.name.startswith("db-") for r in plan.resources)
    assert not only(plan, INSTANCE).protect
