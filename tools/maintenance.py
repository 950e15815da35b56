"""Switches the edge's maintenance mode and its allowlist through the Pulumi CLI.

    scripts/maintenance [--stack NAME] enable | disable | status
    scripts/maintenance [--stack NAME] allow add CIDR... | allow remove CIDR... | allow list

(``scripts/maintenance`` runs ``python -m tools.maintenance`` from the repository root.) The
two settings are ``exposcholar:maintenanceEnabled`` (a boolean) and
``exposcholar:maintenanceAllowlist`` (a list of IPv4 CIDRs that still get the normal site). This
tool never edits a stack file itself: every read and write is a ``pulumi config`` call, on the
stack given with ``--stack`` (passed on to every call) or else the selected one. The ``pulumi``
executable is found on PATH; the environment variable ``PULUMI`` may name another (the tests
use a stand-in).

What the calls do, as read in the Pulumi CLI's source (pulumi/pulumi, pkg/cmd/pulumi/config and
sdk/go/common/resource/config):

* ``config set KEY true`` stores the *string* "true", with or without ``--path``: a path of one
  segment is stored as given (``Map.Set``), and only values inside a list or map are coerced
  to booleans and integers. ``config set --type bool KEY true`` (CLI 3.148 and newer) stores a
  YAML boolean, so that is what enable and disable use.
* ``config set --path 'KEY[i]' VALUE`` sets item i of the list KEY, creating the list when the
  key is unset and appending when i is the list's length (any larger index is an error). A
  CIDR is neither a boolean nor an integer, so it is stored as a string.
* ``config rm KEY`` deletes the key from the stack file (no error when it is absent); then the
  default declared in Pulumi.yaml applies again (``[]`` for the allowlist).
* ``config get KEY --json`` prints ``{"value": "<text>", "objectValue": <list>, "secret":
  false}``; ``objectValue`` is present only for lists and maps. A key the stack file leaves out
  is answered with Pulumi.yaml's default, and a key with neither fails with "configuration key
  '...' not found" (taken here as false, or the empty list).

Every CIDR argument is checked before anything changes, with the rule the settings apply to the
allowlist (``components.settings.parsers``): an IPv4 CIDR with its host bits zero, never
0.0.0.0/0 (that would let everyone past maintenance; ``disable`` is the way to open the site).
A bare address such as 203.0.113.7 is taken as 203.0.113.7/32, which is what an operator
checking from their own address means, and stored that way.

Exit codes: 0 done (or nothing to do); 1 the Pulumi CLI is missing or a call failed (its
stderr is shown); 2 a usage error or an invalid CIDR.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from components.settings.keys import PROJECT
from components.settings.parsers import InvalidValueError, cidr, cidr_allowlist

ENABLED_KEY = "maintenanceEnabled"
ALLOWLIST_KEY = "maintenanceAllowlist"
PROG = "scripts/maintenance"
INSTALL_HINT = (
    "install the Pulumi CLI, 3.148 or newer (the deploy workflows use 3.272.0): "
    "https://www.pulumi.com/docs/iac/download-install/"
)
_NOT_FOUND = re.compile(r"configuration key '[^']*' not found")
_WORLD = "0.0.0.0/0"


class MaintenanceError(Exception):
    """A failure the command reports on one line (or a few) and exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# --- The Pulumi CLI -------------------------------------------------------------------------


def find_pulumi(environ: Mapping[str, str] | None = None) -> str:
    """The Pulumi CLI to run: ``$PULUMI`` if set, else ``pulumi`` on PATH."""
    env = os.environ if environ is None else environ
    wanted = env.get("PULUMI") or "pulumi"
    found = shutil.which(wanted, path=env.get("PATH"))
    if found is None:
        where = f"PULUMI={wanted!r} is not an executable" if env.get("PULUMI") else "not on PATH"
        raise MaintenanceError(f"the Pulumi CLI was not found ({where}): {INSTALL_HINT}")
    return found


