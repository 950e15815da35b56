"""The offline preview's output read as ``pulumi preview`` output: the resource tree (grouped, or
every resource by name with ``--details``), ``Outputs:`` with secrets masked, ``Resources:``
with one resource count that the tree, ``plan.json``, the engine checks and the policy report
all agree on, and Helm charts shown as charts.

The preview runs as a subprocess once per mode for the whole module (a run costs seconds)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime import rpc

from tests.test_preview import _preview
from tools.engine.charts import CHART_TYPES
from tools.mocks import MASK, SECRET_SIG, SECRET_VALUE, UNKNOWN, CapturedResource, CapturingMonitor
from tools.plan import CHART_NOTE, OUTPUT_WIDTH, STACK_TYPE, Plan, display
from tools.preview import EXIT_OK, REPO_ROOT
from tools.program import run_program
from tools.project import StackConfig, placeholder_for

STACK = "staging"
STACK_NAME = f"exposcholar-{STACK}"

COUNTS = {
    "tree header": rf"^{STACK_NAME}  \((\d+) resources\)$",
    "Resources:": r"^Resources:\n    \+ (\d+) to create$",
    "engine": r"^Engine checks: (\d+) resources, ",
    "policy": r"; \d+ policies over (\d+) resources$",
}
"""Where the output prints the stack's resource count, each exactly once."""

ROW = re.compile(r"^ \+   ((?:[│ ]  )*(?:[├└]─ )?)(\S+) +(\S+) +create(?:  (.+))?$", re.MULTILINE)
"""A line of the ``--details`` list: tree prefix, type, name, note."""
OUTPUT = re.compile(r"^    (\w+) *: (.*)$", re.MULTILINE)


@dataclass(frozen=True)
class Run:
    """One successful preview of the stack: what it printed and the files it wrote."""

    stdout: str
    out: Path
    """``<out>/<stack>``: plan.json, engine-report.json, policy-report.json."""

    def read(self, name: str) -> Any:
        return json.loads((self.out / name).read_text())

    @property
    def plan(self) -> dict[str, Any]:
        return dict(self.read("plan.json"))


def _run(out: Path, *flags: str) -> Run:
    result = _preview(STACK, "--out", out, *flags)
    assert result.returncode == EXIT_OK, result.stderr
    return Run(result.stdout, out / STACK)


