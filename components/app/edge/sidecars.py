"""The edge pod's two metrics sidecars, what Prometheus's ``edge-nginx`` and ``edge-logs`` jobs
scrape (``components.monitoring.prometheus`` names them by these ports):

* ``nginx-metrics``: nginx-prometheus-exporter reading nginx's stub_status on the pod's loopback
  (``status.conf``, ``STATUS_PORT``) and serving connections and requests on
  ``NGINX_METRICS_PORT`` (9113);
* ``log-metrics``: mtail over the edge's metrics log, the decision and status of each request
  (``logging.conf``), serving ``edge_requests_total{decision,status}`` and
  ``edge_honeypot_hits_total`` on ``LOG_METRICS_PORT`` (3903), and keeping that log small.

Both run the ``edgemetrics`` image (``components/app/edge/metrics``), built into the stack's ECR
and pinned by digest: the exporter's binary is copied from its release image at build time, so
an edge pod pulls nothing from Docker Hub (an outage or rate limit there cannot stop the front
door from scaling out).

They are native sidecars (init containers that keep running, ``restartPolicy: Always``): the
kubelet starts them before nginx, so the first request is counted, and stops them after nginx
has drained, so the last are. They have no readiness probe, so they never decide whether the
pod takes traffic: a sidecar that fails is restarted by its liveness probe while nginx serves on.

The log travels through a file in a ``logs`` emptyDir mounted in nginx's prefix and in the
sidecar: nginx writes it in 64 KiB blocks, so the edge pays no system call per request for it.
Both sidecars run as the pod's user (the metrics log is nginx's file, and the sidecar empties it
in place), restricted and read-only, with no service account token and small fixed resources
(they count, they do not serve traffic).
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.app.edge.config import (
    LOG_METRICS_PORT,
    METRICS_LOG,
    METRICS_LOG_DIR,
    NGINX_METRICS_PORT,
    STATUS_PATH,
    STATUS_PORT,
)
from components.lib.kube.pods import container_security_context

core = k8s.core.v1

NGINX_EXPORTER = "/usr/local/bin/nginx-prometheus-exporter"
"""nginx's own exporter in the edgemetrics image (release 1.4.2, the Dockerfile's
``NGINX_EXPORTER_VERSION``); its stub_status metrics are the ``nginx_*`` names of
``components/monitoring/metrics.yaml``."""
LOGS_VOLUME = "logs"
LOG_METRICS_DIR = "/logs"
"""Where the sidecar mounts the ``logs`` emptyDir (nginx mounts it at ``<prefix>logs``)."""
LOG_MAX_BYTES = 16 * 1024 * 1024
"""The metrics log is emptied past this size (about 400,000 requests)."""
LOGS_SIZE = "64Mi"
"""The emptyDir's cap: four times ``LOG_MAX_BYTES``, so a check interval at any request rate the
edge sustains stays far from it (the kubelet would evict the pod)."""
CHECK_SECONDS = 5
SIDECAR_REQUESTS = {"cpu": "10m", "memory": "32Mi"}
SIDECAR_LIMITS = {"cpu": "200m", "memory": "64Mi"}
"""mtail parses one short line per request: 200m covers thousands of requests a second per pod,
beyond what one edge pod serves before the HPA adds another."""


def logs_volume() -> core.VolumeArgs:
    """The ``logs`` emptyDir shared by nginx (it writes the metrics log) and ``log-metrics``."""
    return core.VolumeArgs(
        name=LOGS_VOLUME, empty_dir=core.EmptyDirVolumeSourceArgs(size_limit=LOGS_SIZE)
    )


def nginx_logs_mount(prefix: str) -> core.VolumeMountArgs:
    """nginx's mount of the ``logs`` emptyDir: ``logs/`` of its prefix, as ``logging.conf``
    names the file."""
    return core.VolumeMountArgs(name=LOGS_VOLUME, mount_path=f"{prefix}{METRICS_LOG_DIR}")


def metrics_sidecars(edgemetrics_image: pulumi.Input[str]) -> list[core.ContainerArgs]:
    """``nginx-metrics`` and ``log-metrics``, in that order, as native sidecars (the pod's
    ``initContainers``)."""
    nginx_port_name, nginx_port = NGINX_METRICS_PORT
    log_port_name, log_port = LOG_METRICS_PORT
    resources = core.ResourceRequirementsArgs(requests=SIDECAR_REQUESTS, limits=SIDECAR_LIMITS)
    return [
        core.ContainerArgs(
            name=nginx_port_name,
            image=edgemetrics_image,
            image_pull_policy="Always",
            restart_policy="Always",
            command=[NGINX_EXPORTER],
            args=[
                f"--nginx.scrape-uri=http://127.0.0.1:{STATUS_PORT}{STATUS_PATH}",
                f"--web.listen-address=:{nginx_port}",
                "--web.telemetry-path=/metrics",
            ],
            ports=[
                core.ContainerPortArgs(
                    name=nginx_port_name, container_port=nginx_port, protocol="TCP"
                )
            ],
            resources=resources,
            liveness_probe=_alive(nginx_port_name),
            security_context=container_security_context(),
        ),
        core.ContainerArgs(
            name=log_port_name,
            image=edgemetrics_image,
            image_pull_policy="Always",
            restart_policy="Always",
            env=[
                core.EnvVarArgs(name="EDGE_METRICS_LOG", value=f"{LOG_METRICS_DIR}/{METRICS_LOG}"),
                core.EnvVarArgs(name="EDGE_METRICS_PORT", value=str(log_port)),
                core.EnvVarArgs(name="EDGE_METRICS_LOG_MAX_BYTES", value=str(LOG_MAX_BYTES)),
                core.EnvVarArgs(name="EDGE_METRICS_CHECK_SECONDS", value=str(CHECK_SECONDS)),
            ],
            ports=[
                core.ContainerPortArgs(name=log_port_name, container_port=log_port, protocol="TCP")
            ],
            resources=resources,
            liveness_probe=_alive(log_port_name),
            security_context=container_security_context(),
            volume_mounts=[core.VolumeMountArgs(name=LOGS_VOLUME, mount_path=LOG_METRICS_DIR)],
        ),
    ]


def _alive(port: str) -> core.ProbeArgs:
    """Alive: the process accepts connections (a restart cannot fix an nginx that is down)."""
    return core.ProbeArgs(
        tcp_socket=core.TCPSocketActionArgs(port=port),
        period_seconds=10,
        failure_threshold=3,
        timeout_seconds=3,
    )
