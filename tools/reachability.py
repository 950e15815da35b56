"""Who may reach whom, computed from rendered NetworkPolicy manifests alone.

A small, literal model of the NetworkPolicy semantics (networking.k8s.io/v1): a pod is
isolated for ingress (egress) when some policy in its namespace selects it and lists
``Ingress`` (``Egress``) in ``policyTypes``; an isolated pod admits (opens) a connection when
at least one selecting policy has a rule whose peers and ports match. Traffic flows when the
source's egress and the destination's ingress both allow it. Peers: ``podSelector`` and
``namespaceSelector`` (``matchLabels`` only: our policies use nothing else, and anything else
is refused rather than guessed), and ``ipBlock`` (which also matches pod addresses: on EKS,
pods have VPC addresses in the private subnets).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

NAMESPACE_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Endpoint:
    """A pod (``namespace`` set) or an address outside the cluster."""

    name: str
    address: str
    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    named_ports: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Policies:
    """The NetworkPolicies and Namespaces of a set of manifests."""

    policies: tuple[dict[str, Any], ...]
    namespace_labels: Mapping[str, Mapping[str, str]]

    @classmethod
    def from_documents(cls, documents: Iterable[Mapping[str, Any]]) -> Policies:
        policies, namespaces = [], {}
        for document in documents:
            if document["kind"] == "NetworkPolicy":
                policies.append(dict(document))
            elif document["kind"] == "Namespace":
                metadata = document["metadata"]
                namespaces[metadata["name"]] = dict(metadata.get("labels") or {})
        return cls(tuple(policies), namespaces)

    def labels_of(self, namespace: str) -> dict[str, str]:
        return {**self.namespace_labels.get(namespace, {}), NAMESPACE_LABEL: namespace}

    def allows(self, source: Endpoint, target: Endpoint, port: int, protocol: str = "TCP") -> bool:
        return self._direction(source, target, port, protocol, "Egress") and self._direction(
            target, source, port, protocol, "Ingress"
        )

    def _direction(
        self, pod: Endpoint, other: Endpoint, port: int, protocol: str, kind: str
    ) -> bool:
        """Whether ``pod``'s ``kind`` side lets the connection with ``other`` through."""
        if pod.namespace is None:
            return True  # outside the cluster: no NetworkPolicy applies
        selecting = [
            p for p in self.policies
            if p["metadata"]["namespace"] == pod.namespace
            and kind in p["spec"].get("policyTypes", ["Ingress"])
            and _matches(p["spec"]["podSelector"], pod.labels)
        ]  # fmt: skip
        if not selecting:
            return True
        rules_key, peers_key = ("egress", "to") if kind == "Egress" else ("ingress", "from")
        target = other if kind == "Egress" else pod
        for policy in selecting:
            for rule in policy["spec"].get(rules_key) or []:
                if not _port_matches(rule.get("ports"), target, port, protocol):
                    continue
                peers = rule.get(peers_key)
                if not peers or any(
                    self._peer_matches(peer, other, policy["metadata"]["namespace"])
                    for peer in peers
                ):
                    return True
        return False

    def _peer_matches(self, peer: Mapping[str, Any], other: Endpoint, own: str) -> bool:
        if "ipBlock" in peer:
            block = peer["ipBlock"]
            address = ipaddress.ip_address(other.address)
            inside = address in ipaddress.ip_network(block["cidr"])
            excluded = any(address in ipaddress.ip_network(e) for e in block.get("except", []))
            return inside and not excluded
        if other.namespace is None:
            return False
        if "namespaceSelector" in peer:
            if not _matches(peer["namespaceSelector"], self.labels_of(other.namespace)):
                return False
        elif other.namespace != own:
            return False
        return _matches(peer.get("podSelector", {}), other.labels)


def _matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    unsupported = set(selector) - {"matchLabels"}
    if unsupported:
        raise ValueError(f"selector fields not modelled: {sorted(unsupported)}")
    wanted = selector.get("matchLabels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def _port_matches(
    ports: list[Mapping[str, Any]] | None, target: Endpoint, port: int, protocol: str
) -> bool:
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        number = entry.get("port")
        if number is None:
            return True
        if isinstance(number, str):
            number = target.named_ports.get(number)
        end = entry.get("endPort", number)
        if number is not None and number <= port <= end:
            return True
    return False
