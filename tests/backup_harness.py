"""Real servers for the backup program's tests, all on loopback: an S3 and ElastiCache API
(moto's server), a PostgreSQL cluster with password authentication and a role like the RDS
master (no superuser), and redis-server. Plus the fake at the boto3 boundary that moto lacks
(ElastiCache's CopySnapshot, the export to S3), and helpers to run the program as operators
and the CronJobs do: ``python -m backup`` in a subprocess with the jobs' environment."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import boto3
from moto.server import ThreadedMotoServer

REPO_ROOT = Path(__file__).resolve().parent.parent
PROGRAM = REPO_ROOT / "components" / "backups" / "program"
if str(PROGRAM) not in sys.path:
    sys.path.insert(0, str(PROGRAM))

REGION = "eu-west-1"
PG_ROLE = "exposcholar"
"""The role the jobs connect as: like the RDS master, it owns the databases and is no superuser."""
PG_PASSWORD = "correct-horse-battery"  # a throw-away local server's password, not a secret


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@functools.cache
def tool(name: str) -> str:
    """The full path of ``name``, one of the programs scripts/install-backup-tools.sh installs."""
    path = shutil.which(name)
    assert path, f"{name} missing: scripts/install-backup-tools.sh installs it (make test does)"
    return path


def pg_bindir() -> Path:
    config = shutil.which("pg_config")
    assert config, (
        "pg_config missing: scripts/install-backup-tools.sh installs PostgreSQL (make test does)"
    )
    bindir = Path(
        subprocess.run(
            [config, "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    assert (bindir / "initdb").exists(), f"{bindir}/initdb missing: install the postgresql package"
    return bindir


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL's server programs refuse root: run them as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def shared_folder(prefix: str) -> Path:
    """A folder the postgres user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(path, user="postgres")
    return path


@dataclass
class Postgres:
    """A PostgreSQL cluster on 127.0.0.1 with scram passwords over TCP."""

    folder: Path
    port: int = field(default_factory=free_port)

    def start(self) -> Postgres:
        bindir = pg_bindir()
        password_file = self.folder / "pw"
        password_file.write_text("postgres-local\n")
        if os.geteuid() == 0:
            shutil.chown(password_file, user="postgres")
        subprocess.run(
            as_postgres([str(bindir / "initdb"), "-D", str(self.folder / "data"), "-U", "postgres",
                         "--pwfile", str(password_file), "--auth-host=scram-sha-256",
                         "--auth-local=trust", "--no-sync", "-E", "UTF8"]),
            check=True, capture_output=True,
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} "
            f"-c unix_socket_directories='{self.folder}' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        subprocess.run(
            as_postgres([str(bindir / "pg_ctl"), "-D", str(self.folder / "data"), "-o", options,
                         "-l", str(self.folder / "log"), "-w", "start"]),
            check=True, capture_output=True,
        )  # fmt: skip
        self.admin(f"CREATE ROLE {PG_ROLE} LOGIN CREATEDB PASSWORD '{PG_PASSWORD}'")
        return self

    def stop(self) -> None:
        subprocess.run(
            as_postgres([str(pg_bindir() / "pg_ctl"), "-D", str(self.folder / "data"),
                         "-m", "immediate", "stop"]),
            check=False, capture_output=True,
        )  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)

    def admin(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the socket."""
        return self.psql(sql, database, user="postgres", host=str(self.folder))

    def psql(self, sql: str, database: str, *, user: str = PG_ROLE, host: str = "127.0.0.1") -> str:
        env = {
            **os.environ,
            "PGPASSWORD": PG_PASSWORD,
            "PGHOST": host,
            "PGPORT": str(self.port),
            "PGUSER": user,
        }
        result = subprocess.run(
            [tool("psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def checksums(self, database: str) -> dict[str, str]:
        """Every user table's contents, as one MD5 per table (row order independent)."""
        tables = self.psql(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
            database,
        ).splitlines()
        digest = "count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')"
        # the table names are the ones pg_tables lists, each through quote_ident
        return {
            table: self.psql(f"SELECT {digest} FROM {table} t", database)  # noqa: S608
            for table in tables
        }

    def credentials(self, folder: Path, password: str = PG_PASSWORD) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "username").write_text(PG_ROLE + "\n")
        (folder / "password").write_text(password + "\n")
        return folder


