"""What a policy check found, and how it is shown: the diagnostics and remediations a pack
reported, printed as ``pulumi preview``'s ``Policies:`` section and written as
``policy-report.json`` (which ``tools.pr_comment`` reads for the pull-request comment).

Plain data with no protocol in it, so the preview and the tests can build, compare and render
reports without a pack process.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TextIO

from tools.analyzer.config import AnalyzerInfo, PolicyConfig

SEVERITIES = ("unspecified", "low", "medium", "high", "critical")
"""Indexed by the protocol's ``PolicySeverity`` number."""

_LEVEL_ORDER = {"mandatory": 0, "remediate": 1, "advisory": 2, "disabled": 3}
_ICONS = {"failed": "❌", "warned": "⚠️", "passed": "✅"}


def _camel_case(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def _fields_json(record: Any, *, omit: tuple[str, ...] = ()) -> dict[str, Any]:
    """A dataclass's fields in order, each under its camelCase name."""
    return {
        _camel_case(f.name): getattr(record, f.name) for f in fields(record) if f.name not in omit
    }


@dataclass(frozen=True)
class PolicyDiagnostic:
    policy_name: str
    policy_pack_name: str
    policy_pack_version: str
    enforcement_level: str
    severity: str
    urn: str
    resource_type: str
    resource_name: str
    description: str
    message: str
    source: str
    """``analyze`` (one resource's inputs) or ``analyzeStack`` (the whole stack's outputs)."""

    def to_json(self) -> dict[str, Any]:
        """Every field, camelCase (``policyName``, ``enforcementLevel``, ...)."""
        return _fields_json(self)


@dataclass(frozen=True)
class PolicyRemediation:
    policy_name: str
    policy_pack_name: str
    policy_pack_version: str
    urn: str
    resource_type: str
    resource_name: str
    description: str
    properties: dict[str, Any]
    """The resource's inputs after the remediation, in wire form (secrets as signature objects)."""
    changed_keys: list[str]
    """The top-level inputs the remediation set, changed or removed."""

    def to_json(self) -> dict[str, Any]:
        """Every field but the (possibly secret) properties, camelCase."""
        return _fields_json(self, omit=("properties",))


@dataclass
class PolicyReport:
    stack: str
    project: str
    pack: AnalyzerInfo
    pack_label: str
    """How the pack is named in the output: ``(local: <label>)``."""
    config_file: str | None
    config: dict[str, PolicyConfig]
    diagnostics: list[PolicyDiagnostic]
    remediations: list[PolicyRemediation] = field(default_factory=list)
    resources_analyzed: int = 0
    not_applicable: dict[str, int] = field(default_factory=dict)
    """Per policy: how many resources (or stacks) it declared itself not applicable to."""
    warnings: list[str] = field(default_factory=list)
    pack_output: list[str] = field(default_factory=list)
    """What the pack process wrote besides its port (stdout, then stderr)."""

    @property
    def has_mandatory_violations(self) -> bool:
        return any(d.enforcement_level == "mandatory" for d in self.diagnostics)

    def mandatory(self) -> list[PolicyDiagnostic]:
        return [d for d in self.sorted_diagnostics() if d.enforcement_level == "mandatory"]

    def sorted_diagnostics(self) -> list[PolicyDiagnostic]:
        return sorted(
            self.diagnostics,
            key=lambda d: (
                d.policy_pack_name,
                _LEVEL_ORDER.get(d.enforcement_level, 9),
                -SEVERITIES.index(d.severity) if d.severity in SEVERITIES else 0,
                d.policy_name,
                d.urn,
                d.message,
            ),
        )

    def counts(self) -> dict[str, Any]:
        levels = Counter(d.enforcement_level for d in self.diagnostics)
        return {
            "resourcesAnalyzed": self.resources_analyzed,
            "policies": len(self.pack.policies),
            "diagnostics": len(self.diagnostics),
            "mandatory": levels.get("mandatory", 0),
            "advisory": levels.get("advisory", 0),
            "remediations": len(self.remediations),
            "bySeverity": dict(sorted(Counter(d.severity for d in self.diagnostics).items())),
            "byPolicy": dict(sorted(Counter(d.policy_name for d in self.diagnostics).items())),
            "notApplicable": dict(sorted(self.not_applicable.items())),
        }

    def effective_level(self, policy: str) -> str | None:
        config = self.config.get(policy)
        return config.enforcement_level if config else None

    def to_json(self) -> dict[str, Any]:
        pack = self.pack.to_json()
        for policy in pack["policies"]:
            policy["effectiveEnforcementLevel"] = self.effective_level(policy["name"])
        return {
            "stack": self.stack,
            "project": self.project,
            "pack": {**pack, "path": self.pack_label},
            "configFile": self.config_file,
            "config": {k: v.to_json() for k, v in sorted(self.config.items())},
            "hasMandatoryViolations": self.has_mandatory_violations,
            "counts": self.counts(),
            "diagnostics": [d.to_json() for d in self.sorted_diagnostics()],
            "remediations": [r.to_json() for r in self.remediations],
            "warnings": self.warnings,
            "packOutput": self.pack_output,
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")
        tmp.replace(path)

    def render(self) -> str:
        """The ``Policies:`` section as ``pulumi preview`` prints it, grouped by pack, then by
        level and severity (mandatory and most severe first)."""
        lines = ["Policies:"]
        packs: dict[tuple[str, str], list[PolicyDiagnostic]] = {
            (self.pack.name, self.pack.version): []
        }
        for diagnostic in self.sorted_diagnostics():
            key = (diagnostic.policy_pack_name, diagnostic.policy_pack_version)
            packs.setdefault(key, []).append(diagnostic)
        for (name, version), diagnostics in packs.items():
            remediations = [r for r in self.remediations if r.policy_pack_name == name]
            if any(d.enforcement_level == "mandatory" for d in diagnostics):
                status = "failed"
            elif diagnostics:
                status = "warned"
            else:
                status = "passed"
            lines.append(f"    {_ICONS[status]} {name}@v{version} (local: {self.pack_label})")
            for diagnostic in diagnostics:
                severity = diagnostic.severity
                shown = f"[severity: {severity}] " if severity != "unspecified" else ""
                lines.append(
                    f"        - [{diagnostic.enforcement_level}]  {shown}{diagnostic.policy_name}"
                    f"  ({diagnostic.resource_type}: {diagnostic.resource_name})"
                )
                lines.extend(f"          {line}" for line in diagnostic.message.splitlines())
            for remediation in remediations:
                lines.append(
                    f"        - [remediate]  {remediation.policy_name}"
                    f"  ({remediation.resource_type}: {remediation.resource_name})"
                )
                lines.extend(f"          {line}" for line in remediation.description.splitlines())
        counts = self.counts()
        lines.append(
            f"    {counts['mandatory']} mandatory, {counts['advisory']} advisory violation(s); "
            f"{len(self.pack.policies)} policies over {self.resources_analyzed} resources"
        )
        lines.extend(f"    warning: {warning}" for warning in self.warnings)
        return "\n".join(lines)

    def print_report(self, file: TextIO | None = None) -> None:
        print(self.render(), file=file if file is not None else sys.stdout)
