"""Pod Security Standards, one policy per control, over the pod template of every built-in
workload kind (``kube.pod_templates``) and every container of the pod, init and ephemeral ones
included, so a new component's pods are checked without changes here.

Each ``baseline`` control is its own ``k8s-pss-*`` policy (critical: a violation lets a pod
break out to its node); the ``restricted`` controls keep the ids of the catalogue
(``k8s-no-priv-escalation``, ``k8s-non-root``, ``k8s-drop-all-caps``, ``k8s-seccomp``,
``k8s-volume-types``). As in the Pod Security admission checks, Windows pods
(``spec.os.name: windows``) are exempt from the Linux-only restricted controls.

The one exemption: ``k8s-pss-host-namespaces`` and ``k8s-pss-host-path`` accept a node agent
(host PID and network, read-only ``/proc``, ``/sys`` and ``/``) in the namespaces of
``node_agents.NODE_AGENT_NAMESPACES``, and only a pod that meets ``node_agents.agent_problems``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import ResourceValidationArgs

from .kube import (
    Container,
    PodTemplate,
    containers,
    labels_of,
    namespace_of,
    pod_security,
    pods_of,
)
from .node_agents import NODE_AGENT_NAMESPACES, exemption_problems
from .policy_config import Config
from .registry import CRITICAL, HIGH, MEDIUM, resource_policy
from .resources import flag, get, maps, number, present, strings, text

DOMAIN = "kubernetes"


def _linux(template: PodTemplate) -> bool:
    return text(template.spec, "os", "name") != "windows"


def _security_contexts(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The pod's security context and every container's, with how messages name them."""
    yield "the pod", pod_security(spec)
    for container in containers(spec):
        yield container.label, container.security


# ---- Pod Security Standards: baseline ------------------------------------------------------


