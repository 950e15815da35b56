"""Offline preview: run the Pulumi program for one stack with no cloud account and no CLI.

    python -m tools.preview [<stack>] [--out build] [--quiet] [--details] [--checkov]

A pipeline of stages over one ``PreviewContext``:

1. ``config``  — load Pulumi.yaml and Pulumi.<stack>.yaml as the CLI would (defaults, declared
   types, placeholders for secrets);
   ``policy-start`` — start the policy pack's process in a thread, so its interpreter starts
   while the program runs (the ``policy`` stage uses it; a failed stage stops it);
2. ``program`` — run ``__main__.py`` under the Pulumi mock runtime, capturing every resource
   (``tools.program``);
3. ``plan``    — write ``build/<stack>/plan.json``;
4. ``summary`` — print the plan as ``pulumi preview`` does: the resource tree (grouped per type,
   or every resource with ``--details``), ``Outputs:`` and ``Resources:``;
5. ``manifests`` — write every Kubernetes object as YAML under ``build/<stack>/manifests/``;
   ``edge`` — write the edge's nginx files (its ConfigMap) under ``build/<stack>/edge/``;
   ``monitoring`` — write the stack's monitoring files under ``build/<stack>/monitoring/``
   (``prometheus.yml``, ``rules/``, ``alertmanager.yml`` with the secrets' placeholders,
   ``blackbox.yml``, ``dashboards/``: ``components.monitoring.render``), which the monitoring
   tests check with promtool, amtool and the blackbox exporter;
6. ``engine`` — replay what the real engine and providers refuse and the mock runtime accepts
   (``tools/engine``): duplicate URNs, unregistered parents and dependencies, inputs against
   the provider schemas of the pinned SDKs, Helm chart values and hooks; writes
   ``build/<stack>/engine-report.json``;
7. ``policy`` — run the CrossGuard pack in ``policies/`` as its own process over the Analyzer
   gRPC protocol (``tools/analyzer/``) with the stack's policy config (``python -m
   tools.stacks policy-config <stack>``) as its ``--policy-pack-config``; print its
   ``Policies:`` section as ``pulumi preview`` does and write ``build/<stack>/policy-report.json``.

With ``--checkov`` (off by default: Checkov's start-up alone costs seconds, and the default
preview keeps its speed target), one more stage:

8. ``checkov`` — Checkov's AWS rules over the Terraform-plan export of the AWS resources
   (``build/<stack>/tfplan.json``, ``tools.tfplan``) and its Kubernetes rules over the
   manifests, both from ``.venv-checkov``; prints passed, failed and accepted per framework and
   fails on a finding neither ``checkov-aws-skips.yaml`` nor ``checkov-skips.yaml`` accepts, or
   on an entry of theirs that accepts nothing (``tools.checkov``).

Later stages (rendered artifacts) append to ``STAGES``. Exit codes:

* 0 — success (advisory policy violations alone do not fail the preview);
* 1 — the program failed, the engine checks found what ``pulumi preview`` would refuse, the
  policy pack failed (died, printed no port, an RPC failed), Checkov (asked for) reported a
  finding not accepted or an accepted one that is gone, or
  **the pack reported at least one mandatory violation** (the report is printed and written
  first, as ``pulumi preview`` lists every violation before failing);
* 2 — bad input: configuration problems (one line per problem, naming the key), no policy pack
  or policy config file where expected, a policy config the pack's schema rejects, or (with
  ``--checkov``) no Checkov installed or a malformed skips file.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from components.monitoring.alertmanager import SECRET_KEYS as MONITORING_SECRET_KEYS
from components.monitoring.render import render_all as render_monitoring
from components.settings import PROJECT, parse_settings
from tools import checkov, render, tfplan
from tools.analyzer.errors import PolicyInputError, PolicyPackError
from tools.analyzer.report import PolicyReport
from tools.analyzer.session import PolicySession
from tools.analyzer.streaming import StreamingCheck
from tools.edge import rendered as edge
from tools.engine import check as engine
from tools.engine.charts import ChartTableError
from tools.engine.schema import SchemaCache
from tools.mocks import CapturedResource
from tools.plan import Plan
from tools.program import (
    EXIT_CONFIG,
    EXIT_PROGRAM_FAILED,
    StageError,
    config_error,
    run_program,
)
from tools.project import ConfigFileError, StackConfig, check_stack, placeholder_for
from tools.stacks import ROLE_KEY, StackFileError, policy_config_for
from tools.tfplan import ExportError

REPO_ROOT = Path(__file__).resolve().parent.parent

EXIT_OK = 0
EXIT_POLICY_VIOLATIONS = 1
"""Mandatory policy violations fail the preview like a failed program."""
EXIT_ENGINE = 1
"""What the engine or a provider would refuse fails the preview like a failed program."""

POLICY_PACK_DIR = "policies"
"""The policy pack's folder in the project; a stack's config is ``config/<stack>.json`` or, when
there is none, its role's (``tools.stacks.ROLE_POLICY_CONFIG``)."""


