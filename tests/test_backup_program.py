"""The backup program end to end, against a real PostgreSQL and redis-server and an S3 API on
loopback (moto's server; ElastiCache's export to S3, which moto lacks, is the documented fake
``FakeElastiCache``): seed, back up, wipe, restore, compare; and every fault the issue names
injected with its outcome asserted. The program runs as the CronJobs and operators run it,
``python -m backup`` in a subprocess with the jobs' environment."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import tarfile
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from backup import media as media_backup  # the program, from components/backups/program
from backup import pg_restore, redis_backup, restore_test
from backup.errors import CORRUPT, FAILED, INVALID
from backup.schedule import scheduled_time, stamp
from backup.store import Store

from tests.backup_harness import (
    PG_PASSWORD,
    PG_ROLE,
    SEED_SQL,
    FakeElastiCache,
    Moto,
    Postgres,
    Redis,
    events,
    free_port,
    objects,
    run_program,
    sha256,
    shared_folder,
    tool,
    versions,
)

DB = "exposcholar"
AT = "2026-11-30T02:00Z"
STAMP = "20261130T0200Z"


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    server = Moto().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    server = Postgres(shared_folder("backup-test-pg-")).start()
    yield server
    server.stop()


@pytest.fixture
def seeded(postgres: Postgres) -> Postgres:
    """A fresh ``exposcholar`` database owned by the jobs' role, with data of many types."""
    for name in postgres.admin(
        "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres'"
    ).split():
        postgres.admin(f'DROP DATABASE "{name}" WITH (FORCE)')
    postgres.admin(f"CREATE DATABASE {DB} OWNER {PG_ROLE}")
    postgres.psql(SEED_SQL, DB)
    return postgres


