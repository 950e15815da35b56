"""Typed, validated stack settings: the only module that reads Pulumi configuration.

``load_settings()`` reads the stack's configuration once and returns a frozen
``StackSettings`` tree (one nested dataclass per concern). Every value is validated before any
resource is registered; all problems are collected and raised together as one
``SettingsError`` whose lines each name the key, the value given and what was expected.
``SettingsError`` is a ``pulumi.RunError``, so the Pulumi CLI prints the message without a
Python traceback.

The parsing itself is the pure function ``parse_settings(stack, raw)`` over the raw string
values the CLI hands to the program (integers and booleans as text, arrays as JSON), so it is
tested without a Pulumi runtime. Defaults live in ``Pulumi.yaml`` (the CLI applies them);
``KEYS`` below must list exactly the keys declared there, which a test enforces.

Stacks differ only in sizes, counts, retention and identity (``KeySpec.varies``); every
safety feature is the same in staging and prod, and is not a setting at all where possible.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import pulumi
from pulumi.runtime import config as runtime_config

from components.subnets import (
    MAX_ZONES,
    SMALLEST_SUBNET_PREFIX,
    SubnetPlanError,
    Tier,
    plan_subnets,
)

PROJECT = "exposcholar"
STACKS = ("staging", "prod")
"""The stacks this program knows; any other stack name is refused."""

ALLOWED_FOREIGN_KEYS = frozenset({"pulumi:disable-default-providers"})
"""Keys outside the project namespace that a stack file may set. Anything else (for example
``aws:region``) would be silently ignored by the explicit providers, so it is an error."""

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# Key declarations (kept equal to the config block of Pulumi.yaml by tests)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeySpec:
    """One configuration key: its declared type and whether stacks may differ in it."""

    name: str
    type: str
    """Type declared in Pulumi.yaml: string, integer, boolean or array."""
    varies: bool
    """True for sizes, counts, retention and identity; False for features, which must match."""
    secret: bool = False


KEYS: tuple[KeySpec, ...] = (
    KeySpec("region", "string", varies=True),
    KeySpec("accountId", "string", varies=True),
    KeySpec("owner", "string", varies=True),
    KeySpec("costCenter", "string", varies=True),
    KeySpec("vpcCidr", "string", varies=True),
    KeySpec("availabilityZones", "array", varies=True),
    KeySpec("publicSubnetPrefix", "integer", varies=True),
    KeySpec("privateSubnetPrefix", "integer", varies=True),
    KeySpec("isolatedSubnetPrefix", "integer", varies=True),
    KeySpec("natGateways", "string", varies=True),
    KeySpec("interfaceEndpoints", "boolean", varies=False),
    KeySpec("flowLogRetentionDays", "integer", varies=True),
    KeySpec("flowLogTrafficType", "string", varies=False),
    KeySpec("alertEmail", "string", varies=True),
    KeySpec("alertWebhookUrl", "string", varies=True, secret=True),
)
KEYS_BY_NAME = {spec.name: spec for spec in KEYS}


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingsProblem:
    """One invalid or missing value."""

    key: str
    """Fully qualified key, e.g. ``exposcholar:vpcCidr``."""
    value: str | None
    """The value as given (``None`` when missing; masked for secrets)."""
    expected: str

    def __str__(self) -> str:
        given = "nothing (the key is not set)" if self.value is None else repr(self.value)
        return f"{self.key}: got {given}; expected {self.expected}"


class SettingsError(pulumi.RunError):
    """All the problems found in a stack's configuration, reported together."""

    def __init__(self, stack: str, problems: Iterable[SettingsProblem]) -> None:
        self.stack = stack
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(
            f"stack {stack!r} has {len(self.problems)} configuration problem(s):\n{lines}"
        )


class InvalidValueError(ValueError):
    """Raised by a parser: ``expected`` says what a valid value looks like."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


Parser = Callable[[str], T]


# --------------------------------------------------------------------------------------------
# Value types
# --------------------------------------------------------------------------------------------


class NatGatewayMode(StrEnum):
    ONE_PER_ZONE = "one-per-zone"
    SINGLE = "single"


class FlowLogTrafficType(StrEnum):
    ALL = "ALL"
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"


@dataclass(frozen=True)
class Secret:
    """A secret setting. Its value never appears in ``repr`` or logs; components turn it into
    a secret Output with ``output()`` so it stays encrypted in state."""

    _value: str = field(repr=False)

    def output(self) -> pulumi.Output[str]:
        return pulumi.Output.secret(self._value)

    def __repr__(self) -> str:
        return "Secret(****)"


# --------------------------------------------------------------------------------------------
# Settings tree
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountSettings:
    region: str
    """AWS region of every regional resource in the stack."""
    account_id: str
    """The only AWS account the provider may act on."""
    owner: str
    """Owner tag: the owning team's mailbox."""
    cost_center: str
    """CostCenter tag."""


