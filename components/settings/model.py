"""The settings model: the enums and frozen dataclasses of a parsed stack, and the fixed values
they build on (the EKS add-ons, the images, the project root, the rollout surge).

``StackSettings`` is the tree the program receives (one nested dataclass per concern); every
component takes its own branch. Nothing here parses or reads configuration: ``parse_settings``
builds the tree once every value has been validated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import pulumi

from components.settings.rules import Quantity, is_graviton
from components.settings.subnets import Tier

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
    restore_from: str | None = None
    """An exported RDB in S3 (``arn:aws:s3:::bucket/key.rdb``) the replication group is created
    from; setting it replaces the group (docs/runbooks/restore-redis.md)."""

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
CLUSTER_SERVICE_CIDR = "172.20.0.0/16"
"""The cluster's Service addresses (EKS's own choice for a VPC in 10.0.0.0/8), set explicitly
so that policies can name the API server's Service address: the first of the range."""
KUBERNETES_SERVICE_IP = "172.20.0.1"
"""The ``kubernetes`` Service in ``default`` (in-cluster clients reach the API server there):
the first address of ``CLUSTER_SERVICE_CIDR``."""
IMAGES = ("server", "web", "backup", "edgemetrics")
"""The container images of the platform, each built from source or given prebuilt."""
PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The repository root (this file is components/settings/model.py), where Pulumi.yaml is: image
source folders are relative to it."""


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
class Footprint:
    """What a fixed set of pods holds of a namespace's quota at worst: pods, and the sum of
    their CPU and memory limits."""

    pods: int
    cpu: Quantity
    memory: Quantity


EDGE_SIDECARS = Footprint(0, Quantity("400m", 400), Quantity("128Mi", 128 * 2**20))
"""What each edge pod's two metrics sidecars add to its limits (``components.app.edge.sidecars``,
200m and 64Mi each; no pods of their own); a test checks they add up to this."""
DATABASE_EXPORTERS = Footprint(5, Quantity("1", 1000), Quantity("512Mi", 512 * 2**20))
"""The database exporters in the application's namespace (``components.monitoring.exporters``)
at worst: postgres-exporter and redis-exporter during a rolling update (two pods each) and the
monitoring role's Job; their tests check their limits add up to no more."""


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
class RateLimit:
    """A leaky bucket per client address, as the whole stack should apply it: ``per_minute``
    requests a minute with ``burst`` more accepted at once. The edge divides both by its
    replica floor (zones are per pod)."""

    per_minute: int
    burst: int


@dataclass(frozen=True)
class MaintenanceSettings:
    """Maintenance mode of the edge: on, every request but the health check is answered 503
    with the maintenance page, except from ``allowlist``."""

    enabled: bool
    allowlist: tuple[str, ...]
    """CIDRs that still get the normal site (operators checking a release)."""


