"""``VerticalPodAutoscaler``: the VPA's recommender, updater and admission controller.

From the Fairwinds ``vpa`` chart (pinned), with its CRDs, in ``kube-system`` on the system node
group, restricted. Workloads declare their VPA objects with ``lib.kube.vpa`` and list this
component in ``depends_on`` (the CRD).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.lib.component import Component
from components.lib.kube.charts import ChartPin, release
from components.lib.kube.pods import chart_placement, chart_security

CHART = ChartPin("vpa", "4.7.2", "https://charts.fairwinds.com/stable")


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
    """The cluster's provider."""


class VerticalPodAutoscaler(Component):
    """The VPA components (``depends_on``: the nodes and the metrics-server add-on)."""

    TYPE = "exposcholar:cluster:VerticalPodAutoscaler"

    def __init__(
        self,
        name: str,
        args: VerticalPodAutoscalerArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(name, opts)
        # A Release, not a Chart: the chart makes the admission controller's TLS Secret and
        # patches the webhook's caBundle in hook Jobs, and only a Release runs hooks. It
        # installs the CRDs from its crds/ folder.
        release(
            f"{name}-release",
            CHART,
            namespace="kube-system",
            values=chart_values(),
            opts=self.child_opts(provider=args.kubernetes),
        )
        self.register()