@dataclass(frozen=True)
class NetworkSettings:
    vpc_cidr: str
    availability_zones: tuple[str, ...]
    subnet_prefixes: Mapping[Tier, int]
    nat_gateways: NatGatewayMode
    interface_endpoints: bool
    flow_log_retention_days: int
    flow_log_traffic_type: FlowLogTrafficType

    @property
    def nat_gateway_count(self) -> int:
        if self.nat_gateways is NatGatewayMode.SINGLE:
            return 1
        return len(self.availability_zones)


@dataclass(frozen=True)
class AlertingSettings:
    email: str
    webhook_url: Secret


@dataclass(frozen=True)
class StackSettings:
    """Everything the program needs to know about one stack."""

    project: str
    stack: str
    account: AccountSettings
    network: NetworkSettings
    alerting: AlertingSettings

    @property
    def is_production(self) -> bool:
        """Production gets ``protect`` on stateful resources; nothing else keys off this."""
        return self.stack == "prod"


# --------------------------------------------------------------------------------------------
# Reusable parsers (each raises InvalidValueError with what was expected)
# --------------------------------------------------------------------------------------------

CLOUDWATCH_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
"""The retention values CloudWatch Logs accepts (PutRetentionPolicy)."""

_REGION = re.compile(
    r"^[a-z]{2}(-gov|-iso[a-z]?)?-(central|north|south|east|west|northeast|northwest|southeast|southwest)-\d$"
)
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
_COST_CENTER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{1,31}$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_INSTANCE_SIZE = r"(nano|micro|small|medium|large|metal|\d*xlarge|metal-\d+xl)"
_INSTANCE_FAMILY = r"[a-z][a-z0-9-]*\d[a-z0-9-]*"
INSTANCE_TYPE_PATTERNS = {
    "ec2": re.compile(rf"^{_INSTANCE_FAMILY}\.{_INSTANCE_SIZE}$"),
    "rds": re.compile(rf"^db\.{_INSTANCE_FAMILY}\.{_INSTANCE_SIZE}$"),
    "elasticache": re.compile(rf"^cache\.{_INSTANCE_FAMILY}\.{_INSTANCE_SIZE}$"),
}


def text(pattern: re.Pattern[str], expected: str) -> Parser[str]:
    def parse(raw: str) -> str:
        if not pattern.fullmatch(raw):
            raise InvalidValueError(expected)
        return raw

    return parse


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


def choice(enum: type[T]) -> Parser[T]:
    """A member of a StrEnum, by value."""
    values = [member.value for member in enum]  # type: ignore[attr-defined]

    def parse(raw: str) -> T:
        if raw not in values:
            raise InvalidValueError(f"one of {', '.join(values)}")
        return enum(raw)  # type: ignore[call-arg]

    return parse


def port(raw: str) -> int:
    """A TCP/UDP port number."""
    return integer(1, 65535)(raw)


def instance_type(kind: str) -> Parser[str]:
    """An instance type by pattern: ``ec2`` (m7i.large), ``rds`` (db.r7g.large) or
    ``elasticache`` (cache.r7g.large)."""
    example = {"ec2": "m7i.large", "rds": "db.r7g.large", "elasticache": "cache.r7g.large"}[kind]
    return text(INSTANCE_TYPE_PATTERNS[kind], f"an {kind} instance type such as {example}")


def email(raw: str) -> str:
    return text(_EMAIL, "an email address such as team@example.org")(raw)


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


def cidr_allowlist(*, allow_world: bool = False) -> Parser[tuple[str, ...]]:
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
        return tuple(result)

    return parse


