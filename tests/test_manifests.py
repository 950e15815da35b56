"""Rendered Kubernetes manifests, checked by the real tools: the OpenAPI schemas of the
cluster's Kubernetes version (kubernetes-validate, strict) and Checkov's Kubernetes checks."""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from components.settings import StackSettings
from tests.conftest import assert_valid_manifests
from tools import render
from tools.plan import Plan
from tools.preview import REPO_ROOT

CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}


@pytest.fixture
def manifests(plan: Plan, tmp_path: Path) -> list[Path]:
    written = render.write(plan, tmp_path / plan.stack)
    assert written, "the program registers Kubernetes objects"
    return written


def test_api_version_and_kind() -> None:
    assert render.api_version_and_kind("kubernetes:core/v1:Namespace") == ("v1", "Namespace")
    assert render.api_version_and_kind("kubernetes:apps/v1:Deployment") == ("apps/v1", "Deployment")
    assert render.api_version_and_kind("kubernetes:storage.k8s.io/v1:StorageClass") == (
        "storage.k8s.io/v1",
        "StorageClass",
    )


def test_one_file_per_object_with_its_inputs(plan: Plan, manifests: list[Path]) -> None:
    objects = [r for r in plan.resources if render.is_manifest(r)]
    assert len(manifests) == len(objects)
    by_name = {
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
        for d in (yaml.safe_load(p.read_text()) for p in manifests)
    }
    for resource in objects:
        _, kind = render.api_version_and_kind(resource.type)
        metadata = resource.inputs["metadata"]
        document = by_name[(kind, metadata.get("namespace"), metadata["name"])]
        assert {k: v for k, v in document.items() if k not in ("apiVersion", "kind")} == {
            k: v for k, v in resource.inputs.items() if k not in ("apiVersion", "kind")
        }


def test_manifests_validate_against_the_cluster_version_schemas(
    plan: Plan, manifests: list[Path], stack_settings: dict[str, StackSettings]
) -> None:
    # CustomResources have no schema here: tests/test_custom_resources.py checks them
    built_in = [p for p in manifests if not render.is_custom(yaml.safe_load(p.read_text()))]
    assert len(built_in) > len(manifests) / 2
    assert_valid_manifests(built_in, stack_settings[plan.stack].cluster.version)


def test_custom_resource_groups_are_told_apart() -> None:
    assert not render.is_custom({"apiVersion": "v1"})
    assert not render.is_custom({"apiVersion": "networking.k8s.io/v1"})
    assert render.is_custom({"apiVersion": "autoscaling.k8s.io/v1"})  # the VPA, not built in
    assert render.is_custom({"apiVersion": "external-secrets.io/v1"})


def test_checkov_finds_nothing_in_the_manifests(manifests: list[Path]) -> None:
    assert CHECKOV.exists(), f"{CHECKOV} missing: run scripts/install-checkov.sh (make test does)"
    folder = manifests[0].parent
    result = subprocess.run(
        [
            str(CHECKOV), "--directory", str(folder), "--framework", "kubernetes",
            "--skip-download", "--output", "json",
            "--config-file", str(REPO_ROOT / ".checkov-kubernetes.yaml"),
        ],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )  # fmt: skip
    report = json.loads(result.stdout)
    if "results" not in report:  # no object Checkov has checks for: a bare summary
        assert report["failed"] == 0 and report["parsing_errors"] == 0, report
        kinds = {yaml.safe_load(p.read_text())["kind"] for p in manifests}
        assert not kinds & WORKLOAD_KINDS, "workloads must be checked"
        return
    failed = {
        (c["check_id"], c["file_path"].lstrip("/")) for c in report["results"]["failed_checks"]
    }
    skips = yaml.safe_load((REPO_ROOT / "checkov-skips.yaml").read_text())
    assert all(skip.get("reason", "").strip() for skip in skips), "every skip needs its reason"
    accepted = {f for f in failed if any(_skipped(f, skip) for skip in skips)}
    assert failed == accepted, "\n".join(f"{c} {f}" for c, f in sorted(failed - accepted))
    stale = [s for s in skips if not any(_skipped(f, s) for f in failed)]
    assert not stale, f"entries of checkov-skips.yaml that match nothing: {stale}"
    assert report["summary"]["passed"] > 0
    assert report["summary"]["parsing_errors"] == 0


def _skipped(finding: tuple[str, str], skip: dict[str, str]) -> bool:
    check, file = finding
    return check == skip["check"] and fnmatch.fnmatch(file, skip["object"])
