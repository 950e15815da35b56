"""The offline policy check over the real Analyzer gRPC protocol (tools/analyzer/).

A tiny fixture pack, written into a temporary folder, runs as its own process exactly as the
Pulumi CLI starts a Python pack; its policies echo what they received so the tests can see what
travelled over the wire. One end-to-end test runs the offline preview with the real `policies/`.
"""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tools.analyzer.config import PolicyConfig, parse_policy_config, reconcile_policy_config
from tools.analyzer.errors import PolicyInputError, PolicyPackError
from tools.analyzer.pack import (
    ENGINE_ADDRESS,
    MAX_MESSAGE_SIZE,
    PolicyPackProcess,
    load_pack_project,
    pack_environment,
)
from tools.analyzer.report import PolicyReport
from tools.analyzer.session import PolicySession, run_policy_check
from tools.analyzer.wire import SECRET_SIG, SECRET_VALUE, UNKNOWN_SENTINEL, encode_value
from tools.mocks import MASK, UNKNOWN, CapturedResource
from tools.plan import Plan
from tools.preview import (
    EXIT_OK,
    EXIT_POLICY_VIOLATIONS,
    POLICY_PACK_DIR,
    REPO_ROOT,
    PreviewContext,
    run_pipeline,
    stage_policy,
)
from tools.program import EXIT_CONFIG, StageError
from tools.project import StackConfig, load_stack_config

PACK_YAML = "runtime: python\nversion: 1.2.3\ndescription: the analyzer tests' fixture pack\n"

PACK_MAIN = """
import pulumi
from pulumi_policy import (
    EnforcementLevel, PolicyConfigSchema, PolicyPack, ResourceValidationPolicy, Severity,
    StackValidationPolicy,
)

DB = "test:db:Database"


def no_public_db(args, report):
    if args.resource_type == DB and args.props.get("publiclyAccessible") is True:
        report(f"{args.name} sets publiclyAccessible")


def provider_region(args, report):
    provider = args.provider
    if provider is None:
        return
    wanted = args.get_config()["region"]
    region = provider.props["region"]
    if region != wanted:
        report(f"provider {provider.name} ({provider.resource_type}, {provider.urn}) "
               f"targets {region}, not {wanted}; its accessKey is {provider.props['accessKey']!r}")


def secret_password(args, report):
    if args.resource_type == DB:
        password = args.props["password"]
        report(f"password is {type(password).__name__} {password!r}")


def endpoint_https(args, report):
    if args.resource_type == DB and not args.props["endpoint"].startswith("https://"):
        report("the endpoint is not https")


def stack_context(args, report):
    if args.resource_type == "pulumi:pulumi:Stack":
        report(f"stack={pulumi.get_stack()} project={pulumi.get_project()} "
               f"organization={pulumi.get_organization()} dry_run={pulumi.runtime.is_dry_run()} "
               f"greeting={pulumi.Config('proj').get('greeting')} protect={args.opts.protect}")


def needs_owner(args, report):
    if args.resource_type == DB and "owner" not in (args.props.get("tags") or {}):
        report(f"{args.name} has no owner tag")


def add_owner(args):
    if args.resource_type != DB:
        return None
    tags = dict(args.props.get("tags") or {})
    if "owner" in tags:
        return None
    args.props["tags"] = {**tags, "owner": "platform"}
    return args.props


def db_wiring(args, report):
    for r in args.resources:
        if r.resource_type == DB:
            parent = r.parent.name if r.parent else None
            deps = sorted(d.name for d in r.dependencies)
            prop_deps = {k: sorted(d.name for d in v) for k, v in r.property_dependencies.items()}
            report(f"{r.name}: parent={parent} deps={deps} propdeps={prop_deps} "
                   f"provider={r.provider.name if r.provider else None} "
                   f"endpoint={r.props['endpoint']} tags={dict(r.props['tags'])}", r.urn)
    report(f"{len(args.resources)} resources")


PolicyPack(
    name="fixture-pack",
    enforcement_level=EnforcementLevel.ADVISORY,
    policies=[
        ResourceValidationPolicy(
            name="no-public-db", description="Databases are not public.",
            validate=no_public_db, enforcement_level=EnforcementLevel.MANDATORY,
            severity=Severity.HIGH),
        ResourceValidationPolicy(
            name="provider-region", description="Resources use the allowed region.",
            validate=provider_region, severity=Severity.MEDIUM,
            config_schema=PolicyConfigSchema(
                properties={"region": {"type": "string", "default": "eu-west-1"}})),
        ResourceValidationPolicy(
            name="secret-password", description="Echoes the password it sees.",
            validate=secret_password, severity=Severity.LOW),
        ResourceValidationPolicy(
            name="endpoint-https", description="Endpoints use https.",
            validate=endpoint_https, severity=Severity.MEDIUM),
        ResourceValidationPolicy(
            name="stack-context", description="Echoes the stack it runs for.",
            validate=stack_context),
        ResourceValidationPolicy(
            name="owner-tag", description="Databases carry an owner tag.",
            validate=needs_owner, remediate=add_owner,
            enforcement_level=EnforcementLevel.REMEDIATE, severity=Severity.LOW),
        StackValidationPolicy(
            name="db-wiring", description="Echoes each database's parent and dependencies.",
            validate=db_wiring, severity=Severity.CRITICAL),
    ],
)
"""

