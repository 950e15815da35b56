"""The node-agent exemption of the policy pack (``policies/rules/node_agents.py``), its
validators called directly with ``tests.test_policies``'s fixtures and configuration.

A node agent (host PID and network, read-only ``/proc``, ``/sys`` and ``/``, restricted
otherwise) passes every policy in a namespace of ``NODE_AGENT_NAMESPACES``; the very same pod
anywhere else is refused by ``k8s-pss-host-namespaces`` and ``k8s-pss-host-path`` as before;
and in the exempt namespace, each way of being more than a node agent (a writable or
bidirectional host mount, another host path, a privileged or escalating container, kept or
added capabilities, ``hostIPC``) is still refused, naming what is missing. ``k8s-namespace-pss``
reads the same list: those namespaces must enforce ``privileged`` with no config entry.
"""

from __future__ import annotations

from typing import Any

import pytest

from policies.rules.node_agents import (
    NODE_AGENT_HOST_PATHS,
    NODE_AGENT_NAMESPACES,
    agent_problems,
    host_path,
)
from tests.test_policies import (
    LABELS,
    POD,
    POLICIES,
    TEST_CONFIG,
    R,
    combined,
    container_spec,
    meta,
    namespace,
    patched,
    pod_spec,
    reporting,
    violations,
)

AGENT_NAMESPACE = "node-exporter"
HOST = {"k8s-pss-host-namespaces", "k8s-pss-host-path"}
"""The two policies the exemption is about."""
MOUNTS = {"proc": "/proc", "sys": "/sys", "root": "/"}


def agent_spec() -> dict[str, Any]:
    """node-exporter's pod as the program builds it, in the fixtures' terms."""
    container = {
        **container_spec(),
        "name": "node-exporter",
        "ports": [{"name": "metrics", "containerPort": 9100}],
        "livenessProbe": {"httpGet": {"path": "/", "port": "metrics"}, "periodSeconds": 20},
        "readinessProbe": {"httpGet": {"path": "/", "port": "metrics"}, "periodSeconds": 10},
        "volumeMounts": [
            {"name": name, "mountPath": f"/host/{name}", "readOnly": True} for name in MOUNTS
        ],
    }
    del container["envFrom"]
    return {
        **pod_spec(),
        "hostPID": True,
        "hostNetwork": True,
        "containers": [container],
        "volumes": [{"name": n, "hostPath": {"path": p}} for n, p in MOUNTS.items()],
    }


def agent(namespace: str = AGENT_NAMESPACE, **changes: Any) -> R:
    """node-exporter's DaemonSet in ``namespace``; ``changes`` are ``patched`` paths relative
    to the pod spec, with ``__`` for dots."""
    props = {
        "metadata": meta("node-exporter", namespace),
        "spec": {
            "selector": {"matchLabels": dict(LABELS)},
            "template": {"metadata": {"labels": dict(LABELS)}, "spec": agent_spec()},
        },
    }
    paths = {f"{POD}.{k.replace('__', '.')}": v for k, v in changes.items()}
    return R("kubernetes:apps/v1:DaemonSet", patched(props, paths), name="node-exporter")


def messages(subject: R, policy: str) -> list[str]:
    return violations(POLICIES[policy], subject, TEST_CONFIG)


def test_the_list_is_reasoned_and_the_paths_are_the_agents() -> None:
    assert set(NODE_AGENT_NAMESPACES) == {AGENT_NAMESPACE}
    assert all(len(reason) > 40 for reason in NODE_AGENT_NAMESPACES.values())
    assert frozenset({"/proc", "/sys", "/"}) == NODE_AGENT_HOST_PATHS


def test_a_node_agent_passes_every_policy_in_its_namespace() -> None:
    assert agent_problems(agent_spec()) == []
    assert reporting(agent()) == set()


@pytest.mark.parametrize("elsewhere", ["app", "monitoring", "kube-system", "node-exporters"])
def test_the_same_pod_in_any_other_namespace_is_refused_as_before(elsewhere: str) -> None:
    subject = agent(elsewhere)
    assert reporting(subject) == HOST
    assert messages(subject, "k8s-pss-host-namespaces") == [
        "hostNetwork is true.",
        "hostPID is true.",
    ]
    assert messages(subject, "k8s-pss-host-path") == [
        f'volume "{name}" is a hostPath volume.' for name in MOUNTS
    ]


