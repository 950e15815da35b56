"""How traffic reaches the cluster: Ingresses terminate TLS for every host they route and
carry no raw proxy configuration; Services are not NodePort, externalIPs or unlisted
LoadBalancers, so traffic enters only through the Ingress.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from pulumi_policy import ResourceValidationArgs

from .kube import k8s_group, k8s_kind, labels_of, object_ref
from .policy_config import Config, Setting, reasoned_list
from .registry import MEDIUM, resource_policy
from .resources import json_document, maps, strings, text

DOMAIN = "kubernetes"


def _host_covered(host: str, tls_hosts: Sequence[str]) -> bool:
    for pattern in tls_hosts:
        if pattern == host:
            return True
        if pattern.startswith("*.") and host.partition(".")[2] == pattern[2:]:
            return True
    return False


ALB = "alb.ingress.kubernetes.io/"


def _alb_problems(annotations: Mapping[str, str]) -> Iterator[str]:
    listeners = json_document(annotations.get(f"{ALB}listen-ports", ""))
    entries = listeners if isinstance(listeners, list) else []
    protocols = {str(k) for entry in entries if isinstance(entry, dict) for k in entry}
    if "HTTP" in protocols and f"{ALB}ssl-redirect" not in annotations:
        yield "the ALB listens on HTTP without ssl-redirect."


@resource_policy(
    "k8s-ingress-tls",
    severity=MEDIUM,
    domain=DOMAIN,
    description="Ingresses must terminate TLS for every host they route, redirect plain HTTP, "
    "and carry no configuration snippets.",
    remediation="Add spec.tls covering each rule's host (and, for the ALB, the certificate and "
    "ssl-redirect annotations); remove *-snippet annotations.",
)
def k8s_ingress_tls(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    if k8s_kind(args.resource_type) != "Ingress" or k8s_group(args.resource_type) not in (
        "networking.k8s.io",
        "extensions",
    ):
        return
    props = args.props
    tls = maps(props, "spec", "tls")
    if not tls:
        yield "spec.tls is not set: the Ingress serves plain HTTP."
    tls_hosts = [h for entry in tls for h in strings(entry, "hosts")]
    for rule in maps(props, "spec", "rules"):
        host = text(rule, "host")
        if tls and host and not _host_covered(host, tls_hosts):
            yield f"host {host} is not covered by spec.tls."
    annotations = labels_of(props, "metadata", "annotations")
    for key in annotations:
        if key.endswith(("-snippet", "-snippets")):
            yield f"annotation {key} injects raw proxy configuration."
    yield from _alb_problems(annotations)


@resource_policy(
    "k8s-service-exposure",
    severity=MEDIUM,
    domain=DOMAIN,
    description="Services must not be NodePort, use externalIPs, or be LoadBalancer unless "
    "allowlisted: traffic enters through the Ingress.",
    remediation="Use type ClusterIP behind the Ingress; if a load balancer Service is really "
    "needed, add namespace/name to k8s-service-exposure.loadBalancers with the reason.",
    settings=[
        Setting(
            "loadBalancers",
            reasoned_list({"service": {"type": "string"}}, ["service"]),
            [],
            "Services (namespace/name) allowed to be of type LoadBalancer.",
        )
    ],
)
def k8s_service_exposure(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if args.resource_type != "kubernetes:core/v1:Service":
        return
    props = args.props
    kind = text(props, "spec", "type") or "ClusterIP"
    allowed = {text(e, "service") for e in config.entries("loadBalancers")}
    if kind == "NodePort":
        yield "type NodePort opens a port on every node."
    elif kind == "LoadBalancer" and object_ref(props) not in allowed:
        yield f"type LoadBalancer is not allowlisted for {object_ref(props)}."
    if strings(props, "spec", "externalIPs"):
        yield "spec.externalIPs is set."
