"""``DatabaseExporters``: postgres_exporter against RDS as a least-privilege monitoring role, and
redis_exporter against ElastiCache over TLS with AUTH, in the application's namespace.

Creates, in ``exposcholar``:

- the monitoring role's password: an External Secrets ``Password`` generator and the
  ExternalSecret that writes it, once, into the Secret ``postgres-monitor-password-<N>``
  (``PASSWORD_GENERATION``). The password is generated in the cluster: it is not in git, in
  the stack's configuration or in Pulumi's state;
- the ``postgres-monitor-role-<hash>`` Job: the backup image's ``psql`` running
  ``monitor_role/monitor_role.py`` as the RDS master user (the synced ``database-credentials``
  Secret) to create or update the role ``exposcholar_monitor`` (LOGIN, ``pg_monitor``, CONNECT
  on the application's database, read-only sessions, nothing else; the password sent as a
  SCRAM verifier). Named after a hash of everything it runs with, so Pulumi replaces it, and
  waits for it to succeed, whenever one of those changes; bounded retries and a deadline;
- the ``postgres-exporter`` Deployment, started after that Job: it logs in as the monitoring
  role (never the master user) with ``sslmode=verify-full`` against the RDS CA bundle, which an
  init container copies from the backup image (the file the backups verify RDS with);
- the ``redis-exporter-auth`` Secret (the AUTH token in redis_exporter's password file, a
  secret Output end to end) and the ``redis-exporter`` Deployment on ``rediss://`` with
  certificate verification against the image's system CAs (ElastiCache's in-transit
  certificates are Amazon-issued), ``CONFIG`` skipped (ElastiCache refuses it: everything the
  rules use comes from ``INFO``) and the ``/scrape`` multi-target endpoint off;
- their Services ``postgres-exporter`` and ``redis-exporter`` (port ``metrics``, 9187 and 9121:
  ``prometheus.EXPORTER_SERVICES``) and NetworkPolicies: only Prometheus reaches them, on that
  port; they reach only the data subnets on 5432 / 6379 (and DNS, as every pod).

Why the application's namespace and nodes: the RDS and ElastiCache security groups admit the
application node group only (the VPC CNI gives pods their node's groups), so the pods run on
the app pool; the role Job must mount the master credentials, which the External Secrets
Operator keeps in ``exposcholar`` (a pod mounts only Secrets of its own namespace); and the
generated password must be one Secret both the Job and the exporter mount. Their pods count in
the namespace's quota (``components.settings.model.DATABASE_EXPORTERS``).

Why not IAM authentication: postgres_exporter reads its password once, at start
(``DATA_SOURCE_PASS_FILE``), while an RDS IAM token expires after 15 minutes.

Rotating the monitoring role's password: bump ``PASSWORD_GENERATION`` and deploy. The new
ExternalSecret generates a new Secret, the Job (whose inputs changed) sets the new password,
then the exporter (whose pod template names the new Secret) rolls; the old Secret goes with its
ExternalSecret at the end of the update. The AUTH token follows the ``cacheAuthToken`` setting:
its checksum is on the redis exporter's pod template, so a new token rolls it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from components.app.credentials import DATABASE_READER
from components.app.scope import after
from components.aws.cache import CacheConnection
from components.aws.database import DatabaseConnection
from components.lib.component import Component
from components.lib.kube.network_policies import Allowance, Peer, Port, allow
from components.lib.kube.pods import (
    app_pool,
    checksum,
    container_security_context,
    pod_security_context,
    writable,
)
from components.lib.naming import Naming
from components.monitoring import deployment as monitoring
from components.monitoring.deployment import Resources, Workload
from components.platform.external_secrets import API_VERSION as ESO_API_VERSION
from components.platform.external_secrets import ExternalSecretsOperator

POSTGRES_EXPORTER = "postgres-exporter"
REDIS_EXPORTER = "redis-exporter"
POSTGRES_EXPORTER_PORT = 9187
REDIS_EXPORTER_PORT = 9121
METRICS_PORT_NAME = "metrics"
"""The port name ``prometheus.EXPORTER_SERVICES`` keeps for both jobs."""
POSTGRES_EXPORTER_IMAGE = (
    "quay.io/prometheuscommunity/postgres-exporter:v0.20.1"
    "@sha256:ac5ec343104fae0e2d84a27bb8d69b38430a11910c5382cad85d478d2bab713e"
)
"""Upstream postgres_exporter, by release tag and the digest of that tag's multi-arch index on
quay.io (allowlisted in ``policies/config/<stack>.json``). Its default collectors produce every
``pg_*`` name of ``metrics.yaml``; it runs as ``nobody``."""
REDIS_EXPORTER_IMAGE = "quay.io/oliver006/redis_exporter:v1.88.0"
"""Upstream redis_exporter (the scratch image: the binary and the system CA bundle), by release
tag (allowlisted); it runs as 59000."""
NOBODY = 65534
REDIS_EXPORTER_UID = 59000

MONITOR_ROLE = "exposcholar_monitor"
"""The PostgreSQL role postgres_exporter logs in as."""
ROLE_JOB = "postgres-monitor-role"
"""The Job (name prefix), its ConfigMap, labels and NetworkPolicy."""
ROLE_PROGRAM = Path(__file__).with_name("monitor_role")
"""``monitor_role.py`` and ``monitor_role.sql``, mounted into the Job."""
PASSWORD_GENERATION = 1
"""Bump to rotate the monitoring role's password (the module's docstring says how it rolls)."""
PASSWORD_SECRET = f"postgres-monitor-password-{PASSWORD_GENERATION}"
PASSWORD_GENERATOR = "postgres-monitor-password"  # noqa: S105 - an object name
PASSWORD_KEY = "password"  # noqa: S105 - the key the Password generator writes, not a secret
GENERATOR_API_VERSION = "generators.external-secrets.io/v1alpha1"
"""The generators API of the pinned External Secrets chart (0.19.2: ``Password`` v1alpha1)."""
PASSWORD_LENGTH = 32
"""Letters and 8 digits, no symbols (nothing to escape in a URL or SQL): about 185 bits."""
ROLE_JOB_RETRIES = 3
ROLE_JOB_DEADLINE_SECONDS = 300
EXIT_BAD_INPUT = 2
"""``monitor_role.py``'s exit code for bad input: the Job fails at once, no retry."""

