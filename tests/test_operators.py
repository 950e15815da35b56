"""Third-party operators installed from pinned charts (External Secrets, VPA), the VPA mode
rule, and Pod Security labels on every namespace the program creates, for both stacks."""

from __future__ import annotations

from typing import Any

import pytest

from components.lib.kube.namespaces import PRIVILEGED_NAMESPACES, Level, pss_labels
from components.lib.kube.vpa import mode_for
from components.platform import external_secrets, vpa
from components.settings import StackSettings
from tests.conftest import component_plan, only
from tools.plan import Plan

CHART = "kubernetes:helm.sh/v4:Chart"
RELEASE = "kubernetes:helm.sh/v3:Release"


def chart(plan: Plan, component: str) -> dict[str, Any]:
    return only(component_plan(plan, component), CHART).inputs


def on_system_pool_restricted(values: dict[str, Any]) -> None:
    assert values["nodeSelector"] == {"exposcholar.io/pool": "system"}
    assert values["tolerations"] == [
        {"key": "CriticalAddonsOnly", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    ]
    context = values["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert values["podSecurityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert set(values["resources"]) == {"requests", "limits"}


def test_external_secrets_operator(plan: Plan) -> None:
    inputs = chart(plan, "exposcholar:cluster:ExternalSecretsOperator")
    assert inputs["chart"] == "external-secrets"
    assert inputs["version"] == external_secrets.CHART.version
    assert inputs["repositoryOpts"] == {"repo": "https://charts.external-secrets.io"}
    assert inputs["namespace"] == "external-secrets"
    values = inputs["values"]
    assert values["installCRDs"] is True
    # namespaced stores only: no store may read secrets across namespaces
    assert values["processClusterStore"] is False
    assert values["processClusterExternalSecret"] is False
    for part in (values, values["webhook"], values["certController"]):
        on_system_pool_restricted(part)
    assert values["podDisruptionBudget"]["enabled"] is True
    # the operator holds no AWS permissions of its own: only per-namespace IRSA roles do
    assert "serviceAccount" not in values


def test_vertical_pod_autoscaler_components(plan: Plan) -> None:
    """A Release, so the chart's hooks make the admission controller's TLS Secret and patch
    its webhook; the hook Jobs are restricted and placed like the components."""
    release = only(component_plan(plan, "exposcholar:cluster:VerticalPodAutoscaler"), RELEASE)
    inputs = release.inputs
    assert (inputs["chart"], inputs["version"]) == (vpa.CHART.chart, vpa.CHART.version)
    assert inputs["namespace"] == "kube-system"
    assert inputs["atomic"] is True and inputs["cleanupOnFail"] is True
    assert inputs.get("skipAwait") in (None, False), "dependents wait for the components"
    values = inputs["values"]
    assert values["admissionController"]["generateCertificate"] is True
    for part in (values["recommender"], values["updater"], values["admissionController"],
                 values["admissionController"]["certGen"]):  # fmt: skip
        on_system_pool_restricted(part)


def test_charts_wait_for_the_nodes(plan: Plan) -> None:
    node_groups = {r.urn for r in plan.of_type("aws:eks/nodeGroup:NodeGroup")}
    assert len(node_groups) == 2, "the system and app pools: an empty set is a subset of anything"
    charts = plan.of_type(CHART) + plan.of_type(RELEASE)
    assert len(charts) == 3
    for resource in charts:
        assert node_groups <= set(resource.dependencies), resource.name


def test_vpa_mode_follows_the_hpa() -> None:
    assert mode_for(scaled_by_hpa_on_resources=True) == "Off"
    assert mode_for(scaled_by_hpa_on_resources=False) == "Auto"


def test_every_vpa_matches_the_rule(plan: Plan) -> None:
    scaled = {
        (h.inputs["metadata"]["namespace"], h.inputs["spec"]["scaleTargetRef"]["name"])
        for h in plan.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    }
    vpas = plan.of_type("kubernetes:autoscaling.k8s.io/v1:VerticalPodAutoscaler")
    assert len(vpas) >= 2
    for resource in vpas:
        target = resource.inputs["spec"]["targetRef"]["name"]
        key = (resource.inputs["metadata"]["namespace"], target)
        expected = mode_for(scaled_by_hpa_on_resources=key in scaled)
        assert resource.inputs["spec"]["updatePolicy"]["updateMode"] == expected, key


@pytest.mark.parametrize("level", ["restricted", "privileged"])
def test_pss_labels(level: Level) -> None:
    labels = pss_labels(level, "1.33")
    assert labels == {
        f"pod-security.kubernetes.io/{mode}{suffix}": value
        for mode in ("enforce", "audit", "warn")
        for suffix, value in (("", level), ("-version", "v1.33"))
    }


def test_every_namespace_has_pod_security_labels(
    plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    version = stack_settings[plan.stack].cluster.version
    namespaces = plan.of_type("kubernetes:core/v1:Namespace")
    assert {n.inputs["metadata"]["name"] for n in namespaces} >= {"exposcholar", "external-secrets"}
    for namespace in namespaces:
        name = namespace.inputs["metadata"]["name"]
        level: Level = "privileged" if name in PRIVILEGED_NAMESPACES else "restricted"
        assert pss_labels(level, version).items() <= namespace.inputs["metadata"]["labels"].items()
