"""``restore-test``: the newest backup of every data store, restored and compared.

* PostgreSQL, each database with backups: the newest dump is downloaded and checked against
  its manifest (size, SHA-256), restored with ``pg_restore -j`` into a throw-away PostgreSQL in
  the scratch folder, and its tables and row counts compared with the manifest's.
* Redis: the newest export is downloaded and checked, read by ``redis-check-rdb`` (its key
  count must equal the manifest's), loaded into a throw-away redis-server, and the keys it
  holds counted (equal to the manifest's, less at most the keys with a time to live, which
  may have expired since).
* Media: the newest archive is downloaded and checked, and every object in it checked against
  the manifest.

Each check prints a ``{"event": "restore-test-check", ...}`` line; the run ends with one
``{"event": "restore-test", "result": "ok"|"failed", ...}`` line (what the monitoring alerts
on, with the Job's status) and exits non-zero on any failure. A store without any backup
fails the test: a backup that was never taken cannot be restored."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from backup import manifests, media, pg, pg_restore, rdb, redis_backup
from backup.errors import CORRUPT, FAILED, BackupError, CorruptBackupError
from backup.local import LocalPostgres, LocalRedis
from backup.log import event
from backup.pg_backup import PREFIX as PG_PREFIX
from backup.store import Store, check_free_space

STORES = ("postgresql", "redis", "application")


def run(store: Store, scratch: Path, *, jobs: int, only: tuple[str, ...] = STORES) -> int:
    """Run the checks; the exit status (0 when every store's newest backup restored)."""
    started = time.monotonic()
    results: dict[str, Any] = {}
    worst = 0
    checks = {"postgresql": _postgres, "redis": _redis, "application": _media}
    for name in only:
        begun = time.monotonic()
        try:
            detail = checks[name](store, scratch, jobs)
            results[name] = {"result": "ok", **detail}
        except BackupError as error:
            results[name] = {"result": "failed", "error": str(error)}
            worst = max(worst, CORRUPT if isinstance(error, CorruptBackupError) else FAILED)
        results[name]["seconds"] = round(time.monotonic() - begun, 3)
        event("restore-test-check", store=name, **results[name])
    event(
        "restore-test",
        result="ok" if worst == 0 else "failed",
        seconds=round(time.monotonic() - started, 3),
        stores={name: value["result"] for name, value in results.items()},
    )
    return worst


def _postgres(store: Store, scratch: Path, jobs: int) -> dict[str, Any]:
    names = pg_restore.databases_with_backups(store)
    if not names:
        raise BackupError(
            f"no PostgreSQL backup with a manifest under {store.uri(PG_PREFIX + '/')}"
        )
    tested = {}
    with LocalPostgres(scratch / "postgresql") as server:
        for number, database in enumerate(names):
            into = f"restore_test_{number}"  # the throw-away server has its own "postgres"
            found = manifests.newest(store, f"{PG_PREFIX}/{database}/", PG_PREFIX)
            if found is None:  # listed a moment ago: its manifest vanished or is unreadable
                raise BackupError(f"no readable manifest for database {database!r}")
            key, manifest = found
            dump = pg_restore.fetch(store, manifest, scratch)
            try:
                pg_restore.query_create(server.connection, into)
                pg_restore.pg_restore(server.connection, into, dump, jobs, privileges=False)
            finally:
                dump.unlink(missing_ok=True)
            counts = pg.row_counts(server.connection, into)
            wrong = pg_restore.differences(manifest.get("tables", {}), counts)
            if wrong:
                raise CorruptBackupError(
                    f"{store.uri(key)}: the restored database differs: " + "; ".join(wrong[:20])
                )
            tested[database] = {
                "backup": manifest["scheduled"],
                "tables": len(counts),
                "rows": sum(counts.values()),
            }
    return {"databases": tested}


def _redis(store: Store, scratch: Path, jobs: int) -> dict[str, Any]:
    found = manifests.newest(store, f"{redis_backup.PREFIX}/", redis_backup.PREFIX)
    if found is None:
        raise BackupError(
            f"no Redis backup with a manifest under {store.uri(redis_backup.PREFIX + '/')}"
        )
    _, manifest = found
    files = manifest.get("files") or [manifest]
    loaded = 0
    for item in files:
        check_free_space(scratch, int(item["size"]) * 2, f"the export {store.uri(item['key'])}")
        path = scratch / "export.rdb"
        store.verify(
            item["key"],
            size=int(item["size"]),
            sha256=item["sha256"],
            into=path,
            version_id=str(item.get("version_id", "")),
        )
        counted = rdb.check(path)
        if counted.keys != item.get("keys", counted.keys):
            raise CorruptBackupError(
                f"{store.uri(item['key'])} holds {counted.keys} keys, its manifest {item['keys']}"
            )
        with LocalRedis(scratch / "redis", path) as server:
            held = sum(server.keys_per_db().values())
        if not counted.keys - counted.expires <= held <= counted.keys:
            raise CorruptBackupError(
                f"{store.uri(item['key'])} loaded {held} keys; expected {counted.keys} "
                f"(at least {counted.keys - counted.expires}: {counted.expires} have a time to "
                "live)"
            )
        loaded += held
    return {"backup": manifest["scheduled"], "keys": loaded, "manifest_keys": manifest.get("keys")}


def _media(store: Store, scratch: Path, jobs: int) -> dict[str, Any]:
    found = manifests.newest(store, f"{media.PREFIX}/", media.PREFIX)
    if found is None:
        raise BackupError(f"no media backup with a manifest under {store.uri(media.PREFIX + '/')}")
    _, manifest = found
    path = media.fetch(store, manifest, scratch)
    try:
        count = media.verify_archive(path, manifest)
    finally:
        path.unlink(missing_ok=True)
    return {"backup": manifest["scheduled"], "objects": count}
