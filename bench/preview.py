"""Benchmark: how long the program takes to evaluate, against the cost of the Pulumi SDKs.

    python bench/preview.py [--stack prod] [--runs 7]

Measures, in fresh interpreters, interleaved, medians of ``--runs`` runs each:

* **program**: interpreter start to every resource of the stack registered under the mock
  runtime (``tools.program.run_program``) and the process gone;
* **SDK floor**: an interpreter that imports pulumi, pulumi_aws and pulumi_kubernetes and then
  every module of the Pulumi SDK packages that the program ends up loading (listed by running
  the program once and reading ``sys.modules``). pulumi_aws and pulumi_kubernetes load their
  submodules lazily, so ``import pulumi_aws`` alone loads almost none of the code any program
  registering, say, an ``aws.ec2.Vpc`` must load (``ec2`` alone costs more than the three
  top-level imports), and registering a resource loads the modules of the types its inputs
  refer to. This floor is what the program cannot avoid; the ratio measures what it adds on
  top: its own modules, settings, and registering its resources;
* **whole preview**: ``python -m tools.preview <stack> --quiet`` -- every stage, as
  ``make preview`` runs it (config, program, plan, manifests, engine checks, the policy pack
  over gRPC), with the schema cache under its output folder warm (one untimed run first);
* **bare floor**: ``import pulumi, pulumi_aws, pulumi_kubernetes`` and nothing else, printed for
  reference.

Targets: program / SDK floor <= 1.5; whole preview / SDK floor <= 1.8. Exits 1 when either is
missed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.5
PREVIEW_TARGET = 1.8

PROGRAM = """
import sys
import tempfile
sys.path.insert(0, {root!r})
from pathlib import Path
from tools.program import run_program
from tools.project import load_stack_config
plan = run_program(Path({root!r}), load_stack_config(Path({root!r}), {stack!r}))
print(plan.resource_count)
"""

LOADED_SDK_MODULES = """
import json, sys
sys.path.insert(0, {root!r})
from pathlib import Path
from tools.program import run_program
from tools.project import load_stack_config
run_program(Path({root!r}), load_stack_config(Path({root!r}), {stack!r}))
sdk = ("pulumi", "pulumi_aws", "pulumi_kubernetes", "pulumi_docker")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in sdk)))
"""

SDK_FLOOR = """
import importlib
import pulumi, pulumi_aws, pulumi_kubernetes
for module in {modules!r}:
    importlib.import_module(module)
"""

BARE_FLOOR = "import pulumi, pulumi_aws, pulumi_kubernetes"


def timed(code: str) -> tuple[float, str]:
    return timed_command([sys.executable, "-c", code])


def timed_command(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return time.perf_counter() - start, result.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="prod")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be at least 5 for a median to mean anything")

    root, stack = str(ROOT), args.stack
    modules = json.loads(timed(LOADED_SDK_MODULES.format(root=root, stack=stack))[1])
    resource_count = int(timed(PROGRAM.format(root=root, stack=stack))[1])
    program = PROGRAM.format(root=root, stack=stack)
    sdk_floor = SDK_FLOOR.format(modules=modules)

    out = tempfile.mkdtemp(prefix="bench-preview-")
    preview = [sys.executable, "-m", "tools.preview", stack, "--quiet", "--out", out]
    timed_command(preview)  # warms the schema cache, as any earlier preview would have

    timings: dict[str, list[float]] = {
        "program": [], "whole preview": [], "sdk floor": [], "bare floor": []
    }  # fmt: skip
    for _ in range(args.runs):
        elapsed, printed = timed(program)
        if int(printed) != resource_count:
            raise SystemExit(f"program registered {printed} resources, expected {resource_count}")
        timings["program"].append(elapsed)
        timings["whole preview"].append(timed_command(preview)[0])
        timings["sdk floor"].append(timed(sdk_floor)[0])
        timings["bare floor"].append(timed(BARE_FLOOR)[0])

    medians = {name: statistics.median(values) for name, values in timings.items()}
    ratio = medians["program"] / medians["sdk floor"]
    preview_ratio = medians["whole preview"] / medians["sdk floor"]
    bare_ratio = medians["program"] / medians["bare floor"]
    print(f"stack {stack}: {resource_count} resources, {args.runs} runs each (medians)")
    print(f"  SDK modules the program loads (all imported by the SDK floor): {len(modules)}")
    for name, value in medians.items():
        print(
            f"  {name:<13} {value:6.3f} s   (runs: {', '.join(f'{v:.3f}' for v in timings[name])})"
        )
    print(f"  ratio program / SDK floor       = {ratio:.2f}   (target <= {TARGET})")
    print(f"  ratio whole preview / SDK floor = {preview_ratio:.2f}   (target <= {PREVIEW_TARGET})")
    print(f"  ratio program / bare floor      = {bare_ratio:.2f}   (reference only)")
    summary = {
        "stack": args.stack,
        "ratio": round(ratio, 3),
        "preview_ratio": round(preview_ratio, 3),
        "bare_ratio": round(bare_ratio, 3),
        "medians": {k: round(v, 3) for k, v in medians.items()},
    }
    print(json.dumps(summary))
    shutil.rmtree(out, ignore_errors=True)
    return 0 if ratio <= TARGET and preview_ratio <= PREVIEW_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
