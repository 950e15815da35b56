"""The captured plan of one stack: its JSON form (``build/<stack>/plan.json``) and the tree the
offline preview prints, grouped by component with counts per resource type."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.mocks import CapturedResource


@dataclass
class Plan:
    project: str
    stack: str
    stack_urn: str
    resources: list[CapturedResource]
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

    def by_urn(self, urn: str) -> CapturedResource:
        return self._by_urn[urn]

    def of_type(self, typ: str) -> list[CapturedResource]:
        return [r for r in self.resources if r.type == typ]

    def children(self, urn: str) -> list[CapturedResource]:
        return list(self._children.get(urn, []))

    def counts_by_type(self) -> dict[str, int]:
        return dict(sorted(Counter(r.type for r in self.resources).items()))

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "stack": self.stack,
            "stackUrn": self.stack_urn,
            "resourceCount": len(self.resources),
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

    def render_tree(self) -> str:
        """The stack as a tree of components; custom resources are summarised per type."""
        lines = [f"{self.project}-{self.stack}  ({len(self.resources)} resources)"]
        self._render(self.stack_urn, "", lines)
        lines.append("")
        lines.append("Resources by type:")
        width = max((len(t) for t in self.counts_by_type()), default=0)
        for typ, count in self.counts_by_type().items():
            lines.append(f"  {typ.ljust(width)}  {count:>4}")
        return "\n".join(lines)

    def _render(self, urn: str, indent: str, lines: list[str]) -> None:
        children = self.children(urn)
        components = [c for c in children if not c.custom]
        leaves = Counter(c.type for c in children if c.custom)
        entries: list[tuple[str, CapturedResource | None]] = [
            (f"{typ} ×{count}", None) for typ, count in sorted(leaves.items())
        ]
        entries += [
            (f"{c.type}  {c.name}  ({len(self.descendants(c.urn))} resources)", c)
            for c in components
        ]
        for index, (label, component) in enumerate(entries):
            last = index == len(entries) - 1
            lines.append(f"{indent}{'└─' if last else '├─'} {label}")
            if component is not None:
                self._render(component.urn, indent + ("   " if last else "│  "), lines)
