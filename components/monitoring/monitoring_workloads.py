"""The pods of ``Monitoring``: Prometheus and kube-state-metrics, as typed
``pulumi_kubernetes`` objects (no resources are created here: ``monitoring.py`` does, with
these specs). Kept apart so the component module stays about wiring.

Images are the upstream releases, pinned by tag and allowlisted with their reason in the policy
configuration (``k8s-image-pinned.thirdPartyImages``).
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.lib.kube.pods import (
    container_security_context,
    pod_security_context,
    system_pool,
)

PROMETHEUS_IMAGE = "quay.io/prometheus/prometheus:v3.5.0"
KUBE_STATE_METRICS_IMAGE = "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.17.0"
"""The release built with client-go 1.33, the cluster's minor (its compatibility matrix)."""
NOBODY = 65534
"""The user the Prometheus and kube-state-metrics images run as (``nobody``)."""
CONFIG_DIR = "/etc/prometheus"
"""Where ``prometheus.yml`` is, with the rule files under ``rules/`` (``prometheus.py``)."""
DATA_DIR = "/prometheus"
KUBE_STATE_METRICS_RESOURCES = (
    "cronjobs", "daemonsets", "deployments", "horizontalpodautoscalers", "jobs", "namespaces",
    "nodes", "persistentvolumeclaims", "persistentvolumes", "poddisruptionbudgets", "pods",
    "replicasets", "statefulsets",
)  # fmt: skip
"""What kube-state-metrics reports (``--resources``): the objects the alert rules and
dashboards select on; its ClusterRole lists and watches exactly these."""

core = k8s.core.v1


def resources(
    cpu: str, memory: str, cpu_limit: str, memory_limit: str
) -> core.ResourceRequirementsArgs:
    return core.ResourceRequirementsArgs(
        requests={"cpu": cpu, "memory": memory},
        limits={"cpu": cpu_limit, "memory": memory_limit},
    )


def _http_probe(path: str, port: str, *, period: int, failures: int) -> core.ProbeArgs:
    return core.ProbeArgs(
        http_get=core.HTTPGetActionArgs(path=path, port=port),
        period_seconds=period,
        failure_threshold=failures,
        timeout_seconds=3,
    )


def prometheus_pod(
    *,
    service_account: pulumi.Input[str],
    config_map: pulumi.Input[str],
    config_items: pulumi.Input[list[core.KeyToPathArgs]],
    retention_days: int,
    retention_size_gb: int,
    compute: core.ResourceRequirementsArgs,
    port: int,
) -> core.PodSpecArgs:
    """Prometheus as ``nobody``, read-only root, its TSDB on the StatefulSet's volume ``data``,
    the configuration and rules one read-only volume under ``CONFIG_DIR``. The token is
    mounted: Kubernetes discovery and the API server's node proxy authenticate with it."""
    node_selector, tolerations = system_pool()
    return core.PodSpecArgs(
        service_account_name=service_account,
        automount_service_account_token=True,
        enable_service_links=False,
        security_context=pod_security_context(NOBODY),
        node_selector=node_selector,
        tolerations=tolerations,
        termination_grace_period_seconds=600,  # the TSDB head is written out on a clean stop
        containers=[
            core.ContainerArgs(
                name="prometheus",
                image=PROMETHEUS_IMAGE,
                image_pull_policy="Always",
                args=[
                    f"--config.file={CONFIG_DIR}/prometheus.yml",
                    f"--storage.tsdb.path={DATA_DIR}",
                    f"--storage.tsdb.retention.time={retention_days}d",
                    f"--storage.tsdb.retention.size={retention_size_gb}GB",
                    f"--web.listen-address=:{port}",
                ],
                ports=[core.ContainerPortArgs(name="http", container_port=port, protocol="TCP")],
                resources=compute,
                # replaying the write-ahead log after a restart can take minutes
                startup_probe=_http_probe("/-/ready", "http", period=10, failures=60),
                readiness_probe=_http_probe("/-/ready", "http", period=10, failures=3),
                liveness_probe=_http_probe("/-/healthy", "http", period=15, failures=4),
                security_context=container_security_context(),
                volume_mounts=[
                    core.VolumeMountArgs(name="config", mount_path=CONFIG_DIR, read_only=True),
                    core.VolumeMountArgs(name="data", mount_path=DATA_DIR),
                ],
            )
        ],
        volumes=[
            core.VolumeArgs(
                name="config",
                config_map=core.ConfigMapVolumeSourceArgs(
                    name=config_map, items=config_items, default_mode=0o444
                ),
            ),
        ],
    )


def kube_state_metrics_pod(
    *, service_account: pulumi.Input[str], port: int, compute: core.ResourceRequirementsArgs
) -> core.PodSpecArgs:
    """kube-state-metrics reporting ``KUBE_STATE_METRICS_RESOURCES`` only; it watches the API
    server with its token. Probes on its own ``/livez`` and ``/readyz`` (telemetry port)."""
    node_selector, tolerations = system_pool()
    return core.PodSpecArgs(
        service_account_name=service_account,
        automount_service_account_token=True,
        enable_service_links=False,
        security_context=pod_security_context(NOBODY),
        node_selector=node_selector,
        tolerations=tolerations,
        containers=[
            core.ContainerArgs(
                name="kube-state-metrics",
                image=KUBE_STATE_METRICS_IMAGE,
                image_pull_policy="Always",
                args=[
                    f"--port={port}",
                    "--telemetry-port=8081",
                    f"--resources={','.join(KUBE_STATE_METRICS_RESOURCES)}",
                ],
                ports=[
                    core.ContainerPortArgs(
                        name="http-metrics", container_port=port, protocol="TCP"
                    ),
                    core.ContainerPortArgs(name="telemetry", container_port=8081, protocol="TCP"),
                ],
                resources=compute,
                readiness_probe=_http_probe("/readyz", "telemetry", period=10, failures=3),
                liveness_probe=_http_probe("/livez", "http-metrics", period=15, failures=4),
                security_context=container_security_context(),
            )
        ],
    )
