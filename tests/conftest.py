"""Shared fixtures: the real stack configurations and the program's captured plan per stack."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from components.settings import StackSettings, parse_settings
from tests import STACKS
from tools.mocks import CapturedResource
from tools.plan import Plan
from tools.preview import REPO_ROOT
from tools.program import run_program
from tools.project import StackConfig, load_stack_config


@pytest.fixture(scope="session")
def stack_configs() -> dict[str, StackConfig]:
    return {stack: load_stack_config(REPO_ROOT, stack) for stack in STACKS}


@pytest.fixture(scope="session")
def stack_settings(stack_configs: dict[str, StackConfig]) -> dict[str, StackSettings]:
    return {stack: parse_settings(stack, c.values) for stack, c in stack_configs.items()}


@pytest.fixture(scope="session")
def plans(stack_configs: dict[str, StackConfig]) -> dict[str, Plan]:
    """The whole program, run once per stack under the mock runtime."""
    return {stack: run_program(REPO_ROOT, config) for stack, config in stack_configs.items()}


@pytest.fixture(params=STACKS)
def plan(request: pytest.FixtureRequest, plans: dict[str, Plan]) -> Plan:
    return plans[request.param]


@pytest.fixture
def project_copy(tmp_path: Path) -> Callable[[], Path]:
    """A scratch project folder (program linked, config files copied) whose files a test may
    break without touching the repository's own."""

    def make() -> Path:
        target = tmp_path / "project"
        target.mkdir()
        for name in ("Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml"):
            shutil.copy(REPO_ROOT / name, target / name)
        (target / "__main__.py").symlink_to(REPO_ROOT / "__main__.py")
        (target / "components").symlink_to(REPO_ROOT / "components")
        return target

    return make


def component_plan(plan: Plan, typ: str) -> Plan:
    """What one component created, by its type token."""
    return plan.subtree(plan.component(typ).urn)


def only(plan: Plan, typ: str) -> CapturedResource:
    """The single resource of ``typ`` in ``plan``."""
    found = plan.of_type(typ)
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def key_arn(plan: Plan, domain: str) -> str:
    """ARN of the stack's KMS key for ``domain`` (data, backups, storage, backups-replica)."""
    keys = component_plan(plan, "exposcholar:security:Keys")
    (key,) = [k for k in keys.of_type("aws:kms/key:Key") if k.name == f"keys-{domain}"]
    return str(key.outputs["arn"])


def node_security_group(plan: Plan) -> str:
    """The security group of the cluster's nodes (the EKS cluster security group)."""
    cluster = only(plan, "aws:eks/cluster:Cluster")
    return str(cluster.outputs["vpcConfig"]["clusterSecurityGroupId"])


KUBERNETES_VALIDATE = Path(sys.executable).parent / "kubernetes-validate"


def assert_valid_manifests(files: Sequence[Path], cluster_version: str) -> None:
    """Every file passes kubernetes-validate, strict, against the cluster version's schemas
    (a missing tool fails the test: it is installed by requirements-dev.txt)."""
    assert KUBERNETES_VALIDATE.exists(), f"{KUBERNETES_VALIDATE} missing: make test installs it"
    assert files, "nothing to validate"
    result = subprocess.run(
        [str(KUBERNETES_VALIDATE), "--strict", "-k", f"{cluster_version}.0", *map(str, files)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    passed = [line for line in result.stdout.splitlines() if " passed for resource " in line]
    assert len(passed) == len(files), result.stdout