@dataclass
class PreviewContext:
    stack: str
    project_dir: Path = REPO_ROOT
    out_root: Path = REPO_ROOT / "build"
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    quiet: bool = False
    details: bool = False
    """List every resource by name under its component instead of counts per type."""
    checkov: bool = False
    """Run the ``checkov`` stage too (``--checkov``)."""
    # Filled in by the stages:
    schemas: SchemaCache = field(init=False)
    """Provider schemas of the pinned SDKs, cached under ``build/.cache`` per SDK versions."""
    config: StackConfig | None = None
    plan: Plan | None = None
    policy: PolicyStart | None = None
    """The policy pack starting in the background (``policy-start`` stage)."""

    def __post_init__(self) -> None:
        self.schemas = SchemaCache(self.out_root / ".cache")

    @property
    def out_dir(self) -> Path:
        return self.out_root / self.stack

    def require_config(self) -> StackConfig:
        if self.config is None:
            raise RuntimeError("the config stage has not run")
        return self.config

    def require_plan(self) -> Plan:
        if self.plan is None:
            raise RuntimeError("the program stage has not run")
        return self.plan

    def say(self, text: str = "") -> None:
        if not self.quiet:
            print(text, file=self.stdout)


Stage = Callable[[PreviewContext], None]


def stage_config(ctx: PreviewContext) -> None:
    """The stack file checked as the CLI would, then by the settings: every problem at once."""
    try:
        ctx.config = check_stack(ctx.project_dir, ctx.stack)
    except ConfigFileError as exc:
        raise config_error(ctx.stack, exc.problems) from None


def stage_program(ctx: PreviewContext) -> None:
    listener = ctx.policy.add if ctx.policy is not None else None
    ctx.plan = run_program(ctx.project_dir, ctx.require_config(), ctx.schemas, listener)


def stage_plan(ctx: PreviewContext) -> None:
    ctx.require_plan().write(ctx.out_dir / "plan.json")


def stage_manifests(ctx: PreviewContext) -> None:
    written = render.write(ctx.require_plan(), ctx.out_dir / "manifests")
    ctx.say(f"{len(written)} Kubernetes manifests written to {ctx.out_dir / 'manifests'}")


def stage_edge(ctx: PreviewContext) -> None:
    """The edge's nginx configuration, the files of its ConfigMap, under ``edge/`` (what
    ``python -m tools.edge`` runs and the edge tests serve with a real nginx)."""
    try:
        files = edge.edge_files(ctx.require_plan())
    except edge.NoEdgeError as exc:
        raise StageError(EXIT_PROGRAM_FAILED, [f"error: edge configuration: {exc}"]) from None
    written = render.replace_folder(files, ctx.out_dir / "edge")
    ctx.say(f"{len(written)} edge nginx files written to {ctx.out_dir / 'edge'}")


def stage_monitoring(ctx: PreviewContext) -> None:
    """The stack's monitoring files under ``monitoring/``, rendered from its settings, with the
    offline placeholders where the secrets go (no secrets provider offline; the placeholders
    keep the values' shapes, so the real tools accept the files)."""
    settings = parse_settings(ctx.stack, ctx.require_config().values)
    secrets = {key: placeholder_for(key) for key in MONITORING_SECRET_KEYS}
    written = render.replace_folder(
        render_monitoring(settings, secrets), ctx.out_dir / "monitoring"
    )
    ctx.say(f"{len(written)} monitoring files written to {ctx.out_dir / 'monitoring'}")


def stage_summary(ctx: PreviewContext) -> None:
    """The plan as ``pulumi preview`` prints it (``Plan.render``): the resource tree, grouped
    per type or, with ``--details``, every resource by name; ``Outputs:`` (secrets masked);
    ``Resources:`` with the one resource count. Then what is offline only: the placeholders
    standing in for secrets and where the plan was written."""
    ctx.say(ctx.require_plan().render(details=ctx.details))
    placeholders = ctx.require_config().placeholders
    if placeholders:
        ctx.say("\nOffline placeholders stand in for the secrets: " + ", ".join(placeholders))
    ctx.say(f"\nPlan written to {ctx.out_dir / 'plan.json'}")


