"""``Workloads``: the ExpoScholar application on the cluster.

What is created, in the ``exposcholar`` namespace:

* the **namespace** itself (Pod Security Standards ``restricted``, enforced, audited and warned,
  pinned to the cluster version), a **ResourceQuota** from settings (which also forbids
  ``LoadBalancer`` and ``NodePort`` Services: traffic enters only through the Ingress) and a
  **LimitRange** giving any container without requests and limits the server's;
* **configuration**: a ConfigMap with what Django needs that is not secret (database host, port
  and name, the Redis URL with TLS, bucket names, allowed hosts, log level) and a Secret with the
  Django secret key and the Redis AUTH token (secret settings, encrypted in state), mounted as
  files under ``SECRETS_DIR`` rather than passed as environment variables;
* **database credentials synced from Secrets Manager** by the External Secrets Operator: a
  ``SecretStore`` that authenticates as the ``database-credentials`` service account (its IRSA
  role may read only the RDS master secret and decrypt it with the data key) and an
  ``ExternalSecret`` refreshed every ``CREDENTIALS_REFRESH``. *Why this survives rotation:*
  RDS rotates the password in Secrets Manager; the operator rewrites the Kubernetes Secret at
  its next refresh; the Secret is mounted as **files** (not environment variables, which are
  frozen at pod start), the kubelet updates mounted files in place, and the app reads the
  password file when it opens a database connection. So new connections use the new password
  without a deploy or a restart, and RDS keeps the old password valid until rotation completes;
* the **server** (Gunicorn/Django) Deployment: replicas owned by its HPA (min and max from
  settings; the Deployment does not set ``replicas``, or every ``pulumi up`` would reset what
  the HPA chose), requests and limits, startup/readiness/liveness probes on distinct endpoints,
  the ``restricted`` security context with a read-only root filesystem and emptyDirs for
  ``/tmp``, spread across zones, on the app node group, its own service account whose IRSA role
  reaches only the static and media buckets (and their key), no service account token mounted
  (it does not call the Kubernetes API), and a ``preStop`` pause with a termination grace period
  long enough for the load balancer to deregister the pod before Gunicorn stops. The pod
  template carries a checksum of its configuration so a config change rolls the pods;
* **migrations** as a Job per release (its name carries a hash of the image and the
  configuration), ``manage.py migrate`` (idempotent: Django records applied migrations), with
  bounded retries and a deadline; the Deployment depends on it, so a release's pods start only
  after its migrations succeeded;
* a ClusterIP **Service**, an autoscaling/v2 **HPA** on CPU and memory with a scale-down
  stabilization window, a **PodDisruptionBudget** (multi-replica) and a **VPA** in
  recommendation-only mode (the HPA already scales on CPU and memory).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.aws.cache import CacheConnection
from components.aws.database import DatabaseConnection
from components.aws.storage import AppBuckets
from components.lib.component import Component
from components.lib.irsa import IrsaRole, OidcIssuer, irsa_role
from components.lib.kube.namespaces import namespace
from components.lib.kube.network_policies import Allowance, Peer, Port, allow, namespace_baseline
from components.lib.kube.pods import (
    CHECKSUM_ANNOTATION,
    app_pool,
    checksum,
    container_security_context,
    pod_security_context,
    spread,
    writable,
)
from components.lib.kube.service import ServiceBackend
from components.lib.kube.vpa import mode_for, vertical_autoscaler
from components.lib.naming import Naming
from components.platform.external_secrets import API_VERSION as ESO_API_VERSION
from components.settings import ROLLOUT_SURGE_PERCENT, WorkloadSettings

COMPONENT = "app"
NAMESPACE = "exposcholar"
SERVER = "server"
HTTP_PORT = 8000
METRICS_PORT = 8001
"""Prometheus metrics of the Gunicorn workers, apart from the public port."""
SERVICE_PORT = 80
HEALTH = {"startup": "/health/startup", "ready": "/health/ready", "live": "/health/live"}
"""Distinct endpoints: startup (migrations checked, app loaded), readiness (database and cache
reachable: take traffic), liveness (the process answers: no dependency checks, so an outage of
the database does not restart every pod). The load balancer's health checks (``/health/ready``)
carry the pod's IP as Host header: the app answers the health endpoints before Django's
ALLOWED_HOSTS check (a middleware placed first), or every target would be unhealthy."""
PRE_STOP_SECONDS = 15
"""Pause before SIGTERM: the load balancer controller deregisters the pod's IP meanwhile."""
GRACEFUL_SECONDS = 30
"""Gunicorn's graceful timeout: in-flight requests finish within it."""
CREDENTIALS_REFRESH = "15m"
CREDENTIALS_DIR = "/var/run/secrets/exposcholar/database"
SECRETS_DIR = "/var/run/secrets/exposcholar/app"
"""Secrets reach the app as files (one per key), never as environment variables: those leak
into crash reports, ``/proc/<pid>/environ`` and child processes."""
MIGRATE = ("python", "manage.py", "migrate", "--noinput")
MIGRATION_RETRIES = 3
MIGRATION_DEADLINE_SECONDS = 900
DATABASE_READER = "database-credentials"
"""Service account (and Secret) of the database credentials sync."""