STACK = "urn:pulumi:test::proj::pulumi:pulumi:Stack::proj-test"
PROVIDER = "urn:pulumi:test::proj::pulumi:providers:aws::aws"
PROVIDER_REF = f"{PROVIDER}::prov-1"
NETWORK = "urn:pulumi:test::proj::test:net:Network::net"
SUBNET = "urn:pulumi:test::proj::test:net:Network$test:net:Subnet::subnet"
DB = "urn:pulumi:test::proj::test:net:Network$test:db:Database::db"
REPLICA = "urn:pulumi:test::proj::test:db:Database::replica"


def _resource(urn: str, typ: str, **fields: object) -> CapturedResource:
    defaults: dict[str, object] = {
        "custom": True,
        "parent": STACK,
        "provider": PROVIDER_REF,
        "protect": False,
        "dependencies": [],
        "property_dependencies": {},
        "inputs": {},
    }
    defaults.update(fields)
    return CapturedResource(urn=urn, type=typ, name=urn.rsplit("::", 1)[-1], **defaults)  # type: ignore[arg-type]


def fixture_plan() -> Plan:
    return Plan(
        "proj",
        "test",
        STACK,
        [
            _resource(
                PROVIDER,
                "pulumi:providers:aws",
                provider=None,
                inputs={"region": "us-west-2", "accessKey": MASK},
                id="prov-1",
            ),
            _resource(NETWORK, "test:net:Network", custom=False, provider=None),
            _resource(SUBNET, "test:net:Subnet", parent=NETWORK, inputs={"cidr": "10.0.0.0/24"}),
            _resource(
                DB,
                "test:db:Database",
                parent=NETWORK,
                protect=True,
                dependencies=[SUBNET],
                property_dependencies={"subnetId": [SUBNET]},
                inputs={
                    "publiclyAccessible": True,
                    "password": {SECRET_SIG: SECRET_VALUE, "value": "hunter2"},
                    "subnetId": "subnet-123",
                    "endpoint": UNKNOWN,
                    "tags": {"team": "data"},
                },
                outputs={"endpoint": "https://db.internal:5432"},
            ),
            _resource(
                REPLICA,
                "test:db:Database",
                inputs={
                    "publiclyAccessible": False,
                    "password": MASK,
                    "endpoint": "https://replica.internal:5432",
                    "tags": {"owner": "data"},
                },
            ),
        ],
        {"endpoint": "https://db.internal:5432"},
    )


STACK_CONFIG = {"proj:greeting": "hello"}


