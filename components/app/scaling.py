"""Autoscaling of the server: an autoscaling/v2 HPA on CPU and memory with a scale-down
stabilization window, a PodDisruptionBudget (multi-replica) and a VPA in recommendation-only
mode (the HPA already scales on CPU and memory).
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.app.scope import SERVER, AppScope
from components.lib.kube.vpa import mode_for, vertical_autoscaler
from components.settings import WorkloadSettings

autoscaling = k8s.autoscaling.v2


def server_autoscaling(
    scope: AppScope, settings: WorkloadSettings, *, opts: pulumi.ResourceOptions
) -> None:
    """HPA (min and max replicas from settings: it owns them), PDB when more than one replica
    runs, VPA recommending; ``opts`` must wait for the server's Deployment."""
    autoscaling.HorizontalPodAutoscaler(
        f"{scope.name}-server-hpa",
        metadata=scope.meta(SERVER, SERVER),
        spec=autoscaling.HorizontalPodAutoscalerSpecArgs(
            scale_target_ref=autoscaling.CrossVersionObjectReferenceArgs(
                api_version="apps/v1", kind="Deployment", name=SERVER
            ),
            min_replicas=settings.min_replicas,
            max_replicas=settings.max_replicas,
            metrics=[
                _utilization("cpu", settings.cpu_target_percent),
                _utilization("memory", settings.memory_target_percent),
            ],
            behavior=autoscaling.HorizontalPodAutoscalerBehaviorArgs(
                scale_down=autoscaling.HPAScalingRulesArgs(
                    stabilization_window_seconds=settings.scale_down_stabilization_seconds,
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
    if settings.max_replicas > 1:
        k8s.policy.v1.PodDisruptionBudget(
            f"{scope.name}-server-pdb",
            metadata=scope.meta(SERVER, SERVER),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=scope.selector()),
                unhealthy_pod_eviction_policy="AlwaysAllow",
            ),
            opts=opts,
        )
    vertical_autoscaler(
        f"{scope.name}-server-vpa",
        namespace=scope.namespace,
        target_kind="Deployment",
        target_name=SERVER,
        mode=mode_for(scaled_by_hpa_on_resources=True),
        max_allowed=settings.server.limits(),
        labels=scope.labels(SERVER),
        opts=opts,
    )


def _policy(kind: str, value: int) -> autoscaling.HPAScalingPolicyArgs:
    """At most ``value`` (percent of the replicas, or pods) per minute."""
    return autoscaling.HPAScalingPolicyArgs(type=kind, value=value, period_seconds=60)


def _utilization(resource: str, percent: int) -> autoscaling.MetricSpecArgs:
    return autoscaling.MetricSpecArgs(
        type="Resource",
        resource=autoscaling.ResourceMetricSourceArgs(
            name=resource,
            target=autoscaling.MetricTargetArgs(type="Utilization", average_utilization=percent),
        ),
    )
