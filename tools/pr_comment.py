"""The one pull-request comment of the preview workflow, built from per-stack result files.

``.github/workflows/preview.yml`` previews every stack in a job of its own: the offline
preview (``make preview``) and the real ``pulumi preview`` with the policy pack. Each job
records what happened in ``<dir>/result.json`` next to the two outputs (``offline.txt``,
``real.txt``) and uploads the folder as an artifact; a last job downloads them all, builds one
comment body from them and creates or edits the pull request's comment that starts with
``MARKER``, so each push updates one comment instead of adding one per stack and push.

Why a module and not shell in the workflow: the rules (which results fail the check, when a
production stack's preview must be clean, how the body stays under GitHub's comment limit)
are tested here (tests/test_workflows.py). It needs only the standard library, so any Python
3.11 runs it before or without the project's dependencies.

    python -m tools.pr_comment record DIR --stack prod --role production ...   # result.json
    python -m tools.pr_comment verdict DIR [--stacks JSON]    # exit 1 when a stack fails
    python -m tools.pr_comment body DIR --stacks JSON --output body.md [--payload body.json]
    python -m tools.pr_comment find-comment COMMENTS.json     # id of the existing comment
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

MARKER: Final = "<!-- exposcholar-preview -->"
"""First line of the comment; the workflow edits the bot's comment that starts with it."""
GITHUB_COMMENT_LIMIT: Final = 65_536
"""GitHub refuses issue and pull-request comment bodies longer than this (characters)."""
BODY_BUDGET: Final = GITHUB_COMMENT_LIMIT - 1_536
"""What the body may use: a margin under the limit for anything counted differently."""
BOT_LOGIN: Final = "github-actions[bot]"
"""The author of comments made with the workflow's GITHUB_TOKEN."""
PRODUCTION_ROLE: Final = "production"
"""``tools.stacks``' production role (a test keeps them equal; this module imports no YAML)."""

RESULT_FILE: Final = "result.json"
OFFLINE_OUTPUT: Final = "offline.txt"
REAL_OUTPUT: Final = "real.txt"

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_BACKTICKS = re.compile(r"`+")
_MAX_VIOLATIONS_LISTED: Final = 20
_CUT_NOTE: Final = (
    "… {lines} earlier line(s), {chars} characters, cut to fit the comment; {where}\n"
)


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
        """From the JSON that ``tools.analyzer.PolicyReport.write_json`` writes."""
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
                offline_exit=_optional_int(data["offlineExitCode"]),
                real_exit=_optional_int(data["realExitCode"]),
                fork=data.get("fork"),
                changed=tuple(data.get("changed", ())),
                policy=PolicySummary.from_json(policy) if policy else None,
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ResultError(f"{path}: not a result file ({exc})") from None
        return replace(
            result,
            offline_output=_read_text(directory / OFFLINE_OUTPUT),
            real_output=_read_text(directory / REAL_OUTPUT),
        )


def _optional_int(value: object) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"not an exit code: {value!r}")
    return int(value)


def _read_text(path: Path) -> str:
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


# --- the comment body -------------------------------------------------------------------------


def _status(exit_code: int | None, *, skipped: bool = False) -> str:
    if skipped:
        return "⏭️ skipped (fork)"
    if exit_code is None:
        return "⚠️ did not run"
    return "✅ passed" if exit_code == 0 else f"❌ failed (exit {exit_code})"


