"""Network stack policies, which relate resources to each other: every VPC has a flow log,
and no security group mixes inline rules with separate rule resources.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pulumi_policy import PolicyResource, StackValidationArgs

from .aws_network import CLASSIC_RULE, GROUPS, VPC_EGRESS_RULE, VPC_INGRESS_RULE
from .policy_config import Config
from .registry import MEDIUM, Violation, stack_policy
from .resources import each, flag, known, maps, number, refers_to, strings, text

VPC = "aws:ec2/vpc:Vpc"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"


def _ids(resource: PolicyResource) -> list[str]:
    value = known(resource.props, "id")
    return [value] if isinstance(value, str) and value else []


@stack_policy(
    "vpc-flow-logs",
    severity=MEDIUM,
    domain="network",
    description="Every VPC must have a flow log.",
    remediation="Create an aws.ec2.FlowLog with vpcId set to the VPC (traffic type ALL) into "
    "a log group with bounded retention.",
)
def vpc_flow_logs(args: StackValidationArgs, _: Config) -> Iterator[Violation]:
    logs = [r for r in args.resources if r.resource_type == FLOW_LOG]
    for vpc in (r for r in args.resources if r.resource_type == VPC):
        if not any(refers_to(log, "vpcId", vpc, _ids(vpc)) for log in logs):  # never raises
            yield f"VPC {vpc.name} has no flow log.", vpc.urn


Permission = tuple[str, str, int, int, str]
"""(direction, protocol, from port, to port, peer): one atomic security group permission."""


def _protocol(value: str) -> str:
    value = value.lower()
    return {"6": "tcp", "17": "udp", "1": "icmp", "all": "-1"}.get(value, value)


def _permissions(direction: str, rule: Mapping[str, Any], peers: Iterable[str]) -> set[Permission]:
    protocol = _protocol(text(rule, "protocol") or text(rule, "ipProtocol"))
    low = int(number(rule, "fromPort") or 0)
    high = int(number(rule, "toPort") or 0)
    if protocol == "-1":
        low = high = 0
    return {(direction, protocol, low, high, peer) for peer in peers}


def _inline_permissions(group: PolicyResource) -> set[Permission]:
    found: set[Permission] = set()
    for direction in ("ingress", "egress"):
        for rule in maps(group.props, direction):
            peers = [
                *strings(rule, "cidrBlocks"),
                *strings(rule, "ipv6CidrBlocks"),
                *strings(rule, "prefixListIds"),
                *strings(rule, "securityGroups"),
                *(["self"] if flag(rule, "self") else []),
            ]
            found |= _permissions(direction, rule, peers)
    return found


def _separate_permissions(rule: PolicyResource) -> set[Permission]:
    props = rule.props
    if rule.resource_type == CLASSIC_RULE:
        peers = [
            *strings(props, "cidrBlocks"),
            *strings(props, "ipv6CidrBlocks"),
            *strings(props, "prefixListIds"),
            *strings(props, "sourceSecurityGroupId"),
            *(["self"] if flag(props, "self") else []),
        ]
        return _permissions(text(props, "type"), props, peers)
    direction = "ingress" if rule.resource_type == VPC_INGRESS_RULE else "egress"
    peers = [
        v
        for v in (
            text(props, "cidrIpv4"),
            text(props, "cidrIpv6"),
            text(props, "prefixListId"),
            text(props, "referencedSecurityGroupId"),
        )
        if v
    ]
    return _permissions(direction, props, peers)


@stack_policy(
    "sg-no-rule-conflicts",
    severity=MEDIUM,
    domain="network",
    description="A security group must be managed either with inline rules or with separate "
    "rule resources, never both (each apply would remove the other's rules).",
    remediation="Move the group's inline ingress/egress blocks into "
    "aws.vpc.SecurityGroupIngressRule / SecurityGroupEgressRule resources (or the reverse).",
)
def sg_no_rule_conflicts(args: StackValidationArgs, _: Config) -> Iterator[Violation]:
    rules = [
        r
        for r in args.resources
        if r.resource_type in (CLASSIC_RULE, VPC_INGRESS_RULE, VPC_EGRESS_RULE)
    ]

    def check(group: PolicyResource) -> Iterator[Violation]:
        attached = [r for r in rules if refers_to(r, "securityGroupId", group, _ids(group))]
        if not attached:
            return
        # A group's outputs list every rule it has, separate ones included: only rules no
        # separate resource accounts for are inline.
        explained: set[Permission] = set()
        for rule in attached:
            explained |= _separate_permissions(rule)
        if _inline_permissions(group) - explained:
            yield (
                f"security group {group.name} has inline rules and {len(attached)} separate "
                "rule resource(s).",
                group.urn,
            )

    yield from each((r for r in args.resources if r.resource_type in GROUPS), check)
