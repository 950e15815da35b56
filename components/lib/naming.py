"""Names, tags and labels, decided in one place.

* Physical names: ``exposcholar-<stack>-<component>-<name>``, lower case, so every AWS object
  says which stack and component own it and two stacks never collide in one account.
* AWS tags: the stack-wide map (Project, Environment, ManagedBy, Owner, CostCenter) goes on the
  explicit AWS provider's ``default_tags``; each resource adds ``Component`` and ``Name`` through
  ``Naming.tags``. The policy pack checks the same keys.
* Kubernetes: the recommended ``app.kubernetes.io/*`` labels from ``Naming.k8s_labels``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from components.settings import StackSettings

REQUIRED_TAG_KEYS = ("Project", "Environment", "ManagedBy", "Component", "Owner", "CostCenter")
"""Tags every taggable AWS resource carries (provider defaults plus per-resource tags)."""

_NAME_PART = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class NamingError(ValueError):
    """A name part that would make an invalid or over-long physical name."""


@dataclass(frozen=True)
class Naming:
    """Naming and tagging rules of one stack."""

    project: str
    stack: str
    owner: str
    cost_center: str

    @classmethod
    def for_stack(cls, settings: StackSettings) -> Naming:
        return cls(
            settings.project, settings.stack, settings.account.owner, settings.account.cost_center
        )

    def physical(self, component: str, name: str, *, max_length: int = 63) -> str:
        """``exposcholar-<stack>-<component>-<name>``; refuses parts that are not lower-case
        words joined by dashes, and names longer than the target service allows."""
        for part in (component, name):
            if not _NAME_PART.fullmatch(part):
                raise NamingError(f"name part {part!r} must be lower-case words joined by dashes")
        result = f"{self.project}-{self.stack}-{component}-{name}"
        if len(result) > max_length:
            raise NamingError(f"{result!r} is longer than {max_length} characters")
        return result

    @property
    def cluster_name(self) -> str:
        """The EKS cluster's name: the cluster is created with it, and the subnets are tagged
        with it (``kubernetes.io/cluster/<name>``) before the cluster exists."""
        return self.physical("cluster", "eks", max_length=100)

    def default_tags(self) -> dict[str, str]:
        """Stack-wide tags, applied through the AWS provider's default_tags."""
        return {
            "Project": self.project,
            "Environment": self.stack,
            "ManagedBy": "pulumi",
            "Owner": self.owner,
            "CostCenter": self.cost_center,
        }

    def tags(
        self, component: str, name: str, extra: dict[str, str] | None = None
    ) -> dict[str, str]:
        """Per-resource tags: Component and Name, plus any resource-specific ones."""
        return {"Component": component, "Name": self.physical(component, name), **(extra or {})}

    def k8s_selector(self, name: str) -> dict[str, str]:
        """The labels that select a workload's pods: stable for its life (a Deployment's
        selector is immutable), so version and component are not part of it."""
        return {
            "app.kubernetes.io/name": name,
            "app.kubernetes.io/instance": f"{name}-{self.stack}",
        }

    def k8s_labels(
        self, name: str, component: str, *, version: str | None = None
    ) -> dict[str, str]:
        """Kubernetes recommended labels for an object of this stack (``k8s_selector`` and
        the rest)."""
        labels = {
            **self.k8s_selector(name),
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": self.project,
            "app.kubernetes.io/managed-by": "pulumi",
        }
        if version is not None:
            labels["app.kubernetes.io/version"] = version
        return labels
