"""Rendered CustomResource manifests, checked against their CRDs' schemas by the real tool:
tools/crd-validate (Node.js), which runs the published schema validators of the
@kubernetes-models packages and rejects fields their schemas do not declare (strict, like
kubernetes-validate --strict for the built-in kinds in tests/test_manifests.py)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools import render
from tools.plan import Plan
from tools.preview import REPO_ROOT

TOOL = REPO_ROOT / "tools" / "crd-validate"
VALIDATOR = TOOL / "validate.mjs"
INSTALLED = TOOL / "node_modules" / ".installed"
INSTALL = "run scripts/install-node-tools.sh (make test does)"
EXIT_FAILED = 1
EXIT_USAGE = 2

Document = dict[str, Any]


@dataclass(frozen=True)
class Run:
    returncode: int
    lines: dict[str, tuple[str, str]]
    """File (as given) to (PASS/SKIP/FAIL, the rest of its line)."""
    output: str


def run_validator(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """A missing Node.js or install fails the test, never skips it."""
    node = shutil.which("node")
    assert node, f"node not found: {INSTALL}"
    assert INSTALLED.exists(), f"{INSTALLED} missing: {INSTALL}"
    return subprocess.run(
        [node, str(VALIDATOR), *map(str, args)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def validate(*args: str | Path) -> Run:
    result = run_validator(*args)
    lines = {}
    for line in result.stdout.splitlines():
        status, file, rest = line.split(" ", 2)
        lines[file] = (status, rest)
    return Run(result.returncode, lines, result.stdout + result.stderr)


def kind_id(document: Document) -> str:
    return f"{document['apiVersion']}/{document['kind']}"


@pytest.fixture
def manifests(plan: Plan, tmp_path: Path) -> list[Path]:
    written = render.write(plan, tmp_path / plan.stack)
    assert written, "the program registers Kubernetes objects"
    return written


def load(path: Path) -> Document:
    document: Document = yaml.safe_load(path.read_text())
    return document


def test_every_custom_resource_of_the_plan_passes(manifests: list[Path]) -> None:
    custom = [p for p in manifests if render.is_custom(load(p))]
    assert custom, "the program registers CustomResources"
    run = validate(*custom)
    assert run.returncode == 0, run.output
    for path in custom:
        assert run.lines[str(path)] == ("PASS", kind_id(load(path))), run.output


def test_built_in_kinds_are_skipped_and_custom_ones_checked(manifests: list[Path]) -> None:
    run = validate(*manifests)
    assert run.returncode == 0, run.output
    for path in manifests:
        expected = "PASS" if render.is_custom(load(path)) else "SKIP"
        assert run.lines[str(path)][0] == expected, run.output


def test_the_validator_knows_exactly_the_plans_custom_resource_kinds(plan: Plan) -> None:
    run = run_validator("--list")  # also loads the model of every kind it lists
    assert run.returncode == 0, run.stdout + run.stderr
    known = json.loads(run.stdout)
    in_plan = {kind_id(d) for d in render.render(plan).values() if render.is_custom(d)}
    kinds = {kind.rsplit("/", 1)[1] for kind in in_plan}
    assert {"ExternalSecret", "SecretStore", "VerticalPodAutoscaler"} <= kinds, in_plan
    # a new CustomResource kind needs its schema in tools/crd-validate (one line in the table)
    assert in_plan == set(known["customResources"])
    # what kubernetes-validate is left to check, the validator must skip (and nothing else)
    assert set(known["builtInGroups"]) == render.BUILT_IN_GROUPS


@dataclass(frozen=True)
class Breakage:
    name: str
    kind: str
    expected: str
    """What the FAIL line must say."""
    breaks: Callable[[Document], str]
    """The broken copy of a real document, as YAML text."""


def changed(change: Callable[[Document], None]) -> Callable[[Document], str]:
    def breaks(document: Document) -> str:
        broken = copy.deepcopy(document)
        change(broken)
        return yaml.safe_dump(broken, sort_keys=False)

    return breaks


def unquoted_off(document: Document) -> str:
    """``updateMode: Off`` unquoted: YAML 1.1 (what the API server reads) makes it false."""
    broken = copy.deepcopy(document)
    broken["spec"]["updatePolicy"]["updateMode"] = "Off"
    text = yaml.safe_dump(broken, sort_keys=False)
    assert "updateMode: 'Off'" in text
    return text.replace("updateMode: 'Off'", "updateMode: Off")


BREAKAGES: Sequence[Breakage] = (
    Breakage(
        "refresh-interval-int", "ExternalSecret", "/spec/refreshInterval: must be string",
        changed(lambda d: d["spec"].update(refreshInterval=5)),
    ),
    Breakage(
        "unknown-spec-field", "ExternalSecret", "/spec/refreshIntervall: unknown field",
        changed(lambda d: d["spec"].update(refreshIntervall="1h")),
    ),
    Breakage(
        "unknown-nested-field", "ExternalSecret", "/spec/data/0/remoteRef/propety: unknown field",
        changed(lambda d: d["spec"]["data"][0]["remoteRef"].update(propety="username")),
    ),
    Breakage(
        "unknown-metadata-field", "SecretStore", "/metadata/label: unknown field",
        changed(lambda d: d["metadata"].update(label={"a": "b"})),
    ),
    Breakage(
        "aws-service-enum", "SecretStore", "/spec/provider/aws/service: must be equal to one of",
        changed(lambda d: d["spec"]["provider"]["aws"].update(service="SSM")),
    ),
    Breakage(
        "update-mode-enum", "VerticalPodAutoscaler",
        "/spec/updatePolicy/updateMode: must be equal to one of the allowed values",
        changed(lambda d: d["spec"]["updatePolicy"].update(updateMode="Sometimes")),
    ),
    Breakage(
        "update-mode-yaml-1.1-bool", "VerticalPodAutoscaler",
        "/spec/updatePolicy/updateMode: must be string", unquoted_off,
    ),
    Breakage(
        "target-ref-missing", "VerticalPodAutoscaler", "must have required property targetRef",
        changed(lambda d: d["spec"].pop("targetRef")),
    ),
    Breakage(
        "quantity", "VerticalPodAutoscaler", 'must match format "quantity"',
        changed(
            lambda d: d["spec"]["resourcePolicy"]["containerPolicies"][0]["maxAllowed"].update(
                cpu="lots"
            )
        ),
    ),
)  # fmt: skip


def first_of_kind(plan: Plan, kind: str) -> Document:
    found = [d for d in render.render(plan).values() if d["kind"] == kind]
    assert found, f"no {kind} in the plan"
    return found[0]


def test_the_validator_rejects_broken_custom_resources(plan: Plan, tmp_path: Path) -> None:
    broken: dict[Path, Breakage] = {}
    for breakage in BREAKAGES:
        path = tmp_path / f"{breakage.name}.yaml"
        path.write_text(breakage.breaks(first_of_kind(plan, breakage.kind)))
        broken[path] = breakage
    intact = tmp_path / "intact.yaml"  # the same documents unbroken pass in the same run
    intact.write_text(yaml.safe_dump(first_of_kind(plan, "ExternalSecret"), sort_keys=False))
    run = validate(intact, *broken)
    assert run.returncode == EXIT_FAILED, run.output
    assert run.lines[str(intact)][0] == "PASS", run.output
    missed = []
    for path, breakage in broken.items():
        status, detail = run.lines.get(str(path), ("no line", ""))
        prefix = f"{kind_id(first_of_kind(plan, breakage.kind))}: "
        if status != "FAIL" or not detail.startswith(prefix) or breakage.expected not in detail:
            missed.append(f"{breakage.name} ({path.name}): {status} {detail}")
    assert not missed, "\n".join(missed) + "\n" + run.output


def test_a_custom_resource_of_an_unknown_kind_fails(plan: Plan, tmp_path: Path) -> None:
    widget = tmp_path / "widget.yaml"
    widget.write_text("apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n")
    # a known kind at a version the validator has no schema for is unknown too
    vpa = first_of_kind(plan, "VerticalPodAutoscaler")
    beta = tmp_path / "vpa-v1beta2.yaml"
    beta.write_text(yaml.safe_dump({**vpa, "apiVersion": "autoscaling.k8s.io/v1beta2"}))
    namespace = tmp_path / "namespace.yaml"
    namespace.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n")
    run = validate(widget, beta, namespace)
    assert run.returncode == EXIT_FAILED, run.output
    assert run.lines[str(widget)] == (
        "FAIL",
        "example.com/v1/Widget: CustomResource kind with no known schema "
        "(add it to CUSTOM_RESOURCES in validate.mjs)",
    ), run.output
    status, detail = run.lines[str(beta)]
    assert status == "FAIL" and "no known schema" in detail, run.output
    assert run.lines[str(namespace)][0] == "SKIP", run.output


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert validate().returncode == EXIT_USAGE
    assert validate("--strict", tmp_path / "x.yaml").returncode == EXIT_USAGE
    missing = validate(tmp_path / "missing.yaml")
    assert missing.returncode == EXIT_FAILED
    assert missing.lines[str(tmp_path / "missing.yaml")][0] == "FAIL"
