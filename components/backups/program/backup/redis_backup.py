"""``backup redis`` and ``restore redis``: the ElastiCache way.

ElastiCache refuses SYNC, BGSAVE and CONFIG, so ``redis-cli --rdb`` cannot back it up. The
backup takes a snapshot (the newest automatic one when it is recent enough, else a manual one
it creates and removes after the export), waits for it, exports it with ``CopySnapshot`` into
``redis/<stamp>/`` of the backups bucket (ElastiCache writes ``<name>-0001.rdb`` there itself,
through the bucket's grant to it), then downloads the export, checks it with
``redis-check-rdb`` and writes the manifest: files, sizes, SHA-256, key counts.

A restore cannot load into a running ElastiCache group: AWS creates a new replication group
seeded from the RDB in S3 (``SnapshotArns``). ``restore redis`` verifies the files, then
creates that group with the settings of the current one; switching the application over is
the runbook's (docs/runbooks/restore-redis.md).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from backup import rdb
from backup.errors import BackupError, InvalidInputError
from backup.log import event, say
from backup.schedule import stamp
from backup.store import Store, begin_folder, check_free_space, describe

PREFIX = "redis"
RECENT = timedelta(hours=26)
"""An automatic snapshot newer than this is the backup (a daily snapshot window)."""


def manifest_key(moment: str) -> str:
    return f"{PREFIX}/{moment}/manifest.json"


class Waiter:
    """Polling interval and limit for ElastiCache's asynchronous operations."""

    def __init__(self, interval: float = 15.0, limit: float = 3600.0) -> None:
        self.interval = interval
        self.limit = limit


def _call(what: str, function: Any, **arguments: Any) -> Any:
    try:
        return function(**arguments)
    except (ClientError, BotoCoreError) as error:
        raise BackupError(f"ElastiCache {what} failed: {describe(error)}") from None


def _snapshot(elasticache: Any, name: str) -> dict[str, Any] | None:
    try:
        found = elasticache.describe_snapshots(SnapshotName=name)["Snapshots"]
    except ClientError as error:
        if "SnapshotNotFound" in describe(error):
            return None
        raise BackupError(f"ElastiCache DescribeSnapshots failed: {describe(error)}") from None
    return found[0] if found else None


def _created(snapshot: dict[str, Any]) -> datetime:
    nodes = snapshot.get("NodeSnapshots") or [{}]
    moment = nodes[0].get("SnapshotCreateTime") or snapshot.get("CacheClusterCreateTime")
    if isinstance(moment, datetime):
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.fromtimestamp(0, UTC)


def _wait_available(elasticache: Any, name: str, waiter: Waiter) -> dict[str, Any]:
    deadline = time.monotonic() + waiter.limit
    while True:
        snapshot = _snapshot(elasticache, name)
        status = (snapshot or {}).get("SnapshotStatus", "missing")
        if snapshot and status == "available":
            return snapshot
        if status in ("failed", "missing", "deleting"):
            raise BackupError(f"ElastiCache snapshot {name} is {status}")
        if time.monotonic() > deadline:
            raise BackupError(
                f"ElastiCache snapshot {name} still {status} after {waiter.limit:.0f} s"
            )
        time.sleep(waiter.interval)


def _source(
    elasticache: Any, group: str, moment: str, waiter: Waiter, now: datetime
) -> tuple[str, bool]:
    """The snapshot to export and whether this run created it."""
    automatic = _call(
        "DescribeSnapshots",
        elasticache.describe_snapshots,
        ReplicationGroupId=group,
        SnapshotSource="system",
    )["Snapshots"]
    ready = [
        s
        for s in automatic
        if s.get("SnapshotStatus") == "available" and now - _created(s) < RECENT
    ]
    if ready:
        newest = max(ready, key=_created)
        return str(newest["SnapshotName"]), False
    name = f"{group}-backup-{moment.lower()}"
    if _snapshot(elasticache, name) is None:
        _call(
            "CreateSnapshot",
            elasticache.create_snapshot,
            ReplicationGroupId=group,
            SnapshotName=name,
        )
    _wait_available(elasticache, name, waiter)
    return name, True


