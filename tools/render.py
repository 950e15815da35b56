"""Rendered Kubernetes manifests: every Kubernetes object of the plan as the YAML the provider
would apply, one file per object, so real tools (kubernetes-validate, Checkov) can check them.

Secret values stay masked (``[secret]``); Helm charts (components) and releases (one resource
each) are rendered by the chart at deploy time, so they are not written here.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tools.mocks import CapturedResource
from tools.plan import Plan

PREFIX = "kubernetes:"
BUILT_IN_GROUPS = frozenset(
    {
        "", "admissionregistration.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io",
        "apps", "authentication.k8s.io", "authorization.k8s.io", "autoscaling", "batch",
        "certificates.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io",
        "flowcontrol.apiserver.k8s.io", "internal.apiserver.k8s.io", "networking.k8s.io",
        "node.k8s.io", "policy", "rbac.authorization.k8s.io", "resource.k8s.io",
        "scheduling.k8s.io", "storage.k8s.io", "storagemigration.k8s.io",
    }
)  # fmt: skip
"""API groups the Kubernetes OpenAPI schema covers; any other group is a CustomResource,
validated against its CRD's schema instead."""


def api_version_and_kind(typ: str) -> tuple[str, str]:
    """``kubernetes:apps/v1:Deployment`` -> (``apps/v1``, ``Deployment``); core is ``v1``."""
    _, group_version, kind = typ.split(":")
    group, version = group_version.rsplit("/", 1)
    return (version if group == "core" else f"{group}/{version}"), kind


def is_custom(document: dict[str, Any]) -> bool:
    """Whether ``document`` is a CustomResource (its API group is not built in)."""
    group = str(document["apiVersion"]).rpartition("/")[0]
    return group not in BUILT_IN_GROUPS


HELM_PREFIX = "kubernetes:helm.sh/"
"""Charts and Releases: the chart renders their objects at deploy time."""


def is_manifest(resource: CapturedResource) -> bool:
    return (
        resource.custom
        and resource.type.startswith(PREFIX)
        and not resource.type.startswith(HELM_PREFIX)
    )


def manifest(resource: CapturedResource) -> dict[str, Any]:
    """The object as applied: apiVersion, kind, then the inputs as given."""
    api_version, kind = api_version_and_kind(resource.type)
    body = {k: v for k, v in resource.inputs.items() if k not in ("apiVersion", "kind")}
    return {"apiVersion": api_version, "kind": kind, **body}


def file_name(document: dict[str, Any]) -> str:
    metadata = document.get("metadata") or {}
    namespace = metadata.get("namespace") or "_cluster"
    return f"{namespace}__{document['kind']}__{metadata.get('name', 'unnamed')}.yaml".lower()


def render(plan: Plan) -> dict[str, dict[str, Any]]:
    """File name to document, for every Kubernetes object in the plan."""
    documents: dict[str, dict[str, Any]] = {}
    for resource in plan.resources:
        if not is_manifest(resource):
            continue
        document = manifest(resource)
        name = file_name(document)
        if name in documents:
            raise ValueError(f"two Kubernetes objects render to {name}: names must be unique")
        documents[name] = document
    return documents


def write(plan: Plan, folder: Path) -> list[Path]:
    """Replace ``folder`` with the plan's manifests and return the files written."""
    documents = render(plan)
    return replace_folder(
        {name: yaml.safe_dump(document, sort_keys=False) for name, document in documents.items()},
        folder,
    )


def replace_folder(files: Mapping[str, str], folder: Path) -> list[Path]:
    """Replace ``folder`` with ``files`` (relative path to text) and return the paths written."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    written = []
    for name, content in sorted(files.items()):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)  # names may hold folders (rules/x.yml)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written
