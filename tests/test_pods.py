"""Shared pod hardening (components/lib/kube/pods.py): the Helm values the charts get are the
typed security contexts and placement, derived, never written a second time."""

from __future__ import annotations

import pulumi_kubernetes as k8s

from components.lib.kube import pods


def test_chart_security_is_the_typed_restricted_profile() -> None:
    assert pods.chart_security(uid=65534) == {
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "podSecurityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "fsGroup": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def test_chart_placement_is_the_system_pool() -> None:
    node_selector, tolerations = pods.system_pool()
    assert pods.chart_placement() == {
        "nodeSelector": node_selector,
        "tolerations": [
            {"key": t.key, "operator": t.operator, "value": t.value, "effect": t.effect}
            for t in tolerations
        ],
    }
    assert node_selector == {pods.POOL_LABEL: "system"}
    assert [t.effect for t in tolerations] == ["NoSchedule"]


def test_as_values_uses_the_api_names_and_leaves_unset_fields_out() -> None:
    core = k8s.core.v1
    typed = core.PodSpecArgs(
        security_context=core.PodSecurityContextArgs(run_as_non_root=True, fs_group=None),
        containers=[core.ContainerArgs(name="c", env=[core.EnvVarArgs(name="A", value="1")])],
        node_selector={"exposcholar.io/pool": "app"},
    )
    assert pods.as_values(typed) == {
        "securityContext": {"runAsNonRoot": True},
        "containers": [{"name": "c", "env": [{"name": "A", "value": "1"}]}],
        "nodeSelector": {"exposcholar.io/pool": "app"},
    }
