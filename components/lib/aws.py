"""AWS building blocks several components share, so each security rule is written once:
``service_role`` and ``attach_policies`` (IAM roles for one AWS service), ``ingress_only_from``
(a security group admitting one port from given security groups only), ``Placement`` (where a
data store runs) and ``retained_log_group`` (a log group with bounded retention, under the
logs key).

Each function names its resources from ``name`` and creates them with the caller's ``opts``
(``Component.child_opts()``: parented to the component, waiting for what it waits for).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws.vpc as vpc_rules
from pulumi_aws import cloudwatch, ec2, iam


@dataclass(frozen=True)
class Placement:
    """Where a data store runs and who may reach it (shared by Database and Cache)."""

    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    """Isolated subnets, one per zone."""
    allowed_security_group_ids: Sequence[pulumi.Input[str]]
    """The only sources admitted on the store's port (the cluster's nodes)."""


def service_role(
    name: str,
    *,
    opts: pulumi.ResourceOptions,
    role_name: str,
    service: str,
    description: str,
    tags: Mapping[str, str],
    account_id: str | None = None,
    managed_policy_arns: Sequence[str] = (),
    inline_policy: pulumi.Input[str] | None = None,
) -> iam.Role:
    """A role ``service`` (e.g. ``monitoring.rds.amazonaws.com``) may assume; with
    ``account_id``, only on behalf of that account (confused-deputy protection)."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if account_id is not None:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account_id}}
    role = iam.Role(
        name,
        name=role_name,
        description=description,
        assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
        tags=dict(tags),
        opts=opts,
    )
    attach_policies(name, role, opts=opts, managed=managed_policy_arns, inline=inline_policy)
    return role


def attach_policies(
    name: str,
    role: iam.Role,
    *,
    opts: pulumi.ResourceOptions,
    managed: Sequence[str] = (),
    inline: pulumi.Input[str] | None = None,
) -> list[pulumi.CustomResource]:
    """Attach managed policies and at most one inline policy to ``role``; returns them."""
    attached: list[pulumi.CustomResource] = []
    for index, arn in enumerate(managed):
        attachment = iam.RolePolicyAttachment(
            f"{name}-managed-{index}",
            role=role.name,
            policy_arn=arn,
            opts=opts,
        )
        attached.append(attachment)
    if inline is not None:
        attached.append(
            iam.RolePolicy(
                f"{name}-policy",
                role=role.id,
                policy=inline,
                opts=opts,
            )
        )
    return attached


def ingress_only_from(
    name: str,
    *,
    opts: pulumi.ResourceOptions,
    group_name: str,
    description: str,
    vpc_id: pulumi.Input[str],
    port: int,
    allowed_security_group_ids: Sequence[pulumi.Input[str]],
    tags: Mapping[str, str],
) -> ec2.SecurityGroup:
    """A security group admitting TCP ``port`` only from ``allowed_security_group_ids``: no
    CIDR ingress, and no egress rules at all."""
    group = ec2.SecurityGroup(
        name,
        name=group_name,
        description=description,
        vpc_id=vpc_id,
        tags=dict(tags),
        opts=opts,
    )
    for index, source in enumerate(allowed_security_group_ids):
        vpc_rules.SecurityGroupIngressRule(
            f"{name}-from-{index}",
            security_group_id=group.id,
            description=f"TCP {port} from an allowed client security group",
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            referenced_security_group_id=source,
            tags=dict(tags),
            opts=opts,
        )
    return group


def retained_log_group(
    name: str,
    *,
    opts: pulumi.ResourceOptions,
    log_group_name: str,
    retention_days: int,
    kms_key_arn: pulumi.Input[str],
    tags: Mapping[str, str],
    protect: bool = False,
) -> cloudwatch.LogGroup:
    """A log group whose retention is bounded, encrypted with the stack's ``logs`` key (not the
    AWS-owned one). Create it before the service that writes to it: services left to create
    their own make never-expiring, AWS-key ones."""
    return cloudwatch.LogGroup(
        name,
        name=log_group_name,
        retention_in_days=retention_days,
        kms_key_id=kms_key_arn,
        tags=dict(tags),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=protect)),
    )