def string_list(raw: str) -> tuple[str, ...]:
    """A JSON array of strings, as the Pulumi CLI passes array settings."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise InvalidValueError("a list of strings") from None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidValueError("a list of strings")
    return tuple(value)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


class _Reader:
    """Reads raw values key by key, recording every problem instead of stopping at the first."""

    def __init__(self, raw: Mapping[str, str]) -> None:
        self.raw = raw
        self.problems: list[SettingsProblem] = []

    def problem(self, key: str, expected: str, value: str | None = None) -> None:
        shown = "****" if value is not None and KEYS_BY_NAME.get(key, _PLAIN).secret else value
        self.problems.append(SettingsProblem(f"{PROJECT}:{key}", shown, expected))

    def get(self, key: str, parse: Parser[T]) -> T | None:
        raw = self.raw.get(key)
        if raw is None:
            where = "pulumi config set --secret" if KEYS_BY_NAME[key].secret else "the stack file"
            self.problem(key, f"a value; set it in {where}")
            return None
        try:
            return parse(raw)
        except InvalidValueError as exc:
            self.problem(key, exc.expected, raw)
            return None


_PLAIN = KeySpec("", "string", varies=True)


def parse_settings(stack: str, raw: Mapping[str, str]) -> StackSettings:
    """Validate raw configuration (``namespace:key`` to the string the CLI passes) and build
    the settings tree, or raise SettingsError naming every problem."""
    prefix = f"{PROJECT}:"
    own = {k.removeprefix(prefix): v for k, v in raw.items() if k.startswith(prefix)}
    foreign = sorted(k for k in raw if not k.startswith(prefix))
    reader = _Reader(own)

    if stack not in STACKS:
        reader.problems.append(
            SettingsProblem("stack", stack, f"one of the stacks {', '.join(STACKS)}")
        )
    for key in sorted(set(own) - set(KEYS_BY_NAME)):
        reader.problem(key, "no such key (a typo?); known keys are listed in Pulumi.yaml", own[key])
    for key in foreign:
        if key not in ALLOWED_FOREIGN_KEYS:
            reader.problems.append(
                SettingsProblem(
                    key,
                    raw[key],
                    "no such key: the program configures its providers explicitly from "
                    f"{PROJECT}: keys, so this one would be ignored",
                )
            )

    account = _account(reader)
    network = _network(reader, account.region if account else None)
    alerting = _alerting(reader)

    if reader.problems or account is None or network is None or alerting is None:
        raise SettingsError(stack, reader.problems)
    return StackSettings(PROJECT, stack, account, network, alerting)


def _account(r: _Reader) -> AccountSettings | None:
    region = r.get("region", text(_REGION, "an AWS region name such as eu-west-1"))
    account_id = r.get("accountId", text(_ACCOUNT_ID, "a 12-digit AWS account id"))
    owner = r.get("owner", email)
    cost_center = r.get(
        "costCenter", text(_COST_CENTER, "2 to 32 letters, digits or dashes, such as EXPO-PROD")
    )
    if region is None or account_id is None or owner is None or cost_center is None:
        return None
    return AccountSettings(region, account_id, owner, cost_center)


def _zones(region: str | None) -> Parser[tuple[str, ...]]:
    def parse(raw: str) -> tuple[str, ...]:
        zones = string_list(raw)
        if not 2 <= len(zones) <= MAX_ZONES:
            raise InvalidValueError(f"2 or {MAX_ZONES} availability zones, got {len(zones)}")
        if len(set(zones)) != len(zones):
            raise InvalidValueError("distinct availability zones")
        if region is not None:
            wrong = [z for z in zones if not re.fullmatch(rf"{re.escape(region)}[a-z]", z)]
            if wrong:
                raise InvalidValueError(
                    f"zones of the stack's region {region} (such as {region}a); "
                    f"not in it: {', '.join(wrong)}"
                )
        return zones

    return parse


def _network(r: _Reader, region: str | None) -> NetworkSettings | None:
    vpc_cidr = r.get("vpcCidr", cidr(private=True, min_prefix=16, max_prefix=22))
    zones = r.get("availabilityZones", _zones(region))
    prefix = integer(17, SMALLEST_SUBNET_PREFIX)
    prefixes = {
        Tier.PUBLIC: r.get("publicSubnetPrefix", prefix),
        Tier.PRIVATE: r.get("privateSubnetPrefix", prefix),
        Tier.ISOLATED: r.get("isolatedSubnetPrefix", prefix),
    }
    nat = r.get("natGateways", choice(NatGatewayMode))
    endpoints = r.get("interfaceEndpoints", boolean)
    retention = r.get(
        "flowLogRetentionDays", one_of_ints(CLOUDWATCH_RETENTION_DAYS, "a CloudWatch retention")
    )
    traffic = r.get("flowLogTrafficType", choice(FlowLogTrafficType))

    resolved = {tier: value for tier, value in prefixes.items() if value is not None}
    if vpc_cidr is not None and len(resolved) == len(Tier):
        try:
            plan_subnets(vpc_cidr, zones or ("plan-check",), resolved)
        except SubnetPlanError as exc:
            r.problem(
                "vpcCidr",
                f"room for the subnet plan (publicSubnetPrefix, privateSubnetPrefix, "
                f"isolatedSubnetPrefix): {exc}",
                vpc_cidr,
            )
            return None
    if (
        vpc_cidr is None or zones is None or len(resolved) != len(Tier) or nat is None
        or endpoints is None or retention is None or traffic is None
    ):  # fmt: skip
        return None
    return NetworkSettings(vpc_cidr, zones, resolved, nat, endpoints, retention, traffic)


def _alerting(r: _Reader) -> AlertingSettings | None:
    address = r.get("alertEmail", email)
    webhook = r.get("alertWebhookUrl", https_url)
    if address is None or webhook is None:
        return None
    return AlertingSettings(address, Secret(webhook))


def raw_config_from_pulumi() -> dict[str, str]:
    """Every configuration value the engine gave this program, keyed ``namespace:key``."""
    # pulumi.Config reads one key at a time; to find unknown keys (typos) the whole map is
    # needed, which the SDK keeps in pulumi.runtime.config.
    values: dict[str, Any] = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()
    }


def load_settings() -> StackSettings:
    """Read and validate the current stack's configuration (raises SettingsError)."""
    return parse_settings(pulumi.get_stack(), raw_config_from_pulumi())
