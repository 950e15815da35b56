"""Checkov's AWS rules on the program: the Terraform-plan export of the captured AWS resources
(``tools.tfplan``) checked by Checkov's ``terraform_plan`` framework from ``.venv-checkov``
(``tools.checkov``), findings accepted only in ``checkov-aws-skips.yaml``.

* Every AWS type either stack uses has a Terraform type; an unmapped one fails the export.
* The export has Terraform's shape: snake_case names, the bridge's plurals back in the
  singular, blocks as one-element lists, maps as maps, secrets masked, references to the
  resources a property was computed from.
* Each stack: no finding beyond the accepted ones, no accepted one that is gone (counts
  printed: passed, failed, accepted).
* Seeded weaknesses in a copy of the staging plan are reported by the right check on the right
  resource: an unencrypted RDS instance (CKV_AWS_16), a bucket without its public access block
  (CKV2_AWS_6, a connection check) and IMDSv1 on the nodes (CKV_AWS_79). Without the references
  the connection check cannot see any bucket's block: the references are what makes it work.
* ``python -m tools.preview --checkov``'s stage prints the counts of both frameworks and fails
  on an unaccepted finding.
"""

from __future__ import annotations

import copy
import io
import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools import checkov, render, tfplan
from tools.mocks import MASK
from tools.plan import Plan
from tools.preview import PreviewContext, stage_checkov
from tools.program import StageError
from tools.project import StackConfig

ROLES = {"staging": "staging", "prod": "production"}


@pytest.fixture(scope="module")
def documents(plans: dict[str, Plan]) -> dict[str, dict[str, Any]]:
    return {stack: tfplan.export(plan) for stack, plan in plans.items()}


def _resource(document: dict[str, Any], address: str) -> dict[str, Any]:
    (found,) = [
        r for r in document["planned_values"]["root_module"]["resources"] if r["address"] == address
    ]
    resource: dict[str, Any] = found
    return resource


def _expressions(document: dict[str, Any], address: str) -> dict[str, Any]:
    (found,) = [
        r for r in document["configuration"]["root_module"]["resources"] if r["address"] == address
    ]
    expressions: dict[str, Any] = found["expressions"]
    return expressions


# ---- the export ----------------------------------------------------------------------------


def test_every_aws_type_the_program_uses_is_mapped(plans: dict[str, Plan]) -> None:
    for plan in plans.values():
        assert tfplan.unmapped_types(plan.resources) == []
        used = {r.type for r in plan.resources if tfplan.exported(r)}
        assert len(used) > 40
        document = tfplan.export(plan)
        exported = {r["type"] for r in document["planned_values"]["root_module"]["resources"]}
        assert exported == {tfplan.terraform_type(t) for t in used}


def test_an_unmapped_type_fails_the_export(plans: dict[str, Plan]) -> None:
    plan = plans["staging"]
    vpc = next(r for r in plan.resources if r.type == "aws:ec2/vpc:Vpc")
    stray = copy.deepcopy(vpc)
    stray.type = "aws:ec2/vpcIpam:VpcIpam"
    stray.urn = vpc.urn.replace("aws:ec2/vpc:Vpc", stray.type)
    broken = Plan(plan.project, plan.stack, plan.stack_urn, [*plan.resources, stray], {})
    with pytest.raises(tfplan.UnmappedTypeError, match=r"aws:ec2/vpcIpam:VpcIpam"):
        tfplan.export(broken)