CREDENTIALS_DIR = "/var/run/secrets/exposcholar/database"
"""The master credentials (the role Job only)."""
MONITOR_SECRET_DIR = "/var/run/secrets/exposcholar/monitor"  # noqa: S105 - a path
PROGRAM_DIR = "/opt/monitor-role"
RDS_CA_DIR = "/etc/rds-ca"
RDS_CA_FILE = f"{RDS_CA_DIR}/rds-ca-bundle.pem"
REDIS_SECRET_DIR = "/etc/redis-exporter"  # noqa: S105 - a path
REDIS_PASSWORDS_KEY = "passwords.json"
COLLECTION_TIMEOUT = "8s"
"""Within Prometheus's 10 s scrape timeout (``prometheus.SCRAPE_TIMEOUT``)."""

POSTGRES_RESOURCES = Resources("20m", "32Mi", "200m", "128Mi")
REDIS_RESOURCES = Resources("10m", "24Mi", "200m", "64Mi")
INIT_RESOURCES = Resources("10m", "16Mi", "100m", "64Mi")
ROLE_JOB_RESOURCES = Resources("20m", "64Mi", "200m", "128Mi")

core = k8s.core.v1
meta = k8s.meta.v1


@dataclass(frozen=True)
class DatabaseExportersArgs:
    naming: Naming
    """Names and labels of the stack."""
    kubernetes: k8s.Provider
    """The cluster's provider."""
    namespace: pulumi.Input[str]
    """The application's namespace (``Workloads.namespace``), where the master credentials are."""
    database: DatabaseConnection
    """The database: host, port, name."""
    cache: CacheConnection
    """The cache: primary endpoint, port and AUTH token (a secret Output)."""
    client_image: pulumi.Input[str]
    """The backup image, pinned by digest: its ``psql`` (RDS's major version), ``python3`` and
    RDS CA bundle (``DATABASE_SSLROOTCERT``) run the role Job and seed the exporter's CA."""
    data_cidrs: tuple[str, ...]
    """Where the database and the cache are (the isolated subnets)."""


