"""The Network component as the whole program registers it, for both stacks."""

from __future__ import annotations

import json

import pytest

from components.settings import parse_settings
from components.settings.subnets import plan_subnets
from tools.mocks import CapturedResource
from tools.plan import Plan
from tools.preview import REPO_ROOT
from tools.program import run_program
from tools.project import StackConfig

SUBNET = "aws:ec2/subnet:Subnet"
ROUTE = "aws:ec2/route:Route"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
ASSOCIATION = "aws:ec2/routeTableAssociation:RouteTableAssociation"
NAT = "aws:ec2/natGateway:NatGateway"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"


@pytest.fixture
def net(plan: Plan) -> Plan:
    """Only what the Network component created."""
    return plan.subtree(plan.component("exposcholar:network:Network").urn)


def _one(plan: Plan, typ: str) -> CapturedResource:
    found = plan.of_type(typ)
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def _subnets(plan: Plan, tier: str) -> list[CapturedResource]:
    found = [s for s in plan.of_type(SUBNET) if s.inputs["tags"]["Tier"] == tier]
    # one per zone and every stack spans two zones or more: a renamed tier finds nothing
    assert len(found) >= 2, (tier, len(found))
    return found


def test_vpc_has_dns_support_and_hostnames(net: Plan) -> None:
    vpc = _one(net, "aws:ec2/vpc:Vpc")
    assert vpc.inputs["enableDnsSupport"] is True
    assert vpc.inputs["enableDnsHostnames"] is True


def test_subnets_follow_the_plan(plan: Plan, stack_configs: dict[str, StackConfig]) -> None:
    settings = parse_settings(plan.stack, stack_configs[plan.stack].values).network
    expected = {
        (str(p.tier), p.zone, p.cidr)
        for p in plan_subnets(
            settings.vpc_cidr, settings.availability_zones, settings.subnet_prefixes
        )
    }
    subnets = plan.of_type(SUBNET)
    actual = {
        (s.inputs["tags"]["Tier"], s.inputs["availabilityZone"], s.inputs["cidrBlock"])
        for s in subnets
    }
    assert actual == expected
    assert len(subnets) == 3 * len(settings.availability_zones)
    assert all(s.inputs.get("mapPublicIpOnLaunch") is False for s in subnets)


@pytest.mark.parametrize(("stack", "count"), [("staging", 1), ("prod", 3)])
def test_nat_gateway_count_per_stack(plans: dict[str, Plan], stack: str, count: int) -> None:
    plan = plans[stack]
    nats = plan.of_type(NAT)
    assert len(nats) == count
    assert len(plan.of_type("aws:ec2/eip:Eip")) == count
    public_ids = {s.id for s in _subnets(plan, "public")}
    assert all(n.inputs["subnetId"] in public_ids for n in nats)
    assert len({n.inputs["subnetId"] for n in nats}) == count  # one per zone, not stacked


def test_private_tables_route_through_a_nat_in_their_own_zone(plans: dict[str, Plan]) -> None:
    plan = plans["prod"]
    subnet_zone = {s.id: s.inputs["availabilityZone"] for s in plan.of_type(SUBNET)}
    nat_zone = {n.id: subnet_zone[n.inputs["subnetId"]] for n in plan.of_type(NAT)}
    table_zone = {
        a.inputs["routeTableId"]: subnet_zone[a.inputs["subnetId"]]
        for a in plan.of_type(ASSOCIATION)
        if a.inputs["subnetId"] in {s.id for s in _subnets(plan, "private")}
    }
    nat_routes = [r for r in plan.of_type(ROUTE) if "natGatewayId" in r.inputs]
    assert len(nat_routes) == 3
    for route in nat_routes:
        assert route.inputs["destinationCidrBlock"] == "0.0.0.0/0"
        assert nat_zone[route.inputs["natGatewayId"]] == table_zone[route.inputs["routeTableId"]]


def test_only_public_tables_reach_the_internet_gateway_and_isolated_has_no_route(
    plan: Plan,
) -> None:
    igw = _one(plan, "aws:ec2/internetGateway:InternetGateway")
    tier_of_table: dict[str, set[str]] = {}
    tiers = {s.id: s.inputs["tags"]["Tier"] for s in plan.of_type(SUBNET)}
    for assoc in plan.of_type(ASSOCIATION):
        tier_of_table.setdefault(assoc.inputs["routeTableId"], set()).add(
            tiers[assoc.inputs["subnetId"]]
        )
    assert set().union(*tier_of_table.values()) == {"public", "private", "isolated"}
    assert all(len(t) == 1 for t in tier_of_table.values()), "a table serves one tier"
    assert len(plan.of_type(ASSOCIATION)) == len(plan.of_type(SUBNET))
    routes = plan.of_type(ROUTE)
    assert any(r.inputs.get("gatewayId") == igw.id for r in routes), "no route to the gateway"
    for route in routes:
        (tier,) = tier_of_table[route.inputs["routeTableId"]]
        assert tier != "isolated", "isolated subnets have no route out"
        if route.inputs.get("gatewayId") == igw.id:
            assert tier == "public"


