"""``Database``: the platform's PostgreSQL on RDS, production grade in every stack.

An encrypted instance on the isolated subnets, reachable on 5432 only from the placement's
client security groups and only over TLS, with deletion protection, a final snapshot, automated
backups, Performance Insights, enhanced monitoring and IAM authentication; its parameter group,
log groups and monitoring role come with it. RDS generates the master password and keeps it in
Secrets Manager: it exists neither in configuration nor in Pulumi state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_aws import rds

from components.lib.aws import Placement, ingress_only_from, retained_log_group, service_role
from components.lib.component import Component
from components.lib.naming import Naming
from components.settings import DatabaseSettings

COMPONENT = "database"
PORT = 5432
MASTER_USERNAME = "exposcholar_admin"
LOG_EXPORTS = ("postgresql", "upgrade")
CA_CERTIFICATE = "rds-ca-rsa2048-g1"
ENHANCED_MONITORING_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"


@dataclass(frozen=True)
class DatabaseConnection:
    """What a client of the database needs: where it is, which database, and the RDS-managed
    master secret (rotated by RDS) with the key it is encrypted with."""

    host: pulumi.Output[str]
    port: int
    name: str
    master_secret_arn: pulumi.Output[str]
    key_arn: pulumi.Input[str]


@dataclass(frozen=True)
class DatabaseArgs:
    settings: DatabaseSettings
    """Engine, size, storage, backups, windows, logging."""
    naming: Naming
    """Names and tags of the stack."""
    account_id: str
    """The stack's account: the monitoring role trusts only it."""
    placement: Placement
    """Isolated subnets, and the only security groups admitted on 5432."""
    kms_key_arn: pulumi.Input[str]
    """The data domain key: storage, Performance Insights and the master secret."""
    logs_key_arn: pulumi.Input[str]
    """The stack's ``logs`` key: encrypts the log groups the engine writes to."""
    protect: bool
    """Protect the instance from deletion by Pulumi (production)."""


