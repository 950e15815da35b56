"""Reading resources: property access that tolerates missing keys and wrong shapes, the
SDK's unknown values during preview, and how stack resources refer to each other.

Resource checks read **inputs** (``args.props``), stack checks **outputs**; both arrive behind
the SDK's unknown-checking proxy, where reading an unknown raises ``UnknownValueError`` (reported
as "can't run policy during preview"). Checks let it propagate when the value decides the
outcome, and use ``present`` or ``known`` when only presence or identity matters.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, TypeVar

from pulumi_policy import PolicyResource
from pulumi_policy.proxy import UnknownValueError

_MISSING: Final = object()


def is_map(value: Any) -> bool:
    return isinstance(value, Mapping)


def is_list(value: Any) -> bool:
    """A JSON array (the SDK's proxies are ``Sequence``s, not ``list``s)."""
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def get(value: Any, *path: str | int, default: Any = None) -> Any:
    """``value[path[0]][path[1]]...``, or ``default`` when a step is missing, ``None`` or of the
    wrong shape. An unknown value on the way raises ``UnknownValueError`` (the proxy's)."""
    current = value
    for step in path:
        if isinstance(step, str):
            if not is_map(current) or step not in _keys(current):
                return default
        elif not is_list(current) or not -len(current) <= step < len(current):
            return default
        current = current[step]
        if current is None:
            return default
    return current


def _keys(mapping: Mapping[str, Any]) -> Iterable[str]:
    # ``key in proxy`` would read the value (and raise on unknowns); iterating keys does not.
    return list(iter(mapping))


def known(value: Any, *path: str | int, default: Any = None) -> Any:
    """``get``, with an unknown value read as ``default``: for values that only identify or
    match resources (ids, names), where an unknown must not stop a check."""
    try:
        return get(value, *path, default=default)
    except UnknownValueError:
        return default


T = TypeVar("T")
V = TypeVar("V")


def each(subjects: Iterable[T], check: Callable[[T], Iterable[V]]) -> Iterator[V]:
    """``check`` every subject of a stack policy; a subject whose deciding value is unknown
    (during preview) does not stop the others: the first ``UnknownValueError`` is raised
    after all subjects were checked, and the SDK reports it as "can't run during preview"
    next to the violations found."""
    pending: UnknownValueError | None = None
    for subject in subjects:
        try:
            found = list(check(subject))
        except UnknownValueError as error:
            pending = pending or error
            continue
        yield from found
    if pending is not None:
        raise pending


def has_key(value: Any, key: str) -> bool:
    """Whether the map has ``key`` at all (without reading its value, which may be unknown)."""
    return is_map(value) and key in _keys(value)


def plain(value: Any) -> Any:
    """A plain ``dict``/``list`` copy of a (proxied) value, for comparing whole blocks."""
    if is_map(value):
        return {str(k): plain(value[k]) for k in _keys(value)}
    if is_list(value):
        return [plain(item) for item in value]
    return value


def present(value: Any, *path: str | int) -> bool:
    """Whether a non-empty value is set at ``path``: an unknown counts as set (it will be)."""
    try:
        found = get(value, *path, default=_MISSING)
    except UnknownValueError:
        return True
    if found is _MISSING or found == "" or (is_list(found) and len(found) == 0):
        return False
    return not (is_map(found) and len(found) == 0)


def maps(value: Any, *path: str | int) -> list[Mapping[str, Any]]:
    """The list at ``path`` (or the single map, for schemas that have both shapes), keeping
    only its map entries."""
    found = get(value, *path)
    if is_map(found):
        return [found]
    if is_list(found):
        return [item for item in found if is_map(item)]
    return []


def strings(value: Any, *path: str | int) -> list[str]:
    """The list of strings at ``path`` (a single string counts as a list of one)."""
    found = get(value, *path)
    if isinstance(found, str):
        return [found]
    if is_list(found):
        return [item for item in found if isinstance(item, str)]
    return []


def as_bool(value: Any) -> bool | None:
    """A boolean, also from the ``"true"``/``"false"`` strings some AWS schemas use."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def flag(value: Any, *path: str | int) -> bool | None:
    """The boolean at ``path``; ``None`` when it is not set (or not a boolean)."""
    return as_bool(get(value, *path))


def number(value: Any, *path: str | int) -> float | None:
    """The number at ``path`` (protobuf carries every number as a double); ``None`` if unset."""
    found = get(value, *path)
    if isinstance(found, bool):
        return None
    if isinstance(found, int | float):
        return float(found)
    if isinstance(found, str):
        try:
            return float(found)
        except ValueError:
            return None
    return None


def text(value: Any, *path: str | int) -> str:
    """The string at ``path``, or ``""``."""
    found = get(value, *path)
    return found if isinstance(found, str) else ""


def is_world_cidr(cidr: str) -> bool:
    """``0.0.0.0/0``, ``::/0`` or any other spelling of "every address"."""
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen == 0
    except ValueError:
        return False


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def json_document(value: Any) -> Any:
    """A JSON document given either as a string (IAM/bucket policies, provider config) or
    already as data; ``None`` when it does not parse."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def referenced(resource: PolicyResource, prop: str) -> list[PolicyResource]:
    """The resources ``prop`` of ``resource`` was computed from (its property dependencies)."""
    return list(resource.property_dependencies.get(prop, []))


def refers_to(
    resource: PolicyResource, prop: str, target: PolicyResource, target_ids: Iterable[str]
) -> bool:
    """Whether ``resource.prop`` points at ``target``: through the property's dependencies,
    or (when those are not recorded) by value, against the target's ids and names."""
    if any(dep.urn == target.urn for dep in referenced(resource, prop)):
        return True
    value = known(resource.props, prop)
    return isinstance(value, str) and value != "" and value in set(target_ids)
