"""The project's stacks, found from their files: every ``Pulumi.<name>.yaml`` is a stack, and its
``exposcholar:stackRole`` says whether it is production.

Used by the offline preview (which policy-pack configuration a stack gets) and by the GitHub
workflows (which stacks to preview and deploy, in which order, with which role ARN variable).
It needs only PyYAML, so a workflow can list the stacks before installing the program's
dependencies.

    python -m tools.stacks list [--role production|staging]   # JSON, one object per stack
    python -m tools.stacks policy-config <stack>               # the --policy-pack-config path

A stack's policy-pack configuration is ``policies/config/<stack>.json`` when that file exists,
otherwise the file of its role (``ROLE_POLICY_CONFIG``), so a new stack of a known role needs no
file of its own.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
POLICY_CONFIG_DIR = Path("policies") / "config"
ROLE_KEY = "exposcholar:stackRole"
ROLE_POLICY_CONFIG = {"production": "prod.json", "staging": "staging.json"}
"""The policy-pack configuration a stack of each role gets when it has no file of its own.
The roles are the values of ``components.settings.StackRole`` (a test keeps them equal)."""
_STACK_FILE = re.compile(r"^Pulumi\.(?P<name>[^/]+)\.yaml$")


class StackFileError(Exception):
    """A stack file that cannot tell its role; the message names the file and the key."""


@dataclass(frozen=True)
class Stack:
    """One stack as the workflows and the preview see it."""

    name: str
    role: str
    region: str
    account: str
    """The AWS account id the stack deploys into (its ECR registry's host names it)."""
    policy_config: str
    """Relative to the project directory, as ``--policy-pack-config`` takes it."""

    @property
    def variable_suffix(self) -> str:
        """The stack's part of repository variable names (``AWS_DEPLOY_ROLE_ARN_<suffix>``):
        upper case, dashes as underscores, since variable names allow no dash."""
        return self.name.upper().replace("-", "_")

    def as_json(self) -> dict[str, str]:
        return {
            "stack": self.name,
            "role": self.role,
            "region": self.region,
            "account": self.account,
            "policyConfig": self.policy_config,
            "variableSuffix": self.variable_suffix,
        }


def stack_names(project_dir: Path = PROJECT_DIR) -> list[str]:
    """Every stack with a file, sorted."""
    names = (_STACK_FILE.match(path.name) for path in project_dir.glob("Pulumi.*.yaml"))
    return sorted(match["name"] for match in names if match)


def policy_config_for(stack: str, role: str, project_dir: Path = PROJECT_DIR) -> str:
    """``policies/config/<stack>.json`` if it exists, else the role's file."""
    own = POLICY_CONFIG_DIR / f"{stack}.json"
    if (project_dir / own).is_file():
        return own.as_posix()
    if role not in ROLE_POLICY_CONFIG:
        raise StackFileError(
            f"no policy config for stack {stack!r}: {own.as_posix()} does not exist and "
            f"Pulumi.{stack}.yaml's {ROLE_KEY} is {role!r}, not one of "
            f"{', '.join(sorted(ROLE_POLICY_CONFIG))} (whose file it would get)"
        )
    return (POLICY_CONFIG_DIR / ROLE_POLICY_CONFIG[role]).as_posix()


def load_stack(name: str, project_dir: Path = PROJECT_DIR) -> Stack:
    """The stack's role, region and policy configuration, or StackFileError."""
    path = project_dir / f"Pulumi.{name}.yaml"
    try:
        document: Any = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise StackFileError(f"{path.name}: cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise StackFileError(f"{path.name}: not valid YAML ({exc})") from None
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise StackFileError(f"{path.name}: expected a mapping under the top-level key 'config'")
    values: dict[str, str] = {}
    wanted = (
        (ROLE_KEY, "production or staging"),
        ("exposcholar:region", "a region"),
        ("exposcholar:accountId", "a 12-digit account id, quoted"),
    )
    for key, expected in wanted:
        value = config.get(key)
        if not isinstance(value, str) or not value:
            raise StackFileError(f"{path.name}: {key} is {value!r}; expected {expected}")
        values[key] = value
    role = values[ROLE_KEY]
    return Stack(
        name,
        role,
        values["exposcholar:region"],
        values["exposcholar:accountId"],
        policy_config_for(name, role, project_dir),
    )


def load_stacks(project_dir: Path = PROJECT_DIR, role: str | None = None) -> list[Stack]:
    stacks = [load_stack(name, project_dir) for name in stack_names(project_dir)]
    return [stack for stack in stacks if role is None or stack.role == role]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.stacks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the stacks as a JSON array")
    listing.add_argument("--role", choices=sorted(ROLE_POLICY_CONFIG))
    policy = commands.add_parser("policy-config", help="the policy-pack config file of a stack")
    policy.add_argument("stack")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            stacks = load_stacks(PROJECT_DIR, args.role)
            print(json.dumps([stack.as_json() for stack in stacks], separators=(",", ":")))
        else:
            if args.stack not in stack_names(PROJECT_DIR):
                raise StackFileError(f"Pulumi.{args.stack}.yaml: no such stack file")
            print(load_stack(args.stack, PROJECT_DIR).policy_config)
    except StackFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
