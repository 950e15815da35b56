"""Generic value parsers and the combinators the rules are built from.

A parser takes the raw string the Pulumi CLI hands the program (integers and booleans as text,
arrays as JSON) and returns a typed value, or raises ``InvalidValueError`` saying what a valid
value looks like. Nothing here knows a configuration key or a cloud service.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


class InvalidValueError(ValueError):
    """Raised by a parser: ``expected`` says what a valid value looks like."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


Parser = Callable[[str], T]


# --- Combinators ---------------------------------------------------------------------------


def text(pattern: re.Pattern[str], expected: str) -> Parser[str]:
    def parse(raw: str) -> str:
        if not pattern.fullmatch(raw):
            raise InvalidValueError(expected)
        return raw

    return parse


def optional(parse: Parser[T]) -> Parser[T | None]:
    """The empty string means "not set"; anything else must parse."""

    def wrapped(raw: str) -> T | None:
        return None if raw == "" else parse(raw)

    return wrapped


def choice(enum: type[T]) -> Parser[T]:
    """A member of a StrEnum, by value."""
    values = [member.value for member in enum]  # type: ignore[attr-defined]

    def parse(raw: str) -> T:
        if raw not in values:
            raise InvalidValueError(f"one of {', '.join(values)}")
        return enum(raw)  # type: ignore[call-arg]

    return parse


# --- Scalars and lists ---------------------------------------------------------------------


def integer(minimum: int | None = None, maximum: int | None = None) -> Parser[int]:
    """An integer, optionally within [minimum, maximum]."""
    bounds = (
        f" from {minimum} to {maximum}" if minimum is not None and maximum is not None
        else f" of at least {minimum}" if minimum is not None
        else f" of at most {maximum}" if maximum is not None
        else ""
    )  # fmt: skip

    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise InvalidValueError(f"an integer{bounds}") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise InvalidValueError(f"an integer{bounds}")
        return value

    return parse


def one_of_ints(allowed: Iterable[int], what: str) -> Parser[int]:
    allowed = tuple(allowed)

    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            value = None
        if value not in allowed:
            raise InvalidValueError(f"{what}: one of {', '.join(map(str, allowed))}")
        return value

    return parse


def boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise InvalidValueError("a boolean, true or false")


def string_list(raw: str) -> tuple[str, ...]:
    """A JSON array of strings, as the Pulumi CLI passes array settings."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise InvalidValueError("a list of strings") from None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidValueError("a list of strings")
    return tuple(value)


# --- Internet names and addresses ----------------------------------------------------------

_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)


def port(raw: str) -> int:
    """A TCP/UDP port number."""
    return integer(1, 65535)(raw)


def email(raw: str) -> str:
    return text(_EMAIL, "an email address such as team@example.org")(raw)


def host_name(raw: str) -> str:
    """A fully qualified DNS host name, lower case (the TLS certificate's name)."""
    if raw != raw.lower() or not _HOSTNAME.fullmatch(raw):
        raise InvalidValueError("a lower-case fully qualified host name such as app.example.org")
    return raw


def https_url(raw: str) -> str:
    """An https URL with a real host name (webhooks must be encrypted in transit)."""
    expected = "an https:// URL with a host name, such as https://hooks.example.org/T0/B0"
    match = re.fullmatch(r"https://([^/:?#\s]+)(:\d{1,5})?(/[^\s]*)?", raw)
    if not match or not _HOSTNAME.fullmatch(match.group(1)):
        raise InvalidValueError(expected)
    return raw


def cidr(*, private: bool = False, min_prefix: int = 0, max_prefix: int = 32) -> Parser[str]:
    """An IPv4 CIDR with its host bits zero, optionally in RFC 1918 space and within a prefix
    range."""

    def parse(raw: str) -> str:
        what = "a private (RFC 1918) IPv4 CIDR" if private else "an IPv4 CIDR"
        expected = f"{what} from /{min_prefix} to /{max_prefix}, such as 10.20.0.0/16"
        try:
            network = ipaddress.IPv4Network(raw.strip(), strict=True)
        except ValueError:
            raise InvalidValueError(f"{expected}, with the host bits zero") from None
        if not min_prefix <= network.prefixlen <= max_prefix:
            raise InvalidValueError(expected)
        rfc1918 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
        if private and not any(network.subnet_of(ipaddress.IPv4Network(r)) for r in rfc1918):
            raise InvalidValueError(expected)
        return str(network)

    return parse


def cidr_allowlist(
    *, allow_world: bool = False, allow_empty: bool = False
) -> Parser[tuple[str, ...]]:
    """A JSON array of distinct IPv4 CIDRs; 0.0.0.0/0 only where explicitly allowed."""
    item = cidr()

    def parse(raw: str) -> tuple[str, ...]:
        values = string_list(raw)
        result = []
        for value in values:
            try:
                network = item(value)
            except InvalidValueError:
                raise InvalidValueError(f"a list of IPv4 CIDRs; {value!r} is not one") from None
            if network == "0.0.0.0/0" and not allow_world:
                raise InvalidValueError(
                    "a list of specific CIDRs; 0.0.0.0/0 opens it to the whole internet"
                )
            result.append(network)
        if len(set(result)) != len(result):
            raise InvalidValueError("a list of distinct CIDRs")
        if not result and not allow_empty:
            raise InvalidValueError("at least one CIDR")
        return tuple(result)

    return parse
