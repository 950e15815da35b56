"""Kubernetes objects: every Pod Security Standards control, container hygiene (read-only root,
resources, probes, pinned images, no secrets in the environment, no API token), and the
exposure of Services and Ingresses.

Pod-spec rules apply to every built-in workload kind through ``common.pod_templates``
(Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob, Pod,
PodTemplate) and to every container of the pod, init and ephemeral containers included, so a
new component's pods are checked without changes here.

Pod Security Standards: each ``baseline`` control is its own ``k8s-pss-*`` policy (critical: a
violation lets a pod break out to its node); the ``restricted`` controls keep the ids of the
catalogue (``k8s-no-priv-escalation``, ``k8s-non-root``, ``k8s-drop-all-caps``,
``k8s-seccomp``, ``k8s-volume-types``). As in the Pod Security admission checks, Windows pods
(``spec.os.name: windows``) are exempt from the Linux-only restricted controls.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import ResourceValidationArgs

from .common import (
    CRITICAL,
    HIGH,
    LOW,
    MEDIUM,
    Config,
    Container,
    PodTemplate,
    Setting,
    containers,
    flag,
    get,
    json_document,
    k8s_group,
    k8s_kind,
    labels_of,
    maps,
    matches_any,
    namespace_of,
    number,
    object_ref,
    plain,
    pod_security,
    pod_templates,
    present,
    reasoned_list,
    resource_policy,
    strings,
    text,
    workload_kind,
)

DOMAIN = "kubernetes"


def _pods(args: ResourceValidationArgs) -> list[PodTemplate]:
    return pod_templates(args.resource_type, args.props)


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
    for pod in _pods(args):
        for container in containers(pod.spec):
            if flag(container.security, "privileged"):
                yield f"{container.label} is privileged."


@resource_policy(
    "k8s-pss-host-namespaces",
    severity=CRITICAL,
    domain=DOMAIN,
    description="Pods must not share the node's network, PID or IPC namespace (PSS baseline: "
    "host namespaces).",
    remediation="Remove hostNetwork, hostPID and hostIPC (expose ports through a Service).",
)
def k8s_pss_host_namespaces(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    for pod in _pods(args):
        for field in ("hostNetwork", "hostPID", "hostIPC"):
            if flag(pod.spec, field):
                yield f"{field} is true."


@resource_policy(
    "k8s-pss-host-process",
    severity=CRITICAL,
    domain=DOMAIN,
    description="Windows pods must not run as host processes (PSS baseline: HostProcess).",
    remediation="Remove securityContext.windowsOptions.hostProcess from the pod and containers.",
)
def k8s_pss_host_process(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    for pod in _pods(args):
        for owner, context in _security_contexts(pod.spec):
            if flag(context, "windowsOptions", "hostProcess"):
                yield f"{owner} sets windowsOptions.hostProcess."


@resource_policy(
    "k8s-pss-host-path",
    severity=CRITICAL,
    domain=DOMAIN,
    description="Pods must not mount hostPath volumes (PSS baseline: HostPath volumes).",
    remediation="Use an emptyDir for scratch space, a ConfigMap/Secret for files, or a "
    "PersistentVolumeClaim for data.",
)
def k8s_pss_host_path(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    for pod in _pods(args):
        for volume in maps(pod.spec, "volumes"):
            if present(volume, "hostPath"):
                yield f'volume "{text(volume, "name")}" is a hostPath volume.'


@resource_policy(
    "k8s-pss-host-ports",
    severity=CRITICAL,
    domain=DOMAIN,
    description="Containers must not bind host ports (PSS baseline: host ports).",
    remediation="Remove ports[].hostPort and reach the pods through a Service.",
)
def k8s_pss_host_ports(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    for pod in _pods(args):
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
    for pod in _pods(args):
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
    for pod in _pods(args):
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
    for pod in _pods(args):
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
    for pod in _pods(args):
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
    for pod in _pods(args):
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
    for pod in filter(_linux, _pods(args)):
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
    for pod in _pods(args):
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
    for pod in filter(_linux, _pods(args)):
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
    for pod in filter(_linux, _pods(args)):
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
    for pod in _pods(args):
        for volume in maps(pod.spec, "volumes"):
            # hostPath is k8s-pss-host-path's finding: each control reports once.
            kinds = [k for k in iter(volume) if k not in ("name", "hostPath")]
            for kind in kinds:
                if kind not in RESTRICTED_VOLUME_TYPES:
                    yield f'volume "{text(volume, "name")}" is of type {kind}.'


# ---- container hygiene ---------------------------------------------------------------------


@resource_policy(
    "k8s-readonly-rootfs",
    severity=HIGH,
    domain=DOMAIN,
    description="Containers must run with a read-only root filesystem.",
    remediation="Set securityContext.readOnlyRootFilesystem to true and mount an emptyDir "
    "(components.lib.kube.pods.writable) at each path the process writes (/tmp, caches, nginx's "
    "client_body and proxy temp paths).",
)
def k8s_readonly_rootfs(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    for pod in _pods(args):
        for container in containers(pod.spec, ("containers", "initContainers")):
            if flag(container.security, "readOnlyRootFilesystem") is not True:
                yield f"{container.label} has a writable root filesystem."


@resource_policy(
    "k8s-resources",
    severity=MEDIUM,
    domain=DOMAIN,
    description="Containers must request CPU and memory and set limits (memory always, CPU "
    "unless configured otherwise).",
    remediation="Set resources.requests.cpu/memory and resources.limits.memory (and .cpu) from "
    "settings; the namespace quota counts them.",
    settings=[
        Setting(
            "requireCpuLimit",
            {"type": "boolean"},
            True,
            "Containers must also set a CPU limit.",
        )
    ],
)
def k8s_resources(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    wanted = [("requests", "cpu"), ("requests", "memory"), ("limits", "memory")]
    if config.flag("requireCpuLimit"):
        wanted.append(("limits", "cpu"))
    for pod in _pods(args):
        for container in containers(pod.spec, ("containers", "initContainers")):
            missing = [
                f"{k}.{r}" for k, r in wanted if not present(container.spec, "resources", k, r)
            ]
            if missing:
                yield f"{container.label} does not set resources {', '.join(missing)}."


PROBE_HANDLERS = ("httpGet", "tcpSocket", "exec", "grpc")


def _handler(probe: Any) -> dict[str, Any]:
    return {k: plain(get(probe, k)) for k in PROBE_HANDLERS if present(probe, k)}


@resource_policy(
    "k8s-probes",
    severity=MEDIUM,
    domain=DOMAIN,
    description="Containers of Deployments and StatefulSets must have liveness and readiness "
    "probes that check different things.",
    remediation="Add a readinessProbe (dependencies reachable: take traffic) and a livenessProbe "
    "(the process answers) on different endpoints, so a dependency outage does not restart "
    "every pod.",
    settings=[
        Setting(
            "identicalProbesAllowed",
            reasoned_list({"workload": {"type": "string"}}, ["workload"]),
            [],
            "Workloads (namespace/name) whose image offers one health endpoint for both probes.",
        )
    ],
)
def k8s_probes(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if workload_kind(args.resource_type) not in ("Deployment", "StatefulSet"):
        return
    exempt = {text(e, "workload") for e in config.entries("identicalProbesAllowed")}
    for pod in _pods(args):
        for container in containers(pod.spec, ("containers",)):
            liveness = get(container.spec, "livenessProbe")
            readiness = get(container.spec, "readinessProbe")
            for name, probe in (("livenessProbe", liveness), ("readinessProbe", readiness)):
                if probe is None:
                    yield f"{container.label} has no {name}."
            if (
                liveness is not None
                and readiness is not None
                and _handler(liveness) == _handler(readiness)
                and object_ref(args.props) not in exempt
            ):
                yield f"{container.label} checks the same endpoint for liveness and readiness."


@dataclass(frozen=True)
class ImageRef:
    """An image reference taken apart: ``registry/repository[:tag][@digest]``."""

    registry: str
    repository: str
    tag: str
    digest: str

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"


def parse_image(reference: str) -> ImageRef:
    name, _, digest = reference.partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    repository, tag = (name[:colon], name[colon + 1 :]) if colon > slash else (name, "")
    first, _, rest = repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return ImageRef(first, rest, tag, digest)
    path = repository if rest else f"library/{repository}"
    return ImageRef("docker.io", path, tag, digest)


DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def image_problem(
    reference: str, registries: Sequence[str], third_party: Sequence[str]
) -> str | None:
    """Why ``reference`` is not acceptable, or ``None``."""
    image = parse_image(reference)
    if image.digest and not DIGEST.match(image.digest):
        return f"{reference} has a malformed digest"
    if not image.digest and image.tag in ("", "latest"):
        return f"{reference} is not pinned (no tag or digest, or :latest)"
    if matches_any(image.registry, registries) or matches_any(image.name, third_party):
        return None
    return f"{reference} comes from {image.registry}, which is not an allowed registry"


@resource_policy(
    "k8s-image-pinned",
    severity=HIGH,
    domain=DOMAIN,
    description="Images must come from the stack's ECR registry (immutable tags) pinned by "
    "digest or tag, or from a third-party repository allowlisted with a reason; never :latest.",
    remediation="Push the image to the stack's ECR and reference it by digest (Images.refs); "
    "for a third-party image, pin its release tag and add its repository to thirdPartyImages "
    "in policies/config/<stack>.json with the reason.",
    settings=[
        Setting(
            "registries",
            {"type": "array", "items": {"type": "string", "minLength": 1}},
            [],
            "Glob patterns of our registries, e.g. <account>.dkr.ecr.<region>.amazonaws.com.",
        ),
        Setting(
            "thirdPartyImages",
            reasoned_list({"image": {"type": "string", "minLength": 1}}, ["image"]),
            [],
            "Third-party repositories (registry/repository, globs allowed) that may run here.",
        ),
    ],
)
def k8s_image_pinned(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    registries = config.strings("registries")
    third_party = [text(e, "image") for e in config.entries("thirdPartyImages")]
    for pod in _pods(args):
        for container in containers(pod.spec):
            reference = text(container.spec, "image")
            if not reference:
                yield f"{container.label} names no image."
                continue
            problem = image_problem(reference, registries, third_party)
            if problem is not None:
                yield f"{container.label}: {problem}."


SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"


def _token_allowed(namespace: str, account: str, allowed: Sequence[Mapping[str, Any]]) -> bool:
    return any(
        text(e, "namespace") == namespace and text(e, "serviceAccount") == account for e in allowed
    )


@resource_policy(
    "k8s-sa-token",
    severity=MEDIUM,
    domain=DOMAIN,
    description="Service account tokens must not be mounted into pods that do not call the "
    "Kubernetes API: automountServiceAccountToken false on ServiceAccounts and pods, unless "
    "the service account is allowlisted with a reason.",
    remediation="Set automountServiceAccountToken: false on the ServiceAccount and the pod "
    "spec; for a controller that watches the API, add its namespace and service account to "
    "k8s-sa-token.allowed in policies/config/<stack>.json.",
    settings=[
        Setting(
            "allowed",
            reasoned_list(
                {"namespace": {"type": "string"}, "serviceAccount": {"type": "string"}},
                ["namespace", "serviceAccount"],
            ),
            [],
            "Service accounts whose pods need an API token.",
        )
    ],
)
def k8s_sa_token(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    allowed = config.entries("allowed")
    namespace = namespace_of(args.props)
    if args.resource_type == SERVICE_ACCOUNT:
        name = text(args.props, "metadata", "name")
        automount = flag(args.props, "automountServiceAccountToken")
        if automount is not False and not _token_allowed(namespace, name, allowed):
            yield f"ServiceAccount {namespace}/{name} mounts its token into every pod."
        return
    for pod in _pods(args):
        account = text(pod.spec, "serviceAccountName") or "default"
        automount = flag(pod.spec, "automountServiceAccountToken")
        if automount is not False and not _token_allowed(namespace, account, allowed):
            yield (
                f"the pod mounts the token of {namespace}/{account} "
                "(automountServiceAccountToken is not false)."
            )


@resource_policy(
    "k8s-no-secret-env",
    severity=MEDIUM,
    domain=DOMAIN,
    description="Secrets must not reach containers as environment variables (secretKeyRef, "
    "envFrom secretRef, or literal values of sensitive names).",
    remediation="Mount the Secret as files (a secret volume, readOnly) and read them at use: "
    "environment variables leak into crash reports, /proc and child processes, and never "
    "follow a rotation.",
    settings=[
        Setting(
            "sensitiveNamePattern",
            {"type": "string", "minLength": 1},
            r"(?i)(PASSWORD|PASSWD|SECRET|SECRET_KEY|API_KEY|PRIVATE_KEY|TOKEN|CREDENTIALS?)$",
            "Regular expression of environment variable names that must not have literal values.",
        )
    ],
)
def k8s_no_secret_env(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    sensitive = re.compile(str(config.value("sensitiveNamePattern")))
    for pod in _pods(args):
        for container in containers(pod.spec):
            for env in maps(container.spec, "env"):
                name = text(env, "name")
                if present(env, "valueFrom", "secretKeyRef"):
                    yield f"{container.label} reads {name} from a Secret (secretKeyRef)."
                elif present(env, "value") and sensitive.search(name):
                    yield f"{container.label} has a literal value for {name}."
            for source in maps(container.spec, "envFrom"):
                if present(source, "secretRef"):
                    secret = text(source, "secretRef", "name")
                    yield f"{container.label} loads Secret {secret} into its environment."


# ---- exposure ------------------------------------------------------------------------------


def _host_covered(host: str, tls_hosts: Sequence[str]) -> bool:
    for pattern in tls_hosts:
        if pattern == host:
            return True
        if pattern.startswith("*.") and host.partition(".")[2] == pattern[2:]:
            return True
    return False


ALB = "alb.ingress.kubernetes.io/"


def _alb_problems(annotations: Mapping[str, str]) -> Iterator[str]:
    listeners = json_document(annotations.get(f"{ALB}listen-ports", ""))
    entries = listeners if isinstance(listeners, list) else []
    protocols = {str(k) for entry in entries if isinstance(entry, dict) for k in entry}
    if "HTTP" in protocols and f"{ALB}ssl-redirect" not in annotations:
        yield "the ALB listens on HTTP without ssl-redirect."


@resource_policy(
    "k8s-ingress-tls",
    severity=MEDIUM,
    domain=DOMAIN,
    description="Ingresses must terminate TLS for every host they route, redirect plain HTTP, "
    "and carry no configuration snippets.",
    remediation="Add spec.tls covering each rule's host (and, for the ALB, the certificate and "
    "ssl-redirect annotations); remove *-snippet annotations.",
)
def k8s_ingress_tls(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    if k8s_kind(args.resource_type) != "Ingress" or k8s_group(args.resource_type) not in (
        "networking.k8s.io",
        "extensions",
    ):
        return
    props = args.props
    tls = maps(props, "spec", "tls")
    if not tls:
        yield "spec.tls is not set: the Ingress serves plain HTTP."
    tls_hosts = [h for entry in tls for h in strings(entry, "hosts")]
    for rule in maps(props, "spec", "rules"):
        host = text(rule, "host")
        if tls and host and not _host_covered(host, tls_hosts):
            yield f"host {host} is not covered by spec.tls."
    annotations = labels_of(props, "metadata", "annotations")
    for key in annotations:
        if key.endswith(("-snippet", "-snippets")):
            yield f"annotation {key} injects raw proxy configuration."
    yield from _alb_problems(annotations)


@resource_policy(
    "k8s-service-exposure",
    severity=MEDIUM,
    domain=DOMAIN,
    description="Services must not be NodePort, use externalIPs, or be LoadBalancer unless "
    "allowlisted: traffic enters through the Ingress.",
    remediation="Use type ClusterIP behind the Ingress; if a load balancer Service is really "
    "needed, add namespace/name to k8s-service-exposure.loadBalancers with the reason.",
    settings=[
        Setting(
            "loadBalancers",
            reasoned_list({"service": {"type": "string"}}, ["service"]),
            [],
            "Services (namespace/name) allowed to be of type LoadBalancer.",
        )
    ],
)
def k8s_service_exposure(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if args.resource_type != "kubernetes:core/v1:Service":
        return
    props = args.props
    kind = text(props, "spec", "type") or "ClusterIP"
    allowed = {text(e, "service") for e in config.entries("loadBalancers")}
    if kind == "NodePort":
        yield "type NodePort opens a port on every node."
    elif kind == "LoadBalancer" and object_ref(props) not in allowed:
        yield f"type LoadBalancer is not allowlisted for {object_ref(props)}."
    if strings(props, "spec", "externalIPs"):
        yield "spec.externalIPs is set."


@resource_policy(
    "k8s-cronjob-hygiene",
    severity=LOW,
    domain=DOMAIN,
    description="CronJobs must not pile up: a starting deadline, concurrencyPolicy Forbid, "
    "restartPolicy OnFailure or Never, and bounded job history.",
    remediation="Set startingDeadlineSeconds, concurrencyPolicy: Forbid, the pod's "
    "restartPolicy, successfulJobsHistoryLimit and failedJobsHistoryLimit.",
    settings=[
        Setting(
            "maximumHistoryLimit",
            {"type": "integer", "minimum": 0, "maximum": 100},
            5,
            "Largest successful/failed jobs history kept.",
        )
    ],
)
def k8s_cronjob_hygiene(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if workload_kind(args.resource_type) != "CronJob":
        return
    spec = get(args.props, "spec") or {}
    deadline = number(spec, "startingDeadlineSeconds")
    if not deadline or deadline <= 0:
        yield "startingDeadlineSeconds is not set: missed runs start late, all at once."
    policy = text(spec, "concurrencyPolicy") or "Allow"
    if policy != "Forbid":
        yield f"concurrencyPolicy is {policy}, not Forbid."
    for pod in _pods(args):
        restart = text(pod.spec, "restartPolicy")
        if restart not in ("OnFailure", "Never"):
            yield f"restartPolicy is {restart or 'unset'}, not OnFailure or Never."
    maximum = config.number("maximumHistoryLimit")
    for field in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        limit = number(spec, field)
        if limit is None or limit > maximum:
            shown = "not set" if limit is None else f"{limit:g}"
            yield f"{field} is {shown}; maximum {maximum}."


@resource_policy(
    "k8s-job-hygiene",
    severity=LOW,
    domain=DOMAIN,
    description="Jobs (and CronJobs' job templates) must bound their retries and run time.",
    remediation="Set backoffLimit and activeDeadlineSeconds on the Job spec.",
)
def k8s_job_hygiene(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    kind = workload_kind(args.resource_type)
    if kind == "Job":
        spec = get(args.props, "spec")
    elif kind == "CronJob":
        spec = get(args.props, "spec", "jobTemplate", "spec")
    else:
        return
    for field in ("backoffLimit", "activeDeadlineSeconds"):
        if number(spec, field) is None:
            yield f"{field} is not set."


NAMESPACED_KINDS = frozenset(
    {
        "ConfigMap",
        "CronJob",
        "DaemonSet",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Ingress",
        "Job",
        "LimitRange",
        "NetworkPolicy",
        "PersistentVolumeClaim",
        "Pod",
        "PodDisruptionBudget",
        "PodTemplate",
        "ReplicaSet",
        "ReplicationController",
        "ResourceQuota",
        "Role",
        "RoleBinding",
        "Secret",
        "Service",
        "ServiceAccount",
        "StatefulSet",
    }
)
BUILTIN_GROUPS = frozenset(
    {
        "core",
        "apps",
        "batch",
        "extensions",
        "autoscaling",
        "policy",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
    }
)


@resource_policy(
    "k8s-no-default-namespace",
    severity=LOW,
    domain=DOMAIN,
    description="Namespaced objects must live in a namespace of their own, not 'default'.",
    remediation="Set metadata.namespace to the component's namespace (created with "
    "components.lib.kube.namespaces.namespace, which labels it for Pod Security).",
)
def k8s_no_default_namespace(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    kind = k8s_kind(args.resource_type)
    if kind not in NAMESPACED_KINDS or k8s_group(args.resource_type) not in BUILTIN_GROUPS:
        return
    if namespace_of(args.props) == "default":
        yield f"{kind} {object_ref(args.props)} is in the default namespace."


HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


@resource_policy(
    "k8s-no-helm-release",
    severity=MEDIUM,
    domain=DOMAIN,
    description="Third-party charts must be installed with helm.v4.Chart, not helm.v3.Release: "
    "a Release installs its objects inside one resource, so no policy sees them. A chart whose "
    "install depends on hooks (which helm.v4.Chart never runs) is the exception the "
    "configuration names.",
    remediation="Replace the kubernetes.helm.v3.Release with a kubernetes.helm.v4.Chart (same "
    "chart, version and values); its rendered objects are then registered, previewed and "
    "checked one by one. If the chart needs its hooks, list it under releaseAllowed with why.",
    settings=[
        Setting(
            "releaseAllowed",
            reasoned_list({"chart": {"type": "string"}}, ["chart"]),
            [],
            "Charts whose install runs hooks (a TLS Secret made by a pre-install Job, say) and "
            "so must be a helm.v3.Release.",
        )
    ],
)
def k8s_no_helm_release(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if args.resource_type == HELM_RELEASE:
        chart = text(args.props, "chart") or "<chart>"
        if chart in {text(e, "chart") for e in config.entries("releaseAllowed")}:
            return
        yield f"Helm release of {chart} hides its workloads from the policy pack."
