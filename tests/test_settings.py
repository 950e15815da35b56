"""Stack settings: both stacks load, and every bad value is refused with a message naming the
key, the value given and what was expected, all problems reported together."""

from __future__ import annotations

import json

import pulumi
import pytest

from components.settings import (
    KEYS,
    KEYS_BY_NAME,
    NatGatewayMode,
    RateLimit,
    SettingsError,
    StackSettings,
    parse_settings,
)
from components.settings.parsers import InvalidValueError as Invalid
from components.settings.parsers import cidr_allowlist, port
from components.settings.rules import Quantity, cpu_quantity, instance_type, memory_quantity
from components.settings.subnets import Tier
from components.settings.windows import daily_window, weekly_window, windows_overlap
from tools.project import StackConfig

P = "exposcholar:"


def _parse(config: StackConfig, **changes: str | None) -> StackSettings:
    raw = dict(config.values)
    for key, value in changes.items():
        full = key if ":" in key else P + key
        if value is None:
            raw.pop(full, None)
        else:
            raw[full] = value
    return parse_settings(config.stack, raw)


def test_both_stacks_load(stack_configs: dict[str, StackConfig]) -> None:
    staging = _parse(stack_configs["staging"])
    prod = _parse(stack_configs["prod"])
    assert staging.stack == "staging" and prod.stack == "prod"
    assert staging.network.nat_gateways is NatGatewayMode.SINGLE
    assert staging.network.nat_gateway_count == 1
    assert prod.network.nat_gateways is NatGatewayMode.ONE_PER_ZONE
    assert prod.network.nat_gateway_count == 3
    assert prod.network.availability_zones == ("eu-west-1a", "eu-west-1b", "eu-west-1c")
    assert prod.network.subnet_prefixes == {Tier.PUBLIC: 22, Tier.PRIVATE: 19, Tier.ISOLATED: 22}
    assert prod.is_production and not staging.is_production


def test_settings_are_frozen(stack_configs: dict[str, StackConfig]) -> None:
    settings = _parse(stack_configs["prod"])
    with pytest.raises(AttributeError):
        settings.network.vpc_cidr = "10.99.0.0/16"  # type: ignore[misc]


def test_secret_never_shows_in_repr(stack_configs: dict[str, StackConfig]) -> None:
    settings = _parse(
        stack_configs["staging"], alertWebhookUrl="https://hooks.example.org/T0/SECRETXYZ"
    )
    assert "SECRETXYZ" not in repr(settings)


