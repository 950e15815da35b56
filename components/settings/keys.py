"""The project's configuration keys: the namespace, the stack-name rule and every key.

``KEYS`` must list exactly the keys declared in the config block of ``Pulumi.yaml``, with the
same types and secrecy, which a test enforces (the CLI applies the defaults declared there).
``KeySpec.varies`` separates what stacks may differ in (sizes, counts, retention and identity)
from features, which every stack shares.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PROJECT = "exposcholar"
STACK_NAME = re.compile(r"^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){1,11}$")
"""Stack names: 2-12 lower-case letters, digits and single dashes, starting with a letter. The
name becomes part of every physical name (``exposcholar-<stack>-...``), and the tightest AWS
limits (IAM role names, ElastiCache group ids) leave room for 12 characters."""
STACK_NAME_RULE = "2-12 lower-case letters, digits and single dashes, starting with a letter"

ALLOWED_FOREIGN_KEYS = frozenset({"pulumi:disable-default-providers"})
"""Keys outside the project namespace that a stack file may set. Anything else (for example
``aws:region``) would be silently ignored by the explicit providers, so it is an error."""


@dataclass(frozen=True)
class KeySpec:
    """One configuration key: its declared type and whether stacks may differ in it."""

    name: str
    type: str
    """Type declared in Pulumi.yaml: string, integer, boolean or array."""
    varies: bool
    """True for sizes, counts, retention and identity; False for features, which must match."""
    secret: bool = False


_DECLARED = """
    # stack and account
    stackRole region accountId owner costCenter: string
    adminRoleArns: array
    kmsKeyRotationDays: integer
    # network
    vpcCidr: string
    availabilityZones: array
    publicSubnetPrefix privateSubnetPrefix isolatedSubnetPrefix: integer
    natGateways: string
    interfaceEndpoints: boolean fixed
    flowLogRetentionDays: integer
    flowLogTrafficType: string fixed
    # database
    databaseEngineVersion databaseInstanceClass databaseName: string
    databaseAllocatedStorageGb databaseMaxAllocatedStorageGb: integer
    databaseMultiAz: boolean
    databaseBackupRetentionDays: integer
    databaseBackupWindow databaseMaintenanceWindow: string
    databasePerformanceInsightsRetentionDays databaseMonitoringIntervalSeconds: integer
    databaseSlowQueryMs databaseLogRetentionDays: integer
    # cache
    cacheEngine cacheEngineVersion cacheNodeType: string
    cacheNodeCount cacheSnapshotRetentionDays cacheLogRetentionDays: integer
    cacheSnapshotWindow cacheMaintenanceWindow: string
    cacheRestoreFrom: string
    cacheAuthToken: string secret
    # storage and backups
    backupPostgresRetentionDays backupRedisRetentionDays backupApplicationRetentionDays: integer
    backupNoncurrentVersionDays abortIncompleteUploadDays backupObjectLockDays: integer
    mediaNoncurrentVersionDays accessLogRetentionDays: integer
    backupReplicaRegion: string
    # backup CronJobs (components/backups)
    backupPostgresSchedule backupRedisSchedule backupMediaSchedule restoreTestSchedule: string
    backupCpuRequest backupCpuLimit backupMemoryRequest backupMemoryLimit: string
    backupScratchGi restoreTestScratchGi: integer
    restoreTestCpu restoreTestMemory: string
    # cluster and nodes
    clusterVersion: string
    clusterPublicAccessCidrs clusterReadOnlyRoleArns clusterAddons: array
    clusterLogRetentionDays: integer
    systemNodeInstanceTypes appNodeInstanceTypes: array
    systemNodeMinSize systemNodeMaxSize systemNodeDesiredSize: integer
    appNodeMinSize appNodeMaxSize appNodeDesiredSize nodeDiskSizeGb: integer
    # images
    imageRetentionCount: integer
    serverImageSource webImageSource backupImageSource edgemetricsImageSource: string
    serverImage webImage backupImage edgemetricsImage: string
    # workloads
    appHost appCertificateArn appHostedZoneId appWafAclArn appLogLevel: string
    serverMinReplicas serverMaxReplicas serverCpuTargetPercent serverMemoryTargetPercent: integer
    serverScaleDownStabilizationSeconds namespaceQuotaPods: integer
    serverCpuRequest serverCpuLimit serverMemoryRequest serverMemoryLimit: string
    namespaceQuotaCpu namespaceQuotaMemory: string
    djangoSecretKey: string secret
    # edge (nginx in front of the server)
    edgeMinReplicas edgeMaxReplicas: integer
    edgeCpuRequest edgeCpuLimit edgeMemoryRequest edgeMemoryLimit: string
    edgeApiRatePerSecond edgeApiBurst edgeAuthRatePerMinute edgeAuthBurst: integer
    edgeBotRatePerMinute edgeConnectionsPerClient edgeMaxBodyMb: integer
    edgeAllowedCidrs edgeBlockedCidrs: array
    maintenanceEnabled: boolean
    maintenanceAllowlist: array
    # deploy path (GitHub Actions through OIDC)
    githubRepository: string fixed
    githubOidcProviderArn pulumiStateBucket pulumiSecretsKeyArn: string
    # alerting
    alertEmail: string
    alertWebhookUrl: string secret
    alertSmtpSmarthost alertSmtpFrom alertSmtpUsername: string
    alertSmtpPassword alertDeadMansSwitchUrl: string secret
    # Grafana (components/monitoring/grafana.py)
    grafanaAdminPassword: string secret
    # alert rule thresholds (components/monitoring/rules)
    alertDiskFillingUpFreePercent alertDiskAlmostFullFreePercent: integer
    alertNodeMemoryPercent alertNodeCpuPercent: integer
    alertPostgresConnectionsPercent alertPostgresCacheHitPercent alertRedisMemoryPercent: integer
    alertDjango5xxPercent alertDjangoLatencyP95Ms alertCertificateExpiryDays: integer
    alertEdgeBlockedPerMinute alertEdgeHoneypotPerMinute alertEdgeSpikeFactor: integer
    alertBackupMaxAgeHours alertRestoreTestMaxAgeDays: integer
    # Prometheus on the cluster (components/monitoring/monitoring.py)
    prometheusRetentionDays prometheusRetentionSizeGb prometheusStorageGb: integer
    prometheusCpuRequest prometheusCpuLimit prometheusMemoryRequest prometheusMemoryLimit: string
"""
"""One line per group of keys: ``names: type`` and the flags ``fixed`` (a feature every stack
shares; without it stacks may differ) and ``secret``."""


def _declare(table: str) -> tuple[KeySpec, ...]:
    specs: list[KeySpec] = []
    for line in table.splitlines():
        names, _, declared = line.partition("#")[0].partition(":")
        if not declared:
            continue
        type_, *flags = declared.split()
        if type_ not in ("string", "integer", "boolean", "array") or {*flags} - {"fixed", "secret"}:
            raise ValueError(f"malformed key declaration: {line.strip()}")
        specs += (KeySpec(n, type_, "fixed" not in flags, "secret" in flags) for n in names.split())
    return tuple(specs)


KEYS = _declare(_DECLARED)
KEYS_BY_NAME = {spec.name: spec for spec in KEYS}
