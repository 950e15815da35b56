"""The workflow's commands: ``record``, ``verdict``, ``body`` and ``find-comment`` (see the
package docstring for how the preview workflow calls them). Exit codes: 0 pass, 1 a stack
fails, 2 a result file or argument that cannot be read. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import tools.pr_comment
from tools.pr_comment.body import render
from tools.pr_comment.comments import find_comment, parse_pages
from tools.pr_comment.results import (
    RESULT_FILE,
    PolicySummary,
    ResultError,
    StackResult,
    expected_stacks,
    load_results,
    missing_stacks,
    optional_int,
    read_text,
)


def _record(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    changed: tuple[str, ...] = ()
    if args.changed_files is not None:
        changed = tuple(line.strip() for line in read_text(args.changed_files).splitlines())
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
        offline_exit=optional_int(args.offline_exit),
        real_exit=optional_int(args.real_exit),
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
    parser = argparse.ArgumentParser(
        prog="python -m tools.pr_comment", description=tools.pr_comment.__doc__
    )
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
