"""Pure subnet planning: carves the VPC CIDR into public, private and isolated subnets.

No Pulumi here, so the plan is property-tested on its own (tests/test_subnets.py) and the
settings module can reject a plan that does not fit before any resource is registered.

Layout rules, chosen so that a stack never has to replace a subnet:

* Every tier gets a block of ``MAX_ZONES`` equal slots, and zone *i* of the stack's list always
  takes slot *i*. Adding a third zone to a two-zone stack therefore adds subnets and leaves the
  existing ones where they were.
* Tier blocks are laid out largest subnet first (ties in tier order), one after another from the
  start of the VPC. Because each block is a whole number of its own subnets, and later tiers have
  subnets no larger, every subnet starts on its natural boundary with no padding.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

MAX_ZONES = 3
"""Slots reserved per tier: a stack may use 2 or 3 availability zones."""

SMALLEST_SUBNET_PREFIX = 28
"""AWS refuses subnets smaller than a /28."""


class Tier(StrEnum):
    """Subnet tiers, in the order used to break ties between equal subnet sizes."""

    PUBLIC = "public"
    """Load balancers and NAT gateways; default route to the internet gateway."""
    PRIVATE = "private"
    """Nodes and pods; default route through a NAT gateway."""
    ISOLATED = "isolated"
    """RDS and ElastiCache; no route out of the VPC."""


@dataclass(frozen=True, order=True)
class SubnetPlan:
    """One planned subnet."""

    tier: Tier
    zone: str
    slot: int
    cidr: str


class SubnetPlanError(ValueError):
    """The requested subnets cannot be carved out of the VPC CIDR."""


def plan_subnets(
    vpc_cidr: str, zones: Sequence[str], prefixes: Mapping[Tier, int]
) -> tuple[SubnetPlan, ...]:
    """Return one subnet per tier per zone, deterministic for the same arguments.

    Raises SubnetPlanError when the CIDR is malformed, a prefix is out of range, there are too
    many zones, or the blocks do not fit in the VPC.
    """
    try:
        vpc = ipaddress.IPv4Network(vpc_cidr, strict=True)
    except ValueError as exc:
        raise SubnetPlanError(f"{vpc_cidr!r} is not an IPv4 network CIDR: {exc}") from exc
    if not zones:
        raise SubnetPlanError("at least one availability zone is needed")
    if len(zones) > MAX_ZONES:
        raise SubnetPlanError(f"at most {MAX_ZONES} availability zones, got {len(zones)}")
    if len(set(zones)) != len(zones):
        raise SubnetPlanError(f"availability zones must be distinct, got {list(zones)}")
    missing = [tier for tier in Tier if tier not in prefixes]
    if missing:
        raise SubnetPlanError(f"no prefix length for tier(s) {', '.join(missing)}")
    for tier in Tier:
        prefix = prefixes[tier]
        if not vpc.prefixlen < prefix <= SMALLEST_SUBNET_PREFIX:
            raise SubnetPlanError(
                f"{tier} prefix /{prefix} must be longer than the VPC's /{vpc.prefixlen} "
                f"and at most /{SMALLEST_SUBNET_PREFIX}"
            )

    needed = sum(MAX_ZONES * 2 ** (32 - prefixes[tier]) for tier in Tier)
    if needed > vpc.num_addresses:
        raise SubnetPlanError(
            f"{MAX_ZONES} slots per tier of /{prefixes[Tier.PUBLIC]} public, "
            f"/{prefixes[Tier.PRIVATE]} private and /{prefixes[Tier.ISOLATED]} isolated "
            f"subnets need {needed} addresses; {vpc} has {vpc.num_addresses}"
        )

    order = sorted(Tier, key=lambda tier: (prefixes[tier], list(Tier).index(tier)))
    cursor = int(vpc.network_address)
    plans: list[SubnetPlan] = []
    for tier in order:
        size = 2 ** (32 - prefixes[tier])
        for slot in range(MAX_ZONES):
            if slot < len(zones):
                network = ipaddress.IPv4Network((cursor, prefixes[tier]))
                plans.append(SubnetPlan(tier, zones[slot], slot, str(network)))
            cursor += size
    return tuple(sorted(plans, key=lambda p: (list(Tier).index(p.tier), p.slot)))