def run(
    store: Store,
    elasticache: Any,
    group: str,
    when: datetime,
    scratch: Path,
    *,
    job: str = "",
    waiter: Waiter | None = None,
    now: datetime | None = None,
) -> str:
    """Back up the replication group ``group``; returns ``ok``, ``exists`` or ``held``."""
    waiter = waiter or Waiter()
    moment = stamp(when)
    manifest = manifest_key(moment)
    claim = begin_folder(store, PREFIX, moment, job)
    if isinstance(claim, str):
        return claim
    started = time.monotonic()
    name, created = "", False
    try:
        name, created = _source(elasticache, group, moment, waiter, now or datetime.now(UTC))
        files = _export(
            store, elasticache, name=name, moment=moment, scratch=scratch, waiter=waiter
        )
        if not claim.confirm():
            raise BackupError(
                f"another run took over the Redis backup of {moment}: no manifest written"
            )
        first = files[0]
        document = {
            "kind": PREFIX,
            "scheduled": moment,
            "replication_group": group,
            "snapshot": name,
            "snapshot_source": "manual" if created else "automatic",
            "key": first["key"],
            "size": first["size"],
            "sha256": first["sha256"],
            "version_id": first["version_id"],
            "files": files,
            "keys": sum(f["keys"] for f in files),
            "expires": sum(f["expires"] for f in files),
            "duration_seconds": round(time.monotonic() - started, 3),
        }
        if not store.put_json(manifest, document, only_if_absent=True):
            return "exists"
    finally:
        claim.release()
        if created:
            _forget(elasticache, name)
    event(
        "backup",
        kind=PREFIX,
        scheduled=moment,
        result="ok",
        snapshot=name,
        files=len(files),
        keys=document["keys"],
        key=store.uri(first["key"]),
    )
    return "ok"


def _exported(store: Store, prefix: str) -> list[str]:
    return sorted(key for key, _ in store.keys(prefix) if key.endswith(".rdb"))


def _export(
    store: Store, elasticache: Any, *, name: str, moment: str, scratch: Path, waiter: Waiter
) -> list[dict[str, Any]]:
    """Export the snapshot into ``redis/<stamp>/`` (unless an earlier run of this schedule
    did, or is doing it: a snapshot still "exporting" is not exported twice), wait until
    the files are there and the snapshot is available again, and check each file."""
    prefix = f"{PREFIX}/{moment}/"
    if not _exported(store, prefix):
        status = (_snapshot(elasticache, name) or {}).get("SnapshotStatus")
        if status != "exporting":
            _call(
                "CopySnapshot (export to S3)",
                elasticache.copy_snapshot,
                SourceSnapshotName=name,
                TargetSnapshotName=f"{prefix}{name}",
                TargetBucket=store.bucket,
            )
    deadline = time.monotonic() + waiter.limit
    while True:
        exported = _exported(store, prefix)
        status = (_snapshot(elasticache, name) or {}).get("SnapshotStatus", "missing")
        if exported and status == "available":
            return [_checked(store, key, scratch) for key in exported]
        if status in ("failed", "missing", "deleting"):
            raise BackupError(f"the export of ElastiCache snapshot {name} ended {status}")
        if time.monotonic() > deadline:
            raise BackupError(
                f"the export of snapshot {name} wrote no .rdb under {store.uri(prefix)} "
                f"within {waiter.limit:.0f} s (snapshot {status})"
            )
        time.sleep(waiter.interval)


def _forget(elasticache: Any, name: str) -> None:
    """Delete the manual snapshot this run made, once no export reads it; a leftover (the
    run failed while exporting) is logged: the next run's name differs, so it would stay."""
    status = (_snapshot(elasticache, name) or {}).get("SnapshotStatus")
    if status in (None, "deleting"):
        return
    try:
        if status == "exporting":
            raise BackupError("still exporting")
        _call("DeleteSnapshot", elasticache.delete_snapshot, SnapshotName=name)
    except BackupError as error:
        event("backup-leftover", kind=PREFIX, snapshot=name, reason=str(error))


def _checked(store: Store, key: str, scratch: Path) -> dict[str, Any]:
    """Download an exported RDB, check it, and describe it for the manifest."""
    size = store.size(key) or 0
    check_free_space(scratch, size, f"the export {store.uri(key)}")
    version = store.version(key)
    path = scratch / Path(key).name
    count, sha256 = store.copy_out(key, path, version)
    try:
        if count != size:
            raise BackupError(f"{store.uri(key)}: read {count} of {size} bytes")
        counts = rdb.check(path)
    finally:
        path.unlink(missing_ok=True)
    return {
        "key": key,
        "size": size,
        "sha256": sha256,
        "version_id": version,
        "keys": counts.keys,
        "expires": counts.expires,
    }


def _major_minor(version: str) -> str:
    """``7.1`` for ``7.1.0``: CreateReplicationGroup takes major.minor from engine 6 on."""
    parts = version.split(".")
    return ".".join(parts[:2]) if parts[0].isdigit() and int(parts[0]) >= 6 else version