BROKEN: dict[str, tuple[dict[str, Any], set[str], str]] = {
    "writable root mount": (
        {"containers__0__volumeMounts__2__readOnly": False},
        set(),
        'container "node-exporter" mounts hostPath volume "root" writable',
    ),
    "root mount without readOnly": (
        {"containers__0__volumeMounts__2": {"name": "root", "mountPath": "/host/root"}},
        set(),
        'container "node-exporter" mounts hostPath volume "root" writable',
    ),
    "bidirectional propagation": (
        {"containers__0__volumeMounts__1__mountPropagation": "Bidirectional"},
        set(),
        'mounts hostPath volume "sys" with Bidirectional propagation',
    ),
    "privileged container": (
        {"containers__0__securityContext__privileged": True},
        {"k8s-pss-privileged"},
        'container "node-exporter" is privileged',
    ),
    "privilege escalation": (
        {"containers__0__securityContext__allowPrivilegeEscalation": True},
        {"k8s-no-priv-escalation"},
        "does not set allowPrivilegeEscalation: false",
    ),
    "capabilities kept": (
        {"containers__0__securityContext__capabilities": {"drop": ["NET_RAW"]}},
        {"k8s-drop-all-caps"},
        "does not drop ALL capabilities",
    ),
    "a capability added back": (
        {"containers__0__securityContext__capabilities__add": ["NET_BIND_SERVICE"]},
        set(),
        'container "node-exporter" adds NET_BIND_SERVICE',
    ),
    "host IPC namespace": ({"hostIPC": True}, set(), "hostIPC is true"),
    "another host path": (
        {"volumes__2__hostPath__path": "/var/run"},
        set(),
        'hostPath volume "root" mounts /var/run (not /, /proc, /sys)',
    ),
    "a path escaping an allowed one": (
        {"volumes__0__hostPath__path": "/proc/../etc"},
        set(),
        'hostPath volume "proc" mounts /proc/../etc',
    ),
    "an init container writing the host": (
        {
            "initContainers": [
                {
                    **container_spec(),
                    "name": "prepare",
                    "volumeMounts": [{"name": "root", "mountPath": "/host/root"}],
                }
            ]
        },
        set(),
        'init container "prepare" mounts hostPath volume "root" writable',
    ),
}
"""How a pod in the exempt namespace is more than a node agent: its changes, the policies
besides the two host ones that (rightly) report it too, and what the host ones name."""


@pytest.mark.parametrize("case", list(BROKEN))
def test_more_than_a_node_agent_is_refused_in_its_namespace(case: str) -> None:
    changes, also, named = BROKEN[case]
    subject = agent(**changes)
    assert reporting(subject) == HOST | also
    for policy in sorted(HOST):
        # hostIPC is refused outright, as anywhere; everything else names the exemption
        found = [m for m in messages(subject, policy) if m != "hostIPC is true."]
        assert found, policy
        assert all("node-agent exemption of namespace node-exporter" in m for m in found)
        assert all(named in m for m in found), found


def test_host_ipc_is_refused_even_for_a_node_agent() -> None:
    assert "hostIPC is true." in messages(agent(hostIPC=True), "k8s-pss-host-namespaces")


def test_host_paths_are_compared_in_their_normal_form() -> None:
    assert host_path("/proc/") == "/proc"
    assert host_path("//sys") == "/sys"
    assert host_path("/proc/../etc") == "/etc"
    assert host_path("/") == "/"
    assert host_path("proc") == ""
    trailing = agent(volumes__0__hostPath__path="/proc/")
    assert agent_problems(trailing.props["spec"]["template"]["spec"]) == []


def test_namespace_pss_expects_the_agent_namespace_privileged_from_the_same_list() -> None:
    privileged = combined([namespace("privileged", AGENT_NAMESPACE)])
    assert "k8s-namespace-pss" not in reporting(privileged)
    restricted = combined([namespace("restricted", AGENT_NAMESPACE)])
    found = violations(POLICIES["k8s-namespace-pss"], restricted, TEST_CONFIG)
    assert found == [
        "namespace node-exporter enforces restricted Pod Security level; wanted privileged."
    ]
    # other namespaces keep the config's say: restricted unless exempted there
    assert "k8s-namespace-pss" in reporting(combined([namespace("privileged", "app")]))
