"""Third-party Helm charts, pinned: one place that says how a chart is installed.

``helm.v4.Chart`` renders the chart in the program, so every object is visible to the policy
pack and to review, but it never runs hooks; ``helm.v3.Release`` is for charts whose hooks
matter (``tools/engine/charts`` records each pinned chart's hooks and values keys and checks
the choice). Versions are exact: a chart upgrade is a reviewed change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class ChartPin:
    """A chart at one exact version from one repository."""

    chart: str
    version: str
    repository: str


def chart(
    resource_name: str,
    pin: ChartPin,
    *,
    namespace: str,
    values: Mapping[str, Any],
    opts: pulumi.ResourceOptions,
    release_name: str | None = None,
) -> k8s.helm.v4.Chart:
    """The chart rendered into plain objects (no hooks run); ``release_name`` fixes the name
    the chart's templates derive object names from."""
    return k8s.helm.v4.Chart(
        resource_name,
        name=release_name,
        chart=pin.chart,
        version=pin.version,
        repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo=pin.repository),
        namespace=namespace,
        values=dict(values),
        opts=opts,
    )


def release(
    resource_name: str,
    pin: ChartPin,
    *,
    namespace: str,
    values: Mapping[str, Any],
    opts: pulumi.ResourceOptions,
    timeout: int = 600,
) -> k8s.helm.v3.Release:
    """A Helm release (hooks run); a failed install or upgrade is rolled back, not left
    half-applied."""
    return k8s.helm.v3.Release(
        resource_name,
        chart=pin.chart,
        version=pin.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=pin.repository),
        namespace=namespace,
        values=dict(values),
        atomic=True,
        cleanup_on_fail=True,
        timeout=timeout,
        opts=opts,
    )
