"""node-exporter's DaemonSet as the program declares it, for both stacks, and its flags run by a
real node_exporter.

* Shape: on every node (every taint tolerated, no pool selector, system-node-critical), host PID
  and network but never IPC, only read-only (recursively where possible) hostPath mounts of
  ``/proc``, ``/sys`` and ``/`` under ``/host``, restricted otherwise (nobody, read-only root,
  no escalation, ALL dropped, RuntimeDefault seccomp, no token), probes on ``/``, one node at a
  time on rollout, its port ``metrics`` the one the Service and Prometheus's job select.
* Metrics: Debian's ``prometheus-node-exporter`` runs on loopback with the DaemonSet's own
  flags (the host paths pointed at this machine's ``/proc``, ``/sys`` and ``/``) and must
  produce every ``node_*`` name that ``metrics.yaml`` maps to node-exporter, which the alert
  rules and dashboards use. Debian's release is older than the pinned image: the flags used
  exist in both, and the metric names have been stable since 1.0.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from typing import Any

import pytest
import yaml

from components.monitoring import node_exporter
from components.monitoring.prometheus import EXPORTER_SERVICES
from tests.conftest import component_plan
from tools.plan import Plan
from tools.preview import REPO_ROOT

K = "kubernetes:"
TYPE = "exposcholar:monitoring:Monitoring"
INSTALL = "bash scripts/install-monitoring-tools.sh (a prerequisite of make unit)"
BINARY = "prometheus-node-exporter"
"""Debian's name for node_exporter."""


def _object(plan: Plan, kind: str, name: str) -> dict[str, Any]:
    found = [
        r.inputs
        for r in component_plan(plan, TYPE).of_type(f"{K}{kind}")
        if r.inputs["metadata"]["name"] == name
    ]
    assert len(found) == 1, (kind, name)
    return dict(found[0])


def _daemonset(plan: Plan) -> dict[str, Any]:
    return _object(plan, "apps/v1:DaemonSet", "node-exporter")


def _pod(plan: Plan) -> dict[str, Any]:
    return dict(_daemonset(plan)["spec"]["template"]["spec"])


def _container(plan: Plan) -> dict[str, Any]:
    (container,) = _pod(plan)["containers"]
    return dict(container)


def test_it_runs_on_every_node_first(plan: Plan) -> None:
    pod = _pod(plan)
    assert pod["tolerations"] == [{"operator": "Exists"}]  # every taint, any effect
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}  # no pool chosen
    assert "affinity" not in pod
    assert pod["priorityClassName"] == "system-node-critical"
    strategy = _daemonset(plan)["spec"]["updateStrategy"]
    assert strategy == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }


def test_host_access_is_exactly_a_node_agents(plan: Plan) -> None:
    pod = _pod(plan)
    assert (pod["hostPID"], pod["hostNetwork"], pod["hostIPC"]) == (True, True, False)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert {n: v["hostPath"]["path"] for n, v in volumes.items()} == node_exporter.HOST_MOUNTS
    assert all(set(v) == {"name", "hostPath"} for v in volumes.values())
    mounts = _container(plan)["volumeMounts"]
    assert {m["name"]: m["mountPath"] for m in mounts} == {
        "proc": "/host/proc", "sys": "/host/sys", "root": "/host/root"
    }  # fmt: skip
    for mount in mounts:
        assert mount["readOnly"] is True
        assert mount["recursiveReadOnly"] == "IfPossible"
        assert "mountPropagation" not in mount  # recursive read-only excludes propagation


def test_otherwise_restricted_and_tokenless(plan: Plan) -> None:
    pod = _pod(plan)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65534
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = _container(plan)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert "privileged" not in security
    assert pod["automountServiceAccountToken"] is False
    account = _object(plan, "core/v1:ServiceAccount", "node-exporter")
    assert pod["serviceAccountName"] == "node-exporter"
    assert account["metadata"]["namespace"] == "node-exporter"
    assert account["automountServiceAccountToken"] is False
    bindings = component_plan(plan, TYPE).of_type(
        f"{K}rbac.authorization.k8s.io/v1:ClusterRoleBinding"
    )
    assert not [b for b in bindings if b.inputs["subjects"][0]["name"] == "node-exporter"]


