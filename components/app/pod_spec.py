"""The pod of the server image: the Gunicorn/Django server, and the same pod running one
command to completion (the migration Job). Restricted, read-only root filesystem, on the app
node group, its secrets and database credentials mounted as files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.app.credentials import DATABASE_READER
from components.app.scope import SERVER
from components.lib.kube.pods import (
    app_pool,
    container_security_context,
    pod_security_context,
    spread,
    writable,
)

HTTP_PORT = 8000
METRICS_PORT = 8001
"""Prometheus metrics of the Gunicorn workers, apart from the public port."""
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
CREDENTIALS_DIR = "/var/run/secrets/exposcholar/database"
"""The synced database credentials, as files: updated in place when the password rotates
(``credentials.CREDENTIALS_REFRESH``)."""
SECRETS_DIR = "/var/run/secrets/exposcholar/app"
"""Secrets reach the app as files (one per key), never as environment variables: those leak
into crash reports, ``/proc/<pid>/environ`` and child processes."""

core = k8s.core.v1


@dataclass(frozen=True)
class ServerPod:
    """What every pod of the server image shares."""

    image: pulumi.Input[str]
    """The server image, pinned by digest."""
    resources: core.ResourceRequirementsArgs
    config: core.ConfigMap
    """Non-secret settings, as environment variables."""
    secret: core.Secret
    """Secret settings, mounted under ``SECRETS_DIR``."""
    selector: Mapping[str, str]
    """The server's pod selector (spreading)."""


def pod_spec(
    pod: ServerPod,
    account: core.ServiceAccount,
    *,
    command: Sequence[str] | None = None,
    container: str = SERVER,
) -> core.PodSpecArgs:
    """The server's pod: requests and limits, startup/readiness/liveness probes, a ``preStop``
    pause and a termination grace period long enough for the load balancer to deregister the
    pod before Gunicorn stops, emptyDirs for ``/tmp``, spread across zones, no service account
    token mounted. With ``command``, the same pod running that command to completion (no ports,
    probes or spreading: the migration Job). ``container`` names the container."""
    serving = command is None
    tmp_volume, tmp_mount = writable("tmp", "/tmp")  # noqa: S108 - an emptyDir, not shared
    main = core.ContainerArgs(
        name=container,
        image=pod.image,
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
                config_map_ref=core.ConfigMapEnvSourceArgs(name=pod.config.metadata.name)
            ),
        ],
        resources=pod.resources,
        startup_probe=_probe("startup", period=5, failures=30) if serving else None,
        readiness_probe=_probe("ready", period=10, failures=3) if serving else None,
        liveness_probe=_probe("live", period=20, failures=3) if serving else None,
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
        topology_spread_constraints=spread(pod.selector) if serving else None,
        termination_grace_period_seconds=PRE_STOP_SECONDS + GRACEFUL_SECONDS + 5,
        restart_policy="Always" if serving else "Never",
        containers=[main],
        volumes=[
            tmp_volume,
            _secret_volume("database", DATABASE_READER),
            _secret_volume("secrets", pod.secret.metadata.name),
        ],
    )


def _secret_volume(name: str, secret_name: pulumi.Input[str]) -> core.VolumeArgs:
    """A Secret as files (mode 0440: the fsGroup reads them, nobody writes)."""
    return core.VolumeArgs(
        name=name,
        secret=core.SecretVolumeSourceArgs(secret_name=secret_name, default_mode=0o440),
    )


def _probe(kind: str, *, period: int, failures: int) -> core.ProbeArgs:
    return core.ProbeArgs(
        http_get=core.HTTPGetActionArgs(path=HEALTH[kind], port="http"),
        period_seconds=period,
        failure_threshold=failures,
        timeout_seconds=5,
    )
