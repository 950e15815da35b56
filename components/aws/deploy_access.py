"""``GitHubDeployAccess``: the AWS side of the deploy path, so who may change the stack is code.

GitHub Actions gets short-lived AWS credentials through OpenID Connect, never stored keys. For
one stack this creates GitHub's OIDC provider in the account (unless an existing one is given)
and two roles, each trusting one exact ``sub`` with ``aud`` = ``sts.amazonaws.com`` and no
wildcard: the **preview** role for pull requests, read-only and denied the platform's data and
secret values, and the **deploy** role for ``main`` (staging) or the ``production`` GitHub
environment (prod), which may not widen its own permissions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_aws import iam

from components.lib.aws import attach_policies
from components.lib.component import Component
from components.lib.naming import Naming
from components.settings import DeploySettings
from components.settings.rules import GITHUB_OIDC_HOST

COMPONENT = "deploy"
AUDIENCE = "sts.amazonaws.com"
PRODUCTION_ENVIRONMENT = "production"
"""The GitHub environment (required reviewers, main only) that production deploys run in."""
PREVIEW_SESSION_SECONDS = 3600
DEPLOY_SESSION_SECONDS = 4 * 3600
"""A first ``pulumi up`` (EKS, RDS Multi-AZ, node groups) runs well over an hour."""
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
POWER_USER = "arn:aws:iam::aws:policy/PowerUserAccess"
ATTACHABLE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy",
    "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole",
)
"""The AWS-managed policies the program attaches to its own roles (a test keeps this equal to
what it attaches): the deploy role may attach no other, so it cannot hand a role it controls
IAMFullAccess or AdministratorAccess."""

ROLE_ACTIONS = (
    "iam:CreateRole",
    "iam:DeleteRole",
    "iam:GetRole",
    "iam:UpdateRole",
    "iam:UpdateRoleDescription",
    "iam:UpdateAssumeRolePolicy",
    "iam:TagRole",
    "iam:UntagRole",
    "iam:ListRoleTags",
    "iam:PutRolePolicy",
    "iam:GetRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:ListRolePolicies",
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:ListAttachedRolePolicies",
    "iam:ListInstanceProfilesForRole",
    "iam:PassRole",
)
"""What the program does to the roles it owns (IRSA, node, control plane, service roles)."""
OIDC_PROVIDER_ACTIONS = (
    "iam:CreateOpenIDConnectProvider",
    "iam:DeleteOpenIDConnectProvider",
    "iam:GetOpenIDConnectProvider",
    "iam:TagOpenIDConnectProvider",
    "iam:UntagOpenIDConnectProvider",
    "iam:UpdateOpenIDConnectProviderThumbprint",
    "iam:AddClientIDToOpenIDConnectProvider",
    "iam:RemoveClientIDFromOpenIDConnectProvider",
)
SELF_CHANGES = (
    "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:DeleteRole",
)
"""What the deploy role may never do to the two workflow roles."""


def github_subject(repository: str, *, production: bool | None) -> str:
    """The ``sub`` claim a role trusts: pull requests (``production=None``), ``main`` for a
    staging stack, the production environment for a production stack. That environment's
    required reviewers and main-only branch policy gate every production deploy; a job that
    names an environment never gets the branch form of ``sub``."""
    if production is None:
        return f"repo:{repository}:pull_request"
    if production:
        return f"repo:{repository}:environment:{PRODUCTION_ENVIRONMENT}"
    return f"repo:{repository}:ref:refs/heads/main"


def github_trust_policy(provider_arn: str, subject: str) -> str:
    """A trust policy for one exact ``sub`` of GitHub's OIDC tokens (pure: tested directly)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "GitHubActions",
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            f"{GITHUB_OIDC_HOST}:aud": AUDIENCE,
                            f"{GITHUB_OIDC_HOST}:sub": subject,
                        }
                    },
                }
            ],
        }
    )


