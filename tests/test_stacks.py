"""Any stack is one file: a third stack copied from a stack file previews with the rules of its
declared role, and the workflows' stack list (``tools.stacks``) finds it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.settings import StackRole
from tests import STACKS
from tools.preview import EXIT_OK, REPO_ROOT
from tools.program import EXIT_CONFIG
from tools.stacks import ROLE_POLICY_CONFIG, StackFileError, load_stack, load_stacks, main

P = "exposcholar:"
DR_REGION = "eu-central-1"
DR_CHANGES: dict[str, object] = {
    # what makes it another stack: its region, zones and address range
    "region": DR_REGION,
    "availabilityZones": [f"{DR_REGION}a", f"{DR_REGION}b", f"{DR_REGION}c"],
    "vpcCidr": "10.40.0.0/16",
    # what is bound to a region: the off-site replica (another region than the stack's), the
    # certificate and web ACL of the load balancer, the images in the stack's ECR
    "backupReplicaRegion": "eu-west-1",
    "appHost": "dr.exposcholar.org",
    "appCertificateArn": (
        f"arn:aws:acm:{DR_REGION}:210987654321:certificate/1e2d3c4b-5a69-4877-9685-a4b3c2d1e0f9"
    ),
    "appWafAclArn": (
        f"arn:aws:wafv2:{DR_REGION}:210987654321:regional/webacl/exposcholar-dr/"
        "6c7d8e9f-0a1b-4c2d-8e3f-4a5b6c7d8e9f"
    ),
    # the account already has GitHub's OIDC provider (the prod stack made it)
    "githubOidcProviderArn": (
        "arn:aws:iam::210987654321:oidc-provider/token.actions.githubusercontent.com"
    ),
}


def _project(tmp_path: Path) -> Path:
    """A project folder with the program, the policy pack and the real stack files."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml"):
        (project / name).write_text((REPO_ROOT / name).read_text())
    for name in ("__main__.py", "components", "policies", ".venv"):
        (project / name).symlink_to(REPO_ROOT / name)
    return project


def _copy_stack(project: Path, source: str, target: str, changes: dict[str, object]) -> Path:
    document = yaml.safe_load((project / f"Pulumi.{source}.yaml").read_text())
    for key, value in changes.items():
        document["config"][P + key] = value
    path = project / f"Pulumi.{target}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _preview(project: Path, stack: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """The offline preview of ``stack`` in ``project``, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "tools.preview", stack, "--project-dir", project, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _image_in(region: str, reference: str) -> str:
    return reference.replace(".eu-west-1.", f".{region}.")


def test_a_third_stack_copied_from_prod_previews_with_production_rules(tmp_path: Path) -> None:
    project = _project(tmp_path)
    prod = yaml.safe_load((project / "Pulumi.prod.yaml").read_text())["config"]
    images = {key: _image_in(DR_REGION, prod[P + key]) for key in ("serverImage", "webImage")}
    _copy_stack(project, "prod", "dr", {**DR_CHANGES, **images})

    stack = load_stack("dr", project)
    assert (stack.role, stack.region, stack.policy_config) == (
        "production",
        DR_REGION,
        "policies/config/prod.json",
    )
    assert [s.name for s in load_stacks(project, "production")] == ["dr", "prod"]

    out = tmp_path / "out"
    result = _preview(project, "dr", "--out", out)
    assert result.returncode == EXIT_OK, result.stderr
    plan = json.loads((out / "dr" / "plan.json").read_text())
    assert all(r["urn"].startswith("urn:pulumi:dr::exposcholar::") for r in plan["resources"])
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in plan["resources"]:
        by_type.setdefault(str(resource["type"]), []).append(resource)
    (vpc,) = by_type["aws:ec2/vpc:Vpc"]
    assert vpc["inputs"]["cidrBlock"] == "10.40.0.0/16"
    zones = {s["inputs"]["availabilityZone"] for s in by_type["aws:ec2/subnet:Subnet"]}
    assert zones == {f"{DR_REGION}a", f"{DR_REGION}b", f"{DR_REGION}c"}
    (database,) = by_type["aws:rds/instance:Instance"]
    assert database["protect"] is True and database["inputs"]["multiAz"] is True
    assert "aws:iam/openIdConnectProvider:OpenIdConnectProvider" in by_type  # the cluster's
    assert all(r["name"] != "deploy-github-oidc" for r in plan["resources"])  # reused

    report = json.loads((out / "dr" / "policy-report.json").read_text())
    assert report["stack"] == "dr"
    assert Path(report["configFile"]) == project / "policies/config/prod.json"
    assert report["config"]["rds-multi-az"]["properties"] == {"production": True}
    assert report["diagnostics"] == [], "clean under the production rules"


