"""Checkov as a second opinion on the offline preview: its AWS rules over the Terraform-plan export
of the captured AWS resources (``tools.tfplan``, framework ``terraform_plan``) and its
Kubernetes rules over the rendered manifests (framework ``kubernetes``).

Checkov lives in its own virtualenv (``.venv-checkov``, ``scripts/install-checkov.sh``: it pins
an old ``packaging`` that breaks pulumi) and always runs with ``--skip-download`` (no platform
calls, no network). A finding is accepted only through one file per framework, each entry with
its reason:

* AWS: ``checkov-aws-skips.yaml`` — ``check``, the Terraform ``resources`` it accepts (addresses
  as exported, ``aws_db_instance.database_instance``; no patterns), optional ``roles`` (the stack
  roles it holds for, ``exposcholar:stackRole``; all when absent) and ``reason``;
* Kubernetes: ``checkov-skips.yaml`` — ``check``, the manifest file ``object`` (a pattern) and
  ``reason``.

Any other finding fails, and so does an entry that accepts nothing (a stale one).
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKOV: Final = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
AWS_SKIPS: Final = REPO_ROOT / "checkov-aws-skips.yaml"
KUBERNETES_SKIPS: Final = REPO_ROOT / "checkov-skips.yaml"
KUBERNETES_CONFIG: Final = REPO_ROOT / ".checkov-kubernetes.yaml"
TIMEOUT_SECONDS: Final = 300


class CheckovError(Exception):
    """Checkov is missing, failed, or a skips file is malformed (the message names the file
    and the entry)."""


@dataclass(frozen=True)
class Finding:
    check: str
    subject: str
    """The Terraform address (AWS) or the manifest's file name (Kubernetes)."""
    title: str = ""


@dataclass(frozen=True)
class Result:
    """One Checkov run: how many checks passed and which failed."""

    passed: int
    failed: tuple[Finding, ...]
    parsing_errors: int
    resources: int


def run(framework: str, target: Path, config_file: Path | None = None) -> Result:
    """Checkov's ``framework`` over ``target`` (a file, or a folder for ``kubernetes``)."""
    if not CHECKOV.exists():
        raise CheckovError(f"{CHECKOV} missing: run scripts/install-checkov.sh (make test does)")
    where = ["--directory", str(target)] if target.is_dir() else ["--file", str(target)]
    command = [str(CHECKOV), *where, "--framework", framework, "--skip-download", "--output",
               "json", "--compact", "--quiet"]  # fmt: skip
    if config_file is not None:
        command += ["--config-file", str(config_file)]
    try:
        done = subprocess.run(  # noqa: S603 - the repository's own Checkov, arguments of ours
            command,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
            env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        )
    except subprocess.TimeoutExpired:
        raise CheckovError(f"checkov {framework} took over {TIMEOUT_SECONDS} s") from None
    try:
        report = json.loads(done.stdout)
    except ValueError:
        raise CheckovError(
            f"checkov {framework} printed no JSON report (exit {done.returncode}): "
            + (done.stderr.strip().splitlines() or ["no output"])[-1]
        ) from None
    return _result(framework, report)


def _result(framework: str, report: Any) -> Result:
    if isinstance(report, list):  # one report per framework; we ask for one
        report = next((r for r in report if r.get("check_type") == framework), {})
    summary = report.get("summary", report)
    results = report.get("results", {})
    failed = tuple(
        Finding(
            str(c["check_id"]),
            str(c["resource"]) if framework == "terraform_plan" else _file(c),
            str(c.get("check_name", "")),
        )
        for c in results.get("failed_checks", [])
    )
    return Result(
        passed=int(summary.get("passed", 0)),
        failed=failed,
        parsing_errors=int(summary.get("parsing_errors", 0)),
        resources=int(summary.get("resource_count", 0)),
    )


def _file(check: Mapping[str, Any]) -> str:
    return Path(str(check["file_path"])).name


# ---- accepted findings ---------------------------------------------------------------------


@dataclass(frozen=True)
class Acceptance:
    """One entry of a skips file: a check accepted for named subjects, with its reason."""

    check: str
    subjects: tuple[str, ...]
    reason: str
    roles: tuple[str, ...] = ()
    """Stack roles the entry holds for (empty: every role)."""
    patterns: bool = False
    """Subjects are file patterns (Kubernetes), not exact addresses (AWS)."""

    def holds_for(self, role: str) -> bool:
        return not self.roles or role in self.roles

    def accepts(self, finding: Finding) -> bool:
        if finding.check != self.check:
            return False
        if self.patterns:
            return any(fnmatch.fnmatchcase(finding.subject, s) for s in self.subjects)
        return finding.subject in self.subjects