class DatabaseExporters(Component):
    """postgres_exporter and redis_exporter with their credentials (``depends_on``: the
    External Secrets Operator, whose generator kind and sync this needs, and ``Workloads``,
    whose namespace holds the master credentials)."""

    TYPE = "exposcholar:monitoring:DatabaseExporters"

    role_job_name: pulumi.Output[str]
    """The current role Job's name (a hash of what it runs with)."""

    def __init__(
        self, name: str, args: DatabaseExportersArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, opts)
        self.require(ExternalSecretsOperator, "the Password generator and ExternalSecret kinds")
        k8s_opts = self.child_opts(provider=args.kubernetes)
        password = _password(name, args, k8s_opts)
        job = _role_job(name, args, opts=after(k8s_opts, password))
        self.role_job_name = job.metadata.name
        _postgres_exporter(name, args, opts=after(k8s_opts, job))
        _redis_exporter(name, args, k8s_opts)
        self.register()


def _meta(
    args: DatabaseExportersArgs,
    name: pulumi.Input[str],
    part: str,
    annotations: dict[str, str] | None = None,
) -> meta.ObjectMetaArgs:
    return meta.ObjectMetaArgs(
        name=name,
        namespace=args.namespace,
        labels=monitoring.labels(args.naming, part),
        annotations=annotations,
    )


def _password(
    name: str, args: DatabaseExportersArgs, opts: pulumi.ResourceOptions
) -> k8s.apiextensions.CustomResource:
    """The generator and the ExternalSecret that writes its password into ``PASSWORD_SECRET``
    once (``CreatedOnce``: never regenerated under a running exporter). Pulumi waits until the
    Secret is written."""
    generator = k8s.apiextensions.CustomResource(
        f"{name}-password-generator",
        api_version=GENERATOR_API_VERSION,
        kind="Password",
        metadata=_meta(args, PASSWORD_GENERATOR, POSTGRES_EXPORTER),
        spec={
            "length": PASSWORD_LENGTH,
            "digits": 8,
            "symbols": 0,
            "noUpper": False,
            "allowRepeat": True,
        },
        opts=opts,
    )
    return k8s.apiextensions.CustomResource(
        f"{name}-password",
        api_version=ESO_API_VERSION,
        kind="ExternalSecret",
        metadata=_meta(
            args,
            PASSWORD_SECRET,
            POSTGRES_EXPORTER,
            annotations={"pulumi.com/waitFor": "condition=Ready"},
        ),
        spec={
            "refreshPolicy": "CreatedOnce",
            "target": {"name": PASSWORD_SECRET, "creationPolicy": "Owner"},
            "dataFrom": [
                {
                    "sourceRef": {
                        "generatorRef": {
                            "apiVersion": GENERATOR_API_VERSION,
                            "kind": "Password",
                            "name": PASSWORD_GENERATOR,
                        }
                    }
                }
            ],
        },
        opts=after(opts, generator),
    )


def role_program() -> dict[str, str]:
    """The Job's program and SQL, by file name (the ConfigMap's data)."""
    return {path.name: path.read_text() for path in sorted(ROLE_PROGRAM.glob("monitor_role.*"))}


def _secret_volume(name: str, secret: pulumi.Input[str]) -> core.VolumeArgs:
    return monitoring.config_volume(name, secret=secret)