@dataclass(frozen=True)
class Pulumi:
    """``pulumi config`` calls on one stack (``stack`` None: the selected stack)."""

    executable: str
    stack: str | None

    def _stack_args(self) -> list[str]:
        return ["--stack", self.stack] if self.stack else []

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``pulumi ARGS --stack S``, non-interactively (stdin closed, output captured, so
        the CLI never prompts, e.g. to create a missing stack)."""
        env = {**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"}
        return subprocess.run(  # noqa: S603 - the executable is the operator's Pulumi CLI
            [self.executable, *args, *self._stack_args()],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env=env,
            check=False,
        )

    def check(self, *args: str) -> str:
        """Run, and return stdout; a failure raises with the CLI's stderr."""
        result = self.run(*args)
        if result.returncode != 0:
            raise self.failure(args, result)
        return result.stdout

    def failure(self, args: Sequence[str], result: subprocess.CompletedProcess[str]) -> Exception:
        """The error for a failed call: the command line and the CLI's own message."""
        shown = " ".join(["pulumi", *args, *self._stack_args()])
        detail = (result.stderr.strip() or result.stdout.strip() or "(no output)").replace(
            "\n", "\n  "
        )
        hint = ""
        if "unknown flag: --type" in result.stderr:
            hint = f"\n{INSTALL_HINT} (--type came with 3.148)"
        return MaintenanceError(
            f"`{shown}` failed (exit {result.returncode}):\n  {detail}{hint}", exit_code=1
        )

    def get(self, key: str) -> dict[str, Any] | None:
        """``config get KEY --json`` as a dict, or None when the key is set nowhere (neither in
        the stack file nor as a default in Pulumi.yaml)."""
        args = ("config", "get", key, "--json")
        result = self.run(*args)
        if result.returncode != 0:
            if _NOT_FOUND.search(result.stderr):
                return None
            raise self.failure(args, result)
        try:
            # the JSON object comes first; environment diagnostics may follow it
            value, _end = json.JSONDecoder().raw_decode(result.stdout.lstrip())
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            raise MaintenanceError(
                f"`pulumi config get {key} --json` printed no JSON object: {result.stdout!r}"
            )
        return value

    def set(self, key: str, value: str, *flags: str) -> None:
        """``config set FLAGS KEY VALUE``."""
        self.check("config", "set", *flags, key, value)

    def remove(self, key: str) -> None:
        """``config rm KEY``: the key leaves the stack file (no error if it is not there)."""
        self.check("config", "rm", key)

    def stack_name(self) -> str | None:
        """The stack the calls act on: ``--stack`` or the selected one (None if unknown)."""
        if self.stack:
            return self.stack
        result = self.run("stack", "--show-name")
        name = result.stdout.strip()
        return name if result.returncode == 0 and name else None


# --- Reading the two settings ---------------------------------------------------------------


def read_enabled(pulumi: Pulumi) -> bool:
    """Whether the stack's configuration turns maintenance on (unset: off)."""
    got = pulumi.get(ENABLED_KEY)
    if got is None:
        return False
    _refuse_secret(got, ENABLED_KEY)
    text = str(got.get("value", "")).strip().lower()
    if text not in ("true", "false"):
        raise MaintenanceError(
            f"{PROJECT}:{ENABLED_KEY} is {got.get('value')!r}, not a boolean; run "
            f"`{PROG} enable` or `{PROG} disable` to set it"
        )
    return text == "true"


def read_allowlist(pulumi: Pulumi) -> list[str]:
    """The stack's allowlist as stored (unset: empty)."""
    return _read_allowlist(pulumi)[0]


def _read_allowlist(pulumi: Pulumi) -> tuple[list[str], bool]:
    """The allowlist, and whether it is kept as a real list. One kept as a JSON string (a plain
    ``config set KEY '[...]'``) is read too; a change rewrites it as a list."""
    got = pulumi.get(ALLOWLIST_KEY)
    if got is None:
        return [], True
    _refuse_secret(got, ALLOWLIST_KEY)
    items: Any = got.get("objectValue")
    real = items is not None
    if not real:
        try:
            items = json.loads(str(got.get("value", "")))
        except json.JSONDecodeError:
            items = None
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise MaintenanceError(
            f"{PROJECT}:{ALLOWLIST_KEY} is {got.get('value')!r}, not a list of CIDRs; fix the "
            "stack file (or remove the key) and run this again"
        )
    return list(items), real


