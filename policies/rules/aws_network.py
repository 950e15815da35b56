"""Security groups: no ingress from the whole internet (except an allowlisted port on the load
balancer) and every group and rule described.

Security group rules come in three shapes, all covered: inline ``ingress``/``egress`` blocks
of ``aws:ec2/securityGroup:SecurityGroup`` (and ``DefaultSecurityGroup``), the classic
``aws:ec2/securityGroupRule:SecurityGroupRule`` and the one-rule-per-resource
``aws:vpc/securityGroupIngressRule`` / ``securityGroupEgressRule``. Mixing inline rules with
separate rule resources on one group is a stack policy (``stack_network.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pulumi_policy import ResourceValidationArgs

from .policy_config import Config, Setting, reasoned_list
from .registry import CRITICAL, LOW, resource_policy
from .resources import is_world_cidr, maps, matches_any, number, present, strings, text

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
DEFAULT_SECURITY_GROUP = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
GROUPS = (SECURITY_GROUP, DEFAULT_SECURITY_GROUP)
CLASSIC_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
VPC_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
VPC_EGRESS_RULE = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
RULES = (CLASSIC_RULE, VPC_INGRESS_RULE, VPC_EGRESS_RULE)
PULUMI_DEFAULT_DESCRIPTION = "Managed by Pulumi"
"""What the provider fills in when a group is given no description."""


@dataclass(frozen=True)
class Ingress:
    """One ingress permission, whatever resource shape it came from."""

    protocol: str
    from_port: int | None
    to_port: int | None
    cidrs: tuple[str, ...]

    @property
    def all_ports(self) -> bool:
        return self.protocol in ("-1", "all")

    def world_cidrs(self) -> list[str]:
        return [c for c in self.cidrs if is_world_cidr(c)]

    def describe(self) -> str:
        if self.all_ports:
            return "all traffic"
        if self.from_port == self.to_port:
            return f"{self.protocol} {self.from_port}"
        return f"{self.protocol} {self.from_port}-{self.to_port}"


def _port(value: Any, *path: str) -> int | None:
    found = number(value, *path)
    return None if found is None else int(found)


def _ingress(args: ResourceValidationArgs) -> list[Ingress]:
    props = args.props
    if args.resource_type in GROUPS:
        return [
            Ingress(
                text(rule, "protocol").lower(),
                _port(rule, "fromPort"),
                _port(rule, "toPort"),
                (*strings(rule, "cidrBlocks"), *strings(rule, "ipv6CidrBlocks")),
            )
            for rule in maps(props, "ingress")
        ]
    if args.resource_type == CLASSIC_RULE and text(props, "type") == "ingress":
        return [
            Ingress(
                text(props, "protocol").lower(),
                _port(props, "fromPort"),
                _port(props, "toPort"),
                (*strings(props, "cidrBlocks"), *strings(props, "ipv6CidrBlocks")),
            )
        ]
    if args.resource_type == VPC_INGRESS_RULE:
        cidrs = [c for c in (text(props, "cidrIpv4"), text(props, "cidrIpv6")) if c]
        return [
            Ingress(
                text(props, "ipProtocol").lower(),
                _port(props, "fromPort"),
                _port(props, "toPort"),
                tuple(cidrs),
            )
        ]
    return []


def _names(args: ResourceValidationArgs) -> list[str]:
    """The names an allowlist entry may match: logical name, physical name, Name tag."""
    return [n for n in (args.name, text(args.props, "name"), text(args.props, "tags", "Name")) if n]


def _allowlisted(rule: Ingress, names: list[str], allowed: list[Mapping[str, Any]]) -> bool:
    if rule.all_ports or rule.protocol not in ("tcp", "6"):
        return False
    for entry in allowed:
        port = number(entry, "port")
        patterns = strings(entry, "names")
        if (
            port is not None
            and rule.from_port == rule.to_port == int(port)
            and any(matches_any(name, patterns) for name in names)
        ):
            return True
    return False


@resource_policy(
    "sg-no-world-ingress",
    severity=CRITICAL,
    domain="network",
    description="Security groups must not admit traffic from 0.0.0.0/0 or ::/0, except a port "
    "allowlisted in the policy configuration for the public load balancer.",
    remediation="Admit clients by security group (referencedSecurityGroupId) or by the VPC's "
    "CIDR. Internet traffic enters only through the load balancer's allowlisted listener port.",
    settings=[
        Setting(
            "allowed",
            reasoned_list(
                {
                    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                    "names": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                },
                ["port", "names"],
            ),
            [],
            "World-open TCP ports allowed on groups (or rules) whose logical name, physical "
            "name or Name tag matches one of the glob patterns.",
        )
    ],
)
def sg_no_world_ingress(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    allowed = config.entries("allowed")
    names = _names(args)
    for rule in _ingress(args):
        world = rule.world_cidrs()
        if world and not _allowlisted(rule, names, allowed):
            yield f"ingress {rule.describe()} is open to {', '.join(world)}."


@resource_policy(
    "sg-descriptions",
    severity=LOW,
    domain="network",
    description="Every security group and security group rule must say what it is for.",
    remediation="Give the group a description (not the provider's 'Managed by Pulumi') and "
    "every rule a description naming the traffic it admits.",
)
def sg_descriptions(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    props = args.props
    if args.resource_type == SECURITY_GROUP:
        description = text(props, "description")
        if description in ("", PULUMI_DEFAULT_DESCRIPTION):
            yield "the group has no description of its own."
    if args.resource_type in GROUPS:
        for direction in ("ingress", "egress"):
            for index, rule in enumerate(maps(props, direction)):
                if not text(rule, "description"):
                    yield f"{direction} rule {index} has no description."
    elif args.resource_type in RULES and not present(props, "description"):
        yield "the rule has no description."