@pytest.fixture
def bucket(moto: Moto) -> str:
    return moto.bucket(f"backups-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def scratch() -> Iterator[Path]:
    folder = shared_folder("backup-test-scratch-")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def env(moto: Moto, postgres: Postgres, bucket: str, tmp_path: Path) -> dict[str, str]:
    """The environment of the CronJobs' pods (components/backups), pointed at loopback."""
    return {
        **moto.environment(),
        "BACKUP_BUCKET": bucket,
        "DATABASE_HOST": "127.0.0.1",
        "DATABASE_PORT": str(postgres.port),
        "DATABASE_NAME": DB,
        "DATABASE_SSLMODE": "disable",
        "DATABASE_CREDENTIALS_DIR": str(postgres.credentials(tmp_path / "credentials")),
    }


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


# --- PostgreSQL -------------------------------------------------------------------------------


def test_postgres_backup_wipe_restore_is_identical(
    seeded: Postgres, moto: Moto, env: dict[str, str], bucket: str
) -> None:
    before = seeded.checksums(DB)
    result = ok(run_program("backup", "postgres", "--at", AT, env=env))
    s3 = moto.client("s3")
    stored = objects(s3, bucket)
    assert f"postgresql/{DB}/{STAMP}.dump" in stored
    manifest = json.loads(stored[f"postgresql/{DB}/{STAMP}.manifest.json"])
    dump = stored[f"postgresql/{DB}/{STAMP}.dump"]
    assert manifest["size"] == len(dump) and manifest["sha256"] == sha256(dump)
    assert manifest["format"] == "custom" and dump.startswith(b"PGDMP")
    assert manifest["server_version"].startswith("15")
    assert manifest["tables"] == {t: int(v.split(":")[0]) for t, v in before.items()}
    assert manifest["duration_seconds"] >= 0
    globals_sql = stored[manifest["globals"]["key"]].decode()
    assert (
        f"CREATE ROLE {PG_ROLE}" in globals_sql
        and "PASSWORD" not in globals_sql.upper().replace("NOPASSWORD", "")
    )
    assert [e["result"] for e in events(result.stdout) if e.get("database") == DB] == ["ok"]

    seeded.admin(f"DROP DATABASE {DB} WITH (FORCE)")  # the wipe
    restored = ok(run_program("restore", "postgres", "latest", "--database", DB, env=env))
    assert seeded.checksums(DB) == before
    assert "matching its manifest" in restored.stderr


def test_restore_into_another_database_and_by_uri(
    seeded: Postgres, env: dict[str, str], bucket: str
) -> None:
    before = seeded.checksums(DB)
    ok(run_program("backup", "postgres", "--at", AT, env=env))
    uri = f"s3://{bucket}/postgresql/{DB}/{STAMP}.dump"
    ok(run_program("restore", "postgres", uri, "--target-database", "exposcholar_copy", env=env))
    assert seeded.checksums("exposcholar_copy") == before
    assert seeded.checksums(DB) == before  # the source untouched


def test_a_non_empty_target_is_refused_without_replace(
    seeded: Postgres, env: dict[str, str]
) -> None:
    ok(run_program("backup", "postgres", "--at", AT, env=env))
    seeded.psql("DELETE FROM public.events WHERE id > 100", DB)  # today's state, after the backup
    today = seeded.checksums(DB)
    refused = run_program("restore", "postgres", "latest", "--database", DB, env=env)
    assert refused.returncode == INVALID
    assert "not empty" in refused.stderr and "--replace" in refused.stderr
    assert seeded.checksums(DB) == today

    dry = ok(
        run_program(
            "restore", "postgres", "latest", "--database", DB, "--replace", "--dry-run", env=env
        )
    )
    assert "nothing was changed" in dry.stderr and seeded.checksums(DB) == today

    ok(run_program("restore", "postgres", "latest", "--database", DB, "--replace", env=env))
    assert seeded.checksums(DB)["public.events"].startswith("2500:")
    kept = f"{DB}_before_{STAMP.lower()}"
    assert seeded.checksums(kept) == today, "the replaced database is kept, not dropped"


def test_a_repeated_run_of_one_schedule_changes_nothing(
    seeded: Postgres, moto: Moto, env: dict[str, str], bucket: str
) -> None:
    job = {**env, "BACKUP_JOB_NAME": "backup-postgres-29407800"}  # 29407800 min = 2025-11-30T02:00Z
    ok(run_program("backup", "postgres", env=job))
    s3 = moto.client("s3")
    first = versions(s3, bucket)
    assert any(key.endswith("20251130T0200Z.manifest.json") for key, _ in first)
    again = ok(run_program("backup", "postgres", env=job))
    assert {e["result"] for e in events(again.stdout) if e["event"] == "backup"} == {"exists"}
    # the claim's heartbeat is the only object a run may rewrite; it was not even taken
    assert versions(s3, bucket) == first


def test_two_runs_at_once_one_wins_the_other_changes_nothing(
    seeded: Postgres, moto: Moto, env: dict[str, str], bucket: str
) -> None:
    seeded.psql(
        "INSERT INTO public.events (kind, payload) "
        "SELECT 'bulk', to_jsonb(md5(g::text)) FROM generate_series(1, 200000) g",
        DB,
    )
    job = {**env, "BACKUP_JOB_NAME": "backup-postgres-29407800"}
    runs: list[subprocess.CompletedProcess[str]] = []
    threads = [
        threading.Thread(
            target=lambda: runs.append(run_program("backup", "postgres", "--database", DB, env=job))
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    results = sorted(e["result"] for r in runs for e in events(r.stdout) if e["event"] == "backup")
    assert results.count("ok") == 1 and set(results) <= {"ok", "held", "exists"}, results
    s3 = moto.client("s3")
    keys = [key for key, _ in versions(s3, bucket, f"postgresql/{DB}/")]
    assert keys.count(f"postgresql/{DB}/20251130T0200Z.dump") == 1, "the loser wrote no dump"
    assert keys.count(f"postgresql/{DB}/20251130T0200Z.manifest.json") == 1


class FailingS3(BaseHTTPRequestHandler):
    """A proxy in front of moto that fails every UploadPart after the first: S3 failing
    mid-upload."""

    upstream = ""
    parts = 0

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if "partNumber=" in self.path and self.command == "PUT":
            type(self).parts += 1
            if type(self).parts > 1:
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        connection = http.client.HTTPConnection(self.upstream)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        headers["Host"] = self.upstream
        connection.request(self.command, self.path, body=body, headers=headers)
        reply = connection.getresponse()
        data = reply.read()
        self.send_response(reply.status)
        for key, value in reply.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815 - the handler's names

    def log_message(self, *args: Any) -> None:
        pass


def test_s3_failing_mid_upload_leaves_no_manifest_and_earlier_backups_untouched(
    seeded: Postgres, moto: Moto, env: dict[str, str], bucket: str
) -> None:
    ok(run_program("backup", "postgres", "--database", DB, "--at", "2026-11-29T02:00Z", env=env))
    s3 = moto.client("s3")
    earlier = versions(s3, bucket)
    seeded.psql(
        "INSERT INTO public.events (kind, payload) "
        "SELECT 'bulk', to_jsonb(md5(g::text) || md5((g * 7)::text)) "
        "FROM generate_series(1, 300000) g",
        DB,
    )
    FailingS3.upstream = f"127.0.0.1:{moto.port}"
    FailingS3.parts = 0
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), FailingS3)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        failing = {
            **env,
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.server_address[1]}",
            "BACKUP_PART_MB": "5",
        }
        result = run_program("backup", "postgres", "--database", DB, "--at", AT, env=failing)
    finally:
        proxy.shutdown()
    assert result.returncode == FAILED, result.stderr
    assert "failed" in result.stderr and "500" in result.stderr
    after = versions(s3, bucket)
    assert set(earlier) <= set(after), "earlier backups untouched"
    assert not [
        k
        for k, _ in after
        if k.startswith(f"postgresql/{DB}/{STAMP}.") and not k.endswith(".claim")
    ], "neither a dump nor a manifest of the failed run"
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads"), "the upload was aborted"


