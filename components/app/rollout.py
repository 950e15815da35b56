"""The app's Deployments (the server, the edge): surge-only rolling updates, no ``replicas``
(the HPA owns them: set here, every ``pulumi up`` would reset what the HPA chose), and a
checksum of what the pods read on the pod template, so a change of it rolls the pods.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.app.scope import AppScope
from components.lib.kube.pods import CHECKSUM_ANNOTATION
from components.settings import ROLLOUT_SURGE_PERCENT

core = k8s.core.v1
meta = k8s.meta.v1


def rolling_deployment(
    resource_name: str,
    scope: AppScope,
    part: str,
    pod: core.PodSpecArgs,
    checksum: pulumi.Output[str],
    *,
    opts: pulumi.ResourceOptions,
) -> k8s.apps.v1.Deployment:
    """Deployment ``part`` (its pods labelled and selected as ``part``) running ``pod``."""
    return k8s.apps.v1.Deployment(
        resource_name,
        metadata=scope.meta(part, part),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            selector=meta.LabelSelectorArgs(match_labels=scope.selector(part)),
            revision_history_limit=5,
            strategy=k8s.apps.v1.DeploymentStrategyArgs(
                type="RollingUpdate",
                rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
                    max_surge=f"{ROLLOUT_SURGE_PERCENT}%", max_unavailable=0
                ),
            ),
            template=core.PodTemplateSpecArgs(
                metadata=meta.ObjectMetaArgs(
                    labels=scope.labels(part),
                    annotations=checksum.apply(lambda digest: {CHECKSUM_ANNOTATION: digest}),
                ),
                spec=pod,
            ),
        ),
        opts=opts,
    )
