"""Typed, validated stack settings: the only module that reads Pulumi configuration.

``load_settings()`` reads the stack's configuration once and returns a frozen
``StackSettings`` tree (one nested dataclass per concern). Every value is validated before any
resource is registered; all problems are collected and raised together as one
``SettingsError`` whose lines each name the key, the value given and what was expected.
``SettingsError`` is a ``pulumi.RunError``, so the Pulumi CLI prints the message without a
Python traceback.

The parsing itself is the pure function ``parse_settings(stack, raw)`` over the raw string
values the CLI hands to the program (integers and booleans as text, arrays as JSON), so it is
tested without a Pulumi runtime. Defaults live in ``Pulumi.yaml`` (the CLI applies them);
``KEYS`` below must list exactly the keys declared there, which a test enforces.

Stacks differ only in sizes, counts, retention and identity (``KeySpec.varies``); every
safety feature is the same in staging and prod, and is not a setting at all where possible.
Where a count or retention is a safety floor in production (Multi-AZ, cache replicas, backup
retention, Object Lock days, the off-site replica), prod's minimum is enforced here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import pulumi
from pulumi.runtime import config as runtime_config

from components.settings.rules import (
    CLOUDWATCH_RETENTION_DAYS,
    PERFORMANCE_INSIGHTS_DAYS,
    InvalidValueError,
    Parser,
    Quantity,
    account_id,
    acm_certificate_arn,
    addon_versions,
    boolean,
    cache_auth_token,
    cache_version,
    choice,
    cidr,
    cidr_allowlist,
    cost_center,
    cpu_quantity,
    daily_window,
    django_secret_key,
    email,
    github_oidc_provider_arn,
    github_repository,
    host_name,
    hosted_zone_id,
    https_url,
    iam_role_arns,
    identifier,
    image_reference,
    instance_type,
    instance_types,
    integer,
    is_graviton,
    kms_key_arn,
    kubernetes_version,
    memory_quantity,
    one_of_ints,
    optional,
    postgres_version,
    region,
    s3_bucket_name,
    string_list,
    wafv2_acl_arn,
    weekly_window,
    windows_overlap,
)
from components.settings.subnets import (
    MAX_ZONES,
    SMALLEST_SUBNET_PREFIX,
    SubnetPlanError,
    Tier,
    plan_subnets,
)

PROJECT = "exposcholar"
STACK_NAME = re.compile(r"^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){1,11}$")
"""Stack names: 2-12 lower-case letters, digits and single dashes, starting with a letter. The
name becomes part of every physical name (``exposcholar-<stack>-...``), and the tightest AWS
limits (IAM role names, ElastiCache group ids) leave room for 12 characters."""
STACK_NAME_RULE = "2-12 lower-case letters, digits and single dashes, starting with a letter"

ALLOWED_FOREIGN_KEYS = frozenset({"pulumi:disable-default-providers"})
"""Keys outside the project namespace that a stack file may set. Anything else (for example
``aws:region``) would be silently ignored by the explicit providers, so it is an error."""

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# Key declarations (kept equal to the config block of Pulumi.yaml by tests)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeySpec:
    """One configuration key: its declared type and whether stacks may differ in it."""

    name: str
    type: str
    """Type declared in Pulumi.yaml: string, integer, boolean or array."""
    varies: bool
    """True for sizes, counts, retention and identity; False for features, which must match."""
    secret: bool = False


def _keys(names: str, type_: str, *, varies: bool = True) -> tuple[KeySpec, ...]:
    return tuple(KeySpec(name, type_, varies) for name in names.split())


KEYS: tuple[KeySpec, ...] = (
    KeySpec("stackRole", "string", varies=True),
    *_keys("region accountId owner costCenter", "string"),
    KeySpec("adminRoleArns", "array", varies=True),
    KeySpec("kmsKeyRotationDays", "integer", varies=True),
    # network
    KeySpec("vpcCidr", "string", varies=True),
    KeySpec("availabilityZones", "array", varies=True),
    *_keys("publicSubnetPrefix privateSubnetPrefix isolatedSubnetPrefix", "integer"),
    KeySpec("natGateways", "string", varies=True),
    KeySpec("interfaceEndpoints", "boolean", varies=False),
    KeySpec("flowLogRetentionDays", "integer", varies=True),
    KeySpec("flowLogTrafficType", "string", varies=False),
    # database
    *_keys("databaseEngineVersion databaseInstanceClass databaseName", "string"),
    *_keys("databaseAllocatedStorageGb databaseMaxAllocatedStorageGb", "integer"),
    KeySpec("databaseMultiAz", "boolean", varies=True),
    KeySpec("databaseBackupRetentionDays", "integer", varies=True),
    *_keys("databaseBackupWindow databaseMaintenanceWindow", "string"),
    *_keys("databasePerformanceInsightsRetentionDays databaseMonitoringIntervalSeconds", "integer"),
    *_keys("databaseSlowQueryMs databaseLogRetentionDays", "integer"),
    # cache
    *_keys("cacheEngine cacheEngineVersion cacheNodeType", "string"),
    *_keys("cacheNodeCount cacheSnapshotRetentionDays cacheLogRetentionDays", "integer"),
    *_keys("cacheSnapshotWindow cacheMaintenanceWindow", "string"),
    KeySpec("cacheAuthToken", "string", varies=True, secret=True),
    # storage and backups
    *_keys(
        "backupPostgresRetentionDays backupRedisRetentionDays backupApplicationRetentionDays "
        "backupNoncurrentVersionDays abortIncompleteUploadDays backupObjectLockDays "
        "mediaNoncurrentVersionDays accessLogRetentionDays",
        "integer",
    ),
    KeySpec("backupReplicaRegion", "string", varies=True),
    # cluster and nodes
    KeySpec("clusterVersion", "string", varies=True),
    *_keys("clusterPublicAccessCidrs clusterReadOnlyRoleArns clusterAddons", "array"),
    KeySpec("clusterLogRetentionDays", "integer", varies=True),
    *_keys("systemNodeInstanceTypes appNodeInstanceTypes", "array"),
    *_keys(
        "systemNodeMinSize systemNodeMaxSize systemNodeDesiredSize "
        "appNodeMinSize appNodeMaxSize appNodeDesiredSize nodeDiskSizeGb",
        "integer",
    ),
    # images
    KeySpec("imageRetentionCount", "integer", varies=True),
    *_keys("serverImageSource webImageSource backupImageSource", "string"),
    *_keys("serverImage webImage backupImage", "string"),
    # workloads
    KeySpec("appHost", "string", varies=True),
    *_keys("appCertificateArn appHostedZoneId appWafAclArn", "string"),
    KeySpec("appLogLevel", "string", varies=True),
    *_keys(
        "serverMinReplicas serverMaxReplicas serverCpuTargetPercent serverMemoryTargetPercent "
        "serverScaleDownStabilizationSeconds namespaceQuotaPods",
        "integer",
    ),
    *_keys(
        "serverCpuRequest serverCpuLimit serverMemoryRequest serverMemoryLimit "
        "namespaceQuotaCpu namespaceQuotaMemory",
        "string",
    ),
    KeySpec("djangoSecretKey", "string", varies=True, secret=True),
    # deploy path (GitHub Actions through OIDC)
    KeySpec("githubRepository", "string", varies=False),
    *_keys("githubOidcProviderArn pulumiStateBucket pulumiSecretsKeyArn", "string"),
    # alerting
    KeySpec("alertEmail", "string", varies=True),
    KeySpec("alertWebhookUrl", "string", varies=True, secret=True),
)
KEYS_BY_NAME = {spec.name: spec for spec in KEYS}


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingsProblem:
    """One invalid or missing value."""

    key: str
    """Fully qualified key, e.g. ``exposcholar:vpcCidr``."""
    value: str | None
    """The value as given (``None`` when missing; masked for secrets)."""
    expected: str

    def __str__(self) -> str:
        given = "nothing (the key is not set)" if self.value is None else repr(self.value)
        return f"{self.key}: got {given}; expected {self.expected}"


class SettingsError(pulumi.RunError):
    """All the problems found in a stack's configuration, reported together."""

    def __init__(self, stack: str, problems: list[SettingsProblem]) -> None:
        self.stack = stack
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(
            f"stack {stack!r} has {len(self.problems)} configuration problem(s):\n{lines}"
        )


