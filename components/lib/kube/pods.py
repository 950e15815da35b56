"""Pod-spec building blocks every workload of the program shares, so the secure defaults are
written once: the Pod Security Standards ``restricted`` security contexts, placement on the
system node pool, spreading across zones, and the config checksum that rolls pods when their
configuration changes.

Written once, as typed ``pulumi_kubernetes`` ``*Args`` (checked by mypy, serialized to exactly
the camelCase the API server takes); the Helm values of the charts (``chart_security``,
``chart_placement``) are derived from them by ``as_values``, so the hardening changes in one place.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi_kubernetes as k8s
from pulumi._types import input_type_to_dict, is_input_type

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


def container_security_context(
    *, read_only_root: bool = True, uid: int | None = None
) -> core.SecurityContextArgs:
    """The ``restricted`` profile for one container: non-root, no privilege escalation, every
    capability dropped, RuntimeDefault seccomp and (by default) a read-only root filesystem;
    with ``uid``, also the user it runs as (charts set it per container)."""
    return core.SecurityContextArgs(
        run_as_non_root=True,
        run_as_user=uid,
        allow_privilege_escalation=False,
        read_only_root_filesystem=read_only_root,
        capabilities=core.CapabilitiesArgs(drop=["ALL"]),
        seccomp_profile=core.SeccompProfileArgs(type="RuntimeDefault"),
    )


def pod_security_context(
    uid: int = NON_ROOT_UID, *, run_as_group: bool = True
) -> core.PodSecurityContextArgs:
    """Pod-level half of ``restricted``: a fixed non-root user and (unless ``run_as_group`` is
    false) group, RuntimeDefault seccomp, and volumes group-owned so the non-root user can write
    its emptyDirs."""
    return core.PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=uid,
        run_as_group=uid if run_as_group else None,
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


def as_values(value: Any) -> Any:
    """Typed ``*Args`` (nested, in lists and dicts too) as plain Helm-values data: camelCase keys,
    unset fields left out. It is the SDK's own translation (the one Pulumi applies when it sends
    the typed form), so a chart gets exactly what a typed object would."""
    if is_input_type(type(value)):
        return {key: as_values(item) for key, item in input_type_to_dict(value).items()}
    if isinstance(value, Mapping):
        return {key: as_values(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_values(item) for item in value]
    return value


def chart_placement() -> dict[str, Any]:
    """``system_pool()`` as Helm values: ``nodeSelector`` and ``tolerations``."""
    node_selector, tolerations = system_pool()
    return {"nodeSelector": node_selector, "tolerations": as_values(tolerations)}


def chart_security(uid: int = NON_ROOT_UID) -> dict[str, Any]:
    """The ``restricted`` container and pod security contexts as Helm values, under the keys
    most charts use (``securityContext``, ``podSecurityContext``). The charts' containers name
    their user (``runAsUser``); their pods leave the group to the image (no ``runAsGroup``)."""
    return {
        "securityContext": as_values(container_security_context(uid=uid)),
        "podSecurityContext": as_values(pod_security_context(uid, run_as_group=False)),
    }