SEED_SQL = """
CREATE SCHEMA library;
CREATE TABLE library.papers (
    id bigserial PRIMARY KEY, title text NOT NULL, abstract text, published date,
    score numeric(6, 3), tags text[], meta jsonb, pdf bytea
);
CREATE TABLE library.authors (id serial PRIMARY KEY, name text UNIQUE NOT NULL, orcid text);
CREATE TABLE library.paper_authors (
    paper_id bigint REFERENCES library.papers ON DELETE CASCADE,
    author_id int REFERENCES library.authors, position smallint,
    PRIMARY KEY (paper_id, author_id)
);
CREATE TABLE public.events (
    id bigserial PRIMARY KEY, at timestamptz DEFAULT now(), kind text, payload jsonb
);
CREATE TABLE public.empty_table (id int);
CREATE INDEX papers_title ON library.papers (title);
CREATE VIEW library.recent AS SELECT id, title FROM library.papers WHERE published > '2020-01-01';
INSERT INTO library.authors (name, orcid)
    SELECT 'Author ' || g || ' Ñoño 学者', '0000-0002-' || lpad(g::text, 4, '0')
    FROM generate_series(1, 300) g;
INSERT INTO library.papers (title, abstract, published, score, tags, meta, pdf)
    SELECT 'Paper ' || g, CASE WHEN g % 7 = 0 THEN NULL ELSE repeat(md5(g::text), 20) END,
           date '2000-01-01' + g, g / 7.0, ARRAY['t' || (g % 5), 'x'],
           jsonb_build_object('n', g, 'quote', 'it''s "quoted"'), decode(md5(g::text), 'hex')
    FROM generate_series(1, 4000) g;
INSERT INTO library.paper_authors SELECT g, 1 + g % 300, 1 FROM generate_series(1, 4000) g;
INSERT INTO public.events (kind, payload)
    SELECT 'view', jsonb_build_object('paper', g) FROM generate_series(1, 2500) g;
"""


class Moto:
    """moto's server on loopback: S3 and ElastiCache."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> Moto:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",  # moto's, not a secret
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }

    def client(self, service: str) -> Any:
        env = self.environment()
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )

    def bucket(self, name: str, *, versioned: bool = True) -> str:
        s3 = self.client("s3")
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        if versioned:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name


def versions(s3: Any, bucket: str, prefix: str = "") -> list[tuple[str, str]]:
    """Every version of every key (and delete markers) under ``prefix``."""
    found = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        found += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
        found += [(m["Key"], "delete-marker") for m in page.get("DeleteMarkers", [])]
    return sorted(found)


def objects(s3: Any, bucket: str, prefix: str = "") -> dict[str, bytes]:
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return found


def run_program(
    *args: str, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m backup ARGS`` as the image runs it, with only ``env`` (plus PATH)."""
    full = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(PROGRAM),
        "HOME": os.environ.get("HOME", "/root"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "backup", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=timeout,
        check=False,
    )


