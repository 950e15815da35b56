"""``backup postgres``: each database dumped in custom format, streamed to S3 under
``postgresql/<database>/<stamp>.dump``, its manifest written last beside it.

Per database: if the manifest of this schedule exists the run has nothing to do; otherwise it
takes the schedule's claim (``store.Claim``), opens a REPEATABLE READ transaction, exports its
snapshot, and runs ``pg_dump -Fc --snapshot`` streaming into a multipart upload while the same
transaction counts every table's rows, so the manifest's counts are exactly the dump's. The
manifest (size, SHA-256, duration, server version, row counts, the globals file) is written
only after the dump object is complete, and only if absent. Any failure aborts the upload: no
manifest, no partial object, earlier backups untouched. One database failing does not stop
the others; the exit status reports it.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from backup import pg
from backup.errors import BackupError
from backup.log import event
from backup.schedule import stamp
from backup.store import READ_CHUNK, Claim, Store, Written, begin

PREFIX = "postgresql"
GLOBALS = "@globals"
"""The folder of the roles and tablespaces file (``@`` cannot start a database name
here: the program refuses such names, so the folder never collides with one)."""


def dump_key(database: str, when: str) -> str:
    return f"{PREFIX}/{database}/{when}.dump"


def manifest_key(database: str, when: str) -> str:
    return f"{PREFIX}/{database}/{when}.manifest.json"


@dataclass(frozen=True)
class Outcome:
    database: str
    result: str
    """``ok``, ``exists`` (this schedule's backup was already there), ``held`` (another run
    is writing it) or ``failed``."""
    detail: str = ""


def run(
    store: Store,
    connection: pg.Connection,
    when: datetime,
    *,
    only: list[str] | None = None,
    job: str = "",
) -> list[Outcome]:
    """Back up every database (or ``only`` these); one outcome per database."""
    moment = stamp(when)
    names = only or pg.databases(connection)
    for name in names:
        if name.startswith("@") or "/" in name:
            raise BackupError(f"database name {name!r} cannot be a backup folder")
    version = pg.query(connection, "postgres", "SHOW server_version")[0][0]
    globals_written = _globals(store, connection, moment)
    outcomes = []
    for name in names:
        try:
            outcomes.append(
                _database(
                    store,
                    connection=connection,
                    database=name,
                    moment=moment,
                    version=version,
                    globals_written=globals_written,
                    job=job,
                )
            )
        except BackupError as error:
            event(
                "backup",
                kind=PREFIX,
                database=name,
                scheduled=moment,
                result="failed",
                error=str(error),
            )
            outcomes.append(Outcome(name, "failed", str(error)))
    return outcomes


def _globals(store: Store, connection: pg.Connection, moment: str) -> dict[str, Any]:
    """Roles and tablespaces without passwords (the master user may not read them)."""
    key = f"{PREFIX}/{GLOBALS}/{moment}.sql"
    result = subprocess.run(
        [pg.binary("pg_dumpall"), "--globals-only", "--no-role-passwords", "-w"],
        capture_output=True,
        env=connection.environment("postgres"),
        check=False,
    )
    if result.returncode != 0:
        raise pg.connect_error(result.stderr.decode(errors="replace"), connection, "postgres")
    if not store.put_bytes(key, result.stdout, only_if_absent=True):
        existing = store.read(key)  # this schedule's, from an earlier run: keep it
        return {"key": key, "size": len(existing), "sha256": hashlib.sha256(existing).hexdigest()}
    return {
        "key": key,
        "size": len(result.stdout),
        "sha256": hashlib.sha256(result.stdout).hexdigest(),
    }


def _database(
    store: Store,
    *,
    connection: pg.Connection,
    database: str,
    moment: str,
    version: str,
    globals_written: dict[str, Any],
    job: str,
) -> Outcome:
    manifest = manifest_key(database, moment)
    claim = begin(
        store,
        manifest=manifest,
        claim=f"{PREFIX}/{database}/{moment}.claim",
        job=job,
        kind=PREFIX,
        database=database,
        scheduled=moment,
    )
    if isinstance(claim, str):
        return Outcome(database, claim)
    try:
        return _dump(
            store,
            connection=connection,
            database=database,
            moment=moment,
            version=version,
            globals_written=globals_written,
            claim=claim,
        )
    finally:
        claim.release()


def _dump(
    store: Store,
    *,
    connection: pg.Connection,
    database: str,
    moment: str,
    version: str,
    globals_written: dict[str, Any],
    claim: Claim,
) -> Outcome:
    started = time.monotonic()
    started_at = datetime.now(UTC)
    session = pg.Session(connection, database)
    try:
        session.run("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot = session.run("SELECT pg_export_snapshot()")[0][0]
        counts: dict[str, int] = {}
        failure: list[BaseException] = []

        def count() -> None:
            try:
                tables = [row[0] for row in session.run(pg.TABLES_SQL)]
                for table in tables:
                    quoted = table.replace("'", "''")
                    # the names are the server's own quote_ident output (TABLES_SQL)
                    rows = session.run(f"SELECT '{quoted}', count(*) FROM {table}")  # noqa: S608
                    counts[rows[0][0]] = int(rows[0][1])
            except BaseException as error:  # reported after the dump
                failure.append(error)

        counter = threading.Thread(target=count, daemon=True)
        counter.start()
        written = _stream_dump(
            store, connection, database=database, moment=moment, snapshot=snapshot, claim=claim
        )
        counter.join()
        if failure:
            raise BackupError(f"counting the rows of {database!r} failed: {failure[0]}")
    finally:
        session.close()
    if not claim.confirm():
        raise BackupError(
            f"another run took over the backup of {database!r} at {moment}: this run's dump "
            f"{store.uri(written.key)} is left without a manifest and does not count"
        )
    document = {
        "kind": PREFIX,
        "format": "custom",
        "database": database,
        "scheduled": moment,
        "key": written.key,
        "size": written.size,
        "sha256": written.sha256,
        "version_id": written.version_id,
        "started": started_at.isoformat(),
        "duration_seconds": round(time.monotonic() - started, 3),
        "server_version": version,
        "pg_dump_version": _version("pg_dump"),
        "tables": counts,
        "globals": globals_written,
    }
    manifest = manifest_key(database, moment)
    if not store.put_json(manifest, document, only_if_absent=True):
        event(
            "backup",
            kind=PREFIX,
            database=database,
            scheduled=moment,
            result="exists",
            manifest=store.uri(manifest),
        )
        return Outcome(database, "exists", "another run wrote the manifest first")
    event(
        "backup",
        kind=PREFIX,
        database=database,
        scheduled=moment,
        result="ok",
        key=store.uri(written.key),
        size=written.size,
        sha256=written.sha256,
        tables=len(counts),
        rows=sum(counts.values()),
        duration_seconds=document["duration_seconds"],
    )
    return Outcome(database, "ok")


def _stream_dump(
    store: Store,
    connection: pg.Connection,
    *,
    database: str,
    moment: str,
    snapshot: str,
    claim: Claim,
) -> Written:
    """pg_dump's output into a multipart upload; aborted on any failure."""
    key = dump_key(database, moment)
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            [pg.binary("pg_dump"), "-Fc", "-w", f"--snapshot={snapshot}", "-d", database],
            stdout=subprocess.PIPE,
            stderr=errors,
            env=connection.environment(database),
        )
        if process.stdout is None:
            raise BackupError("pg_dump was started without a pipe")
        writer = store.writer(key)
        try:
            while chunk := process.stdout.read(READ_CHUNK):
                writer.write(chunk)
                if claim.lost:
                    raise BackupError(f"another run took over the backup of {database!r}")
            if process.wait() != 0:
                errors.seek(0)
                raise pg.connect_error(errors.read().decode(errors="replace"), connection, database)
            return writer.close()
        except BaseException:
            process.kill()
            process.wait()
            writer.abort()
            raise


def _version(program: str) -> str:
    result = subprocess.run(
        [pg.binary(program), "--version"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip()
