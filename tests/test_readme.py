"""README.md read as a new operator reads it: every repository path it names exists, every
``pulumi`` command it shows uses a subcommand and flags the Pulumi CLI documents
(``tests/fixtures/pulumi-cli-flags.json``, sources in its ``_source``), every ``make`` target
exists, and the deploy section's commands that need no cloud run as written and succeed.

No cloud, CLI or ``make`` run here: the commands run are the cheap local ones
(``python -m tools.stacks``, ``python -m tools.targets`` over plans written by the session
``plans`` fixture, the secret generators of step 6)."""

from __future__ import annotations

import importlib
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components.settings import rules as validation
from tests import STACKS
from tools.plan import Plan
from tools.stacks import load_stack

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
FLAGS_FILE = REPO / "tests" / "fixtures" / "pulumi-cli-flags.json"
DEPLOY_SECTION = "## Deploy for real"
LAYOUT_SECTION = "## Layout"

FlagTable = Mapping[str, Mapping[str, Any]]
Expander = Callable[[str], list[str] | None]

# --------------------------------------------------------------------------------------------
# Markdown: fenced code blocks and inline code spans, with their line numbers


@dataclass(frozen=True)
class Snippet:
    text: str
    line: int
    block: bool
    """A fenced code block (whole commands) rather than an inline span (possibly a fragment)."""
    lang: str = ""


FENCE = re.compile(r"^```(?P<lang>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
NOT_SHELL = {"json", "yaml", "python", "text"}
INLINE = re.compile(r"(?<!`)`(?!`)(?P<code>[^`]+?)`(?!`)")


def snippets(markdown: str, first_line: int = 1) -> list[Snippet]:
    found: list[Snippet] = []
    prose: list[tuple[int, str]] = []
    pos = 0
    for m in FENCE.finditer(markdown):
        line = first_line + markdown.count("\n", 0, m.start("body"))
        found.append(Snippet(m["body"], line, block=True, lang=m["lang"].strip()))
        prose.append((pos, markdown[pos : m.start()]))
        pos = m.end()
    prose.append((pos, markdown[pos:]))
    for start, chunk in prose:
        for m in INLINE.finditer(chunk):
            if "\n\n" in m["code"]:  # a lone backtick pairing across paragraphs
                continue
            line = first_line + markdown.count("\n", 0, start + m.start())
            found.append(Snippet(m["code"].replace("\n", " "), line, block=False))
    return sorted(found, key=lambda s: s.line)


def section(markdown: str, heading: str) -> tuple[str, int]:
    """The text under a ``## `` heading up to the next one, and the line it starts on."""
    start = markdown.index(f"\n{heading}\n") + 1
    end = markdown.find("\n## ", start + len(heading))
    end = len(markdown) if end < 0 else end + 1
    return markdown[start:end], markdown.count("\n", 0, start) + 1


# --------------------------------------------------------------------------------------------
# Shell: simple commands of a snippet, with $(...) substitutions


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]
    line: int
    whole: bool
    """From a code block (a complete command) rather than an inline span."""
    text: str


UNEXPANDED = "UNEXPANDED$("
"""Prefix of a word that stands for an unquoted $(...) whose output the caller did not know."""

