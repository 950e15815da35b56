"""``NodeGroup``: one EKS managed node group and its launch template.

The program makes one per ``node_pools`` entry: a small ``system`` group, tainted so only
cluster add-ons and controllers land there, and an ``app`` group for the workloads. Nodes run in
the private subnets on a hardened launch template (IMDSv2 only, no public IP, encrypted root
volume); once a group exists, the cluster autoscaler owns its size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_aws import ec2, eks

from components.lib.component import Component
from components.lib.kube.pods import SYSTEM_TAINTS, Taint
from components.lib.naming import Naming
from components.settings import ClusterSettings, NodeGroupSettings

COMPONENT = "nodes"


@dataclass(frozen=True)
class NodePool:
    """One node group of the cluster: its role, sizes and taints."""

    role: str
    settings: NodeGroupSettings
    taints: tuple[Taint, ...] = ()


def node_pools(settings: ClusterSettings) -> tuple[NodePool, ...]:
    """The cluster's node groups: the tainted system pool and the application pool."""
    return (
        NodePool("system", settings.system_nodes, SYSTEM_TAINTS),
        NodePool("app", settings.app_nodes),
    )


@dataclass(frozen=True)
class NodeGroupArgs:
    settings: NodeGroupSettings
    """Instance types and sizes."""
    role: str
    """``system`` or ``app``: names the group and labels its nodes ``exposcholar.io/pool``."""
    naming: Naming
    """Names and tags of the stack."""
    cluster_name: str
    """Physical cluster name, for the autoscaler discovery tag."""
    cluster: pulumi.Input[str]
    """The cluster's name as an Output, so the group depends on the cluster."""
    node_role_arn: pulumi.Input[str]
    """The cluster's node role."""
    subnet_ids: Sequence[pulumi.Input[str]]
    """Private subnets, one per zone."""
    security_group_id: pulumi.Input[str]
    """The cluster security group."""
    disk_size_gb: int
    """Root volume size of every node."""
    taints: Sequence[Taint] = field(default_factory=tuple)
    """Taints of every node (the system pool's keep workloads off)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Extra node labels."""


class NodeGroup(Component):
    """A managed node group on a hardened launch template (``depends_on``: the cluster, whose
    network add-ons must run before nodes can become Ready).

    Changing instance types, AMI type or the subnets replaces the node group (a new one comes
    up first only if its name changes); launch template changes roll the nodes in place.
    """

    TYPE = "exposcholar:cluster:NodeGroup"

    name: pulumi.Output[str]
    """The node group's name."""

    def __init__(
        self, name: str, args: NodeGroupArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, opts)
        naming = args.naming
        settings = args.settings
        physical = naming.physical(COMPONENT, args.role)
        template = ec2.LaunchTemplate(
            f"{name}-template",
            name=physical,
            description=f"{physical}: IMDSv2 only, no public IP, encrypted gp3 root volume",
            # IMDSv2 with a hop limit of 1: pods cannot reach the node's instance credentials
            metadata_options=ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                http_put_response_hop_limit=1,
                instance_metadata_tags="disabled",
            ),
            block_device_mappings=[
                ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name="/dev/xvda",
                    ebs=ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_size=args.disk_size_gb,
                        volume_type="gp3",
                        # the EBS default key: a customer key would need grants for the Auto
                        # Scaling service-linked role
                        encrypted="true",
                        delete_on_termination="true",
                    ),
                )
            ],
            network_interfaces=[
                ec2.LaunchTemplateNetworkInterfaceArgs(
                    associate_public_ip_address="false",
                    delete_on_termination="true",
                    security_groups=[args.security_group_id],
                )
            ],
            tag_specifications=[
                ec2.LaunchTemplateTagSpecificationArgs(
                    resource_type=kind, tags=naming.tags(COMPONENT, args.role)
                )
                for kind in ("instance", "volume")
            ],
            update_default_version=True,
            tags=naming.tags(COMPONENT, f"{args.role}-template"),
            opts=self.child_opts(),
        )
        # The cluster autoscaler's discovery tags (components.platform.autoscaler).
        autoscaler_tags = {
            "k8s.io/cluster-autoscaler/enabled": "true",
            f"k8s.io/cluster-autoscaler/{args.cluster_name}": "owned",
        }
        group = eks.NodeGroup(
            f"{name}-group",
            cluster_name=args.cluster,
            node_group_name=physical,
            node_role_arn=args.node_role_arn,
            subnet_ids=list(args.subnet_ids),
            instance_types=list(settings.instance_types),
            ami_type="AL2023_ARM_64_STANDARD" if settings.arm64 else "AL2023_x86_64_STANDARD",
            capacity_type="ON_DEMAND",
            scaling_config=eks.NodeGroupScalingConfigArgs(
                min_size=settings.min_size,
                max_size=settings.max_size,
                desired_size=settings.desired_size,
            ),
            # updates replace at most a third of the nodes at a time
            update_config=eks.NodeGroupUpdateConfigArgs(max_unavailable_percentage=33),
            launch_template=eks.NodeGroupLaunchTemplateArgs(
                id=template.id, version=template.latest_version.apply(str)
            ),
            labels={"exposcholar.io/pool": args.role, **args.labels},
            taints=[
                eks.NodeGroupTaintArgs(key=t.key, value=t.value, effect=t.effect)
                for t in args.taints
            ],
            tags={**naming.tags(COMPONENT, args.role), **autoscaler_tags},
            # After creation the cluster autoscaler owns the size: a deploy never shrinks a group
            # that scaled up, which would drain live nodes.
            opts=self.child_opts(ignore_changes=["scalingConfig.desiredSize"]),
        )
        self.name = group.node_group_name
        self.register()
