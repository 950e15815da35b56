"""Properties of the subnet plan, checked with hypothesis over many VPC layouts."""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.settings.subnets import MAX_ZONES, SubnetPlanError, Tier, plan_subnets

ZONES = ("eu-west-1a", "eu-west-1b", "eu-west-1c")


@st.composite
def layouts(draw: st.DrawFn) -> tuple[str, tuple[str, ...], dict[Tier, int]]:
    vpc_prefix = draw(st.integers(16, 22))
    base = draw(
        st.sampled_from(
            [ipaddress.IPv4Network("10.0.0.0/8"), ipaddress.IPv4Network("172.16.0.0/12"),
             ipaddress.IPv4Network("192.168.0.0/16")]
        )
    )  # fmt: skip
    vpc_prefix = max(vpc_prefix, base.prefixlen)
    index = draw(st.integers(0, 2 ** (vpc_prefix - base.prefixlen) - 1))
    vpc = ipaddress.IPv4Network(
        (int(base.network_address) + index * 2 ** (32 - vpc_prefix), vpc_prefix)
    )
    zone_count = draw(st.integers(1, MAX_ZONES))
    prefixes = {tier: draw(st.integers(vpc_prefix + 1, 28)) for tier in Tier}
    return str(vpc), ZONES[:zone_count], prefixes


def _fits(vpc: str, prefixes: dict[Tier, int]) -> bool:
    needed = sum(MAX_ZONES * 2 ** (32 - p) for p in prefixes.values())
    return bool(needed <= ipaddress.IPv4Network(vpc).num_addresses)


@settings(max_examples=400, deadline=None)
@given(layouts())
def test_plan_properties(layout: tuple[str, tuple[str, ...], dict[Tier, int]]) -> None:
    vpc_cidr, zones, prefixes = layout
    if not _fits(vpc_cidr, prefixes):
        with pytest.raises(SubnetPlanError, match="need"):
            plan_subnets(vpc_cidr, zones, prefixes)
        return
    plan = plan_subnets(vpc_cidr, zones, prefixes)
    vpc = ipaddress.IPv4Network(vpc_cidr)
    networks = [ipaddress.IPv4Network(p.cidr) for p in plan]

    # one subnet per tier per zone, of the tier's size
    assert sorted((p.tier, p.zone) for p in plan) == sorted(itertools.product(Tier, zones))
    for p, network in zip(plan, networks, strict=True):
        assert network.prefixlen == prefixes[p.tier]
        # inside the VPC
        assert network.subnet_of(vpc)
    # no overlap
    for a, b in itertools.combinations(networks, 2):
        assert not a.overlaps(b), (a, b)
    # deterministic
    assert plan_subnets(vpc_cidr, zones, prefixes) == plan
    # adding a zone never moves an existing subnet
    if len(zones) < MAX_ZONES:
        grown = plan_subnets(vpc_cidr, ZONES[: len(zones) + 1], prefixes)
        assert set(plan) <= set(grown)


def test_staging_layout_is_the_documented_one() -> None:
    plan = plan_subnets(
        "10.20.0.0/16", ZONES[:2], {Tier.PUBLIC: 22, Tier.PRIVATE: 19, Tier.ISOLATED: 22}
    )
    assert [(p.tier.value, p.zone, p.cidr) for p in plan] == [
        ("public", "eu-west-1a", "10.20.96.0/22"),
        ("public", "eu-west-1b", "10.20.100.0/22"),
        ("private", "eu-west-1a", "10.20.0.0/19"),
        ("private", "eu-west-1b", "10.20.32.0/19"),
        ("isolated", "eu-west-1a", "10.20.108.0/22"),
        ("isolated", "eu-west-1b", "10.20.112.0/22"),
    ]


@pytest.mark.parametrize(
    ("cidr", "zones", "prefixes", "message"),
    [
        ("10.20.0.0/33", ZONES, {t: 24 for t in Tier}, "not an IPv4 network"),
        ("10.20.0.0/16", (), {t: 24 for t in Tier}, "at least one"),
        ("10.20.0.0/16", (*ZONES, "eu-west-1d"), {t: 24 for t in Tier}, "at most 3"),
        ("10.20.0.0/16", ("eu-west-1a", "eu-west-1a"), {t: 24 for t in Tier}, "distinct"),
        ("10.20.0.0/16", ZONES, {Tier.PUBLIC: 24, Tier.PRIVATE: 24}, "isolated"),
        ("10.20.0.0/16", ZONES, {t: 16 for t in Tier}, "longer than"),
        ("10.20.0.0/16", ZONES, {t: 29 for t in Tier}, "at most /28"),
    ],
)
def test_invalid_requests(
    cidr: str, zones: tuple[str, ...], prefixes: dict[Tier, int], message: str
) -> None:
    with pytest.raises(SubnetPlanError, match=message):
        plan_subnets(cidr, zones, prefixes)
