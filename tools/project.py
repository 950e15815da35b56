"""Loads ``Pulumi.yaml`` and ``Pulumi.<stack>.yaml`` and turns them into the configuration the
Pulumi CLI would hand the program, with the checks the CLI would make first.

As the CLI does: declared defaults fill keys a stack leaves out, a value must have the type its
key declares, and every value reaches the program as a string (arrays as JSON). A top-level
``pulumi config set key 20`` stores the string "20": like the CLI's own validation and the SDK's
``Config.get_int``/``get_bool``, such a string is accepted for an integer, number or boolean
key when it parses as that type, and refused otherwise ("twenty"). Beyond the CLI: an
undeclared key in the project namespace is refused as a likely typo, and a declared secret
written in plain text in a stack file is refused (secrets are never committed).

``check_stack`` reports every problem of a stack file in one list: the file-level ones (wrong
type, unknown key, plain-text secret) together with what the settings validation finds in the
other keys (an invalid CIDR, a floor not met), so one run names them all.

Offline there is no secrets provider, so each secret key gets a placeholder that is clearly
marked as one and still passes the key's validation; the plan records which keys got one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.settings import (
    PROJECT,
    STACK_NAME,
    STACK_NAME_RULE,
    SettingsError,
    SettingsProblem,
    parse_settings,
)
from tools.stacks import stack_names

SECRET_PLACEHOLDERS = {
    "alertWebhookUrl": "https://offline-preview-placeholder.invalid/secret/alertWebhookUrl",
    "alertDeadMansSwitchUrl": (
        "https://offline-preview-placeholder.invalid/secret/alertDeadMansSwitchUrl"
    ),
}
"""Placeholders for secrets whose validation needs a particular shape."""


def placeholder_for(key: str) -> str:
    return SECRET_PLACEHOLDERS.get(key, f"offline-preview-placeholder-secret-{key}")


@dataclass(frozen=True)
class Declaration:
    """One key of the ``config:`` block of Pulumi.yaml."""

    key: str
    type: str
    secret: bool
    description: str
    default: Any
    has_default: bool
    items_type: str | None


@dataclass(frozen=True)
class StackConfig:
    """What the program receives for one stack."""

    stack: str
    values: dict[str, str]
    """``namespace:key`` to the string the CLI passes."""
    secret_keys: tuple[str, ...]
    placeholders: tuple[str, ...]
    """Secret keys that got an offline placeholder."""


class ConfigFileError(Exception):
    """The project or stack file is missing, unreadable or wrong; lists every problem."""

    def __init__(self, problems: list[SettingsProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
}

_CLI_STRINGS: dict[str, re.Pattern[str]] = {
    "integer": re.compile(r"^[+-]?[0-9]+$"),
    "number": re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"),
    "boolean": re.compile(r"^(true|false|True|False)$"),
}
"""Strings the CLI stores for ``pulumi config set key <value>`` that the SDK reads as the
declared type (``Config.get_int``, ``get_float``, ``get_bool``)."""


def _has_type(value: Any, declared: str) -> bool:
    if isinstance(value, bool) and declared in ("integer", "number"):
        return False  # YAML true is not a number
    if isinstance(value, str) and declared in _CLI_STRINGS:
        return bool(_CLI_STRINGS[declared].fullmatch(value))
    return isinstance(value, _PYTHON_TYPES[declared])


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigFileError(
            [SettingsProblem(path.name, None, f"a readable file at {path} ({exc.strerror})")]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigFileError(
            [SettingsProblem(path.name, "unparseable YAML", f"valid YAML ({exc})")]
        ) from None


def load_declarations(project_dir: Path) -> dict[str, Declaration]:
    """The declared keys of Pulumi.yaml, by bare key name."""
    path = project_dir / "Pulumi.yaml"
    project = _read_yaml(path)
    if not isinstance(project, dict) or project.get("name") != PROJECT:
        raise ConfigFileError(
            [SettingsProblem(path.name, None, f"a project file whose name is {PROJECT!r}")]
        )
    declarations = {}
    for key, spec in (project.get("config") or {}).items():
        if not isinstance(spec, dict) or "type" not in spec:
            raise ConfigFileError(
                [SettingsProblem(f"{path.name}: config.{key}", repr(spec), "a typed declaration")]
            )
        declarations[key] = Declaration(
            key=key,
            type=spec["type"],
            secret=bool(spec.get("secret", False)),
            description=str(spec.get("description", "")),
            default=spec.get("default"),
            has_default="default" in spec,
            items_type=(spec.get("items") or {}).get("type"),
        )
    return declarations


def to_cli_string(value: Any) -> str:
    """The string form the CLI passes to the program for a YAML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def load_stack_config(project_dir: Path, stack: str) -> StackConfig:
    """Check and resolve one stack's configuration, or raise ConfigFileError listing the
    stack file's problems."""
    config, problems = read_stack_config(project_dir, stack)
    if problems:
        raise ConfigFileError(problems)
    return config


