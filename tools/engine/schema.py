"""Provider schemas derived from the pinned Pulumi SDK packages themselves.

Each provider SDK (pulumi-aws, pulumi-kubernetes, pulumi-docker) is generated from its
provider's Pulumi package schema, so the part of that schema the engine and the provider enforce
on inputs can be read back from the SDK's Python code instead of kept by hand:

* resource type token -> class: the ``resource_modules``/``resource_packages`` tables each SDK
  registers with the runtime (``pulumi.runtime.rpc``) on import;
* input property names: the ``@pulumi.getter(name=...)`` of each ``*Args`` class (camelCase
  engine names), and their types from the getters' return annotations: primitives,
  ``Sequence``, ``Mapping``, nested ``@pulumi.input_type`` classes, ``Literal`` constants,
  enums (``SomeEnum`` alone is closed; ``Union[str, SomeEnum]`` is open: any string);
* required inputs: the ``*Args.__init__`` parameters without a default;
* deprecations: resources whose ``__init__`` warns ``DeprecationWarning`` and getters wrapped by
  the SDK's ``deprecated`` decorator (``_pulumi_deprecated_callable``).

The result has the shape of the published schema (``inputProperties``, ``requiredInputs``,
``types`` with ``properties``/``required``/``enum``), so it can be compared against one
(``tests/test_engine_schema.py``). Derivation is cached as JSON under ``build/`` keyed by the SDK
versions (``SchemaCache``): a second preview reads the cache instead of walking the classes.
"""

from __future__ import annotations

import enum
import hashlib
import importlib
import inspect
import json
import re
import threading
import typing
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pulumi
from pulumi import _types as pulumi_types
from pulumi.runtime import rpc
from pulumi.type_token import get_type_token

Spec = dict[str, Any]
"""A type in the published schema's notation: ``{"type": "string"}``, ``{"type": "array",
"items": ...}``, ``{"type": "object", "additionalProperties": ...}``, ``{"$ref": name}``,
``{"oneOf": [...]}``, ``{"const": value}`` or ``{"type": "any"}``."""

_DERIVATION_DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]

SDK_PACKAGES = {"aws": "pulumi_aws", "kubernetes": "pulumi_kubernetes", "docker": "pulumi_docker"}
"""Provider package name -> the SDK module that registers its resources."""

_PRIMITIVES: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_DEPRECATED_RESOURCE = re.compile(
    r"warnings\.warn\(\s*\"\"\"(.*?)\"\"\",\s*DeprecationWarning", re.S
)


@dataclass
class ResourceSchema:
    token: str
    input_properties: dict[str, Spec]
    required_inputs: list[str]
    deprecation: str | None = None
    deprecated_properties: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "inputProperties": self.input_properties,
            "requiredInputs": self.required_inputs,
            "deprecationMessage": self.deprecation,
            "deprecatedProperties": self.deprecated_properties,
        }

    @classmethod
    def from_json(cls, token: str, data: dict[str, Any]) -> ResourceSchema:
        return cls(
            token,
            data["inputProperties"],
            data["requiredInputs"],
            data["deprecationMessage"],
            data["deprecatedProperties"],
        )


def sdk_versions() -> dict[str, str]:
    """The installed versions of pulumi and each provider SDK: the cache key."""
    names = ["pulumi", *(name.replace("_", "-") for name in SDK_PACKAGES.values())]
    return {name: metadata.version(name) for name in names}


def package_of(token: str) -> str | None:
    """``aws:ec2/vpc:Vpc`` -> ``aws``; ``pulumi:providers:aws`` -> ``aws``."""
    parts = token.split(":")
    if len(parts) != 3:
        return None
    return parts[2] if parts[0] == "pulumi" and parts[1] == "providers" else parts[0]


def resource_class(token: str) -> type | None:
    """The SDK class registered for a resource type token, or None when the SDK has none."""
    package = package_of(token)
    if package not in SDK_PACKAGES:
        return None
    importlib.import_module(SDK_PACKAGES[package])  # registers its modules with the runtime
    parts = token.split(":")
    if parts[0] == "pulumi":
        for package_entry in rpc._RESOURCE_PACKAGES.get(package, []):
            info = getattr(package_entry, "pkg_info", {})
            if info.get("token") == token:
                return _attribute(info["fqn"], info["class"])
        return None
    for registered in rpc._RESOURCE_MODULES.get(f"{package}:{parts[1]}", []):
        info = getattr(registered, "mod_info", {})
        class_name = info.get("classes", {}).get(token)
        if class_name:
            return _attribute(info["fqn"], class_name)
    return None


