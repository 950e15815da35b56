"""Node agents: the one exemption from the host-access controls, and what it still demands.

A node agent (node-exporter) reports on the node it runs on, so it needs what Pod Security
baseline forbids: the host's PID and network namespaces and read-only views of ``/proc``,
``/sys`` and the root filesystem. ``NODE_AGENT_NAMESPACES`` is the single, reasoned list of the
namespaces such an agent may run in; the pack reads it in three places and nowhere else keeps
one:

* ``k8s-namespace-pss`` expects those namespaces (and only those, besides its configured
  ``exempt`` entries) to enforce ``privileged``;
* ``k8s-pss-host-namespaces`` accepts ``hostPID`` and ``hostNetwork`` there, never ``hostIPC``;
* ``k8s-pss-host-path`` accepts hostPath volumes there.

It is code, not per-stack configuration: a CrossGuard policy receives only its own
configuration (``args.get_config()``), so a list in ``k8s-namespace-pss``'s config cannot reach
the two resource policies, and a copy in theirs would be a second list to drift. Host access is
also no sizing or retention knob that a stack may differ in: changing it is a change to the
pack, reviewed with it.

Even in those namespaces a pod is accepted only as a node agent (``agent_problems`` lists what
is missing): no privileged container, ``allowPrivilegeEscalation: false`` and ``ALL``
capabilities dropped with none added on every container, no ``hostIPC``, hostPath volumes only
of ``NODE_AGENT_HOST_PATHS``, and every mount of them ``readOnly: true`` and not
``Bidirectional``. Any other pod there, and every pod anywhere else, is refused as before.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any, Final

from .kube import Container, containers
from .resources import flag, maps, present, strings, text

NODE_AGENT_NAMESPACES: Final[Mapping[str, str]] = {
    "node-exporter": (
        "node-exporter reads the node's own metrics: the host PID and network namespaces and "
        "the host's /proc, /sys and root filesystem through read-only hostPath mounts, which "
        "restricted and baseline forbid; nothing else runs in this namespace "
        "(components.monitoring.node_exporter)"
    ),
}
"""Namespace to the reason a node agent runs there. Each enforces Pod Security
``privileged``; a pod there may use host namespaces and hostPath only as ``agent_problems``
allows."""

NODE_AGENT_HOST_PATHS: Final = frozenset({"/proc", "/sys", "/"})
"""The host paths a node agent may mount (read-only): the kernel's process and device views
and the root filesystem, which node-exporter reads under ``--path.procfs``, ``--path.sysfs``
and ``--path.rootfs``."""


def host_path(path: str) -> str:
    """An absolute host path in its normal form (``/proc/`` and ``/x/../proc`` are ``/proc``);
    ``""`` for a relative one."""
    if not path.startswith("/"):
        return ""
    normal = posixpath.normpath(path)
    return "/" + normal.lstrip("/")


def host_path_volumes(spec: Mapping[str, Any]) -> dict[str, str]:
    """The pod's hostPath volumes: name to host path, as written."""
    return {
        text(volume, "name"): text(volume, "hostPath", "path")
        for volume in maps(spec, "volumes")
        if present(volume, "hostPath")
    }


def _container_problems(container: Container, host_volumes: Mapping[str, str]) -> list[str]:
    """What one container lacks: the restricted profile's privilege controls, and read-only,
    non-bidirectional mounts of the hostPath volumes."""
    security = container.security
    problems: list[str] = []
    if flag(security, "privileged"):
        problems.append(f"{container.label} is privileged")
    if flag(security, "allowPrivilegeEscalation") is not False:
        problems.append(f"{container.label} does not set allowPrivilegeEscalation: false")
    if "ALL" not in strings(security, "capabilities", "drop"):
        problems.append(f"{container.label} does not drop ALL capabilities")
    added = strings(security, "capabilities", "add")
    if added:
        problems.append(f"{container.label} adds {', '.join(sorted(added))}")
    for mount in maps(container.spec, "volumeMounts"):
        volume = text(mount, "name")
        if volume not in host_volumes:
            continue
        mounted = f'{container.label} mounts hostPath volume "{volume}"'
        if flag(mount, "readOnly") is not True:
            problems.append(f"{mounted} writable")
        if text(mount, "mountPropagation") == "Bidirectional":
            problems.append(f"{mounted} with Bidirectional propagation")
    return problems


def agent_problems(spec: Mapping[str, Any]) -> list[str]:
    """What keeps a pod spec from being a node agent the exemption covers (``[]``: it is one)."""
    problems: list[str] = []
    if flag(spec, "hostIPC"):
        problems.append("hostIPC is true")
    volumes = host_path_volumes(spec)
    allowed = ", ".join(sorted(NODE_AGENT_HOST_PATHS))
    for name, path in volumes.items():
        if host_path(path) not in NODE_AGENT_HOST_PATHS:
            where = path or "<no path>"
            problems.append(f'hostPath volume "{name}" mounts {where} (not {allowed})')
    for container in containers(spec):
        problems.extend(_container_problems(container, volumes))
    return problems


def exemption_problems(namespace: str, spec: Mapping[str, Any]) -> list[str] | None:
    """``None`` if ``namespace`` has no node-agent exemption; otherwise what the pod lacks to be
    covered by it (``[]``: covered)."""
    if namespace not in NODE_AGENT_NAMESPACES:
        return None
    return agent_problems(spec)
