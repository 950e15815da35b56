"""scripts/maintenance run as the operator runs it, against a stand-in Pulumi CLI.

The stand-in (``FAKE_PULUMI``, written into the test's folder and named by ``$PULUMI``) keeps
the stack file of a scratch copy of the project and implements the calls the tool makes with
the semantics of the real CLI, read in pulumi/pulumi (pkg/cmd/pulumi/config/config.go,
sdk/go/common/resource/config/map.go, object.go, value.go, pkg/workspace/config.go):

* ``config set KEY VALUE`` stores the string VALUE, also with ``--path`` when the path is the
  bare key (``Map.Set``: a single segment is stored as given); ``--type bool|int|float|string``
  stores that type (``NewTypedValue``).
* ``config set --path 'KEY[i]' VALUE`` sets item i of a list, creating the list when the key is
  unset (or not a list), appending at i == len, refusing i > len ("array index out of range");
  the item is coerced: "true"/"false" to booleans, digits not starting with 0 to integers,
  anything else a string (``coerce`` in object.go).
* ``config rm KEY`` deletes the key, with no error when it is absent.
* ``config get KEY --json`` prints ``{"value", "objectValue" (lists and maps only), "secret"}``
  indented by two; an unset key gets Pulumi.yaml's default (a primitive default as a plain
  value, a list as an object), and a key with neither fails with "configuration key 'KEY' not
  found for stack 'S'".
* ``stack --show-name`` prints the stack; every call takes ``--stack NAME``, else the stack in
  ``$FAKE_PULUMI_SELECTED``.

``test_stand_in_stores_what_the_cli_stores`` pins the stand-in to the CLI's own expectations
(TestConfigSet and TestConfigSetTypes in pkg/cmd/pulumi/config/config_test.go).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.settings import MaintenanceSettings, parse_settings
from tools.project import check_stack

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "maintenance"
STACK = "staging"
ENABLED = "exposcholar:maintenanceEnabled"
ALLOWLIST = "exposcholar:maintenanceAllowlist"

FAKE_PULUMI = r'''
"""Stand-in for the Pulumi CLI (see tests/test_maintenance_script.py)."""
import json, os, re, sys
from pathlib import Path

import yaml

PROJECT = "exposcholar"
args = sys.argv[1:]
with open(os.environ["FAKE_PULUMI_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(255)


stack = os.environ.get("FAKE_PULUMI_SELECTED") or None
words = []
flags = {}
i = 0
while i < len(args):
    word = args[i]
    if word in ("--stack", "-s", "--type"):
        if i + 1 >= len(args):
            fail(f"flag needs an argument: {word}")
        if word == "--type":
            flags["type"] = args[i + 1]
        else:
            stack = args[i + 1]
        i += 2
        continue
    if word.startswith("-"):
        flags[word] = True
    else:
        words.append(word)
    i += 1

failing = os.environ.get("FAKE_PULUMI_FAIL")
if failing and failing in words[:2]:
    fail(f"simulated failure of `pulumi {' '.join(args)}`")
if stack is None:
    fail("no stack selected; please use `pulumi stack select`")
project_dir = Path(os.environ["FAKE_PULUMI_PROJECT"])
path = project_dir / f"Pulumi.{stack}.yaml"
if not path.is_file():
    fail(f"no stack named '{stack}' found")
if words == ["stack"] and flags == {"--show-name": True}:
    print(stack)
    sys.exit(0)
if len(words) < 3 or words[0] != "config" or words[1] not in ("get", "set", "rm"):
    fail(f"the stand-in does not implement `pulumi {' '.join(args)}`")

document = yaml.safe_load(path.read_text())
config = document.setdefault("config", {})
name = words[2]
match = re.fullmatch(r"([\w:-]+)(?:\[(\d+)\])?", name)
if not match or (match[2] is not None and "--path" not in flags):
    fail(f"the stand-in does not implement the key {name!r}")
bare, index = match[1], match[2]
key = bare if ":" in bare else f"{PROJECT}:{bare}"


def text(value):
    """The string the CLI keeps for a YAML value (value.go, object.go MarshalString)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def typed(value, kind):
    """--type (config.go: NewTypedValue; value.go: unmarshalObject)."""
    if kind == "bool":
        return value in ("1", "t", "T", "TRUE", "true", "True")  # strconv.ParseBool
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "string":
        return value
    fail(f'invalid type "{kind}"; must be one of string, int, bool, or float')


def coerced(value):
    """An untyped list item (object.go: coerce)."""
    if value in ("true", "false"):
        return value == "true"
    if len(value) > 1 and value[0] == "0":
        return value
    return int(value) if re.fullmatch(r"-?[0-9]+", value) else value


