"""Declaring a policy: ``resource_policy`` / ``stack_policy`` record its id, severity,
description, remediation and settings once, and build the SDK's policy object around a plain
check function.

* The enforcement level is not an argument: ``enforcement_for`` derives it from the severity
  (critical and high block a deployment, medium and low advise), so the rule lives in one place.
* A check is ``(args, config) -> iterable of messages`` (stack checks yield ``(message,
  urn)``); the decorator reports each one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from .policy_config import Config, Setting

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

Violation = tuple[str, str | None]
"""What a stack check yields: the message and the URN of the resource it is about."""

ResourceCheck = Callable[[ResourceValidationArgs, Config], Iterable[str]]
StackCheck = Callable[[StackValidationArgs, Config], Iterable[Violation]]


def _register(spec: PolicySpec, policy: Policy) -> None:
    if spec.id in REGISTRY:
        raise ValueError(f"policy {spec.id!r} is declared twice")
    if not spec.description or not spec.remediation:
        raise ValueError(f"policy {spec.id!r} needs a description and remediation steps")
    REGISTRY[spec.id] = policy
    SPECS[spec.id] = spec


def _policy_fields(spec: PolicySpec, tags: list[str]) -> dict[str, Any]:
    """What a resource and a stack policy declare alike, from their spec."""
    return {
        "name": spec.id,
        "description": spec.description,
        "enforcement_level": spec.enforcement,
        "config_schema": spec.config_schema(),
        "severity": spec.severity,
        "tags": tags,
        "remediation_steps": spec.remediation,
    }


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

        policy = ResourceValidationPolicy(validate=validate, **_policy_fields(spec, tags=[domain]))
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
            validate=validate, **_policy_fields(spec, tags=[domain, "stack"])
        )
        _register(spec, policy)
        return policy

    return declare