@dataclass(frozen=True)
class EdgeSettings:
    """The nginx front door: its size, its limits and its block and allow lists."""

    min_replicas: int
    """HPA floor; the per-pod rate limits are the stack's limits divided by it."""
    max_replicas: int
    resources: Resources
    api: RateLimit
    """Per client address, on the API and admin paths."""
    auth: RateLimit
    """Per client address, on the authentication paths (stricter)."""
    bots: RateLimit
    """Per client address, for user agents of the ``limit`` level."""
    connections_per_client: int
    """Open connections per client address, stack-wide."""
    max_body_mb: int
    """Largest request body accepted (uploads), in MiB."""
    allowed_cidrs: tuple[str, ...]
    """Operators and monitoring probes: never blocked, never rate-limited."""
    blocked_cidrs: tuple[str, ...]
    """Clients refused with 403 (unless also in ``allowed_cidrs``)."""
    maintenance: MaintenanceSettings

    def per_pod(self, limit: RateLimit) -> RateLimit:
        """``limit`` as one pod applies it: nginx keeps its zones per instance, so each pod
        gets the stack's share at the replica floor (rounded up, at least 1)."""
        return RateLimit(
            per_minute=max(1, -(-limit.per_minute // self.min_replicas)),
            burst=max(1, -(-limit.burst // self.min_replicas)),
        )

    def peak_pods(self) -> int:
        """Edge pods at the worst moment: every replica and a rolling update's surge."""
        return self.max_replicas + -(-self.max_replicas * ROLLOUT_SURGE_PERCENT // 100)


@dataclass(frozen=True)
class Schedule:
    """A cron schedule as the CronJob controller reads it (five fields, in UTC: the CronJobs
    set ``timeZone: Etc/UTC``), and its fields split for checks across keys."""

    text: str
    minute: str
    hour: str
    day_of_month: str
    month: str
    day_of_week: str

    @property
    def every_day(self) -> bool:
        """Whether it fires on every day of every month (day, month and weekday are ``*``)."""
        return (self.day_of_month, self.month, self.day_of_week) == ("*", "*", "*")


@dataclass(frozen=True)
class RestoreTestSettings:
    """The weekly restore test's pod: sized for the database it restores inside itself."""

    schedule: Schedule
    cpu: Quantity
    """Requests and limits alike (Guaranteed QoS); ``pg_restore -j`` uses its whole cores."""
    memory: Quantity
    """Requests and limits alike: the throw-away PostgreSQL and Redis live in it."""
    scratch_gi: int
    """The volume the dump is downloaded to and the database restored on."""

    @property
    def restore_jobs(self) -> int:
        """``pg_restore -j``: one worker per whole core of the pod, at least one."""
        return max(1, self.cpu.base // 1000)


@dataclass(frozen=True)
class BackupSettings:
    """The backup CronJobs (``components.backups``): schedules, the daily jobs' size, the
    restore test."""

    postgres_schedule: Schedule
    redis_schedule: Schedule
    media_schedule: Schedule
    resources: Resources
    """Requests and limits of each daily backup pod."""
    scratch_gi: int
    """The daily pods' ``/scratch`` emptyDir (on the node's disk)."""
    restore_test: RestoreTestSettings

    def peak_pods(self) -> int:
        """Backup pods at once at worst: each CronJob forbids overlapping runs of itself."""
        return 4


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
class SmtpSettings:
    """The SMTP relay Alertmanager sends alert email through (STARTTLS, authenticated)."""

    smarthost: str
    """``host:port`` of the relay."""
    sender: str
    """The ``From`` address (a verified identity of the relay)."""
    username: str
    password: Secret


@dataclass(frozen=True)
class AlertingSettings:
    """Where alerts go: critical ones by email and chat, warnings by chat, and the always-firing
    Watchdog to a dead man's switch that alerts when it stops hearing from Alertmanager."""

    email: str
    """Recipient of critical alerts."""
    webhook_url: Secret
    """The chat (Slack-compatible incoming webhook) URL of critical and warning alerts."""
    smtp: SmtpSettings
    deadmans_switch_url: Secret
    """The heartbeat URL the Watchdog alert is sent to every minute."""


@dataclass(frozen=True)
class AlertThresholds:
    """The alert rules' thresholds operators tune (``components/monitoring/rules``); the
    rules' shapes (windows, ``for`` durations, severities) are fixed in the rule files."""

    disk_filling_up_free_percent: int
    """Free space under which a filesystem or volume predicted to fill within 24 h warns."""
    disk_almost_full_free_percent: int
    """Free space under which a filesystem or volume is critical whatever its trend."""
    node_memory_percent: int
    node_cpu_percent: int
    postgres_connections_percent: int
    """Connections, as a share of ``max_connections``, above which PostgreSQL warns."""
    postgres_cache_hit_percent: int
    """Buffer cache hit ratio under which PostgreSQL warns."""
    redis_memory_percent: int
    """Memory use, as a share of ``maxmemory``, above which Redis warns."""
    django_5xx_percent: int
    django_latency_p95_ms: int
    certificate_expiry_days: int
    edge_blocked_per_minute: int
    """Blocked requests a minute above which a spike of blocks warns."""
    edge_honeypot_per_minute: int
    """Honeypot hits a minute above which a spike of hits warns."""
    edge_spike_factor: int
    """How many times the previous 6 h rate makes the last 10 min a spike."""
    backup_max_age_hours: int
    restore_test_max_age_days: int


@dataclass(frozen=True)
class PrometheusSettings:
    """How much history Prometheus keeps and what it may use to keep it."""

    retention_days: int
    """Samples older than this are deleted (``--storage.tsdb.retention.time``)."""
    retention_size_gb: int
    """The blocks' size cap (``--storage.tsdb.retention.size``): the oldest go first beyond
    it; below the volume's size, so the WAL and compactions still fit."""
    storage_gb: int
    """Size of Prometheus's gp3 volume. A StatefulSet's volume claim template cannot be
    updated: a new size replaces the StatefulSet, and the kept claim keeps its old size until
    it is resized itself (``kubectl patch pvc data-prometheus-0``)."""
    resources: Resources
    """Requests and limits of the Prometheus container."""


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
    edge: EdgeSettings
    backups: BackupSettings
    deploy: DeploySettings
    alerting: AlertingSettings
    alert_thresholds: AlertThresholds
    prometheus: PrometheusSettings
    grafana_admin_password: Secret
    """Grafana's admin password (``components/monitoring/grafana.py``)."""

    @property
    def is_production(self) -> bool:
        """Production gets ``protect`` on stateful resources and the safety floors above."""
        return self.role is StackRole.PRODUCTION
