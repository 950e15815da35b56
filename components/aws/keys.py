"""``Keys``: the stack's customer-managed KMS keys, one per data domain.

For each domain of ``DOMAIN_SERVICES`` (data, backups, storage, cluster, images, and
backups-replica in the replica region when there is one) a key with automatic rotation, a 30-day
deletion window, the alias ``alias/exposcholar-<stack>-<domain>`` and a policy that admits use
only through that domain's AWS services. Separate keys keep the domains' readers apart.

The ``logs`` key is the exception: CloudWatch Logs encrypts with the key itself (its service
principal, not a caller's identity through ``kms:ViaService``), so its policy admits that
principal, and only for this account's log groups (``logs_key_policy``). The ``backups`` key
also admits ElastiCache's export principal through S3, for the backups bucket only
(``elasticache_export_key_statement``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
from pulumi_aws import kms

from components.aws.storage import (
    BACKUPS,
    REDIS_PREFIX,
    bucket_name,
    elasticache_export_principal,
)
from components.lib.component import Component
from components.lib.naming import Naming

COMPONENT = "keys"
ADMIN_ACTIONS = (
    "kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
    "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource",
    "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
)  # fmt: skip
USE_ACTIONS = (
    "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey",
    "kms:CreateGrant", "kms:ListGrants",
)  # fmt: skip
DOMAIN_SERVICES = {
    "data": ("rds", "elasticache", "secretsmanager"),
    "backups": ("s3",),
    "storage": ("s3",),
    "cluster": ("eks",),
    "images": ("ecr",),
    "backups-replica": ("s3",),
}
"""Which AWS services may use each key on behalf of the account's principals."""
LOGS_DOMAIN = "logs"
"""The CloudWatch Logs key's domain (every log group of the stack)."""
LOGS_ACTIONS = (
    "kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*",
)  # fmt: skip
"""What CloudWatch Logs needs of a log group's key (AWS's documented key policy)."""


@dataclass(frozen=True)
class KeysArgs:
    naming: Naming
    """Names and tags of the stack."""
    account_id: str
    """The stack's account: the key policies trust only it."""
    region: str
    """The stack's region: services use the keys only from here."""
    admin_role_arns: Sequence[str]
    """Roles allowed to administer (not use) the keys."""
    rotation_days: int
    """Automatic key rotation period."""
    protect: bool
    """Protect the keys from deletion (prod)."""
    replica_region: str | None = None
    """Region of the backups' off-site copy, which gets its own key (production)."""
    replica_provider: aws.Provider | None = None
    """Provider for the replica region; given together with ``replica_region``."""


def _management_statements(account_id: str, admin_role_arns: Sequence[str]) -> list[dict[str, Any]]:
    """The account root (so IAM policies can grant use and the key never becomes unmanageable)
    and the administrator roles (manage, not use): the same on every key."""
    return [
        {
            "Sid": "AccountRootManagesThroughIam",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "KeyAdministrators",
            "Effect": "Allow",
            "Principal": {"AWS": list(admin_role_arns)},
            "Action": list(ADMIN_ACTIONS),
            "Resource": "*",
        },
    ]


def key_policy(
    account_id: str, region: str, admin_role_arns: Sequence[str], services: Sequence[str]
) -> dict[str, Any]:
    """The key policy of one domain key (pure: tested directly): the account root (so IAM
    policies can grant use and the key never becomes unmanageable), the administrator roles
    (manage, not use), and use only through the named AWS services (``kms:ViaService``) by
    principals of this account (``kms:CallerAccount``)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            *_management_statements(account_id, admin_role_arns),
            {
                "Sid": "UseThroughNamedServicesOnly",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": list(USE_ACTIONS),
                "Resource": "*",
                "Condition": {
                    "StringEquals": {
                        "kms:CallerAccount": account_id,
                        "kms:ViaService": [f"{s}.{region}.amazonaws.com" for s in services],
                    }
                },
            },
        ],
    }


def logs_key_policy(account_id: str, region: str, admin_role_arns: Sequence[str]) -> dict[str, Any]:
    """The key policy of the ``logs`` key (pure: tested directly): management as on every key,
    and use by the CloudWatch Logs service of ``region`` only for log groups of this account
    and region: CloudWatch Logs passes the log group's ARN as the encryption context
    ``aws:logs:arn``, so another account's log group can never be encrypted (or read) with it."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            *_management_statements(account_id, admin_role_arns),
            {
                "Sid": "CloudWatchLogsForThisAccountsLogGroups",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                "Action": list(LOGS_ACTIONS),
                "Resource": "*",
                "Condition": {
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:aws:logs:{region}:{account_id}:log-group:*"
                        )
                    }
                },
            },
        ],
    }


