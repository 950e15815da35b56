"""``ServiceBackend``: what a client inside the cluster needs of the Service it sends traffic
to, and of the pods behind it.

Produced by whatever serves (the application's server, the edge), consumed by what sends it
traffic (the edge's upstream and NetworkPolicy, the Ingress), so neither reaches into the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi


@dataclass(frozen=True)
class ServiceBackend:
    """A Service, the port it serves on and the path load balancers check it with."""

    namespace: pulumi.Output[str]
    service: pulumi.Output[str]
    port: int
    health_check_path: str
    pods: Mapping[str, str]
    """The labels selecting the Service's pods (NetworkPolicy peers)."""
    pod_port: int
    """The port the pods listen on behind the Service's ``port`` (NetworkPolicies see it)."""

    def __post_init__(self) -> None:
        if not self.health_check_path.startswith("/"):
            raise ValueError(f"health_check_path {self.health_check_path!r} must start with /")
        if not self.pods:
            raise ValueError("pods must select the Service's pods (an empty selector is all)")
        if not 0 < self.pod_port < 65536:
            raise ValueError(f"pod_port {self.pod_port} is not a port")
