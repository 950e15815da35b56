"""Vertical Pod Autoscaler: its components (recommender, updater, admission controller), and
the helper every component uses to declare a ``VerticalPodAutoscaler`` for its workloads.

The components come from the Fairwinds ``vpa`` chart (a third-party controller; version
pinned), in ``kube-system`` on the system node group, restricted; the chart installs its CRDs
from its ``crds/`` folder. It is a ``helm.v3.Release``, not a ``helm.v4.Chart``: the chart
creates the admission controller's TLS Secret in a pre-install hook Job and patches the
webhook's ``caBundle`` in a post-install hook Job, and only a Release runs hooks (a v4 Chart
would leave the admission controller waiting for a Secret that never exists). The hook Jobs
get the same restricted security contexts and placement as the components.

Which mode a workload gets is decided here, by one rule (``mode_for``): a workload the HPA
scales on CPU or memory gets ``Off`` (recommendations only; a VPA changing requests would move
the very utilization the HPA scales on, and the two would fight); a workload no HPA scales gets
``Auto`` (the updater evicts and the admission controller re-sizes it), within bounds so a
recommendation can never exceed what the namespace quota allows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from components.lib.kube.pods import chart_placement, chart_security

CHART = "vpa"
CHART_VERSION = "4.7.2"
REPOSITORY = "https://charts.fairwinds.com/stable"
API_VERSION = "autoscaling.k8s.io/v1"
Mode = Literal["Off", "Initial", "Recreate", "Auto"]


def mode_for(*, scaled_by_hpa_on_resources: bool) -> Mode:
    """``Off`` beside an HPA on CPU/memory, ``Auto`` otherwise (see the module docstring)."""
    return "Off" if scaled_by_hpa_on_resources else "Auto"


def chart_values() -> dict[str, Any]:
    pod = {
        **chart_placement(),
        **chart_security(uid=65534),
        "resources": {
            "requests": {"cpu": "50m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "512Mi"},
        },
    }
    return {
        "recommender": {**pod},
        "updater": {**pod},
        "admissionController": {
            **pod,
            "generateCertificate": True,  # by the certGen hook Jobs (a Release runs them)
            "certGen": {**pod},
        },
    }


@dataclass(frozen=True)
class VerticalPodAutoscalerArgs:
    kubernetes: k8s.Provider
    depends_on: Sequence[pulumi.Resource] = ()
    """The node groups (and metrics-server add-on) the components need."""


class VerticalPodAutoscaler(pulumi.ComponentResource):
    """The VPA components; ``ready`` is what VerticalPodAutoscaler objects must wait for."""

    ready: Sequence[pulumi.Resource]

    def __init__(
        self,
        name: str,
        args: VerticalPodAutoscalerArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("exposcholar:cluster:VerticalPodAutoscaler", name, None, opts)
        release = k8s.helm.v3.Release(
            f"{name}-release",
            chart=CHART,
            version=CHART_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=REPOSITORY),
            namespace="kube-system",
            values=chart_values(),
            # a failed install or upgrade is rolled back, not left half-applied
            atomic=True,
            cleanup_on_fail=True,
            timeout=600,
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.kubernetes, depends_on=list(args.depends_on)
            ),
        )
        self.ready = [release]
        self.register_outputs({})


def vertical_autoscaler(
    resource_name: str,
    *,
    namespace: pulumi.Input[str],
    target_kind: str,
    target_name: str,
    mode: Mode,
    max_allowed: Mapping[str, str],
    labels: Mapping[str, str],
    parent: pulumi.Resource,
    provider: k8s.Provider,
    depends_on: Sequence[pulumi.Resource],
) -> k8s.apiextensions.CustomResource:
    """A ``VerticalPodAutoscaler`` for one workload; ``depends_on`` must include the VPA
    components' ``ready`` (the CRD)."""
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
        opts=pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(depends_on)),
    )