def _policy_cell(result: StackResult) -> str:
    if result.policy is None:
        cell = "no report"
    elif result.policy.total == 0:
        cell = "clean"
    else:
        cell = f"{result.policy.mandatory} mandatory, {result.policy.advisory} advisory"
    if result.clean_required:
        clean = result.policy is not None and result.policy.total == 0
        cell += " · must be clean " + ("✅" if clean else "❌")
    return cell


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in ``text``."""
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    return "`" * max(3, longest + 1)


def tail(text: str, limit: int, where: str) -> str:
    """``text`` if it fits in ``limit`` characters, else its end (from a line start where
    possible) after a line saying how much was cut and where the whole output is."""
    if len(text) <= limit:
        return text
    # The note for cutting everything is the longest one (its numbers are the largest).
    reserve = len(_CUT_NOTE.format(lines=text.count("\n"), chars=len(text), where=where))
    kept = text[len(text) - (limit - reserve) :] if limit > reserve else ""
    newline = kept.find("\n")
    if 0 <= newline < len(kept) - 1:
        kept = kept[newline + 1 :]
    cut = text[: len(text) - len(kept)]
    note = _CUT_NOTE.format(lines=cut.count("\n"), chars=len(cut), where=where)
    return (note + kept)[:limit]


@dataclass(frozen=True)
class _Output:
    """A command output shown in a collapsed section; its length is decided last."""

    summary: str
    text: str
    where: str

    def wrap(self, text: str) -> str:
        fence = _fence(self.text)
        shown = text.rstrip("\n")
        return (
            f"<details><summary>{self.summary}</summary>\n\n"
            f"{fence}text\n{shown}\n{fence}\n\n</details>\n\n"
        )


def _allocate(lengths: Sequence[int], budget: int) -> list[int]:
    """Share ``budget`` among texts of these lengths: short ones keep everything, long ones
    split what is left equally."""
    allocation = [0] * len(lengths)
    remaining = max(0, budget)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    for position, index in enumerate(order):
        share = remaining // (len(order) - position)
        allocation[index] = min(lengths[index], share)
        remaining -= allocation[index]
    return allocation


def _stack_parts(result: StackResult, run_url: str) -> list[str | _Output]:
    where = "the whole output is in the job log"
    if run_url:
        where = f"the whole output is in [the job log]({run_url})"
    where += f" and the artifact `preview-{result.stack}`."
    parts: list[str | _Output] = [f"### `{result.stack}` ({result.role}, {result.region})\n\n"]
    if result.clean_required:
        changed = ", ".join(f"`{path}`" for path in result.changed)
        parts.append(
            f"This pull request changes {changed}, so this {PRODUCTION_ROLE} stack's preview "
            "must be clean: no policy violation at all, advisory ones included.\n\n"
        )
    problems = result.problems()
    if problems:
        parts.append("".join(f"- ❌ {problem}\n" for problem in problems) + "\n")
    if result.policy is not None and result.policy.violations:
        listed = result.policy.violations[:_MAX_VIOLATIONS_LISTED]
        more = len(result.policy.violations) - len(listed)
        lines = "".join(f"- {_cell(line)}\n" for line in listed)
        if more:
            lines += f"- … and {more} more (see the offline preview's output)\n"
        parts.append(f"Policy violations (offline preview):\n\n{lines}\n")
    parts.append(
        _Output(
            f"Offline preview (<code>make preview</code>): {_status(result.offline_exit)}",
            _ANSI.sub("", result.offline_output) or "(no output)",
            where,
        )
    )
    if result.real_skipped:
        parts.append(
            f"`pulumi preview` skipped: this pull request comes from the fork `{result.fork}`, "
            "and GitHub gives fork pull requests no OIDC token, so there are no AWS "
            "credentials to read the stack with. This is not a failure; the offline preview "
            "above still ran. The real preview runs once the branch is pushed to this "
            "repository.\n\n"
        )
    else:
        parts.append(
            _Output(
                f"<code>pulumi preview --diff</code> with the policy pack "
                f"(<code>{result.policy_config}</code>): {_status(result.real_exit)}",
                _ANSI.sub("", result.real_output) or "(no output)",
                where,
            )
        )
    return parts


def render(
    results: Sequence[StackResult],
    expected: Sequence[str],
    *,
    commit: str = "",
    run_url: str = "",
    budget: int = BODY_BUDGET,
) -> str:
    """The comment body: marker, a table of every stack, then per stack its problems and both
    outputs, each output cut to its share of ``budget`` (keeping its end, where errors and the
    policy summary are)."""
    header = f"{MARKER}\n## Pulumi preview" + (f" of `{commit[:12]}`" if commit else "") + "\n\n"
    parts: list[str | _Output] = [header]
    forks = sorted({result.fork for result in results if result.real_skipped and result.fork})
    if forks:
        parts.append(
            f"> This pull request comes from a fork ({', '.join(f'`{f}`' for f in forks)}): "
            "only the offline preview ran. GitHub gives fork pull requests no OIDC token, so "
            "the real `pulumi preview` is skipped, which does not fail the check.\n\n"
        )
    rows = [
        "| Stack | Role | Offline preview | `pulumi preview` | Policies (offline) |",
        "|---|---|---|---|---|",
    ]
    for result in results:
        real = _status(result.real_exit, skipped=result.real_skipped)
        rows.append(
            f"| `{_cell(result.stack)}` | {_cell(result.role)} | {_status(result.offline_exit)} "
            f"| {real} | {_cell(_policy_cell(result))} |"
        )
    missing = missing_stacks(results, expected)
    rows.extend(f"| `{_cell(stack)}` | | ⚠️ no result | ⚠️ no result | |" for stack in missing)
    parts.append("\n".join(rows) + "\n\n")
    if missing:
        parts.append(
            "No result from the job of "
            + ", ".join(f"`{stack}`" for stack in missing)
            + ": it was cancelled or stopped before recording; see the workflow run.\n\n"
        )
    if not results and not missing:
        parts.append("No stack files (`Pulumi.<stack>.yaml`): nothing to preview.\n\n")
    for result in results:
        parts.extend(_stack_parts(result, run_url))
    footer = "Updated on each push"
    parts.append(footer + (f" · [workflow run]({run_url})" if run_url else "") + "\n")
    return _assemble(parts, budget)


def _assemble(parts: Sequence[str | _Output], budget: int) -> str:
    outputs = [part for part in parts if isinstance(part, _Output)]
    fixed = sum(len(part) if isinstance(part, str) else len(part.wrap("")) for part in parts)
    shares = iter(_allocate([len(output.text) for output in outputs], budget - fixed))
    body = "".join(
        part if isinstance(part, str) else part.wrap(tail(part.text, next(shares), part.where))
        for part in parts
    )
    if len(body) > budget:  # only when the fixed parts alone exceed it (hundreds of stacks)
        cut = "\n\n… (cut: the comment limit)\n"
        body = body[: max(0, budget - len(cut))] + cut
    return body


# --- finding the comment to edit --------------------------------------------------------------


def parse_pages(text: str) -> list[dict[str, Any]]:
    """The comments of ``gh api --paginate`` output: one JSON array per page, concatenated."""
    decoder = json.JSONDecoder()
    comments: list[dict[str, Any]] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return comments
        page, position = decoder.raw_decode(text, position)
        if not isinstance(page, list):
            raise ResultError("comments: expected JSON arrays (gh api --paginate output)")
        comments.extend(item for item in page if isinstance(item, dict))


def find_comment(comments: Iterable[dict[str, Any]]) -> int | None:
    """The id of the oldest comment the workflow's token wrote that starts with ``MARKER``."""
    for comment in comments:
        user = comment.get("user") or {}
        body = comment.get("body") or ""
        if user.get("login") == BOT_LOGIN and body.startswith(MARKER):
            return int(comment["id"])
    return None