# --------------------------------------------------------------------------------------------
# Value types
# --------------------------------------------------------------------------------------------


class StackRole(StrEnum):
    """What a stack is for. The role, never the stack's name, decides the production safety
    floors, ``protect`` on stateful resources, the policy pack's default configuration and the
    deploy path (production stacks deploy only through an approved GitHub environment)."""

    PRODUCTION = "production"
    STAGING = "staging"


class NatGatewayMode(StrEnum):
    ONE_PER_ZONE = "one-per-zone"
    SINGLE = "single"


class FlowLogTrafficType(StrEnum):
    ALL = "ALL"
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class CacheEngine(StrEnum):
    REDIS = "redis"
    VALKEY = "valkey"


@dataclass(frozen=True)
class Secret:
    """A secret setting. Its value never appears in ``repr`` or logs; components turn it into
    a secret Output with ``output()`` so it stays encrypted in state."""

    _value: str = field(repr=False)

    def output(self) -> pulumi.Output[str]:
        return pulumi.Output.secret(self._value)

    def __repr__(self) -> str:
        return "Secret(****)"


# --------------------------------------------------------------------------------------------
# Settings tree
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountSettings:
    region: str
    """AWS region of every regional resource in the stack."""
    account_id: str
    """The only AWS account the provider may act on."""
    owner: str
    """Owner tag: the owning team's mailbox."""
    cost_center: str
    """CostCenter tag."""
    admin_role_arns: tuple[str, ...]
    """IAM roles that administer the stack's KMS keys and the cluster (operators run Pulumi as
    one of them: the kubeconfig authenticates as the caller)."""
    kms_key_rotation_days: int
    """Automatic rotation period of every customer-managed KMS key."""