def check_stack(project_dir: Path, stack: str) -> StackConfig:
    """``load_stack_config`` plus the settings validation, every problem of the stack file in
    one ConfigFileError: a key the file gets wrong (type, unknown, plain-text secret) is named
    once, and the settings still judge every other key."""
    config, problems = read_stack_config(project_dir, stack)
    try:
        parse_settings(stack, config.values)
    except SettingsError as exc:
        named = {problem.key for problem in problems}
        problems += [p for p in exc.problems if p.key not in named]
    if problems:
        raise ConfigFileError(problems)
    return config


def read_stack_config(project_dir: Path, stack: str) -> tuple[StackConfig, list[SettingsProblem]]:
    """The stack's configuration with its file-level problems (the values of the keys with a
    problem are left out). Raises ConfigFileError only when the files cannot be read at all."""
    if not STACK_NAME.fullmatch(stack):
        raise ConfigFileError(
            [SettingsProblem("stack", stack, f"a stack name of {STACK_NAME_RULE}")]
        )
    declarations = load_declarations(project_dir)
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = ", ".join(stack_names(project_dir)) or "none"
        raise ConfigFileError(
            [
                SettingsProblem(
                    path.name,
                    None,
                    f"a stack file for stack {stack!r} at {path} (stacks with a file: {known}); "
                    f"copy one, e.g. Pulumi.staging.yaml, and set its own name's values",
                )
            ]
        )
    document = _read_yaml(path)
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise ConfigFileError(
            [SettingsProblem(path.name, None, "a mapping under the top-level key 'config'")]
        )

    problems: list[SettingsProblem] = []
    values: dict[str, str] = {}
    secret_keys: list[str] = []
    for raw_key, value in config.items():
        full_key = str(raw_key)
        outcome = _check_entry(full_key, value, declarations)
        if isinstance(outcome, SettingsProblem):
            problems.append(outcome)
            continue
        values[full_key] = outcome
        if _is_encrypted(value):
            secret_keys.append(full_key)

    placeholders = [k.removeprefix(_PREFIX) for k in secret_keys]
    for key, declaration in declarations.items():
        full_key = _PREFIX + key
        if full_key in values or any(p.key == full_key for p in problems):
            continue
        if declaration.secret:
            values[full_key] = placeholder_for(key)
            secret_keys.append(full_key)
            placeholders.append(key)
        elif declaration.has_default:
            values[full_key] = to_cli_string(declaration.default)
    return StackConfig(stack, values, tuple(secret_keys), tuple(placeholders)), problems


_PREFIX = f"{PROJECT}:"


def _is_encrypted(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def _check_entry(
    full_key: str, value: Any, declarations: dict[str, Declaration]
) -> str | SettingsProblem:
    """The CLI string for one stack-file entry, or the problem with it."""
    shown = to_cli_string(value)
    if ":" not in full_key:
        return SettingsProblem(full_key, shown, f"a namespaced key such as {_PREFIX}{full_key}")
    if not full_key.startswith(_PREFIX):
        return shown  # other namespaces: settings decides which are allowed
    key = full_key.removeprefix(_PREFIX)
    declaration = declarations.get(key)
    if declaration is None:
        return SettingsProblem(
            full_key, shown, "no such key (a typo?); known keys are declared in Pulumi.yaml"
        )
    if _is_encrypted(value):
        # An encrypted value (`pulumi config set --secret`): no secrets provider offline.
        return placeholder_for(key)
    if declaration.secret:
        return SettingsProblem(
            full_key, "****", "no plain-text value: set secrets with `pulumi config set --secret`"
        )
    if not _has_type(value, declaration.type):
        return SettingsProblem(full_key, shown, f"a value of the declared type {declaration.type}")
    items_type = declaration.items_type
    if items_type and not all(_has_type(item, items_type) for item in value):
        return SettingsProblem(full_key, shown, f"an array of {declaration.items_type} values")
    return shown