_KEYWORDS = {"do", "then", "else", "{"}
_SKIP = {"for", "done", "fi", "}", "if", "while", "case", "esac"}
_REDIRECT_WITH_TARGET = {">", ">>", "<", "2>", "2>>", "&>"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*=")


def _substitution_end(text: str, start: int) -> int:
    """Index just past the ``)`` closing the ``$(`` at ``start``."""
    depth, quote, i = 0, "", start + 2
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                return i + 1
            depth -= 1
        i += 1
    raise ValueError(f"unclosed $( in {text!r}")


def split_commands(script: str) -> list[str]:
    """The simple commands of a shell snippet: continuation lines joined, comments dropped, split
    at unquoted newlines, ``;``, ``&&``, ``||`` and ``|`` (never inside quotes or ``$(...)``)."""
    text = script.replace("\\\n", " ")
    parts: list[str] = []
    current: list[str] = []
    quote, i = "", 0
    while i < len(text):
        ch = text[i]
        if quote:
            current.append(ch)
            if ch == "\\" and quote == '"' and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = ""
            i += 1
            continue
        if ch in "'\"":
            quote = ch
        elif text.startswith("$(", i):
            end = _substitution_end(text, i)
            current.append(text[i:end])
            i = end
            continue
        elif ch == "#" and (not current or current[-1].isspace()):
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline
            continue
        elif ch in "\n;|" or text.startswith("&&", i):
            parts.append("".join(current))
            current = []
            i += 2 if text.startswith(("&&", "||"), i) else 1
            continue
        current.append(ch)
        i += 1
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _substitutions(command: str) -> tuple[str, list[tuple[str, bool]]]:
    """``command`` with each top-level ``$(...)`` replaced by a marker, and the inner commands
    with whether they stood inside double quotes (one word) or not (split into words)."""
    out: list[str] = []
    found: list[tuple[str, bool]] = []
    quote, i = "", 0
    while i < len(command):
        ch = command[i]
        if quote != "'" and command.startswith("$(", i):
            end = _substitution_end(command, i)
            out.append(f"@@SUBST{len(found)}@@")
            found.append((command[i + 2 : end - 1], quote == '"'))
            i = end
            continue
        if quote:
            if ch == "\\" and quote == '"' and i + 1 < len(command):
                out.append(command[i : i + 2])
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        out.append(ch)
        i += 1
    return "".join(out), found


def _strip_redirections(words: list[str]) -> list[str]:
    kept: list[str] = []
    skip_next = False
    for word in words:
        if skip_next:
            skip_next = False
        elif word in _REDIRECT_WITH_TARGET:
            skip_next = True
        elif word.startswith((">", "2>", "&>")) or (
            word.startswith("<") and not (word.endswith(">") and len(word) > 2)
        ):
            continue  # >file, 2>&1, <file (but <placeholder> is a word)
        else:
            kept.append(word)
    return kept


def _unmark(word: str, subs: Sequence[tuple[str, bool]]) -> str:
    return re.sub(r"@@SUBST(\d+)@@", lambda m: f"$({subs[int(m[1])][0]})", word)


def commands(text: str, line: int, whole: bool, expand: Expander) -> list[Command]:
    """Every simple command of ``text``, those inside ``$(...)`` included. An unquoted
    substitution becomes the words ``expand`` returns for its command, or one
    ``UNEXPANDED$(...)`` word when ``expand`` does not know it."""
    found: list[Command] = []
    for simple in split_commands(text):
        marked, subs = _substitutions(simple)
        for inner, _quoted in subs:
            found.extend(commands(inner, line, whole, expand))
        words: list[str] = []
        for word in shlex.split(marked):
            whole_marker = re.fullmatch(r"@@SUBST(\d+)@@", word)
            if whole_marker and not subs[int(whole_marker[1])][1]:
                inner = subs[int(whole_marker[1])][0]
                expanded = expand(inner)
                words.extend([f"{UNEXPANDED}{inner})"] if expanded is None else expanded)
            else:
                words.append(_unmark(word, subs))
        while words and _ASSIGNMENT.match(words[0]):
            words.pop(0)
        if not words or words[0] in _SKIP:
            continue
        while words and words[0] in _KEYWORDS:
            words.pop(0)
        words = _strip_redirections(words)
        if words:
            found.append(Command(tuple(words), line, whole, simple))
    return found


def all_commands(markdown: str, expand: Expander, first_line: int = 1) -> list[Command]:
    found: list[Command] = []
    for s in snippets(markdown, first_line):
        if s.lang in NOT_SHELL or (not s.block and not re.match(r"\s*[\w./$-]", s.text)):
            continue
        try:
            found.extend(commands(s.text, s.line, s.block, expand))
        except ValueError as exc:  # unbalanced quotes: prose like `'twenty'` is no command
            if s.block or re.search(r"(^|[\s(])pulumi\s", s.text):
                raise AssertionError(f"README.md:{s.line}: cannot parse {s.text!r}: {exc}") from exc
    return found


def never_expand(_inner: str) -> list[str] | None:
    return None


# --------------------------------------------------------------------------------------------
# Pulumi CLI: subcommands and flags against the documented lists


def load_flags() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FLAGS_FILE.read_text())
    return data