def _attribute(module: str, name: str) -> type | None:
    found = getattr(importlib.import_module(module), name, None)
    return found if isinstance(found, type) else None


def args_class(resource: type) -> type | None:
    """The ``*Args`` input type a resource class is constructed from."""
    module = inspect.getmodule(resource)
    for name in (f"{resource.__name__}InitArgs", f"{resource.__name__}Args"):
        found = getattr(module, name, None)
        if isinstance(found, type) and pulumi_types.is_input_type(found):
            return found
    return None


class SchemaDeriver:
    """Derives resource schemas and the input types they reach, on demand, from SDK classes."""

    def __init__(self) -> None:
        self.types: dict[str, Spec] = {}
        self._classes: dict[str, type] = {}

    def resource(self, token: str) -> ResourceSchema | None:
        cls = resource_class(token)
        if cls is None:
            return None
        args = args_class(cls)
        if args is None:
            return ResourceSchema(token, {}, [], None)
        properties, required, deprecated = self._object(args)
        return ResourceSchema(token, properties, required, _resource_deprecation(cls), deprecated)

    def _object(self, cls: type) -> tuple[dict[str, Spec], list[str], dict[str, str]]:
        names = pulumi_types.input_type_py_to_pulumi_names(cls)
        hints = pulumi_types._raw_return_hints(cls)
        properties = {name: self.spec(hint) for name, hint in hints.items()}
        parameters = inspect.signature(cls).parameters.values()
        required = sorted(
            names[p.name]
            for p in parameters
            if p.kind is p.KEYWORD_ONLY and p.default is p.empty and p.name in names
        )
        deprecated = {}
        for _python, pulumi_name, prop in pulumi_types._py_properties(cls):
            original = getattr(prop.fget, "__dict__", {}).get("_pulumi_deprecated_callable")
            if original is not None:
                deprecated[pulumi_name] = _deprecation_message(prop.fget)
        return properties, required, deprecated

    def spec(self, hint: Any) -> Spec:
        """The schema notation of one getter annotation (Input/Output/Optional unwrapped)."""
        hint = _strip(hint)
        if hint is Any or hint is object or hint is type(None):
            return {"type": "any"}
        if isinstance(hint, type):
            return self._class_spec(hint)
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin is typing.Literal:
            return {"const": args[0]}
        if origin in (list, tuple, Sequence, typing.Sequence):
            return {"type": "array", "items": self.spec(args[0]) if args else {"type": "any"}}
        if origin in (dict, Mapping, typing.Mapping):
            value = self.spec(args[1]) if len(args) == 2 else {"type": "any"}
            return {"type": "object", "additionalProperties": value}
        if origin is typing.Union:
            unique: list[Spec] = []
            for option in (self.spec(arg) for arg in args):
                if option not in unique:
                    unique.append(option)
            if {"type": "any"} in unique:
                return {"type": "any"}
            return unique[0] if len(unique) == 1 else {"oneOf": unique}
        return {"type": "any"}

    def _class_spec(self, hint: type) -> Spec:
        if issubclass(hint, enum.Enum):
            return {"$ref": self._enum(hint)}
        if hint in _PRIMITIVES:
            return {"type": _PRIMITIVES[hint]}
        if pulumi_types.is_input_type(hint):
            return {"$ref": self._input_type(hint)}
        if issubclass(hint, Mapping):
            return {"type": "object", "additionalProperties": {"type": "any"}}
        if issubclass(hint, (list, tuple)):
            return {"type": "array", "items": {"type": "any"}}
        return {"type": "any"}  # assets, archives and anything the SDK leaves untyped

    def _input_type(self, cls: type) -> str:
        name = f"{cls.__module__}.{cls.__qualname__}"
        if name not in self.types:
            self.types[name] = {}  # placeholder: breaks cycles (recursive JSON schema types)
            properties, required, deprecated = self._object(cls)
            self.types[name] = {
                "type": "object",
                "properties": properties,
                "required": required,
                "deprecatedProperties": deprecated,
            }
        return name

    def _enum(self, cls: type[enum.Enum]) -> str:
        token = get_type_token(cls) or f"{cls.__module__}.{cls.__qualname__}"
        name = str(token)
        if name not in self.types:
            self.types[name] = {"type": "string", "enum": [m.value for m in cls]}
        return name