def stage_engine(ctx: PreviewContext) -> None:
    """What the real engine and providers would refuse (tools/engine): one line per finding
    naming the resource and property; errors fail the preview, warnings are printed."""
    plan = ctx.require_plan()
    try:
        report = engine.check(plan.resources, plan.stack_urn, sites=plan.sites, schemas=ctx.schemas)
    except ChartTableError as exc:
        raise StageError(EXIT_CONFIG, [f"error: chart table: {exc}"]) from None
    path = ctx.out_dir / "engine-report.json"
    report.write_json(path)
    for finding in report.warnings:
        ctx.say(finding.line())
    ctx.say()
    ctx.say(report.summary())
    if report.errors:
        raise StageError(
            EXIT_ENGINE,
            [f"error: {len(report.errors)} finding(s) the Pulumi engine or a provider would "
             f"refuse (see {path}):"]
            + [f"  - {finding.line()}" for finding in report.errors],
        )  # fmt: skip


class PolicyStart:
    """The policy pack, started and configured in threads while the program runs, then fed
    each resource as the program registers it (``add``), as the engine analyzes resources during
    a deployment. Resource policies judge each resource alone, so the resources are shared
    between ``processes`` processes of the pack (one per core, at most two), which then work
    in parallel with the program and with each other; the first one also analyzes the stack."""

    def __init__(self, ctx: PreviewContext, processes: int = 2) -> None:
        self._ctx = ctx
        self._count = max(1, min(processes, os.cpu_count() or 1))
        self.checks: list[StreamingCheck | None] = [None] * self._count
        self.errors: list[BaseException] = []
        self._pending: list[CapturedResource] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._start, args=(index,), name=f"policy-pack-{index}",
                             daemon=True)
            for index in range(self._count)
        ]  # fmt: skip
        for thread in self._threads:
            thread.start()

    def _start(self, index: int) -> None:
        try:
            session = policy_session(self._ctx)
            try:
                session.start()
                check = session.stream(PROJECT, self._ctx.stack, "")
            except BaseException:
                session.stop()
                raise
            with self._lock:
                self.checks[index] = check
                for position, resource in enumerate(self._pending):
                    check.add(resource, analyze=position % self._count == index)
        except BaseException as exc:  # re-raised in the policy stage, in pipeline order
            with self._lock:
                self.errors.append(exc)

    def add(self, resource: CapturedResource) -> None:
        """A resource the program registered: analyzed by one process, known to all."""
        with self._lock:
            position = len(self._pending)
            self._pending.append(resource)
            for index, check in enumerate(self.checks):
                if check is not None:
                    check.add(resource, analyze=position % self._count == index)

    def finish(self, plan: Plan) -> PolicyReport:
        for thread in self._threads:
            thread.join()
        if self.errors:
            raise self.errors[0]
        main, *helpers = [check for check in self.checks if check is not None]
        return main.session.finish(plan, main, helpers)

    @property
    def output(self) -> list[str]:
        return [line for c in self.checks if c is not None for line in c.session.output]

    def stop(self) -> None:
        for thread in self._threads:
            thread.join()
        for check in self.checks:
            if check is not None:
                check.cancel()
                check.session.stop()


def policy_config_file(ctx: PreviewContext) -> Path:
    """``policies/config/<stack>.json`` if it exists, else the file of the stack's role: the
    file CI passes as ``--policy-pack-config`` (``python -m tools.stacks policy-config``)."""
    role = ctx.require_config().values.get(ROLE_KEY, "")
    try:
        return ctx.project_dir / policy_config_for(ctx.stack, role, ctx.project_dir)
    except StackFileError as exc:
        raise PolicyInputError([f"error: {exc}"]) from None


def policy_session(ctx: PreviewContext, project: str = PROJECT) -> PolicySession:
    """The pack in ``policies/`` with the stack's configuration file, as ``pulumi preview
    --policy-pack policies --policy-pack-config ...`` would run it."""
    pack_dir = ctx.project_dir / POLICY_PACK_DIR
    config = ctx.require_config()
    return PolicySession(
        pack_dir,
        project=project,
        stack=ctx.stack,
        config_file=policy_config_file(ctx),
        stack_config=config.values,
        secret_keys=config.secret_keys,
        pack_label=POLICY_PACK_DIR,
    )


def stage_policy_start(ctx: PreviewContext) -> None:
    ctx.policy = PolicyStart(ctx)


def _streamed_report(ctx: PreviewContext, policy: PolicyStart) -> PolicyReport:
    try:
        report = policy.finish(ctx.require_plan())
    finally:
        policy.stop()
    report.pack_output = policy.output  # complete once the processes are stopped
    return report


def stage_policy(ctx: PreviewContext) -> None:
    try:
        if ctx.policy is not None:
            report = _streamed_report(ctx, ctx.policy)
        else:
            session = policy_session(ctx, ctx.require_plan().project)
            session.start()
            try:
                report = session.check(ctx.require_plan())
            finally:
                session.stop()
            report.pack_output = session.output  # complete once the process is stopped
    except PolicyInputError as exc:
        raise StageError(EXIT_CONFIG, exc.lines) from None
    except PolicyPackError as exc:
        raise StageError(EXIT_PROGRAM_FAILED, exc.lines) from None
    path = ctx.out_dir / "policy-report.json"
    report.write_json(path)
    ctx.say()
    ctx.say(report.render())
    ctx.say(f"\nPolicy report written to {path}")
    mandatory = report.mandatory()
    if mandatory:
        lines = [f"error: {len(mandatory)} mandatory policy violation(s); see {path}"]
        if ctx.quiet:  # the report was not printed: name each violation here
            lines += [
                f"  - [{d.severity}] {d.policy_name}  ({d.resource_type}: {d.resource_name})"
                for d in mandatory
            ]
        raise StageError(EXIT_POLICY_VIOLATIONS, lines)


