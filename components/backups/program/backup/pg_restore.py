"""PostgreSQL restores: into the restore test's throw-away server, and the operator's
``restore postgres`` into a real one.

Both download the dump to the scratch folder (``pg_restore -j`` cannot read a pipe) and check
its size and SHA-256 against the manifest before anything else; a damaged dump stops there.
The operator's restore never restores over a database: it restores into a new database,
checks its tables and row counts against the manifest, and only then swaps names, keeping
the previous database under ``<name>_before_<stamp>`` (nothing is lost, and going back is a
rename)."""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backup import pg
from backup.errors import BackupError, CorruptBackupError, InvalidInputError
from backup.log import event, say
from backup.pg_backup import GLOBALS, PREFIX
from backup.store import Store

MAX_NAME = 63


def fetch(store: Store, manifest: dict[str, Any], scratch: Path) -> Path:
    """The dump in ``scratch``, verified against its manifest."""
    name = f"{manifest.get('database', 'db')}-{manifest['scheduled']}.dump"
    return store.download(manifest, scratch / name, "the dump")


def pg_restore(
    connection: pg.Connection, database: str, dump: Path, jobs: int, *, privileges: bool
) -> None:
    """``pg_restore -j`` into an existing empty database, stopping at the first error."""
    command = [
        pg.binary("pg_restore"),
        "-w",
        "--exit-on-error",
        "--no-owner",
        "-j",
        str(jobs),
        "-d",
        database,
    ]
    if not privileges:
        command.append("--no-privileges")
    result = subprocess.run(
        [*command, str(dump)],
        capture_output=True,
        text=True,
        env=connection.environment(database),
        check=False,
    )
    if result.returncode != 0:
        detail = result.stderr.strip()
        if "No space left on device" in detail or "could not extend file" in detail:
            raise BackupError(
                f"the disk of {connection.host} is full while restoring into {database!r}: "
                f"{detail[-500:]}"
            )
        if (
            "could not read input file" in detail
            or "input file appears to be" in detail
            or "unexpected end of file" in detail
        ):
            raise CorruptBackupError(
                f"{dump} is not a readable custom-format dump: {detail[-500:]}"
            )
        raise pg.connect_error(detail, connection, database)


def differences(expected: dict[str, int], found: dict[str, int]) -> list[str]:
    """What differs between the manifest's tables and row counts and the restored ones."""
    lines = [f"table {t} missing" for t in sorted(set(expected) - set(found))]
    lines += [f"table {t} not in the backup" for t in sorted(set(found) - set(expected))]
    lines += [
        f"table {t}: {found[t]} rows, manifest {expected[t]}"
        for t in sorted(set(expected) & set(found))
        if found[t] != expected[t]
    ]
    return lines


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Target:
    """The database a restore replaces: whether it exists and how many user tables it has."""

    name: str
    exists: bool
    tables: int


def inspect(connection: pg.Connection, name: str) -> Target:
    exists = bool(
        pg.query(
            connection,
            "postgres",
            # a literal with its quotes doubled
            f"SELECT 1 FROM pg_database WHERE datname = '{name.replace(chr(39), chr(39) * 2)}'",  # noqa: S608
        )
    )
    tables = len(pg.query(connection, name, pg.TABLES_SQL)) if exists else 0
    return Target(name, exists, tables)