def _refuse_secret(got: dict[str, Any], key: str) -> None:
    """Neither setting is a secret; an encrypted one was set by mistake."""
    if got.get("secret"):
        raise MaintenanceError(f"{PROJECT}:{key} is stored as a secret; it should be plain")


# --- CIDR arguments -------------------------------------------------------------------------

_ENTRY = cidr()


def normalise_cidr(raw: str) -> str:
    """The allowlist entry for one argument (a bare address becomes a /32), or
    MaintenanceError (exit 2) naming the argument and what was expected."""
    try:
        entry = _ENTRY(raw)
    except InvalidValueError as exc:
        hint = ""
        try:
            network = ipaddress.IPv4Network(raw.strip(), strict=False)
            hint = f" (did you mean {network}?)"
        except ValueError:
            pass
        raise MaintenanceError(
            f"{raw!r} is not an allowlist entry: expected {exc.expected}{hint}, or a single "
            "address such as 203.0.113.7 (taken as /32)",
            exit_code=2,
        ) from None
    if entry == _WORLD:
        raise MaintenanceError(
            f"{raw!r} is not an allowlist entry: expected a specific IPv4 CIDR; {_WORLD} would "
            f"let every client past maintenance (to open the site, run `{PROG} disable`)",
            exit_code=2,
        )
    return entry


def normalise_all(raws: Sequence[str]) -> list[str]:
    """Every argument as an entry, in order, without repeats; the first invalid one raises."""
    entries: list[str] = []
    for raw in raws:
        entry = normalise_cidr(raw)
        if entry not in entries:
            entries.append(entry)
    return entries


def _check_list(entries: list[str]) -> None:
    """The list as the settings will read it must pass their rule."""
    try:
        cidr_allowlist(allow_empty=True)(json.dumps(entries))
    except InvalidValueError as exc:
        raise MaintenanceError(
            f"the allowlist would be {entries}, which the settings refuse: expected "
            f"{exc.expected}; fix the stack's {PROJECT}:{ALLOWLIST_KEY} first",
            exit_code=2,
        ) from None


def _same(entry: str, stored: str) -> bool:
    """Whether a stored item is this entry (stored items are compared as networks, so a
    hand-written 203.0.113.7 matches 203.0.113.7/32)."""
    try:
        return ipaddress.IPv4Network(stored.strip()) == ipaddress.IPv4Network(entry)
    except ValueError:
        return stored == entry


# --- Commands -------------------------------------------------------------------------------


def _stack_label(pulumi: Pulumi) -> str:
    """The stack as named in messages."""
    return pulumi.stack or "the selected stack"


def next_steps(pulumi: Pulumi) -> str:
    """What the operator runs after a change, naming the stack."""
    stack = pulumi.stack_name() or "<stack>"
    stack_file = f"Pulumi.{stack.rsplit('/', 1)[-1]}.yaml"
    return "\n".join(
        [
            "Next:",
            f"  pulumi preview --stack {stack} --diff",
            "      expect only the edge ConfigMap and the edge Deployment's pod template to "
            "change (stop if anything else does)",
            f"  pulumi up --stack {stack}",
            "The change takes effect once the edge pods have rolled (the pod template change "
            "replaces them; docs/maintenance.md says how to watch and verify).",
            f"Commit {stack_file} too: the deploy workflow applies main's stack files, so a "
            "switch left out of main is undone by the next deploy.",
        ]
    )


def _describe(entries: Sequence[str]) -> str:
    """The allowlist on one line."""
    return ", ".join(entries) if entries else "(empty: no client gets past maintenance)"