def _statement(sid: str, actions: Sequence[str], resources: Sequence[Any]) -> Any:
    return {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": list(resources)}


def _state_and_secrets(settings: DeploySettings, *, write: bool) -> list[Any]:
    statements: list[Any] = []
    if settings.state_bucket:
        bucket = f"arn:aws:s3:::{settings.state_bucket}"
        objects = ["s3:GetObject", *(["s3:PutObject", "s3:DeleteObject"] if write else [])]
        statements += [
            _statement("StateList", ["s3:ListBucket"], [bucket]),
            _statement("StateObjects", objects, [f"{bucket}/*"]),
        ]
    if settings.secrets_key_arn:
        actions = ["kms:Decrypt", *(["kms:Encrypt", "kms:GenerateDataKey"] if write else [])]
        statements.append(_statement("StackSecrets", actions, [settings.secrets_key_arn]))
    return statements


@dataclass(frozen=True)
class GitHubDeployAccessArgs:
    settings: DeploySettings
    """The GitHub repository, an existing OIDC provider, the state bucket and secrets key."""
    naming: Naming
    """Names and tags of the stack."""
    account_id: str
    """The stack's account."""
    production: bool
    """Production stacks deploy only from the ``production`` environment."""
    data_buckets: Sequence[pulumi.Input[str]]
    """Buckets holding platform data (backups and their replica, media, access logs): the
    preview role may not read their objects."""
    region: str
    """The stack's region: the deploy role manages only this region's EKS OIDC providers."""
    protect: bool = False
    """Protect a created OIDC provider from deletion (production: other stacks may use it)."""


@dataclass(frozen=True)
class _RoleSpec:
    """One workflow role: who may assume it (one exact ``sub``) and what it may do."""

    name: str
    label: str
    description: str
    subject: str
    session_seconds: int
    managed: str
    inline: pulumi.Input[str]


class GitHubDeployAccess(Component):
    """The GitHub OIDC provider (unless given) and the stack's preview and deploy roles."""

    TYPE = "exposcholar:deploy:GitHubDeployAccess"

    preview_role_arn: pulumi.Output[str]
    """Pull requests preview with this role (read-only, no data)."""
    deploy_role_arn: pulumi.Output[str]
    """``main`` (or the production environment) deploys with this role."""
    provider_arn: pulumi.Output[str]
    """GitHub's OIDC provider in the account."""

    def __init__(
        self,
        name: str,
        args: GitHubDeployAccessArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(name, opts)
        settings, naming = args.settings, args.naming

        # An account holds one provider per URL: a second stack in the same account passes the
        # existing provider's ARN (``githubOidcProviderArn``). No thumbprint: AWS validates
        # GitHub through its trusted CAs.
        if settings.oidc_provider_arn:
            self.provider_arn = pulumi.Output.from_input(settings.oidc_provider_arn)
        else:
            provider = iam.OpenIdConnectProvider(
                f"{name}-github-oidc",
                url=f"https://{GITHUB_OIDC_HOST}",
                client_id_lists=[AUDIENCE],
                tags=naming.tags(COMPONENT, "github-oidc"),
                # every stack of the account that reuses it loses CI access with it
                opts=self.child_opts(protect=args.protect),
            )
            self.provider_arn = provider.arn

        role_arn = f"arn:aws:iam::{args.account_id}:role"
        preview_name = naming.physical(COMPONENT, "github-preview", max_length=64)
        deploy_name = naming.physical(COMPONENT, "github-deploy", max_length=64)
        # Preview: AWS read-only, read on the state bucket, decrypt with the secrets key, and no
        # object reads in the data buckets nor secret values. On the cluster (``Cluster``'s
        # access entries) it may view, and read Secrets only where a chart looks one up to
        # render. Pull-request code never holds credentials that write anything.
        preview_policy = pulumi.Output.all(*args.data_buckets).apply(
            lambda buckets: json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        *_state_and_secrets(settings, write=False),
                        {
                            "Sid": "NoPlatformData",
                            "Effect": "Deny",
                            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                            "Resource": [f"arn:aws:s3:::{bucket}/*" for bucket in buckets],
                        },
                        {
                            "Sid": "NoSecretValues",
                            "Effect": "Deny",
                            "Action": ["secretsmanager:GetSecretValue", "ssm:GetParameter*"],
                            "Resource": "*",
                        },
                    ],
                }
            )
        )
        self.preview_role_arn = self._role(
            f"{name}-preview",
            _RoleSpec(
                name=preview_name,
                label="github-preview",
                description=f"Pull-request previews of {naming.stack} from {settings.repository}",
                subject=github_subject(settings.repository, production=None),
                session_seconds=PREVIEW_SESSION_SECONDS,
                managed=READ_ONLY,
                inline=preview_policy,
            ),
            naming,
        )

        own_roles = f"{role_arn}/{naming.project}-{naming.stack}-*"
        provider_arn = f"arn:aws:iam::{args.account_id}:oidc-provider"
        workflow_roles = [f"{role_arn}/{preview_name}", f"{role_arn}/{deploy_name}"]
        # Deploy: PowerUserAccess, plus IAM on the stack's own roles and on this region's EKS
        # and GitHub's OIDC providers, the state bucket and the secrets key; on the cluster, an
        # administrator's access entry. It may attach only ATTACHABLE_POLICIES, assume no other
        # role, and not change the two workflow roles: widening CI's own permissions takes an
        # operator. (It can still write inline policies of the stack's own roles: no
        # permissions boundary limits them.)
        deploy_policy = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    _statement("OwnRoles", ROLE_ACTIONS, [own_roles]),
                    _statement(
                        "OidcProviders",
                        OIDC_PROVIDER_ACTIONS,
                        [
                            f"{provider_arn}/oidc.eks.{args.region}.amazonaws.com/id/*",
                            f"{provider_arn}/{GITHUB_OIDC_HOST}",
                        ],
                    ),
                    *_state_and_secrets(settings, write=True),
                    {
                        "Sid": "OnlyTheProgramsManagedPolicies",
                        "Effect": "Deny",
                        "Action": ["iam:AttachRolePolicy", "iam:AttachUserPolicy"],
                        "Resource": "*",
                        "Condition": {"ArnNotEquals": {"iam:PolicyARN": list(ATTACHABLE_POLICIES)}},
                    },
                    {
                        "Sid": "NoOtherIdentities",
                        "Effect": "Deny",
                        "Action": ["sts:AssumeRole"],
                        "Resource": "*",
                    },
                    {
                        "Sid": "NoSelfChange",
                        "Effect": "Deny",
                        "Action": list(SELF_CHANGES),
                        "Resource": workflow_roles,
                    },
                ],
            }
        )
        self.deploy_role_arn = self._role(
            f"{name}-deploy",
            _RoleSpec(
                name=deploy_name,
                label="github-deploy",
                description=f"Deploys of {naming.stack} from {settings.repository}",
                subject=github_subject(settings.repository, production=args.production),
                session_seconds=DEPLOY_SESSION_SECONDS,
                managed=POWER_USER,
                inline=deploy_policy,
            ),
            naming,
        )
        self.register()

    def _role(self, name: str, spec: _RoleSpec, naming: Naming) -> pulumi.Output[str]:
        """The role and its policies; its ARN resolves once the policies are attached, so a
        workflow configured from it never assumes a role that cannot act yet."""
        role = iam.Role(
            name,
            name=spec.name,
            description=spec.description,
            assume_role_policy=self.provider_arn.apply(
                lambda arn: github_trust_policy(arn, spec.subject)
            ),
            max_session_duration=spec.session_seconds,
            tags=naming.tags(COMPONENT, spec.label),
            opts=self.child_opts(),
        )
        attached = attach_policies(
            name, role, opts=self.child_opts(), managed=[spec.managed], inline=spec.inline
        )
        return pulumi.Output.all(role.arn, *[p.id for p in attached]).apply(
            lambda values: str(values[0])
        )
