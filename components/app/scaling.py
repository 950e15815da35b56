"""Autoscaling of the app's Deployments (the server, the edge): an autoscaling/v2 HPA on CPU
(and memory) with a scale-down stabilization window, a PodDisruptionBudget (multi-replica) and
a VPA in recommendation-only mode (the HPA already scales on CPU and memory).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.app.scope import SERVER, AppScope
from components.lib.kube.vpa import mode_for, vertical_autoscaler
from components.settings import WorkloadSettings

autoscaling = k8s.autoscaling.v2


@dataclass(frozen=True)
class Scaling:
    """How one Deployment scales."""

    prefix: str
    """Start of the objects' Pulumi names."""
    part: str
    """The Deployment's name and its pods' ``app.kubernetes.io/name``."""
    min_replicas: int
    max_replicas: int
    cpu_target_percent: int
    memory_target_percent: int | None
    """None: memory does not follow load (nginx), so the HPA ignores it."""
    scale_down_stabilization_seconds: int
    max_allowed: Mapping[str, str]
    """The VPA's recommendation ceiling: the container's limits."""
    container: str | None = None
    """None: utilization of the whole pod (one container); a name: of that container alone, for
    a pod whose sidecars' usage says nothing of its load (the edge's metrics sidecars)."""


def server_autoscaling(
    scope: AppScope, settings: WorkloadSettings, *, opts: pulumi.ResourceOptions
) -> None:
    """The server's scaling from settings; ``opts`` must wait for its Deployment."""
    autoscale(
        scope,
        Scaling(
            prefix=f"{scope.name}-{SERVER}",
            part=SERVER,
            min_replicas=settings.min_replicas,
            max_replicas=settings.max_replicas,
            cpu_target_percent=settings.cpu_target_percent,
            memory_target_percent=settings.memory_target_percent,
            scale_down_stabilization_seconds=settings.scale_down_stabilization_seconds,
            max_allowed=settings.server.limits(),
        ),
        opts=opts,
    )


def autoscale(scope: AppScope, scaling: Scaling, *, opts: pulumi.ResourceOptions) -> None:
    """HPA (min and max replicas: it owns them), PDB when more than one replica runs, VPA
    recommending; ``opts`` must wait for the Deployment."""
    part = scaling.part
    metrics = [_utilization("cpu", scaling.cpu_target_percent, scaling.container)]
    if scaling.memory_target_percent is not None:
        metrics.append(_utilization("memory", scaling.memory_target_percent, scaling.container))
    autoscaling.HorizontalPodAutoscaler(
        f"{scaling.prefix}-hpa",
        metadata=scope.meta(part, part),
        spec=autoscaling.HorizontalPodAutoscalerSpecArgs(
            scale_target_ref=autoscaling.CrossVersionObjectReferenceArgs(
                api_version="apps/v1", kind="Deployment", name=part
            ),
            min_replicas=scaling.min_replicas,
            max_replicas=scaling.max_replicas,
            metrics=metrics,
            behavior=autoscaling.HorizontalPodAutoscalerBehaviorArgs(
                scale_down=autoscaling.HPAScalingRulesArgs(
                    stabilization_window_seconds=scaling.scale_down_stabilization_seconds,
                    select_policy="Min",
                    policies=[_policy("Percent", 50)],
                ),
                scale_up=autoscaling.HPAScalingRulesArgs(
                    stabilization_window_seconds=0,
                    select_policy="Max",
                    policies=[_policy("Percent", 100), _policy("Pods", 4)],
                ),
            ),
        ),
        opts=opts,
    )
    if scaling.max_replicas > 1:
        k8s.policy.v1.PodDisruptionBudget(
            f"{scaling.prefix}-pdb",
            metadata=scope.meta(part, part),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=scope.selector(part)),
                unhealthy_pod_eviction_policy="AlwaysAllow",
            ),
            opts=opts,
        )
    vertical_autoscaler(
        f"{scaling.prefix}-vpa",
        namespace=scope.namespace,
        target_kind="Deployment",
        target_name=part,
        mode=mode_for(scaled_by_hpa_on_resources=True),
        max_allowed=dict(scaling.max_allowed),
        labels=scope.labels(part),
        opts=opts,
    )


def _policy(kind: str, value: int) -> autoscaling.HPAScalingPolicyArgs:
    """At most ``value`` (percent of the replicas, or pods) per minute."""
    return autoscaling.HPAScalingPolicyArgs(type=kind, value=value, period_seconds=60)


def _utilization(resource: str, percent: int, container: str | None) -> autoscaling.MetricSpecArgs:
    target = autoscaling.MetricTargetArgs(type="Utilization", average_utilization=percent)
    if container is not None:
        return autoscaling.MetricSpecArgs(
            type="ContainerResource",
            container_resource=autoscaling.ContainerResourceMetricSourceArgs(
                name=resource, container=container, target=target
            ),
        )
    return autoscaling.MetricSpecArgs(
        type="Resource",
        resource=autoscaling.ResourceMetricSourceArgs(name=resource, target=target),
    )
