"""Engine checks (tools/engine): the offline preview refuses what ``pulumi preview`` and
``pulumi up`` would refuse, and the program itself passes them.

Faults are seeded in small programs run under the same mock runtime as the real one, so each
finding is the one the preview would print for the same code in the stack.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker
import pulumi_kubernetes as k8s
import pytest
import yaml
from pulumi.resource import DependencyResource

from tools.engine import check as engine
from tools.engine.charts import (
    CHART_V4,
    RELEASE_V3,
    ChartEntry,
    ChartTableError,
    check_charts,
    table,
)
from tools.engine.findings import Finding
from tools.engine.inputs import CHECKED_PACKAGES, check_inputs, is_custom_kind
from tools.engine.schema import SchemaCache, package_of
from tools.mocks import CapturedResource
from tools.plan import Plan
from tools.preview import REPO_ROOT
from tools.program import capture
from tools.project import StackConfig

STACK = StackConfig("staging", {}, (), ())


def findings_of(program: Callable[[], None]) -> list[Finding]:
    plan = capture(STACK, program)
    report = engine.check(plan.resources, plan.stack_urn, sites=plan.sites)
    # every resource the program registered was checked: no finding from nothing checked
    assert report.resources_checked == len(plan.resources) > 0, plan.resources
    return report.findings


def errors_of(program: Callable[[], None]) -> list[str]:
    return [f.line() for f in findings_of(program) if f.severity == "error"]


# ---- the real stacks ---------------------------------------------------------------------


def test_both_stacks_pass_the_engine_checks(plan: Plan) -> None:
    report = engine.check(plan.resources, plan.stack_urn, sites=plan.sites)
    assert [f.line() for f in report.errors] == []
    # every resource of the three provider SDKs (and their providers) was checked against its
    # schema; only CustomResources are left to their CRDs' schemas
    expected = [
        r
        for r in plan.resources
        if package_of(r.type) in CHECKED_PACKAGES
        and (r.custom or r.type.startswith("kubernetes:helm.sh/"))
        and not is_custom_kind(r.type)
    ]
    assert report.resources_checked == len(expected) > 150
    assert report.types_checked > 50


def test_route_table_associations_are_named_after_their_own_zone(plan: Plan) -> None:
    """Finding 1: every private subnet's association was named after the first zone."""
    associations = plan.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
    names = [r.name for r in associations]
    assert len(names) == len(set(names)), "duplicate names make duplicate URNs"
    zones = plan.outputs["availabilityZones"]
    assert len(zones) > 1
    private = {r.name for r in associations if r.name.startswith("network-private-")}
    assert private == {f"network-private-{zone}-rta" for zone in zones}


def test_charts_are_installed_so_their_hooks_run_and_their_values_are_read(plan: Plan) -> None:
    """Finding 2: the VPA chart's TLS Secret comes from hooks a v4 Chart never runs, and it was
    given values the chart does not define."""
    charts = [r for r in plan.resources if r.type in (CHART_V4, RELEASE_V3)]
    assert {r.inputs["chart"] for r in charts} == {
        "vpa", "external-secrets", "aws-load-balancer-controller"
    }  # fmt: skip
    assert [f.line() for f in check_charts(charts)] == []
    (vpa,) = [r for r in charts if r.inputs["chart"] == "vpa"]
    assert vpa.type == RELEASE_V3
    entry = table()[("vpa", vpa.inputs["version"])]
    assert entry.install_hooks, "the table records the chart's certificate hooks"
    for chart in charts:
        entry = table()[(chart.inputs["chart"], chart.inputs["version"])]
        assert chart.type == RELEASE_V3 or not entry.install_hooks, chart.name


def transitive_dependencies(plan: Plan, urn: str) -> set[str]:
    """Everything ``urn`` waits for on create (and outlives on destroy): dependencies, inputs'
    dependencies, its provider, and theirs."""
    seen: set[str] = set()
    todo = [urn]
    by_urn = {r.urn: r for r in plan.resources}
    while todo:
        resource = by_urn.get(todo.pop())
        if resource is None:
            continue
        edges = list(resource.dependencies)
        edges += [u for urns in resource.property_dependencies.values() for u in urns]
        if resource.provider:
            edges.append(resource.provider.rsplit("::", 1)[0])
        for edge in edges:
            if edge not in seen:
                seen.add(edge)
                todo.append(edge)
    return seen


