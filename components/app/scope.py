"""Where the application's objects go: the ``exposcholar`` namespace, and the names, labels and
metadata every object of the ``Workloads`` component carries, whichever module creates it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.lib.naming import Naming

COMPONENT = "app"
NAMESPACE = "exposcholar"
SERVER = "server"
EDGE = "edge"
"""The nginx in front of the server (``components.app.edge``)."""


@dataclass(frozen=True)
class AppScope:
    """The component's name (every resource name starts with it), its namespace and naming."""

    name: str
    namespace: pulumi.Output[str]
    """The namespace object's name: an object that uses it is created after the namespace."""
    naming: Naming
    component: str = COMPONENT
    """``app.kubernetes.io/component`` of the objects."""

    def labels(self, part: str) -> dict[str, str]:
        return self.naming.k8s_labels(part, self.component)

    def selector(self, part: str = SERVER) -> dict[str, str]:
        return self.naming.k8s_selector(part)

    def meta(
        self, name: pulumi.Input[str], part: str, annotations: Mapping[str, str] | None = None
    ) -> k8s.meta.v1.ObjectMetaArgs:
        """Metadata of an object named ``name`` in the namespace, labelled as ``part``."""
        return k8s.meta.v1.ObjectMetaArgs(
            name=name,
            namespace=self.namespace,
            labels=self.labels(part),
            annotations=dict(annotations) if annotations else None,
        )


def after(opts: pulumi.ResourceOptions, *resources: pulumi.Resource) -> pulumi.ResourceOptions:
    """``opts`` that also wait for ``resources``."""
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=list(resources)))