def _resolve(words: Sequence[str], spec: Mapping[str, Any]) -> str | None:
    for key, entry in spec["commands"].items():
        parts = key.split()
        names = {parts[-1], entry["use"], *entry["aliases"]}
        if len(words) == len(parts) and list(words[:-1]) == parts[:-1] and words[-1] in names:
            return str(key)
    return None


def _flag(word: str, table: FlagTable) -> tuple[str | None, int]:
    """(error, number of following words the flag takes as its value)."""
    if word.startswith("--"):
        name, eq, _value = word.partition("=")
        flag = table.get(name)
        if flag is None:
            return f"unknown flag {name}", 0
        return None, 1 if flag["value"] == "required" and not eq else 0
    shorts = {f["short"]: f for f in table.values() if f["short"]}
    letters = word[1:]
    for k, letter in enumerate(letters):
        flag = shorts.get(f"-{letter}")
        if flag is None:
            return f"unknown flag -{letter}" + (f" (in {word})" if len(letters) > 1 else ""), 0
        if flag["value"] == "required":
            return None, 0 if letters[k + 1 :].lstrip("=") else 1
        if flag["value"] == "optional":
            return None, 0
    return None, 0


def _subcommand(args: Sequence[str], spec: Mapping[str, Any]) -> tuple[str | None, int, list[str]]:
    """(the subcommand's key, the index of the word after it, errors of the global flags before
    it): the longest documented subcommand the leading words name."""
    errors: list[str] = []
    i = 0
    while i < len(args) and args[i].startswith("-"):
        error, takes = _flag(args[i], spec["global"]["flags"])
        errors += [error] if error else []
        i += 1 + takes
    leading: list[str] = []
    for word in args[i:]:
        if word.startswith("-"):
            break
        leading.append(word)
    for n in range(len(leading), 0, -1):
        key = _resolve(leading[:n], spec)
        if key:
            return key, i + n, errors
    return None, i, [*errors, f"unknown subcommand: pulumi {' '.join(leading[:2]) or '(none)'}"]


def check_pulumi(words: Sequence[str], spec: Mapping[str, Any], whole: bool = True) -> list[str]:
    """What is wrong with one ``pulumi ...`` command line: an unknown subcommand, a flag the
    subcommand (or the CLI globally) does not document, a missing flag value, or more (or, for a
    whole command, fewer) positional arguments than the subcommand takes."""
    assert words and words[0] == "pulumi", words
    key, start, errors = _subcommand(words[1:], spec)
    if key is None:
        return errors
    entry = spec["commands"][key]
    table: dict[str, Mapping[str, Any]] = {**spec["global"]["flags"], **entry["flags"]}
    rest = list(words[1 + start :])
    positional: list[str] = []
    j = 0
    while j < len(rest):
        word = rest[j]
        if word == "--":
            positional.extend(rest[j + 1 :])
            break
        if word.startswith(UNEXPANDED):
            errors.append(f"cannot check the words of unquoted {word[len('UNEXPANDED') :]}")
        elif word.startswith("-") and len(word) > 1:
            error, takes = _flag(word, table)
            if error or (takes and j + 1 >= len(rest) and whole):
                errors.append(f"pulumi {key}: {error or f'{word} needs a value'}")
            j += takes
        else:
            positional.append(word)
        j += 1
    most, least = entry["args"]["max"], entry["args"]["min"]
    if most is not None and len(positional) > most:
        errors.append(f"pulumi {key} takes at most {most} argument(s), got {positional}")
    if whole and len(positional) < least:
        errors.append(f"pulumi {key} needs {least} argument(s), got {positional}")
    return errors


def pulumi_commands(found: Sequence[Command]) -> list[Command]:
    return [c for c in found if c.words[0] == "pulumi"]


# --------------------------------------------------------------------------------------------
# Repository paths the README names

REPO_PATH = re.compile(
    r"(?<![\w./$~@-])((?:\.github|\.ci|components|tools|policies|docs|scripts|tests|bench)/"
    r"(?:[\w.*-]|/|<[^<>\n`]+>)*)"
)
ROOT_FILE = re.compile(
    r"(?<![\w./$~@-])(Pulumi(?:\.(?:[\w-]+|<[^<>\n`]+>))?\.yaml|requirements[\w*-]*\.txt|Makefile"
    r"|checkov(?:-aws)?-skips\.yaml|\.checkov(?:-kubernetes)?\.yaml|__main__\.py|pyproject\.toml)(?![\w/-])"
)
BARE_TEST_FILE = re.compile(r"(?<![\w./-])(test_\w+\.py)\b")
PLACEHOLDER = re.compile(r"<[^<>]+>")

