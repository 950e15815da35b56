"""``Network``: the stack's VPC and everything that routes inside and out of it.

Three subnet tiers in each zone of settings (never looked up in the cloud), laid out by
``plan_subnets``: *public* (load balancers, NAT gateways), *private* (the cluster's nodes and
pods) and *isolated* (data stores; no route out of the VPC). Around them: the internet and NAT
gateways and route tables, VPC flow logs to CloudWatch, an S3 gateway endpoint and, behind a
setting, interface endpoints, and a default security group with no rules.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws.vpc as vpc_rules
from pulumi_aws import cloudwatch, ec2, iam

from components.lib.aws import Placement
from components.lib.component import Component
from components.lib.naming import Naming
from components.settings import NetworkSettings
from components.settings.subnets import Tier, plan_subnets

COMPONENT = "network"
INTERFACE_ENDPOINT_SERVICES = ("ecr.api", "ecr.dkr", "sts", "logs")
"""AWS services reached through interface endpoints when enabled."""


@dataclass(frozen=True)
class NetworkArgs:
    settings: NetworkSettings
    """Network settings of the stack (CIDR, zones, prefixes, NAT layout, flow logs)."""
    naming: Naming
    """Naming and tagging rules of the stack."""
    region: str
    """Region of the stack, for endpoint service names and the flow-log role's trust policy."""
    account_id: str
    """Account of the stack: only this account's flow-log service may assume the role."""
    cluster_name: str
    """Name the EKS cluster will have; subnets carry ``kubernetes.io/cluster/<name>``."""
    logs_key_arn: pulumi.Input[str]
    """The stack's ``logs`` key: encrypts the flow logs' log group."""


