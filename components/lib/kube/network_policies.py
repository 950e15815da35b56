"""NetworkPolicies: default deny in every namespace the program creates, and the one way a
component declares the traffic its pods need.

``namespace_baseline`` denies all traffic to and from every pod of a namespace but DNS to
CoreDNS; ``allow`` turns an ``Allowance``, declared in the component's own module, into a policy
that lets the pods it selects reach, or be reached by, each ``Peer`` (pods or address blocks) on
named ports. The VPC CNI's network policy agent enforces them (``components.eks.addons``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.lib.naming import Naming

NAMESPACE_LABEL = "kubernetes.io/metadata.name"
ANYWHERE = "0.0.0.0/0"
DNS = {"k8s-app": "kube-dns"}
MONITORING_NAMESPACE = "monitoring"
PROMETHEUS = {"app.kubernetes.io/name": "prometheus"}
"""Where scrapes come from: Prometheus pods with these labels in ``MONITORING_NAMESPACE`` (not
deployed by this program)."""
BLACKBOX = {"app.kubernetes.io/name": "blackbox-exporter"}
"""Where health probes come from: the blackbox exporter's pods in ``MONITORING_NAMESPACE``."""

networking = k8s.networking.v1


@dataclass(frozen=True)
class Port:
    number: int | str
    protocol: str = "TCP"


@dataclass(frozen=True)
class Peer:
    """One side of a connection: pods (``pods`` labels in ``namespace``, matched by its
    ``kubernetes.io/metadata.name`` label, which the API server sets; ``namespace`` None means
    the policy's own) or address blocks (``cidrs``: load balancer or data subnets, ``ANYWHERE``
    for AWS APIs over HTTPS), on ``ports``."""

    ports: tuple[Port, ...]
    pods: Mapping[str, str] | None = None
    namespace: str | None = None
    cidrs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.pods is None) == (not self.cidrs):
            raise ValueError("a Peer is either pods or address blocks")
        if not self.ports:
            raise ValueError("a Peer names its ports: no allowance opens every port")

    @classmethod
    def monitoring(cls, port: int | str) -> Peer:
        """Prometheus scraping ``port``."""
        return cls((Port(port),), pods=PROMETHEUS, namespace=MONITORING_NAMESPACE)

    @classmethod
    def probes(cls, port: int | str) -> Peer:
        """The blackbox exporter probing ``port`` (Prometheus's ``blackbox-internal`` job)."""
        return cls((Port(port),), pods=BLACKBOX, namespace=MONITORING_NAMESPACE)

    @classmethod
    def dns(cls) -> Peer:
        """CoreDNS in kube-system, UDP and TCP 53."""
        return cls((Port(53, "UDP"), Port(53, "TCP")), pods=DNS, namespace="kube-system")

    @classmethod
    def https_anywhere(cls) -> Peer:
        """AWS APIs (and the Kubernetes API) over HTTPS: their addresses are not fixed."""
        return cls((Port(443),), cidrs=(ANYWHERE,))


@dataclass(frozen=True)
class Allowance:
    """The traffic the pods matching ``pods`` may receive (``ingress``) and open (``egress``),
    besides DNS; everything else stays denied."""

    name: str
    pods: Mapping[str, str]
    ingress: tuple[Peer, ...] = ()
    egress: tuple[Peer, ...] = ()


def _peers(peer: Peer) -> list[networking.NetworkPolicyPeerArgs]:
    if peer.cidrs:
        return [
            networking.NetworkPolicyPeerArgs(ip_block=networking.IPBlockArgs(cidr=cidr))
            for cidr in peer.cidrs
        ]
    namespace = (
        k8s.meta.v1.LabelSelectorArgs(match_labels={NAMESPACE_LABEL: peer.namespace})
        if peer.namespace is not None
        else None
    )
    return [
        networking.NetworkPolicyPeerArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(peer.pods or {})),
            namespace_selector=namespace,
        )
    ]


def _ports(peer: Peer) -> list[networking.NetworkPolicyPortArgs]:
    return [
        networking.NetworkPolicyPortArgs(port=p.number, protocol=p.protocol) for p in peer.ports
    ]


def _policy(
    resource_name: str,
    *,
    name: str,
    namespace: pulumi.Input[str],
    pods: Mapping[str, str],
    ingress: Sequence[Peer],
    egress: Sequence[Peer],
    labels: Mapping[str, str],
    opts: pulumi.ResourceOptions,
) -> networking.NetworkPolicy:
    return networking.NetworkPolicy(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=dict(labels)),
        spec=networking.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(pods)),
            policy_types=["Ingress", "Egress"],
            ingress=[
                networking.NetworkPolicyIngressRuleArgs(from_=_peers(peer), ports=_ports(peer))
                for peer in ingress
            ],
            egress=[
                networking.NetworkPolicyEgressRuleArgs(to=_peers(peer), ports=_ports(peer))
                for peer in egress
            ],
        ),
        opts=opts,
    )


def namespace_baseline(
    resource_name: str,
    *,
    namespace: pulumi.Input[str],
    naming: Naming,
    opts: pulumi.ResourceOptions,
) -> list[networking.NetworkPolicy]:
    """Default deny (every pod, both directions) and DNS to CoreDNS for every pod."""
    labels = naming.k8s_labels("network-policy", "security")
    dns = Peer.dns()
    return [
        _policy(f"{resource_name}-default-deny", name="default-deny", namespace=namespace,
                pods={}, ingress=(), egress=(), labels=labels, opts=opts),
        _policy(f"{resource_name}-dns", name="allow-dns", namespace=namespace,
                pods={}, ingress=(), egress=(dns,), labels=labels, opts=opts),
    ]  # fmt: skip


def allow(
    resource_name: str,
    allowance: Allowance,
    *,
    namespace: pulumi.Input[str],
    naming: Naming,
    opts: pulumi.ResourceOptions,
    dns: bool = False,
) -> networking.NetworkPolicy:
    """The NetworkPolicy ``allow-<name>`` for ``allowance``. It names both policy types, so
    the pods it selects are isolated in both directions even in a namespace without our
    baseline (kube-system), where ``dns`` adds their DNS egress."""
    egress = allowance.egress
    if dns:
        egress = (Peer.dns(), *egress)
    return _policy(
        resource_name,
        name=f"allow-{allowance.name}",
        namespace=namespace,
        pods=allowance.pods,
        ingress=allowance.ingress,
        egress=egress,
        labels=naming.k8s_labels("network-policy", "security"),
        opts=opts,
    )