@dataclass(frozen=True)
class NetworkSettings:
    vpc_cidr: str
    availability_zones: tuple[str, ...]
    subnet_prefixes: Mapping[Tier, int]
    nat_gateways: NatGatewayMode
    interface_endpoints: bool
    flow_log_retention_days: int
    flow_log_traffic_type: FlowLogTrafficType

    @property
    def nat_gateway_count(self) -> int:
        if self.nat_gateways is NatGatewayMode.SINGLE:
            return 1
        return len(self.availability_zones)


@dataclass(frozen=True)
class DatabaseSettings:
    engine_version: str
    instance_class: str
    database_name: str
    allocated_storage_gb: int
    max_allocated_storage_gb: int
    multi_az: bool
    backup_retention_days: int
    backup_window: str
    maintenance_window: str
    performance_insights_retention_days: int
    monitoring_interval_seconds: int
    slow_query_ms: int
    log_retention_days: int


@dataclass(frozen=True)
class CacheSettings:
    engine: CacheEngine
    engine_version: str
    node_type: str
    node_count: int
    snapshot_retention_days: int
    snapshot_window: str
    maintenance_window: str
    log_retention_days: int
    auth_token: Secret

    @property
    def highly_available(self) -> bool:
        """Automatic failover and Multi-AZ need a replica to fail over to."""
        return self.node_count >= 2


@dataclass(frozen=True)
class StorageSettings:
    postgres_retention_days: int
    """Lifecycle expiry of ``postgresql/`` in the backups bucket."""
    redis_retention_days: int
    """Lifecycle expiry of ``redis/``."""
    application_retention_days: int
    """Lifecycle expiry of ``application/`` (media archives)."""
    noncurrent_version_days: int
    """Noncurrent versions in the backups bucket are deleted after this many days."""
    abort_incomplete_upload_days: int
    object_lock_days: int
    """Default governance-mode Object Lock retention on the backups bucket; 0 means none."""
    replica_region: str | None
    """Region of the off-site replica of the backups bucket; None means no replica."""
    media_noncurrent_version_days: int
    access_log_retention_days: int


CLUSTER_ADDONS = (
    "vpc-cni",
    "kube-proxy",
    "eks-pod-identity-agent",
    "coredns",
    "aws-ebs-csi-driver",
    "metrics-server",
)
"""The EKS managed add-ons the cluster runs; each is pinned in ``clusterAddons``."""
IMAGES = ("server", "web", "backup")
"""The container images of the platform, each built from source or given prebuilt."""
PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
"""Image source folders are relative to the project (where Pulumi.yaml is)."""


@dataclass(frozen=True)
class NodeGroupSettings:
    instance_types: tuple[str, ...]
    min_size: int
    max_size: int
    desired_size: int
    """Initial size only: afterwards the cluster autoscaler owns it."""

    @property
    def arm64(self) -> bool:
        return is_graviton(self.instance_types[0])


@dataclass(frozen=True)
class ClusterSettings:
    version: str
    public_access_cidrs: tuple[str, ...]
    """Empty: the public API endpoint is off."""
    read_only_role_arns: tuple[str, ...]
    log_retention_days: int
    addons: Mapping[str, str]
    """Add-on name to pinned version."""
    system_nodes: NodeGroupSettings
    app_nodes: NodeGroupSettings
    node_disk_size_gb: int


@dataclass(frozen=True)
class ImageSettings:
    """One image: built from ``source`` (a folder) or taken as the prebuilt ``reference``."""

    name: str
    source: Path | None
    reference: str | None