def cmd_switch(pulumi: Pulumi, on: bool) -> None:
    """enable / disable: set maintenanceEnabled unless it already says so."""
    word = "on" if on else "off"
    if read_enabled(pulumi) == on:
        print(f"Maintenance mode is already {word} in the configuration of {_stack_label(pulumi)}; "
              "nothing changed.")  # fmt: skip
        return
    # --type bool stores a YAML boolean (CLI 3.148+). Without it, `config set` stores the string
    # "true" even with --path: a single-segment path is stored as given (Map.Set in
    # sdk/go/common/resource/config/map.go); only list and map items are coerced.
    pulumi.set(ENABLED_KEY, "true" if on else "false", "--type", "bool")
    if read_enabled(pulumi) != on:
        raise MaintenanceError(
            f"{PROJECT}:{ENABLED_KEY} still reads {'off' if on else 'on'} after the change; "
            "check the stack file"
        )
    print(f"Maintenance mode switched {word} in the configuration of {_stack_label(pulumi)}.")
    if on:
        allowlist = read_allowlist(pulumi)
        print(f"Clients that still get the normal site: {_describe(allowlist)}")
    print(next_steps(pulumi))


def cmd_status(pulumi: Pulumi) -> None:
    """Whether the stack's configuration has maintenance on, and the allowlist."""
    enabled = read_enabled(pulumi)
    allowlist = read_allowlist(pulumi)
    print(f"Stack: {pulumi.stack_name() or _stack_label(pulumi)}")
    print(f"Maintenance mode: {'on' if enabled else 'off'} (as configured; deployed after "
          "`pulumi up` and the edge pods' roll)")  # fmt: skip
    print(f"Allowlist: {_describe(allowlist)}")


def cmd_allow_list(pulumi: Pulumi) -> None:
    """The allowlist, one entry a line (nothing when empty), for scripts and eyes."""
    for entry in read_allowlist(pulumi):
        print(entry)


def cmd_allow_add(pulumi: Pulumi, raws: Sequence[str]) -> None:
    """Append the entries not yet in the list (an entry already there is reported, not
    added twice)."""
    entries = normalise_all(raws)  # before anything is read or changed
    current, real = _read_allowlist(pulumi)
    new: list[str] = []
    for entry in entries:
        if any(_same(entry, stored) for stored in current):
            print(f"{entry} is already in the allowlist; unchanged.")
            continue
        covering = [c for c in current if _covers(c, entry)]
        if covering:
            print(f"note: {entry} lies within {covering[0]}, already allowed; adding it anyway.")
        new.append(entry)
    if not new:
        print("Nothing changed.")
        return
    wanted = [*current, *new]
    _check_list(wanted)
    if real:
        _append(pulumi, len(current), new)
    else:
        _rebuild(pulumi, wanted)
    _verify(pulumi, wanted)
    for entry in new:
        print(f"Added {entry} to the allowlist.")
    print(f"Allowlist: {_describe(wanted)}")
    print(next_steps(pulumi))


def cmd_allow_remove(pulumi: Pulumi, raws: Sequence[str]) -> None:
    """Drop the entries from the list (an entry not there is reported); the list is
    rebuilt, and left unset when it becomes empty."""
    entries = normalise_all(raws)  # before anything is read or changed
    current = read_allowlist(pulumi)
    kept = [stored for stored in current if not any(_same(e, stored) for e in entries)]
    for entry in entries:
        if not any(_same(entry, stored) for stored in current):
            print(f"{entry} is not in the allowlist; unchanged.")
    if kept == current:
        print("Nothing changed.")
        return
    _check_list(kept)
    _rebuild(pulumi, kept)
    _verify(pulumi, kept)
    for stored in current:
        if stored not in kept:
            print(f"Removed {stored} from the allowlist.")
    print(f"Allowlist: {_describe(kept)}")
    print(next_steps(pulumi))