def elasticache_export_key_statement(region: str, bucket: str) -> dict[str, Any]:
    """The backups key's grant to ElastiCache's export principal (pure: tested directly): the
    backups bucket encrypts every new object with this key, including the Redis exports that
    ElastiCache writes itself (``components.aws.storage.elasticache_export_grant``), so S3 asks
    KMS for a data key on that principal's behalf. Only through S3 of this region, and only for
    the backups bucket: S3 names the bucket (with its bucket key) or the object in the encryption
    context ``aws:s3:arn``."""
    arn = f"arn:aws:s3:::{bucket}"
    return {
        "Sid": "ElastiCacheExportsIntoTheBackupsBucket",
        "Effect": "Allow",
        "Principal": {"Service": elasticache_export_principal(region)},
        "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
        "Resource": "*",
        "Condition": {
            "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
            "StringLike": {"kms:EncryptionContext:aws:s3:arn": [arn, f"{arn}/{REDIS_PREFIX}/*"]},
        },
    }


class Keys(Component):
    """Customer-managed KMS keys per data domain.

    One per domain rather than one per stack because the domains have different readers: who
    reads backups needs none of the live database's key material, the application reads media
    but not backups, and a key disabled or scheduled for deletion by mistake takes out one
    domain, not the whole platform. Seven keys cost a few dollars a month.

    Changing the key spec, usage or multi-region flag replaces a key (and every resource
    encrypted with it); rotation, policy, description and alias changes do not. Keys are
    ``protect``ed in prod.
    """

    TYPE = "exposcholar:security:Keys"

    data_key_arn: pulumi.Output[str]
    """Database, cache and the database's master secret."""
    backups_key_arn: pulumi.Output[str]
    """The backups bucket."""
    storage_key_arn: pulumi.Output[str]
    """The static and media buckets."""
    cluster_key_arn: pulumi.Output[str]
    """Envelope encryption of Kubernetes Secrets."""
    images_key_arn: pulumi.Output[str]
    """The ECR repositories."""
    logs_key_arn: pulumi.Output[str]
    """Every CloudWatch log group of the stack (flow logs, EKS, PostgreSQL, Redis)."""
    backups_replica_key_arn: pulumi.Output[str] | None
    """The backups' off-site copy, in the replica region (production)."""

    def __init__(self, name: str, args: KeysArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(name, opts)
        self._name = name
        self._args = args
        self.data_key_arn = self._key("data", args.region).arn
        self.backups_key_arn = self._key("backups", args.region).arn
        self.storage_key_arn = self._key("storage", args.region).arn
        self.cluster_key_arn = self._key("cluster", args.region).arn
        self.images_key_arn = self._key("images", args.region).arn
        self.logs_key_arn = self._key(LOGS_DOMAIN, args.region).arn
        self.backups_replica_key_arn = None
        if args.replica_region is not None:  # a KMS key cannot be used across regions
            replica = self._key("backups-replica", args.replica_region, args.replica_provider)
            self.backups_replica_key_arn = replica.arn
        self.register()

    def _key(self, domain: str, region: str, provider: aws.Provider | None = None) -> kms.Key:
        args = self._args
        physical = args.naming.physical(COMPONENT, domain)
        opts = self.child_opts(protect=args.protect, provider=provider)
        if domain == LOGS_DOMAIN:
            policy = logs_key_policy(args.account_id, region, args.admin_role_arns)
        else:
            services = DOMAIN_SERVICES[domain]
            policy = key_policy(args.account_id, region, args.admin_role_arns, services)
        if domain == BACKUPS:
            bucket = bucket_name(args.naming, args.account_id, BACKUPS)
            policy["Statement"].append(elasticache_export_key_statement(region, bucket))
        key = kms.Key(
            f"{self._name}-{domain}",
            description=f"{physical}: encrypts the {domain} domain of the stack",
            enable_key_rotation=True,
            rotation_period_in_days=args.rotation_days,
            deletion_window_in_days=30,
            policy=json.dumps(policy),
            tags=args.naming.tags(COMPONENT, domain),
            opts=opts,
        )
        kms.Alias(
            f"{self._name}-{domain}-alias",
            name=f"alias/{physical}",
            target_key_id=key.key_id,
            opts=self.child_opts(provider=provider),
        )
        return key