@dataclass(frozen=True)
class ImagesSettings:
    retention_count: int
    images: tuple[ImageSettings, ...]


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one container (limits at least the requests)."""

    cpu_request: Quantity
    cpu_limit: Quantity
    memory_request: Quantity
    memory_limit: Quantity

    def requests(self) -> dict[str, str]:
        return {"cpu": self.cpu_request.text, "memory": self.memory_request.text}

    def limits(self) -> dict[str, str]:
        return {"cpu": self.cpu_limit.text, "memory": self.memory_limit.text}


ROLLOUT_SURGE_PERCENT = 25
"""maxSurge of the Deployments: a rolling update adds this share of pods before removing."""
JOBS_AT_ONCE = 1
"""Pods the namespace runs beside the Deployments at worst: the release's migration Job."""


@dataclass(frozen=True)
class QuotaSettings:
    cpu: Quantity
    memory: Quantity
    pods: int


@dataclass(frozen=True)
class WorkloadSettings:
    host: str
    certificate_arn: str | None
    """ACM certificate for ``host``; None when one is created in ``hosted_zone_id``."""
    hosted_zone_id: str | None
    waf_acl_arn: str | None
    log_level: LogLevel
    min_replicas: int
    max_replicas: int
    cpu_target_percent: int
    memory_target_percent: int
    scale_down_stabilization_seconds: int
    server: Resources
    quota: QuotaSettings
    django_secret_key: Secret

    def peak_pods(self) -> int:
        """Server pods at the worst moment: every replica, a rolling update's surge and the
        migration Job (each of those pods has the server's resources)."""
        surge = -(-self.max_replicas * ROLLOUT_SURGE_PERCENT // 100)
        return self.max_replicas + surge + JOBS_AT_ONCE


@dataclass(frozen=True)
class DeploySettings:
    """Who may preview and deploy the stack from GitHub Actions, and what their roles reach."""

    repository: str
    """``owner/name`` (or the immutable ``owner@id/name@id``) in the OIDC ``sub`` claims."""
    oidc_provider_arn: str | None
    """The account's existing GitHub OIDC provider; ``None`` to create it in this stack."""
    state_bucket: str | None
    """The S3 bucket of the Pulumi state backend; ``None`` for another backend."""
    secrets_key_arn: str | None
    """The KMS key of the stack's ``awskms://`` secrets provider; ``None`` for another one."""


@dataclass(frozen=True)
class AlertingSettings:
    email: str
    webhook_url: Secret


@dataclass(frozen=True)
class StackSettings:
    """Everything the program needs to know about one stack."""

    project: str
    stack: str
    role: StackRole
    account: AccountSettings
    network: NetworkSettings
    database: DatabaseSettings
    cache: CacheSettings
    storage: StorageSettings
    cluster: ClusterSettings
    images: ImagesSettings
    workloads: WorkloadSettings
    deploy: DeploySettings
    alerting: AlertingSettings

    @property
    def is_production(self) -> bool:
        """Production gets ``protect`` on stateful resources and the safety floors above."""
        return self.role is StackRole.PRODUCTION


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


class _Reader:
    """Reads raw values key by key, recording every problem instead of stopping at the first.

    ``get`` returns the parsed value, or ``None`` (typed as the value) when the key is missing
    or invalid; ``ok`` says whether keys parsed, for checks across keys. ``parse_settings``
    raises before any object built from a failed key can escape.
    """

    def __init__(self, stack: str, raw: Mapping[str, str]) -> None:
        self.stack = stack
        self.raw = raw
        self.problems: list[SettingsProblem] = []
        self._failed: set[str] = set()
        self.role = self.get("stackRole", choice(StackRole))

    @property
    def production(self) -> bool:
        """Production floors apply when the role says so. A missing or invalid role is itself
        the one problem reported (no knock-on floors); it stops the run all the same."""
        return self.role is StackRole.PRODUCTION

    def problem(self, key: str, expected: str, value: str | None = None) -> None:
        spec = KEYS_BY_NAME.get(key)
        shown = "****" if value is not None and spec is not None and spec.secret else value
        self.problems.append(SettingsProblem(f"{PROJECT}:{key}", shown, expected))
        self._failed.add(key)

    def get(self, key: str, parse: Parser[T]) -> T:
        raw = self.raw.get(key)
        if raw is None:
            where = "pulumi config set --secret" if KEYS_BY_NAME[key].secret else "the stack file"
            self.problem(key, f"a value; set it in {where}")
            return cast(T, None)
        try:
            return parse(raw)
        except InvalidValueError as exc:
            self.problem(key, exc.expected, raw)
            return cast(T, None)

    def ok(self, *keys: str) -> bool:
        return not self._failed.intersection(keys)

    def check(
        self, key: str, holds: Callable[[], bool], expected: str, *, needs: tuple[str, ...] = ()
    ) -> None:
        """Record a problem on ``key`` unless ``holds()``; only asked when ``key`` and the keys
        it ``needs`` parsed, so a bad value is reported once, under its own key."""
        if self.ok(key, *needs) and not holds():
            self.problem(key, expected, self.raw.get(key))


def parse_settings(stack: str, raw: Mapping[str, str]) -> StackSettings:
    """Validate raw configuration (``namespace:key`` to the string the CLI passes) and build
    the settings tree, or raise SettingsError naming every problem."""
    prefix = f"{PROJECT}:"
    own = {k.removeprefix(prefix): v for k, v in raw.items() if k.startswith(prefix)}
    r = _Reader(stack, own)

    if not STACK_NAME.fullmatch(stack):
        r.problems.append(SettingsProblem("stack", stack, f"a stack name of {STACK_NAME_RULE}"))
    for key in sorted(set(own) - set(KEYS_BY_NAME)):
        r.problem(key, "no such key (a typo?); known keys are listed in Pulumi.yaml", own[key])
    for key in sorted(k for k in raw if not k.startswith(prefix)):
        if key not in ALLOWED_FOREIGN_KEYS:
            r.problems.append(
                SettingsProblem(
                    key,
                    raw[key],
                    "no such key: the program configures its providers explicitly from "
                    f"{PROJECT}: keys, so this one would be ignored",
                )
            )

    account = _account(r)
    settings = StackSettings(
        PROJECT,
        stack,
        r.role,
        account,
        _network(r, account.region),
        _database(r),
        _cache(r),
        _storage(r, account.region),
        _cluster(r, account.account_id),
        _images(r, account),
        _workloads(r, account),
        DeploySettings(
            repository=r.get("githubRepository", github_repository),
            oidc_provider_arn=r.get(
                "githubOidcProviderArn", optional(github_oidc_provider_arn(account.account_id))
            ),
            state_bucket=r.get("pulumiStateBucket", optional(s3_bucket_name)),
            secrets_key_arn=r.get("pulumiSecretsKeyArn", optional(kms_key_arn)),
        ),
        AlertingSettings(r.get("alertEmail", email), Secret(r.get("alertWebhookUrl", https_url))),
    )
    if r.problems:
        raise SettingsError(stack, r.problems)
    return settings


def _account(r: _Reader) -> AccountSettings:
    account = r.get("accountId", account_id)
    return AccountSettings(
        region=r.get("region", region),
        account_id=account,
        owner=r.get("owner", email),
        cost_center=r.get("costCenter", cost_center),
        admin_role_arns=r.get("adminRoleArns", iam_role_arns(account)),
        kms_key_rotation_days=r.get("kmsKeyRotationDays", integer(90, 2560)),
    )


def _zones(stack_region: str | None) -> Parser[tuple[str, ...]]:
    def parse(raw: str) -> tuple[str, ...]:
        zones = string_list(raw)
        if not 2 <= len(zones) <= MAX_ZONES:
            raise InvalidValueError(f"2 or {MAX_ZONES} availability zones, got {len(zones)}")
        if len(set(zones)) != len(zones):
            raise InvalidValueError("distinct availability zones")
        if stack_region is not None:
            wrong = [z for z in zones if not re.fullmatch(rf"{re.escape(stack_region)}[a-z]", z)]
            if wrong:
                raise InvalidValueError(
                    f"zones of the stack's region {stack_region} (such as {stack_region}a); "
                    f"not in it: {', '.join(wrong)}"
                )
        return zones

    return parse


def _retention(what: str = "a CloudWatch Logs retention") -> Parser[int]:
    return one_of_ints(CLOUDWATCH_RETENTION_DAYS, what)


def _network(r: _Reader, stack_region: str | None) -> NetworkSettings:
    vpc_cidr = r.get("vpcCidr", cidr(private=True, min_prefix=16, max_prefix=22))
    prefix = integer(17, SMALLEST_SUBNET_PREFIX)
    prefixes = {
        Tier.PUBLIC: r.get("publicSubnetPrefix", prefix),
        Tier.PRIVATE: r.get("privateSubnetPrefix", prefix),
        Tier.ISOLATED: r.get("isolatedSubnetPrefix", prefix),
    }
    if r.ok("vpcCidr", "publicSubnetPrefix", "privateSubnetPrefix", "isolatedSubnetPrefix"):
        try:
            plan_subnets(vpc_cidr, ("plan-check",), prefixes)
        except SubnetPlanError as exc:
            r.problem(
                "vpcCidr",
                "room for the subnet plan (publicSubnetPrefix, privateSubnetPrefix, "
                f"isolatedSubnetPrefix): {exc}",
                vpc_cidr,
            )
    return NetworkSettings(
        vpc_cidr=vpc_cidr,
        availability_zones=r.get("availabilityZones", _zones(stack_region)),
        subnet_prefixes=prefixes,
        nat_gateways=r.get("natGateways", choice(NatGatewayMode)),
        interface_endpoints=r.get("interfaceEndpoints", boolean),
        flow_log_retention_days=r.get("flowLogRetentionDays", _retention()),
        flow_log_traffic_type=r.get("flowLogTrafficType", choice(FlowLogTrafficType)),
    )


def _windows(
    r: _Reader, daily_key: str, weekly_key: str, minimum: int, service: str
) -> tuple[str, str]:
    """A daily backup/snapshot window and a weekly maintenance window that must not overlap
    (``service`` rejects overlap); returned as given, in the form AWS takes them."""
    daily = r.get(daily_key, daily_window(minimum))
    weekly = r.get(weekly_key, weekly_window(minimum))
    r.check(
        weekly_key,
        lambda: not windows_overlap(daily, weekly),
        f"a window that does not overlap {daily_key} ({r.raw.get(daily_key)}): {service} "
        "rejects overlapping windows",
        needs=(daily_key,),
    )
    return r.raw.get(daily_key, ""), r.raw.get(weekly_key, "")


def _database(r: _Reader) -> DatabaseSettings:
    allocated = r.get("databaseAllocatedStorageGb", integer(20, 65536))
    maximum = r.get("databaseMaxAllocatedStorageGb", integer(20, 65536))
    r.check(
        "databaseMaxAllocatedStorageGb",
        lambda: maximum >= allocated,
        f"at least databaseAllocatedStorageGb ({allocated}) so storage can grow",
        needs=("databaseAllocatedStorageGb",),
    )
    multi_az = r.get("databaseMultiAz", boolean)
    r.check(
        "databaseMultiAz",
        lambda: not r.production or multi_az,
        "true in prod (a standby in a second zone)",
    )
    retention = r.get("databaseBackupRetentionDays", integer(1, 35))
    floor = 14 if r.production else 7
    r.check(
        "databaseBackupRetentionDays",
        lambda: retention >= floor,
        f"at least {floor} days in {r.stack} (and at most 35)",
    )
    backup_window, maintenance_window = _windows(
        r, "databaseBackupWindow", "databaseMaintenanceWindow", 30, "RDS"
    )
    return DatabaseSettings(
        engine_version=r.get("databaseEngineVersion", postgres_version),
        instance_class=r.get("databaseInstanceClass", instance_type("rds")),
        database_name=r.get("databaseName", identifier),
        allocated_storage_gb=allocated,
        max_allocated_storage_gb=maximum,
        multi_az=multi_az,
        backup_retention_days=retention,
        backup_window=backup_window,
        maintenance_window=maintenance_window,
        performance_insights_retention_days=r.get(
            "databasePerformanceInsightsRetentionDays",
            one_of_ints(PERFORMANCE_INSIGHTS_DAYS, "a Performance Insights retention"),
        ),
        monitoring_interval_seconds=r.get(
            "databaseMonitoringIntervalSeconds",
            one_of_ints((1, 5, 10, 15, 30, 60), "an enhanced monitoring interval (never 0: off)"),
        ),
        slow_query_ms=r.get("databaseSlowQueryMs", integer(1, 60000)),
        log_retention_days=r.get("databaseLogRetentionDays", _retention()),
    )


def _cache(r: _Reader) -> CacheSettings:
    engine = r.get("cacheEngine", choice(CacheEngine))
    count = r.get("cacheNodeCount", integer(1, 6))
    r.check(
        "cacheNodeCount",
        lambda: not r.production or count >= 2,
        "at least 2 nodes in prod (a replica for automatic failover and Multi-AZ)",
    )
    snapshot_window, maintenance_window = _windows(
        r, "cacheSnapshotWindow", "cacheMaintenanceWindow", 60, "ElastiCache"
    )
    return CacheSettings(
        engine=engine,
        engine_version=r.get("cacheEngineVersion", cache_version(engine)),
        node_type=r.get("cacheNodeType", instance_type("elasticache")),
        node_count=count,
        snapshot_retention_days=r.get("cacheSnapshotRetentionDays", integer(1, 35)),
        snapshot_window=snapshot_window,
        maintenance_window=maintenance_window,
        log_retention_days=r.get("cacheLogRetentionDays", _retention()),
        auth_token=Secret(r.get("cacheAuthToken", cache_auth_token)),
    )


def _storage(r: _Reader, stack_region: str | None) -> StorageSettings:
    days = integer(1, 3650)
    postgres = r.get("backupPostgresRetentionDays", days)
    redis = r.get("backupRedisRetentionDays", days)
    application = r.get("backupApplicationRetentionDays", days)
    lock = r.get("backupObjectLockDays", integer(0, 3650))
    r.check(
        "backupObjectLockDays",
        lambda: not r.production or lock >= 1,
        "at least 1 in prod: Object Lock keeps a compromised job from deleting backups",
    )
    expiries = {
        "backupPostgresRetentionDays": postgres,
        "backupRedisRetentionDays": redis,
        "backupApplicationRetentionDays": application,
    }
    if r.ok(*expiries):
        shortest_key = min(expiries, key=lambda k: expiries[k])
        r.check(
            "backupObjectLockDays",
            lambda: lock < expiries[shortest_key],
            f"fewer days than the shortest lifecycle expiry ({shortest_key} = "
            f"{expiries[shortest_key]}), or locked backups outlive their retention",
        )
    replica = r.get("backupReplicaRegion", optional(region))
    r.check(
        "backupReplicaRegion",
        lambda: replica is None or replica != stack_region,
        f"a region other than the stack's own ({stack_region}): the replica is the off-site copy",
    )
    r.check(
        "backupReplicaRegion",
        lambda: not r.production or replica is not None,
        "a second region in prod: backups need an off-site copy",
    )
    return StorageSettings(
        postgres_retention_days=postgres,
        redis_retention_days=redis,
        application_retention_days=application,
        noncurrent_version_days=r.get("backupNoncurrentVersionDays", days),
        abort_incomplete_upload_days=r.get("abortIncompleteUploadDays", integer(1, 30)),
        object_lock_days=lock,
        replica_region=replica,
        media_noncurrent_version_days=r.get("mediaNoncurrentVersionDays", days),
        access_log_retention_days=r.get("accessLogRetentionDays", days),
    )


def _node_group(r: _Reader, prefix: str, minimum: int) -> NodeGroupSettings:
    low = r.get(f"{prefix}MinSize", integer(minimum, 100))
    high = r.get(f"{prefix}MaxSize", integer(1, 100))
    desired = r.get(f"{prefix}DesiredSize", integer(0, 100))
    r.check(
        f"{prefix}MaxSize",
        lambda: high >= low,
        f"at least {prefix}MinSize ({low})",
        needs=(f"{prefix}MinSize",),
    )
    r.check(
        f"{prefix}DesiredSize",
        lambda: low <= desired <= high,
        f"a size within [{prefix}MinSize, {prefix}MaxSize] = [{low}, {high}]",
        needs=(f"{prefix}MinSize", f"{prefix}MaxSize"),
    )
    return NodeGroupSettings(r.get(f"{prefix}InstanceTypes", instance_types), low, high, desired)


def _cluster(r: _Reader, account: str | None) -> ClusterSettings:
    return ClusterSettings(
        version=r.get("clusterVersion", kubernetes_version),
        public_access_cidrs=r.get("clusterPublicAccessCidrs", cidr_allowlist(allow_empty=True)),
        read_only_role_arns=r.get(
            "clusterReadOnlyRoleArns", iam_role_arns(account, allow_empty=True)
        ),
        log_retention_days=r.get("clusterLogRetentionDays", _retention()),
        addons=r.get("clusterAddons", addon_versions(CLUSTER_ADDONS)),
        # prod keeps two system nodes so CoreDNS and the autoscaler survive losing one
        system_nodes=_node_group(r, "systemNode", 2 if r.production else 1),
        app_nodes=_node_group(r, "appNode", 2 if r.production else 1),
        node_disk_size_gb=r.get("nodeDiskSizeGb", integer(20, 1000)),
    )


def _image_source(raw: str) -> Path:
    folder = (PROJECT_ROOT / raw).resolve()
    if not folder.is_dir():
        raise InvalidValueError(
            f"a folder, relative to the project, holding the image's build context; {folder} "
            "does not exist"
        )
    if not (folder / "Dockerfile").is_file():
        raise InvalidValueError(f"a folder with a Dockerfile; {folder} has none")
    return folder


def _images(r: _Reader, account: AccountSettings) -> ImagesSettings:
    registry = (
        f"{account.account_id}.dkr.ecr.{account.region}.amazonaws.com"
        if r.ok("accountId", "region")
        else None
    )
    images = []
    for name in IMAGES:
        source = r.get(f"{name}ImageSource", optional(_image_source))
        reference = r.get(f"{name}Image", optional(image_reference(registry)))
        exactly_one: bool = (source is None) != (reference is None)
        r.check(
            f"{name}Image",
            partial(bool, exactly_one),
            f"exactly one of {name}ImageSource (build from source) and {name}Image (a prebuilt "
            "image) to be set",
            needs=(f"{name}ImageSource",),
        )
        images.append(ImageSettings(name, source, reference))
    return ImagesSettings(r.get("imageRetentionCount", integer(1, 1000)), tuple(images))


def _covers(big: Quantity, small: Quantity, times: int = 1) -> bool:
    return big.base >= times * small.base


def _resources(r: _Reader, prefix: str) -> Resources:
    """``<prefix>{Cpu,Memory}{Request,Limit}``, limits at least the requests."""
    values = {
        kind: (
            r.get(f"{prefix}{kind}Request", parse),
            r.get(f"{prefix}{kind}Limit", parse),
        )
        for kind, parse in (("Cpu", cpu_quantity), ("Memory", memory_quantity))
    }
    for kind, (request, limit) in values.items():
        r.check(
            f"{prefix}{kind}Limit",
            partial(_covers, limit, request),
            f"at least {prefix}{kind}Request ({r.raw.get(f'{prefix}{kind}Request')}): a limit "
            "below the request is refused by the API server",
            needs=(f"{prefix}{kind}Request",),
        )
    return Resources(values["Cpu"][0], values["Cpu"][1], values["Memory"][0], values["Memory"][1])


def _workloads(r: _Reader, account: AccountSettings) -> WorkloadSettings:
    where = (account.region, account.account_id)
    certificate = r.get("appCertificateArn", optional(acm_certificate_arn(*where)))
    zone = r.get("appHostedZoneId", optional(hosted_zone_id))
    exactly_one = (
        "exactly one of appCertificateArn (an existing certificate) and appHostedZoneId (a "
        "certificate created and DNS-validated there) to be set"
    )
    r.check(
        "appCertificateArn",
        lambda: certificate is None or zone is None,
        f"{exactly_one}; both are",
        needs=("appHostedZoneId",),
    )
    r.check(
        "appHostedZoneId",
        lambda: certificate is not None or zone is not None,
        f"{exactly_one}; neither is",
        needs=("appCertificateArn",),
    )
    low = r.get("serverMinReplicas", integer(1, 100))
    high = r.get("serverMaxReplicas", integer(1, 500))
    r.check(
        "serverMinReplicas",
        lambda: not r.production or low >= 2,
        "at least 2 in prod (a replica per zone survives a node or zone loss)",
    )
    r.check(
        "serverMaxReplicas",
        lambda: high >= low,
        f"at least serverMinReplicas ({low})",
        needs=("serverMinReplicas",),
    )
    percent = integer(1, 100)
    server = _resources(r, "server")
    quota = QuotaSettings(
        r.get("namespaceQuotaCpu", cpu_quantity),
        r.get("namespaceQuotaMemory", memory_quantity),
        r.get("namespaceQuotaPods", integer(1, 10000)),
    )
    settings = WorkloadSettings(
        host=r.get("appHost", host_name),
        certificate_arn=certificate,
        hosted_zone_id=zone,
        waf_acl_arn=r.get("appWafAclArn", optional(wafv2_acl_arn(*where))),
        log_level=r.get("appLogLevel", choice(LogLevel)),
        min_replicas=low,
        max_replicas=high,
        cpu_target_percent=r.get("serverCpuTargetPercent", percent),
        memory_target_percent=r.get("serverMemoryTargetPercent", percent),
        scale_down_stabilization_seconds=r.get(
            "serverScaleDownStabilizationSeconds", integer(0, 3600)
        ),
        server=server,
        quota=quota,
        django_secret_key=Secret(r.get("djangoSecretKey", django_secret_key)),
    )
    sizing = ("serverMaxReplicas", "serverCpuLimit", "serverMemoryLimit")
    if r.ok(*sizing):
        pods = settings.peak_pods()
        demand = (
            f"serverMaxReplicas ({high}) + rolling-update surge + the migration Job = {pods} "
            "pods of"
        )
        r.check(
            "namespaceQuotaPods",
            lambda: quota.pods >= pods,
            f"at least {pods}: {demand} the server",
        )
        for key, used, limit in (
            ("namespaceQuotaCpu", quota.cpu, server.cpu_limit),
            ("namespaceQuotaMemory", quota.memory, server.memory_limit),
        ):
            r.check(
                key,
                partial(_covers, used, limit, pods),
                f"room for the workloads' limits at peak: {demand} {limit.text} each",
            )
    return settings


def raw_config_from_pulumi() -> dict[str, str]:
    """Every configuration value the engine gave this program, keyed ``namespace:key``."""
    # pulumi.Config reads one key at a time; to find unknown keys (typos) the whole map is
    # needed, which the SDK keeps in pulumi.runtime.config.
    values: dict[str, Any] = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def load_settings() -> StackSettings:
    """Read and validate the current stack's configuration (raises SettingsError)."""
    return parse_settings(pulumi.get_stack(), raw_config_from_pulumi())