def _role_job(
    name: str, args: DatabaseExportersArgs, *, opts: pulumi.ResourceOptions
) -> k8s.batch.v1.Job:
    """The Job that creates or updates the monitoring role, and its ConfigMap and policy."""
    database, naming = args.database, args.naming
    files = role_program()
    config = core.ConfigMap(
        f"{name}-role-program",
        metadata=_meta(args, ROLE_JOB, ROLE_JOB),
        data=files,
        opts=opts,
    )
    env = {
        "DATABASE_PORT": str(database.port),
        "DATABASE_NAME": database.name,
        "DATABASE_SSLMODE": "verify-full",
        "DATABASE_CREDENTIALS_DIR": CREDENTIALS_DIR,
        "MONITOR_ROLE": MONITOR_ROLE,
        "MONITOR_PASSWORD_FILE": f"{MONITOR_SECRET_DIR}/{PASSWORD_KEY}",
    }
    # a new name whenever anything the Job runs with changes: Pulumi replaces the Job and waits
    digest = pulumi.Output.all(args.client_image, database.host).apply(
        lambda v: checksum(files, env, {"image": v[0], "host": v[1], "secret": PASSWORD_SECRET})
    )
    tmp_volume, tmp_mount = writable("tmp", "/tmp")  # noqa: S108 - an emptyDir
    labels = monitoring.labels(naming, ROLE_JOB)
    allow(
        f"{name}-role-netpol",
        Allowance(
            ROLE_JOB,
            naming.k8s_selector(ROLE_JOB),
            egress=(Peer((Port(database.port),), cidrs=args.data_cidrs),),
        ),
        namespace=args.namespace,
        naming=naming,
        opts=opts,
    )
    return k8s.batch.v1.Job(
        f"{name}-role-job",
        metadata=meta.ObjectMetaArgs(
            name=digest.apply(lambda d: f"{ROLE_JOB}-{d[:10]}"),
            namespace=args.namespace,
            labels=labels,
        ),
        spec=k8s.batch.v1.JobSpecArgs(
            backoff_limit=ROLE_JOB_RETRIES,
            active_deadline_seconds=ROLE_JOB_DEADLINE_SECONDS,
            pod_failure_policy=k8s.batch.v1.PodFailurePolicyArgs(
                rules=[
                    k8s.batch.v1.PodFailurePolicyRuleArgs(
                        action="FailJob",
                        on_exit_codes=k8s.batch.v1.PodFailurePolicyOnExitCodesRequirementArgs(
                            operator="In", values=[EXIT_BAD_INPUT]
                        ),
                    )
                ]
            ),
            template=core.PodTemplateSpecArgs(
                metadata=meta.ObjectMetaArgs(labels=labels),
                spec=core.PodSpecArgs(
                    automount_service_account_token=False,
                    enable_service_links=False,
                    restart_policy="Never",
                    security_context=pod_security_context(),
                    node_selector=app_pool(),
                    containers=[
                        core.ContainerArgs(
                            name=ROLE_JOB,
                            image=args.client_image,
                            image_pull_policy="Always",
                            command=["python3", f"{PROGRAM_DIR}/monitor_role.py"],
                            env=[
                                core.EnvVarArgs(name="DATABASE_HOST", value=database.host),
                                *(core.EnvVarArgs(name=k, value=v) for k, v in env.items()),
                            ],
                            resources=ROLE_JOB_RESOURCES.args(),
                            security_context=container_security_context(),
                            volume_mounts=[
                                tmp_mount,
                                *monitoring.mounts(
                                    {
                                        "program": PROGRAM_DIR,
                                        "database": CREDENTIALS_DIR,
                                        "monitor": MONITOR_SECRET_DIR,
                                    }
                                ),
                            ],
                        )
                    ],
                    volumes=[
                        tmp_volume,
                        monitoring.config_volume("program", config_map=config.metadata.name),
                        _secret_volume("database", DATABASE_READER),
                        _secret_volume("monitor", PASSWORD_SECRET),
                    ],
                ),
            ),
        ),
        opts=after(opts, config),
    )


