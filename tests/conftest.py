"""Shared fixtures: the real stack configurations and the program's captured plan per stack."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from components.settings import STACKS
from tools.plan import Plan
from tools.preview import REPO_ROOT, run_program
from tools.project import StackConfig, load_stack_config


@pytest.fixture(scope="session")
def stack_configs() -> dict[str, StackConfig]:
    return {stack: load_stack_config(REPO_ROOT, stack) for stack in STACKS}


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
