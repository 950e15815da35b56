"""IAM policy documents of the application's IRSA roles (pure functions of ARNs: tested
directly): the server's bucket access and the database credentials reader's secret access.
"""

from __future__ import annotations

import json
from typing import Any


def _document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _allow(sid: str, actions: list[str], resources: list[str], **extra: Any) -> dict[str, Any]:
    """An ``Allow`` statement; ``extra`` adds fields such as ``Condition``."""
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources, **extra}


def server_bucket_policy(static_arn: str, media_arn: str, key_arn: str) -> str:
    """Object access to the static and media buckets, and their key; nothing else."""
    return _document(
        _allow("ListBuckets", ["s3:ListBucket", "s3:GetBucketLocation"], [static_arn, media_arn]),
        _allow(
            "Objects",
            ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            [f"{static_arn}/*", f"{media_arn}/*"],
        ),
        _allow("BucketKey", ["kms:Decrypt", "kms:GenerateDataKey"], [key_arn]),
    )


def credentials_reader_policy(secret_arn: str, key_arn: str, region: str) -> str:
    """Read the one RDS master secret; decrypt only through Secrets Manager."""
    return _document(
        _allow(
            "MasterSecret",
            ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            [secret_arn],
        ),
        _allow(
            "DecryptThroughSecretsManager",
            ["kms:Decrypt"],
            [key_arn],
            Condition={
                "StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}
            },
        ),
    )