def load_aws_skips(path: Path = AWS_SKIPS) -> list[Acceptance]:
    """``checkov-aws-skips.yaml``: a list of ``{check, resources, reason[, roles]}``."""
    entries = _entries(path)
    found = []
    for index, entry in enumerate(entries):
        where = f"{path.name}: entry {index + 1}"
        _only_keys(entry, {"check", "resources", "roles", "reason"}, where)
        resources = entry.get("resources")
        if not isinstance(resources, list) or not resources:
            raise CheckovError(f"{where}: 'resources' must be a non-empty list of addresses")
        for resource in resources:
            if not isinstance(resource, str) or "." not in resource or "*" in resource:
                raise CheckovError(
                    f"{where}: resource {resource!r} is not a Terraform address (type.name, "
                    "no patterns: each accepted resource is named)"
                )
        roles = entry.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise CheckovError(f"{where}: 'roles' must be a list of stack roles")
        found.append(
            Acceptance(
                _text(entry, "check", where),
                tuple(resources),
                _text(entry, "reason", where),
                tuple(roles),
            )
        )
    return found


def load_kubernetes_skips(path: Path = KUBERNETES_SKIPS) -> list[Acceptance]:
    """``checkov-skips.yaml``: a list of ``{check, object, reason}`` (object: a file pattern)."""
    found = []
    for index, entry in enumerate(_entries(path)):
        where = f"{path.name}: entry {index + 1}"
        _only_keys(entry, {"check", "object", "reason"}, where)
        found.append(
            Acceptance(
                _text(entry, "check", where),
                (_text(entry, "object", where),),
                _text(entry, "reason", where),
                patterns=True,
            )
        )
    return found


def _entries(path: Path) -> list[dict[str, Any]]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CheckovError(f"{path.name}: cannot be read: {exc}") from None
    if data is None:
        return []
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise CheckovError(f"{path.name}: expected a list of entries (mappings)")
    return data


def _only_keys(entry: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise CheckovError(f"{where}: unknown key(s) {', '.join(unknown)}")


def _text(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CheckovError(f"{where}: '{key}' must be a non-empty string")
    return value.strip()


@dataclass
class Verdict:
    """A run judged against the accepted findings."""

    framework: str
    result: Result
    accepted: list[Finding] = field(default_factory=list)
    unaccepted: list[Finding] = field(default_factory=list)
    stale: list[Acceptance] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unaccepted and not self.stale and self.result.parsing_errors == 0

    def counts(self) -> str:
        r = self.result
        return (
            f"{r.passed} passed, {len(r.failed)} failed, {len(self.accepted)} accepted"
            f" ({r.resources} resources)"
        )

    def problems(self) -> list[str]:
        lines = [f"{f.check} {f.subject}: {f.title}" for f in self.unaccepted]
        lines += [f"stale entry: {s.check} for {', '.join(s.subjects)}" for s in self.stale]
        if self.result.parsing_errors:
            lines.append(f"{self.result.parsing_errors} file(s) Checkov could not parse")
        return lines


def judge(framework: str, result: Result, acceptances: Sequence[Acceptance], role: str) -> Verdict:
    """Which findings the entries holding for ``role`` accept, which they do not, and which
    of those entries (or, for exact addresses, which of their resources) accept nothing."""
    holding = [a for a in acceptances if a.holds_for(role)]
    verdict = Verdict(framework, result)
    for finding in result.failed:
        if any(a.accepts(finding) for a in holding):
            verdict.accepted.append(finding)
        else:
            verdict.unaccepted.append(finding)
    for acceptance in holding:
        if acceptance.patterns:
            if not any(acceptance.accepts(f) for f in result.failed):
                verdict.stale.append(acceptance)
            continue
        unused = [
            s
            for s in acceptance.subjects
            if not any(f.check == acceptance.check and f.subject == s for f in result.failed)
        ]
        if unused:
            verdict.stale.append(
                Acceptance(acceptance.check, tuple(unused), acceptance.reason, acceptance.roles)
            )
    return verdict