@resource_policy(
    "k8s-pss-privileged",
    severity=CRITICAL,
    domain=DOMAIN,
    description="Containers must not run privileged (PSS baseline: privileged).",
    remediation="Remove securityContext.privileged; grant the one capability a container "
    "really needs instead (and justify it).",
)
def k8s_pss_privileged(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    for pod in pods_of(args):
        for container in containers(pod.spec):
            if flag(container.security, "privileged"):
                yield f"{container.label} is privileged."


def _not_covered(namespace: str, problems: list[str]) -> str:
    """Why a pod in a node-agent namespace is still refused."""
    return (
        f"the node-agent exemption of namespace {namespace} does not cover this pod: "
        f"{'; '.join(problems)}"
    )


@resource_policy(
    "k8s-pss-host-namespaces",
    severity=CRITICAL,
    domain=DOMAIN,
    description="Pods must not share the node's network, PID or IPC namespace (PSS baseline: "
    "host namespaces); only a node agent in a namespace of node_agents.NODE_AGENT_NAMESPACES "
    f"({', '.join(sorted(NODE_AGENT_NAMESPACES))}) may use the host's PID and network "
    "namespaces, never its IPC namespace.",
    remediation="Remove hostNetwork, hostPID and hostIPC (expose ports through a Service). A "
    "node agent runs in a namespace listed in policies/rules/node_agents.py, with no "
    "privileged container, no privilege escalation, ALL capabilities dropped and read-only "
    "hostPath mounts of /proc, /sys or / only.",
)
def k8s_pss_host_namespaces(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    namespace = namespace_of(args.props)
    for pod in pods_of(args):
        problems = exemption_problems(namespace, pod.spec)
        for field in ("hostNetwork", "hostPID", "hostIPC"):
            if not flag(pod.spec, field):
                continue
            if problems is None or field == "hostIPC":
                yield f"{field} is true."
            elif problems:
                yield f"{field} is true, and {_not_covered(namespace, problems)}."


@resource_policy(
    "k8s-pss-host-process",
    severity=CRITICAL,
    domain=DOMAIN,
    description="Windows pods must not run as host processes (PSS baseline: HostProcess).",
    remediation="Remove securityContext.windowsOptions.hostProcess from the pod and containers.",
)
def k8s_pss_host_process(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    for pod in pods_of(args):
        for owner, context in _security_contexts(pod.spec):
            if flag(context, "windowsOptions", "hostProcess"):
                yield f"{owner} sets windowsOptions.hostProcess."


@resource_policy(
    "k8s-pss-host-path",
    severity=CRITICAL,
    domain=DOMAIN,
    description="Pods must not mount hostPath volumes (PSS baseline: HostPath volumes); only a "
    "node agent in a namespace of node_agents.NODE_AGENT_NAMESPACES "
    f"({', '.join(sorted(NODE_AGENT_NAMESPACES))}) may mount /proc, /sys and /, read-only.",
    remediation="Use an emptyDir for scratch space, a ConfigMap/Secret for files, or a "
    "PersistentVolumeClaim for data. A node agent runs in a namespace listed in "
    "policies/rules/node_agents.py and mounts only /proc, /sys or / with readOnly: true, with "
    "no privileged container, no privilege escalation and ALL capabilities dropped.",
)
def k8s_pss_host_path(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    namespace = namespace_of(args.props)
    for pod in pods_of(args):
        problems = exemption_problems(namespace, pod.spec)
        for volume in maps(pod.spec, "volumes"):
            if not present(volume, "hostPath"):
                continue
            found = f'volume "{text(volume, "name")}" is a hostPath volume'
            if problems is None:
                yield f"{found}."
            elif problems:
                yield f"{found}, and {_not_covered(namespace, problems)}."


@resource_policy(
    "k8s-pss-host-ports",
    severity=CRITICAL,
    domain=DOMAIN,
    description="Containers must not bind host ports (PSS baseline: host ports).",
    remediation="Remove ports[].hostPort and reach the pods through a Service.",
)
def k8s_pss_host_ports(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    for pod in pods_of(args):
        for container in containers(pod.spec):
            for port in maps(container.spec, "ports"):
                host_port = number(port, "hostPort")
                if host_port:
                    yield f"{container.label} binds host port {host_port:g}."


@resource_policy(
    "k8s-pss-proc-mount",
    severity=CRITICAL,
    domain=DOMAIN,
    description="Containers must keep the default /proc mask (PSS baseline: /proc mount type).",
    remediation="Remove securityContext.procMount (or set it to Default).",
)
def k8s_pss_proc_mount(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    for pod in pods_of(args):
        for container in containers(pod.spec):
            mount = text(container.security, "procMount")
            if mount not in ("", "Default"):
                yield f"{container.label} sets procMount {mount}."


SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
"""The namespaced sysctls Pod Security baseline allows (as of Kubernetes 1.29+)."""


@resource_policy(
    "k8s-pss-sysctls",
    severity=CRITICAL,
    domain=DOMAIN,
    description="Pods may set only the safe, namespaced sysctls (PSS baseline: sysctls).",
    remediation="Remove securityContext.sysctls entries outside the safe set; tune the node "
    "itself if a kernel setting is really needed.",
)
def k8s_pss_sysctls(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    for pod in pods_of(args):
        for sysctl in maps(pod_security(pod.spec), "sysctls"):
            name = text(sysctl, "name")
            if name not in SAFE_SYSCTLS:
                yield f"sysctl {name or '<unnamed>'} is not in the safe set."


SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)


@resource_policy(
    "k8s-pss-selinux",
    severity=CRITICAL,
    domain=DOMAIN,
    description="Pods must not set custom SELinux users, roles or types (PSS baseline: SELinux).",
    remediation="Remove seLinuxOptions.user and .role, and use one of the container_* types "
    "(or leave seLinuxOptions unset).",
)
def k8s_pss_selinux(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    for pod in pods_of(args):
        for owner, context in _security_contexts(pod.spec):
            options = get(context, "seLinuxOptions")
            if text(options, "type") not in SELINUX_TYPES:
                yield f"{owner} sets SELinux type {text(options, 'type')}."
            for field in ("user", "role"):
                if text(options, field):
                    yield f"{owner} sets SELinux {field}."


APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


@resource_policy(
    "k8s-pss-apparmor",
    severity=CRITICAL,
    domain=DOMAIN,
    description="Pods must not run AppArmor-unconfined (PSS baseline: AppArmor).",
    remediation="Use appArmorProfile.type RuntimeDefault or Localhost (or leave it unset); "
    "drop 'unconfined' AppArmor annotations.",
)
def k8s_pss_apparmor(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    for pod in pods_of(args):
        for owner, context in _security_contexts(pod.spec):
            kind = text(context, "appArmorProfile", "type")
            if kind not in ("", "RuntimeDefault", "Localhost"):
                yield f"{owner} sets appArmorProfile {kind}."
        for key, value in labels_of(pod.metadata, "annotations").items():
            if key.startswith(APPARMOR_ANNOTATION) and not (
                value == "runtime/default" or value.startswith("localhost/")
            ):
                yield f"annotation {key} is {value}."


def _handlers(container: Container) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        yield probe, get(container.spec, probe) or {}
    for hook in ("postStart", "preStop"):
        yield f"lifecycle.{hook}", get(container.spec, "lifecycle", hook) or {}


@resource_policy(
    "k8s-pss-host-probes",
    severity=CRITICAL,
    domain=DOMAIN,
    description="Probes and lifecycle hooks must not target other hosts (PSS baseline: host "
    "probes / lifecycle hooks).",
    remediation="Remove the host field of httpGet and tcpSocket handlers: the kubelet then "
    "checks the pod's own address.",
)
def k8s_pss_host_probes(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    for pod in pods_of(args):
        for container in containers(pod.spec):
            for where, handler in _handlers(container):
                for action in ("httpGet", "tcpSocket"):
                    if text(handler, action, "host"):
                        yield (
                            f"{container.label} {where}.{action} targets host "
                            f"{text(handler, action, 'host')}."
                        )


# ---- Pod Security Standards: restricted ----------------------------------------------------


@resource_policy(
    "k8s-no-priv-escalation",
    severity=HIGH,
    domain=DOMAIN,
    description="Every container must set allowPrivilegeEscalation: false (PSS restricted).",
    remediation="Set securityContext.allowPrivilegeEscalation to false on every container, init "
    "containers included (components.lib.kube.pods.container_security_context does).",
)
def k8s_no_priv_escalation(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    for pod in filter(_linux, pods_of(args)):
        for container in containers(pod.spec):
            if flag(container.security, "allowPrivilegeEscalation") is not False:
                yield f"{container.label} does not set allowPrivilegeEscalation: false."


@resource_policy(
    "k8s-non-root",
    severity=HIGH,
    domain=DOMAIN,
    description="Pods must run as non-root: runAsNonRoot true and no runAsUser 0 (PSS restricted).",
    remediation="Set runAsNonRoot: true and a non-zero runAsUser in the pod security context "
    "(components.lib.kube.pods.pod_security_context), and do not override them per container.",
)
def k8s_non_root(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    for pod in pods_of(args):
        pod_level = flag(pod_security(pod.spec), "runAsNonRoot")
        for container in containers(pod.spec):
            own = flag(container.security, "runAsNonRoot")
            if own is False or (own is None and pod_level is not True):
                yield f"{container.label} may run as root (runAsNonRoot is not true)."
        for owner, context in _security_contexts(pod.spec):
            if number(context, "runAsUser") == 0:
                yield f"{owner} sets runAsUser 0."


ALLOWED_ADDED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})


@resource_policy(
    "k8s-drop-all-caps",
    severity=HIGH,
    domain=DOMAIN,
    description="Containers must drop ALL capabilities and add back at most NET_BIND_SERVICE "
    "(PSS restricted: capabilities).",
    remediation="Set securityContext.capabilities.drop to ['ALL'] and add nothing but "
    "NET_BIND_SERVICE (and only to bind ports below 1024).",
)
def k8s_drop_all_caps(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    for pod in filter(_linux, pods_of(args)):
        for container in containers(pod.spec):
            if "ALL" not in strings(container.security, "capabilities", "drop"):
                yield f"{container.label} does not drop ALL capabilities."
            added = set(strings(container.security, "capabilities", "add"))
            extra = sorted(added - ALLOWED_ADDED_CAPABILITIES)
            if extra:
                yield f"{container.label} adds {', '.join(extra)}."


SECCOMP_TYPES = ("RuntimeDefault", "Localhost")


@resource_policy(
    "k8s-seccomp",
    severity=MEDIUM,
    domain=DOMAIN,
    description="Pods must run under a RuntimeDefault or Localhost seccomp profile (PSS "
    "restricted: seccomp).",
    remediation="Set securityContext.seccompProfile.type to RuntimeDefault on the pod and "
    "never Unconfined on a container.",
)
def k8s_seccomp(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    for pod in filter(_linux, pods_of(args)):
        pod_type = text(pod_security(pod.spec), "seccompProfile", "type")
        if pod_type and pod_type not in SECCOMP_TYPES:
            yield f"the pod's seccompProfile is {pod_type}."
        for container in containers(pod.spec):
            own = text(container.security, "seccompProfile", "type")
            if own and own not in SECCOMP_TYPES:
                yield f"{container.label} sets seccompProfile {own}."
            elif not own and pod_type not in SECCOMP_TYPES:
                yield f"{container.label} runs without a seccomp profile."


RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)


@resource_policy(
    "k8s-volume-types",
    severity=HIGH,
    domain=DOMAIN,
    description="Pods may only use the volume types PSS restricted allows (configMap, csi, "
    "downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, projected, secret; "
    "hostPath is k8s-pss-host-path's).",
    remediation="Replace other volume sources with a PersistentVolumeClaim (through a CSI "
    "driver) or one of the allowed types.",
)
def k8s_volume_types(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    for pod in pods_of(args):
        for volume in maps(pod.spec, "volumes"):
            # hostPath is k8s-pss-host-path's finding: each control reports once.
            kinds = [k for k in iter(volume) if k not in ("name", "hostPath")]
            for kind in kinds:
                if kind not in RESTRICTED_VOLUME_TYPES:
                    yield f'volume "{text(volume, "name")}" is of type {kind}.'
