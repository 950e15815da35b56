"""The pack's policies as it announces them, and their configuration as the engine reconciles it.

``--policy-pack-config`` files are read and checked here, then merged with each policy's
declared level, its schema's defaults and the pack's initial config, and validated against each
policy's schema, the way the Pulumi engine does before it sends ``Configure``. Kept apart from
the protocol so these rules read (and are tested) as plain data in, data or errors out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from tools.analyzer.errors import PolicyInputError

LEVELS = ("advisory", "mandatory", "remediate", "disabled")


@dataclass(frozen=True)
class PolicyConfig:
    """One policy's configuration: an enforcement level and properties (either may be absent)."""

    enforcement_level: str | None = None
    properties: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"enforcementLevel": self.enforcement_level, "properties": self.properties or {}}


def parse_policy_config(document: Any, source: str) -> dict[str, PolicyConfig]:
    """The ``--policy-pack-config`` format: each key a level, or an object with an optional
    ``enforcementLevel`` and properties; ``all`` sets every policy's level."""
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise PolicyInputError([f"error: {source}: expected a JSON object"])
    result: dict[str, PolicyConfig] = {}
    problems: list[str] = []
    for key, value in document.items():
        level: str | None = None
        properties: dict[str, Any] | None = None
        if isinstance(value, str):
            level = value
        elif isinstance(value, dict):
            rest = dict(value)
            if "enforcementLevel" in rest:
                level = rest.pop("enforcementLevel")
                if not isinstance(level, str):
                    problems.append(f"{key}: enforcementLevel: got {level!r}; expected a string")
                    continue
            properties = rest or None
        else:
            problems.append(f"{key}: got {value!r}; expected a level or an object")
            continue
        if level is not None and level not in LEVELS:
            problems.append(f"{key}: got {level!r}; expected one of {', '.join(LEVELS)}")
            continue
        if level is None and not properties:
            continue  # an empty entry configures nothing
        result[str(key)] = PolicyConfig(level, properties)
    if problems:
        raise PolicyInputError(
            [f"error: {source}: {len(problems)} policy config problem(s):"]
            + [f"  - {problem}" for problem in problems]
        )
    return result


def load_policy_config(path: Path) -> dict[str, PolicyConfig]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyInputError(
            [f"error: policy config {path}: cannot read it ({exc.strerror})"]
        ) from None
    if not text.strip():
        return {}
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyInputError([f"error: policy config {path}: not JSON: {exc}"]) from None
    return parse_policy_config(document, str(path))


@dataclass(frozen=True)
class PolicyInfo:
    name: str
    description: str
    enforcement_level: str
    """The level the pack declares (its own default when the policy has none)."""
    severity: str
    policy_type: str
    display_name: str = ""
    config_schema: dict[str, Any] | None = None
    """``{"properties": {...}, "required": [...]}`` as GetAnalyzerInfo returned it."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "displayName": self.display_name,
            "description": self.description,
            "type": self.policy_type,
            "enforcementLevel": self.enforcement_level,
            "severity": self.severity,
            "configSchema": self.config_schema,
        }


@dataclass(frozen=True)
class AnalyzerInfo:
    name: str
    version: str
    supports_config: bool
    policies: list[PolicyInfo]
    initial_config: dict[str, PolicyConfig] = field(default_factory=dict)
    display_name: str = ""
    description: str = ""

    def policy(self, name: str) -> PolicyInfo:
        (found,) = [p for p in self.policies if p.name == name]
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "displayName": self.display_name,
            "description": self.description,
            "supportsConfig": self.supports_config,
            "initialConfig": {k: v.to_json() for k, v in sorted(self.initial_config.items())},
            "policies": [p.to_json() for p in self.policies],
        }


def reconcile_policy_config(
    info: AnalyzerInfo, given: Mapping[str, PolicyConfig]
) -> tuple[dict[str, PolicyConfig], list[str]]:
    """The configuration the engine sends with ``Configure``, and its validation errors.

    Every policy starts at its declared level with its schema's ``default`` values; the pack's
    initial config, then the given config, are applied on top (``all`` first sets every
    policy's level; each entry, ``all`` included, is then set or merged by name). The result is
    validated against each policy's config schema.
    """
    result: dict[str, PolicyConfig] = {}
    for policy in info.policies:
        schema_properties = (policy.config_schema or {}).get("properties") or {}
        defaults = {
            key: schema["default"]
            for key, schema in schema_properties.items()
            if isinstance(schema, dict) and "default" in schema
        }
        result[policy.name] = PolicyConfig(policy.enforcement_level, defaults or None)
    for overlay in (info.initial_config, given):
        if overlay:
            result = _apply_config(result, overlay)
    errors: list[str] = []
    for policy in info.policies:
        if policy.config_schema is None:
            continue
        schema: dict[str, Any] = {"type": "object"}
        if policy.config_schema.get("properties"):
            schema["properties"] = policy.config_schema["properties"]
        if policy.config_schema.get("required"):
            schema["required"] = policy.config_schema["required"]
        properties = result[policy.name].properties or {}
        validator = jsonschema.Draft7Validator(schema)
        for error in sorted(validator.iter_errors(properties), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in error.path)
            errors.append(f"{policy.name}: {where + ': ' if where else ''}{error.message}")
    return result, errors


def _apply_config(
    result: dict[str, PolicyConfig], overlay: Mapping[str, PolicyConfig]
) -> dict[str, PolicyConfig]:
    result = dict(result)
    every = overlay.get("all")
    if every is not None and every.enforcement_level in LEVELS:
        result = {k: PolicyConfig(every.enforcement_level, v.properties) for k, v in result.items()}
    for name, given in overlay.items():
        current = result.get(name, PolicyConfig())
        level = current.enforcement_level
        if given.enforcement_level in LEVELS:
            level = given.enforcement_level
        properties = current.properties
        if given.properties:
            properties = {**(properties or {}), **given.properties}
        result[name] = PolicyConfig(level, properties)
    return result


def effective_config(
    info: AnalyzerInfo, given: Mapping[str, PolicyConfig], config_file: Path | None
) -> dict[str, PolicyConfig]:
    """What to send with ``Configure`` (nothing when the pack takes no config), or
    ``PolicyInputError`` for a config the pack does not take or its schemas reject."""
    if not info.supports_config:
        if config_file is not None:
            raise PolicyInputError(
                [f"error: policy pack {info.name} does not support config ({config_file})"]
            )
        return {}
    effective, errors = reconcile_policy_config(info, given)
    if errors:
        raise PolicyInputError(
            [f"validating policy config: {info.name} {info.version}  {error}" for error in errors]
        )
    invalid = [
        f"error: policy config: {name}: invalid enforcement level {config.enforcement_level!r}"
        for name, config in sorted(effective.items())
        if config.enforcement_level not in LEVELS
    ]
    if invalid:
        raise PolicyInputError(invalid)
    return effective


def config_warnings(info: AnalyzerInfo, given: Mapping[str, PolicyConfig]) -> list[str]:
    """One line for each name in the given config that is no policy of the pack."""
    known = {p.name for p in info.policies}
    return [
        f"the policy config names {name!r}, which is no policy of {info.name}"
        for name in sorted(given)
        if name != "all" and name not in known
    ]