def test_flow_logs_to_cloudwatch_with_retention_and_scoped_role(
    net: Plan, stack_configs: dict[str, StackConfig]
) -> None:
    settings = parse_settings(net.stack, stack_configs[net.stack].values)
    vpc = _one(net, "aws:ec2/vpc:Vpc")
    flow_log = _one(net, "aws:ec2/flowLog:FlowLog")
    group = _one(net, "aws:cloudwatch/logGroup:LogGroup")
    role = _one(net, "aws:iam/role:Role")
    policy = _one(net, "aws:iam/rolePolicy:RolePolicy")
    assert flow_log.inputs["vpcId"] == vpc.id
    assert flow_log.inputs["trafficType"] == "ALL"
    assert flow_log.inputs["logDestinationType"] == "cloud-watch-logs"
    assert flow_log.inputs["logDestination"].endswith(f":log-group:{group.inputs['name']}")
    assert group.inputs["retentionInDays"] == settings.network.flow_log_retention_days
    assert group.inputs["name"] == f"/aws/vpc/exposcholar-{net.stack}-network-flow-logs"

    trust = json.loads(role.inputs["assumeRolePolicy"])
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == (
        settings.account.account_id
    )
    document = json.loads(policy.inputs["policy"])
    resources = [r for s in document["Statement"] for r in s["Resource"]]
    assert resources, document
    assert "*" not in resources
    assert all(r.startswith(flow_log.inputs["logDestination"]) for r in resources)
    assert flow_log.inputs["iamRoleArn"].endswith(f":role/{role.inputs['name']}")


def test_default_security_group_has_no_rules(net: Plan) -> None:
    group = _one(net, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert group.inputs["vpcId"] == _one(net, "aws:ec2/vpc:Vpc").id
    assert not group.inputs.get("ingress")
    assert not group.inputs.get("egress")


def test_load_balancer_subnet_tags(plan: Plan) -> None:
    cluster_tag = f"kubernetes.io/cluster/exposcholar-{plan.stack}-cluster-eks"
    for subnet in _subnets(plan, "public"):
        assert subnet.inputs["tags"]["kubernetes.io/role/elb"] == "1"
        assert subnet.inputs["tags"][cluster_tag] == "shared"
        assert "kubernetes.io/role/internal-elb" not in subnet.inputs["tags"]
    for subnet in _subnets(plan, "private"):
        assert subnet.inputs["tags"]["kubernetes.io/role/internal-elb"] == "1"
        assert "kubernetes.io/role/elb" not in subnet.inputs["tags"]
    for subnet in _subnets(plan, "isolated"):
        assert not any(k.startswith("kubernetes.io/") for k in subnet.inputs["tags"])


def test_endpoints(net: Plan) -> None:
    endpoints = {e.inputs["serviceName"]: e for e in net.of_type(ENDPOINT)}
    assert set(endpoints) == {
        f"com.amazonaws.eu-west-1.{s}" for s in ("s3", "ecr.api", "ecr.dkr", "sts", "logs")
    }
    s3 = endpoints.pop("com.amazonaws.eu-west-1.s3")
    assert s3.inputs["vpcEndpointType"] == "Gateway"
    tables = {t.id: t.inputs["tags"]["Name"] for t in net.of_type(ROUTE_TABLE)}
    s3_tables = sorted(tables[t] for t in s3.inputs["routeTableIds"])
    assert s3_tables == sorted(n for n in tables.values() if "public" not in n)
    private_ids = {s.id for s in _subnets(net, "private")}
    group = _one(net, "aws:ec2/securityGroup:SecurityGroup")
    for endpoint in endpoints.values():
        assert endpoint.inputs["vpcEndpointType"] == "Interface"
        assert endpoint.inputs["privateDnsEnabled"] is True
        assert set(endpoint.inputs["subnetIds"]) == private_ids
        assert endpoint.inputs["securityGroupIds"] == [group.id]
    (rule,) = net.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert rule.inputs["securityGroupId"] == group.id
    assert (rule.inputs["fromPort"], rule.inputs["toPort"]) == (443, 443)
    assert rule.inputs["cidrIpv4"] == _one(net, "aws:ec2/vpc:Vpc").inputs["cidrBlock"]
    assert rule.inputs["description"]


def test_interface_endpoints_are_behind_a_setting(stack_configs: dict[str, StackConfig]) -> None:
    config = stack_configs["staging"]
    values = {**config.values, "exposcholar:interfaceEndpoints": "false"}
    full = run_program(REPO_ROOT, type(config)(config.stack, values, config.secret_keys, ()))
    plan = full.subtree(full.component("exposcholar:network:Network").urn)
    assert [e.inputs["serviceName"] for e in plan.of_type(ENDPOINT)] == [
        "com.amazonaws.eu-west-1.s3"
    ]
    assert not plan.of_type("aws:ec2/securityGroup:SecurityGroup")


def test_children_are_parented_and_named_from_the_component(plan: Plan) -> None:
    network = _one(plan, "exposcholar:network:Network")
    assert network.parent == plan.stack_urn
    children = plan.descendants(network.urn)
    assert len(children) > 30
    for child in children:
        assert child.parent == network.urn
        assert child.name.startswith("network-"), child.name
