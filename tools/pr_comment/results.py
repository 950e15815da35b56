"""The per-stack result records of the preview workflow, and the rules that fail the check.

Each preview job writes ``result.json`` (``record``) next to its two outputs; the verdict and the
comment read them back. Which results fail (a preview that failed or did not run, a stack with
no result, a production stack that must preview clean) is decided here and nowhere else, so the
check and the comment cannot disagree. Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

PRODUCTION_ROLE: Final = "production"
"""``tools.stacks``' production role (a test keeps them equal; this module imports no YAML)."""

RESULT_FILE: Final = "result.json"
OFFLINE_OUTPUT: Final = "offline.txt"
REAL_OUTPUT: Final = "real.txt"


class ResultError(Exception):
    """A result file that cannot be read; the message names the file."""


@dataclass(frozen=True)
class PolicySummary:
    """The offline preview's policy report (``build/<stack>/policy-report.json``), reduced to
    what the comment and the clean rule need."""

    mandatory: int
    advisory: int
    violations: tuple[str, ...]
    """One line per diagnostic: level, policy, resource."""

    @property
    def total(self) -> int:
        return self.mandatory + self.advisory

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> PolicySummary:
        """From the JSON that ``tools.analyzer.report.PolicyReport.write_json`` writes."""
        diagnostics = report.get("diagnostics")
        if not isinstance(diagnostics, list):
            raise ResultError("policy report: expected a list under 'diagnostics'")
        lines: list[str] = []
        levels = {"mandatory": 0, "advisory": 0}
        for diagnostic in diagnostics:
            if not isinstance(diagnostic, dict):
                raise ResultError("policy report: a diagnostic is not an object")
            level = str(diagnostic.get("enforcementLevel", "advisory"))
            # Anything that is not mandatory is reported as a warning by the CLI.
            levels["mandatory" if level == "mandatory" else "advisory"] += 1
            resource = (
                f"{diagnostic.get('resourceType', '?')}: {diagnostic.get('resourceName', '?')}"
            )
            lines.append(f"[{level}] {diagnostic.get('policyName', '?')} ({resource})")
        return cls(levels["mandatory"], levels["advisory"], tuple(lines))

    def to_json(self) -> dict[str, Any]:
        return {
            "mandatory": self.mandatory,
            "advisory": self.advisory,
            "violations": list(self.violations),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PolicySummary:
        return cls(int(data["mandatory"]), int(data["advisory"]), tuple(data["violations"]))


@dataclass(frozen=True)
class StackResult:
    """What one stack's preview job recorded."""

    stack: str
    role: str
    region: str
    policy_config: str
    variable_suffix: str
    offline_exit: int | None
    """Exit code of ``make preview``; None when the step did not run."""
    real_exit: int | None
    """Exit code of ``pulumi preview``; None when it did not run (see ``fork``)."""
    fork: str | None = None
    """The head repository when the pull request comes from a fork: no OIDC token, so the
    real preview is skipped on purpose."""
    changed: tuple[str, ...] = ()
    """This stack's files (stack file, policy config) that the pull request changes."""
    policy: PolicySummary | None = None
    """The offline policy report; None when the offline preview wrote none."""
    offline_output: str = field(default="", compare=False)
    real_output: str = field(default="", compare=False)

    @property
    def clean_required(self) -> bool:
        """A production-role stack whose stack file or policy configuration the pull request
        changes must preview without any policy violation, advisory ones included."""
        return self.role == PRODUCTION_ROLE and bool(self.changed)

    @property
    def real_skipped(self) -> bool:
        return self.fork is not None and self.real_exit is None

    def problems(self) -> list[str]:
        """Why this stack fails the check; empty when it passes. A fork's skipped real preview
        is never a problem."""
        problems: list[str] = []
        if self.offline_exit is None:
            problems.append("the offline preview did not run (an earlier step failed)")
        elif self.offline_exit != 0:
            problems.append(f"the offline preview failed (exit {self.offline_exit})")
        if self.real_exit is None and not self.real_skipped:
            problems.append(
                "`pulumi preview` did not run: an earlier step failed (are the repository "
                f"variables `AWS_PREVIEW_ROLE_ARN_{self.variable_suffix}` and "
                "`PULUMI_BACKEND_URL` set?)"
            )
        elif self.real_exit is not None and self.real_exit != 0:
            problems.append(
                f"`pulumi preview` failed (exit {self.real_exit}); a mandatory policy "
                "violation fails it too"
            )
        if self.clean_required:
            changed = ", ".join(f"`{path}`" for path in self.changed)
            if self.policy is None:
                problems.append(
                    f"this pull request changes {changed}, so the preview must be clean, "
                    "but the offline preview wrote no policy report"
                )
            elif self.policy.total:
                problems.append(
                    f"this pull request changes {changed}, so the preview must be clean, but "
                    f"the policy pack reports {_violations(self.policy)}"
                )
        return problems

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "role": self.role,
            "region": self.region,
            "policyConfig": self.policy_config,
            "variableSuffix": self.variable_suffix,
            "offlineExitCode": self.offline_exit,
            "realExitCode": self.real_exit,
            "fork": self.fork,
            "changed": list(self.changed),
            "policy": self.policy.to_json() if self.policy else None,
        }

    @classmethod
    def load(cls, directory: Path) -> StackResult:
        """``result.json`` of ``directory`` with the two outputs next to it."""
        path = directory / RESULT_FILE
        try:
            data = json.loads(path.read_text())
            policy = data.get("policy")
            result = cls(
                stack=str(data["stack"]),
                role=str(data["role"]),
                region=str(data["region"]),
                policy_config=str(data["policyConfig"]),
                variable_suffix=str(data["variableSuffix"]),
                offline_exit=optional_int(data["offlineExitCode"]),
                real_exit=optional_int(data["realExitCode"]),
                fork=data.get("fork"),
                changed=tuple(data.get("changed", ())),
                policy=PolicySummary.from_json(policy) if policy else None,
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ResultError(f"{path}: not a result file ({exc})") from None
        return replace(
            result,
            offline_output=read_text(directory / OFFLINE_OUTPUT),
            real_output=read_text(directory / REAL_OUTPUT),
        )


def optional_int(value: object) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"not an exit code: {value!r}")
    return int(value)


def read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _violations(policy: PolicySummary) -> str:
    return f"{policy.mandatory} mandatory and {policy.advisory} advisory violation(s)"


def load_results(directory: Path) -> list[StackResult]:
    """Every ``result.json`` under ``directory`` (one folder per downloaded artifact), by
    stack name."""
    results = [StackResult.load(path.parent) for path in directory.rglob(RESULT_FILE)]
    return sorted(results, key=lambda result: result.stack)


def expected_stacks(stacks_json: str) -> list[str]:
    """The stack names of ``python -m tools.stacks list`` output (the workflow's matrix)."""
    try:
        entries = json.loads(stacks_json)
        return [str(entry["stack"]) for entry in entries]
    except (ValueError, KeyError, TypeError) as exc:
        raise ResultError(f"--stacks: not the output of tools.stacks list ({exc})") from None


def missing_stacks(results: Sequence[StackResult], expected: Iterable[str]) -> list[str]:
    """Stacks of the matrix whose job recorded nothing (cancelled, or failed before)."""
    seen = {result.stack for result in results}
    return [stack for stack in expected if stack not in seen]