BAD_VALUES: list[tuple[str, str | None, str]] = [
    # (key, value given, fragment of what is expected)
    ("region", "europe-1", "AWS region"),
    ("accountId", "12345", "12-digit"),
    ("accountId", "12345678901a", "12-digit"),
    ("owner", "platform-team", "email address"),
    ("costCenter", "x", "2 to 32"),
    ("costCenter", "has space", "2 to 32"),
    ("vpcCidr", "10.20.0.0/33", "IPv4 CIDR"),
    ("vpcCidr", "10.20.0.1/16", "host bits zero"),
    ("vpcCidr", "8.8.0.0/16", "private (RFC 1918)"),
    ("vpcCidr", "172.20.0.0/16", "apart from the cluster's Service addresses 172.20.0.0/16"),
    ("vpcCidr", "10.0.0.0/8", "from /16 to /22"),
    ("vpcCidr", "10.20.0.0/23", "from /16 to /22"),
    ("vpcCidr", "10.20.0.0/20", "room for the subnet plan"),
    ("availabilityZones", '["eu-west-1a"]', "2 or 3 availability zones"),
    ("availabilityZones", json.dumps([f"eu-west-1{z}" for z in "abcd"]), "2 or 3"),
    ("availabilityZones", '["eu-west-1a", "eu-west-1a"]', "distinct"),
    ("availabilityZones", '["us-east-1a", "us-east-1b"]', "region eu-west-1"),
    ("availabilityZones", "eu-west-1a,eu-west-1b", "a list of strings"),
    ("publicSubnetPrefix", "29", "from 17 to 28"),
    ("privateSubnetPrefix", "16", "from 17 to 28"),
    ("isolatedSubnetPrefix", "abc", "an integer"),
    ("natGateways", "two", "one of one-per-zone, single"),
    ("interfaceEndpoints", "yes", "true or false"),
    ("flowLogRetentionDays", "45", "CloudWatch Logs retention"),
    ("flowLogTrafficType", "all", "one of ALL, ACCEPT, REJECT"),
    ("alertEmail", "alerts@", "email address"),
    ("alertWebhookUrl", "http://hooks.example.org/T0", "https://"),
    ("alertWebhookUrl", "https://", "https://"),
    ("alertSmtpSmarthost", "email-smtp.eu-west-1.amazonaws.com", "host:port"),
    ("alertSmtpSmarthost", "smtp.example.org:70000", "host:port"),
    ("alertSmtpSmarthost", "SMTP.Example.org:587", "host:port"),
    ("alertSmtpFrom", "alertmanager", "email address"),
    ("alertSmtpUsername", "user name", "without spaces"),
    ("alertSmtpUsername", "", "1-256 printable"),
    ("alertSmtpPassword", "two words", "without spaces"),
    ("alertSmtpPassword", None, "pulumi config set --secret"),
    ("alertDeadMansSwitchUrl", "http://hc-ping.example.org/uuid", "https://"),
    ("alertDeadMansSwitchUrl", None, "pulumi config set --secret"),
    ("grafanaAdminPassword", "too-short", "16-128 printable"),
    ("grafanaAdminPassword", "sixteen or more but spaced", "without spaces"),
    ("grafanaAdminPassword", None, "pulumi config set --secret"),
    ("region", None, "set it in the stack file"),
    ("stackRole", "prod", "one of production, staging"),
    ("stackRole", None, "set it in the stack file"),
    ("githubRepository", "https://github.com/exposcholar/infrastructure", "owner/name"),
    ("githubRepository", "exposcholar/infra structure", "owner/name"),
    (
        "githubOidcProviderArn",
        "arn:aws:iam::999999999999:oidc-provider/token.actions.githubusercontent.com",
        "arn:aws:iam::123456789012:oidc-provider/",
    ),
    (
        "githubOidcProviderArn",
        "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/X",
        "GitHub OIDC provider",
    ),
    ("pulumiStateBucket", "Pulumi_State", "S3 bucket name"),
    ("pulumiSecretsKeyArn", "arn:aws:kms:eu-west-1:123456789012:alias/pulumi", "KMS key ARN"),
    ("alertWebhookUrl", None, "pulumi config set --secret"),
    ("vpcCidrr", "10.20.0.0/16", "no such key"),
    ("adminRoleArns", '["arn:aws:iam::999999999999:role/admin"]', "account 123456789012"),
    ("adminRoleArns", "[]", "at least one IAM role ARN"),
    ("kmsKeyRotationDays", "30", "from 90 to 2560"),
    ("databaseEngineVersion", "12", "major version, 14 or newer"),
    ("databaseEngineVersion", "17.6", "minor versions are upgraded automatically"),
    ("databaseEngineVersion", "latest", "major version, 14 or newer"),
    ("databaseInstanceClass", "r7g.large", "rds instance type"),
    ("databaseName", "Expo-Scholar", "lower-case identifier"),
    ("databaseAllocatedStorageGb", "10", "from 20 to 65536"),
    ("databaseMaxAllocatedStorageGb", "70000", "from 20 to 65536"),
    ("databaseMaxAllocatedStorageGb", "19", "from 20 to 65536"),
    ("databaseMultiAz", "maybe", "true or false"),
    ("databaseBackupRetentionDays", "36", "from 1 to 35"),
    ("databaseBackupRetentionDays", "3", "at least 7 days in staging"),
    ("databaseBackupWindow", "2am-3am", "hh24:mi-hh24:mi"),
    ("databaseBackupWindow", "02:00-02:15", "at least 30 minutes"),
    ("databaseMaintenanceWindow", "sun:02:30-sun:03:30", "does not overlap databaseBackupWindow"),
    ("databaseMaintenanceWindow", "funday:04:00-sun:05:00", "ddd:hh24:mi-ddd:hh24:mi"),
    ("databaseMaintenanceWindow", "sun:04:00-tue:05:00", "30 minutes to 24 hours"),
    ("databasePerformanceInsightsRetentionDays", "30", "Performance Insights retention"),
    ("databaseMonitoringIntervalSeconds", "0", "never 0"),
    ("databaseSlowQueryMs", "0", "from 1 to 60000"),
    ("databaseLogRetentionDays", "10", "CloudWatch Logs retention"),
    ("cacheEngine", "memcached", "one of redis, valkey"),
    ("cacheEngineVersion", "6.2", "redis engine version"),
    ("cacheNodeType", "cache.r7g", "elasticache instance type"),
    ("cacheNodeCount", "7", "from 1 to 6"),
    ("cacheSnapshotRetentionDays", "0", "from 1 to 35"),
    ("cacheSnapshotWindow", "05:00-05:30", "at least 60 minutes"),
    ("cacheMaintenanceWindow", "tue:01:30-tue:02:30", "does not overlap cacheSnapshotWindow"),
    ("cacheLogRetentionDays", "31", "CloudWatch Logs retention"),
    ("cacheAuthToken", "short", "16 to 128 printable"),
    ("cacheRestoreFrom", "s3://backups/redis/x-0001.rdb", "S3 object ARN of an exported RDB"),
    ("cacheRestoreFrom", "arn:aws:s3:::backups/redis/x.tar.gz", "S3 object ARN of an exported RDB"),
    ("cacheAuthToken", "has a space in the middle of it", "16 to 128 printable"),
    ("backupPostgresRetentionDays", "0", "from 1 to 3650"),
    ("backupRedisRetentionDays", "x", "an integer"),
    ("backupApplicationRetentionDays", "-1", "from 1 to 3650"),
    ("backupNoncurrentVersionDays", "0", "from 1 to 3650"),
    ("abortIncompleteUploadDays", "31", "from 1 to 30"),
    ("backupObjectLockDays", "7", "fewer days than the shortest lifecycle expiry"),
    ("backupReplicaRegion", "eu-west-1", "a region other than the stack's own"),
    ("backupReplicaRegion", "mars-1", "AWS region"),
    ("mediaNoncurrentVersionDays", "0", "from 1 to 3650"),
    ("accessLogRetentionDays", "none", "an integer"),
    ("clusterVersion", "1.29", "1.30 or newer"),
    ("clusterVersion", "1.33.1", "1.30 or newer"),
    ("clusterPublicAccessCidrs", '["0.0.0.0/0"]', "whole internet"),
    ("clusterPublicAccessCidrs", '["203.0.113.1/24"]', "not one"),
    ("clusterReadOnlyRoleArns", '["arn:aws:iam::999999999999:role/x"]', "account 123456789012"),
    ("clusterLogRetentionDays", "8", "CloudWatch Logs retention"),
    ("clusterAddons", '["vpc-cni@v1.20.4-eksbuild.1"]', "missing kube-proxy"),
    ("clusterAddons", '["istio@v1.0.0-eksbuild.1"]', "'istio' is not one of them"),
    ("clusterAddons", '["vpc-cni@latest"]', "EKS build version"),
    ("systemNodeInstanceTypes", "[]", "at least one EC2 instance type"),
    ("systemNodeInstanceTypes", '["m7i.large", "m7g.large"]', "one CPU architecture"),
    ("systemNodeMinSize", "0", "from 1 to 100"),
    ("systemNodeMaxSize", "0", "from 1 to 100"),
    ("systemNodeDesiredSize", "5", "within [systemNodeMinSize, systemNodeMaxSize] = [1, 2]"),
    ("appNodeInstanceTypes", '["banana"]', "ec2 instance type"),
    ("appNodeMinSize", "-1", "from 1 to 100"),
    ("appNodeMaxSize", "101", "from 1 to 100"),
    ("appNodeDesiredSize", "9", "within [appNodeMinSize, appNodeMaxSize] = [1, 4]"),
    ("nodeDiskSizeGb", "10", "from 20 to 1000"),
    ("imageRetentionCount", "0", "from 1 to 1000"),
    ("serverImage", "nginx", "with a tag or digest"),
    (
        "serverImage",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/exposcholar-staging-images-server",
        "with a tag or digest",
    ),
    (
        "serverImage",
        "docker.io/library/python:3.11",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
    ),
    (
        "serverImage",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/exposcholar-staging-images-server:1.0@sha256:abc",
        "with a tag or digest",
    ),
    ("serverImageSource", "no/such/folder", "does not exist"),
    ("webImage", "", "exactly one of webImageSource"),
    ("webImageSource", "components", "a folder with a Dockerfile"),
    (
        "backupImage",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/exposcholar-staging-images-backup:1.0",
        "exactly one of backupImageSource",
    ),
    ("backupImageSource", "tools", "a folder with a Dockerfile"),
    ("edgemetricsImage", "docker.io/someone/mtail:latest", "with a tag or digest"),
    ("edgemetricsImageSource", "components/app/edge", "a folder with a Dockerfile"),
    ("appHost", "Staging.Exposcholar.org", "lower-case fully qualified host name"),
    ("appHost", "localhost", "lower-case fully qualified host name"),
    ("appHost", "-bad-.example.org", "lower-case fully qualified host name"),
    (
        "appCertificateArn",
        "arn:aws:acm:eu-west-1:123456789012:certificate/nope",
        "ACM certificate ARN",
    ),
    (
        "appCertificateArn",
        "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9",
        "stack's region eu-west-1",
    ),
    (
        "appCertificateArn",
        "arn:aws:acm:eu-west-1:999999999999:certificate/0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9",
        "stack's account 123456789012",
    ),
    (
        "appCertificateArn",
        "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9",
        "exactly one of appCertificateArn",
    ),
    ("appHostedZoneId", "zone-1", "Route 53 hosted zone id"),
    ("appHostedZoneId", "", "exactly one of appCertificateArn"),
    ("appWafAclArn", "arn:aws:wafv2:eu-west-1:123456789012:global/webacl/x/1", "regional WAFv2"),
    ("appLogLevel", "verbose", "one of"),
    ("serverMinReplicas", "0", "from 1 to 100"),
    ("serverMaxReplicas", "1", "at least serverMinReplicas (2)"),
    ("serverCpuTargetPercent", "0", "from 1 to 100"),
    ("serverMemoryTargetPercent", "101", "from 1 to 100"),
    ("serverScaleDownStabilizationSeconds", "-1", "from 0 to 3600"),
    ("serverCpuRequest", "0m", "CPU quantity above zero"),
    ("serverCpuRequest", "1.5", "CPU quantity above zero"),
    ("serverCpuLimit", "200m", "at least serverCpuRequest (250m)"),
    ("serverMemoryRequest", "512MB", "memory quantity"),
    ("serverMemoryLimit", "256Mi", "at least serverMemoryRequest (512Mi)"),
    ("serverMemoryLimit", "1Ki", "at least 4Mi"),
    ("namespaceQuotaCpu", "4", "room for the workloads' limits at peak"),
    ("namespaceQuotaMemory", "4Gi", "room for the workloads' limits at peak"),
    ("namespaceQuotaPods", "10", "at least 20: 6 server pods"),
    ("edgeMinReplicas", "0", "from 1 to 100"),
    ("edgeMaxReplicas", "1", "at least edgeMinReplicas (2)"),
    ("edgeCpuLimit", "50m", "at least edgeCpuRequest (100m)"),
    ("edgeCpuRequest", "0m", "CPU quantity above zero"),
    ("edgeMemoryRequest", "64MB", "memory quantity"),
    ("edgeMemoryLimit", "32Mi", "at least edgeMemoryRequest (64Mi)"),
    ("edgeApiRatePerSecond", "0", "from 1 to 100000"),
    ("edgeApiBurst", "0", "from 1 to 100000"),
    ("edgeAuthBurst", "-1", "from 1 to 10000"),
    ("edgeAuthRatePerMinute", "1", "at least edgeMinReplicas (2)"),
    ("edgeBotRatePerMinute", "1", "at least edgeMinReplicas (2)"),
    ("edgeConnectionsPerClient", "1", "at least edgeMinReplicas (2)"),
    ("edgeMaxBodyMb", "0", "from 1 to 1024"),
    ("edgeAllowedCidrs", '["10.0.0.1/8"]', "'10.0.0.1/8' is not one"),
    ("edgeBlockedCidrs", '["203.0.113.0/24", "203.0.113.0/24"]', "distinct CIDRs"),
    ("maintenanceEnabled", "yes", "a boolean"),
    ("maintenanceAllowlist", '["0.0.0.0/0"]', "opens it to the whole internet"),
    ("maintenanceAllowlist", '["not-a-cidr"]', "'not-a-cidr' is not one"),
    ("djangoSecretKey", "django-insecure-" + "x" * 50, "not a 'django-insecure-'"),
    ("djangoSecretKey", "short", "at least 50 characters"),
    ("djangoSecretKey", "ab" * 30, "at least 5 distinct"),
    # backup CronJobs
    ("backupPostgresSchedule", "30 3 * *", "got 4 field(s)"),
    ("backupPostgresSchedule", "30 3 * * 1", "fires every day"),
    ("backupRedisSchedule", "61 2 * * *", "minute field takes 0-59, not 61"),
    ("backupRedisSchedule", "TZ=Europe/Paris 30 2 * * *", "without a TZ= prefix"),
    ("backupMediaSchedule", "0 4-2 * * *", "range '4-2' runs backwards"),
    ("backupMediaSchedule", "@every 1h", "not a descriptor"),
    ("restoreTestSchedule", "0 6 * * 7", "day of week field takes 0-6, not 7"),
    ("restoreTestSchedule", "0 6 * * funday", "day of week field has 'funday'"),
    ("restoreTestSchedule", "*/0 6 * * 1", "a step of 0"),
    ("backupCpuRequest", "0", "CPU quantity above zero"),
    ("backupCpuLimit", "100m", "at least backupCpuRequest (250m)"),
    ("backupMemoryRequest", "lots", "memory quantity"),
    ("backupMemoryLimit", "128Mi", "at least backupMemoryRequest (256Mi)"),
    ("backupScratchGi", "0", "from 1 to 1000"),
    ("backupScratchGi", "26", "at most half of nodeDiskSizeGb (50)"),
    ("restoreTestCpu", "two", "CPU quantity"),
    ("restoreTestMemory", "512Mi", "at least 1Gi"),
    ("restoreTestScratchGi", "39", "at least 2 x databaseAllocatedStorageGb (20)"),
    ("restoreTestScratchGi", "20000", "from 1 to 16384"),
    ("alertDiskFillingUpFreePercent", "60", "from 2 to 50"),
    ("alertDiskAlmostFullFreePercent", "0", "from 1 to 49"),
    ("alertDiskAlmostFullFreePercent", "15", "less than alertDiskFillingUpFreePercent (15)"),
    ("alertNodeMemoryPercent", "100", "from 50 to 99"),
    ("alertNodeCpuPercent", "ninety", "from 50 to 99"),
    ("alertPostgresConnectionsPercent", "20", "from 50 to 99"),
    ("alertPostgresCacheHitPercent", "100", "from 50 to 99"),
    ("alertRedisMemoryPercent", "0.9", "from 50 to 99"),
    ("alertDjango5xxPercent", "0", "from 1 to 99"),
    ("alertDjangoLatencyP95Ms", "5", "from 10 to 60000"),
    ("alertCertificateExpiryDays", "90", "from 7 to 60"),
    ("alertEdgeBlockedPerMinute", "0", "from 1 to 1000000"),
    ("alertEdgeHoneypotPerMinute", "-1", "from 1 to 1000000"),
    ("alertEdgeSpikeFactor", "1", "from 2 to 100"),
    ("alertBackupMaxAgeHours", "24", "from 25 to 168"),
    ("alertRestoreTestMaxAgeDays", "7", "from 8 to 60"),
    ("prometheusRetentionDays", "0", "from 1 to 3650"),
    ("prometheusStorageGb", "5", "from 10 to 16384"),
    ("prometheusRetentionSizeGb", "17", "at most 16 (80% of prometheusStorageGb, 20)"),
    ("prometheusRetentionSizeGb", "0", "from 1 to 16384"),
    ("prometheusCpuRequest", "lots", "CPU"),
    ("prometheusCpuLimit", "100m", "at least prometheusCpuRequest (250m)"),
    ("prometheusMemoryRequest", "1GB", "Mi"),
    ("prometheusMemoryLimit", "512Mi", "at least prometheusMemoryRequest (1Gi)"),
]

