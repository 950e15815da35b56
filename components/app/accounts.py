"""Service accounts of the application's workloads: one per workload, none with a Kubernetes
API token (no workload of the app calls the API), and for a workload that calls AWS an IRSA
role whose inline policy is the only permission it has.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.app.scope import COMPONENT, NAMESPACE, AppScope
from components.lib.irsa import IrsaRole, OidcIssuer, irsa_role

core = k8s.core.v1


def service_account(
    scope: AppScope,
    suffix: str,
    account: str,
    *,
    opts: pulumi.ResourceOptions,
    role: IrsaRole | None = None,
) -> core.ServiceAccount:
    """Service account ``account``, bound to ``role`` if given (its ARN resolves once the
    role's policy is attached, so the pods start with their permissions)."""
    return core.ServiceAccount(
        f"{scope.name}-{suffix}-account",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=account,
            namespace=scope.namespace,
            labels=scope.labels(account),
            annotations=(
                role.arn.apply(lambda arn: {"eks.amazonaws.com/role-arn": arn})
                if role is not None
                else None
            ),
        ),
        automount_service_account_token=False,
        opts=opts,
    )


def aws_service_account(
    scope: AppScope,
    suffix: str,
    account: str,
    *,
    policy: pulumi.Input[str],
    oidc: OidcIssuer,
    role_opts: pulumi.ResourceOptions,
    opts: pulumi.ResourceOptions,
) -> core.ServiceAccount:
    """Service account ``account`` and the IRSA role only it may assume, allowed ``policy``;
    ``role_opts`` for the role (AWS), ``opts`` for the account (the cluster)."""
    naming = scope.naming
    role = irsa_role(
        f"{scope.name}-{suffix}-role",
        opts=role_opts,
        oidc=oidc,
        namespace=NAMESPACE,
        service_account=account,
        role_name=naming.physical(COMPONENT, suffix, max_length=64),
        tags=naming.tags(COMPONENT, suffix),
        inline_policy=policy,
    )
    return service_account(scope, suffix, account, opts=opts, role=role)
