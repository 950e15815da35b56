"""The pull-request comment's body: a table of every stack, then each stack's problems and its
two preview outputs, cut to fit under GitHub's comment size limit.

Its own module because the size rules (each output's share of the budget, cut from the start
so the errors and the policy summary at the end stay) are the fiddly part. Standard library
only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from tools.pr_comment.results import PRODUCTION_ROLE, StackResult, missing_stacks

MARKER: Final = "<!-- exposcholar-preview -->"
"""First line of the comment; the workflow edits the bot's comment that starts with it."""
GITHUB_COMMENT_LIMIT: Final = 65_536
"""GitHub refuses issue and pull-request comment bodies longer than this (characters)."""
BODY_BUDGET: Final = GITHUB_COMMENT_LIMIT - 1_536
"""What the body may use: a margin under the limit for anything counted differently."""

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_BACKTICKS = re.compile(r"`+")
_MAX_VIOLATIONS_LISTED: Final = 20
_CUT_NOTE: Final = (
    "… {lines} earlier line(s), {chars} characters, cut to fit the comment; {where}\n"
)


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