PROD_BAD_VALUES: list[tuple[str, str, str]] = [
    ("databaseMultiAz", "false", "true in prod"),
    ("databaseBackupRetentionDays", "7", "at least 14 days in prod"),
    ("cacheNodeCount", "1", "at least 2 nodes in prod"),
    ("backupObjectLockDays", "0", "at least 1 in prod"),
    ("backupReplicaRegion", "", "a second region in prod"),
    ("systemNodeMinSize", "1", "from 2 to 100"),
    ("appNodeMinSize", "1", "from 2 to 100"),
    ("serverMinReplicas", "1", "at least 2 in prod"),
    ("edgeMinReplicas", "1", "at least 2 in prod"),
]


@pytest.mark.parametrize(("key", "value", "expected"), PROD_BAD_VALUES)
def test_prod_safety_floors(
    stack_configs: dict[str, StackConfig], key: str, value: str, expected: str
) -> None:
    # the same value is accepted in staging: these are production minimums
    staging = {**stack_configs["staging"].values, P + key: value}
    if key != "databaseBackupRetentionDays":
        parse_settings("staging", staging)
    with pytest.raises(SettingsError) as caught:
        _parse(stack_configs["prod"], **{key: value})
    (problem,) = caught.value.problems
    assert problem.key == P + key
    assert expected in problem.expected