SKIPPED_PLACEHOLDERS = {
    "<name>": "a stack the operator is about to create (step 4): no file of the repository",
}
"""Placeholders that name nothing in the repository yet; every other one must match a file."""


def named_paths(markdown: str) -> dict[str, int]:
    """Every repository path named in code (first line it appears on)."""
    found: dict[str, int] = {}
    for s in snippets(markdown):
        for regex, prefix in ((REPO_PATH, ""), (ROOT_FILE, ""), (BARE_TEST_FILE, "tests/")):
            for m in regex.finditer(s.text):
                path = prefix + m[1].rstrip(".,:")
                found.setdefault(path, s.line)
    return found


def stack_policy_config(stack: str) -> str:
    return load_stack(stack).policy_config


STACK_FALLBACK: dict[str, Callable[[str], str]] = {
    # "its own policies/config/<stack>.json, else its role's": the file the stack does get
    "policies/config/<stack>.json": stack_policy_config,
}


def missing_paths(
    paths: Mapping[str, int], root: Path, stacks: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(what is missing, what was skipped and why) for each named path: ``<stack>`` stands for
    each stack, other placeholders and ``*`` must match at least one file."""
    missing: list[str] = []
    skipped: list[str] = []
    for path, line in sorted(paths.items()):
        reasons = [why for ph, why in SKIPPED_PLACEHOLDERS.items() if ph in path]
        if reasons:
            skipped.append(f"{path}: {reasons[0]}")
            continue
        wanted = [path]
        if "<stack>" in path:
            fallback = STACK_FALLBACK.get(path)
            wanted = [fallback(s) if fallback else path.replace("<stack>", s) for s in stacks]
        for one in wanted:
            pattern = PLACEHOLDER.sub("*", one).rstrip("/")
            hits = list(root.glob(pattern)) if "*" in pattern else [root / pattern]
            if not any(hit.exists() for hit in hits):
                missing.append(f"README.md:{line}: {one}")
    return missing, skipped


def layout_entries(block: str) -> list[str]:
    """Paths of the Layout tree: each entry under the directory it is indented below (two
    spaces a level); description and continuation lines are left out."""
    entries: list[str] = []
    parents: list[tuple[int, str]] = []  # (indent, path) of the directories above
    for raw in block.splitlines():
        if not raw.strip():
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        name = raw.split()[0]
        while parents and parents[-1][0] >= indent:
            parents.pop()
        if indent and (not parents or indent != parents[-1][0] + 2):
            continue  # a description's continuation line
        if indent and not ("." in name or name.endswith("/")):
            continue
        path = (parents[-1][1] if parents else "") + name
        entries.append(path)
        if name.endswith("/"):
            parents.append((indent, path))
    return entries


# --------------------------------------------------------------------------------------------
# make targets


def make_targets(makefile: str) -> set[str]:
    variables: dict[str, str] = {}
    for m in re.finditer(r"^([A-Z_]+)\s*[:?]?=\s*(.*)$", makefile, re.M):
        variables.setdefault(m[1], m[2].strip())

    def expand(text: str) -> str:
        for _ in range(5):
            text = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m[1], m[0]), text)
        return text

    targets: set[str] = set()
    for m in re.finditer(r"^([^\s:#=][^:=]*?):(?!=)", makefile, re.M):
        targets.update(expand(m[1]).split())
    return targets - {".PHONY"}


# ============================================================================================
# Tests of the README


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text()


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return load_flags()


@pytest.fixture
def plan_dir(plans: dict[str, Plan], tmp_path: Path) -> Path:
    """``build/`` as ``make preview`` leaves it: ``<stack>/plan.json`` per stack."""
    for stack, plan in plans.items():
        plan.write(tmp_path / stack / "plan.json")
    return tmp_path


def run_tool(words: Sequence[str], build: Path | None = None) -> subprocess.CompletedProcess[str]:
    """A ``.venv/bin/python -m tools.<x> ...`` line of the README, run as written (with this
    interpreter, and the plans of ``build`` for tools.targets)."""
    assert words[0] == ".venv/bin/python" and words[1] == "-m", words
    extra = ["--build", str(build)] if words[2] == "tools.targets" and build else []
    return subprocess.run(
        [sys.executable, *words[1:], *extra],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def tool_expander(build: Path) -> Expander:
    def expand(inner: str) -> list[str] | None:
        words = shlex.split(inner)
        if words[:2] != [".venv/bin/python", "-m"]:
            return None
        result = run_tool(words, build)
        assert result.returncode == 0, f"$({inner}): {result.stderr}"
        return result.stdout.split()

    return expand


def path_problems(markdown: str) -> list[str]:
    missing, _skipped = missing_paths(named_paths(markdown), REPO, STACKS)
    return missing


def module_names(markdown: str) -> set[str]:
    """``components.x.y``, ``tools.x`` and ``policies.x`` names in code."""
    return {
        m[1]
        for s in snippets(markdown)
        for m in re.finditer(r"(?<![\w./-])((?:components|tools|policies)(?:\.\w+)+)", s.text)
    }


def module_problems(markdown: str) -> list[str]:
    """``components.x.y`` and ``tools.x`` names in code that do not import or lack the
    attribute."""
    broken: list[str] = []
    for name in sorted(module_names(markdown)):
        parts = name.split(".")
        for n in range(len(parts), 0, -1):
            try:
                obj: Any = importlib.import_module(".".join(parts[:n]))
            except ModuleNotFoundError:
                continue
            try:
                for attr in parts[n:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                broken.append(name)
            break
        else:
            broken.append(name)
    return broken


def make_used(markdown: str) -> set[str]:
    return {
        word
        for c in all_commands(markdown, never_expand)
        if c.words[0] == "make"
        for word in c.words[1:]
        if "=" not in word and not word.startswith("-")
    }


def make_problems(markdown: str) -> list[str]:
    targets = make_targets((REPO / "Makefile").read_text())
    return [
        f"make {t}: no such target in the Makefile" for t in sorted(make_used(markdown) - targets)
    ]


def pulumi_problems(markdown: str, spec: Mapping[str, Any], expand: Expander) -> list[str]:
    return [
        f"README.md:{c.line}: {problem}   [{c.text}]"
        for c in pulumi_commands(all_commands(markdown, expand))
        for problem in check_pulumi(c.words, spec, c.whole)
    ]


def local_runs(markdown: str) -> list[tuple[str, ...]]:
    """The ``.venv/bin/python -m tools...`` commands of "Deploy for real" (code blocks, inline
    code and ``$(...)``), ``<stack>`` as each stack."""
    text, first = section(markdown, DEPLOY_SECTION)
    runs: list[tuple[str, ...]] = []
    for c in all_commands(text, never_expand, first):
        if c.words[:2] != (".venv/bin/python", "-m"):
            continue
        if "<stack>" in c.words:
            runs += [tuple(s if w == "<stack>" else w for w in c.words) for s in STACKS]
        else:
            runs.append(c.words)
    return runs


def local_problems(runs: Sequence[tuple[str, ...]], build: Path) -> list[str]:
    """What fails or prints other than promised when the commands run as written."""
    problems: list[str] = []
    for words in runs:
        result = run_tool(words, build)
        out, shown = result.stdout, " ".join(words)
        if result.returncode != 0 or not out.strip():
            problems.append(f"{shown}: exit {result.returncode}: {result.stderr.strip()}")
        elif words[2] == "tools.targets":
            lines = out.splitlines()
            prefix = f"--target=urn:pulumi:{words[3]}::exposcholar::"
            if not all(line.startswith(prefix) for line in lines) or not any(
                line.endswith("::images-server") for line in lines
            ):
                problems.append(f"{shown}: not the ECR repositories' --target flags: {lines}")
        elif words[2:4] == ("tools.stacks", "list") and {
            s["stack"] for s in json.loads(out)
        } != set(STACKS):
            problems.append(f"{shown}: not every stack: {out}")
        elif words[2:4] == ("tools.stacks", "policy-config") and not (REPO / out.strip()).is_file():
            problems.append(f"{shown}: {out.strip()} is no file")
    return problems


def test_every_repository_path_the_readme_names_exists(readme: str) -> None:
    paths = named_paths(readme)
    # the extraction sees what it should: some of each kind
    for expected in (
        "Pulumi.<stack>.yaml",
        "policies/config/staging.json",
        "docs/teardown.md",
        "tests/test_keys.py",
        ".github/workflows/preview.yml",
        "scripts/github-environments.sh",
        "requirements*.txt",
    ):
        assert expected in paths, sorted(paths)
    missing, skipped = missing_paths(paths, REPO, STACKS)
    assert not missing, "README.md names files that do not exist:\n" + "\n".join(missing)
    assert {s.split(":")[0] for s in skipped} == {
        "Pulumi.<name>.yaml",
        "policies/config/<name>.json",
    }, skipped


def test_every_layout_entry_exists(readme: str) -> None:
    text, first = section(readme, LAYOUT_SECTION)
    (block,) = [s for s in snippets(text, first) if s.block]
    entries = layout_entries(block.text)
    assert "components/settings/" in entries and ".github/workflows/" in entries, entries
    missing, _ = missing_paths(dict.fromkeys(entries, block.line), REPO, STACKS)
    assert not missing, "the Layout tree names files that do not exist:\n" + "\n".join(missing)


def test_every_module_reference_resolves(readme: str) -> None:
    # the extraction sees what it should: a module, a function, a component's package
    assert {
        "tools.preview",
        "components.lib.kube.namespaces.namespace",
        "components.settings",
    } <= module_names(readme), sorted(module_names(readme))
    assert module_problems(readme) == []


def test_every_make_target_exists(readme: str) -> None:
    assert {"preview", "test", ".venv/.installed"} <= make_used(readme)
    assert make_problems(readme) == []


def test_every_pulumi_command_uses_documented_subcommands_and_flags(
    readme: str, spec: dict[str, Any], plan_dir: Path
) -> None:
    expand = tool_expander(plan_dir)
    found = pulumi_commands(all_commands(readme, expand))
    used = {" ".join(c.words[1:3]) for c in found}
    # what the deploy path uses is seen (the $(...) of step 9 expanded into --target flags)
    for expected in ("login s3://$STATE_BUCKET?region=$AWS_REGION", "stack init", "up --stack"):
        assert expected in used, sorted(used)
    assert any(w.startswith("--target=urn:pulumi:staging::") for c in found for w in c.words)
    assert any(c.words[1:3] == ("stack", "output") and not c.whole for c in found)  # in $(...)
    problems = pulumi_problems(readme, spec, expand)
    assert not problems, "\n".join(problems)


def test_runbooks_pulumi_commands_are_documented_too(spec: dict[str, Any]) -> None:
    """The runbooks the deploy section sends the operator to (docs/*.md)."""
    problems: list[str] = []
    checked: dict[str, int] = {}
    for doc in sorted((REPO / "docs").glob("*.md")):
        found = pulumi_commands(all_commands(doc.read_text(), never_expand))
        checked[doc.name] = len(found)
        for c in found:
            problems += [f"{doc.name}:{c.line}: {p}" for p in check_pulumi(c.words, spec, c.whole)]
    # the runbooks the README names are read, and their commands seen
    assert checked.get("teardown.md") and checked.get("rotate-secrets.md"), checked
    assert not problems, "\n".join(problems)


def test_deploy_section_local_commands_run_as_written(readme: str, plan_dir: Path) -> None:
    runs = local_runs(readme)
    assert {("tools.targets", "staging"), ("tools.stacks", "list")} <= {w[2:4] for w in runs}
    assert any(w[2:4] == ("tools.stacks", "policy-config") for w in runs), runs
    problems = local_problems(runs, plan_dir)
    assert not problems, "\n".join(problems)


BROKEN_COPIES = [
    ("`docs/teardown.md`", "`docs/tear-down.md`", path_problems, "docs/tear-down.md"),
    (
        "components.lib.kube.namespaces.namespace",
        "components.lib.kube.namespaces.nmspace",
        module_problems,
        "nmspace",
    ),
    ("make preview STACK=staging", "make previews STACK=staging", make_problems, "make previews"),
    ("--show-secrets", "--reveal-secrets", None, "unknown flag --reveal-secrets"),
    ("pulumi stack init staging", "pulumi stack create-new staging", None, "pulumi stack"),
    ("pulumi destroy --stack staging", "pulumi destroy --stack", None, "--stack needs a value"),
]


@pytest.mark.parametrize("case", BROKEN_COPIES, ids=[c[1] for c in BROKEN_COPIES])
def test_checks_catch_a_broken_copy_of_the_readme(
    readme: str,
    spec: dict[str, Any],
    case: tuple[str, str, Callable[[str], list[str]] | None, str],
) -> None:
    old, new, check, expected = case
    assert old in readme, f"{old!r} is gone from README.md: pick another line to break"
    broken = readme.replace(old, new, 1)
    problems = check(broken) if check else pulumi_problems(broken, spec, lambda _inner: [])
    assert any(expected in p for p in problems), problems


def test_local_command_check_catches_a_failing_command(readme: str, plan_dir: Path) -> None:
    broken = readme.replace("tools.stacks list", "tools.stacks lst", 1)
    assert any(
        "tools.stacks lst: exit 2" in p for p in local_problems(local_runs(broken), plan_dir)
    )
    (plan_dir / "staging" / "plan.json").unlink()  # before `make preview`: no plan, exit 2
    problems = local_problems([r for r in local_runs(readme) if r[2] == "tools.targets"], plan_dir)
    assert any("plan" in p and "exit 2" in p for p in problems), problems


BASH = shutil.which("bash") or "/bin/bash"

SECRET_CHECKS: dict[str, Callable[[str], str]] = {
    "cacheAuthToken": validation.cache_auth_token,
    "djangoSecretKey": validation.django_secret_key,
}


def test_secret_generators_of_step_6_make_values_the_settings_accept(readme: str) -> None:
    """``pulumi config set --secret <key> "$(generator)"``: the generator, run as written,
    prints a value the key's validator accepts."""
    text, first = section(readme, DEPLOY_SECTION)
    checked: set[str] = set()
    for c in pulumi_commands(all_commands(text, never_expand, first)):
        if c.words[1:3] != ("config", "set") or "--secret" not in c.words:
            continue
        key, value = c.words[-2], c.words[-1]
        generator = re.fullmatch(r"\$\((.*)\)", value, re.S)
        if key not in SECRET_CHECKS or not generator:
            continue
        result = subprocess.run(
            [BASH, "-c", generator[1]], capture_output=True, text=True, timeout=30, check=False
        )
        assert result.returncode == 0, result.stderr
        for _ in range(3):  # random output: more than one draw
            SECRET_CHECKS[key](result.stdout.strip())
        checked.add(key)
    assert checked == set(SECRET_CHECKS), checked


# ============================================================================================
# Tests of the checks themselves: each catches what it is for


def test_fixture_names_its_sources(spec: dict[str, Any]) -> None:
    assert "3.272.0" in spec["_source"]["wanted_version"]
    assert re.fullmatch(r"[0-9a-f]{40}", spec["_source"]["source_commit"])
    assert {"up", "preview", "destroy", "stack init", "config set"} <= set(spec["commands"])
    for name, entry in [("global", spec["global"]), *spec["commands"].items()]:
        source = entry["_source"]
        assert source["code"].startswith("https://github.com/pulumi/pulumi/blob/"), name
        assert source["docs"].startswith("https://www.pulumi.com/docs/iac/cli/commands/"), name
        assert entry["flags"], name


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("pulumi up --stack staging --bogus", "unknown flag --bogus"),
        ("pulumi up -z", "unknown flag -z"),
        ("pulumi preview --secret", "unknown flag --secret"),
        ("pulumi stakc init staging", "unknown subcommand: pulumi stakc init"),
        ("pulumi stack inti", "pulumi stack takes at most 0 argument(s)"),
        ("pulumi stack rm staging prod", "takes at most 1 argument(s)"),
        ("pulumi config set --stack staging", "needs 1 argument(s)"),
        ("pulumi up --stack", "--stack needs a value"),
        ("pulumi --bogus up", "unknown flag --bogus"),
        ("pulumi up $(tool)", "cannot check the words of unquoted $(tool)"),
    ],
)
def test_pulumi_check_refuses(line: str, error: str, spec: dict[str, Any]) -> None:
    (command,) = pulumi_commands(commands(line, 1, True, never_expand))
    problems = check_pulumi(command.words, spec)
    assert any(error in p for p in problems), problems


@pytest.mark.parametrize(
    "line",
    [
        "pulumi --non-interactive -C . up -s staging --diff --target=urn:x -t urn:y --refresh",
        "pulumi stack init staging --secrets-provider awskms://alias/x",
        "pulumi stack rm staging --preserve-config -y",
        "pulumi config set --stack staging --path 'adminRoleArns[0]' arn",
        "pulumi stack output --stack staging kubeconfig --show-secrets > out",
        "pulumi state unprotect --all --yes",
        "pulumi destroy -sstaging",
    ],
)
def test_pulumi_check_accepts(line: str, spec: dict[str, Any]) -> None:
    (command,) = commands(line, 1, True, never_expand)
    assert check_pulumi(command.words, spec) == []


def test_shell_parsing_joins_lines_and_sees_substitutions() -> None:
    script = (
        "# a comment\n"
        "pulumi up --stack staging \\\n"
        "  $(.venv/bin/python -m tools.targets staging)  # trailing comment\n"
        "for app in server web; do\n"
        '  digest=$(aws ecr describe-images --repository-name "$app")\n'
        '  pulumi config set --stack staging "${app}Image" "x@$digest"\n'
        "done\n"
        'gh variable set X --body "$(pulumi stack output --stack staging arn)"\n'
    )
    found = commands(script, 1, True, lambda inner: ["--target=urn:a", "--target=urn:b"])
    assert [c.words for c in found] == [
        (".venv/bin/python", "-m", "tools.targets", "staging"),
        ("pulumi", "up", "--stack", "staging", "--target=urn:a", "--target=urn:b"),
        ("aws", "ecr", "describe-images", "--repository-name", "$app"),
        ("pulumi", "config", "set", "--stack", "staging", "${app}Image", "x@$digest"),
        ("pulumi", "stack", "output", "--stack", "staging", "arn"),
        ("gh", "variable", "set", "X", "--body", "$(pulumi stack output --stack staging arn)"),
    ]


def test_path_check_reports_missing_files_and_expands_placeholders(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("")
    (tmp_path / "Pulumi.one.yaml").write_text("")
    markdown = (
        "Read `docs/a.md` and `docs/missing.md`; stacks: `Pulumi.<stack>.yaml`; "
        "a new one: `Pulumi.<name>.yaml`.\n\n```sh\nbash scripts/nope.sh\n```\n"
    )
    paths = named_paths(markdown)
    assert set(paths) == {
        "docs/a.md",
        "docs/missing.md",
        "Pulumi.<stack>.yaml",
        "Pulumi.<name>.yaml",
        "scripts/nope.sh",
    }
    missing, skipped = missing_paths(paths, tmp_path, ["one", "two"])
    assert missing == [
        "README.md:1: Pulumi.two.yaml",
        "README.md:1: docs/missing.md",
        "README.md:4: scripts/nope.sh",
    ]
    assert [s.split(":")[0] for s in skipped] == ["Pulumi.<name>.yaml"]


def test_layout_parser_nests_entries_under_their_directory() -> None:
    block = (
        "Pulumi.yaml              project\n"
        "components/\n"
        "  settings/              the only reader\n"
        "    keys.py              declarations\n"
        "  platform/\n"
        "    vpa.py               VPA (a helm.v3.Release: its hooks make the\n"
        "                         webhook's TLS)\n"
        "tests/                   pytest suite\n"
    )
    assert layout_entries(block) == [
        "Pulumi.yaml",
        "components/",
        "components/settings/",
        "components/settings/keys.py",
        "components/platform/",
        "components/platform/vpa.py",
        "tests/",
    ]


def test_make_targets_expand_variables() -> None:
    makefile = (
        "VENV := .venv\nSTAMP := $(VENV)/.installed\n$(STAMP): a b\n\ttouch x\nlint: $(STAMP)\n"
    )
    assert make_targets(makefile) == {".venv/.installed", "lint"}
