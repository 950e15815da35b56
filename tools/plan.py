"""The captured plan of one stack: its JSON form (``build/<stack>/plan.json``) and what the
offline preview prints of it, in the shape of ``pulumi preview``'s output: the resource tree
(grouped by component with counts per type, or every resource by name), ``Outputs:`` and
``Resources:``."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tools.engine.charts import CHART_TYPES
from tools.mocks import MASK, UNKNOWN, CapturedResource

_T = TypeVar("_T")

STACK_TYPE = "pulumi:pulumi:Stack"
CHART_NOTE = "objects are rendered at deploy time"
"""A Helm chart's objects are no resources of the plan: the provider renders a v4 ``Chart``'s
objects as its children only under the real engine, and a v3 ``Release`` has Helm install them;
offline a chart has nothing under it, which is no sign of an empty chart."""
OUTPUT_WIDTH = 120
"""Characters of an output's value shown on one line (longer ones are split or cut)."""
COLUMN_WIDTH = 64
"""The widest Type and Name columns of the ``--details`` list: a longer type (an S3 bucket's
encryption configuration, 87 characters) pushes only its own line's name to the right."""


def registered_count(resources: Collection[CapturedResource]) -> int:
    """How many resources the engine registers for a stack whose program registered
    ``resources``: those (components and explicit providers included) and the root
    ``pulumi:pulumi:Stack``, which the capture keeps apart as ``Plan.stack_urn``. It is the
    number ``pulumi preview`` prints in ``Resources: + N to create`` and the resources a policy
    pack analyzes; every count the offline preview prints or writes is this one. There are no
    default providers to add: the stack files disable them (tests/test_program.py)."""
    return len(resources) + 1


def chart_source(resource: CapturedResource) -> str | None:
    """``chart <name> <version> from <repository>`` for a Helm chart or release (from its
    inputs, as far as they say), None for any other resource."""
    if resource.type not in CHART_TYPES:
        return None
    inputs = resource.inputs
    words = ["chart", str(inputs.get("chart") or "(unnamed)")]
    if inputs.get("version"):
        words.append(str(inputs["version"]))
    options = inputs.get("repositoryOpts")
    if isinstance(options, dict) and options.get("repo"):
        words += ["from", str(options["repo"])]
    return " ".join(words)


def display(value: Any) -> list[str]:
    """An output's value as ``pulumi preview`` shows values: strings quoted, maps with bare
    keys sorted, a secret as ``[secret]`` at any depth, an unknown value as ``output<string>``.
    One line when it fits in ``OUTPUT_WIDTH`` characters; else a map or list opens on the first
    line with one entry per line (each cut with ``…`` if still too long) and closes on the last,
    the lines after the first to be indented under the output's name."""
    shown = _compact(value)
    if len(shown) <= OUTPUT_WIDTH or not isinstance(value, dict | list) or not value:
        return [_cut(shown)]
    if isinstance(value, dict):
        entries = [(str(key), item) for key, item in sorted(value.items())]
        opening, closing = "{", "}"
    else:
        entries = [(f"[{index}]", item) for index, item in enumerate(value)]
        opening, closing = "[", "]"
    width = max(len(label) for label, _ in entries)
    lines = [f"    {label.ljust(width)}: {_cut(_compact(item))}" for label, item in entries]
    return [opening, *lines, closing]


def _cut(shown: str) -> str:
    return shown if len(shown) <= OUTPUT_WIDTH else shown[: OUTPUT_WIDTH - 1] + "…"


def _compact(value: Any) -> str:
    if isinstance(value, str):
        if value == MASK:
            return MASK
        if value == UNKNOWN:
            return "output<string>"
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_compact(item) for item in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items())
        return "{" + ", ".join(f"{key}: {_compact(item)}" for key, item in items) + "}"
    return json.dumps(value)