class Network(Component):
    """The VPC, its subnet tiers, gateways, routes, flow logs and endpoints. Whatever must exist
    before nodes join a cluster and outlive everything on it (NAT, routes, endpoints) is a
    child: the cluster lists this component in ``depends_on``.

    Changing ``vpcCidr`` or a subnet prefix replaces the VPC or subnets (and everything in
    them); adding a third zone only adds subnets, because zones keep their slots.
    """

    TYPE = "exposcholar:network:Network"

    vpc_id: pulumi.Output[str]
    """The VPC."""
    vpc_cidr: str
    """The VPC's CIDR block."""
    zones: tuple[str, ...]
    """Availability zones, one subnet of each tier in each."""
    public_subnet_ids: list[pulumi.Output[str]]
    """Load balancers and NAT gateways."""
    private_subnet_ids: list[pulumi.Output[str]]
    """The cluster's control-plane interfaces and nodes."""
    isolated_subnet_ids: list[pulumi.Output[str]]
    """Data stores: no route out of the VPC."""
    subnet_cidrs: Mapping[Tier, tuple[str, ...]]
    """Each tier's subnet CIDRs (known before deployment: the subnet plan is pure)."""

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, opts)
        self._name = name
        self._args = args
        settings = args.settings
        child = self.child_opts()
        self.zones = settings.availability_zones
        self.vpc_cidr = settings.vpc_cidr
        vpc = ec2.Vpc(
            f"{name}-vpc",
            cidr_block=settings.vpc_cidr,
            # EKS, RDS and the interface endpoints need both
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags=self._tags("vpc"),
            opts=child,
        )
        self.vpc_id = vpc.id

        # Taken under management with no rules: nothing that falls back to it can talk.
        ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=vpc.id,
            ingress=[],
            egress=[],
            tags=self._tags("default-sg"),
            opts=child,
        )

        subnets = self._subnets(vpc)
        self.public_subnet_ids = [s.id for s in subnets[Tier.PUBLIC]]
        self.private_subnet_ids = [s.id for s in subnets[Tier.PRIVATE]]
        self.isolated_subnet_ids = [s.id for s in subnets[Tier.ISOLATED]]

        private_tables, isolated_table = self._routing(vpc, subnets)
        self._flow_logs(vpc)
        self._endpoints(vpc, [t.id for t in private_tables] + [isolated_table.id])

        self.register()

    def data_placement(self, allowed_security_group_ids: Sequence[pulumi.Input[str]]) -> Placement:
        """Where a data store runs: the isolated subnets, reachable only from the security
        groups given (the cluster's nodes)."""
        return Placement(
            vpc_id=self.vpc_id,
            subnet_ids=self.isolated_subnet_ids,
            allowed_security_group_ids=allowed_security_group_ids,
        )

    def _tags(self, name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        return self._args.naming.tags(COMPONENT, name, extra)

    def _opts(self, depends_on: Sequence[pulumi.Resource] = ()) -> pulumi.ResourceOptions:
        return self.child_opts(depends_on=depends_on)

    def _subnets(self, vpc: ec2.Vpc) -> dict[Tier, list[ec2.Subnet]]:
        settings = self._args.settings
        cluster_tag = {f"kubernetes.io/cluster/{self._args.cluster_name}": "shared"}
        # The AWS Load Balancer Controller finds its subnets by these tags.
        role_tags = {
            Tier.PUBLIC: {"kubernetes.io/role/elb": "1", **cluster_tag},
            Tier.PRIVATE: {"kubernetes.io/role/internal-elb": "1", **cluster_tag},
            Tier.ISOLATED: {},
        }
        subnets: dict[Tier, list[ec2.Subnet]] = {tier: [] for tier in Tier}
        plans = plan_subnets(
            settings.vpc_cidr, settings.availability_zones, settings.subnet_prefixes
        )
        self.subnet_cidrs = {
            tier: tuple(plan.cidr for plan in plans if plan.tier is tier) for tier in Tier
        }
        for plan in plans:
            label = f"{plan.tier}-{plan.zone}"
            subnets[plan.tier].append(
                ec2.Subnet(
                    f"{self._name}-{label}",
                    vpc_id=vpc.id,
                    cidr_block=plan.cidr,
                    availability_zone=plan.zone,
                    map_public_ip_on_launch=False,
                    tags=self._tags(label, {"Tier": str(plan.tier), **role_tags[plan.tier]}),
                    opts=self._opts(),
                )
            )
        return subnets

    def _routing(
        self, vpc: ec2.Vpc, subnets: dict[Tier, list[ec2.Subnet]]
    ) -> tuple[list[ec2.RouteTable], ec2.RouteTable]:
        """Internet gateway, NAT gateways and the three kinds of route table."""
        name = self._name
        zones = self.zones
        igw = ec2.InternetGateway(
            f"{name}-igw", vpc_id=vpc.id, tags=self._tags("igw"), opts=self._opts()
        )

        public_table = self._table("public", vpc)
        ec2.Route(
            f"{name}-public-default",
            route_table_id=public_table.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=igw.id,
            opts=self._opts(),
        )
        self._associate(public_table, subnets[Tier.PUBLIC], zones, Tier.PUBLIC)

        nat_gateways = []
        for index in range(self._args.settings.nat_gateway_count):
            zone = zones[index]
            eip = ec2.Eip(
                f"{name}-nat-{zone}-eip",
                domain="vpc",
                tags=self._tags(f"nat-{zone}"),
                opts=self._opts(),
            )
            nat_gateways.append(
                ec2.NatGateway(
                    f"{name}-nat-{zone}",
                    allocation_id=eip.id,
                    subnet_id=subnets[Tier.PUBLIC][index].id,
                    connectivity_type="public",
                    tags=self._tags(f"nat-{zone}"),
                    # AWS needs the internet gateway attached before a NAT gateway can route.
                    opts=self._opts(depends_on=[igw]),
                )
            )

        private_tables = []
        for index, zone in enumerate(zones):
            table = self._table(f"private-{zone}", vpc)
            ec2.Route(
                f"{name}-private-{zone}-default",
                route_table_id=table.id,
                destination_cidr_block="0.0.0.0/0",
                # the zone's own NAT gateway, or the single one (settings)
                nat_gateway_id=nat_gateways[min(index, len(nat_gateways) - 1)].id,
                opts=self._opts(),
            )
            self._associate(table, [subnets[Tier.PRIVATE][index]], [zone], Tier.PRIVATE)
            private_tables.append(table)

        isolated_table = self._table("isolated", vpc)
        self._associate(isolated_table, subnets[Tier.ISOLATED], zones, Tier.ISOLATED)
        return private_tables, isolated_table

    def _table(self, label: str, vpc: ec2.Vpc) -> ec2.RouteTable:
        return ec2.RouteTable(
            f"{self._name}-{label}-rt",
            vpc_id=vpc.id,
            tags=self._tags(f"{label}-rt"),
            opts=self._opts(),
        )

    def _associate(
        self,
        table: ec2.RouteTable,
        subnets: list[ec2.Subnet],
        zones: Sequence[str],
        tier: Tier,
    ) -> None:
        """Associate each subnet with ``table``, named after the subnet's own zone."""
        for subnet, zone in zip(subnets, zones, strict=True):
            ec2.RouteTableAssociation(
                f"{self._name}-{tier}-{zone}-rta",
                subnet_id=subnet.id,
                route_table_id=table.id,
                opts=self._opts(),
            )

    def _flow_logs(self, vpc: ec2.Vpc) -> None:
        """Flow logs to CloudWatch, through a role only this account's flow-log service uses."""
        args = self._args
        settings = args.settings
        log_group = cloudwatch.LogGroup(
            f"{self._name}-flow-logs",
            name=f"/aws/vpc/{args.naming.physical(COMPONENT, 'flow-logs')}",
            retention_in_days=settings.flow_log_retention_days,
            kms_key_id=args.logs_key_arn,
            tags=self._tags("flow-logs"),
            opts=self._opts(),
        )
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": args.account_id},
                        "ArnLike": {
                            "aws:SourceArn": (
                                f"arn:aws:ec2:{args.region}:{args.account_id}:vpc-flow-log/*"
                            )
                        },
                    },
                }
            ],
        }
        role = iam.Role(
            f"{self._name}-flow-logs-role",
            name=args.naming.physical(COMPONENT, "flow-logs", max_length=64),
            description="Lets VPC flow logs write to their own CloudWatch log group",
            assume_role_policy=json.dumps(trust),
            tags=self._tags("flow-logs-role"),
            opts=self._opts(),
        )
        iam.RolePolicy(
            f"{self._name}-flow-logs-policy",
            role=role.id,
            policy=pulumi.Output.json_dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": [
                                "logs:CreateLogStream",
                                "logs:PutLogEvents",
                                "logs:DescribeLogStreams",
                            ],
                            "Resource": [
                                log_group.arn,
                                pulumi.Output.concat(log_group.arn, ":log-stream:*"),
                            ],
                        }
                    ],
                }
            ),
            opts=self._opts(),
        )
        ec2.FlowLog(
            f"{self._name}-flow-log",
            vpc_id=vpc.id,
            traffic_type=str(settings.flow_log_traffic_type),
            log_destination_type="cloud-watch-logs",
            log_destination=log_group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            tags=self._tags("flow-log"),
            opts=self._opts(),
        )

    def _endpoints(self, vpc: ec2.Vpc, route_table_ids: list[pulumi.Output[str]]) -> None:
        """The S3 gateway endpoint on the private and isolated route tables (backups and static
        files never cross the NAT gateways), and the interface endpoints when enabled, reachable
        on 443 from the VPC only."""
        region = self._args.region
        ec2.VpcEndpoint(
            f"{self._name}-s3-endpoint",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=route_table_ids,
            tags=self._tags("s3-endpoint"),
            opts=self._opts(),
        )
        if not self._args.settings.interface_endpoints:
            return
        group = ec2.SecurityGroup(
            f"{self._name}-endpoints-sg",
            name=self._args.naming.physical(COMPONENT, "endpoints"),
            description="Interface VPC endpoints: HTTPS from inside the VPC only",
            vpc_id=vpc.id,
            tags=self._tags("endpoints"),
            opts=self._opts(),
        )
        vpc_rules.SecurityGroupIngressRule(
            f"{self._name}-endpoints-https",
            security_group_id=group.id,
            description="HTTPS to AWS APIs from the VPC",
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            cidr_ipv4=self.vpc_cidr,
            tags=self._tags("endpoints-https"),
            opts=self._opts(),
        )
        for service in INTERFACE_ENDPOINT_SERVICES:
            label = service.replace(".", "-")
            ec2.VpcEndpoint(
                f"{self._name}-{label}-endpoint",
                vpc_id=vpc.id,
                service_name=f"com.amazonaws.{region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=self.private_subnet_ids,
                security_group_ids=[group.id],
                tags=self._tags(f"{label}-endpoint"),
                opts=self._opts(),
            )
