"""Namespaces the program creates, always with Pod Security Standards labels.

Every namespace enforces, audits and warns at one PSS level, pinned to the cluster's minor
version (``v1.33``) so a control-plane upgrade cannot silently change what is admitted.
``restricted`` is the default; a namespace may run at ``privileged`` only if it is listed in
``PRIVILEGED_NAMESPACES`` with the reason (such as a node agent that needs host access), so the
exemptions are reviewed in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

from components.lib.naming import Naming

Level = Literal["restricted", "baseline", "privileged"]
PSS_MODES = ("enforce", "audit", "warn")
PRIVILEGED_NAMESPACES: Mapping[str, str] = {
    "node-exporter": (
        "node-exporter reads the node's own metrics: host PID and network namespaces and the "
        "host's /proc, /sys and root filesystem (read-only hostPath mounts), which restricted "
        "and baseline forbid; nothing else runs in this namespace (components.monitoring)"
    ),
}
"""Namespace to the reason it cannot be ``restricted``. A node agent's namespace is also in the
policy pack's ``policies/rules/node_agents.py``, which alone lets its pods use the host (the pack
cannot import the program; ``tests/test_monitoring_component.py`` checks the two agree)."""


def pss_labels(level: Level, cluster_version: str) -> dict[str, str]:
    """The three PSS mode labels and their pinned versions."""
    labels: dict[str, str] = {}
    for mode in PSS_MODES:
        labels[f"pod-security.kubernetes.io/{mode}"] = level
        labels[f"pod-security.kubernetes.io/{mode}-version"] = f"v{cluster_version}"
    return labels


def namespace(
    resource_name: str,
    *,
    name: str,
    cluster_version: str,
    naming: Naming,
    component: str,
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.Namespace:
    """Namespace ``name`` labelled with its PSS level: ``restricted`` unless exempted above."""
    level: Level = "privileged" if name in PRIVILEGED_NAMESPACES else "restricted"
    return k8s.core.v1.Namespace(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=name,
            labels={**naming.k8s_labels(name, component), **pss_labels(level, cluster_version)},
        ),
        opts=opts,
    )
