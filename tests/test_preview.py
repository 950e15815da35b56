"""The offline preview end to end, as an operator runs it: `python -m tools.preview <stack>`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tools.mocks import MASK, SECRET_SIG, SECRET_VALUE, mask
from tools.plan import Plan
from tools.preview import EXIT_OK, REPO_ROOT
from tools.program import EXIT_CONFIG


def _preview(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.preview", *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(("stack", "nat_count", "subnets"), [("staging", 1, 6), ("prod", 3, 9)])
def test_preview_of_each_stack(tmp_path: Path, stack: str, nat_count: int, subnets: int) -> None:
    result = _preview(stack, "--out", tmp_path)
    assert result.returncode == EXIT_OK, result.stderr
    out = result.stdout
    plan_file = tmp_path / stack / "plan.json"
    data = json.loads(plan_file.read_text())
    # one count (tools.plan.registered_count): what the program registered and the stack itself
    assert data["resourceCount"] == len(data["resources"]) + 1
    assert data["stackUrn"] not in {resource["urn"] for resource in data["resources"]}
    assert out.startswith(f"exposcholar-{stack}  ({data['resourceCount']} resources)\n")
    assert f"\n\nResources:\n    + {data['resourceCount']} to create\n" in out
    assert "\n\nOutputs:\n" in out
    assert re.search(r"^    kubeconfig +: \[secret\]$", out, re.MULTILINE)
    assert "(0 resources)" not in out, "a chart's objects come at deploy time: no empty chart"
    chart = "kubernetes:helm.sh/v4:Chart  lb-controller-chart  chart aws-load-balancer-controller"
    assert chart in out
    for component in (
        "exposcholar:network:Network  network",
        "exposcholar:data:Database  database",
        "exposcholar:data:Cache  cache",
        "exposcholar:data:Storage  storage",
        "exposcholar:cluster:Cluster  cluster",
        "exposcholar:cluster:NodeGroup  nodes-system",
        "exposcholar:cluster:NodeGroup  nodes-app",
        "exposcholar:cluster:ClusterAddons  addons",
        "exposcholar:images:Images  images",
    ):
        assert component in out, component
    assert "aws:eks/addon:Addon ×3" in out  # three before and three after the nodes
    assert "docker:index/image:Image ×2" in out  # backup and edgemetrics, built from source
    assert f"aws:ec2/natGateway:NatGateway ×{nat_count}" in out
    assert f"aws:ec2/subnet:Subnet ×{subnets}" in out
    secrets = (
        "cacheAuthToken, djangoSecretKey, alertWebhookUrl, alertSmtpPassword, "
        "alertDeadMansSwitchUrl, grafanaAdminPassword"
    )
    assert f"Offline placeholders stand in for the secrets: {secrets}" in out

    assert data["stack"] == stack and data["project"] == "exposcholar"
    assert data["countsByType"]["aws:ec2/natGateway:NatGateway"] == nat_count
    assert data["countsByType"]["aws:ec2/subnet:Subnet"] == subnets
    assert data["outputs"]["vpcId"].startswith("vpc-")
    assert data["outputs"]["kubeconfig"] == "[secret]"
    for resource in data["resources"]:
        assert set(resource) >= {"urn", "type", "name", "parent", "inputs", "dependencies"}
        assert resource["urn"].startswith(f"urn:pulumi:{stack}::exposcholar::")
    flow_log = next(r for r in data["resources"] if r["type"] == "aws:ec2/flowLog:FlowLog")
    assert any("vpc:Vpc::network-vpc" in d for d in flow_log["dependencies"])
    assert set(flow_log["propertyDependencies"]) >= {"vpcId", "logDestination", "iamRoleArn"}
    assert "offline-preview-placeholder" not in plan_file.read_text(), "secrets stay masked"
    monitoring = tmp_path / stack / "monitoring"
    assert {"prometheus.yml", "alertmanager.yml", "blackbox.yml"} <= {
        p.name for p in monitoring.iterdir()
    }
    assert "offline-preview-placeholder" in (monitoring / "alertmanager.yml").read_text()
    # the file reads back into the same plan
    assert Plan.read(plan_file).counts_by_type() == data["countsByType"]


def test_preview_defaults_to_staging(tmp_path: Path) -> None:
    result = _preview("--out", tmp_path, "--quiet")
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout == ""
    assert (tmp_path / "staging" / "plan.json").is_file()


def _break(project: Path, **changes: object) -> None:
    path = project / "Pulumi.staging.yaml"
    document = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        document["config"][f"exposcholar:{key}"] = value
    path.write_text(yaml.safe_dump(document))


def test_broken_stack_file_lists_every_problem_and_writes_nothing(
    tmp_path: Path, project_copy: Callable[[], Path]
) -> None:
    project = project_copy()
    _break(project, vpcCidr="8.8.0.0/16", natGateways="two", availabilityZones=["us-east-1a"])
    out = tmp_path / "out"
    earlier = out / "staging" / "plan.json"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("earlier plan\n")

    result = _preview("staging", "--out", out, "--project-dir", project)
    assert result.returncode == EXIT_CONFIG
    assert "Traceback" not in result.stderr
    assert "3 configuration problem(s)" in result.stderr
    for key in ("vpcCidr", "natGateways", "availabilityZones"):
        assert f"  - exposcholar:{key}: got " in result.stderr
    assert earlier.read_text() == "earlier plan\n", "a failed preview overwrites nothing"
    assert result.stdout == ""


def test_wrong_type_unknown_key_and_invalid_value_are_named_in_one_run(
    tmp_path: Path, project_copy: Callable[[], Path]
) -> None:
    project = project_copy()
    _break(project, flowLogRetentionDays="ninety", vpcCidrs="10.0.0.0/16", vpcCidr="10.20.0.0/33")
    result = _preview("staging", "--out", tmp_path, "--project-dir", project)
    assert result.returncode == EXIT_CONFIG
    assert "Traceback" not in result.stderr
    assert "3 configuration problem(s)" in result.stderr
    wrong_type = "exposcholar:flowLogRetentionDays: got 'ninety'; expected a value of the declared"
    assert f"{wrong_type} type integer" in result.stderr
    assert "exposcholar:vpcCidrs: got '10.0.0.0/16'; expected no such key" in result.stderr
    assert "exposcholar:vpcCidr: got '10.20.0.0/33'; expected " in result.stderr
    assert not (tmp_path / "staging").exists()


def test_unknown_stack_and_missing_stack_file(
    tmp_path: Path, project_copy: Callable[[], Path]
) -> None:
    result = _preview("qa", "--out", tmp_path)
    assert result.returncode == EXIT_CONFIG
    assert "Pulumi.qa.yaml: got nothing" in result.stderr
    assert "stacks with a file: prod, staging" in result.stderr
    result = _preview("QA", "--out", tmp_path)
    assert result.returncode == EXIT_CONFIG
    assert "stack: got 'QA'; expected a stack name of" in result.stderr

    project = project_copy()
    (project / "Pulumi.prod.yaml").unlink()
    result = _preview("prod", "--out", tmp_path, "--project-dir", project)
    assert result.returncode == EXIT_CONFIG
    assert "Pulumi.prod.yaml: got nothing" in result.stderr
    assert "Traceback" not in result.stderr


def test_mask_hides_secrets_at_any_depth() -> None:
    secret = {SECRET_SIG: SECRET_VALUE, "value": "hunter2"}
    masked = mask({"a": secret, "b": [1.0, {"c": secret}], "d": 2.5})
    assert masked == {"a": MASK, "b": [1, {"c": MASK}], "d": 2.5}
    assert "hunter2" not in json.dumps(masked)
