"""Data stores and their keys: RDS, ElastiCache, S3 object and ACL exposure, KMS.

Resource policies over the inputs of each resource. The S3 rules that need to see a bucket
together with its separate configuration resources (Block Public Access, encryption,
versioning, logging, bucket policy) are stack policies, in ``stack_s3.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import ResourceValidationArgs

from .policy_config import CUSTOMER_KEY, PRODUCTION, Config, Setting, exempted, exemptions
from .registry import CRITICAL, HIGH, LOW, MEDIUM, resource_policy
from .resources import flag, get, is_map, maps, number, present, strings, text
from .tokens import is_s3

RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_CLUSTER = "aws:rds/cluster:Cluster"
RDS_CLUSTER_INSTANCE = "aws:rds/clusterInstance:ClusterInstance"
RDS_PARAMETER_GROUPS = (
    "aws:rds/parameterGroup:ParameterGroup",
    "aws:rds/clusterParameterGroup:ClusterParameterGroup",
)
REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
KMS_KEY = "aws:kms/key:Key"

# ---- RDS -----------------------------------------------------------------------------------


@resource_policy(
    "rds-no-public-access",
    severity=CRITICAL,
    domain="rds",
    description="RDS instances must not be publicly accessible.",
    remediation=(
        "Set publiclyAccessible to false and place the instance in subnets without a route to "
        "an internet gateway; reach it from inside the VPC."
    ),
)
def rds_no_public_access(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    if args.resource_type in (RDS_INSTANCE, RDS_CLUSTER_INSTANCE) and flag(
        args.props, "publiclyAccessible"
    ):
        yield "publiclyAccessible is true: the instance gets a public address."


@resource_policy(
    "rds-storage-encrypted",
    severity=HIGH,
    domain="rds",
    description="RDS storage must be encrypted at rest, with a customer-managed KMS key.",
    remediation=(
        "Set storageEncrypted to true and kmsKeyId to the data domain's KMS key. Encryption "
        "cannot be turned on in place: restore an encrypted copy of a snapshot."
    ),
    settings=[CUSTOMER_KEY],
)
def rds_storage_encrypted(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if args.resource_type not in (RDS_INSTANCE, RDS_CLUSTER):
        return
    props = args.props
    if present(props, "replicateSourceDb"):
        return  # a read replica inherits the source's encryption
    if flag(props, "storageEncrypted") is not True:
        yield "storageEncrypted is not true."
    elif config.flag("requireCustomerManagedKey") and not present(props, "kmsKeyId"):
        yield "kmsKeyId is not set: storage is encrypted with the AWS-managed key."


@resource_policy(
    "rds-backup-retention",
    severity=MEDIUM,
    domain="rds",
    description="RDS automated backups must be retained for at least the configured days.",
    remediation="Set backupRetentionPeriod to at least the configured minimum (point-in-time "
    "recovery reaches back that far).",
    settings=[
        Setting(
            "minimumDays",
            {"type": "integer", "minimum": 1, "maximum": 35},
            7,
            "Minimum backupRetentionPeriod in days.",
        )
    ],
)
def rds_backup_retention(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if args.resource_type not in (RDS_INSTANCE, RDS_CLUSTER):
        return
    if present(args.props, "replicateSourceDb"):
        return
    minimum = config.number("minimumDays")
    days = number(args.props, "backupRetentionPeriod")
    if days is None:
        yield f"backupRetentionPeriod is not set (the AWS default is 1 day); minimum {minimum}."
    elif days < minimum:
        yield f"backupRetentionPeriod is {days:g} days; minimum {minimum}."


@resource_policy(
    "rds-multi-az",
    severity=HIGH,
    domain="rds",
    description="Production RDS instances must be Multi-AZ.",
    remediation="Set multiAz to true (a standby in another zone takes over on failure).",
    settings=[PRODUCTION],
)
def rds_multi_az(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if args.resource_type != RDS_INSTANCE or not config.flag("production"):
        return
    if present(args.props, "replicateSourceDb"):
        return
    if flag(args.props, "multiAz") is not True:
        yield "multiAz is not true on a production instance."


@resource_policy(
    "rds-deletion-protection",
    severity=MEDIUM,
    domain="rds",
    description="Production RDS instances and clusters must have deletion protection and keep "
    "a final snapshot.",
    remediation="Set deletionProtection to true, skipFinalSnapshot to false and a "
    "finalSnapshotIdentifier.",
    settings=[PRODUCTION],
)
def rds_deletion_protection(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if args.resource_type not in (RDS_INSTANCE, RDS_CLUSTER) or not config.flag("production"):
        return
    props = args.props
    if flag(props, "deletionProtection") is not True:
        yield "deletionProtection is not true."
    if flag(props, "skipFinalSnapshot") is not False:
        yield "skipFinalSnapshot is not false: deleting it would keep no final snapshot."
    elif not present(props, "finalSnapshotIdentifier"):
        yield "finalSnapshotIdentifier is not set."


@resource_policy(
    "rds-hardening",
    severity=LOW,
    domain="rds",
    description="RDS instances should use IAM authentication, encrypt Performance Insights "
    "with a customer key, export their logs and take automatic minor upgrades.",
    remediation="Set iamDatabaseAuthenticationEnabled, performanceInsightsKmsKeyId (when "
    "Performance Insights is on), enabledCloudwatchLogsExports (postgresql for PostgreSQL) "
    "and leave autoMinorVersionUpgrade on.",
)
def rds_hardening(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    if args.resource_type != RDS_INSTANCE:
        return
    props = args.props
    if flag(props, "iamDatabaseAuthenticationEnabled") is not True:
        yield "iamDatabaseAuthenticationEnabled is not true."
    if flag(props, "performanceInsightsEnabled") and not present(
        props, "performanceInsightsKmsKeyId"
    ):
        yield "Performance Insights is on without performanceInsightsKmsKeyId."
    engine = text(props, "engine")
    exports = strings(props, "enabledCloudwatchLogsExports")
    if "postgres" in engine and "postgresql" not in exports:
        yield "enabledCloudwatchLogsExports does not include postgresql."
    if flag(props, "autoMinorVersionUpgrade") is False:
        yield "autoMinorVersionUpgrade is false."


_TLS_PARAMETERS = {
    "postgres": ("rds.force_ssl", {"1"}),
    "aurora-postgresql": ("rds.force_ssl", {"1"}),
    "mysql": ("require_secure_transport", {"1", "ON", "on"}),
    "aurora-mysql": ("require_secure_transport", {"1", "ON", "on"}),
    "mariadb": ("require_secure_transport", {"1", "ON", "on"}),
}
"""Engine family prefix -> the parameter that refuses unencrypted connections."""


def _tls_parameter(family_or_engine: str) -> tuple[str, set[str]] | None:
    for prefix in sorted(_TLS_PARAMETERS, key=len, reverse=True):
        if family_or_engine.startswith(prefix):
            return _TLS_PARAMETERS[prefix]
    return None


@resource_policy(
    "rds-tls-in-transit",
    severity=HIGH,
    domain="rds",
    description="RDS must refuse unencrypted connections: the parameter group forces TLS "
    "(rds.force_ssl=1 for PostgreSQL) and instances use such a group, not a default one.",
    remediation="Create a parameter group for the engine family with rds.force_ssl = 1 "
    "(PostgreSQL) or require_secure_transport = 1 (MySQL/MariaDB) and set the instance's "
    "parameterGroupName to it.",
)
def rds_tls_in_transit(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    props = args.props
    if args.resource_type in RDS_PARAMETER_GROUPS:
        wanted = _tls_parameter(text(props, "family"))
        if wanted is None:
            return
        name, accepted = wanted
        values = [text(p, "value") for p in maps(props, "parameters") if text(p, "name") == name]
        if not values or values[-1] not in accepted:
            yield f"parameter {name} is not set to {sorted(accepted)[0]}."
    elif args.resource_type == RDS_INSTANCE and _tls_parameter(text(props, "engine")):
        if present(props, "replicateSourceDb"):
            return
        group = get(props, "parameterGroupName")
        if group is None or (isinstance(group, str) and group.startswith("default.")):
            yield (
                "parameterGroupName is not set to a group that forces TLS (default groups "
                "accept plaintext connections)."
            )


# ---- ElastiCache ---------------------------------------------------------------------------


@resource_policy(
    "redis-at-rest-encryption",
    severity=HIGH,
    domain="elasticache",
    description="ElastiCache replication groups must be encrypted at rest with a "
    "customer-managed KMS key.",
    remediation="Set atRestEncryptionEnabled to true and kmsKeyId (replaces the group: plan a "
    "snapshot restore).",
    settings=[CUSTOMER_KEY],
)
def redis_at_rest_encryption(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if args.resource_type != REPLICATION_GROUP:
        return
    if flag(args.props, "atRestEncryptionEnabled") is not True:
        yield "atRestEncryptionEnabled is not true."
    elif config.flag("requireCustomerManagedKey") and not present(args.props, "kmsKeyId"):
        yield "kmsKeyId is not set: data is encrypted with the AWS-managed key."


@resource_policy(
    "redis-transit-encryption-auth",
    severity=HIGH,
    domain="elasticache",
    description="ElastiCache replication groups must require TLS and authenticate clients "
    "(AUTH token or RBAC user groups).",
    remediation="Set transitEncryptionEnabled to true, transitEncryptionMode to required, and "
    "an authToken (from a secret) or userGroupIds.",
)
def redis_transit_encryption_auth(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    if args.resource_type != REPLICATION_GROUP:
        return
    props = args.props
    if flag(props, "transitEncryptionEnabled") is not True:
        yield "transitEncryptionEnabled is not true."
    mode = text(props, "transitEncryptionMode")
    if mode not in ("", "required"):
        yield f"transitEncryptionMode is {mode!r}: plaintext clients are still accepted."
    if not present(props, "authToken") and not present(props, "userGroupIds"):
        yield "neither authToken nor userGroupIds is set: clients are not authenticated."


@resource_policy(
    "redis-ha-backup",
    severity=MEDIUM,
    domain="elasticache",
    description="ElastiCache replication groups must keep snapshots; production ones must "
    "fail over automatically across zones.",
    remediation="Set snapshotRetentionLimit to at least the configured days; in production "
    "run a replica (numCacheClusters >= 2) with automaticFailoverEnabled and multiAzEnabled.",
    settings=[
        PRODUCTION,
        Setting(
            "minimumSnapshotDays",
            {"type": "integer", "minimum": 1, "maximum": 35},
            1,
            "Minimum snapshotRetentionLimit in days.",
        ),
    ],
)
def redis_ha_backup(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if args.resource_type != REPLICATION_GROUP:
        return
    props = args.props
    minimum = config.number("minimumSnapshotDays")
    days = number(props, "snapshotRetentionLimit")
    if days is None or days < minimum:
        shown = "not set" if days is None else f"{days:g}"
        yield (
            f"snapshotRetentionLimit is {shown}; minimum {minimum} (snapshots are the base "
            "backup layer)."
        )
    if not config.flag("production"):
        return
    if flag(props, "automaticFailoverEnabled") is not True:
        yield "automaticFailoverEnabled is not true on a production group."
    if flag(props, "multiAzEnabled") is not True:
        yield "multiAzEnabled is not true on a production group."
    nodes = number(props, "numCacheClusters")
    replicas = number(props, "replicasPerNodeGroup")
    if (nodes is None or nodes < 2) and (replicas is None or replicas < 1):
        yield "a production group needs a replica (numCacheClusters >= 2)."


# ---- S3 ACLs -------------------------------------------------------------------------------

PUBLIC_ACLS = frozenset({"public-read", "public-read-write", "authenticated-read"})
PUBLIC_GRANTEES = (
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
)


@resource_policy(
    "s3-no-public-acl",
    severity=CRITICAL,
    domain="s3",
    description="S3 buckets and objects must not be made public through canned ACLs or grants.",
    remediation="Remove the public-read / public-read-write / authenticated-read ACL and any "
    "grant to AllUsers or AuthenticatedUsers; disable ACLs with BucketOwnerEnforced object "
    "ownership and serve public content through CloudFront instead.",
)
def s3_no_public_acl(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    resource_type, props = args.resource_type, args.props
    if not (
        is_s3(resource_type, "bucket")
        or is_s3(resource_type, "bucketAcl")
        or is_s3(resource_type, "bucketObject")
        or is_s3(resource_type, "bucketObjectv2")
    ):
        return
    acl = text(props, "acl")
    if acl in PUBLIC_ACLS:
        yield f"acl is {acl!r}."
    grants = [*maps(props, "grants")]
    for grant in maps(props, "accessControlPolicy", "grants"):
        grantee = get(grant, "grantee")
        grants.append(grantee if is_map(grantee) else grant)
    for grant in grants:
        uri = text(grant, "uri")
        if uri in PUBLIC_GRANTEES:
            yield f"a grant gives {uri.rsplit('/', 1)[-1]} access."


# ---- KMS -----------------------------------------------------------------------------------


@resource_policy(
    "kms-rotation",
    severity=MEDIUM,
    domain="kms",
    description="Symmetric customer-managed KMS keys must rotate automatically, at least as "
    "often as configured.",
    remediation="Set enableKeyRotation to true and rotationPeriodInDays within the maximum.",
    settings=[
        Setting(
            "maximumRotationDays",
            {"type": "integer", "minimum": 90, "maximum": 2560},
            365,
            "Longest allowed rotationPeriodInDays.",
        )
    ],
)
def kms_rotation(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if args.resource_type != KMS_KEY:
        return
    props = args.props
    spec = text(props, "customerMasterKeySpec") or text(props, "keySpec") or "SYMMETRIC_DEFAULT"
    usage = text(props, "keyUsage") or "ENCRYPT_DECRYPT"
    if spec != "SYMMETRIC_DEFAULT" or usage != "ENCRYPT_DECRYPT":
        return  # asymmetric and HMAC keys cannot rotate automatically
    if flag(props, "enableKeyRotation") is not True:
        yield "enableKeyRotation is not true."
        return
    period = number(props, "rotationPeriodInDays")
    maximum = config.number("maximumRotationDays")
    if period is not None and period > maximum:
        yield f"rotationPeriodInDays is {period:g}; maximum {maximum}."


# ---- CloudWatch Logs -----------------------------------------------------------------------

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


@resource_policy(
    "logs-kms-encrypted",
    severity=MEDIUM,
    domain="logs",
    description="CloudWatch log groups must be encrypted with a customer-managed KMS key: "
    "flow logs, control-plane audit logs and database logs name addresses, users and queries, "
    "and the AWS-owned default key cannot be scoped, audited or revoked.",
    remediation="Pass the stack's logs key (Keys.logs_key_arn) as kmsKeyId; "
    "components.lib.aws.retained_log_group takes it. The key's policy must let "
    "logs.<region>.amazonaws.com use it for this account's log groups (encryption context "
    "kms:EncryptionContext:aws:logs:arn).",
    settings=[
        exemptions(
            "exempt", "pattern", "Log groups (name patterns) that may use the AWS-owned key."
        )
    ],
)
def logs_kms_encrypted(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if args.resource_type != LOG_GROUP or present(args.props, "kmsKeyId"):
        return
    if not exempted(config, "exempt", "pattern", text(args.props, "name")):
        yield "kmsKeyId is not set: the log group uses the AWS-owned key."
