"""``Ingress``: the platform's public entry point, an internet-facing Application Load
Balancer made by the AWS Load Balancer Controller from one Ingress.

Creates the Ingress of class ``alb`` for the host (HTTP redirected to HTTPS, TLS 1.2 and 1.3
only, IP targets, the WAFv2 web ACL when given, deletion protection) and, given a Route 53
hosted zone instead of a certificate ARN, a DNS-validated ACM certificate for the host. The
host's own DNS record is not made here (see ``Ingress``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from pulumi_aws import acm, route53

from components.lib.component import Component
from components.lib.kube.service import ServiceBackend
from components.lib.naming import Naming
from components.platform.load_balancer_controller import LoadBalancerController

COMPONENT = "ingress"
INGRESS_CLASS = "alb"
SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
"""TLS 1.3 and 1.2 only, forward-secret ciphers."""
KEY_ALGORITHM = "RSA_2048"
VALIDATION_TTL = 300
ALB = "alb.ingress.kubernetes.io"

networking = k8s.networking.v1


@dataclass(frozen=True)
class IngressArgs:
    backend: ServiceBackend
    """The Service that serves the host, in the namespace the Ingress goes in."""
    host: str
    """Public host name: the Ingress rule, the TLS section and the certificate."""
    certificate_arn: str | None
    """An ACM certificate for ``host`` in the stack's region; or None with ``hosted_zone_id``."""
    hosted_zone_id: str | None
    """Route 53 zone in which a certificate for ``host`` is DNS-validated; or None."""
    waf_acl_arn: str | None
    """Regional WAFv2 web ACL to attach to the ALB; None (or empty) for none."""
    naming: Naming
    """Names and labels of the stack."""
    kubernetes: k8s.Provider
    """The cluster's provider."""

    def __post_init__(self) -> None:
        if bool(self.certificate_arn) == bool(self.hosted_zone_id):
            raise ValueError(
                "exactly one of certificate_arn and hosted_zone_id must be set "
                f"(got certificate_arn={self.certificate_arn!r}, "
                f"hosted_zone_id={self.hosted_zone_id!r})"
            )


def load_balancer_attributes(deletion_protection: bool) -> str:
    """The ``load-balancer-attributes`` annotation value."""
    return ",".join(
        [
            f"deletion_protection.enabled={str(deletion_protection).lower()}",
            "routing.http.drop_invalid_header_fields.enabled=true",
        ]
    )


def ingress_annotations(
    *,
    certificate_arn: pulumi.Input[str],
    health_check_path: str,
    deletion_protection: bool,
    waf_acl_arn: str | None,
) -> dict[str, pulumi.Input[str]]:
    """What the controller makes of the Ingress (annotation values are always strings): an
    internet-facing ALB with IP targets (pods registered directly, no NodePort hop), listeners
    on 80 and 443 with 80 redirecting to 443, TLS 1.2 and 1.3 only, the certificate, the health
    check path, invalid header fields dropped, and the WAFv2 web ACL when one is given."""
    annotations: dict[str, pulumi.Input[str]] = {
        f"{ALB}/scheme": "internet-facing",
        f"{ALB}/target-type": "ip",
        f"{ALB}/listen-ports": json.dumps([{"HTTP": 80}, {"HTTPS": 443}]),
        f"{ALB}/ssl-redirect": "443",
        f"{ALB}/certificate-arn": certificate_arn,
        f"{ALB}/ssl-policy": SSL_POLICY,
        f"{ALB}/healthcheck-path": health_check_path,
        f"{ALB}/load-balancer-attributes": load_balancer_attributes(deletion_protection),
    }
    if waf_acl_arn:
        annotations[f"{ALB}/wafv2-acl-arn"] = waf_acl_arn
    return annotations