# --- command line -----------------------------------------------------------------------------


def _record(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    changed: tuple[str, ...] = ()
    if args.changed_files is not None:
        changed = tuple(line.strip() for line in _read_text(args.changed_files).splitlines())
        changed = tuple(path for path in changed if path)
    policy = None
    if args.policy_report is not None and args.policy_report.is_file():
        try:
            policy = PolicySummary.from_report(json.loads(args.policy_report.read_text()))
        except ValueError as exc:
            raise ResultError(f"{args.policy_report}: not valid JSON ({exc})") from None
    result = StackResult(
        stack=args.stack,
        role=args.role,
        region=args.region,
        policy_config=args.policy_config,
        variable_suffix=args.variable_suffix,
        offline_exit=_optional_int(args.offline_exit),
        real_exit=_optional_int(args.real_exit),
        fork=args.fork or None,
        changed=changed,
        policy=policy,
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / RESULT_FILE).write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return 0


def _annotate(level: str, stack: str | None, message: str) -> None:
    """A GitHub workflow command (``::error title=...::message``), its data escaped."""
    escaped = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    title = ""
    if stack is not None:
        name = stack.replace("%", "%25").replace(":", "%3A").replace(",", "%2C")
        title = f" title=preview {name}"
    print(f"::{level}{title}::{escaped}")


def _verdict(args: argparse.Namespace) -> int:
    results = load_results(args.directory)
    expected = expected_stacks(args.stacks) if args.stacks is not None else []
    failed = False
    for stack in missing_stacks(results, expected):
        _annotate("error", stack, "no result recorded (job cancelled or stopped)")
        failed = True
    if not results and args.stacks is None:
        _annotate("error", None, f"no {RESULT_FILE} under {args.directory}")
        return 1
    for result in results:
        for problem in result.problems():
            _annotate("error", result.stack, problem)
            failed = True
        if result.real_skipped:
            _annotate(
                "notice",
                result.stack,
                "pulumi preview skipped: fork pull request (no OIDC token); the offline "
                "preview ran",
            )
    return 1 if failed else 0


def _body(args: argparse.Namespace) -> int:
    results = load_results(args.directory)
    body = render(results, expected_stacks(args.stacks), commit=args.commit, run_url=args.run_url)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(body)
    if args.payload is not None:
        args.payload.write_text(json.dumps({"body": body}))
    return 0


def _find(args: argparse.Namespace) -> int:
    comment = find_comment(parse_pages(args.comments.read_text()))
    if comment is not None:
        print(comment)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.pr_comment", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    record = commands.add_parser("record", help="write DIR/result.json for one stack")
    record.add_argument("directory", type=Path)
    for name in ("stack", "role", "region", "policy-config", "variable-suffix"):
        record.add_argument(f"--{name}", required=True)
    record.add_argument("--offline-exit", default="", help="empty: the step did not run")
    record.add_argument("--real-exit", default="", help="empty: the step did not run")
    record.add_argument("--fork", default="", help="head repository of a fork pull request")
    record.add_argument("--changed-files", type=Path, help="the stack's changed files, a line each")
    record.add_argument("--policy-report", type=Path, help="build/<stack>/policy-report.json")
    record.set_defaults(run=_record)

    verdict = commands.add_parser("verdict", help="exit 1 when a stack's preview fails")
    verdict.add_argument("directory", type=Path)
    verdict.add_argument("--stacks", help="tools.stacks list output: stacks that must have results")
    verdict.set_defaults(run=_verdict)

    body = commands.add_parser("body", help="the comment body from every result under DIR")
    body.add_argument("directory", type=Path)
    body.add_argument("--stacks", required=True, help="tools.stacks list output (the matrix)")
    body.add_argument("--commit", default="")
    body.add_argument("--run-url", default="")
    body.add_argument("--output", type=Path, required=True)
    body.add_argument("--payload", type=Path, help='also write {"body": ...} for gh api --input')
    body.set_defaults(run=_body)

    find = commands.add_parser("find-comment", help="print the id of the comment to edit")
    find.add_argument("comments", type=Path, help="gh api --paginate .../comments output")
    find.set_defaults(run=_find)

    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except (ResultError, ValueError) as exc:  # ValueError: an exit code that is no number
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
