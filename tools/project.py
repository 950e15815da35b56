"""Loads ``Pulumi.yaml`` and ``Pulumi.<stack>.yaml`` and turns them into the configuration the
Pulumi CLI would hand the program, with the checks the CLI would make first.

As the CLI does: declared defaults fill keys a stack leaves out, a value must have the type its
key declares, and every value reaches the program as a string (arrays as JSON). Beyond the CLI:
an undeclared key in the project namespace is refused as a likely typo, and a declared secret
written in plain text in a stack file is refused (secrets are never committed).

Offline there is no secrets provider, so each secret key gets a placeholder that is clearly
marked as one and still passes the key's validation; the plan records which keys got one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.settings import PROJECT, STACKS, SettingsProblem

SECRET_PLACEHOLDERS = {
    "alertWebhookUrl": "https://offline-preview-placeholder.invalid/secret/alertWebhookUrl",
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
    "boolean": (bool,),
    "array": (list,),
}


def _has_type(value: Any, declared: str) -> bool:
    if declared == "integer" and isinstance(value, bool):
        return False  # YAML true is not an integer
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
    """Check and resolve one stack's configuration, or raise ConfigFileError."""
    if stack not in STACKS:
        raise ConfigFileError(
            [SettingsProblem("stack", stack, f"one of the stacks {', '.join(STACKS)}")]
        )
    declarations = load_declarations(project_dir)
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise ConfigFileError(
            [SettingsProblem(path.name, None, f"a stack file for stack {stack!r} at {path}")]
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
    if problems:
        raise ConfigFileError(problems)
    return StackConfig(stack, values, tuple(secret_keys), tuple(placeholders))


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
