"""The database credentials, synced from Secrets Manager into the ``database-credentials``
Secret by the External Secrets Operator: the reader's service account and IRSA role, a
``SecretStore`` and an ``ExternalSecret``.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.app.accounts import aws_service_account
from components.app.iam import credentials_reader_policy
from components.app.scope import AppScope, after
from components.aws.database import DatabaseConnection
from components.lib.irsa import OidcIssuer
from components.platform.external_secrets import API_VERSION as ESO_API_VERSION

DATABASE_READER = "database-credentials"
"""Service account of the sync, and the Secret it writes (the pods mount it)."""
STORE = "aws-secrets-manager"
CREDENTIALS_REFRESH = "15m"
"""How often the operator re-reads the secret: a rotated password reaches the pods within it.

Why this survives rotation: RDS rotates the password in Secrets Manager; the operator rewrites
the Kubernetes Secret at its next refresh; the pods mount the Secret as files (not environment
variables, which are frozen at pod start), the kubelet updates mounted files in place, and the
app reads the password file when it opens a database connection. So new connections use the new
password without a deploy or a restart, and RDS keeps the old password valid until rotation
completes."""


def database_credentials(
    scope: AppScope,
    *,
    database: DatabaseConnection,
    region: str,
    oidc: OidcIssuer,
    role_opts: pulumi.ResourceOptions,
    opts: pulumi.ResourceOptions,
) -> list[pulumi.Resource]:
    """The reader (its IRSA role may read only the RDS master secret and decrypt it with the
    data key, through Secrets Manager), its SecretStore and the ExternalSecret; returns the
    store and the ExternalSecret (pods wait for them). ``opts`` must wait for the operator (its
    CRDs and webhook)."""
    policy = pulumi.Output.all(database.master_secret_arn, database.key_arn).apply(
        lambda v: credentials_reader_policy(v[0], v[1], region)
    )
    account = aws_service_account(
        scope,
        DATABASE_READER,
        DATABASE_READER,
        policy=policy,
        oidc=oidc,
        role_opts=role_opts,
        opts=opts,
    )
    store = k8s.apiextensions.CustomResource(
        f"{scope.name}-secret-store",
        api_version=ESO_API_VERSION,
        kind="SecretStore",
        metadata=scope.meta(STORE, DATABASE_READER),
        spec={
            "provider": {
                "aws": {
                    "service": "SecretsManager",
                    "region": region,
                    "auth": {"jwt": {"serviceAccountRef": {"name": DATABASE_READER}}},
                }
            }
        },
        opts=after(opts, account),
    )
    external = k8s.apiextensions.CustomResource(
        f"{scope.name}-database-credentials",
        api_version=ESO_API_VERSION,
        kind="ExternalSecret",
        # Pulumi waits until the operator reports the Secret synced: pods never start without
        # their credentials.
        metadata=scope.meta(
            DATABASE_READER, DATABASE_READER, annotations={"pulumi.com/waitFor": "condition=Ready"}
        ),
        spec={
            "refreshInterval": CREDENTIALS_REFRESH,
            "secretStoreRef": {"kind": "SecretStore", "name": STORE},
            "target": {"name": DATABASE_READER, "creationPolicy": "Owner"},
            "data": [
                {
                    "secretKey": field,
                    "remoteRef": {"key": database.master_secret_arn, "property": field},
                }
                for field in ("username", "password")
            ],
        },
        opts=after(opts, store),
    )
    return [store, external]
