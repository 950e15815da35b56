"""A started, configured policy pack, kept open for many checks: the entry point of the package.

What the engine does before it analyzes anything, and what ``PolicySession.start`` repeats:
``Handshake`` and ``ConfigureStack`` (UNIMPLEMENTED tolerated), ``GetAnalyzerInfo``, the policy
configuration reconciled as the engine does (``tools.analyzer.config``) sent with ``Configure``.
Then, for every registered resource, ``Remediate`` then ``Analyze``, and finally
``AnalyzeStack`` (``tools.analyzer.check``), as ``pulumi preview --policy-pack DIR
[--policy-pack-config FILE]`` does. ``run_policy_check`` is one session with one check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypedDict, Unpack

from google.protobuf import empty_pb2  # type: ignore[import-untyped]
from pulumi.runtime.proto import analyzer_pb2

from tools.analyzer import wire
from tools.analyzer.check import CheckRun
from tools.analyzer.config import (
    AnalyzerInfo,
    PolicyConfig,
    config_warnings,
    effective_config,
    load_policy_config,
)
from tools.analyzer.errors import PolicyPackError
from tools.analyzer.pack import (
    DEFAULT_ORGANIZATION,
    ENGINE_ADDRESS,
    PackClient,
    PolicyPackProcess,
    load_pack_project,
    pack_environment,
)
from tools.analyzer.report import PolicyDiagnostic, PolicyReport
from tools.analyzer.streaming import StreamingCheck
from tools.plan import Plan


class SessionOptions(TypedDict, total=False):
    """``PolicySession``'s options besides the pack, project and stack (its defaults apply)."""

    config_file: Path | None
    stack_config: Mapping[str, str] | None
    secret_keys: Sequence[str]
    organization: str
    pack_label: str | None
    start_timeout: float
    rpc_timeout: float


