"""The edge's configuration as the offline preview rendered it: the files of the edge
ConfigMap in a captured plan, written to ``build/<stack>/edge/`` by the preview's ``edge``
stage and run by ``python -m tools.edge``."""

from __future__ import annotations

from tools.mocks import CapturedResource
from tools.plan import Plan

EDGE_TYPE = "exposcholar:edge:Edge"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"


class NoEdgeError(LookupError):
    """The plan has no edge, or its ConfigMap's data is not known."""


def edge_config_map(plan: Plan) -> CapturedResource:
    """The edge's ConfigMap: the one ConfigMap among the Edge component's children."""
    edges = plan.of_type(EDGE_TYPE)
    if len(edges) != 1:
        raise NoEdgeError(f"expected one {EDGE_TYPE} in the plan, found {len(edges)}")
    maps = [r for r in plan.children(edges[0].urn) if r.type == CONFIG_MAP]
    if len(maps) != 1:
        raise NoEdgeError(f"expected one ConfigMap under the edge, found {len(maps)}")
    return maps[0]


def edge_files(plan: Plan) -> dict[str, str]:
    """File name to content, exactly the ConfigMap's ``data``."""
    data = edge_config_map(plan).inputs.get("data")
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise NoEdgeError("the edge ConfigMap's data is not a known map of file contents")
    return dict(data)