def restore(
    store: Store,
    key: str,
    manifest: dict[str, Any],
    connection: pg.Connection,
    *,
    target: str,
    replace: bool,
    dry_run: bool,
    jobs: int,
    scratch: Path,
) -> None:
    """The operator's restore (module docstring)."""
    when = str(manifest["scheduled"])
    kept = f"{target}_before_{when.lower()}"
    staging = f"{target}_restore_{secrets.token_hex(3)}"
    if len(kept) > MAX_NAME or len(staging) > MAX_NAME:
        raise InvalidInputError(
            f"database name {target!r} is too long to keep the previous copy beside it "
            f"({MAX_NAME} characters at most)"
        )
    current = inspect(connection, target)
    if current.tables and not replace:
        raise InvalidInputError(
            f"database {target!r} on {connection.host} is not empty ({current.tables} tables): "
            "pass --replace to restore over it (the current database is kept as "
            f"{kept!r}), or --target-database to restore beside it"
        )
    if current.exists and inspect(connection, kept).exists:
        raise InvalidInputError(
            f"database {kept!r} (the copy an earlier restore of this backup kept) exists on "
            f"{connection.host}: drop or rename it first"
        )
    source = store.uri(manifest["key"])
    if dry_run:
        store.verify(
            manifest["key"],
            size=int(manifest["size"]),
            sha256=manifest["sha256"],
            version_id=str(manifest.get("version_id", "")),
        )
        say(
            f"dry run: {source} verified ({manifest['size']:,} bytes, SHA-256 matches "
            f"{store.uri(key)})"
        )
        say(
            f"would restore it ({len(manifest.get('tables', {}))} tables) into database "
            f"{target!r} on {connection.host}"
        )
        if current.exists:
            say(f"would keep the current {target!r} ({current.tables} tables) as {kept!r}")
        say("nothing was changed")
        return
    dump = fetch(store, manifest, scratch)
    try:
        # template0: nothing added to template1 on the server can collide with the dump
        pg.query(
            connection, "postgres", f"CREATE DATABASE {_identifier(staging)} TEMPLATE template0"
        )
        try:
            pg_restore(connection, staging, dump, jobs, privileges=True)
            found = pg.row_counts(connection, staging)
            wrong = differences(manifest.get("tables", {}), found)
            if wrong:
                raise CorruptBackupError(
                    f"the restored copy of {source} does not match its manifest: "
                    + "; ".join(wrong[:20])
                )
        except BaseException:
            pg.query(
                connection,
                "postgres",
                f"DROP DATABASE IF EXISTS {_identifier(staging)} WITH (FORCE)",
            )
            raise
    finally:
        dump.unlink(missing_ok=True)
    _swap(connection, target=target, kept=kept if current.exists else "", staging=staging)
    rows = sum(found.values())
    event(
        "restore",
        kind=PREFIX,
        source=source,
        database=target,
        host=connection.host,
        tables=len(found),
        rows=rows,
        kept=kept if current.exists else None,
        result="ok",
    )
    say(
        f"restored {source} into database {target!r} on {connection.host}: {len(found)} tables, "
        f"{rows:,} rows, matching its manifest"
    )
    if current.exists:
        say(
            f"the previous {target!r} is kept as {kept!r}; when satisfied: DROP DATABASE "
            f"{_identifier(kept)};"
        )
    say(
        "database-level settings (ALTER DATABASE ... SET) and grants on the database itself are "
        "not in a pg_dump archive: re-apply any the previous database had"
    )
    globals_key = manifest.get("globals", {}).get("key")
    if globals_key:
        say(
            f"roles and tablespaces (without passwords) are in {store.uri(globals_key)}, if the "
            "target lacks them"
        )


def databases_with_backups(store: Store) -> list[str]:
    """The databases that have at least one manifest under ``postgresql/``."""
    names = set()
    for key, _ in store.keys(f"{PREFIX}/"):
        parts = key.split("/")
        if len(parts) == 3 and parts[2].endswith(".manifest.json") and parts[1] != GLOBALS:
            names.add(parts[1])
    return sorted(names)


def query_create(connection: pg.Connection, database: str) -> None:
    """Create an empty database (the restore test's target)."""
    pg.query(connection, "postgres", f"CREATE DATABASE {_identifier(database)}")


def _swap(connection: pg.Connection, *, target: str, kept: str, staging: str) -> None:
    """Put the restored database in place in one session: refuse new connections to the
    current one, end its sessions and wait for them to go, rename it to ``kept``, then the
    restored one to ``target``. On a failure, the current database is put back as it was and
    the error names the restored copy, which is left in place for the operator."""
    quoted = target.replace("'", "''")
    session = pg.Session(connection, "postgres")
    step = "the swap"
    try:
        if kept:
            step = "refusing new connections"
            session.run(f"ALTER DATABASE {_identifier(target)} ALLOW_CONNECTIONS false")
            step = "ending the sessions"
            session.run(
                "DO $$ BEGIN PERFORM pg_terminate_backend(pid) FROM pg_stat_activity"  # noqa: S608
                f" WHERE datname = '{quoted}' AND pid <> pg_backend_pid();"
                " FOR i IN 1..100 LOOP EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity"
                f" WHERE datname = '{quoted}' AND pid <> pg_backend_pid());"
                " PERFORM pg_sleep(0.1); END LOOP; END $$"
            )
            step = f"renaming {target!r} to {kept!r}"
            session.run(f"ALTER DATABASE {_identifier(target)} RENAME TO {_identifier(kept)}")
            session.run(f"ALTER DATABASE {_identifier(kept)} ALLOW_CONNECTIONS true")
        step = f"renaming the restored copy to {target!r}"
        session.run(f"ALTER DATABASE {_identifier(staging)} RENAME TO {_identifier(target)}")
    except BackupError as error:
        _undo(connection, target=target, kept=kept)
        raise BackupError(
            f"{step} failed ({error}); the current database is back in place, and the restored "
            f"copy is database {staging!r} (drop it, or retry)"
        ) from None
    finally:
        session.close()


def _undo(connection: pg.Connection, *, target: str, kept: str) -> None:
    """Best effort: the current database back under its name, accepting connections."""
    if not kept:
        return
    for sql in (
        f"ALTER DATABASE {_identifier(kept)} RENAME TO {_identifier(target)}",
        f"ALTER DATABASE {_identifier(target)} ALLOW_CONNECTIONS true",
    ):
        try:
            pg.query(connection, "postgres", sql)
        except BackupError:
            continue
