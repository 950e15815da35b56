"""The Storage component: every bucket private, encrypted and TLS-only; backups versioned with
per-prefix retention; Object Lock and the off-site replica in prod only."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.settings import StackSettings
from tests.conftest import component_plan, key_arn, only
from tools.mocks import CapturedResource
from tools.plan import Plan

BUCKET = "aws:s3/bucket:Bucket"
PROD_BUCKETS = {"logs", "backups", "static", "media", "replica-logs", "backups-replica"}
STAGING_BUCKETS = {"logs", "backups", "static", "media"}


@pytest.fixture
def storage(plan: Plan) -> Plan:
    return component_plan(plan, "exposcholar:data:Storage")


def _buckets(storage: Plan) -> dict[str, CapturedResource]:
    found = {b.name.removeprefix("storage-"): b for b in storage.of_type(BUCKET)}
    # every stack has at least staging's buckets: a renamed type or prefix finds none
    assert set(found) >= STAGING_BUCKETS, sorted(found)
    return found


def _for(storage: Plan, typ: str, bucket: CapturedResource) -> list[CapturedResource]:
    return [r for r in storage.of_type(typ) if r.inputs.get("bucket") == bucket.id]


def _one_for(storage: Plan, typ: str, bucket: CapturedResource) -> dict[str, Any]:
    found = _for(storage, typ, bucket)
    assert len(found) == 1, (typ, bucket.name, len(found))
    return found[0].inputs


def test_bucket_set_per_stack(plans: dict[str, Plan]) -> None:
    for stack, expected in (("staging", STAGING_BUCKETS), ("prod", PROD_BUCKETS)):
        buckets = _buckets(component_plan(plans[stack], "exposcholar:data:Storage"))
        assert set(buckets) == expected
        for label, bucket in buckets.items():
            assert bucket.inputs["bucket"] == f"exposcholar-{stack}-storage-{label}-" + (
                "123456789012" if stack == "staging" else "210987654321"
            )
            assert bucket.inputs["forceDestroy"] is False
            assert bucket.protect is (stack == "prod")


def test_every_bucket_is_private_encrypted_and_tls_only(storage: Plan, plan: Plan) -> None:
    keys = {
        "backups": key_arn(plan, "backups"),
        "static": key_arn(plan, "storage"),
        "media": key_arn(plan, "storage"),
    }
    if plan.stack == "prod":
        keys["backups-replica"] = key_arn(plan, "backups-replica")
    for label, bucket in _buckets(storage).items():
        block = _one_for(storage, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", bucket)
        for flag in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        ):
            assert block[flag] is True, (label, flag)
        ownership = _one_for(
            storage, "aws:s3/bucketOwnershipControls:BucketOwnershipControls", bucket
        )
        assert ownership["rule"]["objectOwnership"] == "BucketOwnerEnforced"

        encryption = _one_for(
            storage,
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            bucket,
        )
        (rule,) = encryption["rules"]
        default = rule["applyServerSideEncryptionByDefault"]
        if label.endswith("logs"):
            # S3 server access logging cannot deliver to SSE-KMS buckets
            assert default == {"sseAlgorithm": "AES256"}
        else:
            assert default["sseAlgorithm"] == "aws:kms"
            assert default["kmsMasterKeyId"] == keys[label]
            assert rule["bucketKeyEnabled"] is True

        policy = json.loads(_one_for(storage, "aws:s3/bucketPolicy:BucketPolicy", bucket)["policy"])
        deny = next(s for s in policy["Statement"] if s["Sid"] == "DenyInsecureTransport")
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert deny["Principal"] == "*" and deny["Action"] == "s3:*"
        assert deny["Resource"] == [f"arn:aws:s3:::{bucket.id}", f"arn:aws:s3:::{bucket.id}/*"]
        for statement in policy["Statement"]:
            if statement["Effect"] != "Allow":
                continue
            if label == "backups" and statement["Sid"] == "ElastiCacheExportsRedisSnapshots":
                # ElastiCache's export of the Redis snapshots: its regional principal, object
                # actions under redis/ only, nothing that deletes
                assert statement["Principal"] == {
                    "Service": "eu-west-1.elasticache-snapshot.amazonaws.com"
                }
                assert statement["Resource"] == [
                    f"arn:aws:s3:::{bucket.id}", f"arn:aws:s3:::{bucket.id}/redis/*"
                ]  # fmt: skip
                assert not any("Delete" in action for action in statement["Action"])
                continue
            # otherwise only log delivery, only for this account
            assert statement["Principal"] == {"Service": "logging.s3.amazonaws.com"}
            assert "aws:SourceAccount" in statement["Condition"]["StringEquals"]


def test_access_logging_to_the_logs_bucket(storage: Plan) -> None:
    buckets = _buckets(storage)
    for label, bucket in buckets.items():
        logging = _for(storage, "aws:s3/bucketLogging:BucketLogging", bucket)
        if label.endswith("logs"):
            assert not logging, "a logs bucket does not log to itself"
            continue
        (entry,) = logging
        target = "replica-logs" if label == "backups-replica" else "logs"
        assert entry.inputs["targetBucket"] == buckets[target].id
        assert entry.inputs["targetPrefix"] == f"{label}/"


def test_versioning_on_backups_and_media(storage: Plan) -> None:
    versioned = {
        label
        for label, bucket in _buckets(storage).items()
        for v in _for(storage, "aws:s3/bucketVersioning:BucketVersioning", bucket)
        if v.inputs["versioningConfiguration"]["status"] == "Enabled"
    }
    expected = {"backups", "media"} | ({"backups-replica"} if storage.stack == "prod" else set())
    assert versioned == expected


def _rules(storage: Plan, bucket: CapturedResource) -> dict[str, dict[str, Any]]:
    lifecycle = _one_for(
        storage, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", bucket
    )
    return {rule["id"]: rule for rule in lifecycle["rules"]}


def test_backup_retention_per_prefix(
    storage: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings[storage.stack].storage
    labels = ["backups"] + (["backups-replica"] if storage.stack == "prod" else [])
    for label in labels:
        rules = _rules(storage, _buckets(storage)[label])
        for prefix, days in (("postgresql", 30), ("redis", 7), ("application", 30)):
            rule = rules[f"{prefix}-expiry"]
            assert rule["status"] == "Enabled"
            assert rule["filter"]["prefix"] == f"{prefix}/"
            assert rule["expiration"]["days"] == days
            assert rule["noncurrentVersionExpiration"]["noncurrentDays"] == (
                settings.noncurrent_version_days
            )
        assert rules["expired-delete-markers"]["expiration"]["expiredObjectDeleteMarker"] is True
        assert rules["housekeeping"]["abortIncompleteMultipartUpload"]["daysAfterInitiation"] == (
            settings.abort_incomplete_upload_days
        )


def test_every_bucket_aborts_incomplete_uploads_and_logs_expire(
    storage: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings[storage.stack].storage
    for label, bucket in _buckets(storage).items():
        rules = _rules(storage, bucket)
        assert "abortIncompleteMultipartUpload" in rules["housekeeping"], label
        if label.endswith("logs"):
            assert rules["access-logs-expiry"]["expiration"]["days"] == (
                settings.access_log_retention_days
            )
    media = _rules(storage, _buckets(storage)["media"])
    assert media["media-noncurrent"]["noncurrentVersionExpiration"]["noncurrentDays"] == 30


def test_object_lock_in_prod_only(plans: dict[str, Plan]) -> None:
    staging = component_plan(plans["staging"], "exposcholar:data:Storage")
    assert not staging.of_type("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    assert all(b.inputs["objectLockEnabled"] is False for b in staging.of_type(BUCKET))

    prod = component_plan(plans["prod"], "exposcholar:data:Storage")
    backups = _buckets(prod)["backups"]
    assert backups.inputs["objectLockEnabled"] is True
    lock = _one_for(
        prod, "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration", backups
    )
    retention = lock["rule"]["defaultRetention"]
    assert retention["mode"] == "GOVERNANCE"
    shortest_expiry = min(
        r["expiration"].get("days", 10**6)
        for r in _rules(prod, backups).values()
        if "expiration" in r
    )
    assert 0 < retention["days"] < shortest_expiry
    policy = json.loads(_one_for(prod, "aws:s3/bucketPolicy:BucketPolicy", backups)["policy"])
    (guard,) = [
        s for s in policy["Statement"] if s.get("Sid") == "OnlyAdministratorsBypassObjectLock"
    ]
    assert guard["Effect"] == "Deny" and guard["Action"] == "s3:BypassGovernanceRetention"
    assert guard["Condition"]["ArnNotLike"]["aws:PrincipalArn"] == [
        "arn:aws:iam::210987654321:role/exposcholar-platform-admin"
    ]
    others = [b for label, b in _buckets(prod).items() if label != "backups"]
    assert all(b.inputs["objectLockEnabled"] is False for b in others)


def test_offsite_replica_in_prod_only(plans: dict[str, Plan]) -> None:
    staging = component_plan(plans["staging"], "exposcholar:data:Storage")
    assert not staging.of_type("aws:s3/bucketReplicationConfig:BucketReplicationConfig")

    plan = plans["prod"]
    prod = component_plan(plan, "exposcholar:data:Storage")
    buckets = _buckets(prod)
    replication = only(prod, "aws:s3/bucketReplicationConfig:BucketReplicationConfig")
    assert replication.inputs["bucket"] == buckets["backups"].id
    (rule,) = replication.inputs["rules"]
    assert rule["status"] == "Enabled"
    assert rule["deleteMarkerReplication"]["status"] == "Disabled"
    destination = rule["destination"]
    assert destination["bucket"] == f"arn:aws:s3:::{buckets['backups-replica'].id}"
    assert destination["encryptionConfiguration"]["replicaKmsKeyId"] == key_arn(
        plan, "backups-replica"
    )
    assert rule["sourceSelectionCriteria"]["sseKmsEncryptedObjects"]["status"] == "Enabled"
    versioning = {v.urn for v in prod.of_type("aws:s3/bucketVersioning:BucketVersioning")}
    assert len(versioning & set(replication.dependencies)) == 2, "both sides versioned first"

    role = next(
        r for r in prod.of_type("aws:iam/role:Role") if r.name == "storage-replication-role"
    )
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "s3.amazonaws.com"}
    assert replication.inputs["role"] == role.outputs["arn"]

    replica_provider = next(
        p for p in plan.of_type("pulumi:providers:aws") if p.name == "aws-replica"
    )
    assert replica_provider.inputs["region"] == "eu-central-1"
    for label in ("backups-replica", "replica-logs"):
        assert buckets[label].provider.startswith(replica_provider.urn)  # type: ignore[union-attr]
        assert buckets[label].outputs["region"] == "eu-central-1"
    assert buckets["backups"].outputs["region"] == "eu-west-1"
