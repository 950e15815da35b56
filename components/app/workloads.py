"""``Workloads``: the ExpoScholar application on the cluster, in the ``exposcholar`` namespace.

The namespace (Pod Security ``restricted``) with its quota, container defaults and network
policies; the server's configuration (a ConfigMap and a Secret); the database credentials
synced from Secrets Manager (``credentials``); the server's Deployment, started after the
release's migrations (``migrations``), its Service and its autoscaling (``scaling``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.app.accounts import aws_service_account
from components.app.credentials import database_credentials
from components.app.iam import server_bucket_policy
from components.app.migrations import MIGRATE, migration_job
from components.app.pod_spec import (
    CREDENTIALS_DIR,
    GRACEFUL_SECONDS,
    HEALTH,
    HTTP_PORT,
    METRICS_PORT,
    SECRETS_DIR,
    ServerPod,
    pod_spec,
)
from components.app.rollout import rolling_deployment
from components.app.scaling import server_autoscaling
from components.app.scope import COMPONENT, EDGE, NAMESPACE, SERVER, AppScope, after
from components.aws.cache import CacheConnection
from components.aws.database import DatabaseConnection
from components.aws.storage import AppBuckets
from components.lib.component import Component
from components.lib.irsa import OidcIssuer
from components.lib.kube.namespaces import namespace
from components.lib.kube.network_policies import Allowance, Peer, Port, allow, namespace_baseline
from components.lib.kube.pods import checksum
from components.lib.kube.service import ServiceBackend
from components.lib.naming import Naming
from components.platform.external_secrets import ExternalSecretsOperator
from components.platform.vpa import VerticalPodAutoscaler
from components.settings import WorkloadSettings

SERVICE_PORT = HTTP_PORT
"""The Service's port is the pods' port: the VPC CNI's network policy agent matches traffic
sent to a ClusterIP only when the two are equal."""

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
    data_cidrs: tuple[str, ...] = ()
    """Where the database and cache are (the isolated subnets)."""


class Workloads(Component):
    """The application's namespace, configuration, server, migrations and autoscaling
    (``depends_on``: the nodes, the External Secrets Operator and the VPA, whose CRDs the
    SecretStore, ExternalSecret and VerticalPodAutoscaler objects need)."""

    TYPE = "exposcholar:app:Workloads"

    namespace: pulumi.Output[str]
    """The application's namespace."""
    backend: ServiceBackend
    """The server's ClusterIP Service: what the edge proxies to."""

    def __init__(
        self, name: str, args: WorkloadsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, opts)
        self.require(ExternalSecretsOperator, "the SecretStore and ExternalSecret are its kinds")
        self.require(VerticalPodAutoscaler, "the server's VerticalPodAutoscaler is its kind")
        aws_opts = self.child_opts()
        k8s_opts = self.child_opts(provider=args.kubernetes)
        ns = namespace(
            f"{name}-namespace",
            name=NAMESPACE,
            cluster_version=args.cluster_version,
            naming=args.naming,
            component=COMPONENT,
            opts=k8s_opts,
        )
        scope = AppScope(name, ns.metadata.name, args.naming)
        _limits(scope, args.settings, opts=after(k8s_opts, ns))
        _network_policies(scope, args, opts=after(k8s_opts, ns))
        # What Django needs that is not secret, as environment variables.
        config_data = _config_data(args)
        config = core.ConfigMap(
            f"{name}-server-config",
            metadata=scope.meta(f"{SERVER}-config", SERVER),
            data=config_data,
            immutable=False,
            opts=k8s_opts,
        )
        # The secret settings (encrypted in state), mounted as files under SECRETS_DIR.
        secret_data: dict[str, pulumi.Output[str]] = {
            "DJANGO_SECRET_KEY": args.settings.django_secret_key.output(),
            "REDIS_AUTH_TOKEN": pulumi.Output.secret(args.cache.auth_token),
        }
        secret = core.Secret(
            f"{name}-server-secrets",
            metadata=scope.meta(f"{SERVER}-secrets", SERVER),
            type="Opaque",
            string_data=secret_data,
            opts=k8s_opts,
        )
        credentials = database_credentials(
            scope,
            database=args.database,
            region=args.region,
            oidc=args.oidc,
            role_opts=aws_opts,
            opts=k8s_opts,
        )
        # The server's IRSA role reaches only the static and media buckets (and their key).
        buckets = args.buckets
        server_account = aws_service_account(
            scope,
            SERVER,
            SERVER,
            policy=pulumi.Output.all(buckets.static_arn, buckets.media_arn, buckets.key_arn).apply(
                lambda v: server_bucket_policy(v[0], v[1], v[2])
            ),
            oidc=args.oidc,
            role_opts=aws_opts,
            opts=k8s_opts,
        )
        # One checksum over everything the pods read: any change rolls them (and names the
        # release's migration Job). Hashing the secrets reveals nothing; the hash is unsecret.
        release = pulumi.Output.unsecret(
            pulumi.Output.all(args.server_image, config_data, secret_data).apply(
                lambda values: checksum(values[0], values[1], values[2])
            )
        )
        server = args.settings.server
        pod = ServerPod(
            image=args.server_image,
            resources=core.ResourceRequirementsArgs(
                requests=server.requests(), limits=server.limits()
            ),
            config=config,
            secret=secret,
            selector=scope.selector(),
        )
        migration = migration_job(
            scope, pod, release, waits_for=[config, secret, *credentials], opts=k8s_opts
        )
        deployment = rolling_deployment(
            f"{name}-server",
            scope,
            SERVER,
            pod_spec(pod, server_account),
            release,
            # a release's pods start only after its migrations succeeded
            opts=after(k8s_opts, migration, *credentials),
        )
        service = core.Service(
            f"{name}-server-service",
            metadata=scope.meta(SERVER, SERVER),
            spec=core.ServiceSpecArgs(
                type="ClusterIP",
                selector=scope.selector(),
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
        server_autoscaling(scope, args.settings, opts=after(k8s_opts, deployment))
        self.namespace = scope.namespace
        self.backend = ServiceBackend(
            namespace=scope.namespace,
            service=service.metadata.name,
            port=SERVICE_PORT,
            health_check_path=HEALTH["ready"],
            pods=scope.selector(),
            pod_port=HTTP_PORT,
        )
        self.register()


def _limits(scope: AppScope, settings: WorkloadSettings, *, opts: pulumi.ResourceOptions) -> None:
    """Quota over the namespace (from settings) and container defaults (the server's requests
    and limits, for any container that sets none)."""
    quota, server = settings.quota, settings.server
    core.ResourceQuota(
        f"{scope.name}-quota",
        metadata=scope.meta("quota", "quota"),
        spec=core.ResourceQuotaSpecArgs(
            hard={
                "requests.cpu": quota.cpu.text,
                "limits.cpu": quota.cpu.text,
                "requests.memory": quota.memory.text,
                "limits.memory": quota.memory.text,
                "pods": str(quota.pods),
                # traffic enters only through the Ingress
                "services.loadbalancers": "0",
                "services.nodeports": "0",
            }
        ),
        opts=opts,
    )
    core.LimitRange(
        f"{scope.name}-limits",
        metadata=scope.meta("limits", "quota"),
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


def _network_policies(
    scope: AppScope, args: WorkloadsArgs, *, opts: pulumi.ResourceOptions
) -> None:
    """Default deny, then the server's and the migrations' own allowances."""
    common: dict[str, Any] = {"namespace": scope.namespace, "naming": args.naming, "opts": opts}
    namespace_baseline(f"{scope.name}-netpol", **common)
    database = Peer((Port(args.database.port),), cidrs=args.data_cidrs)
    cache = Peer((Port(args.cache.port),), cidrs=args.data_cidrs)
    allow(
        f"{scope.name}-netpol-server",
        Allowance(
            SERVER,
            scope.selector(),
            ingress=(
                # only through the edge, which the load balancer sends everything to
                Peer((Port(HTTP_PORT),), pods=args.naming.k8s_selector(EDGE)),
                Peer.monitoring(METRICS_PORT),
                Peer.probes(HTTP_PORT),  # the readiness endpoint, probed by the blackbox exporter
            ),
            egress=(database, cache, Peer.https_anywhere()),
        ),
        **common,
    )
    allow(
        f"{scope.name}-netpol-migrate",
        Allowance(MIGRATE, scope.selector(MIGRATE), egress=(database,)),
        **common,
    )


def _config_data(args: WorkloadsArgs) -> pulumi.Output[dict[str, str]]:
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
