"""One policy check over the protocol: ``Remediate`` then ``Analyze`` for each resource, then
``AnalyzeStack`` with the whole stack, and what the pack reported along the way.

The state a check builds up (remediated inputs that ``AnalyzeStack`` must see, diagnostics in
plan order, not-applicable counts) lives here, apart from starting and configuring the pack
(``tools.analyzer.session``), so one configured pack serves many checks. A diagnostic at level
``remediate`` is reported as ``mandatory``: a remediation ran and the violation is still there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format  # type: ignore[import-untyped]
from pulumi.runtime.proto import analyzer_pb2

from tools.analyzer import wire
from tools.analyzer.config import AnalyzerInfo
from tools.analyzer.pack import PackClient
from tools.analyzer.report import PolicyDiagnostic, PolicyRemediation
from tools.analyzer.wire import Subject
from tools.plan import Plan


class CheckRun:
    """One policy check: the state the protocol calls build up."""

    def __init__(
        self, client: PackClient, info: AnalyzerInfo, plan: Plan | None, stack_urn: str = ""
    ) -> None:
        self.client = client
        self.info = info
        self.subjects = wire.plan_subjects(plan) if plan is not None else []
        self.by_urn = {s.urn: s for s in self.subjects}
        self.stack_urn = plan.stack_urn if plan is not None else stack_urn
        self.diagnostics: list[PolicyDiagnostic] = []
        self.remediations: list[PolicyRemediation] = []
        self.remediated: dict[str, dict[str, Any]] = {}
        """Per URN, the inputs remediations changed (wire form; ``None`` when removed)."""
        self.not_applicable: Counter[str] = Counter()
        self.analyzed = 0

    def analyze_each(self, urns: Iterable[str] | None = None) -> None:
        """``Remediate`` then ``Analyze`` for every resource, or only for those in ``urns``."""
        wanted = None if urns is None else set(urns)
        for subject in self.subjects:
            if wanted is None or subject.urn in wanted:
                self.analyze_one(subject)

    def analyze_one(self, subject: Subject) -> None:
        """``Remediate`` then ``Analyze`` for one resource (its provider must be known)."""
        self.analyzed += 1
        request = wire.analyze_request(subject, self.by_urn)
        self._remediate(subject, request)
        response = self.client.call("Analyze", request, what=subject.urn)
        self._count_not_applicable(response.not_applicable)
        for diagnostic in response.diagnostics:
            # The engine reports a resource's violations against the URN it analyzed.
            self.diagnostics.append(self._diagnostic(diagnostic, subject.urn, "analyze"))

    def merge(self, other: CheckRun) -> None:
        """Take in what another run (another process of the same pack, same configuration)
        reported for the resources it analyzed."""
        self.diagnostics += other.diagnostics
        self.remediations += other.remediations
        self.remediated.update(other.remediated)
        self.not_applicable.update(other.not_applicable)
        self.analyzed += other.analyzed

    def adopt(self, plan: Plan) -> None:
        """Take the complete plan after resources were analyzed one by one as they were
        registered: the stack itself is analyzed, and what each resource's analysis reported
        is put in plan order, so the report is the same as one ``check`` over the plan."""
        self.subjects = wire.plan_subjects(plan)
        self.by_urn = {s.urn: s for s in self.subjects}
        self.stack_urn = plan.stack_urn
        self.analyze_one(self.subjects[0])
        order = {s.urn: index for index, s in enumerate(self.subjects)}
        self.diagnostics.sort(key=lambda d: order.get(d.urn, len(order)))
        self.remediations.sort(key=lambda r: order.get(r.urn, len(order)))

    def _remediate(self, subject: Subject, request: Any) -> None:
        response = self.client.call("Remediate", request, what=subject.urn, optional=True)
        if response is None:
            return
        self._count_not_applicable(response.not_applicable)
        for remediation in response.remediations:
            if remediation.diagnostic:
                self.diagnostics.append(
                    PolicyDiagnostic(
                        **self._finding(remediation, subject.urn),
                        enforcement_level="advisory",
                        severity="unspecified",
                        message=remediation.diagnostic,
                        source="remediate",
                    )
                )
            elif remediation.HasField("properties"):
                before = json_format.MessageToDict(request.properties)
                request.properties.CopyFrom(remediation.properties)
                properties = json_format.MessageToDict(remediation.properties)
                changed = sorted(
                    key
                    for key in set(before) | set(properties)
                    if before.get(key) != properties.get(key)
                )
                earlier = self.remediated.get(subject.urn, {})
                self.remediated[subject.urn] = {
                    **earlier,
                    **{key: properties.get(key) for key in changed},
                }
                self.remediations.append(
                    PolicyRemediation(
                        **self._finding(remediation, subject.urn),
                        properties=properties,
                        changed_keys=changed,
                    )
                )

    def analyze_stack(self) -> None:
        resources = []
        for subject in self.subjects:
            outputs = wire.encode_value(subject.outputs)
            # The provider would have been given the remediated inputs: they win over the
            # outputs the mock computed from the original ones.
            for key, value in self.remediated.get(subject.urn, {}).items():
                if value is None:
                    outputs.pop(key, None)
                else:
                    outputs[key] = value
            resources.append(wire.analyzer_resource(subject, self.by_urn, outputs))
        request = analyzer_pb2.AnalyzeStackRequest(resources=resources)
        response = self.client.call("AnalyzeStack", request, optional=True)
        if response is None:
            return
        self._count_not_applicable(response.not_applicable)
        for diagnostic in response.diagnostics:
            # A stack policy's violation without a URN belongs to the stack.
            urn = diagnostic.urn or self.stack_urn
            self.diagnostics.append(self._diagnostic(diagnostic, urn, "analyzeStack"))

    def _diagnostic(self, diagnostic: Any, urn: str, source: str) -> PolicyDiagnostic:
        level = wire.level(diagnostic.enforcementLevel, "advisory")
        if level == "remediate":
            level = "mandatory"  # a remediation ran and the violation is still there
        return PolicyDiagnostic(
            **self._finding(diagnostic, urn),
            enforcement_level=level,
            severity=wire.severity(diagnostic.severity),
            message=diagnostic.message,
            source=source,
        )

    def _finding(self, reported: Any, urn: str) -> dict[str, Any]:
        """What a diagnostic and a remediation both say: the policy (from the protocol's
        ``AnalyzeDiagnostic`` or ``Remediation``) and the resource."""
        subject = self.by_urn.get(urn)
        return {
            "policy_name": reported.policyName,
            "policy_pack_name": reported.policyPackName,
            # The version in PulumiPolicy.yaml, when set, wins over what the pack reports.
            "policy_pack_version": self.info.version or reported.policyPackVersion,
            "urn": urn,
            "resource_type": subject.type if subject else wire.urn_type(urn),
            "resource_name": subject.name if subject else wire.urn_name(urn),
            "description": reported.description,
        }

    def _count_not_applicable(self, entries: Iterable[Any]) -> None:
        for entry in entries:
            self.not_applicable[entry.policy_name] += 1