def events(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@dataclass
class Redis:
    """A redis-server on loopback, saving its RDB into ``folder`` only when asked."""

    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Redis:
        server = shutil.which("redis-server")
        assert server, (
            "redis-server missing: scripts/install-backup-tools.sh installs it (make test does)"
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder), "--dbfilename", "dump.rdb"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(100):
            if self.cli("PING", check=False) == "PONG":
                return self
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def cli(self, *command: str, check: bool = True, db: int = 0) -> str:
        result = subprocess.run(
            [tool("redis-cli"), "-p", str(self.port), "-n", str(db), *command],
            capture_output=True,
            text=True,
            check=False,
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    READ: ClassVar[dict[str, tuple[str, ...]]] = {
        "string": ("GET",),
        "hash": ("HGETALL",),
        "list": ("LRANGE", "0", "-1"),
        "set": ("SMEMBERS",),
        "zset": ("ZRANGE", "0", "-1", "WITHSCORES"),
    }

    def commands(self, batch: list[tuple[str, ...]], db: int = 0) -> list[Any]:
        """Send commands over one connection (RESP, the bytes as they are) and return the
        replies: thousands of keys in a fraction of a second, where one redis-cli per command
        takes seconds."""
        with socket.create_connection(("127.0.0.1", self.port)) as connection:
            stream = connection.makefile("rwb")
            for command in [("SELECT", str(db)), *batch]:
                parts = [part.encode() for part in command]
                stream.write(b"*%d\r\n" % len(parts))
                for part in parts:
                    stream.write(b"$%d\r\n%s\r\n" % (len(part), part))
            stream.flush()
            replies = [_reply(stream) for _ in range(len(batch) + 1)]
        return replies[1:]

    def contents(self, dbs: tuple[int, ...] = (0, 1)) -> dict[str, tuple[str, bytes, bool]]:
        """Every key of ``dbs``: its type, its value (members of sets and hashes sorted, as
        their order is not part of the value) and whether it has a time to live."""
        found = {}
        for db in dbs:
            keys = [key.decode() for key in self.commands([("KEYS", "*")], db)[0]]
            kinds = [kind.decode() for kind in self.commands([("TYPE", k) for k in keys], db)]
            reads = [
                (self.READ[t][0], k, *self.READ[t][1:]) for k, t in zip(keys, kinds, strict=True)
            ]
            values = self.commands(reads, db)
            ttls = self.commands([("PTTL", k) for k in keys], db)
            for key, kind, value, ttl in zip(keys, kinds, values, ttls, strict=True):
                if kind == "hash":
                    pairs = zip(value[::2], value[1::2], strict=True)
                    flat = b"\n".join(sorted(b"=".join(pair) for pair in pairs))
                elif kind == "set":
                    flat = b"\n".join(sorted(value))
                else:
                    flat = value if isinstance(value, bytes) else b"\n".join(value)
                found[f"{db}/{key}"] = (kind, flat, ttl > 0)
        return found

    def save(self) -> Path:
        self.cli("SAVE")
        return self.folder / "dump.rdb"

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(timeout=10)


def _reply(stream: Any) -> Any:
    """One RESP reply: bytes, an integer, a list, or None."""
    line = stream.readline()
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        raise AssertionError(f"redis: {rest.decode()}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data = stream.read(size + 2)
        return data[:-2]
    if kind == b"*":
        return [_reply(stream) for _ in range(int(rest))]
    raise AssertionError(f"redis: unexpected reply {line!r}")


class FakeElastiCache:
    """moto's ElastiCache client (replication groups, snapshots), with the export that moto
    does not implement (CopySnapshot to S3 answers HTTP 500 there): it writes the RDB that the
    real service would export, ``<TargetSnapshotName>-0001.rdb`` in the target bucket, like
    ElastiCache does through the bucket's grant. Everything else is moto's."""

    def __init__(self, moto: Moto, rdb: Path) -> None:
        self._client = moto.client("elasticache")
        self._s3 = moto.client("s3")
        self.rdb = rdb
        self.exports: list[dict[str, str]] = []
        self.deleted: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def describe_snapshots(self, **arguments: Any) -> Any:
        reply = self._client.describe_snapshots(**arguments)
        for snapshot in reply["Snapshots"]:
            snapshot["SnapshotStatus"] = "available"  # moto's snapshots stay "creating"
        return reply

    def copy_snapshot(  # boto3's parameter names
        self,
        *,
        SourceSnapshotName: str,  # noqa: N803
        TargetSnapshotName: str,  # noqa: N803
        TargetBucket: str,  # noqa: N803
    ) -> Any:
        self.exports.append(
            {"source": SourceSnapshotName, "target": TargetSnapshotName, "bucket": TargetBucket}
        )
        self._s3.put_object(
            Bucket=TargetBucket, Key=f"{TargetSnapshotName}-0001.rdb", Body=self.rdb.read_bytes()
        )
        return {"Snapshot": {"SnapshotName": TargetSnapshotName, "SnapshotStatus": "exporting"}}

    def delete_snapshot(self, *, SnapshotName: str) -> Any:  # noqa: N803 - boto3's names
        self.deleted.append(SnapshotName)
        return self._client.delete_snapshot(SnapshotName=SnapshotName)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def each(iterable: Iterator[Any]) -> list[Any]:
    return list(iterable)