core = k8s.core.v1
meta = k8s.meta.v1


@dataclass(frozen=True)
class WorkloadsArgs:
    settings: WorkloadSettings
    """Host, sizes, replicas, quota, secrets of the application."""
    naming: Naming
    """Names and labels of the stack."""
    region: str
    """The stack's region (Secrets Manager, the app's AWS clients)."""
    cluster_version: str
    """Kubernetes minor version: pins the namespace's Pod Security labels."""
    oidc: OidcIssuer
    """The cluster's OIDC issuer, for the IRSA roles."""
    kubernetes: k8s.Provider
    """The cluster's provider."""
    server_image: pulumi.Input[str]
    """The server image, pinned by digest."""
    database: DatabaseConnection
    """The database: host, port, name and the RDS-managed master secret."""
    cache: CacheConnection
    """The cache: primary endpoint, port and AUTH token."""
    buckets: AppBuckets
    """The static and media buckets and their key."""
    load_balancer_cidrs: tuple[str, ...] = ()
    """Where the ALB's nodes are (the public subnets): the only source of app traffic until the
    edge proxy exists."""
    data_cidrs: tuple[str, ...] = ()
    """Where the database and cache are (the isolated subnets)."""


def server_bucket_policy(static_arn: str, media_arn: str, key_arn: str) -> str:
    """Object access to the static and media buckets, and their key; nothing else."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ListBuckets",
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                    "Resource": [static_arn, media_arn],
                },
                {
                    "Sid": "Objects",
                    "Effect": "Allow",
                    "Action": [
                        "s3:GetObject",
                        "s3:PutObject",
                        "s3:DeleteObject",
                        "s3:AbortMultipartUpload",
                    ],
                    "Resource": [f"{static_arn}/*", f"{media_arn}/*"],
                },
                {
                    "Sid": "BucketKey",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": [key_arn],
                },
            ],
        }
    )


def credentials_reader_policy(secret_arn: str, key_arn: str, region: str) -> str:
    """Read the one RDS master secret; decrypt only through Secrets Manager."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "MasterSecret",
                    "Effect": "Allow",
                    "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                    "Resource": [secret_arn],
                },
                {
                    "Sid": "DecryptThroughSecretsManager",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt"],
                    "Resource": [key_arn],
                    "Condition": {
                        "StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}
                    },
                },
            ],
        }
    )


