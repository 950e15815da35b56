"""Kubernetes stack policies, which relate objects to each other: a PodDisruptionBudget that
allows a disruption for every multi-replica Deployment or StatefulSet (``spec.replicas`` > 1,
or an HPA targeting it with ``maxReplicas`` > 1), a NetworkPolicy selecting every workload, and
Pod Security labels on every namespace workloads run in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import PolicyResource, StackValidationArgs

from .kube import k8s_kind, labels_of, namespace_of, pod_templates, selector_matches, workload_kind
from .node_agents import NODE_AGENT_NAMESPACES
from .policy_config import Config, Setting, reasoned_list
from .registry import HIGH, MEDIUM, Violation, stack_policy
from .resources import each, get, known, number, text


@dataclass(frozen=True)
class Workload:
    resource: PolicyResource
    kind: str
    namespace: str
    name: str
    labels: dict[str, str]

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def workload_resources(resources: Iterable[PolicyResource]) -> list[PolicyResource]:
    return [r for r in resources if workload_kind(r.resource_type)]


def workload(resource: PolicyResource) -> Workload | None:
    """The workload a resource runs (may raise ``UnknownValueError``: check it with ``each``)."""
    kind = workload_kind(resource.resource_type)
    templates = pod_templates(resource.resource_type, resource.props)
    if kind is None or not templates:
        return None
    return Workload(
        resource,
        kind,
        namespace_of(resource.props),
        text(resource.props, "metadata", "name"),
        labels_of(templates[0].metadata, "labels"),
    )


def _of_kind(resources: Iterable[PolicyResource], kind: str) -> list[PolicyResource]:
    return [r for r in resources if k8s_kind(r.resource_type) == kind]


def _replicas(workload: Workload, hpas: Sequence[PolicyResource]) -> tuple[int, int]:
    """(fewest, most) replicas the workload runs with: its HPA's bounds, else spec.replicas
    (default 1)."""
    for hpa in hpas:
        target = get(hpa.props, "spec", "scaleTargetRef") or {}
        if (
            namespace_of(hpa.props) == workload.namespace
            and text(target, "kind") == workload.kind
            and text(target, "name") == workload.name
        ):
            low = number(hpa.props, "spec", "minReplicas") or 1
            high = number(hpa.props, "spec", "maxReplicas") or low
            return int(low), int(high)
    replicas = number(workload.resource.props, "spec", "replicas")
    count = 1 if replicas is None else int(replicas)
    return count, count


def _amount(value: Any, replicas: int) -> float | None:
    """An int-or-percent PDB field as a number of pods (``None`` if it does not parse)."""
    try:
        if isinstance(value, str) and value.endswith("%"):
            return float(value[:-1]) * replicas / 100
        return float(value)
    except (TypeError, ValueError):
        return None


def _allows_disruption(pdb: Mapping[str, Any], fewest: int) -> bool:
    """Whether the PDB lets at least one pod go when the workload runs ``fewest`` replicas
    (percentages round the way the disruption controller rounds them: up)."""
    spec = get(pdb, "spec") or {}
    unavailable = get(spec, "maxUnavailable")
    if unavailable is not None:
        amount = _amount(unavailable, fewest)
        return amount is not None and math.ceil(amount) >= 1
    available = get(spec, "minAvailable")
    if available is not None:
        amount = _amount(available, fewest)
        return amount is not None and math.ceil(amount) < fewest
    return True  # a PDB with neither field allows every disruption


@stack_policy(
    "k8s-replicas-pdb",
    severity=HIGH,
    domain="kubernetes",
    description="Every Deployment or StatefulSet that runs more than one replica (spec.replicas "
    "or an HPA's maxReplicas) must have a PodDisruptionBudget that selects its pods and still "
    "allows a voluntary disruption.",
    remediation="Create a policy/v1 PodDisruptionBudget in the workload's namespace selecting "
    "its pod labels, with maxUnavailable: 1 (or a minAvailable below the HPA's minReplicas), "
    "so node drains proceed one pod at a time.",
)
def k8s_replicas_pdb(args: StackValidationArgs, _: Config) -> Iterator[Violation]:
    hpas = _of_kind(args.resources, "HorizontalPodAutoscaler")
    pdbs = _of_kind(args.resources, "PodDisruptionBudget")

    def check(resource: PolicyResource) -> Iterator[Violation]:
        found = workload(resource)
        if found is None or found.kind not in ("Deployment", "StatefulSet"):
            return
        fewest, most = _replicas(found, hpas)
        if most <= 1:
            return
        selecting = [
            pdb
            for pdb in pdbs
            if namespace_of(pdb.props) == found.namespace
            and selector_matches(get(pdb.props, "spec", "selector"), found.labels)
        ]
        if not selecting:
            yield (
                f"{found.ref} runs up to {most} replicas without a PodDisruptionBudget.",
                (resource.urn),
            )
        elif not any(_allows_disruption(pdb.props, fewest) for pdb in selecting):
            yield f"the PodDisruptionBudget of {found.ref} allows no disruption.", resource.urn

    yield from each(workload_resources(args.resources), check)


@stack_policy(
    "k8s-netpol-coverage",
    severity=MEDIUM,
    domain="kubernetes",
    description="Every workload's pods must be selected by a NetworkPolicy in their namespace.",
    remediation="Give the namespace the default-deny baseline (components.lib.kube."
    "network_policies.namespace_baseline) and declare the workload's traffic with an Allowance.",
)
def k8s_netpol_coverage(args: StackValidationArgs, _: Config) -> Iterator[Violation]:
    policies = _of_kind(args.resources, "NetworkPolicy")

    def check(resource: PolicyResource) -> Iterator[Violation]:
        found = workload(resource)
        if found is not None and not any(
            namespace_of(p.props) == found.namespace
            and selector_matches(get(p.props, "spec", "podSelector"), found.labels)
            for p in policies
        ):
            yield f"{found.ref} is not selected by any NetworkPolicy.", resource.urn

    yield from each(workload_resources(args.resources), check)


PSS_ENFORCE = "pod-security.kubernetes.io/enforce"


@stack_policy(
    "k8s-namespace-pss",
    severity=HIGH,
    domain="kubernetes",
    description="Every namespace must enforce the Pod Security Standards 'restricted' level, "
    "unless the configuration exempts it (with the level and the reason) or it is a node-agent "
    "namespace (node_agents.NODE_AGENT_NAMESPACES, which enforce 'privileged'); workloads may "
    "run only in namespaces of the stack or in external ones the configuration lists.",
    remediation="Create namespaces with components.lib.kube.namespaces.namespace (enforce, audit "
    "and "
    "warn labels at the pinned version); record any exemption in k8s-namespace-pss.exempt (a "
    "node agent's namespace in policies/rules/node_agents.py instead), and namespaces the "
    "stack does not own (kube-system) in externalNamespaces.",
    settings=[
        Setting(
            "exempt",
            reasoned_list(
                {
                    "namespace": {"type": "string"},
                    "level": {"enum": ["baseline", "privileged"]},
                },
                ["namespace", "level"],
            ),
            [],
            "Namespaces that enforce a lower level than restricted.",
        ),
        Setting(
            "externalNamespaces",
            reasoned_list({"namespace": {"type": "string"}}, ["namespace"]),
            [],
            "Namespaces the stack does not create but runs workloads in.",
        ),
    ],
)
def k8s_namespace_pss(args: StackValidationArgs, config: Config) -> Iterator[Violation]:
    levels = {text(e, "namespace"): text(e, "level") for e in config.entries("exempt")}
    # the node-agent namespaces are privileged by the pack's own list (node_agents), whatever
    # the configuration says of them
    levels.update({namespace: "privileged" for namespace in NODE_AGENT_NAMESPACES})
    external = {text(e, "namespace") for e in config.entries("externalNamespaces")}
    namespaces = _of_kind(args.resources, "Namespace")
    created = {known(n.props, "metadata", "name") for n in namespaces} | external

    def labelled(namespace: PolicyResource) -> Iterator[Violation]:
        name = text(namespace.props, "metadata", "name")
        wanted = levels.get(name, "restricted")
        enforced = labels_of(namespace.props, "metadata", "labels").get(PSS_ENFORCE, "")
        if enforced != wanted:
            shown = enforced or "no"
            message = f"namespace {name} enforces {shown} Pod Security level; wanted {wanted}."
            yield message, namespace.urn

    def placed(resource: PolicyResource) -> Iterator[Violation]:
        found = workload(resource)
        if found is not None and found.namespace not in created:
            yield (
                f"{found.ref} runs in namespace {found.namespace}, which the stack does not "
                "create (its Pod Security labels are unknown).",
                resource.urn,
            )

    yield from each(namespaces, labelled)
    yield from each(workload_resources(args.resources), placed)