def test_a_plural_block_with_no_terraform_name_fails_the_export(
    plans: dict[str, Plan], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repeated block the bridge names in the plural must have its Terraform name in
    ``RENAMES`` (or be plural in Terraform too): otherwise Checkov would look for ``rule`` and
    find ``rules``, silently. Both stacks' blocks are all named (the test above exports them)."""
    renames = {k: v for k, v in tfplan.RENAMES.items() if k != "rules"}
    monkeypatch.setattr(tfplan, "RENAMES", renames)
    with pytest.raises(tfplan.UnmappedBlockError) as raised:
        tfplan.export(plans["staging"])
    assert "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration.rules" in (
        raised.value.names
    )
    assert tfplan.snake("ingress") == "ingress"  # singular in both


def test_names_and_shapes_are_terraforms(documents: dict[str, dict[str, Any]]) -> None:
    document = documents["staging"]
    assert tfplan.snake("httpPutResponseHopLimit") == "http_put_response_hop_limit"
    assert tfplan.snake("cidrIpv4") == "cidr_ipv4"
    template = _resource(document, "aws_launch_template.nodes_app_template")["values"]
    (metadata,) = template["metadata_options"]  # a block: a one-element list
    assert metadata["http_tokens"] == "required"
    assert template["block_device_mappings"][0]["ebs"][0]["encrypted"] == "true"
    parameters = _resource(document, "aws_db_parameter_group.database_parameters")["values"]
    force_ssl = [p for p in parameters["parameter"] if p["name"] == "rds.force_ssl"]  # singular
    assert [p["value"] for p in force_ssl] == ["1"]
    assert "parameters" not in parameters
    vpc = _resource(document, "aws_vpc.network_vpc")["values"]
    assert isinstance(vpc["tags"], dict)  # a map stays a map
    assert vpc["enable_dns_support"] is True


def test_secrets_are_masked_and_marked_sensitive(
    documents: dict[str, dict[str, Any]], stack_configs: dict[str, StackConfig]
) -> None:
    redis = _resource(
        documents["staging"], "aws_elasticache_replication_group.cache_replication_group"
    )
    assert redis["values"]["auth_token"] == MASK
    assert redis["sensitive_values"]["auth_token"] is True
    for stack, document in documents.items():
        text = json.dumps(document)
        config = stack_configs[stack]
        secrets = [str(config.values[k]) for k in config.secret_keys if config.values.get(k)]
        assert secrets, "the stacks have secrets (offline placeholders)"
        assert not [s for s in secrets if len(s) > 3 and s in text]


def test_references_are_references(documents: dict[str, dict[str, Any]]) -> None:
    document = documents["staging"]
    block = "aws_s3_bucket_public_access_block.storage_media_public_access_block"
    assert _expressions(document, block)["bucket"]["references"][-1] == (
        "aws_s3_bucket.storage_media"
    )
    # the bucket's name is the bucket's own output: unknown in the plan, known after apply
    assert "bucket" not in _resource(document, block)["values"]
    log = "aws_cloudwatch_log_group.network_flow_logs"
    assert _expressions(document, log)["kms_key_id"]["references"] == [
        "aws_kms_key.keys_logs.arn",
        "aws_kms_key.keys_logs",
    ]
    # a document computed from other resources keeps its value (Checkov reads the policy)
    policy = "aws_iam_role_policy.app_server_role_policy"
    assert json.loads(_resource(document, policy)["values"]["policy"])["Statement"]
    assert "aws_s3_bucket.storage_media" in _expressions(document, policy)["policy"]["references"]
    targets = {ref for _, ref in tfplan.iter_references(document)}
    addresses = {r["address"] for r in document["planned_values"]["root_module"]["resources"]}
    assert {t.rsplit(".", 1)[0] if t.count(".") > 1 else t for t in targets} <= addresses


# ---- Checkov on the stacks -----------------------------------------------------------------


def _checked(document: dict[str, Any], path: Path) -> checkov.Result:
    path.write_text(json.dumps(document))
    return checkov.run("terraform_plan", path)


@pytest.fixture(scope="module")
def results(
    plans: dict[str, Plan],
    documents: dict[str, dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, checkov.Result]:
    """Checkov on both stacks, on the seeded and on the reference-free staging plan, side by
    side (each run is one Checkov process: about four seconds, mostly its start)."""
    folder = tmp_path_factory.mktemp("tfplan")
    runs: dict[str, dict[str, Any]] = {
        **documents,
        "seeded": tfplan.export(_seeded(plans["staging"])),
        "no-references": tfplan.export(plans["staging"], references=False),
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            name: pool.submit(_checked, document, folder / f"{name}.json")
            for name, document in runs.items()
        }
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_checkov_finds_nothing_beyond_the_accepted_findings(
    stack: str, results: dict[str, checkov.Result], capsys: pytest.CaptureFixture[str]
) -> None:
    result = results[stack]
    verdict = checkov.judge("terraform_plan", result, checkov.load_aws_skips(), ROLES[stack])
    with capsys.disabled():
        print(f"\nCheckov AWS ({stack}): {verdict.counts()}")
    assert result.parsing_errors == 0
    assert result.passed > 300, "the export is really checked"
    assert verdict.ok, "\n".join(verdict.problems())


def test_every_accepted_finding_names_its_resources_and_reason() -> None:
    skips = checkov.load_aws_skips()
    assert skips, "the file is read"
    for entry in skips:
        assert len(entry.reason) > 40, entry
        assert set(entry.roles) <= set(ROLES.values()), entry
    pairs = [(e.check, s, r) for e in skips for s in e.subjects for r in e.roles or ROLES.values()]
    assert len(pairs) == len(set(pairs)), "a resource is accepted once per check and role"


def test_malformed_skips_are_refused_naming_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "checkov-aws-skips.yaml"
    cases = [
        (
            [{"check": "CKV_AWS_16", "resources": ["aws_db_instance.*"], "reason": "r"}],
            "no patterns",
        ),
        ([{"check": "CKV_AWS_16", "resources": ["aws_db_instance.x"]}], "'reason'"),
        ([{"check": "CKV_AWS_16", "resource": "aws_db_instance.x", "reason": "r"}], "unknown key"),
        ({"check": "CKV_AWS_16"}, "expected a list"),
    ]
    for data, message in cases:
        path.write_text(yaml.safe_dump(data))
        with pytest.raises(checkov.CheckovError, match=message) as raised:
            checkov.load_aws_skips(path)
        assert "checkov-aws-skips.yaml" in str(raised.value)


def test_stale_and_unaccepted_findings_are_told_apart() -> None:
    finding = checkov.Finding("CKV_AWS_16", "aws_db_instance.database_instance")
    other = checkov.Finding("CKV_AWS_79", "aws_launch_template.nodes_app_template")
    entry = checkov.Acceptance(
        "CKV_AWS_16", ("aws_db_instance.database_instance", "aws_db_instance.gone"), "reason"
    )
    prod_only = checkov.Acceptance("CKV_AWS_79", (other.subject,), "reason", ("production",))
    result = checkov.Result(passed=1, failed=(finding, other), parsing_errors=0, resources=2)
    verdict = checkov.judge("terraform_plan", result, [entry, prod_only], "staging")
    assert verdict.accepted == [finding]
    assert verdict.unaccepted == [other]  # the entry holds for production only
    assert [s.subjects for s in verdict.stale] == [("aws_db_instance.gone",)]
    assert not verdict.ok


# ---- seeded weaknesses -----------------------------------------------------------------------


def _edit(plan: Plan, typ: str, name: str, edit: Callable[[dict[str, Any]], None]) -> None:
    (resource,) = [r for r in plan.resources if r.type == typ and r.name == name]
    edit(resource.inputs)


def _seeded(plan: Plan) -> Plan:
    """A copy of the staging plan with three weaknesses seeded."""
    resources = copy.deepcopy(plan.resources)
    seeded = Plan(plan.project, plan.stack, plan.stack_urn, resources, plan.outputs)

    def unencrypted(props: dict[str, Any]) -> None:
        props["storageEncrypted"] = False
        del props["kmsKeyId"]

    def imdsv1(props: dict[str, Any]) -> None:
        props["metadataOptions"]["httpTokens"] = "optional"

    _edit(seeded, "aws:rds/instance:Instance", "database-instance", unencrypted)
    _edit(seeded, "aws:ec2/launchTemplate:LaunchTemplate", "nodes-app-template", imdsv1)
    block = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
    seeded.resources.remove(
        next(
            r
            for r in resources
            if r.type == block and r.name == "storage-media-public-access-block"
        )
    )
    return seeded


SEEDED = [
    ("CKV_AWS_16", "aws_db_instance.database_instance", "an unencrypted RDS instance"),
    ("CKV2_AWS_6", "aws_s3_bucket.storage_media", "a bucket without a public access block"),
    ("CKV_AWS_79", "aws_launch_template.nodes_app_template", "IMDSv1 on the nodes"),
]


@pytest.mark.parametrize(("check", "address", "weakness"), SEEDED, ids=[s[2] for s in SEEDED])
def test_a_seeded_weakness_is_reported_by_the_right_check(
    check: str, address: str, weakness: str, results: dict[str, checkov.Result]
) -> None:
    baseline = {(f.check, f.subject) for f in results["staging"].failed}
    seeded = {(f.check, f.subject) for f in results["seeded"].failed}
    assert (check, address) not in baseline
    assert (check, address) in seeded, weakness
    assert seeded - baseline == {(c, a) for c, a, _ in SEEDED}, "nothing else changed"


def test_connection_checks_need_the_references(results: dict[str, checkov.Result]) -> None:
    """The same plan without references: Checkov no longer connects any bucket to its public
    access block (every bucket has one), so the references are what makes CKV2_AWS_6 work."""
    buckets = {"storage_backups", "storage_logs", "storage_media", "storage_static"}
    naive = {f.subject for f in results["no-references"].failed if f.check == "CKV2_AWS_6"}
    assert naive == {f"aws_s3_bucket.{b}" for b in buckets}
    assert not [f for f in results["staging"].failed if f.check == "CKV2_AWS_6"]


# ---- the offline preview's --checkov stage ---------------------------------------------------


def test_the_preview_stage_prints_both_frameworks_and_fails_on_a_finding_not_accepted(
    plans: dict[str, Plan], stack_configs: dict[str, StackConfig], tmp_path: Path
) -> None:
    """``python -m tools.preview staging --checkov``'s stage in a project whose AWS skips file
    accepts nothing: both frameworks' counts are printed, then every AWS finding fails it."""
    project = tmp_path / "project"
    project.mkdir()
    (project / checkov.AWS_SKIPS.name).write_text("[]\n")
    (project / checkov.KUBERNETES_SKIPS.name).write_text(checkov.KUBERNETES_SKIPS.read_text())
    out = io.StringIO()
    ctx = PreviewContext("staging", project_dir=project, out_root=tmp_path / "build", stdout=out)
    ctx.config = stack_configs["staging"]
    ctx.plan = plans["staging"]
    render.write(ctx.plan, ctx.out_dir / "manifests")
    with pytest.raises(StageError) as raised:
        stage_checkov(ctx)
    printed = out.getvalue()
    assert "AWS (terraform_plan): " in printed and "Kubernetes: " in printed, printed
    kubernetes = re.search(r"Kubernetes: (\d+) passed, (\d+) failed, (\d+) accepted", printed)
    assert kubernetes, printed
    failed, accepted = int(kubernetes.group(2)), int(kubernetes.group(3))
    assert failed == accepted > 0, "the Kubernetes findings are all accepted in checkov-skips.yaml"
    assert raised.value.exit_code == 1
    assert any("[terraform_plan] CKV_AWS_39 aws_eks_cluster.cluster_eks" in line
               for line in raised.value.lines)  # fmt: skip
    assert not [line for line in raised.value.lines if "[kubernetes]" in line]
    assert (ctx.out_dir / "tfplan.json").is_file()
