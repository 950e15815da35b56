"""Translation between this project's data and the Analyzer protocol's messages.

Captured resources become ``AnalyzeRequest`` and ``AnalyzerResource`` messages with their
values marshalled as the engine marshals them; ``GetAnalyzerInfo``'s answer becomes an
``AnalyzerInfo``; a reconciled configuration becomes a ``ConfigureAnalyzerRequest``. Kept in one
place so the session and the check speak of resources and policies, not of protobuf.

* Property values travel as the engine marshals them: secrets as the signature object
  (``{"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": ...}``),
  unknowns as the unknown sentinel string, keys starting with ``__`` left out.
* Every registered resource is a subject (the stack, components, providers and custom
  resources alike, as the step generator does), sent with its provider's type, name, URN and
  inputs.

Offline differences: the plan keeps secret values masked (``[secret]``), so a policy sees that
text as the secret's value; unknowns are ``[unknown]`` in the plan and travel as the sentinel.
Inputs are what the program registered (no provider ``Check`` defaults), outputs are the mock
provider's. Stack tags are not known offline and are not sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format, struct_pb2  # type: ignore[import-untyped]
from pulumi.runtime import rpc
from pulumi.runtime.proto import analyzer_pb2

from tools.analyzer.config import LEVELS, AnalyzerInfo, PolicyConfig, PolicyInfo
from tools.analyzer.pack import PackProject
from tools.analyzer.report import SEVERITIES
from tools.mocks import MASK, UNKNOWN, CapturedResource
from tools.plan import STACK_TYPE, Plan

SECRET_SIG = rpc._special_sig_key
SECRET_VALUE = rpc._special_secret_sig
UNKNOWN_SENTINEL = rpc.UNKNOWN
"""The engine marshals every unknown value as this string."""

_LEVEL_TO_PROTO = {
    "advisory": analyzer_pb2.ADVISORY,
    "mandatory": analyzer_pb2.MANDATORY,
    "remediate": analyzer_pb2.REMEDIATE,
    "disabled": analyzer_pb2.DISABLED,
}
_PROTO_TO_LEVEL = {number: name for name, number in _LEVEL_TO_PROTO.items()}
_POLICY_TYPES = {
    analyzer_pb2.POLICY_TYPE_RESOURCE: "resource",
    analyzer_pb2.POLICY_TYPE_STACK: "stack",
}


# --- values --------------------------------------------------------------------------------


def encode_value(value: Any) -> Any:
    """A captured (masked) value as the engine would marshal it for an analyzer."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE:
            return {SECRET_SIG: SECRET_VALUE, "value": encode_value(value.get("value"))}
        if SECRET_SIG in value:
            return dict(value)  # an asset, archive or resource reference: already in wire form
        return {str(k): encode_value(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    if value == MASK:
        return {SECRET_SIG: SECRET_VALUE, "value": MASK}
    if value == UNKNOWN:
        return UNKNOWN_SENTINEL
    return value


def encode_properties(properties: Mapping[str, Any]) -> struct_pb2.Struct:
    return plain_struct(encode_value(dict(properties)))


def plain_struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    """``values`` as they are (already in wire form) in a protobuf ``Struct``."""
    struct = struct_pb2.Struct()
    struct.update(dict(values))
    return struct


# --- resources -----------------------------------------------------------------------------


@dataclass
class Subject:
    """One resource as the engine knows it when it calls the analyzer."""

    urn: str
    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    parent: str | None = None
    dependencies: list[str] = field(default_factory=list)
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    protect: bool = False
    provider: str | None = None


def plan_subjects(plan: Plan) -> list[Subject]:
    """The stack itself, then every resource of ``plan`` in registration order."""
    stack = Subject(
        urn=plan.stack_urn,
        type=STACK_TYPE,
        name=urn_name(plan.stack_urn),
        inputs={},
        outputs=dict(plan.outputs),
    )
    return [stack, *(resource_subject(r) for r in plan.resources)]


def resource_subject(resource: CapturedResource) -> Subject:
    return Subject(
        urn=resource.urn,
        type=resource.type,
        name=resource.name,
        inputs=dict(resource.inputs),
        outputs={**resource.inputs, **resource.outputs},
        parent=resource.parent,
        dependencies=list(resource.dependencies),
        property_dependencies={k: list(v) for k, v in resource.property_dependencies.items()},
        protect=resource.protect,
        provider=resource.provider,
    )


def urn_name(urn: str) -> str:
    return urn.split("::", 3)[-1]


def urn_type(urn: str) -> str:
    parts = urn.split("::")
    return parts[2].rsplit("$", 1)[-1] if len(parts) > 3 else ""


def provider_urn(subject: Subject) -> str:
    """The URN of the subject's provider (its reference without the ID); empty when none."""
    return (subject.provider or "").rsplit("::", 1)[0]


def _resource_fields(subject: Subject, by_urn: Mapping[str, Subject]) -> dict[str, Any]:
    """What ``AnalyzeRequest`` and ``AnalyzerResource`` both say of a resource."""
    return {
        "type": subject.type,
        "urn": subject.urn,
        "name": subject.name,
        "options": analyzer_pb2.AnalyzerResourceOptions(
            protect=subject.protect,
            customTimeouts=analyzer_pb2.AnalyzerResourceOptions.CustomTimeouts(),
            parent=subject.parent or "",
        ),
        "provider": _provider(subject, by_urn),
    }


def _provider(subject: Subject, by_urn: Mapping[str, Subject]) -> Any:
    if not subject.provider:
        return None
    provider = by_urn.get(provider_urn(subject))
    if provider is None:
        return None
    return analyzer_pb2.AnalyzerProviderResource(
        type=provider.type,
        properties=encode_properties(provider.inputs),
        urn=provider.urn,
        name=provider.name,
    )


def analyze_request(subject: Subject, by_urn: Mapping[str, Subject]) -> Any:
    """``Remediate`` and ``Analyze``'s request: the resource with its inputs; ``by_urn`` has
    its provider."""
    return analyzer_pb2.AnalyzeRequest(
        properties=encode_properties(subject.inputs), **_resource_fields(subject, by_urn)
    )


def analyzer_resource(
    subject: Subject, by_urn: Mapping[str, Subject], outputs: Mapping[str, Any]
) -> Any:
    """The resource as ``AnalyzeStack`` sends it: ``outputs`` (in wire form) with its parent
    and dependencies."""
    return analyzer_pb2.AnalyzerResource(
        properties=plain_struct(outputs),
        parent=subject.parent or "",
        dependencies=subject.dependencies,
        propertyDependencies={
            key: analyzer_pb2.AnalyzerPropertyDependencies(urns=urns)
            for key, urns in subject.property_dependencies.items()
            if urns
        },
        **_resource_fields(subject, by_urn),
    )


# --- policies and their configuration ------------------------------------------------------


def level(number: analyzer_pb2.EnforcementLevel.ValueType, default: str | None = None) -> str:
    """An ``EnforcementLevel`` number's name; for a number the protocol lacks, ``default``
    (``KeyError`` when there is none)."""
    if default is None:
        return _PROTO_TO_LEVEL[number]
    return _PROTO_TO_LEVEL.get(number, default)


def severity(number: int) -> str:
    return SEVERITIES[number] if 0 <= number < len(SEVERITIES) else "unspecified"


def analyzer_info(response: Any, project: PackProject) -> AnalyzerInfo:
    """``GetAnalyzerInfo``'s answer; the version in ``PulumiPolicy.yaml``, when set, wins."""
    policies = []
    for policy in response.policies:
        schema: dict[str, Any] | None = None
        if response.supportsConfig:
            properties = json_format.MessageToDict(policy.configSchema.properties)
            properties["enforcementLevel"] = {"type": "string", "enum": list(LEVELS)}
            schema = {"properties": properties, "required": list(policy.configSchema.required)}
        policies.append(
            PolicyInfo(
                name=policy.name,
                description=policy.description,
                enforcement_level=level(policy.enforcementLevel),
                severity=severity(policy.severity),
                policy_type=_POLICY_TYPES.get(policy.policy_type, "unknown"),
                display_name=policy.displayName,
                config_schema=schema,
            )
        )
    initial = {
        name: PolicyConfig(
            level(value.enforcementLevel),
            json_format.MessageToDict(value.properties) or None,
        )
        for name, value in response.initialConfig.items()
    }
    return AnalyzerInfo(
        name=response.name,
        version=project.version or response.version,
        supports_config=response.supportsConfig,
        policies=sorted(policies, key=lambda p: p.name),
        initial_config=initial,
        display_name=response.displayName,
        description=response.description,
    )


def configure_request(config: Mapping[str, PolicyConfig]) -> Any:
    """``Configure``'s request: every policy's level and properties."""
    return analyzer_pb2.ConfigureAnalyzerRequest(
        policyConfig={
            name: analyzer_pb2.PolicyConfig(
                enforcementLevel=_LEVEL_TO_PROTO[str(entry.enforcement_level)],
                properties=plain_struct(entry.properties or {}),
            )
            for name, entry in config.items()
        }
    )