def postgres_data_source(database: DatabaseConnection) -> pulumi.Output[str]:
    """``DATA_SOURCE_URI``: the database over TLS, the server's certificate and name checked
    against the RDS CA bundle (``verify-full``, the server's and the backups' setting)."""
    return pulumi.Output.concat(
        database.host,
        f":{database.port}/{database.name}?sslmode=verify-full&sslrootcert={RDS_CA_FILE}"
        "&connect_timeout=5",
    )


def _postgres_exporter(
    name: str, args: DatabaseExportersArgs, opts: pulumi.ResourceOptions
) -> None:
    """postgres_exporter as the monitoring role, its Service and NetworkPolicy."""
    naming = args.naming
    ca_volume, ca_mount = writable("rds-ca", RDS_CA_DIR, size="4Mi")
    port = METRICS_PORT_NAME
    workload = Workload(
        name=POSTGRES_EXPORTER,
        uid=NOBODY,
        port_name=port,
        port=POSTGRES_EXPORTER_PORT,
        app_pool=True,
        init_containers=[
            core.ContainerArgs(
                name="rds-ca",
                image=args.client_image,
                image_pull_policy="Always",
                # the bundle the backup image verifies RDS with (its DATABASE_SSLROOTCERT)
                command=["sh", "-c", f'exec cp -- "$DATABASE_SSLROOTCERT" {RDS_CA_FILE}'],
                resources=INIT_RESOURCES.args(),
                security_context=container_security_context(),
                volume_mounts=[ca_mount],
            )
        ],
        container=core.ContainerArgs(
            name=POSTGRES_EXPORTER,
            image=POSTGRES_EXPORTER_IMAGE,
            image_pull_policy="Always",
            args=[
                f"--web.listen-address=:{POSTGRES_EXPORTER_PORT}",
                f"--collection-timeout={COLLECTION_TIMEOUT}",
            ],
            env=[
                core.EnvVarArgs(name="DATA_SOURCE_URI", value=postgres_data_source(args.database)),
                core.EnvVarArgs(name="DATA_SOURCE_USER", value=MONITOR_ROLE),
                core.EnvVarArgs(
                    name="DATA_SOURCE_PASS_FILE", value=f"{MONITOR_SECRET_DIR}/{PASSWORD_KEY}"
                ),
            ],
            ports=[
                core.ContainerPortArgs(
                    name=port, container_port=POSTGRES_EXPORTER_PORT, protocol="TCP"
                )
            ],
            resources=POSTGRES_RESOURCES.args(),
            # ready when it serves its landing page; alive while it accepts connections. Not
            # /metrics: that queries the database, whose outage is pg_up 0, not a restart.
            readiness_probe=monitoring.http_probe("/", port),
            liveness_probe=_tcp_probe(port),
            security_context=container_security_context(),
            volume_mounts=[
                *monitoring.mounts({"monitor": MONITOR_SECRET_DIR}),
                core.VolumeMountArgs(name=ca_volume.name, mount_path=RDS_CA_DIR, read_only=True),
            ],
        ),
        volumes=[_secret_volume("monitor", PASSWORD_SECRET), ca_volume],
    )
    _deploy(
        name,
        "postgres",
        workload,
        args=args,
        config_checksum=checksum(PASSWORD_SECRET, MONITOR_ROLE),
        opts=opts,
    )
    allow(
        f"{name}-postgres-netpol",
        Allowance(
            POSTGRES_EXPORTER,
            naming.k8s_selector(POSTGRES_EXPORTER),
            ingress=(Peer.monitoring(POSTGRES_EXPORTER_PORT),),
            egress=(Peer((Port(args.database.port),), cidrs=args.data_cidrs),),
        ),
        namespace=args.namespace,
        naming=naming,
        opts=opts,
    )


def redis_address(cache: CacheConnection) -> pulumi.Output[str]:
    """The cache's primary endpoint over TLS (``rediss://``), as redis_exporter's address and
    its password file's key."""
    return pulumi.Output.concat("rediss://", cache.host, f":{cache.port}")