def test_image_pinned_by_digest_and_allowlisted(plan: Plan) -> None:
    container = _container(plan)
    assert re.fullmatch(
        r"quay\.io/prometheus/node-exporter:v1\.\d+\.\d+@sha256:[0-9a-f]{64}", container["image"]
    )
    assert container["imagePullPolicy"] == "IfNotPresent"
    config = json.loads((REPO_ROOT / "policies" / "config" / f"{plan.stack}.json").read_text())
    allowed = {e["image"] for e in config["k8s-image-pinned"]["thirdPartyImages"]}
    assert "quay.io/prometheus/node-exporter" in allowed


def test_port_probes_and_listen_address_match_the_service_and_the_job(plan: Plan) -> None:
    container = _container(plan)
    assert container["ports"] == [{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}]
    namespace, service_name, port_name = EXPORTER_SERVICES["node-exporter"]
    service = _object(plan, "core/v1:Service", service_name)
    assert service["metadata"]["namespace"] == namespace == "node-exporter"
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == (port_name, 9100, "metrics")
    template = _daemonset(plan)["spec"]["template"]
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    assert _daemonset(plan)["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/", "port": "metrics"}
    assert container["livenessProbe"] != container["readinessProbe"]
    # it listens on the node's own address only (status.hostIP), as the probes reach it
    assert "--web.listen-address=$(HOST_IP):9100" in container["args"]
    host_ip = {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.hostIP"}}
    assert container["env"] == [{"name": "HOST_IP", "valueFrom": host_ip}]
    assert set(container["resources"]) == {"requests", "limits"}


def test_host_paths_are_read_under_the_mounts(plan: Plan) -> None:
    args = _container(plan)["args"]
    mounts = {m["name"]: m["mountPath"] for m in _container(plan)["volumeMounts"]}
    assert f"--path.procfs={mounts['proc']}" in args
    assert f"--path.sysfs={mounts['sys']}" in args
    assert f"--path.rootfs={mounts['root']}" in args


# ---- the flags, run ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def local_args(args: list[str], port: int) -> list[str]:
    """The DaemonSet's flags for this machine: its own /proc, /sys and / instead of the host's
    under /host, and loopback instead of the node's address."""
    local = {
        "--path.procfs": "/proc",
        "--path.sysfs": "/sys",
        "--path.rootfs": "/",
        "--web.listen-address": f"127.0.0.1:{port}",
    }
    result = []
    for arg in args:
        flag = arg.split("=", 1)[0]
        result.append(f"{flag}={local[flag]}" if flag in local else arg)
    assert sum(a.split("=", 1)[0] in local for a in result) == len(local), args
    return result


def _scrape(url: str, process: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"{BINARY} exited {process.returncode}: {err}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_the_pinned_flags_produce_every_node_metric_the_rules_and_dashboards_use(
    plans: dict[str, Plan],
) -> None:
    binary = shutil.which(BINARY)
    if binary is None:
        pytest.fail(f"{BINARY} is not installed; run {INSTALL}")
    wanted = {
        name
        for name, exporter in yaml.safe_load(
            (REPO_ROOT / "components" / "monitoring" / "metrics.yaml").read_text()
        ).items()
        if exporter == "node-exporter"
    }
    assert wanted and all(name.startswith("node_") for name in wanted)
    port = _free_port()
    args = local_args(_container(plans["prod"])["args"], port)
    assert args == local_args(_container(plans["staging"])["args"], port)
    process = subprocess.Popen(
        [binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        text = _scrape(f"http://127.0.0.1:{port}/metrics", process)
    finally:
        process.terminate()
        process.wait(timeout=10)
    produced = {
        re.split(r"[{ ]", line, maxsplit=1)[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert wanted - produced == set(), "metrics.yaml names node-exporter does not produce"
    # the per-pod interfaces and the kubelet's mounts are excluded, the node's are not
    assert 'node_network_receive_bytes_total{device="lo"}' in text
    assert re.search(r'node_filesystem_size_bytes\{[^}]*mountpoint="/', text)
