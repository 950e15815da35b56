"""The resource graph as the engine sees it: unique URNs, and parents, dependencies and
provider references that name registered resources.

The mock runtime accepts a second registration of the same URN and a dependency on anything;
the engine refuses both ("Duplicate resource URN ...; try giving it a unique name", and a
missing dependency), so ``pulumi preview`` would stop there. Each duplicate is reported with
every place in the program that constructed a resource of that type and name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence

from tools.engine.findings import Finding
from tools.mocks import CapturedResource


def check_graph(
    resources: Sequence[CapturedResource],
    stack_urn: str,
    sites: Mapping[tuple[str, str], Sequence[str]],
) -> Iterator[Finding]:
    counts = Counter(r.urn for r in resources)
    reported: set[str] = set()
    for resource in resources:
        if counts[resource.urn] > 1 and resource.urn not in reported:
            reported.add(resource.urn)
            places = sites.get((resource.type, resource.name), ())
            where = "; registered at " + ", ".join(places) if places else ""
            yield Finding.error(
                resource,
                "",
                f"duplicate resource URN {resource.urn} ({counts[resource.urn]} registrations)"
                f"{where}; give each a unique name",
            )
    known = {r.urn for r in resources} | {stack_urn}
    for resource in resources:
        for label, urn in _references(resource):
            if urn not in known:
                yield Finding.error(resource, "", f"{label} {urn} is not a registered resource")


def _references(resource: CapturedResource) -> Iterator[tuple[str, str]]:
    if resource.parent:
        yield "parent", resource.parent
    if resource.provider:
        yield "provider", resource.provider.rsplit("::", 1)[0]
    for urn in resource.dependencies:
        yield "dependency", urn
    for key, urns in resource.property_dependencies.items():
        for urn in urns:
            yield f"dependency of input {key!r}", urn