@pytest.mark.parametrize(("key", "value", "expected"), BAD_VALUES)
def test_bad_value_names_key_value_and_expectation(
    stack_configs: dict[str, StackConfig], key: str, value: str | None, expected: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        _parse(stack_configs["staging"], **{key: value})
    # exactly one problem, under the key that was broken: no knock-on errors elsewhere
    assert [p.key for p in caught.value.problems] == [P + key], caught.value
    problem = caught.value.problems[0]
    assert expected in problem.expected
    spec = KEYS_BY_NAME.get(key)
    if value is not None and not (spec and spec.secret):
        assert problem.value == value
    elif value is not None:
        assert problem.value == "****", "a secret's value never shows in an error"
    assert f"{P}{key}: got" in str(caught.value)


def test_secret_value_is_masked_in_errors(stack_configs: dict[str, StackConfig]) -> None:
    with pytest.raises(SettingsError) as caught:
        _parse(stack_configs["staging"], alertWebhookUrl="http://hooks.example.org/TOKEN123")
    assert "TOKEN123" not in str(caught.value)
    assert "exposcholar:alertWebhookUrl: got '****'" in str(caught.value)


def test_foreign_key_that_would_be_ignored_is_refused(
    stack_configs: dict[str, StackConfig],
) -> None:
    with pytest.raises(SettingsError) as caught:
        _parse(stack_configs["staging"], **{"aws:region": "us-east-1"})
    assert [p.key for p in caught.value.problems] == ["aws:region"]
    assert "ignored" in caught.value.problems[0].expected


@pytest.mark.parametrize("name", ["dr", "prod-dr", "upgrade-133", "staging2"])
def test_any_well_formed_stack_name_is_accepted(
    stack_configs: dict[str, StackConfig], name: str
) -> None:
    """Stacks are not a fixed list: a second region or a short-lived trial is one more file."""
    settings = parse_settings(name, stack_configs["staging"].values)
    assert settings.stack == name and not settings.is_production


@pytest.mark.parametrize("name", ["Prod", "x", "1st", "prod--dr", "dr-", "much-too-long-name"])
def test_malformed_stack_name_is_refused(stack_configs: dict[str, StackConfig], name: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_settings(name, stack_configs["staging"].values)
    assert [p.key for p in caught.value.problems] == ["stack"]
    assert "lower-case letters" in caught.value.problems[0].expected


def test_the_role_not_the_name_makes_a_stack_production(
    stack_configs: dict[str, StackConfig],
) -> None:
    """A stack named ``prod`` declared as staging gets staging's floors and no ``protect``; a
    stack of any name declared production gets production's."""
    as_staging = _parse(stack_configs["staging"], stackRole="staging")
    renamed = parse_settings("prod", {**stack_configs["staging"].values})
    assert not as_staging.is_production and not renamed.is_production
    assert parse_settings("dr", stack_configs["prod"].values).is_production
    with pytest.raises(SettingsError) as caught:  # staging's sizes under production's floors
        _parse(stack_configs["staging"], stackRole="production")
    keys = {p.key for p in caught.value.problems}
    assert {P + "databaseMultiAz", P + "cacheNodeCount", P + "backupReplicaRegion"} <= keys


def test_all_problems_are_reported_together(stack_configs: dict[str, StackConfig]) -> None:
    with pytest.raises(SettingsError) as caught:
        _parse(
            stack_configs["prod"],
            vpcCidr="8.8.0.0/16",
            natGateways="many",
            flowLogRetentionDays="2",
            owner="nobody",
        )
    keys = sorted(p.key for p in caught.value.problems)
    assert keys == sorted(
        P + k for k in ("vpcCidr", "natGateways", "flowLogRetentionDays", "owner")
    )
    assert "4 configuration problem(s)" in str(caught.value)


def test_settings_error_is_a_clean_pulumi_run_error() -> None:
    """The Pulumi CLI prints a RunError's message without a Python traceback."""
    assert issubclass(SettingsError, pulumi.RunError)


def test_every_key_has_a_bad_value_case() -> None:
    covered = {key for key, _, _ in BAD_VALUES}
    assert {spec.name for spec in KEYS} <= covered


# Reusable parsers that later components bind to their own keys.


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        (
            "ec2",
            ["m7i.large", "t3.medium", "c6gn.16xlarge", "m7i.metal-24xl"],
            ["m7i", "db.r7g.large", "M7i.large"],
        ),
        ("rds", ["db.r7g.large", "db.t4g.micro"], ["r7g.large", "db.r7g", "cache.r7g.large"]),
        ("elasticache", ["cache.r7g.large", "cache.t4g.small"], ["cache.r7g", "db.r7g.large"]),
    ],
)
def test_instance_type_patterns(kind: str, good: list[str], bad: list[str]) -> None:
    parse = instance_type(kind)
    for value in good:
        assert parse(value) == value
    for value in bad:
        with pytest.raises(Invalid, match="instance type"):
            parse(value)