def restore(
    store: Store,
    key: str,
    manifest: dict[str, Any],
    elasticache: Any,
    *,
    target_group: str,
    like: str,
    auth_token: str,
    dry_run: bool,
) -> dict[str, Any]:
    """Create ``target_group`` from the export, with the settings of the group ``like``."""
    if not target_group:
        raise InvalidInputError(
            "--target-group is required: ElastiCache restores into a new replication group"
        )
    try:
        elasticache.describe_replication_groups(ReplicationGroupId=target_group)
        raise InvalidInputError(
            f"replication group {target_group!r} exists: ElastiCache restores only into a new "
            "group (choose another --target-group)"
        )
    except ClientError as error:
        if "ReplicationGroupNotFound" not in describe(error):
            raise BackupError(
                f"ElastiCache DescribeReplicationGroups failed: {describe(error)}"
            ) from None
    for item in manifest.get("files", [manifest]):
        store.verify(
            item["key"],
            size=int(item["size"]),
            sha256=item["sha256"],
            version_id=str(item.get("version_id", "")),
        )
    template = _call(
        "DescribeReplicationGroups",
        elasticache.describe_replication_groups,
        ReplicationGroupId=like,
    )["ReplicationGroups"][0]
    members = template.get("MemberClusters") or []
    if not members:
        raise BackupError(
            f"replication group {like!r} has no member clusters to copy settings from"
        )
    cluster = _call(
        "DescribeCacheClusters", elasticache.describe_cache_clusters, CacheClusterId=members[0]
    )["CacheClusters"][0]
    if template.get("ClusterEnabled"):
        raise InvalidInputError(
            f"{like!r} runs in cluster mode (shards): restore it with the console or "
            "CreateReplicationGroup's NodeGroupConfiguration; this command restores the "
            "platform's single-shard groups"
        )
    endpoint = (template.get("NodeGroups") or [{}])[0].get("PrimaryEndpoint") or {}
    version = str(cluster.get("EngineVersion") or "")
    request: dict[str, Any] = {
        "ReplicationGroupId": target_group,
        "ReplicationGroupDescription": f"restored from {store.uri(key)}",
        "Engine": cluster.get("Engine", "redis"),
        # CreateReplicationGroup takes major.minor from 6 on (the member reports 7.1.0)
        "EngineVersion": _major_minor(version),
        "Port": endpoint.get("Port"),
        "UserGroupIds": template.get("UserGroupIds") or None,
        "PreferredMaintenanceWindow": cluster.get("PreferredMaintenanceWindow"),
        "SnapshotWindow": template.get("SnapshotWindow") or cluster.get("SnapshotWindow"),
        "CacheNodeType": template.get("CacheNodeType") or cluster.get("CacheNodeType"),
        "NumCacheClusters": len(members),
        "AutomaticFailoverEnabled": template.get("AutomaticFailover") == "enabled",
        "MultiAZEnabled": template.get("MultiAZ") == "enabled",
        "CacheSubnetGroupName": cluster.get("CacheSubnetGroupName"),
        "SecurityGroupIds": [g["SecurityGroupId"] for g in cluster.get("SecurityGroups", [])],
        "CacheParameterGroupName": (cluster.get("CacheParameterGroup") or {}).get(
            "CacheParameterGroupName"
        ),
        "AtRestEncryptionEnabled": bool(template.get("AtRestEncryptionEnabled")),
        "TransitEncryptionEnabled": bool(template.get("TransitEncryptionEnabled")),
        "KmsKeyId": template.get("KmsKeyId"),
        "SnapshotRetentionLimit": int(template.get("SnapshotRetentionLimit") or 0),
        "SnapshotArns": [
            f"arn:aws:s3:::{store.bucket}/{item['key']}"
            for item in manifest.get("files", [manifest])
        ],
    }
    request = {k: v for k, v in request.items() if v not in (None, "")}
    if template.get("AuthTokenEnabled"):
        if not auth_token:
            raise InvalidInputError(
                f"{like!r} requires AUTH: pass --auth-token-file with the token for the new group"
            )
        request["AuthToken"] = auth_token
    shown = {k: v for k, v in request.items() if k != "AuthToken"}
    if dry_run:
        say(f"dry run: {store.uri(key)} verified; would create replication group {target_group!r}:")
        for name, value in shown.items():
            say(f"  {name}: {value}")
        say("nothing was changed")
        return shown
    _call("CreateReplicationGroup", elasticache.create_replication_group, **request)
    event(
        "restore",
        kind=PREFIX,
        source=store.uri(key),
        replication_group=target_group,
        result="started",
    )
    say(
        f"creating replication group {target_group!r} from {store.uri(key)} "
        f"({manifest.get('keys', '?')} keys)"
    )
    say(
        "next: wait until it is available (aws elasticache wait replication-group-available "
        f"--replication-group-id {target_group}), then follow docs/runbooks/restore-redis.md to "
        "switch over"
    )
    return shown