def _append(pulumi: Pulumi, start: int, entries: Sequence[str]) -> None:
    """Set items start, start+1, ... of the list. Item len(list) appends (object.Set in
    sdk/go/common/resource/config/object.go), and an unset key becomes a list; a CIDR is not
    coerced to a boolean or a number, so each item is stored as a string."""
    for offset, entry in enumerate(entries):
        try:
            pulumi.set(f"{ALLOWLIST_KEY}[{start + offset}]", entry, "--path")
        except MaintenanceError as exc:
            missing = " ".join(entries[offset:])
            raise MaintenanceError(
                f"{exc}\nNot added: {missing} (run `{PROG}{_stack_flag(pulumi)} allow add "
                f"{missing}` again once the cause is fixed)"
            ) from None


def _rebuild(pulumi: Pulumi, entries: Sequence[str]) -> None:
    """Make the stored list ``entries``: no call removes several items at once, so remove the
    key (``config rm``: gone from the stack file, no error if absent) and set each item again.
    An empty list leaves the key removed, so Pulumi.yaml's default [] applies."""
    pulumi.remove(ALLOWLIST_KEY)
    _append(pulumi, 0, entries)


def _verify(pulumi: Pulumi, wanted: list[str]) -> None:
    """Read the list back: what the stack now holds must be what was meant."""
    stored = read_allowlist(pulumi)
    if stored != wanted:
        raise MaintenanceError(
            f"the stack's allowlist is now {stored}, not the intended {wanted}; check the "
            f"stack file's {PROJECT}:{ALLOWLIST_KEY}"
        )


def _stack_flag(pulumi: Pulumi) -> str:
    """`` --stack S`` for a command line shown to the operator (empty without --stack)."""
    return f" --stack {pulumi.stack}" if pulumi.stack else ""


def _covers(stored: str, entry: str) -> bool:
    """Whether the stored item already contains the entry's addresses."""
    try:
        return ipaddress.IPv4Network(entry).subnet_of(ipaddress.IPv4Network(stored.strip()))
    except ValueError:
        return False


# --- Command line ---------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on our exit code 2 and prefixed like ours."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """``[--stack NAME] enable|disable|status|allow add|remove|list`` (``--stack`` may also
    follow the command)."""
    stack = _Parser(add_help=False)
    stack.add_argument(
        "--stack",
        "-s",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help="the stack (default: the selected one)",
    )
    parser = _Parser(
        prog=PROG,
        description="Maintenance mode of the edge: switch it, and manage its allowlist.",
        parents=[stack],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)  # fmt: skip
    commands.add_parser("enable", parents=[stack], help="answer 503 + the maintenance page")
    commands.add_parser("disable", parents=[stack], help="serve the site normally")
    commands.add_parser("status", parents=[stack], help="whether it is on, and the allowlist")
    allow = commands.add_parser("allow", parents=[stack], help="clients that get past it")
    actions = allow.add_subparsers(dest="action", required=True, metavar="ACTION",
                                   parser_class=_Parser)  # fmt: skip
    for name, what in (("add", "add to"), ("remove", "remove from")):
        action = actions.add_parser(name, parents=[stack], help=f"{what} the allowlist")
        action.add_argument("cidrs", nargs="+", metavar="CIDR", help="e.g. 203.0.113.0/24")
    actions.add_parser("list", parents=[stack], help="the allowlist, one CIDR a line")
    return parser


def run(args: argparse.Namespace) -> None:
    """Carry out the parsed command (raises MaintenanceError)."""
    if args.command == "allow" and args.action in ("add", "remove"):
        normalise_all(args.cidrs)  # refuse a bad CIDR before even looking for the CLI
    pulumi = Pulumi(find_pulumi(), getattr(args, "stack", None))
    if args.command in ("enable", "disable"):
        cmd_switch(pulumi, args.command == "enable")
    elif args.command == "status":
        cmd_status(pulumi)
    elif args.action == "list":
        cmd_allow_list(pulumi)
    elif args.action == "add":
        cmd_allow_add(pulumi, args.cidrs)
    else:
        cmd_allow_remove(pulumi, args.cidrs)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run, and turn a MaintenanceError into its message and exit code."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except MaintenanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