def test_port_bounds() -> None:
    assert port("5432") == 5432
    for bad in ("0", "65536", "http"):
        with pytest.raises(Invalid, match="from 1 to 65535"):
            port(bad)


def test_cidr_allowlist() -> None:
    parse = cidr_allowlist()
    assert parse('["203.0.113.0/24", "198.51.100.7/32"]') == ("203.0.113.0/24", "198.51.100.7/32")
    with pytest.raises(Invalid, match="whole internet"):
        parse('["0.0.0.0/0"]')
    with pytest.raises(Invalid, match="distinct"):
        parse('["203.0.113.0/24", "203.0.113.0/24"]')
    with pytest.raises(Invalid, match="not one"):
        parse('["203.0.113.1/24"]')
    assert cidr_allowlist(allow_world=True)('["0.0.0.0/0"]') == ("0.0.0.0/0",)


def test_windows() -> None:
    backup = daily_window(30)("23:30-00:30")  # wraps past midnight
    assert windows_overlap(backup, weekly_window(30)("mon:00:00-mon:01:00"))
    assert not windows_overlap(backup, weekly_window(30)("mon:01:00-mon:02:00"))
    assert windows_overlap(
        weekly_window(30)("sun:23:00-mon:01:00"), weekly_window(30)("mon:00:30-mon:01:30")
    )
    with pytest.raises(Invalid):
        daily_window(30)("24:00-01:00")


