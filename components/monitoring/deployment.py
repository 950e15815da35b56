"""The shape every monitoring workload of the program shares: one Deployment on the system node
pool running one upstream container, restricted (non-root, read-only root, no capabilities,
RuntimeDefault seccomp, no Kubernetes API token), with its configuration's checksum on the pod
template, and a ClusterIP Service on the container's named port.

No resources of its own: ``deployment`` and ``service`` are called by the components
(``alerting``, ``grafana``, ``exporters``) with their own resource names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.lib.kube.pods import (
    CHECKSUM_ANNOTATION,
    app_pool,
    pod_security_context,
    system_pool,
)
from components.lib.naming import Naming

core = k8s.core.v1
meta = k8s.meta.v1

COMPONENT = "monitoring"
"""``app.kubernetes.io/component`` of every monitoring object."""


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one container (fixed per workload: they do not vary by stack)."""

    cpu: str
    memory: str
    cpu_limit: str
    memory_limit: str

    def args(self) -> core.ResourceRequirementsArgs:
        return core.ResourceRequirementsArgs(
            requests={"cpu": self.cpu, "memory": self.memory},
            limits={"cpu": self.cpu_limit, "memory": self.memory_limit},
        )


@dataclass(frozen=True)
class Workload:
    """What differs between the monitoring Deployments."""

    name: str
    """Name of the Deployment, its pods' ``app.kubernetes.io/name`` and its Service."""
    uid: int
    """The user the upstream image runs as (its ``USER``)."""
    port_name: str
    port: int
    container: core.ContainerArgs
    """The container (its ``security_context`` from ``container_security_context()``)."""
    volumes: Sequence[core.VolumeArgs]
    init_containers: Sequence[core.ContainerArgs] = ()
    """Run to completion before ``container`` (restricted likewise)."""
    app_pool: bool = False
    """On the application node group instead of the system pool: for the exporters of the data
    stores, whose security groups admit only the application nodes."""


def labels(naming: Naming, name: str) -> dict[str, str]:
    return naming.k8s_labels(name, COMPONENT)


def metadata(
    naming: Naming, name: str, namespace: pulumi.Input[str], part: str | None = None
) -> meta.ObjectMetaArgs:
    """Metadata of an object ``name`` of the workload ``part`` (default: ``name`` itself)."""
    return meta.ObjectMetaArgs(name=name, namespace=namespace, labels=labels(naming, part or name))


def deployment(
    resource_name: str,
    workload: Workload,
    *,
    namespace: pulumi.Input[str],
    naming: Naming,
    config_checksum: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> k8s.apps.v1.Deployment:
    """One replica of ``workload`` (monitoring tolerates a short gap; two Alertmanagers would
    need a gossip cluster), replaced by surge first so a broken configuration leaves the old
    pod running."""
    node_selector, tolerations = (app_pool(), None) if workload.app_pool else system_pool()
    return k8s.apps.v1.Deployment(
        resource_name,
        metadata=metadata(naming, workload.name, namespace),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            replicas=1,
            selector=meta.LabelSelectorArgs(match_labels=naming.k8s_selector(workload.name)),
            revision_history_limit=5,
            strategy=k8s.apps.v1.DeploymentStrategyArgs(
                type="RollingUpdate",
                rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
                    max_surge=1, max_unavailable=0
                ),
            ),
            template=core.PodTemplateSpecArgs(
                metadata=meta.ObjectMetaArgs(
                    labels=labels(naming, workload.name),
                    annotations=pulumi.Output.from_input(config_checksum).apply(
                        lambda digest: {CHECKSUM_ANNOTATION: digest}
                    ),
                ),
                spec=core.PodSpecArgs(
                    automount_service_account_token=False,
                    enable_service_links=False,
                    security_context=pod_security_context(workload.uid),
                    node_selector=node_selector,
                    tolerations=tolerations,
                    init_containers=list(workload.init_containers) or None,
                    containers=[workload.container],
                    volumes=list(workload.volumes),
                ),
            ),
        ),
        opts=opts,
    )


def service(
    resource_name: str,
    workload: Workload,
    *,
    namespace: pulumi.Input[str],
    naming: Naming,
    opts: pulumi.ResourceOptions,
) -> core.Service:
    """ClusterIP Service ``workload.name`` on the pods' named port, same number (the VPC CNI's
    network policy agent matches traffic to a ClusterIP only when the two are equal)."""
    return core.Service(
        resource_name,
        metadata=metadata(naming, workload.name, namespace),
        spec=core.ServiceSpecArgs(
            type="ClusterIP",
            selector=naming.k8s_selector(workload.name),
            ports=[
                core.ServicePortArgs(
                    name=workload.port_name,
                    port=workload.port,
                    target_port=workload.port_name,
                    protocol="TCP",
                )
            ],
        ),
        opts=opts,
    )


def http_probe(path: str, port: str, period: int = 10) -> core.ProbeArgs:
    return core.ProbeArgs(
        http_get=core.HTTPGetActionArgs(path=path, port=port),
        period_seconds=period,
        failure_threshold=3,
        timeout_seconds=3,
    )


def config_volume(
    name: str,
    *,
    config_map: pulumi.Input[str] | None = None,
    secret: pulumi.Input[str] | None = None,
) -> core.VolumeArgs:
    """A read-only volume of a ConfigMap or a Secret (files mode 0444 / 0440)."""
    if (config_map is None) == (secret is None):
        raise ValueError("a configuration volume is a ConfigMap or a Secret")
    if config_map is not None:
        return core.VolumeArgs(
            name=name,
            config_map=core.ConfigMapVolumeSourceArgs(name=config_map, default_mode=0o444),
        )
    return core.VolumeArgs(
        name=name, secret=core.SecretVolumeSourceArgs(secret_name=secret, default_mode=0o440)
    )


def mounts(entries: Mapping[str, str], read_only: bool = True) -> list[core.VolumeMountArgs]:
    """Volume name -> mount path."""
    return [
        core.VolumeMountArgs(name=name, mount_path=path, read_only=read_only)
        for name, path in entries.items()
    ]
