"""IAM policy documents of the backup CronJobs' IRSA roles (pure functions of names and ARNs:
tested directly). Each job may write only its own prefix of the backups bucket and read what it
must; none may delete an object (no ``s3:Delete*``): retention is the bucket's lifecycle (and
Object Lock in prod), so a compromised job cannot shorten it.

- ``backup-postgres``: write and read ``postgresql/`` (the dump, then the manifest written last;
  reading lets it see an earlier run's manifest or claim), list only that prefix.
- ``backup-redis``: snapshot the one replication group and export the snapshot to ``redis/``
  (ElastiCache writes the ``.rdb`` itself, ``components.aws.storage.elasticache_export_grant``);
  write its manifest there, read and list only that prefix; delete only the ElastiCache
  snapshots it made itself, once exported.
- ``backup-media``: read the media bucket, write and read ``application/``.
- ``restore-test``: read and list ``postgresql/``, ``redis/`` and ``application/``; nothing else.

Every use of the backups key (and the media bucket's key) is through S3 of the stack's region
(``kms:ViaService``), which is also what the keys' own policies require.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

POSTGRES, REDIS, MEDIA = "postgresql", "redis", "application"
"""The backups bucket's prefixes (``components.aws.storage.BACKUP_PREFIXES``)."""
WRITE_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")
"""What a multipart upload of a large object needs; never a delete."""
ELASTICACHE_EXPORT_CALLER = ("s3:ListAllMyBuckets",)
"""ElastiCache checks that the caller of ``CopySnapshot`` may list its buckets before it exports,
and the check fails unless the action is allowed on ``*`` (the action has no resource type).
The user guide's sample caller policy ("Exporting a backup", Step 3) also lists
``s3:GetBucketLocation``, ``s3:GetObject``, ``s3:PutObject``, ``s3:ListBucket`` (granted here on
``redis/`` only) and ``s3:DeleteObject`` (not granted: nothing of ours deletes backups)."""


def _document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _allow(
    sid: str, actions: Sequence[str], resources: Sequence[str], **extra: Any
) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": list(actions),
        "Resource": list(resources),
        **extra,
    }


def _list(sid: str, bucket_arn: str, prefixes: Sequence[str]) -> dict[str, Any]:
    """``s3:ListBucket`` on the bucket, only for keys under ``prefixes``.

    A caveat for the program: S3 answers a GET or HEAD of a missing key with 404 only when the
    caller may list the bucket, else with 403 (S3 API reference, GetObject "Permissions").
    That check carries no ``s3:prefix``, so a listing grant conditioned on the prefix may not
    count for it: the program should find out whether a key exists by listing with the key as
    the prefix (which this grant admits), or the first real run will show whether a missing
    manifest reads as 403 (then drop the condition: the jobs would see the bucket's key names,
    never its contents)."""
    return _allow(
        sid,
        ["s3:ListBucket"],
        [bucket_arn],
        Condition={"StringLike": {"s3:prefix": [f"{prefix}/*" for prefix in prefixes]}},
    )


