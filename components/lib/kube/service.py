"""``ServiceBackend``: what an Ingress needs of the Service it sends traffic to.

Produced by whatever serves the public host (today the application's server), consumed by the
Ingress, so neither reaches into the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi


@dataclass(frozen=True)
class ServiceBackend:
    """A Service, the port it serves on and the path load balancers check it with."""

    namespace: pulumi.Output[str]
    service: pulumi.Output[str]
    port: int
    health_check_path: str

    def __post_init__(self) -> None:
        if not self.health_check_path.startswith("/"):
            raise ValueError(f"health_check_path {self.health_check_path!r} must start with /")
