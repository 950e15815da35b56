"""IAM roles for service accounts (IRSA): the one way a pod gets AWS permissions.

``irsa_role`` creates a role that exactly one Kubernetes service account of one cluster can
assume through the cluster's OIDC provider: the trust policy names the provider, requires the
``sts.amazonaws.com`` audience and the ``system:serviceaccount:<namespace>:<name>`` subject
with ``StringEquals`` (no wildcards), and the permissions are the managed policies and the
inline policy the caller passes — nothing else. Used by the VPC CNI and EBS CSI add-ons, the
application, the cluster autoscaler and the load balancer controller.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_aws import iam

from components.lib.aws import attach_policies

AUDIENCE = "sts.amazonaws.com"


@dataclass(frozen=True)
class IrsaRole:
    """An IRSA role, and its ARN as an Output that resolves only once the role's policies are
    attached: a service account annotated with ``arn`` (and so its pods) is created after the
    permissions exist, so the first start does not fail on AccessDenied."""

    role: iam.Role
    arn: pulumi.Output[str]


@dataclass(frozen=True)
class OidcIssuer:
    """The cluster's OIDC identity provider, as IRSA roles need it."""

    provider_arn: pulumi.Output[str]
    issuer_url: pulumi.Output[str]
    """``https://oidc.eks.<region>.amazonaws.com/id/<id>``"""


def irsa_trust_policy(
    provider_arn: str, issuer_url: str, namespace: str, service_account: str
) -> str:
    """The trust policy of an IRSA role (pure: tested directly)."""
    issuer = issuer_url.removeprefix("https://")
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            f"{issuer}:aud": AUDIENCE,
                            f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                        }
                    },
                }
            ],
        }
    )


def irsa_role(
    name: str,
    *,
    opts: pulumi.ResourceOptions,
    oidc: OidcIssuer,
    namespace: str,
    service_account: str,
    role_name: str,
    tags: Mapping[str, str],
    managed_policy_arns: Sequence[str] = (),
    inline_policy: pulumi.Input[str] | None = None,
) -> IrsaRole:
    """A role only ``namespace/service_account`` of the cluster behind ``oidc`` can assume."""
    trust = pulumi.Output.all(oidc.provider_arn, oidc.issuer_url).apply(
        lambda values: irsa_trust_policy(values[0], values[1], namespace, service_account)
    )
    role = iam.Role(
        name,
        name=role_name,
        description=f"IRSA: {namespace}/{service_account}",
        assume_role_policy=trust,
        tags=dict(tags),
        opts=opts,
    )
    policies = attach_policies(
        name, role, opts=opts, managed=managed_policy_arns, inline=inline_policy
    )
    ready = pulumi.Output.all(role.arn, *(policy.urn for policy in policies))
    return IrsaRole(role, ready.apply(lambda values: str(values[0])))