@pytest.mark.parametrize("group", ["systemNode", "appNode"])
def test_node_group_min_above_max_is_reported_once(
    stack_configs: dict[str, StackConfig], group: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        _parse(stack_configs["staging"], **{f"{group}MinSize": "5", f"{group}MaxSize": "3"})
    (problem,) = caught.value.problems
    assert problem.key == f"{P}{group}MaxSize"
    assert f"at least {group}MinSize (5)" in problem.expected


@pytest.mark.parametrize(
    ("raw", "base"),
    [("250m", 250), ("2", 2000), ("1500m", 1500)],
)
def test_cpu_quantities_compare_in_millicores(raw: str, base: int) -> None:
    assert cpu_quantity(raw) == Quantity(raw, base)


@pytest.mark.parametrize(
    ("raw", "base"),
    [("512Mi", 512 * 2**20), ("2Gi", 2 * 2**30), ("1G", 10**9), ("8388608", 8 * 2**20)],
)
def test_memory_quantities_compare_in_bytes(raw: str, base: int) -> None:
    assert memory_quantity(raw) == Quantity(raw, base)


def test_workload_settings_of_both_stacks(stack_settings: dict[str, StackSettings]) -> None:
    staging, prod = stack_settings["staging"].workloads, stack_settings["prod"].workloads
    # staging creates its certificate in its zone; prod brings one, and a WAF ACL
    assert (staging.certificate_arn, staging.hosted_zone_id) == (None, "Z0123456789STAGINGZONE")
    assert prod.certificate_arn is not None and prod.hosted_zone_id is None
    assert prod.waf_acl_arn is not None
    assert (prod.cpu_target_percent, prod.memory_target_percent) == (70, 80)
    # the quota leaves room for every replica, the rolling-update surge and the migration Job
    assert prod.peak_pods() == 12 + 3 + 1
    assert prod.quota.cpu.base >= prod.peak_pods() * prod.server.cpu_limit.base
    assert repr(prod.django_secret_key) == "Secret(****)"


def test_edge_settings_of_both_stacks(stack_settings: dict[str, StackSettings]) -> None:
    staging, prod = stack_settings["staging"], stack_settings["prod"]
    assert not staging.edge.maintenance.enabled and staging.edge.maintenance.allowlist == ()
    assert prod.edge.min_replicas >= 2
    # the stack-wide API rate, 20/s, is shared by the pods at the replica floor
    assert staging.edge.api == RateLimit(per_minute=1200, burst=40)
    assert staging.edge.per_pod(staging.edge.api) == RateLimit(per_minute=600, burst=20)
    assert prod.edge.per_pod(prod.edge.auth) == RateLimit(per_minute=4, burst=2)  # 10/3, 5/3 up
    # the namespace quota holds both the server and the edge at their peak
    for settings in (staging, prod):
        workloads, edge = settings.workloads, settings.edge
        assert workloads.quota.pods >= workloads.peak_pods() + edge.peak_pods()
        assert workloads.quota.cpu.base >= (
            workloads.peak_pods() * workloads.server.cpu_limit.base
            + edge.peak_pods() * edge.resources.cpu_limit.base
        )


def test_the_quota_counts_the_edge_pods_metrics_sidecars(
    stack_configs: dict[str, StackConfig],
) -> None:
    """Staging's quota holds its peak exactly with the edge's sidecars counted: one more edge
    replica (500m, and 400m of sidecars) no longer fits its CPU, though it would without them
    (it had 2 CPUs spare before the sidecars)."""
    with pytest.raises(SettingsError) as caught:
        _parse(stack_configs["staging"], edgeMaxReplicas="5")
    problems = {p.key: p.expected for p in caught.value.problems}
    assert P + "namespaceQuotaCpu" in problems, caught.value
    assert "metrics sidecars of 400m CPU, 128Mi" in problems[P + "namespaceQuotaCpu"]
