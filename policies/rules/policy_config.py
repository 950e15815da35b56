"""A policy's configuration: its declared settings (schema, default, description) and ``Config``,
which reads the properties the CLI sent with explicit fallbacks to those defaults (the SDK
applies no schema defaults)."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final


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


def exemptions(name: str, key: str, what: str) -> Setting:
    """A list of exemptions, each naming what it exempts under ``key`` (a pattern) with its
    reason: ``exemptions("allowed", "role", "Roles whose ...")``."""
    return Setting(name, reasoned_list({key: {"type": "string"}}, [key]), [], what)


def exempted(config: Config, setting: str, key: str, value: str) -> bool:
    """Whether an entry of the exemption list ``setting`` matches ``value`` by its ``key``."""
    return any(
        isinstance(e.get(key), str) and fnmatch.fnmatchcase(value, e[key])
        for e in config.entries(setting)
    )