def test_every_kubernetes_object_waits_for_the_cluster_access_of_its_provider(plan: Plan) -> None:
    """Finding 3: with authentication mode API and no creator admin, whoever runs Pulumi (an
    administrator, the CI deploy or preview role) reaches the cluster only through its access
    entry and policy associations. Every Kubernetes object must depend on all of them (so it
    is created after them and destroyed before them)."""
    (provider,) = plan.of_type("pulumi:providers:kubernetes")
    entries = plan.of_type("aws:eks/accessEntry:AccessEntry")
    associations = plan.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    names = {r.name for r in entries}
    assert {"cluster-admin-0", "cluster-deploy-0", "cluster-preview-0"} <= names
    access = {r.urn for r in entries + associations}
    assert len(associations) >= len(entries) >= 3
    assert access <= transitive_dependencies(plan, provider.urn)
    kubernetes_objects = [r for r in plan.resources if r.type.startswith("kubernetes:")]
    assert len(kubernetes_objects) > 30
    for resource in kubernetes_objects:
        assert access <= transitive_dependencies(plan, resource.urn), resource.urn


def test_docker_builds_use_project_relative_paths(plan: Plan) -> None:
    """Finding 4: absolute paths differ between checkouts, so a deploy from CI after a laptop
    would rebuild and push the same tag to an IMMUTABLE repository, which refuses it."""
    images = plan.of_type("docker:index/image:Image")
    assert images
    for image in images:
        build = image.inputs["build"]
        for key in ("context", "dockerfile"):
            assert not Path(build[key]).is_absolute(), (image.name, build[key])
            assert (REPO_ROOT / build[key]).exists(), (image.name, build[key])
        assert build["dockerfile"] == f"{build['context']}/Dockerfile"


def test_the_cli_can_run_the_program_with_what_requirements_txt_installs() -> None:
    """Finding 5: a ``typechecker`` the CLI must run has to be installed by requirements.txt,
    the only file the CLI installs the virtualenv from."""
    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
    options = project["runtime"].get("options", {})
    requirements = (REPO_ROOT / "requirements.txt").read_text().lower()
    packages = {line.split("==")[0].strip() for line in requirements.splitlines()
                if line.strip() and not line.startswith("#")}  # fmt: skip
    checker = options.get("typechecker")
    assert checker is None or checker in packages, f"typechecker {checker} not installed by the CLI"


def test_mock_outputs_have_the_provider_types(plan: Plan) -> None:
    """Finding 6: the wire carries numbers as doubles; the database port came back 5432.0 and
    the exported endpoint read ``host:5432.0``."""
    endpoint = plan.outputs["databaseEndpoint"]
    _host, port = endpoint.rsplit(":", 1)
    assert port == str(plan.outputs["databasePort"]) == "5432", endpoint
    (instance,) = [r for r in plan.resources if r.type == "aws:rds/instance:Instance"]
    assert isinstance(instance.outputs["port"], int)
    assert instance.outputs["endpoint"].endswith(":5432")


# ---- seeded faults -----------------------------------------------------------------------


def duplicate_urn() -> None:
    aws.s3.Bucket("twice", bucket="one")
    aws.s3.Bucket("twice", bucket="two")


# The faults are what a type checker would flag; they are typed Any, as a dict built at run time
# would be, so the program reaches the engine with them.


def misspelled_deep_property() -> None:
    spec: Any = {
        "selector": {"matchLabels": {"app": "typo"}},
        "template": {
            "metadata": {"labels": {"app": "typo"}},
            "spec": {
                "containers": [{"name": "web", "image": "nginx:1.27", "imagePullPolicyy": "Always"}]
            },
        },
    }
    k8s.apps.v1.Deployment("typo", metadata={"name": "typo", "namespace": "app"}, spec=spec)


def missing_nested_required() -> None:
    rule: Any = {"protocol": "tcp", "from_port": 443, "cidr_blocks": ["10.0.0.0/8"]}
    aws.ec2.SecurityGroup("sg", ingress=[rule])


def wrong_enum() -> None:
    build: Any = {"context": "app", "builder_version": "BuilderV3"}
    docker.Image("image", image_name="registry.example/app:1", build=build)


def unregistered_dependency() -> None:
    # a reference to a resource by URN alone (as a remote component hands them out)
    ghost = DependencyResource("urn:pulumi:staging::exposcholar::test:index:Ghost::ghost")
    aws.s3.Bucket("bucket", bucket="b", opts=pulumi.ResourceOptions(depends_on=[ghost]))


