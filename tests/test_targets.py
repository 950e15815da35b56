"""The bootstrap step's ``--target`` list: the ECR repositories and everything they need, so a
targeted ``pulumi up`` can create them before any image exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.plan import Plan
from tools.targets import main, target_urns

REPOSITORY = "aws:ecr/repository:Repository"


def test_repositories_come_with_their_key_and_components(plan: Plan, tmp_path: Path) -> None:
    plan_file = tmp_path / plan.stack / "plan.json"
    plan.write(plan_file)
    targets = target_urns(plan_file, [REPOSITORY])
    names = {plan.by_urn(urn).name for urn in targets}
    assert {"images-server", "images-web", "images-backup"} <= names
    assert {"images", "keys", "keys-images"} <= names
    assert not any(plan.by_urn(urn).type.startswith("pulumi:") for urn in targets)
    # closed: nothing a target needs is left out (providers are always part of an update)
    for urn in targets:
        resource = plan.by_urn(urn)
        needs = {resource.parent, *resource.dependencies}
        for urns in resource.property_dependencies.values():
            needs.update(urns)
        for need in needs - {None, plan.stack_urn}:
            assert need in targets or plan.by_urn(str(need)).type.startswith("pulumi:providers:")
    # and nothing of the workloads that would run the images
    assert not any("Workloads" in urn or "kubernetes:" in urn for urn in targets)


def test_cli_prints_flags_and_names_a_missing_plan(
    plan: Plan, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan.write(tmp_path / plan.stack / "plan.json")
    assert main([plan.stack, "--type", REPOSITORY, "--build", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.startswith(f"--target=urn:pulumi:{plan.stack}::") for line in lines)
    assert main(["other", "--type", REPOSITORY, "--build", str(tmp_path)]) == 2
    assert "run `make preview STACK=<stack>` first" in capsys.readouterr().err
    assert main([plan.stack, "--type", "aws:none:None", "--build", str(tmp_path)]) == 2
    assert "no resource of type aws:none:None" in capsys.readouterr().err
