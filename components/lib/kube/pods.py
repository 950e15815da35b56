"""Pod-spec building blocks every workload of the program shares, so the secure defaults are
written once: the Pod Security Standards ``restricted`` security contexts, placement on the
system node pool, spreading across zones, and the config checksum that rolls pods when their
configuration changes.

Always typed ``pulumi_kubernetes`` ``*Args`` classes (never plain dicts): they are checked by
mypy cheaply and serialize to exactly the camelCase the API server takes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi_kubernetes as k8s

NON_ROOT_UID = 10001
"""The user (and group) our images run as; matches the ``USER`` of our Dockerfiles."""
POOL_LABEL = "exposcholar.io/pool"
"""Node label set by ``NodeGroup``: ``system`` or ``app``."""
ZONE_KEY = "topology.kubernetes.io/zone"
HOST_KEY = "kubernetes.io/hostname"
CHECKSUM_ANNOTATION = "exposcholar.io/config-checksum"

core = k8s.core.v1


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str
    """NO_SCHEDULE, NO_EXECUTE or PREFER_NO_SCHEDULE."""


SYSTEM_TAINTS = (Taint("CriticalAddonsOnly", "true", "NO_SCHEDULE"),)
"""Keeps workloads off the system group; cluster add-ons tolerate this taint."""

_EFFECTS = {
    "NO_SCHEDULE": "NoSchedule",
    "NO_EXECUTE": "NoExecute",
    "PREFER_NO_SCHEDULE": "PreferNoSchedule",
}
"""EKS node-group taint effects as Kubernetes spells them in tolerations."""


def container_security_context(*, read_only_root: bool = True) -> core.SecurityContextArgs:
    """The ``restricted`` profile for one container: non-root, no privilege escalation, every
    capability dropped, RuntimeDefault seccomp and (by default) a read-only root filesystem."""
    return core.SecurityContextArgs(
        run_as_non_root=True,
        allow_privilege_escalation=False,
        read_only_root_filesystem=read_only_root,
        capabilities=core.CapabilitiesArgs(drop=["ALL"]),
        seccomp_profile=core.SeccompProfileArgs(type="RuntimeDefault"),
    )


def pod_security_context(uid: int = NON_ROOT_UID) -> core.PodSecurityContextArgs:
    """Pod-level half of ``restricted``: a fixed non-root user and group, RuntimeDefault
    seccomp, and volumes group-owned so the non-root user can write its emptyDirs."""
    return core.PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=uid,
        run_as_group=uid,
        fs_group=uid,
        seccomp_profile=core.SeccompProfileArgs(type="RuntimeDefault"),
    )


def system_pool() -> tuple[dict[str, str], list[core.TolerationArgs]]:
    """Node selector and tolerations that put a pod on the tainted system node group (cluster
    add-ons and controllers, kept off the nodes the autoscaler adds and removes for the app)."""
    tolerations = [
        core.TolerationArgs(
            key=taint.key,
            operator="Equal",
            value=taint.value,
            effect=_EFFECTS[taint.effect],
        )
        for taint in SYSTEM_TAINTS
    ]
    return {POOL_LABEL: "system"}, tolerations


def app_pool() -> dict[str, str]:
    """Node selector of the application node group."""
    return {POOL_LABEL: "app"}


def spread(match_labels: Mapping[str, str]) -> list[core.TopologySpreadConstraintArgs]:
    """Replicas spread evenly over zones (a zone outage leaves the others serving) and, softer,
    over nodes."""
    selector = k8s.meta.v1.LabelSelectorArgs(match_labels=dict(match_labels))
    return [
        core.TopologySpreadConstraintArgs(
            max_skew=1,
            topology_key=ZONE_KEY,
            when_unsatisfiable="DoNotSchedule",
            label_selector=selector,
        ),
        core.TopologySpreadConstraintArgs(
            max_skew=1,
            topology_key=HOST_KEY,
            when_unsatisfiable="ScheduleAnyway",
            label_selector=selector,
        ),
    ]


def checksum(*parts: Mapping[str, Any] | str) -> str:
    """A stable SHA-256 over configuration (key order does not matter): put on a pod template
    as ``CHECKSUM_ANNOTATION`` so any change to it rolls the pods."""
    digest = hashlib.sha256()
    for part in parts:
        text = part if isinstance(part, str) else json.dumps(part, sort_keys=True)
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def writable(
    name: str, path: str, size: str = "64Mi"
) -> tuple[core.VolumeArgs, core.VolumeMountArgs]:
    """A size-capped emptyDir mounted at ``path``: how a container with a read-only root
    filesystem gets the few writable paths it needs (``/tmp``, caches)."""
    return (
        core.VolumeArgs(name=name, empty_dir=core.EmptyDirVolumeSourceArgs(size_limit=size)),
        core.VolumeMountArgs(name=name, mount_path=path),
    )


def chart_placement() -> dict[str, Any]:
    """``nodeSelector`` and ``tolerations`` of the system pool as Helm values (plain data)."""
    return {
        "nodeSelector": {POOL_LABEL: "system"},
        "tolerations": [
            {
                "key": taint.key,
                "operator": "Equal",
                "value": taint.value,
                "effect": _EFFECTS[taint.effect],
            }
            for taint in SYSTEM_TAINTS
        ],
    }


def chart_security(uid: int = NON_ROOT_UID) -> dict[str, Any]:
    """The ``restricted`` container and pod security contexts as Helm values, under the keys
    most charts use (``securityContext``, ``podSecurityContext``)."""
    return {
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "podSecurityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