@pytest.fixture(scope="module")
def grouped(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _run(tmp_path_factory.mktemp("grouped"))


@pytest.fixture(scope="module")
def details(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _run(tmp_path_factory.mktemp("details"), "--details")


@pytest.fixture(params=["grouped", "details"])
def run(request: pytest.FixtureRequest) -> Run:
    """Both modes: what is not about the tree's shape holds for each."""
    found: Run = request.getfixturevalue(request.param)
    return found


@pytest.fixture(scope="module")
def secret_outputs(stack_configs: dict[str, StackConfig]) -> dict[str, Any]:
    """The stack's secret outputs in clear, as the program exports them: the same program run
    in-process with the monitor also recording the stack's outputs before they are masked (the
    mocks are deterministic per stack, so they are the values the preview's run computed)."""
    clear: dict[str, Any] = {}
    original = CapturingMonitor.RegisterResourceOutputs

    def recording(self: CapturingMonitor, request: Any) -> Any:
        if request.urn == self.stack_urn:
            clear.update(rpc.deserialize_properties(request.outputs, keep_unknowns=True))
        return original(self, request)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CapturingMonitor, "RegisterResourceOutputs", recording)
        run_program(REPO_ROOT, stack_configs[STACK])
    return {
        name: value["value"]
        for name, value in clear.items()
        if isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE
    }


def _printed_count(stdout: str, where: str) -> int:
    (count,) = re.findall(COUNTS[where], stdout, re.MULTILINE)
    return int(count)


def _section(stdout: str, title: str) -> str:
    """The lines of a section (``Outputs:``) up to the blank line that ends it."""
    (section,) = re.findall(rf"^{title}\n(.*?)\n\n", stdout, re.MULTILINE | re.DOTALL)
    return str(section)


# --- the one resource count ------------------------------------------------------------------


def test_every_count_is_the_resources_the_engine_registers(run: Run) -> None:
    """The tree's header, ``Resources:``, plan.json, the engine's and the policy pack's lines and
    reports: one number, every resource the program registered and the stack itself."""
    plan = run.plan
    assert plan["stackUrn"] not in {r["urn"] for r in plan["resources"]}
    expected = len(plan["resources"]) + 1
    counts = {where: _printed_count(run.stdout, where) for where in COUNTS}
    counts["plan.json resourceCount"] = plan["resourceCount"]
    counts["engine-report.json"] = run.read("engine-report.json")["resources"]
    counts["policy-report.json"] = run.read("policy-report.json")["counts"]["resourcesAnalyzed"]
    assert counts == dict.fromkeys(counts, expected)


def test_resources_section_reads_like_pulumi_preview(grouped: Run) -> None:
    """``Resources:`` after ``Outputs:``, with every resource a create (no state offline)."""
    count = grouped.plan["resourceCount"]
    outputs = grouped.stdout.index("\n\nOutputs:\n")
    resources = grouped.stdout.index(f"\n\nResources:\n    + {count} to create\n\n")
    assert outputs < resources < grouped.stdout.index("Plan written to ")
    for operation in ("to update", "to delete", "to replace", "unchanged"):
        assert operation not in grouped.stdout


# --- outputs ----------------------------------------------------------------------------------


def test_outputs_lists_every_stack_output_sorted_with_secrets_masked(run: Run) -> None:
    outputs = run.plan["outputs"]
    shown = dict(OUTPUT.findall(_section(run.stdout, "Outputs:")))
    assert list(shown) == sorted(outputs)
    assert shown["kubeconfig"] == "[secret]"
    assert shown["vpcId"] == json.dumps(outputs["vpcId"])
    assert shown["cachePort"] == str(outputs["cachePort"])
    zones = ", ".join(map(json.dumps, outputs["availabilityZones"]))
    assert shown["availabilityZones"] == f"[{zones}]"
    width = max(map(len, outputs))
    assert f"\n    {'kubeconfig'.ljust(width)}: [secret]\n" in run.stdout, "names aligned"


def test_no_secret_value_reaches_stdout(
    run: Run, secret_outputs: dict[str, Any], stack_configs: dict[str, StackConfig]
) -> None:
    """Neither a secret output (the kubeconfig) nor a secret config value is printed, in any
    form the output would take: as the value, as ``display`` shows it, or a piece of either."""
    assert "kubeconfig" in secret_outputs
    assert "certificate-authority-data" in secret_outputs["kubeconfig"], "the value in clear"
    for name, value in secret_outputs.items():
        text = value if isinstance(value, str) else json.dumps(value)
        for form in (text, json.dumps(text), display(value)[0]):
            assert form[:24] not in run.stdout, f"secret output {name} printed"
    assert "certificate-authority-data" not in run.stdout
    placeholders = stack_configs[STACK].placeholders
    assert placeholders
    for key in placeholders:
        assert placeholder_for(key) not in run.stdout, key


def test_a_value_is_shown_compactly_like_pulumi_preview() -> None:
    assert display("vpc-1") == ['"vpc-1"']
    assert display(5432) == ["5432"]
    assert display(True) == ["true"]
    assert display(MASK) == ["[secret]"]
    assert display(UNKNOWN) == ["output<string>"]
    assert display({"b": [1, MASK], "a": {"c": UNKNOWN}}) == [
        "{a: {c: output<string>}, b: [1, [secret]]}"
    ]
    long = "x" * (2 * OUTPUT_WIDTH)
    (cut,) = display(long)
    assert len(cut) == OUTPUT_WIDTH and cut.endswith("…") and cut.startswith('"xxx')
    assert display({"web": long, "db": "a"}) == [
        "{",
        f"    db : {display('a')[0]}",
        f"    web: {cut}",
        "}",
    ]
    assert display(["a", long]) == ["[", '    [0]: "a"', f"    [1]: {cut}", "]"]


def test_outputs_of_a_plan_align_names_and_indent_long_values() -> None:
    plan = Plan(
        "p", "s", "urn:pulumi:s::p::pulumi:pulumi:Stack::p-s", [],
        {"kubeconfig": MASK, "clusterName": "c", "images": {"web": "w" * OUTPUT_WIDTH}},
    )  # fmt: skip
    assert plan.render_outputs().splitlines() == [
        "Outputs:",
        '    clusterName: "c"',
        "    images     : {",
        f"        web: {display('w' * OUTPUT_WIDTH)[0]}",
        "    }",
        "    kubeconfig : [secret]",
    ]
    assert "Outputs:" not in Plan("p", "s", plan.stack_urn, []).render()


# --- the tree: grouped by default, every resource with --details ------------------------------


def test_default_tree_groups_resources_per_type_under_each_component(grouped: Run) -> None:
    plan = grouped.plan
    components = [r for r in plan["resources"] if not r["custom"]]
    assert {"network", "cluster", "database", "app"} <= {r["name"] for r in components}
    for resource in components:
        assert f"─ {resource['type']}  {resource['name']}  " in grouped.stdout, resource
    assert "├─ aws:ec2/subnet:Subnet ×6\n" in grouped.stdout
    assert "network-vpc" not in grouped.stdout, "names only with --details"
    assert not ROW.search(grouped.stdout)


def _rows(stdout: str) -> Iterator[tuple[int, str, str, str]]:
    """(depth, type, name, note) of every line of the ``--details`` list."""
    for prefix, typ, name, note in ROW.findall(stdout):
        yield len(prefix) // 3, typ, name, note


def test_details_lists_every_resource_by_name_under_its_parent(details: Run) -> None:
    """Every resource of plan.json and the stack, one ``create`` line each, nested under its
    parent's line as in ``pulumi preview``'s resource list; nothing grouped."""
    plan = details.plan
    by_urn = {r["urn"]: (r["type"], r["name"]) for r in plan["resources"]}
    by_urn[plan["stackUrn"]] = (STACK_TYPE, STACK_NAME)
    expected = {(r["type"], r["name"]): by_urn[r["parent"]] for r in plan["resources"]}
    listed: dict[tuple[str, str], tuple[str, str] | None] = {}
    path: list[tuple[str, str]] = []
    for depth, typ, name, _ in _rows(details.stdout):
        del path[depth:]
        assert (typ, name) not in listed, f"{typ} {name} listed twice"
        listed[(typ, name)] = path[-1] if path else None
        path.append((typ, name))
    assert listed.pop((STACK_TYPE, STACK_NAME)) is None, "the stack is the root"
    assert listed == expected
    assert len(listed) + 1 == plan["resourceCount"]
    assert re.search(r"^ \+   │  ├─ aws:ec2/vpc:Vpc +network-vpc +create$", details.stdout, re.M)
    assert "×" not in details.stdout
    assert re.search(r"^     Type +Name +Plan$", details.stdout, re.MULTILINE)


# --- charts -----------------------------------------------------------------------------------


def test_charts_are_shown_as_charts_whose_objects_come_at_deploy_time(run: Run) -> None:
    """A v4 Chart (a component with no children offline) and a v3 Release (one resource) show
    the chart, version and repository from their inputs, not an empty ``(0 resources)``."""
    charts = [r for r in run.plan["resources"] if r["type"] in CHART_TYPES]
    assert {r["type"] for r in charts} == {
        "kubernetes:helm.sh/v4:Chart",
        "kubernetes:helm.sh/v3:Release",
    }
    lines = run.stdout.splitlines()
    for chart in charts:
        inputs = chart["inputs"]
        source = (
            f"chart {inputs['chart']} {inputs['version']} from {inputs['repositoryOpts']['repo']}"
        )
        (line,) = [line for line in lines if {chart["type"], chart["name"]} <= set(line.split())]
        assert line.endswith(f"  {source}: {CHART_NOTE}"), line
    assert "(0 resources)" not in run.stdout


def _resource(urn: str, typ: str, parent: str | None, custom: bool, **inputs: Any) -> Any:
    return CapturedResource(urn, typ, urn.rsplit("::", 1)[1], custom, parent, None, False, [], {},
                            inputs)  # fmt: skip


def test_a_chart_with_objects_in_the_plan_shows_them_and_no_deploy_time_note() -> None:
    """A chart whose objects the program did register (a v3 Chart renders them client-side)
    counts them like a component; an empty component still says ``(0 resources)``."""
    stack = "urn:pulumi:s::p::pulumi:pulumi:Stack::p-s"
    chart = "urn:pulumi:s::p::kubernetes:helm.sh/v3:Chart::web"
    plan = Plan("p", "s", stack, [
        _resource(chart, "kubernetes:helm.sh/v3:Chart", stack, False, chart="web", version="1"),
        _resource(chart + "-cm", "kubernetes:core/v1:ConfigMap", chart, True),
        _resource("urn:pulumi:s::p::x:y:Empty::empty", "x:y:Empty", stack, False),
    ])  # fmt: skip
    tree = plan.render_tree()
    assert "─ kubernetes:helm.sh/v3:Chart  web  chart web 1  (1 resources)\n" in tree
    assert "│  └─ kubernetes:core/v1:ConfigMap ×1\n" in tree
    assert "─ x:y:Empty  empty  (0 resources)" in tree
    assert CHART_NOTE not in tree
    assert plan.render_tree(details=True).count(" create") == plan.resource_count == 4


# --- quiet ------------------------------------------------------------------------------------


def test_quiet_prints_nothing_even_with_details(tmp_path: Path) -> None:
    quiet = _run(tmp_path, "--quiet", "--details")
    assert quiet.stdout == ""
    assert quiet.plan["resourceCount"] == len(quiet.plan["resources"]) + 1