def stage_checkov(ctx: PreviewContext) -> None:
    """Checkov's AWS rules on the Terraform-plan export and its Kubernetes rules on the
    manifests (the ``manifests`` stage wrote them), side by side; each judged against its
    skips file for the stack's role."""
    plan = ctx.require_plan()
    role = ctx.require_config().values.get(ROLE_KEY, "")
    try:
        exported = tfplan.write(plan, ctx.out_dir / "tfplan.json", ctx.schemas)
        aws_skips = checkov.load_aws_skips(ctx.project_dir / checkov.AWS_SKIPS.name)
        kube_skips = checkov.load_kubernetes_skips(ctx.project_dir / checkov.KUBERNETES_SKIPS.name)
        with ThreadPoolExecutor(max_workers=2) as pool:
            aws = pool.submit(checkov.run, "terraform_plan", exported)
            kube = pool.submit(
                checkov.run, "kubernetes", ctx.out_dir / "manifests", checkov.KUBERNETES_CONFIG
            )
            verdicts = [
                checkov.judge("terraform_plan", aws.result(), aws_skips, role),
                checkov.judge("kubernetes", kube.result(), kube_skips, role),
            ]
    except ExportError as exc:
        raise StageError(EXIT_PROGRAM_FAILED, [f"error: Terraform-plan export: {exc}"]) from None
    except checkov.CheckovError as exc:
        raise StageError(EXIT_CONFIG, [f"error: checkov: {exc}"]) from None
    ctx.say(f"\nTerraform plan of the AWS resources written to {exported}")
    ctx.say("Checkov:")
    for verdict, skips in zip(verdicts, (checkov.AWS_SKIPS, checkov.KUBERNETES_SKIPS), strict=True):
        label = "AWS (terraform_plan)" if verdict.framework == "terraform_plan" else "Kubernetes"
        ctx.say(f"    {label}: {verdict.counts()}; accepted in {skips.name}")
    problems = [(v, line) for v in verdicts for line in v.problems()]
    if problems:
        raise StageError(
            EXIT_POLICY_VIOLATIONS,
            [f"error: {len(problems)} Checkov finding(s) or skips entries to resolve:"]
            + [f"  - [{v.framework}] {line}" for v, line in problems],
        )


STAGES: list[tuple[str, Stage]] = [
    ("config", stage_config),
    ("policy-start", stage_policy_start),
    ("program", stage_program),
    ("plan", stage_plan),
    ("summary", stage_summary),
    ("manifests", stage_manifests),
    ("edge", stage_edge),
    ("monitoring", stage_monitoring),
    ("engine", stage_engine),
    ("policy", stage_policy),
]


def run_pipeline(ctx: PreviewContext, stages: Sequence[tuple[str, Stage]] = STAGES) -> int:
    try:
        for _, stage in stages:
            try:
                stage(ctx)
            except StageError as failure:
                print("\n".join(failure.lines), file=sys.stderr)
                return failure.exit_code
        return EXIT_OK
    finally:
        if ctx.policy is not None:  # a stage failed before the policy stage: stop the pack
            ctx.policy.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.preview",
        description="Offline preview of a stack: no cloud account, no Pulumi CLI.",
    )
    parser.add_argument("stack", nargs="?", default="staging", help="stack name (default: staging)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build", help="output root folder")
    parser.add_argument("--project-dir", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    parser.add_argument(
        "--details",
        action="store_true",
        help="list every resource by name under its component (default: counts per type)",
    )
    parser.add_argument(
        "--checkov",
        action="store_true",
        help="also run Checkov's AWS rules (Terraform-plan export) and Kubernetes rules",
    )
    args = parser.parse_args(argv)
    ctx = PreviewContext(
        stack=args.stack,
        project_dir=args.project_dir.resolve(),
        out_root=args.out,
        quiet=args.quiet,
        details=args.details,
        checkov=args.checkov,
    )
    stages = [*STAGES, ("checkov", stage_checkov)] if args.checkov else STAGES
    return run_pipeline(ctx, stages)


def _exit(code: int) -> None:
    """Leave without the interpreter's teardown: every file is written, the pack's processes
    are stopped, and unwinding the ~1,100 SDK modules and the mock runtime's threads costs
    most of a second for nothing."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
