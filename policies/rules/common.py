"""What every rule module shares: the policy registry, configuration read with explicit
fallbacks, property access that tolerates missing keys and understands unknowns, and the type
and pod-spec helpers the AWS and Kubernetes rules are written with.

Conventions the rule modules follow:

* A policy is declared once, with ``resource_policy`` or ``stack_policy``: its id, severity,
  description, remediation steps and configuration settings. Its enforcement level is not an
  argument: ``enforcement_for`` derives it from the severity (critical and high block a
  deployment, medium and low advise), so the rule is applied in one place.
* A check is a plain function ``(args, config) -> iterable of messages`` (stack checks yield
  ``(message, urn)``); the decorator turns it into the SDK's policy object and reports each
  message.
* Resource checks read the resource's **inputs** (``args.props``), stack checks the
  resources' **outputs**. Both arrive wrapped in the SDK's unknown-checking proxy: reading a
  value that is unknown during preview raises ``UnknownValueError``, which the SDK reports as
  an advisory "can't run policy during preview" diagnostic. Checks let it propagate when the
  value decides the outcome, and use ``present`` when only the presence of a value matters (an
  unknown ARN is still an ARN).
* Nothing assumes a key exists: ``get`` walks nested maps and lists and returns a default for
  anything missing or of the wrong shape.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
import ipaddress
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

# ---- severity and enforcement --------------------------------------------------------------

CRITICAL: Final = Severity.CRITICAL
HIGH: Final = Severity.HIGH
MEDIUM: Final = Severity.MEDIUM
LOW: Final = Severity.LOW

BLOCKING_SEVERITIES: Final = frozenset({Severity.CRITICAL, Severity.HIGH})


def enforcement_for(severity: Severity) -> EnforcementLevel:
    """The one rule of the pack: critical and high findings block a deployment (mandatory),
    medium and low ones are reported (advisory)."""
    return (
        EnforcementLevel.MANDATORY if severity in BLOCKING_SEVERITIES else EnforcementLevel.ADVISORY
    )


# ---- configuration -------------------------------------------------------------------------


class PolicyConfigError(ValueError):
    """A policy's configuration has a value of the wrong type (the CLI validates the schema
    first, so this only happens when the pack is driven without it)."""


@dataclass(frozen=True)
class Setting:
    """One configuration property of a policy: its JSON schema and the value used when the
    configuration does not set it. The SDK applies no schema defaults, so ``Config`` falls back
    to ``default`` itself; the same default is put in the schema for the CLI to show."""

    name: str
    schema: Mapping[str, Any]
    default: Any
    description: str

    def json_schema(self) -> dict[str, Any]:
        return {**self.schema, "description": self.description, "default": self.default}


def reasoned_list(item_properties: Mapping[str, Any], required: Sequence[str]) -> dict[str, Any]:
    """Schema of an allowlist: every entry names what it exempts and carries a ``reason``."""
    return {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {**item_properties, "reason": {"type": "string", "minLength": 1}},
            "required": [*required, "reason"],
            "additionalProperties": False,
        },
    }


BOOL: Final[Mapping[str, Any]] = {"type": "boolean"}
STRINGS: Final[Mapping[str, Any]] = {"type": "array", "items": {"type": "string"}}

CUSTOMER_KEY = Setting(
    "requireCustomerManagedKey",
    BOOL,
    True,
    "Encryption must use a customer-managed KMS key (its id or ARN set), not an AWS-managed one.",
)

PRODUCTION = Setting(
    "production",
    BOOL,
    False,
    "The stack is a production stack: rules that only production must meet apply.",
)


_TYPE_CHECKS: Final[Mapping[str, Callable[[Any], bool]]] = {
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v == int(v),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, Sequence) and not isinstance(v, str),
    "object": lambda v: isinstance(v, Mapping),
}


class Config:
    """A policy's configuration properties, read with explicit fallbacks to the declared
    defaults (what ``args.get_config()`` returns is only what the CLI sent)."""

    def __init__(self, raw: Mapping[str, Any] | None, settings: Sequence[Setting]) -> None:
        self._raw = dict(raw or {})
        self._settings = {s.name: s for s in settings}

    def value(self, name: str) -> Any:
        setting = self._settings[name]  # KeyError: the policy did not declare the setting
        value = self._raw.get(name)
        if value is None:
            return setting.default
        kind = str(setting.schema.get("type", ""))
        check = _TYPE_CHECKS.get(kind)
        if check is not None and not check(value):
            raise PolicyConfigError(f"config property {name!r} must be of type {kind}: {value!r}")
        if kind == "integer":
            return int(value)  # the protocol carries every number as a double
        return value

    def flag(self, name: str) -> bool:
        return bool(self.value(name))

    def number(self, name: str) -> int:
        return int(self.value(name))

    def strings(self, name: str) -> list[str]:
        return [str(v) for v in self.value(name)]

    def entries(self, name: str) -> list[Mapping[str, Any]]:
        """An allowlist: the entries that are objects (malformed ones are ignored)."""
        return [e for e in self.value(name) if isinstance(e, Mapping)]


# ---- the registry --------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicySpec:
    """Everything declared about one policy, besides its check."""

    id: str
    kind: Literal["resource", "stack"]
    severity: Severity
    description: str
    remediation: str
    settings: tuple[Setting, ...]
    domain: str

    @property
    def enforcement(self) -> EnforcementLevel:
        return enforcement_for(self.severity)

    def config_schema(self) -> PolicyConfigSchema | None:
        if not self.settings:
            return None
        return PolicyConfigSchema({s.name: s.json_schema() for s in self.settings})


REGISTRY: dict[str, Policy] = {}
SPECS: dict[str, PolicySpec] = {}

ResourceCheck = Callable[[ResourceValidationArgs, Config], Iterable[str]]
StackCheck = Callable[[StackValidationArgs, Config], Iterable[tuple[str, str | None]]]


def _register(spec: PolicySpec, policy: Policy) -> None:
    if spec.id in REGISTRY:
        raise ValueError(f"policy {spec.id!r} is declared twice")
    if not spec.description or not spec.remediation:
        raise ValueError(f"policy {spec.id!r} needs a description and remediation steps")
    REGISTRY[spec.id] = policy
    SPECS[spec.id] = spec


def resource_policy(
    policy_id: str,
    *,
    severity: Severity,
    description: str,
    remediation: str,
    domain: str,
    settings: Sequence[Setting] = (),
) -> Callable[[ResourceCheck], ResourceValidationPolicy]:
    """Declare a resource policy; the decorated check yields one message per violation."""
    spec = PolicySpec(
        policy_id, "resource", severity, description, remediation, tuple(settings), domain
    )

    def declare(check: ResourceCheck) -> ResourceValidationPolicy:
        def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
            config = Config(args.get_config(), spec.settings)
            for message in check(args, config):
                report(message, None)

        policy = ResourceValidationPolicy(
            name=policy_id,
            description=description,
            validate=validate,
            enforcement_level=spec.enforcement,
            config_schema=spec.config_schema(),
            severity=severity,
            tags=[domain],
            remediation_steps=remediation,
        )
        _register(spec, policy)
        return policy

    return declare


def stack_policy(
    policy_id: str,
    *,
    severity: Severity,
    description: str,
    remediation: str,
    domain: str,
    settings: Sequence[Setting] = (),
) -> Callable[[StackCheck], StackValidationPolicy]:
    """Declare a stack policy; the decorated check yields ``(message, urn)`` per violation."""
    spec = PolicySpec(
        policy_id, "stack", severity, description, remediation, tuple(settings), domain
    )

    def declare(check: StackCheck) -> StackValidationPolicy:
        def validate(args: StackValidationArgs, report: ReportViolation) -> None:
            config = Config(args.get_config(), spec.settings)
            for message, urn in check(args, config):
                report(message, urn)

        policy = StackValidationPolicy(
            name=policy_id,
            description=description,
            validate=validate,
            enforcement_level=spec.enforcement,
            config_schema=spec.config_schema(),
            severity=severity,
            tags=[domain, "stack"],
            remediation_steps=remediation,
        )
        _register(spec, policy)
        return policy

    return declare


# ---- property access -----------------------------------------------------------------------

_MISSING: Final = object()


def is_map(value: Any) -> bool:
    return isinstance(value, Mapping)


def is_list(value: Any) -> bool:
    """A JSON array (the SDK's proxies are ``Sequence``s, not ``list``s)."""
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def get(value: Any, *path: str | int, default: Any = None) -> Any:
    """``value[path[0]][path[1]]...``, or ``default`` when a step is missing, ``None`` or of the
    wrong shape. An unknown value on the way raises ``UnknownValueError`` (the proxy's)."""
    current = value
    for step in path:
        if isinstance(step, str):
            if not is_map(current) or step not in _keys(current):
                return default
        elif not is_list(current) or not -len(current) <= step < len(current):
            return default
        current = current[step]
        if current is None:
            return default
    return current


def _keys(mapping: Mapping[str, Any]) -> Iterable[str]:
    # ``key in proxy`` would read the value (and raise on unknowns); iterating keys does not.
    return list(iter(mapping))


def known(value: Any, *path: str | int, default: Any = None) -> Any:
    """``get``, with an unknown value read as ``default``: for values that only identify or
    match resources (ids, names), where an unknown must not stop a check."""
    try:
        return get(value, *path, default=default)
    except UnknownValueError:
        return default


T = TypeVar("T")
V = TypeVar("V")


def each(subjects: Iterable[T], check: Callable[[T], Iterable[V]]) -> Iterator[V]:
    """``check`` every subject of a stack policy; a subject whose deciding value is unknown
    (during preview) does not stop the others: the first ``UnknownValueError`` is raised
    after all subjects were checked, and the SDK reports it as "can't run during preview"
    next to the violations found."""
    pending: UnknownValueError | None = None
    for subject in subjects:
        try:
            found = list(check(subject))
        except UnknownValueError as error:
            pending = pending or error
            continue
        yield from found
    if pending is not None:
        raise pending


def has_key(value: Any, key: str) -> bool:
    """Whether the map has ``key`` at all (without reading its value, which may be unknown)."""
    return is_map(value) and key in _keys(value)


def plain(value: Any) -> Any:
    """A plain ``dict``/``list`` copy of a (proxied) value, for comparing whole blocks."""
    if is_map(value):
        return {str(k): plain(value[k]) for k in _keys(value)}
    if is_list(value):
        return [plain(item) for item in value]
    return value


def present(value: Any, *path: str | int) -> bool:
    """Whether a non-empty value is set at ``path``: an unknown counts as set (it will be)."""
    try:
        found = get(value, *path, default=_MISSING)
    except UnknownValueError:
        return True
    if found is _MISSING or found == "" or (is_list(found) and len(found) == 0):
        return False
    return not (is_map(found) and len(found) == 0)


def maps(value: Any, *path: str | int) -> list[Mapping[str, Any]]:
    """The list at ``path`` (or the single map, for schemas that have both shapes), keeping
    only its map entries."""
    found = get(value, *path)
    if is_map(found):
        return [found]
    if is_list(found):
        return [item for item in found if is_map(item)]
    return []


def strings(value: Any, *path: str | int) -> list[str]:
    """The list of strings at ``path`` (a single string counts as a list of one)."""
    found = get(value, *path)
    if isinstance(found, str):
        return [found]
    if is_list(found):
        return [item for item in found if isinstance(item, str)]
    return []


def as_bool(value: Any) -> bool | None:
    """A boolean, also from the ``"true"``/``"false"`` strings some AWS schemas use."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def flag(value: Any, *path: str | int) -> bool | None:
    """The boolean at ``path``; ``None`` when it is not set (or not a boolean)."""
    return as_bool(get(value, *path))


def number(value: Any, *path: str | int) -> float | None:
    """The number at ``path`` (protobuf carries every number as a double); ``None`` if unset."""
    found = get(value, *path)
    if isinstance(found, bool):
        return None
    if isinstance(found, int | float):
        return float(found)
    if isinstance(found, str):
        try:
            return float(found)
        except ValueError:
            return None
    return None


def text(value: Any, *path: str | int) -> str:
    """The string at ``path``, or ``""``."""
    found = get(value, *path)
    return found if isinstance(found, str) else ""


def is_world_cidr(cidr: str) -> bool:
    """``0.0.0.0/0``, ``::/0`` or any other spelling of "every address"."""
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen == 0
    except ValueError:
        return False


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def json_document(value: Any) -> Any:
    """A JSON document given either as a string (IAM/bucket policies, provider config) or
    already as data; ``None`` when it does not parse."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


# ---- type tokens ---------------------------------------------------------------------------


def type_parts(resource_type: str) -> tuple[str, str, str]:
    """``"aws:s3/bucket:Bucket"`` -> ``("aws", "s3/bucket", "Bucket")``."""
    parts = resource_type.split(":")
    if len(parts) != 3:
        return ("", "", "")
    return (parts[0], parts[1], parts[2])


def s3_kind(resource_type: str) -> str | None:
    """The S3 resource kind with the v7 spellings unified: ``aws:s3/bucketV2:BucketV2`` and
    ``aws:s3/bucket:Bucket`` are both ``"bucket"``, ``…/bucketVersioningV2:…`` and
    ``…/bucketVersioning:…`` both ``"bucketVersioning"``; ``None`` for other types."""
    package, module, _ = type_parts(resource_type)
    if package != "aws" or not module.startswith("s3/"):
        return None
    kind = module.removeprefix("s3/")
    return kind.removesuffix("V2")


def is_bucket(resource_type: str) -> bool:
    """``aws:s3/bucket:Bucket`` or ``aws:s3/bucketV2:BucketV2`` (aliases of each other in v7)."""
    return s3_kind(resource_type) == "bucket"


def is_s3(resource_type: str, kind: str) -> bool:
    """Whether ``resource_type`` is the S3 ``kind`` (e.g. ``"bucketVersioning"``), in either
    of its spellings."""
    return s3_kind(resource_type) == kind


@functools.cache
def aws_taggable(resource_type: str) -> bool | None:
    """Whether an AWS resource type takes ``tags``, from the installed pulumi-aws SDK's own
    argument classes; ``None`` when the SDK (or the type) is not available."""
    package, module, name = type_parts(resource_type)
    if package != "aws" or not module:
        return None
    try:
        sdk = importlib.import_module(f"pulumi_aws.{module.split('/')[0]}")
    except ImportError:
        return None
    args_class = getattr(sdk, f"{name}Args", None)
    if args_class is None:
        return None
    return isinstance(getattr(args_class, "tags", None), property)


# ---- Kubernetes ----------------------------------------------------------------------------

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

LONG_RUNNING: Final = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"})


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


# ---- stack resources -----------------------------------------------------------------------


def of_kind(
    resources: Iterable[PolicyResource], predicate: Callable[[str], bool]
) -> Iterator[PolicyResource]:
    return (r for r in resources if predicate(r.resource_type))


def referenced(resource: PolicyResource, prop: str) -> list[PolicyResource]:
    """The resources ``prop`` of ``resource`` was computed from (its property dependencies)."""
    return list(resource.property_dependencies.get(prop, []))


def refers_to(
    resource: PolicyResource, prop: str, target: PolicyResource, target_ids: Iterable[str]
) -> bool:
    """Whether ``resource.prop`` points at ``target``: through the property's dependencies,
    or (when those are not recorded) by value, against the target's ids and names."""
    if any(dep.urn == target.urn for dep in referenced(resource, prop)):
        return True
    value = known(resource.props, prop)
    return isinstance(value, str) and value != "" and value in set(target_ids)
