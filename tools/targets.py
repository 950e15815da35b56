"""``--target`` flags for a bootstrap step of ``pulumi up``, read from the offline plan.

The first deploy of a stack whose images are prebuilt needs the ECR repositories before the
images can be pushed, and the images before the workloads that run them. A targeted ``up``
creates just the repositories and what they need. ``pulumi up --target`` has no flag that adds
a target's dependencies (only ``--target-dependents``, the other direction), and an untargeted
dependency that does not exist yet fails the update, so this tool lists the closure itself: the
resources of the given types plus, transitively, their parents and dependencies (the KMS key
the repositories encrypt with, the components above them). Providers are left out: the engine
always includes them. The URNs come from ``build/<stack>/plan.json``, which the offline
preview writes with the URNs the engine computes (every ancestor's type joined by ``$``):

    make preview STACK=staging
    pulumi up --stack staging \\
      $(.venv/bin/python -m tools.targets staging --type aws:ecr/repository:Repository)

Prints one ``--target=<urn>`` per line, in registration order; exits 2 naming the file when
there is no plan or no resource of the given types.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BUILD_DIR = Path(__file__).resolve().parent.parent / "build"


class TargetsError(Exception):
    """No plan to read, or nothing of the asked types in it."""


def target_urns(plan_file: Path, types: Sequence[str]) -> list[str]:
    """The URNs of the plan's resources of ``types`` and of everything they need, in
    registration order."""
    try:
        plan = json.loads(plan_file.read_text())
    except OSError:
        raise TargetsError(
            f"{plan_file}: no offline plan; run `make preview STACK=<stack>` first"
        ) from None
    except json.JSONDecodeError as exc:
        raise TargetsError(
            f"{plan_file}: not a plan written by the offline preview ({exc})"
        ) from None
    resources: list[dict[str, Any]] = plan.get("resources", [])
    by_urn = {str(r["urn"]): r for r in resources}
    wanted = [str(r["urn"]) for r in resources if r.get("type") in types]
    if not wanted:
        raise TargetsError(f"{plan_file}: no resource of type {', '.join(types)}")
    needed: set[str] = set()
    while wanted:
        urn = wanted.pop()
        resource = by_urn.get(urn)
        if urn in needed or resource is None or _implicit(resource):
            continue
        needed.add(urn)
        wanted += [resource.get("parent") or "", *resource.get("dependencies", [])]
        for urns in (resource.get("propertyDependencies") or {}).values():
            wanted += urns
    return [urn for urn in by_urn if urn in needed]


def _implicit(resource: dict[str, Any]) -> bool:
    """The root stack and providers: always part of an update, never named as targets."""
    kind = str(resource.get("type", ""))
    return kind == "pulumi:pulumi:Stack" or kind.startswith("pulumi:providers:")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.targets", description=__doc__)
    parser.add_argument("stack")
    parser.add_argument("--type", action="append", required=True, dest="types")
    parser.add_argument("--build", type=Path, default=BUILD_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        urns = target_urns(args.build / args.stack / "plan.json", args.types)
    except TargetsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(f"--target={urn}" for urn in urns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
