"""Section parsers for the AWS resources outside the cluster: network, database, cache and
backup storage.

Each reads its keys through the ``Reader`` and checks the rules that span keys (a subnet plan
that fits the VPC, windows that do not overlap, storage that can grow) and the production
floors (Multi-AZ, cache replicas, backup retention, Object Lock, the off-site replica).
"""

from __future__ import annotations

import ipaddress
import re

from components.settings.model import (
    CLUSTER_SERVICE_CIDR,
    CacheEngine,
    CacheSettings,
    DatabaseSettings,
    FlowLogTrafficType,
    NatGatewayMode,
    NetworkSettings,
    Secret,
    StorageSettings,
)
from components.settings.parsers import (
    InvalidValueError,
    Parser,
    boolean,
    choice,
    cidr,
    integer,
    one_of_ints,
    optional,
    string_list,
    text,
)
from components.settings.reader import Reader
from components.settings.rules import (
    cache_auth_token,
    cache_version,
    identifier,
    instance_type,
    log_retention_days,
    performance_insights_days,
    postgres_version,
    region,
)
from components.settings.subnets import (
    MAX_ZONES,
    SMALLEST_SUBNET_PREFIX,
    SubnetPlanError,
    Tier,
    plan_subnets,
)
from components.settings.windows import daily_window, weekly_window, windows_overlap


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


def network(r: Reader, stack_region: str | None) -> NetworkSettings:
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
    if r.ok("vpcCidr") and ipaddress.ip_network(vpc_cidr).overlaps(
        ipaddress.ip_network(CLUSTER_SERVICE_CIDR)
    ):
        r.problem(
            "vpcCidr",
            f"a range apart from the cluster's Service addresses {CLUSTER_SERVICE_CIDR}",
            vpc_cidr,
        )
    return NetworkSettings(
        vpc_cidr=vpc_cidr,
        availability_zones=r.get("availabilityZones", _zones(stack_region)),
        subnet_prefixes=prefixes,
        nat_gateways=r.get("natGateways", choice(NatGatewayMode)),
        interface_endpoints=r.get("interfaceEndpoints", boolean),
        flow_log_retention_days=r.get("flowLogRetentionDays", log_retention_days),
        flow_log_traffic_type=r.get("flowLogTrafficType", choice(FlowLogTrafficType)),
    )


def _windows(
    r: Reader, daily_key: str, weekly_key: str, minimum: int, service: str
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


def database(r: Reader) -> DatabaseSettings:
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
            "databasePerformanceInsightsRetentionDays", performance_insights_days
        ),
        monitoring_interval_seconds=r.get(
            "databaseMonitoringIntervalSeconds",
            one_of_ints((1, 5, 10, 15, 30, 60), "an enhanced monitoring interval (never 0: off)"),
        ),
        slow_query_ms=r.get("databaseSlowQueryMs", integer(1, 60000)),
        log_retention_days=r.get("databaseLogRetentionDays", log_retention_days),
    )


RDB_ARN = text(
    re.compile(r"^arn:aws:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^\s]+\.rdb$"),
    "the S3 object ARN of an exported RDB file (arn:aws:s3:::BUCKET/redis/STAMP/NAME-0001.rdb)",
)


def cache(r: Reader) -> CacheSettings:
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
        log_retention_days=r.get("cacheLogRetentionDays", log_retention_days),
        auth_token=Secret(r.get("cacheAuthToken", cache_auth_token)),
        restore_from=r.get("cacheRestoreFrom", optional(RDB_ARN)),
    )


def storage(r: Reader, stack_region: str | None) -> StorageSettings:
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