def test_s3_unreachable_is_a_clear_failure(seeded: Postgres, env: dict[str, str]) -> None:
    closed = {**env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_MAX_ATTEMPTS": "2"}
    result = run_program(
        "backup", "postgres", "--database", DB, "--at", AT, env=closed, timeout=120
    )
    assert result.returncode == FAILED
    assert "error:" in result.stderr and "Traceback" not in result.stderr


def test_database_down_or_wrong_credentials_are_clear_errors(
    seeded: Postgres, env: dict[str, str], tmp_path: Path
) -> None:
    down = run_program(
        "backup", "postgres", "--at", AT, env={**env, "DATABASE_PORT": str(free_port())}
    )
    assert down.returncode == FAILED and "unreachable or down" in down.stderr, down.stderr
    wrong = {
        **env,
        "DATABASE_CREDENTIALS_DIR": str(seeded.credentials(tmp_path / "wrong", "not-the-password")),
    }
    refused = run_program("backup", "postgres", "--at", AT, env=wrong)
    assert refused.returncode == FAILED and "refused the credentials" in refused.stderr, (
        refused.stderr
    )
    missing = run_program(
        "backup", "postgres", env={**env, "DATABASE_CREDENTIALS_DIR": str(tmp_path / "none")}
    )
    assert missing.returncode == INVALID and "DATABASE_CREDENTIALS_DIR" in missing.stderr


def test_a_corrupt_or_truncated_dump_is_refused_before_the_target_is_touched(
    seeded: Postgres, moto: Moto, env: dict[str, str], bucket: str
) -> None:
    ok(run_program("backup", "postgres", "--database", DB, "--at", AT, env=env))
    s3 = moto.client("s3")
    key = f"postgresql/{DB}/{STAMP}.dump"
    dump = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    seeded.admin(f"DROP DATABASE {DB} WITH (FORCE)")
    manifest_key = f"postgresql/{DB}/{STAMP}.manifest.json"
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    assert manifest["version_id"], "the manifest names the version it describes"
    # a later write of the same key (another run) does not change what a restore reads
    s3.put_object(Bucket=bucket, Key=key, Body=b"another run's bytes")
    ok(run_program("restore", "postgres", "latest", "--database", DB, "--dry-run", env=env))
    for damaged in (dump[: len(dump) // 2], dump[:-1] + bytes([dump[-1] ^ 1])):
        # the version the manifest names holds damaged bytes (bit rot, a truncated copy)
        version = s3.put_object(Bucket=bucket, Key=key, Body=damaged)["VersionId"]
        damaged_manifest = json.dumps({**manifest, "version_id": version}).encode()
        s3.put_object(Bucket=bucket, Key=manifest_key, Body=damaged_manifest)
        result = run_program("restore", "postgres", "latest", "--database", DB, env=env)
        assert result.returncode == CORRUPT, result.stderr
        assert "does not match its manifest" in result.stderr
        assert DB not in seeded.admin("SELECT datname FROM pg_database"), "nothing was created"
    no_manifest = run_program(
        "restore", "postgres", f"s3://{bucket}/postgresql/{DB}/20200101T0000Z.dump", env=env
    )
    assert no_manifest.returncode == INVALID and "without its manifest" in no_manifest.stderr


def test_a_full_scratch_disk_is_a_clear_error(
    seeded: Postgres, env: dict[str, str], scratch: Path
) -> None:
    ok(run_program("backup", "postgres", "--database", DB, "--at", AT, env=env))
    seeded.admin(f"DROP DATABASE {DB} WITH (FORCE)")
    (scratch / f"{DB}-{STAMP}.dump").symlink_to("/dev/full")  # every write: ENOSPC
    result = run_program(
        "restore", "postgres", "latest", "--database", DB, "--scratch", str(scratch), env=env
    )
    assert result.returncode == FAILED
    assert "No space left on device" in result.stderr and "scratch" in result.stderr, result.stderr
    assert DB not in seeded.admin("SELECT datname FROM pg_database")


def test_too_little_scratch_space_is_refused_before_downloading(  # noqa: PLR0917 - fixtures
    seeded: Postgres,
    moto: Moto,
    bucket: str,
    env: dict[str, str],
    scratch: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ok(run_program("backup", "postgres", "--database", DB, "--at", AT, env=env))
    store = Store(bucket, moto.client("s3"))
    manifest = store.get_json(f"postgresql/{DB}/{STAMP}.manifest.json")
    assert manifest
    monkeypatch.setattr(
        shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10**9, 10**9 - 100, 100)
    )
    with pytest.raises(Exception, match="too small for the dump") as raised:
        pg_restore.fetch(store, manifest, scratch)
    assert getattr(raised.value, "code", None) == FAILED
    assert not list(scratch.iterdir())


# --- Redis ------------------------------------------------------------------------------------


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    server = Redis(tmp_path / "redis").start()
    server.commands(
        [
            ("SET", "session:1", "alice"),
            ("SET", "binary", "\x01\x02ünï\n\t"),
            ("HSET", "user:7", "name", "Ada", "orcid", "0000-0001"),
            ("RPUSH", "queue", "a", "b", "c"),
            ("SADD", "tags", "x", "y"),
            ("ZADD", "rank", "1", "p1", "2.5", "p2"),
            ("SET", "ttl:key", "v", "EX", "3600"),
        ]
    )
    server.commands([("SET", f"cache:{n}", "v" * (n % 50)) for n in range(500)], db=1)
    yield server
    server.stop()


def group(moto: Moto) -> str:
    name = f"cache-{uuid.uuid4().hex[:8]}"
    elasticache = moto.client("elasticache")
    elasticache.create_replication_group(
        ReplicationGroupId=name,
        ReplicationGroupDescription="test",
        Engine="redis",
        CacheNodeType="cache.t4g.small",
        NumCacheClusters=1,
    )
    # moto lists the member cluster without creating it; the restore reads its settings
    elasticache.create_cache_cluster(
        CacheClusterId=f"{name}-001",
        ReplicationGroupId=name,
        Engine="redis",
        CacheNodeType="cache.t4g.small",
        NumCacheNodes=1,
    )
    return name


def test_redis_export_backup_restore_is_identical(
    moto: Moto, bucket: str, redis: Redis, scratch: Path, tmp_path: Path
) -> None:
    before = redis.contents()
    fake = FakeElastiCache(moto, redis.save())
    cache = group(moto)
    store = Store(bucket, moto.client("s3"))
    when = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    assert (
        redis_backup.run(store, fake, cache, when, scratch, waiter=redis_backup.Waiter(0.01, 5))
        == "ok"
    )
    (export,) = fake.exports
    assert export["target"].startswith(f"redis/{STAMP}/") and export["bucket"] == bucket
    assert fake.deleted == [export["source"]], "the manual snapshot taken for the export is removed"
    manifest = store.get_json(f"redis/{STAMP}/manifest.json")
    assert manifest and manifest["keys"] == len(before) and manifest["expires"] == 1
    rdb = objects(moto.client("s3"), bucket, f"redis/{STAMP}/")[manifest["key"]]
    assert manifest["sha256"] == sha256(rdb)
    assert redis_backup.run(store, fake, cache, when, scratch) == "exists"
    assert len(fake.exports) == 1

    # the restore: a new server seeded from the export holds the same keys and values
    (tmp_path / "restored").mkdir()
    (tmp_path / "restored" / "dump.rdb").write_bytes(rdb)
    restored = Redis(tmp_path / "restored").start()
    try:
        assert restored.contents() == before
    finally:
        restored.stop()


def test_restore_redis_creates_a_new_group_from_the_export(
    moto: Moto, bucket: str, redis: Redis, scratch: Path, env: dict[str, str]
) -> None:
    fake = FakeElastiCache(moto, redis.save())
    cache = group(moto)
    store = Store(bucket, moto.client("s3"))
    redis_backup.run(
        store,
        fake,
        cache,
        datetime(2026, 11, 30, 2, 0, tzinfo=UTC),
        scratch,
        waiter=redis_backup.Waiter(0.01, 5),
    )
    dry = ok(
        run_program(
            "restore",
            "redis",
            "latest",
            "--target-group",
            "cache-restored",
            "--like",
            cache,
            "--dry-run",
            env=env,
        )
    )
    assert "SnapshotArns" in dry.stderr and f"arn:aws:s3:::{bucket}/redis/{STAMP}/" in dry.stderr
    assert "nothing was changed" in dry.stderr
    taken = run_program(
        "restore", "redis", "latest", "--target-group", cache, "--like", cache, env=env
    )
    assert taken.returncode == INVALID and "only into a new group" in taken.stderr
    ok(
        run_program(
            "restore",
            "redis",
            "latest",
            "--target-group",
            "cache-restored",
            "--like",
            cache,
            env=env,
        )
    )
    groups = moto.client("elasticache").describe_replication_groups(
        ReplicationGroupId="cache-restored"
    )
    assert groups["ReplicationGroups"][0]["ReplicationGroupId"] == "cache-restored"


# --- media ------------------------------------------------------------------------------------


MEDIA = {
    "papers/1/paper.pdf": os.urandom(300_000),
    "papers/1/figures/fig 1 (ñ).png": os.urandom(70_000),
    "avatars/empty.txt": b"",
    "deep/a/b/c/d.json": b'{"x": 1}',
}


def test_media_backup_wipe_restore_is_identical(
    moto: Moto, env: dict[str, str], bucket: str
) -> None:
    s3 = moto.client("s3")
    media = moto.bucket(f"media-{uuid.uuid4().hex[:8]}")
    for key, body in MEDIA.items():
        s3.put_object(Bucket=media, Key=key, Body=body)
    pdf = "papers/1/paper.pdf"
    s3.put_object(
        Bucket=media, Key=pdf, Body=MEDIA[pdf], ContentType="application/pdf",
        CacheControl="private, max-age=600", Metadata={"uploaded-by": "ada"},
    )  # fmt: skip
    job = {**env, "MEDIA_BUCKET": media}
    ok(run_program("backup", "media", "--at", AT, env=job))
    manifest = json.loads(
        objects(s3, bucket, f"application/{STAMP}/manifest.json")[
            f"application/{STAMP}/manifest.json"
        ]
    )
    assert {o["key"]: o["sha256"] for o in manifest["objects"]} == {
        k: sha256(v) for k, v in MEDIA.items()
    }
    for key in MEDIA:
        s3.delete_object(Bucket=media, Key=key)  # the wipe
    ok(run_program("restore", "media", "latest", env=job))
    assert objects(s3, media) == MEDIA
    head = s3.head_object(Bucket=media, Key=pdf)  # served as before, not as a download
    assert head["ContentType"] == "application/pdf"
    assert head["CacheControl"] == "private, max-age=600"
    assert head["Metadata"] == {"uploaded-by": "ada"}

    refused = run_program("restore", "media", "latest", env=job)
    assert refused.returncode == INVALID and "not empty" in refused.stderr
    other = moto.bucket(f"media-copy-{uuid.uuid4().hex[:8]}")
    ok(
        run_program(
            "restore",
            "media",
            f"s3://{bucket}/application/{STAMP}/media.tar.gz",
            "--target-bucket",
            other,
            env=job,
        )
    )
    assert objects(s3, other) == MEDIA


def test_a_corrupt_media_archive_is_refused_before_the_bucket_is_touched(
    moto: Moto, env: dict[str, str], bucket: str
) -> None:
    s3 = moto.client("s3")
    media = moto.bucket(f"media-{uuid.uuid4().hex[:8]}")
    s3.put_object(Bucket=media, Key="a.bin", Body=os.urandom(50_000))
    ok(run_program("backup", "media", "--at", AT, env={**env, "MEDIA_BUCKET": media}))
    key = f"application/{STAMP}/media.tar.gz"
    archive = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    version = s3.put_object(Bucket=bucket, Key=key, Body=archive[:-100])["VersionId"]
    manifest_key = f"application/{STAMP}/manifest.json"
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    s3.put_object(  # the version the manifest names is the damaged one
        Bucket=bucket,
        Key=manifest_key,
        Body=json.dumps({**manifest, "version_id": version}).encode(),
    )
    target = moto.bucket(f"media-empty-{uuid.uuid4().hex[:8]}")
    result = run_program("restore", "media", "latest", "--target-bucket", target, env=env)
    assert result.returncode == CORRUPT and objects(s3, target) == {}


# --- the restore test -------------------------------------------------------------------------


def test_restore_test_restores_every_store_and_catches_a_bad_backup(  # noqa: PLR0917 - fixtures
    seeded: Postgres, moto: Moto, env: dict[str, str], bucket: str, redis: Redis, scratch: Path
) -> None:
    s3 = moto.client("s3")
    media = moto.bucket(f"media-{uuid.uuid4().hex[:8]}")
    for key, body in MEDIA.items():
        s3.put_object(Bucket=media, Key=key, Body=body)
    ok(run_program("backup", "postgres", "--at", AT, env=env))
    ok(run_program("backup", "media", "--at", AT, env={**env, "MEDIA_BUCKET": media}))
    store = Store(bucket, s3)
    redis_backup.run(
        store,
        FakeElastiCache(moto, redis.save()),
        group(moto),
        datetime(2026, 11, 30, 2, 0, tzinfo=UTC),
        scratch,
        waiter=redis_backup.Waiter(0.01, 5),
    )

    result = ok(run_program("restore-test", "--scratch", str(scratch), "--jobs", "2", env=env))
    final = events(result.stdout)[-1]
    assert final["event"] == "restore-test" and final["result"] == "ok"
    assert final["stores"] == {"postgresql": "ok", "redis": "ok", "application": "ok"}
    checks = {e["store"]: e for e in events(result.stdout) if e["event"] == "restore-test-check"}
    assert checks["postgresql"]["databases"][DB]["rows"] == 4000 + 300 + 4000 + 2500
    assert checks["redis"]["keys"] == 507 and checks["application"]["objects"] == len(MEDIA)
    assert list(scratch.iterdir()) == [], "the throw-away servers and downloads are removed"

    # a backup whose restored tables differ from its manifest fails the test (exit 3)
    key = f"postgresql/{DB}/{STAMP}.manifest.json"
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    manifest["tables"]["library.papers"] = 3999
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest).encode())
    bad = run_program("restore-test", "--scratch", str(scratch), "--only", "postgresql", env=env)
    assert bad.returncode == CORRUPT
    final = events(bad.stdout)[-1]
    assert final["result"] == "failed" and "library.papers: 4000 rows, manifest 3999" in bad.stdout


def test_restore_test_fails_when_a_store_has_no_backup(env: dict[str, str], scratch: Path) -> None:
    result = run_program("restore-test", "--scratch", str(scratch), "--only", "redis", env=env)
    assert result.returncode == FAILED and "no Redis backup" in result.stdout


# --- command line -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [[], ["backup"], ["backup", "postgres"], ["backup", "redis"], ["backup", "media"],
     ["restore-test"], ["restore"], ["restore", "postgres"], ["restore", "redis"],
     ["restore", "media"]],
)  # fmt: skip
def test_every_command_has_help(command: list[str]) -> None:
    result = run_program(*command, "--help", env={})
    assert result.returncode == 0 and "usage: backup" in result.stdout


