"""``VerticalPodAutoscaler`` objects for our workloads, and the one rule that picks their mode.

A workload the HPA scales on CPU or memory gets ``Off`` (recommendations only: a VPA changing
requests would move the very utilization the HPA scales on, and the two would fight); a workload
no HPA scales gets ``Auto`` (the updater evicts and the admission controller re-sizes it),
within bounds so a recommendation can never exceed what the namespace quota allows. The CRD
comes from the VPA chart (``platform.vpa``): callers depend on that component.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

API_VERSION = "autoscaling.k8s.io/v1"
Mode = Literal["Off", "Initial", "Recreate", "Auto"]


def mode_for(*, scaled_by_hpa_on_resources: bool) -> Mode:
    """``Off`` beside an HPA on CPU/memory, ``Auto`` otherwise (see the module docstring)."""
    return "Off" if scaled_by_hpa_on_resources else "Auto"


def vertical_autoscaler(
    resource_name: str,
    *,
    namespace: pulumi.Input[str],
    target_kind: str,
    target_name: str,
    mode: Mode,
    max_allowed: Mapping[str, str],
    labels: Mapping[str, str],
    opts: pulumi.ResourceOptions,
) -> k8s.apiextensions.CustomResource:
    """A ``VerticalPodAutoscaler`` for one workload; ``opts`` must wait for the VPA chart (its
    CRD)."""
    return k8s.apiextensions.CustomResource(
        resource_name,
        api_version=API_VERSION,
        kind="VerticalPodAutoscaler",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=target_name, namespace=namespace, labels=dict(labels)
        ),
        spec={
            "targetRef": {"apiVersion": "apps/v1", "kind": target_kind, "name": target_name},
            "updatePolicy": {"updateMode": mode},
            "resourcePolicy": {
                "containerPolicies": [
                    {
                        "containerName": "*",
                        "controlledResources": ["cpu", "memory"],
                        "maxAllowed": dict(max_allowed),
                    }
                ]
            },
        },
        opts=opts,
    )
