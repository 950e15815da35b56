"""Resource inputs against the provider schemas derived from the pinned SDKs (``schema``).

What a provider refuses before it creates anything, and the SDK's own ``__init__`` does not
check below the top level: an input property the schema does not have (at any depth: a
misspelled key inside a Deployment's pod template is refused by the API server's strict field
validation), a required input missing (also inside nested types), a value of the wrong type,
a value outside a closed enum, a constant that is not the constant. A deprecated resource or
property is a warning, as the engine prints it.

Values the preview does not know (``[unknown]``: an Output of a resource not yet created) and
secrets (``[secret]``) are accepted for any type, as the engine does during a preview.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from typing import Any

from tools.engine.findings import Finding
from tools.engine.schema import SchemaCache, Spec, package_of
from tools.mocks import MASK, UNKNOWN, CapturedResource
from tools.render import BUILT_IN_GROUPS, HELM_PREFIX, PREFIX

CHECKED_PACKAGES = ("aws", "kubernetes", "docker")
"""Providers whose resources are checked; CustomResources (their group is not built in) are
checked against their CRD's schema elsewhere (tools/crd-validate)."""
_OPAQUE = (MASK, UNKNOWN)


def check_inputs(resources: list[CapturedResource], schemas: SchemaCache) -> Iterator[Finding]:
    for resource in resources:
        if not resource.custom and not resource.type.startswith(HELM_PREFIX):
            continue  # our own components: no provider schema
        if package_of(resource.type) not in CHECKED_PACKAGES:
            continue
        schema = schemas.resource(resource.type)
        if schema is None:
            if resource.custom and not is_custom_kind(resource.type):
                yield Finding.error(resource, "", f"unknown resource type {resource.type!r}")
            continue
        if schema.deprecation:
            yield Finding.warning(resource, "", f"deprecated resource: {schema.deprecation}")
        provider = resource.type.startswith("pulumi:providers:")
        walker = _Walker(resource, schemas, provider)
        yield from walker.object(
            "",
            resource.inputs,
            schema.input_properties,
            schema.required_inputs,
            schema.deprecated_properties,
        )


class _Walker:
    def __init__(self, resource: CapturedResource, schemas: SchemaCache, provider: bool) -> None:
        self.resource = resource
        self.schemas = schemas
        self.provider = provider
        self.quantities = resource.type.startswith(PREFIX)

    def object(
        self,
        path: str,
        value: dict[str, Any],
        properties: dict[str, Spec],
        required: list[str],
        deprecated: dict[str, str],
    ) -> Iterator[Finding]:
        for key in required:
            if value.get(key) is None:
                yield Finding.error(self.resource, _join(path, key), "missing required input")
        for key, item in value.items():
            where = _join(path, key)
            if key not in properties:
                hint = difflib.get_close_matches(key, list(properties), n=1)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
                yield Finding.error(self.resource, where, f"unknown property{suggestion}")
                continue
            if key in deprecated and item is not None:
                yield Finding.warning(self.resource, where, f"deprecated: {deprecated[key]}")
            yield from self.value(where, item, properties[key])

    def value(self, path: str, value: Any, spec: Spec) -> Iterator[Finding]:
        if value is None or (isinstance(value, str) and value in _OPAQUE):
            return
        if self.provider and isinstance(value, str) and spec.get("type") != "string":
            value = _json_or_text(value)  # provider inputs travel as JSON text
        if "oneOf" in spec:
            yield from self.one_of(path, value, spec)
        elif "const" in spec:
            if value != spec["const"]:
                yield self._mismatch(path, spec, value)
        elif "$ref" in spec:
            yield from self.reference(path, value, self.schemas.type(spec["$ref"]))
        else:
            yield from self.structure(path, value, spec)

    def one_of(self, path: str, value: Any, spec: Spec) -> Iterator[Finding]:
        """The findings of the first option the value satisfies (its warnings included); a
        mismatch when none does."""
        for option in spec["oneOf"]:
            found = list(self.value(path, value, option))
            if not any(f.severity == "error" for f in found):
                yield from found
                return
        yield self._mismatch(path, spec, value)

    def structure(self, path: str, value: Any, spec: Spec) -> Iterator[Finding]:
        kind = spec.get("type", "any")
        if kind == "array" and isinstance(value, list):
            for index, item in enumerate(value):
                yield from self.value(f"{path}[{index}]", item, spec["items"])
        elif kind == "object" and isinstance(value, dict):
            for key, item in value.items():
                yield from self.value(_join(path, key), item, spec["additionalProperties"])
        elif kind == "string" and self.quantities and _is_quantity(path, value):
            return
        elif kind in ("array", "object") or not _primitive_ok(kind, value):
            yield self._mismatch(path, spec, value)

    def reference(self, path: str, value: Any, target: Spec) -> Iterator[Finding]:
        if "enum" in target:
            if value not in target["enum"]:
                allowed = ", ".join(repr(v) for v in target["enum"])
                yield Finding.error(
                    self.resource,
                    path,
                    f"{_show(value)} is not one of the allowed values ({allowed})",
                )
            return
        if not isinstance(value, dict):
            yield self._mismatch(path, {"type": "object"}, value)
            return
        yield from self.object(
            path,
            value,
            target["properties"],
            target["required"],
            target.get("deprecatedProperties", {}),
        )

    def _mismatch(self, path: str, spec: Spec, value: Any) -> Finding:
        return Finding.error(
            self.resource, path, f"expected {_describe(spec, self.schemas)}, got {_show(value)}"
        )


def is_custom_kind(typ: str) -> bool:
    """A ``kubernetes:<group>/<version>:<Kind>`` of a group the SDK does not know: a
    CustomResource, checked against its CRD's schema by tools/crd-validate instead."""
    if not typ.startswith(PREFIX) or typ.count(":") != 2:
        return False
    group = typ.split(":")[1].rpartition("/")[0]
    return group not in BUILT_IN_GROUPS and group != "core" and not typ.startswith(HELM_PREFIX)


QUANTITY_MAPS = frozenset(
    {"limits", "requests", "hard", "default", "defaultRequest", "max", "min",
     "maxLimitRequestRatio", "overhead", "capacity", "allocatable"}
)  # fmt: skip
"""Kubernetes maps of resource quantities (``resources.limits``, a quota's ``hard``, ...)."""
QUANTITY_FIELDS = frozenset({"sizeLimit", "storage"})


def _is_quantity(path: str, value: Any) -> bool:
    """A Kubernetes ``Quantity`` (the SDK types it ``str``) given as a number: the API server
    accepts ``cpu: 1`` as it accepts ``cpu: "1"``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    parts = path.replace("[", ".[").split(".")
    return (len(parts) > 1 and parts[-2] in QUANTITY_MAPS) or parts[-1] in QUANTITY_FIELDS


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _primitive_ok(kind: str, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True  # "any"


def _describe(spec: Spec, schemas: SchemaCache) -> str:
    if "oneOf" in spec:
        return " or ".join(_describe(option, schemas) for option in spec["oneOf"])
    if "const" in spec:
        return repr(spec["const"])
    if "$ref" in spec:
        target = schemas.type(spec["$ref"])
        return "one of the enum values" if "enum" in target else "an object"
    kind = spec.get("type", "any")
    return {"array": "a list", "object": "a map"}.get(kind, f"a {kind}")


def _show(value: Any) -> str:
    kind = {dict: "a map", list: "a list", bool: "a boolean", str: "a string"}.get(type(value))
    text = json.dumps(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{kind or type(value).__name__} {text}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