@dataclass
class Plan:
    project: str
    stack: str
    stack_urn: str
    resources: list[CapturedResource]
    """What the program registered: every resource but the stack itself (``stack_urn``)."""
    outputs: dict[str, Any] = field(default_factory=dict)
    placeholders: tuple[str, ...] = ()
    sites: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """(type, name) -> where the program constructed it (file:line); not written to JSON."""

    def __post_init__(self) -> None:
        self.resources = sorted(self.resources, key=lambda r: r.urn)
        self._by_urn = {r.urn: r for r in self.resources}
        self._children: dict[str | None, list[CapturedResource]] = {}
        for resource in self.resources:
            self._children.setdefault(resource.parent, []).append(resource)

    @property
    def resource_count(self) -> int:
        """Every resource the engine registers for the stack, the stack included
        (``registered_count``): the count of the tree's header, ``Resources:`` and
        ``plan.json``'s ``resourceCount``."""
        return registered_count(self.resources)

    def by_urn(self, urn: str) -> CapturedResource:
        return self._by_urn[urn]

    def of_type(self, typ: str) -> list[CapturedResource]:
        return [r for r in self.resources if r.type == typ]

    def children(self, urn: str) -> list[CapturedResource]:
        return list(self._children.get(urn, []))

    def counts_by_type(self) -> dict[str, int]:
        """What the program registered, per type (the stack itself is not among them)."""
        return dict(sorted(Counter(r.type for r in self.resources).items()))

    def to_json(self) -> dict[str, Any]:
        """``plan.json``: ``resources`` lists what the program registered and ``stackUrn``
        names the stack, so ``resourceCount`` is ``len(resources) + 1`` (``registered_count``)."""
        return {
            "project": self.project,
            "stack": self.stack,
            "stackUrn": self.stack_urn,
            "resourceCount": self.resource_count,
            "countsByType": self.counts_by_type(),
            "placeholderSecrets": list(self.placeholders),
            "outputs": self.outputs,
            "resources": [
                {
                    "urn": r.urn,
                    "type": r.type,
                    "name": r.name,
                    "custom": r.custom,
                    "parent": r.parent,
                    "provider": r.provider,
                    "protect": r.protect,
                    "dependencies": r.dependencies,
                    "propertyDependencies": r.property_dependencies,
                    "inputs": r.inputs,
                }
                for r in self.resources
            ],
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n")
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> Plan:
        data = json.loads(path.read_text())
        resources = [
            CapturedResource(
                urn=r["urn"],
                type=r["type"],
                name=r["name"],
                custom=r["custom"],
                parent=r["parent"],
                provider=r["provider"],
                protect=r["protect"],
                dependencies=r["dependencies"],
                property_dependencies=r["propertyDependencies"],
                inputs=r["inputs"],
            )
            for r in data["resources"]
        ]
        return cls(
            data["project"],
            data["stack"],
            data["stackUrn"],
            resources,
            data["outputs"],
            tuple(data["placeholderSecrets"]),
        )

    def descendants(self, urn: str) -> list[CapturedResource]:
        found: list[CapturedResource] = []
        for child in self.children(urn):
            found.append(child)
            found.extend(self.descendants(child.urn))
        return found

    def component(self, typ: str) -> CapturedResource:
        """The one component resource of type ``typ``."""
        (found,) = [r for r in self.resources if r.type == typ and not r.custom]
        return found

    def subtree(self, urn: str) -> Plan:
        """The same plan restricted to the descendants of ``urn`` (for per-component tests)."""
        return Plan(self.project, self.stack, self.stack_urn, self.descendants(urn))

    # --- what the offline preview prints ------------------------------------------------------

    def render(self, details: bool = False) -> str:
        """What ``pulumi preview`` prints of a stack, offline: the resource tree
        (``render_tree``), the stack's ``Outputs:`` when it has any, then ``Resources:``."""
        sections = [self.render_tree(details)]
        if self.outputs:
            sections.append(self.render_outputs())
        sections.append(self.render_resources())
        return "\n\n".join(sections)

    def render_tree(self, details: bool = False) -> str:
        """The stack as a tree of components under a header with the resource count. By
        default each component's custom resources are summarised per type with their number;
        with ``details`` every resource is listed by name, in the columns of ``pulumi
        preview``'s resource list. A Helm chart or release is always shown by name with its
        chart."""
        lines = [f"{self.project}-{self.stack}  ({self.resource_count} resources)"]
        if details:
            lines += self._resource_list()
        else:
            self._render_grouped(self.stack_urn, "", lines)
        return "\n".join(lines)

    def render_outputs(self) -> str:
        """Every stack output sorted by name with its value (``display``); the plan's
        outputs are masked (``tools.mocks.mask``), so a secret shows as ``[secret]``."""
        width = max((len(name) for name in self.outputs), default=0)
        lines = ["Outputs:"]
        for name, value in sorted(self.outputs.items()):
            first, *more = display(value)
            lines.append(f"    {name.ljust(width)}: {first}")
            lines += [f"    {line}" for line in more]
        return "\n".join(lines)

    def render_resources(self) -> str:
        """The ``Resources:`` summary: offline there is no state, so every resource is a
        create."""
        return f"Resources:\n    + {self.resource_count} to create"

    def _note(self, resource: CapturedResource) -> str:
        """What a tree line says after a resource's type and name: a chart's source and either
        what it holds or that its objects come at deploy time; a component's count; nothing
        for any other resource."""
        held = len(self.descendants(resource.urn))
        count = f"({held} resources)"
        chart = chart_source(resource)
        if chart is not None:
            return f"{chart}  {count}" if held else f"{chart}: {CHART_NOTE}"
        return "" if resource.custom else count

    def _ordered_children(self, urn: str) -> list[CapturedResource]:
        """Custom resources, then components, each in URN order (type, then name)."""
        children = self.children(urn)
        return [c for c in children if c.custom] + [c for c in children if not c.custom]

    def _render_grouped(self, urn: str, indent: str, lines: list[str]) -> None:
        children = self._ordered_children(urn)
        leaves = Counter(c.type for c in children if c.custom and c.type not in CHART_TYPES)
        entries: list[tuple[str, CapturedResource | None]] = [
            (f"{typ} ×{count}", None) for typ, count in sorted(leaves.items())
        ]
        entries += [
            (f"{c.type}  {c.name}  {self._note(c)}", c)
            for c in children
            if not c.custom or c.type in CHART_TYPES
        ]
        for (label, shown), branch, under in _branches(entries):
            lines.append(f"{indent}{branch} {label}")
            if shown is not None:
                self._render_grouped(shown.urn, indent + under, lines)

    def _resource_list(self) -> list[str]:
        """Every resource, the stack first, one line each as in ``pulumi preview``'s resource
        list: ``+``, the type in the tree, the name, ``create`` and the note (``_note``), in
        columns under a ``Type Name Plan`` header."""
        rows = [(STACK_TYPE, f"{self.project}-{self.stack}", ""), *self._rows(self.stack_urn, "")]
        type_width = min(max(len(typ) for typ, _, _ in rows), COLUMN_WIDTH)
        name_width = min(max(len(name) for _, name, _ in rows), COLUMN_WIDTH)
        lines = [f"     {'Type'.ljust(type_width)}  {'Name'.ljust(name_width)}  Plan"]
        lines += [
            f" +   {typ.ljust(type_width)}  {name.ljust(name_width)}  create  {note}".rstrip()
            for typ, name, note in rows
        ]
        return lines

    def _rows(self, urn: str, indent: str) -> list[tuple[str, str, str]]:
        """Type (in the tree), name and note of ``urn``'s children and theirs."""
        rows = []
        for child, branch, under in _branches(self._ordered_children(urn)):
            rows.append((f"{indent}{branch} {child.type}", child.name, self._note(child)))
            rows += self._rows(child.urn, indent + under)
        return rows


def _branches(items: Sequence[_T]) -> Iterator[tuple[_T, str, str]]:
    """Each of a node's children in a tree with its connector (``├─``, ``└─`` for the last)
    and what prefixes the lines under it."""
    for index, item in enumerate(items):
        last = index == len(items) - 1
        yield item, ("└─" if last else "├─"), ("   " if last else "│  ")
