"""``Storage``: the platform's S3 buckets — backups, static files, media and access logs.

Every bucket is private (Block Public Access, ACLs off), encrypted, TLS-only and logs its
requests to the logs bucket; names are ``exposcholar-<stack>-storage-<bucket>-<account id>``.
Backups are versioned and expire per prefix; they may be kept under Object Lock
(``backupObjectLockDays``) and copied to a bucket in a replica region, and prod requires both.
Media keeps noncurrent versions for a while; static files are rebuilt on every release.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
from pulumi_aws import s3

from components.lib.aws import service_role
from components.lib.component import Component
from components.lib.naming import Naming
from components.settings import StorageSettings

COMPONENT = "storage"
BACKUPS = "backups"
BACKUP_PREFIXES = ("postgresql", "redis", "application")
REDIS_PREFIX = "redis"
"""Where ElastiCache exports the Redis snapshots (``BACKUP_PREFIXES``)."""
ELASTICACHE_EXPORT_ACTIONS = (
    "s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:GetBucketAcl",
    "s3:ListMultipartUploadParts", "s3:ListBucketMultipartUploads",
)  # fmt: skip


def bucket_name(naming: Naming, account_id: str, label: str) -> str:
    """A bucket's physical name: bucket names are global, the account id keeps them unique
    across accounts (``exposcholar-<stack>-storage-<label>-<account id>``)."""
    return f"{naming.physical(COMPONENT, label)}-{account_id}"


def elasticache_export_principal(region: str) -> str:
    """The regional service principal ElastiCache writes exported snapshots as."""
    return f"{region}.elasticache-snapshot.amazonaws.com"


def elasticache_export_grant(region: str, bucket: str) -> dict[str, Any]:
    """The backups bucket's grant to ElastiCache, so ``CopySnapshot`` with ``TargetBucket``
    (the Redis backup) can write the ``.rdb`` export under ``redis/`` (pure: tested directly).

    The facts, from the ElastiCache User Guide, "Exporting a backup", Step 2 "Grant ElastiCache
    access to your Amazon S3 bucket" (docs.aws.amazon.com/AmazonElastiCache/latest/dg/
    backups-exporting.html): ElastiCache writes the export itself, as a service; the guide grants
    it either by a bucket ACL naming the region's canonical id (default regions) or by a bucket
    policy for the regional principal ``<region>.elasticache-snapshot.amazonaws.com`` with
    ``s3:PutObject``, ``s3:GetObject``, ``s3:ListBucket``, ``s3:GetBucketAcl``,
    ``s3:ListMultipartUploadParts`` and ``s3:ListBucketMultipartUploads`` (opt-in regions). Our
    buckets have ACLs disabled (``BucketOwnerEnforced``), which ignores every ACL grant, so the
    bucket policy is the only way here, in every region. The object actions are scoped to
    ``redis/``; the bucket actions (listing, reading the bucket's ACL) cannot be.

    What the guide does not say, and so is not done: it names no ``aws:SourceAccount`` or
    ``aws:SourceArn`` for this principal, and a condition on a key the service does not send
    would deny every export. The confused deputy is bounded anyway: ``CopySnapshot`` refuses a
    bucket not owned by the caller's account ("The S3 bucket %s is not owned by the
    authenticated user", API reference), and only the Redis backup's role may call it. The bucket
    encrypts with the backups key by default, so that key's policy admits the same principal
    through S3 for this bucket only (``components.aws.keys``). Whether an export into an SSE-KMS
    bucket succeeds is not stated by the guide (its seeding tutorial takes SSE-S3 objects only):
    the first real run of the Redis backup shows it (docs/runbooks)."""
    arn = f"arn:aws:s3:::{bucket}"
    return {
        "Sid": "ElastiCacheExportsRedisSnapshots",
        "Effect": "Allow",
        "Principal": {"Service": elasticache_export_principal(region)},
        "Action": list(ELASTICACHE_EXPORT_ACTIONS),
        "Resource": [arn, f"{arn}/{REDIS_PREFIX}/*"],
    }


@dataclass(frozen=True)
class StorageArgs:
    settings: StorageSettings
    """Retention, Object Lock, replica region."""
    naming: Naming
    """Names and tags of the stack."""
    account_id: str
    """The stack's account: makes bucket names globally unique, admits only its log delivery."""
    region: str
    """The stack's region: ElastiCache's export principal is regional."""
    backups_key_arn: pulumi.Input[str]
    """The backups domain key."""
    storage_key_arn: pulumi.Input[str]
    """The storage domain key (static and media)."""
    protect: bool
    """Protect the buckets from deletion by Pulumi (production)."""
    admin_role_arns: tuple[str, ...] = ()
    """The only principals that may bypass the backups bucket's governance-mode Object Lock."""
    replica_key_arn: pulumi.Input[str] | None = None
    """The replica region's backups key; required when settings name a replica region."""
    replica_provider: aws.Provider | None = None
    """Provider for the replica region; required when settings name a replica region."""


@dataclass(frozen=True)
class _Bucket:
    resource: s3.Bucket
    versioning: s3.BucketVersioning | None


@dataclass(frozen=True)
class AppBuckets:
    """The buckets the application reads and writes (static files, uploads) and their key."""

    static_bucket: pulumi.Output[str]
    static_arn: pulumi.Output[str]
    media_bucket: pulumi.Output[str]
    media_arn: pulumi.Output[str]
    key_arn: pulumi.Input[str]
    """KMS key of both buckets."""


class Storage(Component):
    """The S3 buckets of the stack and the off-site copy of its backups.

    Changing a bucket's name or enabling Object Lock on an existing bucket replaces it (with its
    objects); every other setting changes in place. Buckets are ``protect``ed in prod, and never
    ``force_destroy``ed.
    """

    TYPE = "exposcholar:data:Storage"

    backups_bucket: pulumi.Output[str]
    """Where backups are kept: versioned, expiring per prefix, under Object Lock when set."""
    backups_bucket_arn: pulumi.Output[str]
    """ARN of the backups bucket."""
    static_bucket: pulumi.Output[str]
    """The site's static files."""
    media_bucket: pulumi.Output[str]
    """User uploads (versioned)."""
    logs_bucket: pulumi.Output[str]
    """S3 server access logs of the other buckets."""
    replica_bucket: pulumi.Output[str] | None
    """The backups' off-site copy in the replica region (production)."""
    private_buckets: list[pulumi.Output[str]]
    """Every bucket but the public site's files: platform data, backups, access logs."""
    app_buckets: AppBuckets
    """What the application needs, as one view."""

    def __init__(
        self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, opts)
        self._name = name
        self._args = args
        settings = args.settings

        logs = self._logs_bucket("logs")
        # Object Lock (governance mode) retains every backup for fewer days than any expiry
        # (validated), so a compromised job cannot delete recent backups.
        backups_name = bucket_name(args.naming, args.account_id, BACKUPS)
        grants = [elasticache_export_grant(args.region, backups_name)]
        if settings.object_lock_days > 0:
            grants += self._lock_guard(BACKUPS)
        backups = self._bucket(
            BACKUPS,
            key_arn=args.backups_key_arn,
            versioned=True,
            logs=logs,
            object_lock_days=settings.object_lock_days,
            extra_policy=grants,
        )
        self._backup_lifecycle(BACKUPS, backups.resource)
        # not versioned: rebuilt on every release
        static = self._bucket("static", key_arn=args.storage_key_arn, versioned=False, logs=logs)
        self._lifecycle("static", static.resource, [])
        media = self._bucket("media", key_arn=args.storage_key_arn, versioned=True, logs=logs)
        self._lifecycle(
            "media",
            media.resource,
            [_noncurrent_rule("media-noncurrent", "", settings.media_noncurrent_version_days)],
        )

        self.replica_bucket = None
        self.private_buckets = [
            backups.resource.bucket,
            media.resource.bucket,
            logs.resource.bucket,
        ]
        if settings.replica_region is not None:
            replica, replica_logs = self._replicate(backups)
            self.replica_bucket = replica.resource.bucket
            self.private_buckets += [replica.resource.bucket, replica_logs.resource.bucket]

        self.backups_bucket = backups.resource.bucket
        self.backups_bucket_arn = backups.resource.arn
        self.static_bucket = static.resource.bucket
        self.media_bucket = media.resource.bucket
        self.logs_bucket = logs.resource.bucket
        self.app_buckets = AppBuckets(
            static_bucket=static.resource.bucket,
            static_arn=static.resource.arn,
            media_bucket=media.resource.bucket,
            media_arn=media.resource.arn,
            key_arn=args.storage_key_arn,
        )
        self.register()

    # -- building blocks ------------------------------------------------------------------

    def _opts(
        self,
        provider: aws.Provider | None,
        *,
        protect: bool = False,
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> pulumi.ResourceOptions:
        return self.child_opts(provider=provider, protect=protect, depends_on=depends_on)

    def _bucket_name(self, label: str) -> str:
        return bucket_name(self._args.naming, self._args.account_id, label)

    def _bucket(
        self,
        label: str,
        *,
        key_arn: pulumi.Input[str] | None,
        versioned: bool,
        logs: _Bucket | None,
        object_lock_days: int = 0,
        provider: aws.Provider | None = None,
        extra_policy: list[dict[str, Any]] | None = None,
    ) -> _Bucket:
        """A private, encrypted, TLS-only bucket: all four Block Public Access flags, ACLs off
        (``BucketOwnerEnforced``), SSE-KMS with a bucket key, or SSE-S3 with ``key_arn=None``
        (logs), and server access logging to ``logs``."""
        args = self._args
        naming = args.naming
        resource_name = f"{self._name}-{label}"
        bucket = s3.Bucket(
            resource_name,
            bucket=self._bucket_name(label),
            object_lock_enabled=object_lock_days > 0,
            force_destroy=False,
            tags=naming.tags(COMPONENT, label),
            opts=self._opts(provider, protect=args.protect),
        )
        block = s3.BucketPublicAccessBlock(
            f"{resource_name}-public-access-block",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=self._opts(provider),
        )
        s3.BucketOwnershipControls(
            f"{resource_name}-ownership",
            bucket=bucket.id,
            rule=s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=self._opts(provider),
        )
        by_default = (
            s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs
        )
        default = (
            by_default(sse_algorithm="aws:kms", kms_master_key_id=key_arn)
            if key_arn is not None
            else by_default(sse_algorithm="AES256")
        )
        s3.BucketServerSideEncryptionConfiguration(
            f"{resource_name}-encryption",
            bucket=bucket.id,
            rules=[
                s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=default,
                    bucket_key_enabled=key_arn is not None,
                )
            ],
            opts=self._opts(provider),
        )
        versioning = None
        if versioned or object_lock_days > 0:
            versioning = s3.BucketVersioning(
                f"{resource_name}-versioning",
                bucket=bucket.id,
                versioning_configuration=s3.BucketVersioningVersioningConfigurationArgs(
                    status="Enabled"
                ),
                opts=self._opts(provider),
            )
        if object_lock_days > 0:
            s3.BucketObjectLockConfiguration(
                f"{resource_name}-object-lock",
                bucket=bucket.id,
                rule=s3.BucketObjectLockConfigurationRuleArgs(
                    default_retention=s3.BucketObjectLockConfigurationRuleDefaultRetentionArgs(
                        mode="GOVERNANCE", days=object_lock_days
                    )
                ),
                opts=self._opts(provider, depends_on=[versioning] if versioning else ()),
            )
        if logs is not None:
            s3.BucketLogging(
                f"{resource_name}-logging",
                bucket=bucket.id,
                target_bucket=logs.resource.id,
                target_prefix=f"{label}/",
                opts=self._opts(provider),
            )
        statements: list[Any] = [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket.arn, pulumi.Output.concat(bucket.arn, "/*")],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            *(extra_policy or []),
        ]
        s3.BucketPolicy(
            f"{resource_name}-policy",
            bucket=bucket.id,
            policy=pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": statements}),
            # S3 refuses policy changes while Block Public Access is being applied.
            opts=self._opts(provider, depends_on=[block]),
        )
        return _Bucket(bucket, versioning)

    def _lock_guard(self, label: str) -> list[dict[str, Any]]:
        """Governance mode can be bypassed with s3:BypassGovernanceRetention; deny that to
        everyone but the administrator roles, so a compromised job cannot."""
        args = self._args
        name = self._bucket_name(label)
        return [
            {
                "Sid": "OnlyAdministratorsBypassObjectLock",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:BypassGovernanceRetention",
                "Resource": f"arn:aws:s3:::{name}/*",
                "Condition": {"ArnNotLike": {"aws:PrincipalArn": list(args.admin_role_arns)}},
            }
        ]

    def _logs_bucket(self, label: str, provider: aws.Provider | None = None) -> _Bucket:
        """The access-log target. SSE-S3, because S3 server access log delivery does not
        support SSE-KMS targets; delivery is admitted by the bucket policy, for this account's
        buckets only, since ACL-based delivery is impossible with ACLs off; it logs nothing
        itself."""
        args = self._args
        target = self._bucket_name(label)
        delivery = {
            "Sid": "S3ServerAccessLogDelivery",
            "Effect": "Allow",
            "Principal": {"Service": "logging.s3.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{target}/*",
            "Condition": {"StringEquals": {"aws:SourceAccount": args.account_id}},
        }
        logs = self._bucket(
            label,
            key_arn=None,
            versioned=False,
            logs=None,
            provider=provider,
            extra_policy=[delivery],
        )
        self._lifecycle(
            label,
            logs.resource,
            [
                s3.BucketLifecycleConfigurationRuleArgs(
                    id="access-logs-expiry",
                    status="Enabled",
                    filter=s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    expiration=s3.BucketLifecycleConfigurationRuleExpirationArgs(
                        days=args.settings.access_log_retention_days
                    ),
                )
            ],
            provider,
        )
        return logs

    def _lifecycle(
        self,
        label: str,
        bucket: s3.Bucket,
        rules: list[s3.BucketLifecycleConfigurationRuleArgs],
        provider: aws.Provider | None = None,
    ) -> None:
        """Lifecycle ``rules`` plus the bucket-wide housekeeping every bucket needs."""
        housekeeping = s3.BucketLifecycleConfigurationRuleArgs(
            id="housekeeping",
            status="Enabled",
            filter=s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
            abort_incomplete_multipart_upload=(
                s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                    days_after_initiation=self._args.settings.abort_incomplete_upload_days
                )
            ),
        )
        s3.BucketLifecycleConfiguration(
            f"{self._name}-{label}-lifecycle",
            bucket=bucket.id,
            rules=[*rules, housekeeping],
            opts=self._opts(provider),
        )

    def _backup_lifecycle(
        self, label: str, bucket: s3.Bucket, provider: aws.Provider | None = None
    ) -> None:
        """Expiry and noncurrent-version expiry per prefix of ``BACKUP_PREFIXES`` (days from
        settings), and removal of expired delete markers."""
        settings = self._args.settings
        expiry = dict(
            zip(
                BACKUP_PREFIXES,
                (
                    settings.postgres_retention_days,
                    settings.redis_retention_days,
                    settings.application_retention_days,
                ),
                strict=True,
            )
        )
        rules = [
            s3.BucketLifecycleConfigurationRuleArgs(
                id=f"{prefix}-expiry",
                status="Enabled",
                filter=s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=f"{prefix}/"),
                expiration=s3.BucketLifecycleConfigurationRuleExpirationArgs(days=days),
                noncurrent_version_expiration=(
                    s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=settings.noncurrent_version_days
                    )
                ),
            )
            for prefix, days in expiry.items()
        ]
        rules.append(
            s3.BucketLifecycleConfigurationRuleArgs(
                id="expired-delete-markers",
                status="Enabled",
                filter=s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                expiration=s3.BucketLifecycleConfigurationRuleExpirationArgs(
                    expired_object_delete_marker=True
                ),
            )
        )
        self._lifecycle(label, bucket, rules, provider)

    def _replicate(self, source: _Bucket) -> tuple[_Bucket, _Bucket]:
        """The off-site copy: a versioned replica bucket in the replica region, encrypted with
        that region's key, with its own logs bucket and the backups' lifecycle, and the role and
        rule that replicate every object to it; returns the replica and its logs bucket."""
        args = self._args
        provider = args.replica_provider
        if provider is None or args.replica_key_arn is None:
            raise ValueError("a replica region needs replica_provider and replica_key_arn")
        logs = self._logs_bucket("replica-logs", provider)
        replica = self._bucket(
            "backups-replica",
            key_arn=args.replica_key_arn,
            versioned=True,
            logs=logs,
            provider=provider,
        )
        self._backup_lifecycle("backups-replica", replica.resource, provider)

        source_bucket = source.resource
        policy = pulumi.Output.json_dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"],
                        "Resource": [source_bucket.arn],
                    },
                    {
                        "Effect": "Allow",
                        "Action": [
                            "s3:GetObjectVersionForReplication",
                            "s3:GetObjectVersionAcl",
                            "s3:GetObjectVersionTagging",
                            "s3:GetObjectRetention",
                            "s3:GetObjectLegalHold",
                        ],
                        "Resource": [pulumi.Output.concat(source_bucket.arn, "/*")],
                    },
                    {
                        "Effect": "Allow",
                        "Action": ["s3:ReplicateObject", "s3:ReplicateTags"],
                        "Resource": [pulumi.Output.concat(replica.resource.arn, "/*")],
                    },
                    {
                        "Effect": "Allow",
                        "Action": ["kms:Decrypt"],
                        "Resource": [args.backups_key_arn],
                    },
                    {
                        "Effect": "Allow",
                        "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
                        "Resource": [args.replica_key_arn],
                    },
                ],
            }
        )
        role = service_role(
            f"{self._name}-replication-role",
            opts=self._opts(None),
            role_name=args.naming.physical(COMPONENT, "replication", max_length=64),
            service="s3.amazonaws.com",
            description="Replicates the backups bucket to its off-site copy",
            tags=args.naming.tags(COMPONENT, "replication-role"),
            account_id=args.account_id,
            inline_policy=policy,
        )
        versioned = [v for v in (source.versioning, replica.versioning) if v is not None]
        s3.BucketReplicationConfig(
            f"{self._name}-backups-replication",
            bucket=source_bucket.id,
            role=role.arn,
            rules=[
                s3.BucketReplicationConfigRuleArgs(
                    id="offsite-copy",
                    status="Enabled",
                    priority=1,
                    filter=s3.BucketReplicationConfigRuleFilterArgs(prefix=""),
                    # deletions are not replicated: the copy survives a deletion at the source
                    delete_marker_replication=(
                        s3.BucketReplicationConfigRuleDeleteMarkerReplicationArgs(status="Disabled")
                    ),
                    source_selection_criteria=s3.BucketReplicationConfigRuleSourceSelectionCriteriaArgs(
                        sse_kms_encrypted_objects=s3.BucketReplicationConfigRuleSourceSelectionCriteriaSseKmsEncryptedObjectsArgs(
                            status="Enabled"
                        )
                    ),
                    destination=s3.BucketReplicationConfigRuleDestinationArgs(
                        bucket=replica.resource.arn,
                        storage_class="STANDARD_IA",
                        encryption_configuration=s3.BucketReplicationConfigRuleDestinationEncryptionConfigurationArgs(
                            replica_kms_key_id=args.replica_key_arn
                        ),
                    ),
                )
            ],
            # Replication needs versioning enabled on both sides first.
            opts=self._opts(None, depends_on=list(versioned)),
        )
        return replica, logs


def _noncurrent_rule(
    rule_id: str, prefix: str, days: int
) -> s3.BucketLifecycleConfigurationRuleArgs:
    return s3.BucketLifecycleConfigurationRuleArgs(
        id=rule_id,
        status="Enabled",
        filter=s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=prefix),
        noncurrent_version_expiration=(
            s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(noncurrent_days=days)
        ),
    )