class Database(Component):
    """RDS PostgreSQL with its network, parameters, logs and monitoring.

    Changing ``identifier`` (derived from the stack name, so stable), ``username``, ``db_name``,
    ``kms_key_id`` or ``storage_encrypted`` replaces the instance, and so does moving it to a
    subnet group in another VPC. The instance is ``protect``ed in prod.
    """

    TYPE = "exposcholar:data:Database"

    endpoint: pulumi.Output[str]
    """``host:port`` of the instance."""
    port: int
    """PostgreSQL's port."""
    database_name: str
    """The application's database."""
    security_group_id: pulumi.Output[str]
    """The instance's security group (admits only the placement's clients)."""
    master_secret_arn: pulumi.Output[str]
    """The RDS-managed master secret in Secrets Manager."""
    connection: DatabaseConnection
    """Everything a client needs, as one view."""

    def __init__(
        self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, opts)
        settings = args.settings
        naming = args.naming
        child = self.child_opts()
        identifier = naming.physical(COMPONENT, "postgres")
        family = f"postgres{settings.engine_version}"

        subnets = rds.SubnetGroup(
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
            group_name=naming.physical(COMPONENT, "postgres"),
            description="PostgreSQL: 5432 from the allowed client security groups only",
            vpc_id=args.placement.vpc_id,
            port=PORT,
            allowed_security_group_ids=args.placement.allowed_security_group_ids,
            tags=naming.tags(COMPONENT, "postgres-sg"),
        )
        # Named after the family: a new major version gets a new group before the instance
        # moves to it.
        parameters = rds.ParameterGroup(
            f"{name}-parameters",
            name=naming.physical(COMPONENT, family),
            family=family,
            description=f"ExpoScholar {family}: TLS only, pg_stat_statements, slow-query log",
            parameters=[
                rds.ParameterGroupParameterArgs(name="rds.force_ssl", value="1"),
                rds.ParameterGroupParameterArgs(
                    name="shared_preload_libraries",
                    value="pg_stat_statements",
                    apply_method="pending-reboot",
                ),
                rds.ParameterGroupParameterArgs(name="pg_stat_statements.track", value="all"),
                rds.ParameterGroupParameterArgs(
                    name="log_min_duration_statement", value=str(settings.slow_query_ms)
                ),
                rds.ParameterGroupParameterArgs(name="log_lock_waits", value="1"),
                rds.ParameterGroupParameterArgs(name="track_io_timing", value="1"),
            ],
            tags=naming.tags(COMPONENT, family),
            opts=child,
        )
        log_groups = [
            retained_log_group(
                f"{name}-log-{kind}",
                opts=child,
                log_group_name=f"/aws/rds/instance/{identifier}/{kind}",
                retention_days=settings.log_retention_days,
                kms_key_arn=args.logs_key_arn,
                tags=naming.tags(COMPONENT, f"log-{kind}"),
            )
            for kind in LOG_EXPORTS
        ]
        monitoring = service_role(
            f"{name}-monitoring-role",
            opts=child,
            role_name=naming.physical(COMPONENT, "monitoring", max_length=64),
            service="monitoring.rds.amazonaws.com",
            description="Enhanced monitoring of the ExpoScholar PostgreSQL instance",
            tags=naming.tags(COMPONENT, "monitoring-role"),
            account_id=args.account_id,
            managed_policy_arns=[ENHANCED_MONITORING_POLICY],
        )
        instance = rds.Instance(
            f"{name}-instance",
            identifier=identifier,
            engine="postgres",
            engine_version=settings.engine_version,
            instance_class=settings.instance_class,
            db_name=settings.database_name,
            username=MASTER_USERNAME,
            # generated and rotated by RDS in Secrets Manager, encrypted with the data key
            manage_master_user_password=True,
            master_user_secret_kms_key_id=args.kms_key_arn,
            port=PORT,
            allocated_storage=settings.allocated_storage_gb,
            max_allocated_storage=settings.max_allocated_storage_gb,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=args.kms_key_arn,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[group.id],
            parameter_group_name=parameters.name,
            publicly_accessible=False,
            ca_cert_identifier=CA_CERTIFICATE,
            multi_az=settings.multi_az,
            deletion_protection=True,
            skip_final_snapshot=False,
            final_snapshot_identifier=naming.physical(COMPONENT, "postgres-final"),
            delete_automated_backups=False,
            copy_tags_to_snapshot=True,
            backup_retention_period=settings.backup_retention_days,
            backup_window=settings.backup_window,  # settings refuse one overlapping maintenance
            maintenance_window=settings.maintenance_window,
            performance_insights_enabled=True,
            performance_insights_kms_key_id=args.kms_key_arn,
            performance_insights_retention_period=settings.performance_insights_retention_days,
            monitoring_interval=settings.monitoring_interval_seconds,
            monitoring_role_arn=monitoring.arn,
            enabled_cloudwatch_logs_exports=list(LOG_EXPORTS),
            iam_database_authentication_enabled=True,
            auto_minor_version_upgrade=True,
            allow_major_version_upgrade=False,
            apply_immediately=False,
            tags=naming.tags(COMPONENT, "postgres"),
            # the log groups first, so RDS never creates never-expiring ones
            opts=self.child_opts(protect=args.protect, depends_on=log_groups),
        )

        self.endpoint = instance.endpoint
        self.port = PORT
        self.database_name = settings.database_name
        self.security_group_id = group.id
        self.master_secret_arn = instance.master_user_secrets.apply(_secret_arn)
        self.connection = DatabaseConnection(
            host=instance.address,
            port=PORT,
            name=settings.database_name,
            master_secret_arn=self.master_secret_arn,
            key_arn=args.kms_key_arn,
        )
        self.register()


def _secret_arn(secrets: Sequence[rds.outputs.InstanceMasterUserSecret]) -> str:
    """ARN of the master-password secret RDS keeps in Secrets Manager."""
    arn = secrets[0].secret_arn if secrets else None
    return arn or ""