def _strip(hint: Any) -> Any:
    """Drop ``Input``/``Output``/``Awaitable``/``Optional`` wrappers and the plain-dict
    alternative of ``InputType``; keep every other member of a union."""
    origin = typing.get_origin(hint)
    if origin is pulumi.Output or origin in (Awaitable, typing.Awaitable):
        return _strip(typing.get_args(hint)[0])
    if origin is typing.Union:
        members = []
        for arg in typing.get_args(hint):
            arg_origin = typing.get_origin(arg)
            if arg is type(None) or arg_origin is pulumi.Output:
                continue
            if arg_origin in (Awaitable, typing.Awaitable):
                continue
            members.append(_strip(arg))
        if any(isinstance(m, type) and pulumi_types.is_input_type(m) for m in members):
            members = [m for m in members if not _is_plain_mapping(m)]
        unique = list(dict.fromkeys(members))
        if len(unique) == 1:
            return unique[0]
        return typing.Union[tuple(unique)]  # noqa: UP007 - built at run time
    return hint


def _is_plain_mapping(hint: Any) -> bool:
    return hint is dict or typing.get_origin(hint) in (dict, Mapping, typing.Mapping)


def _resource_deprecation(cls: type) -> str | None:
    """The message a deprecated resource warns with in its class body, if any (the SDK
    generator puts a ``warnings.warn(..., DeprecationWarning)`` before ``__init__``)."""
    try:
        source = Path(inspect.getsourcefile(cls) or "").read_text()
    except (OSError, TypeError):
        return None
    start = source.find(f"\nclass {cls.__name__}(")
    if start < 0:
        return None
    body = source[start : source.find("\n    def ", start)]
    found = _DEPRECATED_RESOURCE.search(body)
    return " ".join(found.group(1).split()) if found else None


def _deprecation_message(fget: Any) -> str:
    """The message of the SDK's ``deprecated`` decorator, read from its closure."""
    for cell in getattr(fget, "__closure__", None) or ():
        value = cell.cell_contents
        if isinstance(value, str):
            return " ".join(value.split())
    return "deprecated"


class SchemaCache:
    """Derived schemas of the resource types a plan uses, cached on disk per SDK versions.

    The file ``<root>/engine-schema-<hash>.json`` holds every resource and type derived so
    far; a type missing from it is derived and the file rewritten. A change of any SDK version
    changes the hash, so a stale cache is never read.
    """

    def __init__(self, root: Path | None) -> None:
        # the derivation's own code is part of the key: a fix to it invalidates old caches
        versions = {**sdk_versions(), "derivation": _DERIVATION_DIGEST}
        digest = hashlib.sha256(json.dumps(versions, sort_keys=True).encode()).hexdigest()[:16]
        self.path = root / f"engine-schema-{digest}.json" if root else None
        self.versions = versions
        self.resources: dict[str, dict[str, Any] | None] = {}
        self.types: dict[str, Spec] = {}
        self._deriver: SchemaDeriver | None = None
        self._dirty = False
        self._lock = threading.Lock()
        """Resources register on the SDK's threads: one derivation at a time."""
        if self.path and self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                data = {}
            if data.get("versions") == versions:
                self.resources = data.get("resources", {})
                self.types = data.get("types", {})

    def resource(self, token: str) -> ResourceSchema | None:
        with self._lock:
            if token not in self.resources:
                if self._deriver is None:
                    self._deriver = SchemaDeriver()
                    self._deriver.types = self.types
                derived = self._deriver.resource(token)
                self.resources[token] = derived.to_json() if derived else None
                self._dirty = True
            data = self.resources[token]
        return ResourceSchema.from_json(token, data) if data is not None else None

    def type(self, name: str) -> Spec:
        return self.types[name]

    def save(self) -> None:
        if not (self.path and self._dirty):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"versions": self.versions, "resources": self.resources, "types": self.types}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, sort_keys=True))
        tmp.replace(self.path)
        self._dirty = False


def typed(value: Any, spec: Spec, types: Mapping[str, Spec]) -> Any:
    """``value`` with the provider's types: the wire carries every number as a double, so an
    ``integer`` property arrives as ``5432.0``; a provider returns it as ``5432``."""
    if isinstance(value, float) and value.is_integer() and spec.get("type") == "integer":
        return int(value)
    if isinstance(value, list) and spec.get("type") == "array":
        return [typed(item, spec["items"], types) for item in value]
    if isinstance(value, dict):
        if spec.get("type") == "object":
            inner = spec.get("additionalProperties", {"type": "any"})
            return {k: typed(v, inner, types) for k, v in value.items()}
        target = types.get(spec.get("$ref", ""), {})
        properties = target.get("properties")
        if properties is not None:
            return {
                k: typed(v, properties.get(k, {"type": "any"}), types) for k, v in value.items()
            }
    return value
