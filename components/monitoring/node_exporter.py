"""node-exporter's DaemonSet spec: one pod on every node reporting that node's CPU, memory,
filesystems, disks, network, load and clock (``Monitoring`` creates it in the ``node-exporter``
namespace with this spec; no resources are created here).

A node agent needs what Pod Security baseline forbids, and gets only that:

* the host's PID namespace (``hostPID``, as upstream's chart) and network namespace
  (``hostNetwork``: ``/proc/net/dev`` is read in the reader's network namespace, so without it
  ``node_network_*`` would describe the pod, not the node);
* read-only hostPath mounts of ``/proc``, ``/sys`` and ``/`` under ``/host`` (recursively
  read-only where the runtime can: ``recursiveReadOnly: IfPossible``, so the root's submounts
  are not writable either; hence no mount propagation, which recursive read-only excludes:
  mounts made after the pod started, pods' volumes mostly, are not seen and are excluded from
  the filesystem collector anyway).

Everything else is the restricted profile: ``nobody`` (65534), no privilege escalation, every
capability dropped, RuntimeDefault seccomp, read-only root filesystem, no service account
token. The policy pack accepts the host access only in ``policies/rules/node_agents.py``'s
namespaces and only for such a pod (``k8s-pss-host-namespaces``, ``k8s-pss-host-path``).

It listens on the node's own address (``status.hostIP``), port ``metrics`` 9100, which the
``node-exporter`` Service and Prometheus's ``node-exporter`` job select. It tolerates every
taint (``operator: Exists``) so it runs on the system and the app pools alike and stays through
node pressure, at ``system-node-critical`` priority so a full node makes room for it.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.lib.kube.pods import container_security_context, pod_security_context

core = k8s.core.v1

IMAGE = (
    "quay.io/prometheus/node-exporter:v1.9.1"
    "@sha256:d00a542e409ee618a4edc67da14dd48c5da66726bbd5537ab2af9c1dfc442c8a"
)
"""Upstream node-exporter, pinned by release and by the digest of its multi-architecture image
index (allowlisted in ``policies/config/<stack>.json``)."""
NOBODY = 65534
"""The user the upstream image runs as."""
PORT_NAME = "metrics"
"""The container port's name: the ``node-exporter`` Service targets it and Prometheus's
``node-exporter`` job keeps endpoints by it (``components.monitoring.prometheus``)."""
PRIORITY_CLASS = "system-node-critical"
"""Built into Kubernetes (usable in any namespace since 1.17): the scheduler preempts other pods
to place it, and the kubelet evicts it last."""
HOST_ROOT = "/host"
HOST_MOUNTS = {"proc": "/proc", "sys": "/sys", "root": "/"}
"""Volume name to the host path it mounts read-only at ``/host/<name>``."""
MOUNT_POINTS_EXCLUDE = (
    "^/(dev|proc|run/credentials/.+|sys|var/lib/containerd/.+|var/lib/docker/.+"
    "|var/lib/kubelet/.+)($|/)"
)
"""Mount points the filesystem collector skips (paths as seen from the host's root): kernel
and device filesystems, and the container runtime's and kubelet's per-pod mounts, which come
and go with pods (upstream's and kube-prometheus's choice)."""
FS_TYPES_EXCLUDE = (
    "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs"
    "|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs"
    "|squashfs|sysfs|tracefs|tmpfs)$"
)
"""Filesystem types the filesystem collector skips: the virtual ones (node-exporter's default
list) and ``tmpfs``, whose fill level is memory, reported by the memory collector."""
POD_INTERFACES = "^(veth.*|eni.*|[a-f0-9]{15})$"
"""The pods' virtual interfaces on a node (the VPC CNI's ``eni*``): one series per pod would
churn with every pod; the node's own interfaces are what the alerts and dashboards read."""


def args(port: int) -> list[str]:
    """The container's flags: upstream's chart's (host paths under ``/host``, listening on the
    node's address), the collectors' exclusions above, and no collector for hardware a cloud
    node does not have. Every collector the rules and dashboards read (cpu, diskstats,
    filesystem, loadavg, meminfo, netdev, timex, uname: ``metrics.yaml``) is on by default."""
    return [
        f"--path.procfs={HOST_ROOT}/proc",
        f"--path.sysfs={HOST_ROOT}/sys",
        f"--path.rootfs={HOST_ROOT}/root",
        f"--web.listen-address=$(HOST_IP):{port}",
        f"--collector.filesystem.mount-points-exclude={MOUNT_POINTS_EXCLUDE}",
        f"--collector.filesystem.fs-types-exclude={FS_TYPES_EXCLUDE}",
        f"--collector.netdev.device-exclude={POD_INTERFACES}",
        f"--collector.netclass.ignored-devices={POD_INTERFACES}",
        "--no-collector.wifi",
        "--no-collector.hwmon",
    ]


def _probe(*, period: int, failures: int) -> core.ProbeArgs:
    """``GET /`` (node-exporter's landing page: it answers while the process serves, without
    running the collectors a ``/metrics`` scrape would) on the node's address."""
    return core.ProbeArgs(
        http_get=core.HTTPGetActionArgs(path="/", port=PORT_NAME),
        period_seconds=period,
        failure_threshold=failures,
        timeout_seconds=3,
    )


def node_exporter_pod(
    *, service_account: pulumi.Input[str], port: int, compute: core.ResourceRequirementsArgs
) -> core.PodSpecArgs:
    """The pod on every node (see the module's docstring for what it is allowed and why)."""
    return core.PodSpecArgs(
        service_account_name=service_account,
        automount_service_account_token=False,  # it never calls the Kubernetes API
        enable_service_links=False,
        host_pid=True,
        host_network=True,
        host_ipc=False,
        dns_policy="Default",  # it resolves no names: no dependency on the cluster DNS
        priority_class_name=PRIORITY_CLASS,
        security_context=pod_security_context(NOBODY),
        node_selector={"kubernetes.io/os": "linux"},
        tolerations=[core.TolerationArgs(operator="Exists")],
        termination_grace_period_seconds=30,
        containers=[
            core.ContainerArgs(
                name="node-exporter",
                image=IMAGE,
                # pinned by digest: a node restarting it during a registry outage uses its copy
                image_pull_policy="IfNotPresent",
                args=args(port),
                env=[
                    core.EnvVarArgs(
                        name="HOST_IP",
                        value_from=core.EnvVarSourceArgs(
                            field_ref=core.ObjectFieldSelectorArgs(
                                api_version="v1", field_path="status.hostIP"
                            )
                        ),
                    )
                ],
                ports=[core.ContainerPortArgs(name=PORT_NAME, container_port=port, protocol="TCP")],
                resources=compute,
                readiness_probe=_probe(period=10, failures=3),
                liveness_probe=_probe(period=20, failures=5),
                security_context=container_security_context(),
                volume_mounts=[
                    core.VolumeMountArgs(
                        name=name,
                        mount_path=f"{HOST_ROOT}/{name}",
                        read_only=True,
                        recursive_read_only="IfPossible",
                    )
                    for name in HOST_MOUNTS
                ],
            )
        ],
        volumes=[
            core.VolumeArgs(
                name=name, host_path=core.HostPathVolumeSourceArgs(path=path, type="Directory")
            )
            for name, path in HOST_MOUNTS.items()
        ],
    )
