"""The public Ingress: ALB annotations, routing, TLS, the certificate (given, or created and
DNS-validated), WAF, ordering after the controller, and the rendered manifest against the
cluster version's schemas — for both stacks, built under the mocks with the controller."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components.app.ingress import SSL_POLICY, Ingress, IngressArgs
from components.lib.kube.service import ServiceBackend
from components.lib.naming import Naming
from components.settings import StackSettings
from tests import STACKS
from tests.conftest import assert_valid_manifests, only
from tests.test_load_balancer_controller import build as build_controller
from tools import render
from tools.plan import Plan
from tools.program import StageError, capture
from tools.project import StackConfig

INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
CERTIFICATE = "aws:acm/certificate:Certificate"
RECORD = "aws:route53/record:Record"
VALIDATION = "aws:acm/certificateValidation:CertificateValidation"
CHART = "kubernetes:helm.sh/v4:Chart"
ALB = "alb.ingress.kubernetes.io"
NAMESPACE = "exposcholar"
ZONE = "Z0123456789EXAMPLE"
MODES = ("certificate", "zone")
"""``certificate``: ACM ARN and a WAF ACL given; ``zone``: certificate made here, no WAF."""


def host(stack: str) -> str:
    return "exposcholar.org" if stack == "prod" else f"{stack}.exposcholar.org"


def given_certificate(settings: StackSettings) -> str:
    account = settings.account
    certificate_id = "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
    return f"arn:aws:acm:{account.region}:{account.account_id}:certificate/{certificate_id}"


def waf_acl(settings: StackSettings) -> str:
    account = settings.account
    acl = "expo/5b6a7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"
    return f"arn:aws:wafv2:{account.region}:{account.account_id}:regional/webacl/{acl}"


def backend(health_check_path: str = "/healthz") -> ServiceBackend:
    return ServiceBackend(
        namespace=pulumi.Output.from_input(NAMESPACE),
        service=pulumi.Output.from_input("web"),
        port=8080,
        health_check_path=health_check_path,
        pods={"app.kubernetes.io/name": "web"},
        pod_port=8080,
    )


def ingress_args(settings: StackSettings, mode: str, kubernetes: k8s.Provider) -> IngressArgs:
    return IngressArgs(
        backend=backend(),
        host=host(settings.stack),
        certificate_arn=given_certificate(settings) if mode == "certificate" else None,
        hosted_zone_id=ZONE if mode == "zone" else None,
        waf_acl_arn=waf_acl(settings) if mode == "certificate" else None,
        naming=Naming.for_stack(settings),
        kubernetes=kubernetes,
    )


def program(settings: StackSettings, mode: str) -> None:
    built = build_controller(settings)
    Ingress(
        "ingress",
        ingress_args(settings, mode, built.kubernetes),
        opts=pulumi.ResourceOptions(providers=[built.aws], depends_on=[built.controller]),
    )


@pytest.fixture(scope="module")
def ingress_plans(
    stack_configs: dict[str, StackConfig], stack_settings: dict[str, StackSettings]
) -> dict[tuple[str, str], Plan]:
    def run(stack: str, mode: str) -> Plan:
        return capture(stack_configs[stack], lambda: program(stack_settings[stack], mode))

    return {(stack, mode): run(stack, mode) for stack in STACKS for mode in MODES}


@pytest.fixture(params=[(s, m) for s in STACKS for m in MODES], ids="-".join)
def plan(request: pytest.FixtureRequest, ingress_plans: dict[tuple[str, str], Plan]) -> Plan:
    return ingress_plans[request.param]


@pytest.fixture(params=STACKS)
def given_plan(request: pytest.FixtureRequest, ingress_plans: dict[tuple[str, str], Plan]) -> Plan:
    """Certificate ARN and WAF ACL given."""
    return ingress_plans[(request.param, "certificate")]


@pytest.fixture(params=STACKS)
def zone_plan(request: pytest.FixtureRequest, ingress_plans: dict[tuple[str, str], Plan]) -> Plan:
    """Certificate created in the hosted zone; no WAF ACL."""
    return ingress_plans[(request.param, "zone")]


def ingress(plan: Plan) -> dict[str, Any]:
    return dict(only(plan, INGRESS).inputs)


def annotations_of(plan: Plan) -> dict[str, str]:
    return dict(ingress(plan)["metadata"]["annotations"])


def test_internet_facing_alb_with_ip_targets_and_https_only(plan: Plan) -> None:
    spec = ingress(plan)["spec"]
    assert spec["ingressClassName"] == "alb"
    found = annotations_of(plan)
    assert found[f"{ALB}/scheme"] == "internet-facing"
    assert found[f"{ALB}/target-type"] == "ip"
    assert json.loads(found[f"{ALB}/listen-ports"]) == [{"HTTP": 80}, {"HTTPS": 443}]
    assert found[f"{ALB}/ssl-redirect"] == "443"
    assert found[f"{ALB}/ssl-policy"] == SSL_POLICY == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert found[f"{ALB}/healthcheck-path"] == "/healthz"
    # awaited: on delete, Pulumi waits for the finalizer to remove the ALB
    assert "pulumi.com/skipAwait" not in found
    assert not any(key.startswith(f"{ALB}/group.") for key in found)


def test_load_balancer_attributes(plan: Plan) -> None:
    attributes = dict(
        item.split("=", 1)
        for item in annotations_of(plan)[f"{ALB}/load-balancer-attributes"].split(",")
    )
    assert attributes == {
        "deletion_protection.enabled": "true",  # every stack
        "routing.http.drop_invalid_header_fields.enabled": "true",
    }


def test_host_routes_to_the_backend_over_tls(plan: Plan) -> None:
    spec = ingress(plan)["spec"]
    assert spec["tls"] == [{"hosts": [host(plan.stack)]}]
    (rule,) = spec["rules"]
    assert rule["host"] == host(plan.stack)
    assert rule["http"]["paths"] == [
        {
            "path": "/",
            "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 8080}}},
        }
    ]
    metadata = ingress(plan)["metadata"]
    assert metadata["namespace"] == NAMESPACE
    assert metadata["labels"]["app.kubernetes.io/part-of"] == "exposcholar"


def test_ingress_waits_for_the_controller(plan: Plan) -> None:
    found = only(plan, INGRESS)
    assert only(plan, CHART).urn in found.dependencies
    k8s = only(plan, "pulumi:providers:kubernetes")
    assert found.provider and found.provider.startswith(k8s.urn)
    assert found.parent == plan.component("exposcholar:app:Ingress").urn


def test_given_certificate_is_used_as_is(
    given_plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    plan = given_plan
    assert annotations_of(plan)[f"{ALB}/certificate-arn"] == given_certificate(
        stack_settings[plan.stack]
    )
    assert not plan.of_type(CERTIFICATE)
    assert not plan.of_type(RECORD)
    assert not plan.of_type(VALIDATION)


def test_certificate_is_created_and_validated_in_the_zone(zone_plan: Plan) -> None:
    plan = zone_plan
    certificate = only(plan, CERTIFICATE)
    assert certificate.inputs["domainName"] == host(plan.stack)
    assert certificate.inputs["validationMethod"] == "DNS"
    assert certificate.inputs["keyAlgorithm"] in ("RSA_2048", "EC_prime256v1")
    assert certificate.inputs["tags"]["Component"] == "ingress"
    (option,) = certificate.outputs["domainValidationOptions"]

    record = only(plan, RECORD)
    assert record.inputs["zoneId"] == ZONE
    assert record.inputs["name"] == option["resourceRecordName"]
    assert record.inputs["type"] == option["resourceRecordType"] == "CNAME"
    assert record.inputs["records"] == [option["resourceRecordValue"]]
    assert record.inputs["allowOverwrite"] is True

    validation = only(plan, VALIDATION)
    assert validation.inputs["certificateArn"] == certificate.outputs["arn"]
    assert validation.inputs["validationRecordFqdns"] == [record.outputs["fqdn"]]
    assert record.urn in validation.dependencies  # waits for the records
    assert certificate.urn in validation.dependencies

    # The Ingress only names the certificate once validated.
    assert annotations_of(plan)[f"{ALB}/certificate-arn"] == certificate.outputs["arn"]
    assert validation.urn in only(plan, INGRESS).dependencies

    aws = only(plan, "pulumi:providers:aws")
    for resource in (certificate, record, validation):
        assert resource.provider and resource.provider.startswith(aws.urn), resource.name


@pytest.mark.parametrize("stack", STACKS)
def test_waf_acl_only_when_given(
    ingress_plans: dict[tuple[str, str], Plan], stack_settings: dict[str, StackSettings], stack: str
) -> None:
    waf = f"{ALB}/wafv2-acl-arn"
    given = annotations_of(ingress_plans[(stack, "certificate")])
    assert given[waf] == waf_acl(stack_settings[stack])
    assert waf not in annotations_of(ingress_plans[(stack, "zone")])


@pytest.mark.parametrize(
    ("certificate_arn", "hosted_zone_id"),
    [("arn:aws:acm:eu-west-1:1:certificate/x", ZONE), (None, None), ("", ""), ("", None)],
)
def test_exactly_one_certificate_source(
    stack_settings: dict[str, StackSettings],
    certificate_arn: str | None,
    hosted_zone_id: str | None,
) -> None:
    settings = stack_settings["staging"]
    with pytest.raises(ValueError, match="exactly one of certificate_arn and hosted_zone_id"):
        IngressArgs(
            backend=backend(),
            host=host("staging"),
            certificate_arn=certificate_arn,
            hosted_zone_id=hosted_zone_id,
            waf_acl_arn=None,
            naming=Naming.for_stack(settings),
            kubernetes=None,  # type: ignore[arg-type]  # never reached
        )


def test_health_check_path_is_absolute() -> None:
    with pytest.raises(ValueError, match="must start with /"):
        backend(health_check_path="healthz")


def test_rendered_ingress_validates_against_the_cluster_schemas(
    plan: Plan, stack_settings: dict[str, StackSettings], tmp_path: Path
) -> None:
    documents = render.render(plan)
    assert [d["kind"] for d in documents.values()] == ["Ingress"], "the chart is not rendered"
    files = render.write(plan, tmp_path / plan.stack)
    assert_valid_manifests(files, stack_settings[plan.stack].cluster.version)


def test_an_ingress_without_the_controller_in_depends_on_is_refused(
    stack_configs: dict[str, StackConfig], stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings["staging"]

    def without_controller() -> None:
        built = build_controller(settings)
        Ingress(
            "ingress",
            ingress_args(settings, "zone", built.kubernetes),
            opts=pulumi.ResourceOptions(providers=[built.aws]),
        )

    with pytest.raises(StageError, match="needs the LoadBalancerController in its depends_on"):
        capture(stack_configs["staging"], without_controller)
