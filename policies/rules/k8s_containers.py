"""Container hygiene beyond Pod Security, over every workload's pods: a read-only root
filesystem, resource requests and limits, distinct liveness and readiness probes, images pinned
and from allowed registries, no API token where the API is not called, no secrets in the
environment.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import ResourceValidationArgs

from .kube import containers, namespace_of, object_ref, pods_of, workload_kind
from .policy_config import Config, Setting, reasoned_list
from .registry import HIGH, MEDIUM, resource_policy
from .resources import flag, get, maps, matches_any, plain, present, text

DOMAIN = "kubernetes"


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
    for pod in pods_of(args):
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
    for pod in pods_of(args):
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
    for pod in pods_of(args):
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
    for pod in pods_of(args):
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
    for pod in pods_of(args):
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
    for pod in pods_of(args):
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