def _pack_children() -> list[int]:
    """Live processes started by this test process that run a policy pack."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:"))
        if int(ppid) == os.getpid() and b"pulumi.policy" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def pack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fixture-pack")
    (folder / "PulumiPolicy.yaml").write_text(PACK_YAML)
    (folder / "__main__.py").write_text(PACK_MAIN)
    return folder


def _check(
    pack: Path, config: dict[str, object] | None = None, tmp: Path | None = None
) -> PolicyReport:
    config_file = None
    if config is not None:
        assert tmp is not None
        config_file = tmp / "policy-config.json"
        config_file.write_text(json.dumps(config))
    return run_policy_check(
        fixture_plan(),
        pack,
        config_file=config_file,
        stack_config=STACK_CONFIG,
        pack_label="fixture",
    )


@pytest.fixture(scope="module")
def report(pack_dir: Path) -> PolicyReport:
    """The fixture pack at its own levels, no policy config file."""
    return _check(pack_dir)


def _messages(report: PolicyReport, policy: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for d in report.diagnostics:
        if d.policy_name == policy:
            found.setdefault(d.resource_name, []).append(d.message)
    return found


# --- the process --------------------------------------------------------------------------


def test_pack_is_started_like_the_cli_and_stopped(pack_dir: Path) -> None:
    env = pack_environment(project="proj", stack="test", organization="org", config=STACK_CONFIG)
    assert env["PULUMI_CONFIG"] == json.dumps(STACK_CONFIG)
    assert (env["PULUMI_PROJECT"], env["PULUMI_STACK"]) == ("proj", "test")
    assert (env["PULUMI_ORGANIZATION"], env["PULUMI_DRY_RUN"]) == ("org", "true")
    assert "PULUMI_CONFIG" not in pack_environment(
        project="p", stack="s", organization="o", config={}
    )

    process = PolicyPackProcess(load_pack_project(pack_dir), env)
    assert process.command == [sys.executable, "-u", "-m", "pulumi.policy", ENGINE_ADDRESS, "."]
    with process:
        assert process.process is not None
        assert process.process.poll() is None, "the pack keeps running"
        assert isinstance(process.port, int) and process.port > 0
        assert Path(f"/proc/{process.process.pid}/cwd").resolve() == pack_dir.resolve()
        assert _pack_children() == [process.process.pid]
        pid = process.process.pid
    assert process.process.returncode is not None
    assert pid not in _pack_children()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # terminated and reaped: no orphan, no zombie


def test_pack_environment_reaches_the_pack(report: PolicyReport) -> None:
    (message,) = _messages(report, "stack-context")["proj-test"]
    assert message == (
        "Echoes the stack it runs for.\n"
        "stack=test project=proj organization=organization dry_run=True greeting=hello"
        " protect=False"
    )


def test_analyzer_info_lists_policies_levels_severities_and_schema(report: PolicyReport) -> None:
    info = report.pack
    assert (info.name, info.version, info.supports_config) == ("fixture-pack", "1.2.3", True)
    levels = {p.name: (p.policy_type, p.enforcement_level, p.severity) for p in info.policies}
    assert levels == {
        "db-wiring": ("stack", "advisory", "critical"),
        "endpoint-https": ("resource", "advisory", "medium"),
        "no-public-db": ("resource", "mandatory", "high"),
        "owner-tag": ("resource", "remediate", "low"),
        "provider-region": ("resource", "advisory", "medium"),
        "secret-password": ("resource", "advisory", "low"),
        "stack-context": ("resource", "advisory", "unspecified"),
    }
    schema = info.policy("provider-region").config_schema
    assert schema is not None
    assert schema["properties"]["region"] == {"type": "string", "default": "eu-west-1"}
    # as the engine does: the schema's default reaches the policy without any config file
    assert report.config["provider-region"] == PolicyConfig("advisory", {"region": "eu-west-1"})


# --- what travels over the wire -----------------------------------------------------------


def test_values_are_encoded_as_the_engine_marshals_them() -> None:
    secret = {SECRET_SIG: SECRET_VALUE, "value": "s3cr3t"}
    encoded = encode_value(
        {"a": MASK, "b": [UNKNOWN, 1], "c": secret, "__defaults": [], "d": {"__x": 1, "y": None}}
    )
    assert encoded == {
        "a": {SECRET_SIG: SECRET_VALUE, "value": MASK},
        "b": [UNKNOWN_SENTINEL, 1],
        "c": {SECRET_SIG: SECRET_VALUE, "value": "s3cr3t"},
        "d": {"y": None},
    }
    assert UNKNOWN_SENTINEL == "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
    assert MAX_MESSAGE_SIZE == 400 * 1024 * 1024


def test_analyze_gets_inputs_and_the_resources_provider(report: PolicyReport) -> None:
    (public,) = [d for d in report.diagnostics if d.policy_name == "no-public-db"]
    assert (public.resource_name, public.enforcement_level, public.severity) == (
        "db",
        "mandatory",
        "high",
    )
    assert public.message == "Databases are not public.\ndb sets publiclyAccessible"
    regions = _messages(report, "provider-region")
    # every resource with a provider, never the provider, the component or the stack
    assert sorted(regions) == ["db", "replica", "subnet"]
    assert regions["subnet"] == [
        "Resources use the allowed region.\n"
        f"provider aws (pulumi:providers:aws, {PROVIDER}) targets us-west-2, not eu-west-1;"
        " its accessKey is '[secret]'"
    ]


def test_secrets_reach_the_pack_through_the_sdks_secret_handling(report: PolicyReport) -> None:
    passwords = _messages(report, "secret-password")
    assert passwords == {
        "db": ["Echoes the password it sees.\npassword is str 'hunter2'"],
        "replica": ["Echoes the password it sees.\npassword is str '[secret]'"],
    }


def test_unknowns_reach_the_pack_as_unknowns(report: PolicyReport) -> None:
    (unknown,) = [d for d in report.diagnostics if d.policy_name == "endpoint-https"]
    assert unknown.resource_name == "db"
    assert unknown.enforcement_level == "advisory"
    assert unknown.message == (
        "can't run policy 'endpoint-https' from policy pack 'fixture-pack@v0.0.1' during preview:"
        " string value at .endpoint can't be known during preview"
    )
    assert unknown.policy_pack_version == "1.2.3", "PulumiPolicy.yaml's version wins"


def test_remediation_runs_before_analysis(report: PolicyReport) -> None:
    (remediation,) = report.remediations
    assert (remediation.policy_name, remediation.resource_name) == ("owner-tag", "db")
    assert remediation.properties["tags"] == {"team": "data", "owner": "platform"}
    assert remediation.properties["password"] == {SECRET_SIG: SECRET_VALUE, "value": "hunter2"}
    assert remediation.changed_keys == ["tags"]
    assert not _messages(report, "owner-tag"), "Analyze saw the remediated inputs"


def test_analyze_stack_gets_parents_dependencies_and_outputs(report: PolicyReport) -> None:
    wiring = {d.resource_name: d for d in report.diagnostics if d.policy_name == "db-wiring"}
    assert set(wiring) == {"db", "replica", "proj-test"}
    assert wiring["db"].urn == DB and wiring["db"].source == "analyzeStack"
    assert wiring["db"].message.splitlines()[1] == (
        "db: parent=net deps=['subnet'] propdeps={'subnetId': ['subnet']} provider=aws"
        " endpoint=https://db.internal:5432 tags={'team': 'data', 'owner': 'platform'}"
    )
    assert (
        wiring["replica"]
        .message.splitlines()[1]
        .startswith("replica: parent=proj-test deps=[] propdeps={} provider=aws")
    )
    # without a URN, a stack policy's violation belongs to the stack: 6 resources and the stack
    assert wiring["proj-test"].urn == STACK
    assert wiring["proj-test"].resource_type == "pulumi:pulumi:Stack"
    assert wiring["proj-test"].message.endswith("\n6 resources")


# --- configuration ------------------------------------------------------------------------


def test_config_file_levels_and_properties_are_applied(pack_dir: Path, tmp_path: Path) -> None:
    configured = _check(
        pack_dir,
        {
            "all": "mandatory",
            "secret-password": "disabled",
            "provider-region": {"enforcementLevel": "advisory", "region": "us-west-2"},
        },
        tmp_path,
    )
    levels = {d.policy_name: d.enforcement_level for d in configured.diagnostics}
    assert "secret-password" not in levels, "disabled"
    assert "provider-region" not in levels, "the configured region matches"
    assert levels["db-wiring"] == "mandatory" and levels["stack-context"] == "mandatory"
    assert levels["owner-tag"] == "mandatory", "all: mandatory turned the remediation off"
    assert not configured.remediations
    assert levels["endpoint-https"] == "advisory", "a policy that cannot run is only advisory"
    assert configured.config["provider-region"] == PolicyConfig("advisory", {"region": "us-west-2"})
    assert configured.config["all"] == PolicyConfig("mandatory", None), "sent as the engine does"


def test_config_all_advisory_leaves_no_mandatory_violation(pack_dir: Path, tmp_path: Path) -> None:
    relaxed = _check(pack_dir, {"all": "advisory", "typo-policy": "mandatory"}, tmp_path)
    assert not relaxed.has_mandatory_violations
    assert relaxed.warnings == [
        "the policy config names 'typo-policy', which is no policy of fixture-pack"
    ]


def test_config_rejected_by_the_schema_stops_the_pack(pack_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PolicyInputError) as failure:
        _check(pack_dir, {"provider-region": {"region": 5}}, tmp_path)
    assert failure.value.lines == [
        "validating policy config: fixture-pack 1.2.3  provider-region: region: 5 is not of type"
        " 'string'"
    ]
    assert _pack_children() == []


def test_config_file_format_errors() -> None:
    with pytest.raises(PolicyInputError) as failure:
        parse_policy_config({"a": "strict", "b": 3, "c": {"enforcementLevel": "loud"}}, "cfg")
    assert failure.value.lines == [
        "error: cfg: 3 policy config problem(s):",
        "  - a: got 'strict'; expected one of advisory, mandatory, remediate, disabled",
        "  - b: got 3; expected a level or an object",
        "  - c: got 'loud'; expected one of advisory, mandatory, remediate, disabled",
    ]
    assert parse_policy_config({"a": {}, "b": "disabled"}, "cfg") == {
        "b": PolicyConfig("disabled", None)
    }


def test_reconcile_applies_all_then_each_policy(report: PolicyReport) -> None:
    given = {"all": PolicyConfig("disabled"), "no-public-db": PolicyConfig(None, {"x": 1})}
    effective, errors = reconcile_policy_config(report.pack, given)
    assert errors == []
    assert effective["no-public-db"] == PolicyConfig("disabled", {"x": 1})
    assert effective["provider-region"] == PolicyConfig("disabled", {"region": "eu-west-1"})


# --- the report ---------------------------------------------------------------------------


def test_report_prints_like_pulumi_preview(report: PolicyReport) -> None:
    out = io.StringIO()
    report.print_report(out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "Policies:"
    assert lines[1] == "    ❌ fixture-pack@v1.2.3 (local: fixture)"
    assert lines[2] == (
        "        - [mandatory]  [severity: high] no-public-db  (test:db:Database: db)"
    )
    assert lines[3:5] == [
        "          Databases are not public.",
        "          db sets publiclyAccessible",
    ]
    firsts = [line for line in lines if line.startswith("        - ")]
    # grouped by level, then severity: mandatory first, then advisory critical → unspecified
    assert firsts[1].startswith("        - [advisory]  [severity: critical] db-wiring  (")
    assert firsts[-2] == "        - [advisory]  stack-context  (pulumi:pulumi:Stack: proj-test)"
    assert firsts[-1] == "        - [remediate]  owner-tag  (test:db:Database: db)"
    severities = [
        line.split("[severity: ")[1].split("]")[0] for line in firsts if "severity" in line
    ]
    order = ["critical", "high", "medium", "low"]
    assert severities[1:] == sorted(severities[1:], key=order.index)
    assert lines[-1] == "    1 mandatory, 10 advisory violation(s); 7 policies over 6 resources"


def test_report_json(report: PolicyReport, tmp_path: Path) -> None:
    path = tmp_path / "test" / "policy-report.json"
    report.write_json(path)
    data = json.loads(path.read_text())
    assert data["hasMandatoryViolations"] is True
    assert data["pack"]["name"] == "fixture-pack" and data["pack"]["path"] == "fixture"
    assert data["counts"]["mandatory"] == 1 and data["counts"]["resourcesAnalyzed"] == 6
    assert data["counts"]["bySeverity"]["high"] == 1
    first = data["diagnostics"][0]
    assert (first["policyName"], first["urn"], first["resourceType"]) == (
        "no-public-db",
        DB,
        "test:db:Database",
    )
    effective = {p["name"]: p["effectiveEnforcementLevel"] for p in data["pack"]["policies"]}
    assert effective["owner-tag"] == "remediate"
    assert data["remediations"][0]["changedKeys"] == ["tags"]


# --- failures -----------------------------------------------------------------------------


def _broken_pack(tmp_path: Path, main: str) -> Path:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "PulumiPolicy.yaml").write_text(PACK_YAML)
    (folder / "__main__.py").write_text(textwrap.dedent(main))
    return folder


def test_pack_crashing_at_start_is_a_clear_error(tmp_path: Path) -> None:
    pack = _broken_pack(tmp_path, "raise RuntimeError('boom while loading the rules')\n")
    with pytest.raises(PolicyPackError) as failure:
        _check(pack)
    text = str(failure.value)
    assert f"error: policy pack {pack} exited with code 1 before printing its port" in text
    assert "RuntimeError: boom while loading the rules" in text, "its stderr is shown"
    assert _pack_children() == []


def test_pack_printing_no_port_is_killed(tmp_path: Path) -> None:
    pack = _broken_pack(tmp_path, "import time\ntime.sleep(60)\n")
    project = load_pack_project(pack)
    process = PolicyPackProcess(project, dict(os.environ), start_timeout=0.5)
    with pytest.raises(PolicyPackError, match=r"printed no port within 0\.5 s"), process:
        pass
    assert process.process is not None and process.process.returncode is not None
    assert _pack_children() == []


def test_pack_printing_garbage_is_an_error(tmp_path: Path) -> None:
    pack = _broken_pack(tmp_path, "print('hello from the pack')\nimport time\ntime.sleep(60)\n")
    with pytest.raises(
        PolicyPackError, match=r"non-numeric port to stdout \('hello from the pack'\)"
    ):
        _check(pack)
    assert _pack_children() == []


def test_policy_raising_fails_the_check_naming_the_exception(tmp_path: Path) -> None:
    pack = _broken_pack(
        tmp_path,
        """
        from pulumi_policy import PolicyPack, ResourceValidationPolicy

        def explode(args, report):
            raise KeyError("subnetIds")

        PolicyPack("exploding", [ResourceValidationPolicy("explode", "Raises.", explode)])
        """,
    )
    with pytest.raises(PolicyPackError) as failure:
        _check(pack)
    text = str(failure.value)
    # what the CLI shows too: gRPC's server logs the traceback to a NullHandler
    assert (
        f"error: policy pack {pack} failed in Analyze({STACK}): UNKNOWN:"
        " Exception calling application: 'subnetIds'"
    ) in text
    assert _pack_children() == []


def test_missing_pack_and_wrong_runtime(tmp_path: Path) -> None:
    with pytest.raises(PolicyInputError, match="policy pack not found"):
        load_pack_project(tmp_path / "nowhere")
    (tmp_path / "PulumiPolicy.yaml").write_text("runtime: nodejs\n")
    with pytest.raises(PolicyInputError, match="runtime: got 'nodejs'; expected 'python'"):
        load_pack_project(tmp_path)


# --- the preview stage --------------------------------------------------------------------


@pytest.fixture
def project_with_pack(pack_dir: Path, tmp_path: Path) -> Iterator[Path]:
    project = tmp_path / "project"
    (project / POLICY_PACK_DIR / "config").mkdir(parents=True)
    for name in ("PulumiPolicy.yaml", "__main__.py"):
        (project / POLICY_PACK_DIR / name).write_text((pack_dir / name).read_text())
    yield project


def _context(project: Path, out: Path, quiet: bool = False) -> PreviewContext:
    ctx = PreviewContext(stack="test", project_dir=project, out_root=out, stdout=io.StringIO())
    ctx.quiet = quiet
    ctx.config = StackConfig("test", dict(STACK_CONFIG), (), ())
    ctx.plan = fixture_plan()
    return ctx


def test_mandatory_violations_fail_the_preview_stage(
    project_with_pack: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = project_with_pack / POLICY_PACK_DIR / "config" / "test.json"
    config.write_text(json.dumps({"secret-password": "disabled"}))
    ctx = _context(project_with_pack, tmp_path / "out")
    assert run_pipeline(ctx, [("policy", stage_policy)]) == EXIT_POLICY_VIOLATIONS == 1
    assert "error: 1 mandatory policy violation(s); see " in capsys.readouterr().err
    printed = ctx.stdout.getvalue()  # type: ignore[attr-defined]
    assert "Policies:\n    ❌ fixture-pack@v1.2.3 (local: policies)" in printed
    data = json.loads((tmp_path / "out" / "test" / "policy-report.json").read_text())
    assert data["hasMandatoryViolations"] is True
    assert data["configFile"] == str(config)

    config.write_text(json.dumps({"no-public-db": "advisory"}))
    ctx = _context(project_with_pack, tmp_path / "out", quiet=True)
    assert run_pipeline(ctx, [("policy", stage_policy)]) == EXIT_OK
    assert ctx.stdout.getvalue() == ""  # type: ignore[attr-defined]


def test_quiet_preview_names_each_mandatory_violation(
    project_with_pack: Path, tmp_path: Path
) -> None:
    (project_with_pack / POLICY_PACK_DIR / "config" / "test.json").write_text("{}")
    with pytest.raises(StageError) as failure:
        stage_policy(_context(project_with_pack, tmp_path / "out", quiet=True))
    assert failure.value.exit_code == EXIT_POLICY_VIOLATIONS
    assert failure.value.lines[1:] == ["  - [high] no-public-db  (test:db:Database: db)"]


def test_missing_policy_config_is_bad_input(project_with_pack: Path, tmp_path: Path) -> None:
    with pytest.raises(StageError) as failure:
        stage_policy(_context(project_with_pack, tmp_path / "out"))
    assert failure.value.exit_code == EXIT_CONFIG
    assert "policies/config/test.json does not exist" in failure.value.lines[0]
    assert _pack_children() == []


# --- end to end with the real pack --------------------------------------------------------


def test_offline_preview_runs_the_real_policy_pack(tmp_path: Path) -> None:
    pack = REPO_ROOT / POLICY_PACK_DIR
    if not (pack / "PulumiPolicy.yaml").is_file():
        pytest.fail(
            f"the real policy pack is not there yet: {pack}/PulumiPolicy.yaml is missing "
            "(policies/ is written separately; this test runs the preview with it)"
        )
    result = subprocess.run(
        [sys.executable, "-m", "tools.preview", "staging", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report_file = tmp_path / "staging" / "policy-report.json"
    assert report_file.is_file(), result.stderr
    data = json.loads(report_file.read_text())
    assert "\nPolicies:\n    " in result.stdout
    assert f"{data['pack']['name']}@v{data['pack']['version']} (local: policies)" in result.stdout
    assert data["configFile"] == str(pack / "config" / "staging.json")
    assert data["counts"]["resourcesAnalyzed"] > 100
    assert data["pack"]["policies"], "the pack declares its policies"
    expected = EXIT_POLICY_VIOLATIONS if data["hasMandatoryViolations"] else EXIT_OK
    assert result.returncode == expected, result.stderr
    if data["hasMandatoryViolations"]:
        assert "mandatory policy violation(s)" in result.stderr


def test_a_streamed_check_reports_what_one_check_over_the_plan_reports(
    plans: dict[str, Plan],
) -> None:
    """The preview feeds the pack each resource as the program registers it, split between two
    pack processes; the report must be the one a single sequential check gives."""
    real = plans["prod"]
    # untagged AWS resources: violations reported by both processes
    resources = copy.deepcopy(real.resources)
    for resource in resources:
        resource.inputs.pop("tags", None)
        resource.outputs.pop("tags", None)
    plan = Plan(real.project, real.stack, real.stack_urn, resources, real.outputs)
    config = load_stack_config(REPO_ROOT, "prod")
    pack = REPO_ROOT / "policies"
    kwargs: dict[str, Any] = {
        "project": plan.project, "stack": plan.stack,
        "config_file": pack / "config" / "prod.json",
        "stack_config": config.values, "secret_keys": config.secret_keys,
    }  # fmt: skip
    sequential = run_policy_check(plan, pack, **kwargs_for_run(kwargs))
    main, helper = PolicySession(pack, **kwargs), PolicySession(pack, **kwargs)
    try:
        main.start()
        helper.start()
        first = main.stream(plan.project, plan.stack, "")
        second = helper.stream(plan.project, plan.stack, "")
        # in an order the program can register them in: providers before their resources
        ordered = sorted(plan.resources, key=lambda r: not r.type.startswith("pulumi:providers:"))
        for index, resource in enumerate(ordered):
            first.add(resource, analyze=index % 2 == 0)
            second.add(resource, analyze=index % 2 == 1)
        streamed = main.finish(plan, first, [second])
    finally:
        main.stop()
        helper.stop()
    assert streamed.resources_analyzed == sequential.resources_analyzed == len(plan.resources) + 1
    expected, got = sequential.to_json(), streamed.to_json()
    expected.pop("packOutput", None)
    got.pop("packOutput", None)
    assert len(got["diagnostics"]) > 50
    assert got == expected
    # a resource before its provider is refused, not analyzed without the provider's settings
    session = PolicySession(pack, **kwargs)
    try:
        session.start()
        early = session.stream(plan.project, plan.stack, "")
        (user,) = [r for r in plan.resources if r.name == "network-vpc"]
        early.add(user)
        with pytest.raises(PolicyPackError, match="arrived before its provider"):
            early.close()
    finally:
        session.stop()


def kwargs_for_run(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k not in ("project", "stack")}
