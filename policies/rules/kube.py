"""Kubernetes objects as the rules read them: kinds and API groups, the pod template of every
built-in workload kind, containers (init and ephemeral included), names, labels and selectors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from pulumi_policy import ResourceValidationArgs

from .resources import get, is_map, maps, strings, text
from .tokens import type_parts

WORKLOAD_GROUPS: Final = frozenset({"core", "apps", "batch", "extensions"})
"""API groups whose kinds below carry pod templates (custom resources are never matched)."""

POD_SPEC_PATHS: Final[Mapping[str, tuple[str, ...]]] = {
    "Pod": (),
    "PodTemplate": ("template",),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
"""Where each workload kind keeps its pod (``metadata`` and ``spec``)."""


def k8s_kind(resource_type: str) -> str | None:
    """The Kubernetes kind of a built-in object type (``kubernetes:apps/v1:Deployment`` ->
    ``Deployment``); ``None`` for other packages, Helm/YAML components and ``*Patch`` types."""
    package, module, name = type_parts(resource_type)
    if package != "kubernetes" or "/" not in module or name.endswith(("Patch", "List")):
        return None
    return name


def k8s_group(resource_type: str) -> str:
    """The API group (``core`` for the legacy group)."""
    return type_parts(resource_type)[1].split("/")[0]


def workload_kind(resource_type: str) -> str | None:
    """The kind, if ``resource_type`` is a built-in workload that carries a pod template."""
    kind = k8s_kind(resource_type)
    if kind in POD_SPEC_PATHS and k8s_group(resource_type) in WORKLOAD_GROUPS:
        return kind
    return None


@dataclass(frozen=True)
class PodTemplate:
    """One pod of a workload: its metadata (labels, annotations) and spec."""

    metadata: Mapping[str, Any]
    spec: Mapping[str, Any]


def pod_templates(resource_type: str, props: Mapping[str, Any]) -> list[PodTemplate]:
    """Every pod template of a workload object (Deployment, StatefulSet, DaemonSet, ReplicaSet,
    Job, CronJob, Pod, PodTemplate); ``[]`` for anything else or a template without spec."""
    kind = workload_kind(resource_type)
    if kind is None:
        return []
    holder = get(props, *POD_SPEC_PATHS[kind]) if POD_SPEC_PATHS[kind] else props
    spec = get(holder, "spec")
    if not is_map(spec):
        return []
    metadata = get(holder, "metadata")
    return [PodTemplate(metadata if is_map(metadata) else {}, spec)]


def pods_of(args: ResourceValidationArgs) -> list[PodTemplate]:
    """The pod templates of the object a resource policy checks (see ``pod_templates``)."""
    return pod_templates(args.resource_type, args.props)


def pod_specs(resource_type: str, props: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every pod spec of a workload object (see ``pod_templates``)."""
    return [template.spec for template in pod_templates(resource_type, props)]


ContainerKind = Literal["containers", "initContainers", "ephemeralContainers"]
CONTAINER_KINDS: Final[tuple[ContainerKind, ...]] = (
    "containers",
    "initContainers",
    "ephemeralContainers",
)


@dataclass(frozen=True)
class Container:
    kind: ContainerKind
    spec: Mapping[str, Any]

    @property
    def name(self) -> str:
        return text(self.spec, "name") or "<unnamed>"

    @property
    def label(self) -> str:
        """How messages name it: ``container "web"``, ``init container "migrate"``."""
        prefix = {"containers": "container", "initContainers": "init container"}.get(
            self.kind, "ephemeral container"
        )
        return f'{prefix} "{self.name}"'

    @property
    def security(self) -> Mapping[str, Any]:
        found = get(self.spec, "securityContext")
        return found if is_map(found) else {}


def containers(
    spec: Mapping[str, Any], kinds: Sequence[ContainerKind] = CONTAINER_KINDS
) -> list[Container]:
    """The containers of a pod spec, init and ephemeral containers included by default."""
    return [Container(kind, c) for kind in kinds for c in maps(spec, kind)]


def pod_security(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    found = get(spec, "securityContext")
    return found if is_map(found) else {}


def object_ref(props: Mapping[str, Any]) -> str:
    """``namespace/name`` of a Kubernetes object (``name`` when cluster-scoped)."""
    name = text(props, "metadata", "name") or "<generated name>"
    namespace = text(props, "metadata", "namespace")
    return f"{namespace}/{name}" if namespace else name


def namespace_of(props: Mapping[str, Any]) -> str:
    """The object's namespace; ``default`` when it does not set one."""
    return text(props, "metadata", "namespace") or "default"


def labels_of(value: Any, *path: str) -> dict[str, str]:
    found = get(value, *path)
    if not is_map(found):
        return {}
    return {str(k): str(v) for k, v in found.items()}


def selector_matches(selector: Any, labels: Mapping[str, str]) -> bool:
    """Whether a Kubernetes label selector selects ``labels``: ``matchLabels`` and every
    ``matchExpressions`` operator. An empty selector selects everything; a missing (``None``)
    one, nothing."""
    if not is_map(selector):
        return False
    for key, value in labels_of(selector, "matchLabels").items():
        if labels.get(key) != value:
            return False
    return all(_expression_matches(e, labels) for e in maps(selector, "matchExpressions"))


def _expression_matches(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key = text(expression, "key")
    operator = text(expression, "operator")
    values = strings(expression, "values")
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    return False