def test_bad_arguments_and_settings_name_what_is_wrong(env: dict[str, str]) -> None:
    bad_time = run_program("backup", "postgres", "--at", "yesterday", env=env)
    assert bad_time.returncode == INVALID and "--at 'yesterday'" in bad_time.stderr
    no_bucket = run_program(
        "backup", "postgres", env={k: v for k, v in env.items() if k != "BACKUP_BUCKET"}
    )
    assert no_bucket.returncode == INVALID and "BACKUP_BUCKET" in no_bucket.stderr
    no_media = run_program("backup", "media", env=env)
    assert no_media.returncode == INVALID and "MEDIA_BUCKET" in no_media.stderr
    bad_uri = run_program("restore", "postgres", "/tmp/x.dump", env=env)  # noqa: S108 - not opened
    assert bad_uri.returncode == INVALID and "s3://bucket/key" in bad_uri.stderr
    bad_jobs = run_program("restore", "postgres", "latest", "--jobs", "0", env=env)
    assert bad_jobs.returncode == INVALID and "--jobs" in bad_jobs.stderr


def test_the_scheduled_time_comes_from_the_cronjobs_job_name() -> None:
    # the CronJob controller names a Job <cronjob>-<scheduled time in minutes since the epoch>
    moment = scheduled_time(None, "backup-postgres-29407800")
    assert stamp(moment) == "20251130T0200Z"
    assert scheduled_time("2026-11-30T02:00:59+01:00", "ignored-1") == datetime(
        2026, 11, 30, 1, 0, tzinfo=UTC
    )
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert scheduled_time(None, None, now) == datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    # a Job created by hand under its own name is a manual run: the current minute
    assert scheduled_time(None, "backup-postgres-manual-2", now) == datetime(
        2026, 1, 2, 3, 4, tzinfo=UTC
    )