def redis_password_file(address: str, token: str) -> str:
    """redis_exporter's password file: a JSON map of the address it connects to (exactly as
    ``--redis.addr`` says it) to the AUTH token."""
    return json.dumps({address: token}, sort_keys=True)


def _redis_exporter(name: str, args: DatabaseExportersArgs, opts: pulumi.ResourceOptions) -> None:
    """The AUTH token's Secret, redis_exporter, its Service and NetworkPolicy."""
    naming = args.naming
    address = redis_address(args.cache)
    passwords: pulumi.Output[str] = pulumi.Output.secret(
        pulumi.Output.all(address, args.cache.auth_token).apply(
            lambda v: redis_password_file(v[0], v[1])
        )
    )
    secret = core.Secret(
        f"{name}-redis-auth",
        metadata=_meta(args, f"{REDIS_EXPORTER}-auth", REDIS_EXPORTER),
        type="Opaque",
        string_data={REDIS_PASSWORDS_KEY: passwords},
        opts=opts,
    )
    port = METRICS_PORT_NAME
    workload = Workload(
        name=REDIS_EXPORTER,
        uid=REDIS_EXPORTER_UID,
        port_name=port,
        port=REDIS_EXPORTER_PORT,
        app_pool=True,
        container=core.ContainerArgs(
            name=REDIS_EXPORTER,
            image=REDIS_EXPORTER_IMAGE,
            image_pull_policy="Always",
            args=[
                pulumi.Output.concat("--redis.addr=", address),
                f"--redis.password-file={REDIS_SECRET_DIR}/{REDIS_PASSWORDS_KEY}",
                f"--web.listen-address=:{REDIS_EXPORTER_PORT}",
                "--config-command=-",  # ElastiCache refuses CONFIG; INFO has what we use
                "--disable-scrape-endpoint",  # no /scrape?target=: this one address only
                "--connection-timeout=5s",
            ],
            ports=[
                core.ContainerPortArgs(
                    name=port, container_port=REDIS_EXPORTER_PORT, protocol="TCP"
                )
            ],
            resources=REDIS_RESOURCES.args(),
            readiness_probe=monitoring.http_probe("/health", port),
            liveness_probe=_tcp_probe(port),
            security_context=container_security_context(),
            volume_mounts=monitoring.mounts({"auth": REDIS_SECRET_DIR}),
        ),
        volumes=[_secret_volume("auth", secret.metadata.name)],
    )
    # the digest is not secret (as Alertmanager's): a new token rolls the pod
    digest = pulumi.Output.unsecret(passwords.apply(checksum))
    _deploy(name, "redis", workload, args=args, config_checksum=digest, opts=after(opts, secret))
    allow(
        f"{name}-redis-netpol",
        Allowance(
            REDIS_EXPORTER,
            naming.k8s_selector(REDIS_EXPORTER),
            ingress=(Peer.monitoring(REDIS_EXPORTER_PORT),),
            egress=(Peer((Port(args.cache.port),), cidrs=args.data_cidrs),),
        ),
        namespace=args.namespace,
        naming=naming,
        opts=opts,
    )


def _deploy(
    name: str,
    part: str,
    workload: Workload,
    *,
    args: DatabaseExportersArgs,
    config_checksum: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> None:
    """``workload``'s Deployment and Service (``deployment``), as ``<name>-<part>``."""
    monitoring.deployment(
        f"{name}-{part}",
        workload,
        namespace=args.namespace,
        naming=args.naming,
        config_checksum=config_checksum,
        opts=opts,
    )
    monitoring.service(
        f"{name}-{part}-service", workload, namespace=args.namespace, naming=args.naming, opts=opts
    )


def _tcp_probe(port: str) -> core.ProbeArgs:
    return core.ProbeArgs(
        tcp_socket=core.TCPSocketActionArgs(port=port),
        period_seconds=15,
        failure_threshold=4,
        timeout_seconds=3,
    )