if words[1] == "get":
    if key in config:
        value = config[key]
    else:
        declared = (yaml.safe_load((project_dir / "Pulumi.yaml").read_text()).get("config") or {})
        spec = declared.get(bare) if key.startswith(PROJECT + ":") else None
        if not isinstance(spec, dict) or spec.get("default") is None:
            fail(f"configuration key '{bare}' not found for stack '{stack}'")
        value = spec["default"]
    shown = {"value": text(value)}
    if isinstance(value, (list, dict)):
        shown["objectValue"] = value
    shown["secret"] = False
    print(json.dumps(shown, indent=2) if "--json" in flags else shown["value"])
    sys.exit(0)

if words[1] == "rm":
    config.pop(key, None)
else:
    if len(words) != 4:
        fail("config value must be specified in non-interactive mode")
    raw = words[3]
    if index is None:
        config[key] = typed(raw, flags["type"]) if "type" in flags else raw
    else:
        position = int(index)
        item = typed(raw, flags["type"]) if "type" in flags else coerced(raw)
        items = config.get(key)
        if not isinstance(items, list):
            items = [None] * (position + 1)
        if position > len(items):
            fail(f"{name}: array index out of range")
        if position == len(items):
            items.append(None)
        items[position] = item
        config[key] = items
path.write_text(yaml.safe_dump(document, sort_keys=False, default_flow_style=False))
'''


@dataclass
class Cli:
    """A scratch project, the stand-in CLI on it, and a way to run scripts/maintenance."""

    project: Path
    pulumi: Path
    log: Path

    @property
    def stack_file(self) -> Path:
        return self.project / f"Pulumi.{STACK}.yaml"

    def config(self) -> dict[str, Any]:
        document: Any = yaml.safe_load(self.stack_file.read_text())
        config: dict[str, Any] = document["config"]
        return config

    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run the script as the operator does (an executable). With PATH replaced, through
        bash by its path, since the script's ``#!/usr/bin/env bash`` looks bash up on PATH."""
        bash = shutil.which("bash")
        assert bash
        command = [bash, str(SCRIPT)] if "PATH" in env else [str(SCRIPT)]
        environ = {
            **os.environ,
            "PULUMI": str(self.pulumi),
            "FAKE_PULUMI_PROJECT": str(self.project),
            "FAKE_PULUMI_LOG": str(self.log),
            **env,
        }
        return subprocess.run(
            [*command, *args], capture_output=True, text=True, env=environ, timeout=60,
            check=False,
        )  # fmt: skip


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("Pulumi.yaml", f"Pulumi.{STACK}.yaml"):
        shutil.copy(REPO / name, project / name)
    pulumi = tmp_path / "bin" / "pulumi"
    pulumi.parent.mkdir()
    pulumi.write_text(f"#!{sys.executable}{FAKE_PULUMI}")
    pulumi.chmod(0o755)
    log = tmp_path / "pulumi.log"
    log.touch()
    return Cli(project, pulumi, log)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


# --- the stand-in is the CLI -----------------------------------------------------------------

CLI_CASES = [
    # (flags, key, value, what the CLI's own tests expect in the stack file; the rows marked
    # "source" have no test there and follow the code: map.go Set, object.go coerce)
    ((), "test", "true", "true"),
    ((), "test", "123", "123"),
    (("--path",), "test", "true", "true"),  # source: a one-segment path is stored as given
    (("--path",), "test[0]", "true", [True]),
    (("--path",), "test[0]", "123", [123]),
    (("--path",), "test[0]", "123.456", ["123.456"]),
    (("--path",), "test[0]", "0123", ["0123"]),  # source
    (("--path",), "test[0]", "198.51.100.0/24", ["198.51.100.0/24"]),  # source
    (("--type", "bool"), "test", "true", True),
    (("--type", "bool"), "test", "false", False),
    (("--type", "int"), "test", "123", 123),
    (("--type", "string"), "test", "123", "123"),
    (("--path", "--type", "bool"), "test[0]", "true", [True]),
]


@pytest.mark.parametrize(("flags", "key", "value", "stored"), CLI_CASES)
def test_stand_in_stores_what_the_cli_stores(
    cli: Cli, flags: tuple[str, ...], key: str, value: str, stored: object
) -> None:
    env = {**os.environ, "FAKE_PULUMI_PROJECT": str(cli.project), "FAKE_PULUMI_LOG": str(cli.log)}
    result = subprocess.run(
        [str(cli.pulumi), "config", "set", *flags, key, value, "--stack", STACK],
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert cli.config()["exposcholar:test"] == stored


# --- enable, disable, status ----------------------------------------------------------------


def test_enable_and_disable_flip_a_yaml_boolean(cli: Cli) -> None:
    before = cli.config()
    assert before[ENABLED] is False
    out = ok(cli.run("--stack", STACK, "enable"))
    assert "switched on" in out
    assert cli.config()[ENABLED] is True
    assert f"{ENABLED}: true\n" in cli.stack_file.read_text()  # a boolean, not "true"
    assert {k: v for k, v in cli.config().items() if k != ENABLED} == {
        k: v for k, v in before.items() if k != ENABLED
    }
    assert "Maintenance mode: on" in ok(cli.run("--stack", STACK, "status"))

    ok(cli.run("disable", "--stack", STACK))  # --stack after the command works too
    assert cli.config()[ENABLED] is False
    assert "Maintenance mode: off" in ok(cli.run("--stack", STACK, "status"))
    sets = [c[2:6] for c in cli.calls() if c[:2] == ["config", "set"]]
    assert sets == [  # --type bool: a YAML boolean (a plain or --path set stores "true")
        ["--type", "bool", "maintenanceEnabled", "true"],
        ["--type", "bool", "maintenanceEnabled", "false"],
    ]


def test_enabling_twice_changes_nothing(cli: Cli) -> None:
    ok(cli.run("--stack", STACK, "enable"))
    before = cli.stack_file.read_bytes()
    out = ok(cli.run("--stack", STACK, "enable"))
    assert "already on" in out and "nothing changed" in out
    assert cli.stack_file.read_bytes() == before


# --- the allowlist ----------------------------------------------------------------------------


def test_allow_add_remove_and_list_keep_a_yaml_list(cli: Cli) -> None:
    assert cli.config()[ALLOWLIST] == []
    assert ok(cli.run("--stack", STACK, "allow", "list")) == ""

    out = ok(cli.run("--stack", STACK, "allow", "add", "198.51.100.0/24", "203.0.113.7"))
    assert "203.0.113.7/32" in out  # a bare address is taken as /32
    assert cli.config()[ALLOWLIST] == ["198.51.100.0/24", "203.0.113.7/32"]
    assert ok(cli.run("--stack", STACK, "allow", "list")).split() == [
        "198.51.100.0/24",
        "203.0.113.7/32",
    ]
    status = ok(cli.run("--stack", STACK, "status"))
    assert "198.51.100.0/24, 203.0.113.7/32" in status

    before = cli.stack_file.read_bytes()
    out = ok(cli.run("--stack", STACK, "allow", "add", "203.0.113.7/32"))
    assert "already in the allowlist" in out and "Nothing changed" in out
    out = ok(cli.run("--stack", STACK, "allow", "remove", "192.0.2.0/24"))
    assert "not in the allowlist" in out and "Nothing changed" in out
    assert cli.stack_file.read_bytes() == before

    ok(cli.run("--stack", STACK, "allow", "add", "192.0.2.0/24"))
    ok(cli.run("--stack", STACK, "allow", "remove", "198.51.100.0/24"))
    assert cli.config()[ALLOWLIST] == ["203.0.113.7/32", "192.0.2.0/24"]

    out = ok(cli.run("--stack", STACK, "allow", "remove", "203.0.113.7", "192.0.2.0/24"))
    assert "Removed 203.0.113.7/32" in out and "Removed 192.0.2.0/24" in out
    assert ALLOWLIST not in cli.config()  # removed: Pulumi.yaml's default [] applies
    assert ok(cli.run("--stack", STACK, "allow", "list")) == ""
    assert "Allowlist: (empty" in ok(cli.run("--stack", STACK, "status"))


def test_unset_keys_without_defaults_read_as_off_and_empty(cli: Cli) -> None:
    """A stack (and project) that sets neither key: the CLI's "not found" is off and []."""
    project: Any = yaml.safe_load((cli.project / "Pulumi.yaml").read_text())
    for name in ("maintenanceEnabled", "maintenanceAllowlist"):
        del project["config"][name]["default"]
    (cli.project / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    config = cli.config()
    del config[ENABLED], config[ALLOWLIST]
    cli.stack_file.write_text(yaml.safe_dump({"config": config}, sort_keys=False))

    status = ok(cli.run("--stack", STACK, "status"))
    assert "Maintenance mode: off" in status and "Allowlist: (empty" in status
    ok(cli.run("--stack", STACK, "allow", "add", "198.51.100.0/24"))
    assert cli.config()[ALLOWLIST] == ["198.51.100.0/24"]


def test_a_list_kept_as_a_json_string_is_rewritten_as_a_list(cli: Cli) -> None:
    """``pulumi config set maintenanceAllowlist '["..."]'`` stores a string; adding to it must
    not turn the string into [null, ...] (the CLI replaces a non-list with a fresh list)."""
    text = cli.stack_file.read_text().replace(
        f"{ALLOWLIST}: []", f"{ALLOWLIST}: '[\"192.0.2.0/24\"]'"
    )
    cli.stack_file.write_text(text)
    ok(cli.run("--stack", STACK, "allow", "add", "198.51.100.0/24"))
    assert cli.config()[ALLOWLIST] == ["192.0.2.0/24", "198.51.100.0/24"]


INVALID = ["10.0.0.1/8", "300.1.1.0/24", "abc", "0.0.0.0/0"]


@pytest.mark.parametrize("action", ["add", "remove"])
@pytest.mark.parametrize("bad", INVALID)
def test_an_invalid_cidr_is_refused_before_anything_changes(
    cli: Cli, action: str, bad: str
) -> None:
    ok(cli.run("--stack", STACK, "allow", "add", "198.51.100.0/24"))
    before = cli.stack_file.read_bytes()
    calls = len(cli.calls())
    result = cli.run("--stack", STACK, "allow", action, "192.0.2.0/24", bad)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"'{bad}'" in result.stderr and "expected" in result.stderr
    assert cli.stack_file.read_bytes() == before
    assert len(cli.calls()) == calls  # pulumi was not even asked


def test_host_bits_get_a_suggestion_and_the_world_a_reason(cli: Cli) -> None:
    assert "did you mean 10.0.0.0/8" in cli.run("allow", "add", "10.0.0.1/8").stderr
    assert "every client" in cli.run("allow", "add", "0.0.0.0/0").stderr


# --- what the operator is told, and errors ---------------------------------------------------


@pytest.mark.parametrize(
    "command", [("enable",), ("allow", "add", "198.51.100.0/24")], ids=["enable", "allow-add"]
)
def test_next_steps_name_the_stack(cli: Cli, command: tuple[str, ...]) -> None:
    out = ok(cli.run("--stack", STACK, *command))
    assert f"pulumi preview --stack {STACK} --diff" in out
    assert f"pulumi up --stack {STACK}" in out
    assert "edge ConfigMap" in out and "pod template" in out and "rolled" in out
    assert f"Commit Pulumi.{STACK}.yaml" in out
    assert all(call[-2:] == ["--stack", STACK] for call in cli.calls()), cli.calls()


def test_without_stack_the_selected_one_is_used_and_named(cli: Cli) -> None:
    out = ok(cli.run("enable", FAKE_PULUMI_SELECTED=STACK))
    assert cli.config()[ENABLED] is True
    assert f"pulumi up --stack {STACK}" in out
    assert not any("--stack" in call for call in cli.calls())


@pytest.mark.parametrize(
    "args", [("bogus",), (), ("allow",), ("allow", "add"), ("allow", "drop", "192.0.2.0/24")]
)
def test_usage_errors_exit_2_with_a_usage_line(cli: Cli, args: tuple[str, ...]) -> None:
    result = cli.run(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "usage: scripts/maintenance" in result.stderr
    assert cli.calls() == []


@pytest.mark.parametrize(
    "environ",
    [
        lambda tmp: {"PULUMI": str(tmp / "no-such-pulumi")},
        lambda tmp: {"PULUMI": "", "PATH": str(tmp)},  # nothing on PATH but an empty folder
    ],
    ids=["PULUMI", "PATH"],
)
def test_a_missing_pulumi_is_a_clear_error(
    cli: Cli, tmp_path: Path, environ: Callable[[Path], dict[str, str]]
) -> None:
    before = cli.stack_file.read_bytes()
    result = cli.run("--stack", STACK, "status", **environ(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Pulumi CLI was not found" in result.stderr
    assert "install the Pulumi CLI" in result.stderr and "3.148" in result.stderr
    assert cli.stack_file.read_bytes() == before


def test_a_failing_pulumi_call_exits_1_and_shows_its_stderr(cli: Cli) -> None:
    before = cli.stack_file.read_bytes()
    result = cli.run("--stack", STACK, "enable", FAKE_PULUMI_FAIL="set")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "simulated failure of `pulumi config set" in result.stderr
    assert "`pulumi config set --type bool maintenanceEnabled true --stack staging` failed" in (
        result.stderr
    )
    assert cli.stack_file.read_bytes() == before


# --- the program reads what the tool wrote ---------------------------------------------------


def test_round_trip_the_settings_parse_what_the_tool_wrote(cli: Cli) -> None:
    ok(cli.run("--stack", STACK, "enable"))
    ok(cli.run("--stack", STACK, "allow", "add", "198.51.100.0/24"))
    # as the CLI hands the stack file to the program: declared types, then the settings
    config = check_stack(cli.project, STACK)
    settings = parse_settings(STACK, config.values)
    assert settings.edge.maintenance == MaintenanceSettings(True, ("198.51.100.0/24",))

    ok(cli.run("--stack", STACK, "allow", "remove", "198.51.100.0/24"))
    ok(cli.run("--stack", STACK, "disable"))
    settings = parse_settings(STACK, check_stack(cli.project, STACK).values)
    assert settings.edge.maintenance == MaintenanceSettings(False, ())
