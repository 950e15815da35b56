"""NetworkPolicy contents: what the rules admit, not only whether pods are selected
(``k8s-netpol-coverage``).

* ``k8s-netpol-no-admit-all`` — no rule admitting every source or destination: a rule without
  peers, or a peer of every address (``0.0.0.0/0``, ``::/0``) with no ports;
* ``k8s-netpol-internet-egress`` — egress to public addresses only on the listed ports;
* ``k8s-netpol-default-deny`` (stack) — every namespace the stack creates denies all ingress
  and egress by default, so an allowance is the only way in or out.

``tests/test_network_policies.py`` computes the reachability matrix of the real stacks; these
rules keep a later change from opening it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from typing import Any, Final

from pulumi_policy import PolicyResource, ResourceValidationArgs, StackValidationArgs

from .kube import k8s_kind, object_ref
from .policy_config import Config, Setting, exempted, exemptions, reasoned_list
from .registry import HIGH, MEDIUM, Violation, resource_policy, stack_policy
from .resources import (
    each,
    get,
    has_key,
    is_list,
    is_map,
    is_world_cidr,
    known,
    maps,
    strings,
    text,
)

DOMAIN = "network-policy"
NETWORK_POLICY = "NetworkPolicy"
DIRECTIONS: Final = (("ingress", "from", "Ingress"), ("egress", "to", "Egress"))
NON_PUBLIC: Final = tuple(
    ipaddress.ip_network(c)
    for c in (
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
        "127.0.0.0/8", "fc00::/7", "fe80::/10", "::1/128",
    )
)  # fmt: skip
"""Address ranges that are not the internet (RFC 1918, shared, link-local, loopback, ULA)."""


def _is_network_policy(resource_type: str) -> bool:
    return k8s_kind(resource_type) == NETWORK_POLICY


def _rules(props: Mapping[str, Any], direction: str) -> list[Mapping[str, Any]]:
    return maps(props, "spec", direction)


def _cidrs(rule: Mapping[str, Any], peers_key: str) -> list[str]:
    return [text(p, "ipBlock", "cidr") for p in maps(rule, peers_key) if text(p, "ipBlock", "cidr")]


def _ports(rule: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(protocol, port)`` of each port of a rule (TCP when unset, as Kubernetes defaults)."""
    return [(text(p, "protocol") or "TCP", _port(get(p, "port"))) for p in maps(rule, "ports")]


