"""The rules of the ``exposcholar-security`` policy pack, importable without starting it.

* ``ALL_POLICIES`` — every policy, in id order (what ``policies/__main__.py`` serves);
* ``SPECS`` — what is declared about each (severity, remediation, settings, domain);
* ``load_config(stack)`` — ``policies/config/<stack>.json``, the same file CI passes to
  ``pulumi preview --policy-pack-config``;
* ``policy_properties`` / ``effective_enforcement`` — a policy's configuration properties and
  enforcement level out of such a file, resolved the way the Pulumi engine resolves them (the
  ``all`` key's level first, then the policy's own entry).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pulumi_policy import EnforcementLevel, Policy

from . import (
    aws_compute,
    aws_data,
    aws_iam,
    aws_network,
    k8s_containers,
    k8s_exposure,
    k8s_network_policy,
    k8s_objects,
    k8s_pod_security,
    k8s_rbac,
    stack_iam,
    stack_k8s,
    stack_network,
    stack_s3,
)
from .registry import REGISTRY, SPECS, enforcement_for

PACK_NAME = "exposcholar-security"
CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
DOMAIN_MODULES = (
    aws_data,
    aws_network,
    aws_compute,
    aws_iam,
    k8s_pod_security,
    k8s_containers,
    k8s_exposure,
    k8s_objects,
    k8s_rbac,
    k8s_network_policy,
    stack_s3,
    stack_network,
    stack_iam,
    stack_k8s,
)
"""Importing them registers their policies (``ALL_POLICIES`` orders them by id, so the order
modules are imported in does not matter)."""

ALL_POLICIES: list[Policy] = [REGISTRY[name] for name in sorted(REGISTRY)]


def load_config(stack_name: str) -> dict[str, Any]:
    """The policy-pack configuration of a stack (``policies/config/<stack>.json``)."""
    path = CONFIG_DIR / f"{stack_name}.json"
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of policy ids")
    return data


def policy_properties(config: dict[str, Any], policy_id: str) -> dict[str, Any]:
    """The properties the engine sends a policy: its entry minus ``enforcementLevel`` (a string
    entry is only a level). The ``all`` key carries no properties to the policies."""
    entry = config.get(policy_id)
    if not isinstance(entry, dict):
        return {}
    return {k: v for k, v in entry.items() if k != "enforcementLevel"}


def effective_enforcement(policy: Policy, config: dict[str, Any]) -> EnforcementLevel:
    """The level the engine runs a policy at under ``config``: the policy's own (derived from
    its severity), overridden by ``all``, overridden by the policy's entry."""
    level = policy.enforcement_level or enforcement_for(SPECS[policy.name].severity)
    for key in ("all", policy.name):
        entry = config.get(key)
        value = entry.get("enforcementLevel") if isinstance(entry, dict) else entry
        if isinstance(value, str):
            level = EnforcementLevel(value)
    return level


__all__ = [
    "ALL_POLICIES",
    "CONFIG_DIR",
    "DOMAIN_MODULES",
    "PACK_NAME",
    "SPECS",
    "effective_enforcement",
    "load_config",
    "policy_properties",
]
