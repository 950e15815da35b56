"""``Component``: the one contract every component of the program follows.

- ``TYPE`` is the Pulumi type token, ``exposcholar:<group>:<ClassName>`` with a group of
  ``TOKEN_GROUPS``; it is part of every child's URN, so renaming a class, a group or a token
  needs a ``pulumi.Alias``.
- Outputs are the annotated public attributes of the class: typed, set in ``__init__``, and
  registered exactly by ``register()`` (snake_case names). They are Outputs, plain values or
  frozen views of them (``DatabaseConnection``), never child resources: a consumer that must
  wait for a component lists the component itself in ``depends_on``.
- Ordering has one mechanism: ``depends_on`` in the component's ``ResourceOptions``, at the
  call site. A child is registered after its parent, but Pulumi records only the child's own
  dependencies, and those order deletes, replacements and ``--target-dependents``; so
  ``child_opts()`` hands the component's ``depends_on`` to every child, and the recorded graph
  says what the call site said. Depending on a component waits for all of its children.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pulumi

TOKEN_GROUPS = (
    "network", "security", "data", "deploy", "images", "cluster", "app",
    "edge", "backups", "monitoring",
)  # fmt: skip
"""The middle part of type tokens: what the component is about. Tokens predate the layered
layout, so a group is not a package name (platform controllers are ``cluster``)."""


class Component(pulumi.ComponentResource):
    """Base class of every component: type token, inherited ordering, exact outputs."""

    TYPE: ClassVar[str]

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        self._inherited_depends_on: list[pulumi.Resource] = _resources(
            opts.depends_on if opts else None
        )

    def child_opts(
        self,
        *,
        depends_on: Sequence[pulumi.Resource] = (),
        **options: Any,
    ) -> pulumi.ResourceOptions:
        """Options of a child: parented here, waiting for what this component waits for (and
        for ``depends_on``), with any other ``ResourceOptions`` field in ``options``."""
        return pulumi.ResourceOptions(
            parent=self, depends_on=[*self._inherited_depends_on, *depends_on], **options
        )

    def require(self, kind: type[Component], why: str) -> None:
        """Refuse to build unless a ``kind`` component is in ``depends_on``: what this one
        creates needs it first (a CRD, a webhook), and a forgotten dependency would otherwise
        surface only as a failed ``pulumi up``."""
        if not any(isinstance(resource, kind) for resource in self._inherited_depends_on):
            raise ValueError(
                f"{type(self).__name__} {self._name!r} needs the {kind.__name__} in its "
                f"depends_on: {why}"
            )

    @classmethod
    def declared_outputs(cls) -> tuple[str, ...]:
        """Names of the outputs the class declares: its annotated public attributes."""
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            if not issubclass(klass, Component) or klass is Component:
                continue
            for name, annotation in inspect.get_annotations(klass).items():
                if not name.startswith("_") and "ClassVar" not in str(annotation):
                    names.append(name)
        return tuple(dict.fromkeys(names))

    def register(self) -> None:
        """Register exactly the declared outputs (call last in ``__init__``)."""
        self.register_outputs(
            {name: _registrable(getattr(self, name)) for name in self.declared_outputs()}
        )


def _resources(value: object) -> list[pulumi.Resource]:
    if value is None:
        return []
    if isinstance(value, pulumi.Resource):
        return [value]
    if isinstance(value, Sequence) and all(isinstance(item, pulumi.Resource) for item in value):
        return list(value)
    raise TypeError(
        "depends_on of a component must be a resource or a list of resources (not an Output), "
        f"got {type(value).__name__}"
    )


def _registrable(value: object) -> object:
    """What ``register_outputs`` can serialize: views become mappings of their fields."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: _registrable(getattr(value, field.name))
            for field in dataclasses.fields(value)
        }
    if isinstance(value, Mapping):
        return {str(key): _registrable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_registrable(item) for item in value]
    return value