SEEDED = {
    "duplicate URN": (
        duplicate_urn,
        "aws:s3/bucket:Bucket 'twice': duplicate resource URN "
        "urn:pulumi:staging::exposcholar::aws:s3/bucket:Bucket::twice (2 registrations); "
        "registered at tests/test_engine.py:",
    ),
    "misspelled deep property": (
        misspelled_deep_property,
        "error: kubernetes:apps/v1:Deployment 'typo': spec.template.spec.containers[0]."
        "imagePullPolicyy: unknown property; did you mean 'imagePullPolicy'?",
    ),
    "missing nested required input": (
        missing_nested_required,
        "error: aws:ec2/securityGroup:SecurityGroup 'sg': ingress[0].toPort: missing required "
        "input",
    ),
    "wrong enum value": (
        wrong_enum,
        "error: docker:index/image:Image 'image': build.builderVersion: a string \"BuilderV3\" "
        "is not one of the allowed values ('BuilderV1', 'BuilderBuildKit')",
    ),
    "unregistered dependency": (
        unregistered_dependency,
        "error: aws:s3/bucket:Bucket 'bucket': dependency "
        "urn:pulumi:staging::exposcholar::test:index:Ghost::ghost is not a registered resource",
    ),
}


@pytest.mark.parametrize("fault", SEEDED, ids=list(SEEDED))
def test_seeded_fault_is_refused_with_one_clear_line(fault: str) -> None:
    program, expected = SEEDED[fault]
    errors = errors_of(program)
    assert len(errors) == 1, errors
    assert expected in errors[0]


def test_duplicate_urn_names_both_places() -> None:
    (error,) = errors_of(duplicate_urn)
    places = error.split("registered at ")[1].split(";")[0].split(", ")
    assert len(places) == 2
    lines = [int(place.rsplit(":", 1)[1]) for place in places]
    assert lines[1] == lines[0] + 1, places


def test_seeded_faults_fail_the_offline_preview(project_copy: Callable[[], Path]) -> None:
    """The whole preview, as ``make preview`` runs it, on the real program plus every seeded
    fault: exit 1, one line per finding naming resource and property, no traceback."""
    project = project_copy()
    (project / "__main__.py").unlink()
    (project / "seeded.py").write_text((Path(__file__)).read_text())
    (project / "__main__.py").write_text(
        "import runpy\n"
        f"runpy.run_path({str(REPO_ROOT / '__main__.py')!r})\n"
        "import seeded\n"
        "for program, _ in seeded.SEEDED.values():\n"
        "    program()\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "tools.preview", "staging", "--quiet",
         "--project-dir", str(project), "--out", str(project / "build")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert lines[0].startswith("error: 5 finding(s) the Pulumi engine or a provider would refuse")
    for _, expected in SEEDED.values():
        # the seeded programs live in seeded.py there, not in this file
        text = expected.removeprefix("error: ").replace(
            "tests/test_engine.py:", f"{project}/seeded.py:"
        )
        assert any(text in line for line in lines), (text, lines)
    report = json.loads((project / "build" / "staging" / "engine-report.json").read_text())
    assert report["errors"] == 5
    assert not (project / "build" / "staging" / "policy-report.json").exists(), (
        "the policy stage does not run on a plan the engine refuses"
    )


# ---- deprecations and types --------------------------------------------------------------


def test_deprecated_properties_are_warnings_not_errors() -> None:
    def program() -> None:
        aws.s3.Bucket("legacy", bucket="legacy", acl="private")

    findings = findings_of(program)
    assert [f.severity for f in findings] == ["warning"]
    assert findings[0].property == "acl"
    assert "s3.BucketAcl" in findings[0].message


def test_wrong_types_are_refused_at_any_depth() -> None:
    def program() -> None:
        metadata: Any = {"name": "svc", "namespace": "app", "labels": {"tier": 3}}
        spec: Any = {"ports": [{"port": "eighty"}], "selector": {"app": "x"}}
        k8s.core.v1.Service("svc", metadata=metadata, spec=spec)

    errors = errors_of(program)
    assert any("metadata.labels.tier: expected a string, got int 3" in e for e in errors), errors
    assert any("spec.ports[0].port: expected a integer, got a string" in e for e in errors), errors


def test_open_enums_accept_any_string_and_constants_must_match() -> None:
    def program() -> None:
        # aws instance classes are an open enum (Union[str, InstanceType]): any string passes
        aws.rds.Instance("db", instance_class="db.future.large", allocated_storage=20,
                         engine="postgres")  # fmt: skip

    assert errors_of(program) == []


# ---- charts ------------------------------------------------------------------------------


def chart_resource(
    typ: str, chart: str, version: str, values: Mapping[str, object]
) -> CapturedResource:
    return CapturedResource(
        urn=f"urn:pulumi:s::p::{typ}::c", type=typ, name="c", custom=typ == RELEASE_V3,
        parent=None, provider=None, protect=False, dependencies=[], property_dependencies={},
        inputs={"chart": chart, "version": version, "values": values},
    )  # fmt: skip


def test_chart_values_must_be_defined_by_the_chart_version() -> None:
    good = chart_resource(
        RELEASE_V3,
        "vpa",
        "4.7.2",
        {
            # defined, a free-form map's sub-key, a map the templates render whole
            "recommender": {"enabled": True, "nodeSelector": {"pool": "system"},
                            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}},
        },
    )  # fmt: skip
    assert list(check_charts([good])) == []
    values = {"installCRDs": True, "recommender": {"enabeld": True}}
    bad = chart_resource(RELEASE_V3, "vpa", "4.7.2", values)
    paths = sorted(f.property for f in check_charts([bad]))
    assert paths == ["values.installCRDs", "values.recommender.enabeld"]