class PolicySession:
    """A started, configured pack kept open for many requests: one process, its start-up calls
    (``Handshake``, ``ConfigureStack``, ``GetAnalyzerInfo``, ``Configure``) made once, then
    ``check``, ``analyze`` and ``analyze_stack`` as often as needed, over the captured plan or
    any variant of it (tests send many). A context manager that always stops the process.

    The pack is started for one project and stack (they reach it through its environment), so
    every plan sent must be of that stack. ``run_policy_check`` is one session with one
    ``check``. Raises as ``run_policy_check`` does: ``PolicyInputError`` for a missing pack or a
    bad ``PulumiPolicy.yaml`` or policy config (before the process starts, except a config the
    pack's schema rejects), ``PolicyPackError`` when the pack process fails; the process is
    stopped in every case.
    """

    def __init__(
        self,
        pack_dir: Path,
        *,
        project: str,
        stack: str,
        config_file: Path | None = None,
        stack_config: Mapping[str, str] | None = None,
        secret_keys: Sequence[str] = (),
        organization: str = DEFAULT_ORGANIZATION,
        pack_label: str | None = None,
        start_timeout: float = 60.0,
        rpc_timeout: float = 300.0,
    ) -> None:
        self.pack_dir = pack_dir
        self.project = project
        self.stack = stack
        self.config_file = config_file
        self.stack_config = dict(stack_config or {})
        self.secret_keys = list(secret_keys)
        self.organization = organization
        self.pack_label = pack_label if pack_label is not None else str(pack_dir)
        self.start_timeout = start_timeout
        self.rpc_timeout = rpc_timeout
        self.pack_project = load_pack_project(pack_dir)
        self.given = load_policy_config(config_file) if config_file is not None else {}
        self.process: PolicyPackProcess | None = None
        self.config: dict[str, PolicyConfig] = {}
        """The configuration sent with ``Configure`` (empty when the pack takes none)."""
        self._client: PackClient | None = None
        self._info: AnalyzerInfo | None = None

    def __enter__(self) -> PolicySession:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the pack and configure it as the engine does; stops it again on any failure."""
        if self.process is not None:
            raise RuntimeError("the policy session was already started")
        env = pack_environment(
            project=self.project,
            stack=self.stack,
            organization=self.organization,
            config=self.stack_config,
        )
        process = PolicyPackProcess(self.pack_project, env, start_timeout=self.start_timeout)
        self.process = process
        try:
            process.start()
            client = PackClient(process, self.rpc_timeout)
            client.call(
                "Handshake",
                analyzer_pb2.AnalyzerHandshakeRequest(
                    engine_address=ENGINE_ADDRESS,
                    root_directory=str(self.pack_dir),
                    program_directory=str(self.pack_dir),
                ),
                optional=True,
            )
            client.call(
                "ConfigureStack",
                analyzer_pb2.AnalyzerStackConfigureRequest(
                    stack=self.stack,
                    project=self.project,
                    organization=self.organization,
                    dry_run=True,
                    config=self.stack_config,
                    config_secret_keys=self.secret_keys,
                ),
                optional=True,
            )
            info = wire.analyzer_info(
                client.call("GetAnalyzerInfo", empty_pb2.Empty()), self.pack_project
            )
            self.config = effective_config(info, self.given, self.config_file)
            if self.config:
                client.call("Configure", wire.configure_request(self.config))
        except BaseException:
            process.stop()
            raise
        self._client = client
        self._info = info

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        self._client = None

    @property
    def info(self) -> AnalyzerInfo:
        """What ``GetAnalyzerInfo`` returned (the session must be started)."""
        if self._info is None:
            raise RuntimeError("the policy session is not started")
        return self._info

    @property
    def output(self) -> list[str]:
        """What the pack process wrote besides its port (complete once it is stopped)."""
        return self.process.output if self.process is not None else []

    @property
    def warnings(self) -> list[str]:
        return config_warnings(self.info, self.given)

    def check(self, plan: Plan, *, analyze: Iterable[str] | None = None) -> PolicyReport:
        """One policy check over ``plan``: ``Remediate`` and ``Analyze`` for every resource (or
        only the URNs in ``analyze``; the stack's own URN names the stack resource), then
        ``AnalyzeStack`` with every resource of the plan."""
        run = self._run(plan)
        run.analyze_each(analyze)
        run.analyze_stack()
        return self._report(plan, run)

    def stream(self, project: str, stack: str, stack_urn: str) -> StreamingCheck:
        """A check that analyzes each resource as the program registers it, as the engine
        does during a deployment (``StreamingCheck``)."""
        client, info = self._started()
        if (project, stack) != (self.project, self.stack):
            raise ValueError(f"the pack was started for {self.project}/{self.stack}")
        return StreamingCheck(self, CheckRun(client, info, None, stack_urn))

    def finish(
        self, plan: Plan, streaming: StreamingCheck, helpers: Sequence[StreamingCheck] = ()
    ) -> PolicyReport:
        """The report of a streamed check once the program is done: every resource of
        ``plan`` must have been analyzed by this session or one of its ``helpers`` (other
        processes of the same pack and configuration); then the stack is analyzed here and
        ``AnalyzeStack`` sent here, with every resource."""
        run = streaming.close()
        seen = set(streaming.seen)
        for helper in helpers:
            run.merge(helper.close())
            seen |= helper.seen
        missing = [r.urn for r in plan.resources if r.urn not in seen]
        if missing:
            raise PolicyPackError(
                [f"error: the policy pack analyzed {len(plan.resources) - len(missing)} of "
                 f"{len(plan.resources)} resources; not analyzed: {missing[0]} and "
                 f"{len(missing) - 1} more"]
            )  # fmt: skip
        run.adopt(plan)
        run.analyze_stack()
        return self._report(plan, run)

    def analyze(self, plan: Plan, urns: Iterable[str] | None = None) -> list[PolicyDiagnostic]:
        """``Remediate`` and ``Analyze`` for the resources of ``plan`` in ``urns`` (all when
        ``None``); what the pack reported."""
        run = self._run(plan)
        run.analyze_each(urns)
        return run.diagnostics

    def analyze_stack(self, plan: Plan) -> list[PolicyDiagnostic]:
        """``AnalyzeStack`` with every resource of ``plan``, as captured (no remediation of an
        earlier ``analyze`` is applied: ``check`` does both in one run)."""
        run = self._run(plan)
        run.analyze_stack()
        return run.diagnostics

    def _run(self, plan: Plan) -> CheckRun:
        client, info = self._started()
        if (plan.project, plan.stack) != (self.project, self.stack):
            raise ValueError(
                f"the pack was started for {self.project}/{self.stack}, "
                f"not {plan.project}/{plan.stack}"
            )
        return CheckRun(client, info, plan)

    def _started(self) -> tuple[PackClient, AnalyzerInfo]:
        if self._client is None or self._info is None:
            raise RuntimeError("the policy session is not started")
        return self._client, self._info

    def _report(self, plan: Plan, run: CheckRun) -> PolicyReport:
        return PolicyReport(
            stack=plan.stack,
            project=plan.project,
            pack=self.info,
            pack_label=self.pack_label,
            config_file=str(self.config_file) if self.config_file is not None else None,
            config=self.config,
            diagnostics=run.diagnostics,
            remediations=run.remediations,
            resources_analyzed=run.analyzed,
            not_applicable=dict(run.not_applicable),
            warnings=self.warnings,
            pack_output=list(self.output),
        )


def run_policy_check(plan: Plan, pack_dir: Path, **options: Unpack[SessionOptions]) -> PolicyReport:
    """Run the pack in ``pack_dir`` over ``plan`` as ``pulumi preview --policy-pack pack_dir
    [--policy-pack-config config_file]`` would, and return what it reported; ``options`` are
    ``PolicySession``'s.

    Raises ``PolicyInputError`` for a missing pack or a bad ``PulumiPolicy.yaml`` or policy config,
    ``PolicyPackError`` when the pack process fails; the process is stopped in every case.
    """
    session = PolicySession(pack_dir, project=plan.project, stack=plan.stack, **options)
    with session:
        report = session.check(plan)
    report.pack_output = session.output  # complete once the process is stopped
    return report