class Ingress(Component):
    """The public Ingress and, when asked, its DNS-validated certificate (``depends_on``: the
    load balancer controller, whose webhook must run before an Ingress can be created).

    The host's DNS record is not created: the ALB's address exists only once the controller has
    made the ALB, after this program ran. Point the host at it (a Route 53 alias A record, or a
    CNAME elsewhere) from the Ingress' ``status.loadBalancer`` after the first deployment; the
    address lasts as long as the ALB (changing the scheme or the Ingress' name or namespace
    makes a new one).
    """

    TYPE = "exposcholar:app:Ingress"

    certificate_arn: pulumi.Output[str]
    """The certificate the ALB serves (issued, when created here)."""

    def __init__(
        self, name: str, args: IngressArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, opts)
        self.require(LoadBalancerController, "its webhook admits Ingresses; it makes the ALB")
        if args.certificate_arn:
            self.certificate_arn = pulumi.Output.from_input(args.certificate_arn)
        elif args.hosted_zone_id:
            self.certificate_arn = self._validated_certificate(name, args, args.hosted_zone_id)
        else:  # IngressArgs refuses this
            raise ValueError("one of certificate_arn and hosted_zone_id must be set")

        object_name = args.naming.project
        # Awaited (no pulumi.com/skipAwait): on create until the controller has published the
        # ALB's address, on delete until its finalizer has removed the ALB. Skipping the await
        # would skip the delete wait too, and ``pulumi destroy`` could remove the controller
        # first and orphan the ALB.
        networking.Ingress(
            f"{name}-ingress",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=object_name,
                namespace=args.backend.namespace,
                labels=args.naming.k8s_labels(object_name, COMPONENT),
                annotations=ingress_annotations(
                    certificate_arn=self.certificate_arn,
                    health_check_path=args.backend.health_check_path,
                    # in every stack, like the cluster and the database; a teardown turns it
                    # off before the ALB can go (docs/teardown.md)
                    deletion_protection=True,
                    waf_acl_arn=args.waf_acl_arn,
                ),
            ),
            spec=networking.IngressSpecArgs(
                ingress_class_name=INGRESS_CLASS,
                tls=[networking.IngressTLSArgs(hosts=[args.host])],
                rules=[
                    networking.IngressRuleArgs(
                        host=args.host,
                        http=networking.HTTPIngressRuleValueArgs(
                            paths=[
                                networking.HTTPIngressPathArgs(
                                    path="/",
                                    path_type="Prefix",
                                    backend=networking.IngressBackendArgs(
                                        service=networking.IngressServiceBackendArgs(
                                            name=args.backend.service,
                                            port=networking.ServiceBackendPortArgs(
                                                number=args.backend.port
                                            ),
                                        )
                                    ),
                                )
                            ]
                        ),
                    )
                ],
            ),
            opts=self.child_opts(provider=args.kubernetes),
        )
        self.register()

    def _validated_certificate(
        self, name: str, args: IngressArgs, zone_id: str
    ) -> pulumi.Output[str]:
        """An ACM certificate for the host, DNS-validated in ``zone_id``, with its validation
        record; its ARN once issued, so the Ingress only ever names an issued certificate."""
        certificate = acm.Certificate(
            f"{name}-certificate",
            domain_name=args.host,
            validation_method="DNS",
            key_algorithm=KEY_ALGORITHM,
            tags=args.naming.tags(COMPONENT, "certificate"),
            opts=self.child_opts(),
        )
        # One domain (no alternative names), so exactly one validation option and record.
        option = certificate.domain_validation_options.apply(
            lambda options: next(o for o in options if o.domain_name == args.host)
        )
        record = route53.Record(
            f"{name}-validation",
            zone_id=zone_id,
            name=option.apply(lambda o: o.resource_record_name or ""),
            type=option.apply(lambda o: o.resource_record_type or "CNAME"),
            records=[option.apply(lambda o: o.resource_record_value or "")],
            ttl=VALIDATION_TTL,
            # A certificate re-created for the same host gets the same record: take it over.
            allow_overwrite=True,
            opts=self.child_opts(),
        )
        validation = acm.CertificateValidation(
            f"{name}-certificate-validation",
            certificate_arn=certificate.arn,
            validation_record_fqdns=[record.fqdn],
            opts=self.child_opts(),
        )
        return validation.certificate_arn