def test_a_chart_with_install_hooks_cannot_be_a_v4_chart() -> None:
    (finding,) = check_charts([chart_resource(CHART_V4, "vpa", "4.7.2", {})])
    assert "never runs hooks" in finding.message and "helm.v3.Release" in finding.message
    # test hooks alone (helm test) do not count; external-secrets has none at all
    assert list(check_charts([chart_resource(CHART_V4, "external-secrets", "0.19.2", {})])) == []


def test_a_chart_missing_from_the_table_is_refused() -> None:
    (finding,) = check_charts([chart_resource(CHART_V4, "vpa", "4.8.0", {})])
    assert "not in the chart table" in finding.message


def test_chart_table_entries_name_their_source() -> None:
    entries = table()
    assert len(entries) == 3
    for entry in entries.values():
        assert isinstance(entry, ChartEntry)
        assert len(entry.source["commit"]) == 40 and entry.source["repo"], entry.chart
        assert entry.values, entry.chart
        assert set(entry.values.values()) <= {
            "map", "list", "string", "bool", "number", "null", "template-only"
        }  # fmt: skip


def test_a_corrupt_chart_table_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "vpa-4.7.2.json").write_text('{"chart": "vpa", "version": ')
    with pytest.raises(ChartTableError, match=r"vpa-4\.7\.2\.json: expected a chart table"):
        table(tmp_path)


def test_secret_or_unknown_values_do_not_hide_the_keys_around_them() -> None:
    """A secret map keeps its keys (only values are masked), so a misspelled key next to an
    unknown value is still refused."""
    values = {"serviceAccount": {"nmae": "[unknown]"}}
    (finding,) = check_charts([chart_resource(RELEASE_V3, "vpa", "4.7.2", values)])
    assert finding.property == "values.serviceAccount.nmae"


def test_maps_the_templates_iterate_accept_any_key() -> None:
    """``recommender.extraArgs`` is turned into flags key by key (``range``): any flag name."""
    values = {"recommender": {"extraArgs": {"pod-recommendation-min-cpu-millicores": 15}}}
    assert list(check_charts([chart_resource(RELEASE_V3, "vpa", "4.7.2", values)])) == []


def test_kubernetes_quantities_may_be_numbers_but_labels_may_not() -> None:
    def program() -> None:
        container: Any = {
            "name": "web",
            "image": "nginx:1.27",
            "resources": {"limits": {"cpu": 1, "memory": "256Mi"}, "requests": {"cpu": 0.5}},
        }
        k8s.core.v1.Pod(
            "pod",
            metadata={"name": "pod", "namespace": "app"},
            spec={"containers": [container], "volumes": [{"name": "t", "empty_dir": {}}]},
        )
        quota: Any = {"hard": {"pods": 10}}
        k8s.core.v1.ResourceQuota("quota", metadata={"name": "q", "namespace": "app"}, spec=quota)

    assert errors_of(program) == []


def test_component_resources_without_a_provider_schema_are_not_refused() -> None:
    """``helm.v3.Chart`` is a component the SDK expands in-process: no provider schema."""
    chart = chart_resource("kubernetes:helm.sh/v3:Chart", "vpa", "4.7.2", {})
    chart.custom = False
    assert list(check_inputs([chart], SchemaCache(None))) == []