class Workloads(Component):
    """The application's namespace, configuration, server, migrations and autoscaling
    (``depends_on``: the nodes, the External Secrets Operator and the VPA, whose CRDs the
    SecretStore, ExternalSecret and VerticalPodAutoscaler objects need)."""

    TYPE = "exposcholar:app:Workloads"

    namespace: pulumi.Output[str]
    """The application's namespace."""
    backend: ServiceBackend
    """The server's ClusterIP Service: what the Ingress routes to until the edge exists."""

    def __init__(
        self, name: str, args: WorkloadsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, opts)
        self._name = name
        self._args = args
        k8s_opts = self.child_opts(provider=args.kubernetes)
        self._k8s = k8s_opts
        ns = namespace(
            f"{name}-namespace",
            name=NAMESPACE,
            cluster_version=args.cluster_version,
            naming=args.naming,
            component=COMPONENT,
            opts=k8s_opts,
        )
        self._ns = ns.metadata.name
        self._limits(ns)
        self._network_policies(ns)
        config_data = self._config_data()
        config = core.ConfigMap(
            f"{name}-server-config",
            metadata=self._meta(f"{SERVER}-config", SERVER),
            data=config_data,
            immutable=False,
            opts=k8s_opts,
        )
        secret_data = {
            "DJANGO_SECRET_KEY": args.settings.django_secret_key.output(),
            "REDIS_AUTH_TOKEN": pulumi.Output.secret(args.cache.auth_token),
        }
        secret = core.Secret(
            f"{name}-server-secrets",
            metadata=self._meta(f"{SERVER}-secrets", SERVER),
            type="Opaque",
            string_data=secret_data,
            opts=k8s_opts,
        )
        credentials = self._database_credentials()
        service_account = self._server_account()
        # One checksum over everything the pods read: any change rolls them (and names the
        # release's migration Job). Hashing the secrets reveals nothing; the hash is unsecret.
        release = pulumi.Output.unsecret(
            pulumi.Output.all(args.server_image, config_data, secret_data).apply(
                lambda values: checksum(values[0], values[1], values[2])
            )
        )
        migration = self._migration(
            # its own account: no AWS role (migrations only talk to the database)
            self._pod_spec(
                self._service_account("migrate", "migrate", None), config, secret, MIGRATE
            ),
            release,
            [config, secret, *credentials],
        )
        deployment = self._deployment(
            self._pod_spec(service_account, config, secret), release, [migration, *credentials]
        )
        service = core.Service(
            f"{name}-server-service",
            metadata=self._meta(SERVER, SERVER),
            spec=core.ServiceSpecArgs(
                type="ClusterIP",
                selector=self._selector(),
                ports=[
                    core.ServicePortArgs(
                        name="http", port=SERVICE_PORT, target_port="http", protocol="TCP"
                    ),
                    core.ServicePortArgs(
                        name="metrics", port=METRICS_PORT, target_port="metrics", protocol="TCP"
                    ),
                ],
            ),
            opts=k8s_opts,
        )
        self._autoscaling(deployment)
        self.namespace = self._ns
        self.backend = ServiceBackend(
            namespace=self._ns,
            service=service.metadata.name,
            port=SERVICE_PORT,
            health_check_path=HEALTH["ready"],
        )
        self.register()

    # -- helpers ----------------------------------------------------------------------------

    def _after(self, *resources: pulumi.Resource) -> pulumi.ResourceOptions:
        """Options of an object on the cluster that also waits for ``resources``."""
        return self.child_opts(provider=self._args.kubernetes, depends_on=resources)

    def _labels(self, part: str) -> dict[str, str]:
        return self._args.naming.k8s_labels(part, COMPONENT)

    def _selector(self, part: str = SERVER) -> dict[str, str]:
        return self._args.naming.k8s_selector(part)

    def _meta(
        self, name: pulumi.Input[str], part: str, annotations: Mapping[str, str] | None = None
    ) -> meta.ObjectMetaArgs:
        return meta.ObjectMetaArgs(
            name=name,
            namespace=self._ns,
            labels=self._labels(part),
            annotations=dict(annotations) if annotations else None,
        )

    def _limits(self, ns: core.Namespace) -> None:
        """Quota over the namespace (from settings) and container defaults."""
        settings = self._args.settings
        quota, server = settings.quota, settings.server
        opts = self._after(ns)
        core.ResourceQuota(
            f"{self._name}-quota",
            metadata=self._meta("quota", "quota"),
            spec=core.ResourceQuotaSpecArgs(
                hard={
                    "requests.cpu": quota.cpu.text,
                    "limits.cpu": quota.cpu.text,
                    "requests.memory": quota.memory.text,
                    "limits.memory": quota.memory.text,
                    "pods": str(quota.pods),
                    "services.loadbalancers": "0",
                    "services.nodeports": "0",
                }
            ),
            opts=opts,
        )
        core.LimitRange(
            f"{self._name}-limits",
            metadata=self._meta("limits", "quota"),
            spec=core.LimitRangeSpecArgs(
                limits=[
                    core.LimitRangeItemArgs(
                        type="Container",
                        default_request=server.requests(),
                        default=server.limits(),
                    )
                ]
            ),
            opts=opts,
        )

    def _network_policies(self, ns: core.Namespace) -> None:
        """Default deny, then the server's and the migrations' own allowances."""
        args = self._args
        opts: dict[str, Any] = {
            "namespace": self._ns,
            "naming": args.naming,
            "opts": self._after(ns),
        }
        namespace_baseline(f"{self._name}-netpol", **opts)
        database = Peer((Port(args.database.port),), cidrs=args.data_cidrs)
        cache = Peer((Port(args.cache.port),), cidrs=args.data_cidrs)
        allow(
            f"{self._name}-netpol-server",
            Allowance(
                SERVER,
                self._selector(),
                ingress=(
                    Peer((Port(HTTP_PORT),), cidrs=args.load_balancer_cidrs),
                    Peer.monitoring(METRICS_PORT),
                ),
                egress=(database, cache, Peer.https_anywhere()),
            ),
            **opts,
        )
        allow(
            f"{self._name}-netpol-migrate",
            Allowance("migrate", self._selector("migrate"), egress=(database,)),
            **opts,
        )

    def _config_data(self) -> pulumi.Output[dict[str, str]]:
        args = self._args
        settings = args.settings
        return pulumi.Output.all(
            args.database.host, args.cache.host, args.buckets.static_bucket,
            args.buckets.media_bucket,
        ).apply(
            lambda v: {
                "DJANGO_SETTINGS_MODULE": "exposcholar.settings.production",
                "DJANGO_ALLOWED_HOSTS": settings.host,
                "DJANGO_CSRF_TRUSTED_ORIGINS": f"https://{settings.host}",
                "DJANGO_LOG_LEVEL": settings.log_level.value,
                "DATABASE_HOST": v[0],
                "DATABASE_PORT": str(args.database.port),
                "DATABASE_NAME": args.database.name,
                "DATABASE_SSLMODE": "verify-full",
                "DATABASE_CREDENTIALS_DIR": CREDENTIALS_DIR,
                "DJANGO_SECRETS_DIR": SECRETS_DIR,
                "REDIS_URL": f"rediss://{v[1]}:{args.cache.port}/0",
                "AWS_REGION": args.region,
                "AWS_STORAGE_BUCKET_NAME": v[2],
                "AWS_MEDIA_BUCKET_NAME": v[3],
                "GUNICORN_GRACEFUL_TIMEOUT": str(GRACEFUL_SECONDS),
                "PROMETHEUS_METRICS_EXPORT_PORT": str(METRICS_PORT),
            }
        )  # fmt: skip

    def _role(self, suffix: str, service_account: str, policy: pulumi.Input[str]) -> IrsaRole:
        naming = self._args.naming
        return irsa_role(
            f"{self._name}-{suffix}-role",
            opts=self.child_opts(),
            oidc=self._args.oidc,
            namespace=NAMESPACE,
            service_account=service_account,
            role_name=naming.physical(COMPONENT, suffix, max_length=64),
            tags=naming.tags(COMPONENT, suffix),
            inline_policy=policy,
        )

    def _service_account(
        self, suffix: str, account: str, role: IrsaRole | None
    ) -> core.ServiceAccount:
        """A workload's own service account, bound to its IRSA role if it calls AWS, with no
        Kubernetes API token (none of the app's workloads call the API)."""
        return core.ServiceAccount(
            f"{self._name}-{suffix}-account",
            metadata=meta.ObjectMetaArgs(
                name=account,
                namespace=self._ns,
                labels=self._labels(account),
                annotations=(
                    role.arn.apply(lambda arn: {"eks.amazonaws.com/role-arn": arn})
                    if role is not None
                    else None
                ),
            ),
            automount_service_account_token=False,
            opts=self._k8s,
        )

    def _server_account(self) -> core.ServiceAccount:
        buckets = self._args.buckets
        policy = pulumi.Output.all(buckets.static_arn, buckets.media_arn, buckets.key_arn).apply(
            lambda v: server_bucket_policy(v[0], v[1], v[2])
        )
        return self._service_account(SERVER, SERVER, self._role(SERVER, SERVER, policy))

    def _database_credentials(self) -> list[pulumi.Resource]:
        """Service account + IRSA role, SecretStore and ExternalSecret (see module docstring)."""
        args = self._args
        policy = pulumi.Output.all(args.database.master_secret_arn, args.database.key_arn).apply(
            lambda v: credentials_reader_policy(v[0], v[1], args.region)
        )
        role = self._role("database-credentials", DATABASE_READER, policy)
        account = self._service_account("database-credentials", DATABASE_READER, role)
        after = self._after(account)
        store = k8s.apiextensions.CustomResource(
            f"{self._name}-secret-store",
            api_version=ESO_API_VERSION,
            kind="SecretStore",
            metadata=self._meta("aws-secrets-manager", DATABASE_READER),
            spec={
                "provider": {
                    "aws": {
                        "service": "SecretsManager",
                        "region": args.region,
                        "auth": {"jwt": {"serviceAccountRef": {"name": DATABASE_READER}}},
                    }
                }
            },
            opts=after,
        )
        external = k8s.apiextensions.CustomResource(
            f"{self._name}-database-credentials",
            api_version=ESO_API_VERSION,
            kind="ExternalSecret",
            # Pulumi waits until the operator reports the Secret synced: pods never start
            # without their credentials.
            metadata=self._meta(
                DATABASE_READER,
                DATABASE_READER,
                annotations={"pulumi.com/waitFor": "condition=Ready"},
            ),
            spec={
                "refreshInterval": CREDENTIALS_REFRESH,
                "secretStoreRef": {"kind": "SecretStore", "name": "aws-secrets-manager"},
                "target": {"name": DATABASE_READER, "creationPolicy": "Owner"},
                "data": [
                    {
                        "secretKey": field,
                        "remoteRef": {"key": args.database.master_secret_arn, "property": field},
                    }
                    for field in ("username", "password")
                ],
            },
            opts=self._after(store),
        )
        return [store, external]

    def _pod_spec(
        self,
        account: core.ServiceAccount,
        config: core.ConfigMap,
        secret: core.Secret,
        command: Sequence[str] | None = None,
    ) -> core.PodSpecArgs:
        """The server's pod; with ``command``, the same pod running that command to completion
        (no ports, probes or spreading: the migration Job)."""
        settings = self._args.settings
        serving = command is None
        tmp_volume, tmp_mount = writable("tmp", "/tmp")  # noqa: S108 - an emptyDir, not shared
        container = core.ContainerArgs(
            name=SERVER if serving else "migrate",
            image=self._args.server_image,
            # pinned by digest; Always re-checks the registry so a pod never runs a stale copy
            image_pull_policy="Always",
            args=list(command) if command is not None else [
                "gunicorn",
                "exposcholar.wsgi:application",
                f"--bind=0.0.0.0:{HTTP_PORT}",
                f"--graceful-timeout={GRACEFUL_SECONDS}",
                "--worker-tmp-dir=/tmp",
                "--access-logfile=-",
            ],
            ports=[
                core.ContainerPortArgs(name="http", container_port=HTTP_PORT, protocol="TCP"),
                core.ContainerPortArgs(name="metrics", container_port=METRICS_PORT, protocol="TCP"),
            ] if serving else None,
            env_from=[
                core.EnvFromSourceArgs(
                    config_map_ref=core.ConfigMapEnvSourceArgs(name=config.metadata.name)
                ),
            ],
            resources=core.ResourceRequirementsArgs(
                requests=settings.server.requests(), limits=settings.server.limits()
            ),
            startup_probe=self._probe("startup", period=5, failures=30) if serving else None,
            readiness_probe=self._probe("ready", period=10, failures=3) if serving else None,
            liveness_probe=self._probe("live", period=20, failures=3) if serving else None,
            lifecycle=core.LifecycleArgs(
                pre_stop=core.LifecycleHandlerArgs(
                    sleep=core.SleepActionArgs(seconds=PRE_STOP_SECONDS)
                )
            ) if serving else None,
            security_context=container_security_context(),
            volume_mounts=[
                tmp_mount,
                core.VolumeMountArgs(name="database", mount_path=CREDENTIALS_DIR, read_only=True),
                core.VolumeMountArgs(name="secrets", mount_path=SECRETS_DIR, read_only=True),
            ],
        )  # fmt: skip
        return core.PodSpecArgs(
            service_account_name=account.metadata.name,
            automount_service_account_token=False,
            security_context=pod_security_context(),
            node_selector=app_pool(),
            topology_spread_constraints=spread(self._selector()) if serving else None,
            termination_grace_period_seconds=PRE_STOP_SECONDS + GRACEFUL_SECONDS + 5,
            restart_policy="Always" if serving else "Never",
            containers=[container],
            volumes=[
                tmp_volume,
                core.VolumeArgs(
                    name="database",
                    secret=core.SecretVolumeSourceArgs(
                        secret_name=DATABASE_READER, default_mode=0o440
                    ),
                ),
                core.VolumeArgs(
                    name="secrets",
                    secret=core.SecretVolumeSourceArgs(
                        secret_name=secret.metadata.name, default_mode=0o440
                    ),
                ),
            ],
        )

    @staticmethod
    def _probe(kind: str, *, period: int, failures: int) -> core.ProbeArgs:
        return core.ProbeArgs(
            http_get=core.HTTPGetActionArgs(path=HEALTH[kind], port="http"),
            period_seconds=period,
            failure_threshold=failures,
            timeout_seconds=5,
        )

    def _migration(
        self, pod: core.PodSpecArgs, release: pulumi.Output[str], after: list[pulumi.Resource]
    ) -> k8s.batch.v1.Job:
        """The release's ``migrate`` Job: a new name per release, so Pulumi replaces it (and
        waits for it to complete) whenever the image or configuration changes."""
        return k8s.batch.v1.Job(
            f"{self._name}-migrate",
            metadata=meta.ObjectMetaArgs(
                name=release.apply(lambda digest: f"{SERVER}-migrate-{digest[:10]}"),
                namespace=self._ns,
                labels=self._labels("migrate"),
            ),
            spec=k8s.batch.v1.JobSpecArgs(
                backoff_limit=MIGRATION_RETRIES,
                active_deadline_seconds=MIGRATION_DEADLINE_SECONDS,
                template=core.PodTemplateSpecArgs(
                    metadata=meta.ObjectMetaArgs(labels=self._labels("migrate")), spec=pod
                ),
            ),
            opts=self._after(*after),
        )

    def _deployment(
        self, pod: core.PodSpecArgs, release: pulumi.Output[str], after: list[pulumi.Resource]
    ) -> k8s.apps.v1.Deployment:
        """The server; no ``replicas`` (the HPA owns them), surge-only rolling updates."""
        return k8s.apps.v1.Deployment(
            f"{self._name}-server",
            metadata=self._meta(SERVER, SERVER),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                selector=meta.LabelSelectorArgs(match_labels=self._selector()),
                revision_history_limit=5,
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
                        max_surge=f"{ROLLOUT_SURGE_PERCENT}%", max_unavailable=0
                    ),
                ),
                template=core.PodTemplateSpecArgs(
                    metadata=meta.ObjectMetaArgs(
                        labels=self._labels(SERVER),
                        annotations=release.apply(lambda digest: {CHECKSUM_ANNOTATION: digest}),
                    ),
                    spec=pod,
                ),
            ),
            opts=self._after(*after),
        )

    def _autoscaling(self, deployment: k8s.apps.v1.Deployment) -> None:
        """HPA on CPU and memory, PDB when more than one replica runs, VPA recommending."""
        settings = self._args.settings
        target = k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
            api_version="apps/v1", kind="Deployment", name=SERVER
        )
        after = self._after(deployment)
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{self._name}-server-hpa",
            metadata=self._meta(SERVER, SERVER),
            spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
                scale_target_ref=target,
                min_replicas=settings.min_replicas,
                max_replicas=settings.max_replicas,
                metrics=[
                    _utilization("cpu", settings.cpu_target_percent),
                    _utilization("memory", settings.memory_target_percent),
                ],
                behavior=k8s.autoscaling.v2.HorizontalPodAutoscalerBehaviorArgs(
                    scale_down=k8s.autoscaling.v2.HPAScalingRulesArgs(
                        stabilization_window_seconds=settings.scale_down_stabilization_seconds,
                        select_policy="Min",
                        policies=[
                            k8s.autoscaling.v2.HPAScalingPolicyArgs(
                                type="Percent", value=50, period_seconds=60
                            )
                        ],
                    ),
                    scale_up=k8s.autoscaling.v2.HPAScalingRulesArgs(
                        stabilization_window_seconds=0,
                        select_policy="Max",
                        policies=[
                            k8s.autoscaling.v2.HPAScalingPolicyArgs(
                                type="Percent", value=100, period_seconds=60
                            ),
                            k8s.autoscaling.v2.HPAScalingPolicyArgs(
                                type="Pods", value=4, period_seconds=60
                            ),
                        ],
                    ),
                ),
            ),
            opts=after,
        )
        if settings.max_replicas > 1:
            k8s.policy.v1.PodDisruptionBudget(
                f"{self._name}-server-pdb",
                metadata=self._meta(SERVER, SERVER),
                spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                    max_unavailable=1,
                    selector=meta.LabelSelectorArgs(match_labels=self._selector()),
                    unhealthy_pod_eviction_policy="AlwaysAllow",
                ),
                opts=after,
            )
        vertical_autoscaler(
            f"{self._name}-server-vpa",
            namespace=self._ns,
            target_kind="Deployment",
            target_name=SERVER,
            mode=mode_for(scaled_by_hpa_on_resources=True),
            max_allowed=settings.server.limits(),
            labels=self._labels(SERVER),
            opts=after,
        )


def _utilization(resource: str, percent: int) -> k8s.autoscaling.v2.MetricSpecArgs:
    return k8s.autoscaling.v2.MetricSpecArgs(
        type="Resource",
        resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
            name=resource,
            target=k8s.autoscaling.v2.MetricTargetArgs(
                type="Utilization", average_utilization=percent
            ),
        ),
    )