def test_production_role_brings_production_floors_to_any_name(tmp_path: Path) -> None:
    """A copy of staging declared production is refused for staging's sizes, naming each."""
    project = _project(tmp_path)
    _copy_stack(project, "staging", "trial", {"stackRole": "production"})
    result = _preview(project, "trial", "--quiet")
    assert result.returncode == EXIT_CONFIG
    for key in ("databaseMultiAz", "cacheNodeCount", "backupReplicaRegion"):
        assert f"  - {P}{key}: got " in result.stderr
    assert load_stack("trial", project).policy_config == "policies/config/prod.json"


def test_a_stack_of_its_own_file_gets_its_own_policy_config(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "policies" / "config").mkdir(parents=True)
    (project / "Pulumi.qa.yaml").write_text(
        yaml.safe_dump(
            {
                "config": {
                    P + "stackRole": "staging",
                    P + "region": "eu-west-1",
                    P + "accountId": "123456789012",
                }
            }
        )
    )
    assert load_stack("qa", project).policy_config == "policies/config/staging.json"
    (project / "policies" / "config" / "qa.json").write_text("{}")
    assert load_stack("qa", project).policy_config == "policies/config/qa.json"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({P + "region": "eu-west-1"}, "exposcholar:stackRole is None"),
        (
            {P + "stackRole": "prod", P + "region": "eu-west-1", P + "accountId": "1" * 12},
            "'prod', not one of",
        ),
        ({P + "stackRole": "staging"}, "exposcholar:region is None"),
        ({P + "stackRole": "staging", P + "region": "eu-west-1"}, "exposcholar:accountId is None"),
    ],
)
def test_a_stack_file_without_a_usable_role_is_named(
    tmp_path: Path, config: dict[str, str], message: str
) -> None:
    (tmp_path / "Pulumi.qa.yaml").write_text(yaml.safe_dump({"config": config}))
    with pytest.raises(StackFileError, match="qa") as caught:
        load_stack("qa", tmp_path)
    assert message in str(caught.value)


def test_the_workflow_listing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--role", "production"]) == 0
    production = json.loads(capsys.readouterr().out)
    assert production == [
        {
            "stack": "prod",
            "role": "production",
            "region": "eu-west-1",
            "account": "210987654321",
            "policyConfig": "policies/config/prod.json",
            "variableSuffix": "PROD",
        }
    ]
    assert main(["policy-config", "staging"]) == 0
    assert capsys.readouterr().out == "policies/config/staging.json\n"
    assert main(["policy-config", "nowhere"]) == 2
    assert "Pulumi.nowhere.yaml: no such stack file" in capsys.readouterr().err


def test_roles_are_the_settings_roles_and_each_has_a_policy_config() -> None:
    assert set(ROLE_POLICY_CONFIG) == {role.value for role in StackRole}
    for file in ROLE_POLICY_CONFIG.values():
        assert (REPO_ROOT / "policies" / "config" / file).is_file()


def test_a_stack_file_written_by_the_cli_previews_cleanly(tmp_path: Path) -> None:
    """``pulumi config set key 20`` stores "20": every number and boolean of the staging file
    written as such a string still previews, with the same values reaching the program."""
    project = _project(tmp_path)
    document = yaml.safe_load((project / "Pulumi.staging.yaml").read_text())
    as_strings: dict[str, object] = {
        str(key).removeprefix(P): (str(value).lower() if isinstance(value, bool) else str(value))
        for key, value in document["config"].items()
        if key.startswith(P) and isinstance(value, int | float)
    }
    assert {"databaseMultiAz", "interfaceEndpoints", "cacheNodeCount"} <= set(as_strings)
    path = _copy_stack(project, "staging", "cli", as_strings)
    written = yaml.safe_load(path.read_text())["config"]
    assert written[P + "cacheNodeCount"] == "1" and written[P + "databaseMultiAz"] == "false"
    out = tmp_path / "out"
    result = _preview(project, "cli", "--out", out)
    assert result.returncode == EXIT_OK, result.stderr
    plan = json.loads((out / "cli" / "plan.json").read_text())
    (database,) = [r for r in plan["resources"] if r["type"] == "aws:rds/instance:Instance"]
    assert database["inputs"]["multiAz"] is False
    storage = int(str(as_strings["databaseAllocatedStorageGb"]))
    assert database["inputs"]["allocatedStorage"] == storage


def test_each_stacks_policy_config_allows_its_own_accounts_registry() -> None:
    """The image policy's registry allowlist names an account: replacing a stack's example
    accountId without its policy configuration would refuse every image of the stack."""
    found = load_stacks()
    assert {"staging", "prod"} <= {stack.name for stack in found}, found
    for stack in found:
        config = json.loads((REPO_ROOT / stack.policy_config).read_text())
        registries = config["k8s-image-pinned"]["registries"]
        assert f"{stack.account}.dkr.ecr.*.amazonaws.com" in registries, stack.name


def test_the_suite_runs_on_every_stack_file() -> None:
    """``tests.STACKS`` parametrizes the per-stack tests (conftest's ``plan`` and others): were
    it empty (the stack files moved, the glob wrong), pytest would skip them all, not fail."""
    assert {"staging", "prod"} <= set(STACKS), STACKS