def test_modules_are_importable_from_the_image_layout() -> None:
    # the Dockerfile copies backup/ to /opt/backup and runs `python3 -m backup`
    assert media_backup.PREFIX == "application" and restore_test.STORES == (
        "postgresql",
        "redis",
        "application",
    )


def test_a_media_object_deleted_or_replaced_while_archiving_is_skipped_not_fatal(
    moto: Moto, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = moto.client("s3")
    media = Store(moto.bucket(f"media-{uuid.uuid4().hex[:8]}"), s3)
    s3.put_object(Bucket=media.bucket, Key="a.bin", Body=b"first")
    ((key, _, etag),) = list(media.objects(""))
    s3.put_object(Bucket=media.bucket, Key="a.bin", Body=b"replaced after the listing")
    s3.put_object(Bucket=media.bucket, Key="b.bin", Body=b"b")
    ((_, _, etag_b),) = [o for o in media.objects("") if o[0] == "b.bin"]
    s3.delete_object(Bucket=media.bucket, Key="b.bin")
    with open(os.devnull, "wb") as sink, tarfile.open(fileobj=sink, mode="w|gz") as archive:
        assert media_backup._archive_one(archive, media, key, etag) is None
        assert media_backup._archive_one(archive, media, "b.bin", etag_b) is None
    skipped = [e for e in events(capsys.readouterr().out) if e["event"] == "backup-skip"]
    assert [e["key"] for e in skipped] == ["a.bin", "b.bin"]


def test_replace_ends_open_sessions_and_a_second_replace_keeps_the_first_copy(
    seeded: Postgres, env: dict[str, str]
) -> None:
    ok(run_program("backup", "postgres", "--database", DB, "--at", AT, env=env))
    # an application session holding the database open (the server's pool)
    holder = subprocess.Popen(
        [tool("psql"), "-X", "-h", "127.0.0.1", "-p", str(seeded.port), "-U", PG_ROLE, "-d", DB,
         "-c", "SELECT pg_sleep(120)"],
        env={**os.environ, "PGPASSWORD": PG_PASSWORD},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        result = ok(run_program("restore", "postgres", "latest", "--replace", env=env))
        assert holder.wait(timeout=30) != 0, "its session was ended for the swap"
    finally:
        holder.kill()
    assert "not in a pg_dump archive" in result.stderr
    kept = f"{DB}_before_{STAMP.lower()}"
    assert kept in seeded.admin("SELECT datname FROM pg_database")
    allowed = seeded.admin(f"SELECT datallowconn FROM pg_database WHERE datname = '{kept}'")  # noqa: S608 - the test's own name
    assert allowed == "t", "the kept copy accepts connections again"
    again = run_program("restore", "postgres", "latest", "--replace", env=env)
    assert again.returncode == INVALID and kept in again.stderr, again.stderr
