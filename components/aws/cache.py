"""``Cache``: the platform's Redis (Redis OSS 7 or Valkey) on ElastiCache.

A replication group on the isolated subnets, reachable on 6379 only from the placement's client
security groups, with TLS and an AUTH token required, encryption at rest with the data key,
Multi-AZ failover whenever it has a replica, and native snapshots, the Redis backup base layer.
Slow and engine logs go to log groups with bounded retention.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_aws import elasticache

from components.lib.aws import Placement, ingress_only_from, retained_log_group
from components.lib.component import Component
from components.lib.naming import Naming
from components.settings import CacheSettings

COMPONENT = "cache"
PORT = 6379
LOG_TYPES = ("slow-log", "engine-log")


@dataclass(frozen=True)
class CacheConnection:
    """What a client of the cache needs: the primary endpoint and the AUTH token (TLS only)."""

    host: pulumi.Output[str]
    port: int
    auth_token: pulumi.Output[str]
    """Secret Output."""


@dataclass(frozen=True)
class CacheArgs:
    settings: CacheSettings
    """Engine, nodes, snapshots, windows and the AUTH token."""
    naming: Naming
    """Names and tags of the stack."""
    placement: Placement
    """Isolated subnets, and the only security groups admitted on 6379."""
    kms_key_arn: pulumi.Input[str]
    """The data domain key."""
    logs_key_arn: pulumi.Input[str]
    """The stack's ``logs`` key: encrypts the log groups the engine writes to."""
    protect: bool
    """Protect the replication group from deletion by Pulumi (production)."""


class Cache(Component):
    """ElastiCache replication group with its network, logs and snapshots.

    Changing ``replication_group_id`` (derived from the stack name, so stable),
    ``at_rest_encryption_enabled``, ``kms_key_id`` or the subnet group replaces the replication
    group and loses its data (snapshots remain); it is ``protect``ed in prod.
    """

    TYPE = "exposcholar:data:Cache"

    primary_endpoint: pulumi.Output[str]
    """Writes (and reads) go here."""
    reader_endpoint: pulumi.Output[str]
    """Reads spread over the replicas."""
    port: int
    """The cache's port."""
    replication_group_id: pulumi.Output[str]
    """The replication group's id: what the Redis backup snapshots and exports."""
    security_group_id: pulumi.Output[str]
    """The group's security group (admits only the placement's clients)."""
    connection: CacheConnection
    """Everything a client needs, as one view."""

    def __init__(
        self, name: str, args: CacheArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, opts)
        child = self.child_opts()
        settings = args.settings
        naming = args.naming
        group_id = naming.physical(COMPONENT, str(settings.engine), max_length=40)
        auth_token = settings.auth_token.output()

        subnets = elasticache.SubnetGroup(
            f"{name}-subnets",
            name=naming.physical(COMPONENT, "isolated"),
            description="Isolated subnets of the stack: no route out of the VPC",
            subnet_ids=list(args.placement.subnet_ids),
            tags=naming.tags(COMPONENT, "isolated"),
            opts=child,
        )
        group = ingress_only_from(
            f"{name}-sg",
            opts=child,
            group_name=naming.physical(COMPONENT, str(settings.engine)),
            description=f"{settings.engine}: 6379 from the allowed client security groups only",
            vpc_id=args.placement.vpc_id,
            port=PORT,
            allowed_security_group_ids=args.placement.allowed_security_group_ids,
            tags=naming.tags(COMPONENT, f"{settings.engine}-sg"),
        )
        logs = {
            kind: retained_log_group(
                f"{name}-{kind}",
                opts=child,
                log_group_name=f"/aws/elasticache/{group_id}/{kind}",
                retention_days=settings.log_retention_days,
                kms_key_arn=args.logs_key_arn,
                tags=naming.tags(COMPONENT, kind),
            )
            for kind in LOG_TYPES
        }
        replication_group = elasticache.ReplicationGroup(
            f"{name}-replication-group",
            replication_group_id=group_id,
            description=f"ExpoScholar {naming.stack} {settings.engine}",
            engine=str(settings.engine),
            engine_version=settings.engine_version,
            node_type=settings.node_type,
            num_cache_clusters=settings.node_count,
            # failover and Multi-AZ whenever there is a replica (prod requires one)
            automatic_failover_enabled=settings.highly_available,
            multi_az_enabled=settings.highly_available,
            port=PORT,
            subnet_group_name=subnets.name,
            security_group_ids=[group.id],
            at_rest_encryption_enabled=True,
            kms_key_id=args.kms_key_arn,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            auth_token=auth_token,  # kept a secret Output
            # ROTATE keeps the old and the new token valid during a change: clients keep working
            auth_token_update_strategy="ROTATE",  # noqa: S106 - a strategy name, not a secret
            # Native snapshots are the backup base layer: ElastiCache forbids SYNC and BGSAVE, so
            # ``redis-cli --rdb`` cannot work. The window does not overlap maintenance (settings).
            snapshot_retention_limit=settings.snapshot_retention_days,
            snapshot_window=settings.snapshot_window,
            maintenance_window=settings.maintenance_window,
            final_snapshot_identifier=naming.physical(COMPONENT, f"{settings.engine}-final"),
            auto_minor_version_upgrade=True,
            apply_immediately=False,
            log_delivery_configurations=[
                elasticache.ReplicationGroupLogDeliveryConfigurationArgs(
                    destination=log.name,
                    destination_type="cloudwatch-logs",
                    log_format="json",
                    log_type=kind,
                )
                for kind, log in logs.items()
            ],
            # A restore (cacheRestoreFrom): ElastiCache seeds a new group from the RDB in S3,
            # never a running one, so the change replaces the group. Its id is fixed, so the old
            # group must go first. Once restored, clearing the setting must not replace it again.
            snapshot_arns=[settings.restore_from] if settings.restore_from else None,
            tags=naming.tags(COMPONENT, str(settings.engine)),
            opts=self.child_opts(
                protect=args.protect,
                delete_before_replace=True,
                ignore_changes=[] if settings.restore_from else ["snapshotArns"],
            ),
        )

        self.primary_endpoint = replication_group.primary_endpoint_address
        self.reader_endpoint = replication_group.reader_endpoint_address
        self.port = PORT
        self.replication_group_id = replication_group.replication_group_id
        self.security_group_id = group.id
        self.connection = CacheConnection(
            host=self.primary_endpoint, port=PORT, auth_token=auth_token
        )
        self.register()