def _through_s3(sid: str, actions: Sequence[str], key_arn: str, region: str) -> dict[str, Any]:
    return _allow(
        sid,
        actions,
        [key_arn],
        Condition={"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
    )


def _own_prefix(sid: str, bucket_arn: str, prefix: str, key_arn: str, region: str) -> list[Any]:
    """Write, read and list ``prefix`` of the backups bucket, encrypting with its key."""
    objects = [f"{bucket_arn}/{prefix}/*"]
    return [
        _allow(f"{sid}Write", WRITE_ACTIONS, objects),
        # manifests name the object version they describe (a later write of the same key by
        # another run cannot change what a restore reads)
        _allow(f"{sid}Read", ["s3:GetObject", "s3:GetObjectVersion"], objects),
        _list(f"{sid}List", bucket_arn, [prefix]),
        _through_s3("BackupsKey", ["kms:GenerateDataKey", "kms:Decrypt"], key_arn, region),
    ]


def postgres_policy(bucket_arn: str, key_arn: str, region: str) -> str:
    """The PostgreSQL dump's role: ``postgresql/`` of the backups bucket, nothing else (the
    database's credentials come from the Kubernetes Secret, not from AWS)."""
    return _document(*_own_prefix("Postgresql", bucket_arn, POSTGRES, key_arn, region))


def redis_policy(
    *,
    bucket_arn: str,
    key_arn: str,
    region: str,
    account_id: str,
    group_id: str,
    cache_key_arn: str,
) -> str:
    """The Redis backup's role: export the newest automatic snapshot of the one replication
    group (``automatic.<group id>-...``), or snapshot it itself (``<group id>-backup-...``,
    deleted again once exported: manual snapshots never expire), into the backups bucket, and
    ``redis/`` for its manifest. ElastiCache names the export's target snapshot after its key
    (``redis/<time>/...``), so that ARN is admitted too. The snapshots are encrypted with the
    cache's key, which ElastiCache uses on the caller's behalf (``kms:ViaService``). The only
    delete is of the job's own ElastiCache snapshots, never of a backup in S3, an automatic
    snapshot or the final one."""
    elasticache = f"arn:aws:elasticache:{region}:{account_id}"
    group = f"{elasticache}:replicationgroup:{group_id}"
    own = f"{elasticache}:snapshot:{group_id}-backup-*"
    automatic = f"{elasticache}:snapshot:automatic.{group_id}-*"
    export = f"{elasticache}:snapshot:{REDIS}/*"
    return _document(
        _allow("SnapshotTheGroup", ["elasticache:CreateSnapshot"], [group, own]),
        _allow("ExportItsSnapshots", ["elasticache:CopySnapshot"], [own, automatic, export]),
        _allow("DropItsOwnSnapshots", ["elasticache:DeleteSnapshot"], [own]),
        _allow(
            "FindItsSnapshots",
            ["elasticache:DescribeSnapshots", "elasticache:DescribeReplicationGroups"],
            [group, own, automatic, f"{elasticache}:cluster:{group_id}-*"],
        ),
        _allow("ExportChecksTheCaller", ELASTICACHE_EXPORT_CALLER, ["*"]),
        _allow("ExportFindsTheBucket", ["s3:GetBucketLocation"], [bucket_arn]),
        *_own_prefix("Redis", bucket_arn, REDIS, key_arn, region),
        _allow(
            "CacheKeyThroughElastiCache",
            ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey", "kms:CreateGrant"],
            [cache_key_arn],
            Condition={
                "StringEquals": {"kms:ViaService": f"elasticache.{region}.amazonaws.com"},
            },
        ),
    )


def media_policy(
    *, bucket_arn: str, key_arn: str, region: str, media_arn: str, media_key_arn: str
) -> str:
    """The media archive's role: read the media bucket (and decrypt with its key), write
    ``application/`` of the backups bucket."""
    return _document(
        _allow("ReadMedia", ["s3:GetObject"], [f"{media_arn}/*"]),
        _allow("ListMedia", ["s3:ListBucket"], [media_arn]),
        _through_s3("MediaKey", ["kms:Decrypt"], media_key_arn, region),
        *_own_prefix("Application", bucket_arn, MEDIA, key_arn, region),
    )


def restore_test_policy(bucket_arn: str, key_arn: str, region: str) -> str:
    """The restore test's role: read-only, on the three prefixes it restores from."""
    prefixes = (POSTGRES, REDIS, MEDIA)
    return _document(
        _allow(
            "ReadBackups",
            ["s3:GetObject", "s3:GetObjectVersion"],
            [f"{bucket_arn}/{p}/*" for p in prefixes],
        ),
        _list("ListBackups", bucket_arn, prefixes),
        _through_s3("BackupsKey", ["kms:Decrypt"], key_arn, region),
    )