def _port(value: Any) -> str:
    """A port as text: numbers arrive as doubles over the protocol; names stay names."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(int(value))
    return value if isinstance(value, str) else ""


def is_public(cidr: str) -> bool:
    """Whether a CIDR reaches any address outside the private, shared and local ranges."""
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    return not any(
        network.version == private.version and network.subnet_of(private)  # type: ignore[arg-type]
        for private in NON_PUBLIC
    )


@resource_policy(
    "k8s-netpol-no-admit-all",
    severity=HIGH,
    domain=DOMAIN,
    description="No NetworkPolicy rule may admit every source or destination: an ingress rule "
    "without 'from' peers, an egress rule without 'to' peers, or a peer of every address "
    "(0.0.0.0/0, ::/0) in a rule that lists no ports.",
    remediation="Name the peers (pod and namespace selectors, or the subnets' CIDRs) with "
    "components.lib.kube network-policy Allowances; internet egress lists its ports.",
    settings=[
        exemptions(
            "allowed",
            "object",
            "NetworkPolicies (namespace/name patterns) that may admit every peer.",
        )
    ],
)
def k8s_netpol_no_admit_all(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if not _is_network_policy(args.resource_type):
        return
    if exempted(config, "allowed", "object", object_ref(args.props)):
        return
    for direction, peers_key, _type in DIRECTIONS:
        for index, rule in enumerate(_rules(args.props, direction)):
            peers = get(rule, peers_key)
            if not is_list(peers) or len(peers) == 0:
                yield f"{direction} rule {index} has no '{peers_key}': it admits every peer."
                continue
            world = [c for c in _cidrs(rule, peers_key) if is_world_cidr(c)]
            if world and not _ports(rule):
                yield f"{direction} rule {index} admits {world[0]} on every port."


@resource_policy(
    "k8s-netpol-internet-egress",
    severity=HIGH,
    domain=DOMAIN,
    description="Egress to public addresses (any CIDR outside the private, shared and "
    "link-local ranges) only on the ports the configuration lists.",
    remediation="Reach AWS through the VPC endpoints or on HTTPS (443); add a port to "
    "k8s-netpol-internet-egress.allowedPorts only with its reason.",
    settings=[
        Setting(
            "allowedPorts",
            reasoned_list(
                {"port": {"type": "integer"}, "protocol": {"enum": ["TCP", "UDP", "SCTP"]}},
                ["port", "protocol"],
            ),
            [{"port": 443, "protocol": "TCP", "reason": "HTTPS to AWS APIs"}],
            "Ports (with protocol) pods may reach on public addresses, each with the reason.",
        )
    ],
)
def k8s_netpol_internet_egress(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if not _is_network_policy(args.resource_type):
        return
    allowed = {
        (text(e, "protocol"), str(int(get(e, "port", default=0))))
        for e in config.entries("allowedPorts")
    }
    for index, rule in enumerate(_rules(args.props, "egress")):
        public = [c for c in _cidrs(rule, "to") if is_public(c)]
        if not public:
            continue
        ports = _ports(rule)
        if not ports:
            if not any(is_world_cidr(c) for c in public):  # every address: no-admit-all's
                yield f"egress rule {index} reaches {public[0]} on every port."
            continue
        for protocol, port in ports:
            if (protocol, port) not in allowed:
                yield f"egress rule {index} reaches {public[0]} on {protocol} {port or 'any'}."


def _denies(policy: PolicyResource) -> set[str]:
    """The policy types a NetworkPolicy denies for every pod of its namespace: it selects all
    pods and lists the type with no rules."""
    props = policy.props
    selector = get(props, "spec", "podSelector")
    if not is_map(selector) or maps(selector, "matchExpressions") or get(selector, "matchLabels"):
        return set()
    denied = set()
    for direction, _peers, policy_type in DIRECTIONS:
        if policy_type in strings(props, "spec", "policyTypes") and not _rules(props, direction):
            denied.add(policy_type)
    if not has_key(get(props, "spec"), "policyTypes") and not _rules(props, "ingress"):
        denied.add("Ingress")  # Kubernetes' default policyTypes
    return denied


@stack_policy(
    "k8s-netpol-default-deny",
    severity=MEDIUM,
    domain=DOMAIN,
    description="Every namespace the stack creates must deny all ingress and egress by "
    "default (a NetworkPolicy selecting every pod with both policy types and no rules).",
    remediation="Create the namespace's baseline with components.lib.kube.network_policies."
    "namespace_baseline (default-deny plus DNS).",
    settings=[exemptions("exempt", "namespace", "Namespaces of the stack without a default deny.")],
)
def k8s_netpol_default_deny(args: StackValidationArgs, config: Config) -> Iterator[Violation]:
    resources = list(args.resources)
    policies = [r for r in resources if _is_network_policy(r.resource_type)]
    namespaces = [r for r in resources if k8s_kind(r.resource_type) == "Namespace"]

    def check(namespace: PolicyResource) -> Iterator[Violation]:
        name = known(namespace.props, "metadata", "name")
        if isinstance(name, str) and exempted(config, "exempt", "namespace", name):
            return
        denied: set[str] = set()
        for policy in policies:
            if known(policy.props, "metadata", "namespace") == name:
                denied |= _denies(policy)
        missing = sorted({"Ingress", "Egress"} - denied)
        if missing:
            yield f"namespace {name} has no default deny of {' and '.join(missing)}.", namespace.urn

    yield from each(namespaces, check)
