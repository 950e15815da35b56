"""Helm charts as Pulumi installs them: the table of pinned charts (``charts/*.json``) and the
checks that their values are ones the chart reads and that hooks actually run.

Each table entry records, from the chart's source at the pinned version (repository, path and
commit in the entry's ``source``): its hooks, how it installs CRDs, every values key its
``values.yaml`` defines (plus keys only its templates read), and the maps its templates render
whole (``passthrough``: any sub-key there is used). Two silent failures are refused:

* **a values key the chart does not define**: Helm ignores it without a word, so a setting
  (``installCRDs``, ``cleanupOnDelete``) believed to be on is simply not there;
* **a chart with hooks installed through** ``helm.v4.Chart``: Pulumi's v4 Chart renders the
  templates and never runs hooks (pulumi-kubernetes#3284), so whatever a hook creates (a
  webhook's TLS Secret, a patched ``caBundle``) never exists. ``helm.v3.Release`` runs them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tools.engine.findings import Finding
from tools.mocks import CapturedResource

TABLE_DIR = Path(__file__).resolve().parent / "charts"
CHART_V4 = "kubernetes:helm.sh/v4:Chart"
RELEASE_V3 = "kubernetes:helm.sh/v3:Release"
CHART_TYPES = (CHART_V4, RELEASE_V3, "kubernetes:helm.sh/v3:Chart")
_RUN_HOOKS = {RELEASE_V3}
"""Only a Release runs hooks (through the Helm SDK); both Chart kinds drop them."""
_TEST_HOOKS = {"test", "test-success", "test-failure"}
"""``helm test`` hooks run only when someone runs ``helm test``: their absence changes nothing."""


@dataclass(frozen=True)
class ChartEntry:
    chart: str
    version: str
    repository: str
    source: dict[str, str]
    hooks: tuple[dict[str, str], ...]
    values: dict[str, str]
    passthrough: tuple[str, ...]

    @property
    def install_hooks(self) -> list[dict[str, str]]:
        """Hooks the install or upgrade depends on (test hooks excluded)."""
        return [
            hook
            for hook in self.hooks
            if {part.strip() for part in hook["hook"].split(",")} - _TEST_HOOKS
        ]

    def defines(self, path: str) -> bool:
        """Whether setting ``path`` has an effect: the chart defines it, or it lies under a
        free-form map (an empty default) or a map the templates render whole."""
        if path in self.values:
            return True
        parts = path.split(".")
        for end in range(len(parts) - 1, 0, -1):
            prefix = ".".join(parts[:end])
            if prefix in self.passthrough:
                return True
            kind = self.values.get(prefix)
            if kind is not None:
                return kind == "map" and not any(k.startswith(prefix + ".") for k in self.values)
        return False


class ChartTableError(Exception):
    """A table file that cannot be read: the message names the file and what was expected."""


@cache
def table(folder: Path = TABLE_DIR) -> dict[tuple[str, str], ChartEntry]:
    entries = {}
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
            entry = ChartEntry(
                chart=data["chart"],
                version=data["version"],
                repository=data["repository"],
                source=data["source"],
                hooks=tuple(data["hooks"]),
                values=data["values"],
                passthrough=tuple(data.get("passthrough", ())),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ChartTableError(
                f"{path}: expected a chart table entry (chart, version, repository, source, "
                f"hooks, values) in JSON: {type(exc).__name__}: {exc}"
            ) from None
        entries[(entry.chart, entry.version)] = entry
    return entries


def values_paths(values: Any, prefix: str = "") -> Iterator[str]:
    """Dotted paths of the leaves we set; a list is a leaf (Helm replaces lists whole)."""
    if isinstance(values, dict) and values:
        for key, item in values.items():
            yield from values_paths(item, f"{prefix}.{key}" if prefix else str(key))
    elif prefix:
        yield prefix


def check_charts(
    resources: Sequence[CapturedResource], entries: dict[tuple[str, str], ChartEntry] | None = None
) -> Iterator[Finding]:
    entries = table() if entries is None else entries
    for resource in resources:
        if resource.type not in CHART_TYPES:
            continue
        chart = str(resource.inputs.get("chart", ""))
        version = str(resource.inputs.get("version", ""))
        entry = entries.get((chart, version))
        if entry is None:
            yield Finding.error(
                resource,
                "chart",
                f"chart {chart!r} version {version!r} is not in the chart table "
                f"(tools/engine/charts/): record its hooks and values keys from its source",
            )
            continue
        repository = (resource.inputs.get("repositoryOpts") or {}).get("repo")
        if repository and repository != entry.repository:
            yield Finding.error(
                resource, "repositoryOpts.repo",
                f"{repository!r} is not the repository the table records ({entry.repository!r})",
            )  # fmt: skip
        hooks = entry.install_hooks
        if hooks and resource.type not in _RUN_HOOKS:
            kinds = ", ".join(sorted({f"{h['kind']} ({h['hook']})" for h in hooks}))
            yield Finding.error(
                resource,
                "",
                f"chart {chart} {version} has install hooks ({kinds}) and {resource.type} never "
                "runs hooks: install it with kubernetes.helm.v3.Release or create those objects "
                "in the program",
            )
        for path in values_paths(resource.inputs.get("values") or {}):
            if not entry.defines(path):
                yield Finding.error(
                    resource,
                    f"values.{path}",
                    f"chart {chart} {version} does not define this key: Helm would ignore it",
                )
