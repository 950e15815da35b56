"""``Cache``: the platform's Redis (Redis OSS 7 or Valkey) on ElastiCache.

Creates:

* a cache subnet group on the isolated subnets;
* a security group admitting 6379 only from the security groups passed in (no CIDR ingress,
  no egress);
* log groups with bounded retention, and slow-log and engine-log delivery to them (JSON);
* a replication group: TLS required in transit, encrypted at rest with the data KMS key, AUTH
  token from a secret setting (kept a secret Output, rotated with the ``ROTATE`` strategy so
  clients keep working during a change), automatic failover and Multi-AZ whenever there is a
  replica (prod requires one), native snapshots with retention and a window that does not
  overlap maintenance (the Redis backup base layer: ElastiCache forbids SYNC and BGSAVE, so
  ``redis-cli --rdb`` cannot work), and a final snapshot on delete.

Replacement: changing ``replication_group_id`` (derived from the stack name, so stable),
``at_rest_encryption_enabled``, ``kms_key_id`` or the subnet group replaces the replication
group and loses its data (snapshots remain). The replication group is ``protect``ed in prod.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_aws import elasticache

from components.lib.aws import Placement, ingress_only_from, retained_log_group
from components.lib.naming import Naming
from components.settings import CacheSettings

COMPONENT = "cache"
PORT = 6379
LOG_TYPES = ("slow-log", "engine-log")


@dataclass(frozen=True)
class CacheArgs:
    settings: CacheSettings
    naming: Naming
    placement: Placement
    """Isolated subnets, and the only security groups admitted on 6379."""
    kms_key_arn: pulumi.Input[str]
    """The data domain key."""
    protect: bool


class Cache(pulumi.ComponentResource):
    """ElastiCache replication group with its network, logs and snapshots."""

    primary_endpoint: pulumi.Output[str]
    reader_endpoint: pulumi.Output[str]
    port: int
    security_group_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: CacheArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("exposcholar:data:Cache", name, None, opts)
        settings = args.settings
        naming = args.naming
        group_id = naming.physical(COMPONENT, str(settings.engine), max_length=40)

        subnets = elasticache.SubnetGroup(
            f"{name}-subnets",
            name=naming.physical(COMPONENT, "isolated"),
            description="Isolated subnets of the stack: no route out of the VPC",
            subnet_ids=list(args.placement.subnet_ids),
            tags=naming.tags(COMPONENT, "isolated"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        group = ingress_only_from(
            f"{name}-sg",
            parent=self,
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
                parent=self,
                log_group_name=f"/aws/elasticache/{group_id}/{kind}",
                retention_days=settings.log_retention_days,
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
            automatic_failover_enabled=settings.highly_available,
            multi_az_enabled=settings.highly_available,
            port=PORT,
            subnet_group_name=subnets.name,
            security_group_ids=[group.id],
            at_rest_encryption_enabled=True,
            kms_key_id=args.kms_key_arn,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            auth_token=settings.auth_token.output(),
            auth_token_update_strategy="ROTATE",  # noqa: S106 - a strategy name, not a secret
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
            tags=naming.tags(COMPONENT, str(settings.engine)),
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )

        self.primary_endpoint = replication_group.primary_endpoint_address
        self.reader_endpoint = replication_group.reader_endpoint_address
        self.port = PORT
        self.security_group_id = group.id
        self.register_outputs(
            {
                "primary_endpoint": self.primary_endpoint,
                "reader_endpoint": self.reader_endpoint,
                "port": self.port,
                "security_group_id": self.security_group_id,
            }
        )
