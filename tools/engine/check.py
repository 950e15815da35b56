"""The engine stage: every check of this package over one captured plan, and its report."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.engine.charts import check_charts
from tools.engine.findings import Finding
from tools.engine.graph import check_graph
from tools.engine.inputs import CHECKED_PACKAGES, check_inputs
from tools.engine.schema import SchemaCache, package_of
from tools.mocks import CapturedResource
from tools.plan import registered_count


@dataclass
class EngineReport:
    findings: list[Finding]
    resources_checked: int
    """Resources whose inputs were checked against a provider schema."""
    types_checked: int
    resources: int
    """Every resource the engine registers for the stack, the stack included: the count of
    the whole preview (``tools.plan.registered_count``)."""

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def summary(self) -> str:
        return (
            f"Engine checks: {self.resources} resources, {self.resources_checked} checked "
            f"against {self.types_checked} provider types; {len(self.errors)} error(s), "
            f"{len(self.warnings)} warning(s)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "resources": self.resources,
            "resourcesChecked": self.resources_checked,
            "typesChecked": self.types_checked,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [
                {"severity": f.severity, "urn": f.urn, "property": f.property, "message": f.message}
                for f in self.findings
            ],
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")


def check(
    resources: Sequence[CapturedResource],
    stack_urn: str,
    *,
    sites: Mapping[tuple[str, str], Sequence[str]] | None = None,
    schemas: SchemaCache | None = None,
) -> EngineReport:
    """Every engine check over the captured resources (schemas: derived on demand and saved
    to the cache's file, if it has one)."""
    schemas = schemas or SchemaCache(None)
    findings = list(check_graph(resources, stack_urn, sites or {}))
    findings += check_inputs(list(resources), schemas)
    findings += check_charts(resources)
    schemas.save()
    checked = [
        r
        for r in resources
        if package_of(r.type) in CHECKED_PACKAGES and schemas.resources.get(r.type) is not None
    ]
    return EngineReport(
        findings=findings,
        resources_checked=len(checked),
        types_checked=len({r.type for r in checked}),
        resources=registered_count(resources),
    )
