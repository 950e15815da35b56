"""PostgreSQL: the connection settings of the jobs, the client and server binaries, and a
psql session held open over pipes (one snapshot shared with pg_dump).

The jobs connect like the server does: ``DATABASE_HOST``, ``DATABASE_PORT``,
``DATABASE_SSLMODE`` and the ``username`` and ``password`` files in
``DATABASE_CREDENTIALS_DIR`` (the database Secret, mounted). The RDS master user is not a
superuser, so each database is dumped on its own (``pg_dump``) and the globals without role
passwords (``pg_dumpall --globals-only --no-role-passwords``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from backup.errors import BackupError, InvalidInputError

SYSTEM_DATABASES = ("template0", "template1", "rdsadmin")


@dataclass(frozen=True)
class Connection:
    """Where a PostgreSQL server is and who connects (libpq's environment)."""

    host: str
    port: int
    user: str
    password: str
    sslmode: str = "prefer"
    sslrootcert: str = ""

    @classmethod
    def from_environment(cls, env: dict[str, str] | None = None) -> Connection:
        env = dict(os.environ if env is None else env)
        host = env.get("DATABASE_HOST", "")
        if not host:
            raise InvalidInputError("DATABASE_HOST is not set (the PostgreSQL server's address)")
        port_text = env.get("DATABASE_PORT", "5432")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidInputError(f"DATABASE_PORT {port_text!r} is not a port number")
        folder = env.get("DATABASE_CREDENTIALS_DIR", "")
        if not folder:
            raise InvalidInputError(
                "DATABASE_CREDENTIALS_DIR is not set (a folder with the files username and "
                "password: the database Secret)"
            )
        user, password = (_credential(Path(folder), name) for name in ("username", "password"))
        return cls(
            host=host,
            port=int(port_text),
            user=user,
            password=password,
            sslmode=env.get("DATABASE_SSLMODE", "prefer") or "prefer",
            sslrootcert=env.get("DATABASE_SSLROOTCERT", ""),
        )

    def environment(self, database: str = "postgres") -> dict[str, str]:
        """The environment for a libpq client (the password never on a command line)."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("PG") and key != "DATABASE_PASSWORD"
        }
        env.update(
            PGHOST=self.host,
            PGPORT=str(self.port),
            PGUSER=self.user,
            PGPASSWORD=self.password,
            PGDATABASE=database,
            PGSSLMODE=self.sslmode,
            PGCONNECT_TIMEOUT="15",
            PGAPPNAME="exposcholar-backup",
        )
        if self.sslrootcert:
            env["PGSSLROOTCERT"] = self.sslrootcert
        return env

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


def _credential(folder: Path, name: str) -> str:
    path = folder / name
    try:
        value = path.read_text().strip()
    except OSError as error:
        raise InvalidInputError(
            f"cannot read {path} ({error.strerror}): DATABASE_CREDENTIALS_DIR must hold the "
            "files username and password"
        ) from None
    if not value:
        raise InvalidInputError(f"{path} is empty: expected the database {name}")
    return value


def binary(name: str) -> str:
    """A PostgreSQL program: ``PG_BINDIR`` when set, else PATH, else ``pg_config --bindir``
    (Debian keeps the server programs off PATH)."""
    folder = os.environ.get("PG_BINDIR")
    if folder:
        path = Path(folder) / name
        if not path.exists():
            raise InvalidInputError(f"PG_BINDIR {folder} has no {name}")
        return str(path)
    found = shutil.which(name)
    if found:
        return found
    config = shutil.which("pg_config")
    if config:
        bindir = subprocess.run(
            [config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if bindir and (Path(bindir) / name).exists():
            return str(Path(bindir) / name)
    raise BackupError(f"{name} not found (install PostgreSQL's programs or set PG_BINDIR)")


def connect_error(stderr: str, connection: Connection, database: str) -> BackupError:
    """A clear error for a failed client run: unreachable, refused credentials, or other."""
    text = stderr.strip().splitlines()
    detail = text[-1] if text else "no output"
    lowered = stderr.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return BackupError(
            f"PostgreSQL refused the credentials of {connection} for database {database!r}: "
            f"{detail} (check the database Secret)"
        )
    if "could not connect" in lowered or "connection to server" in lowered or "timeout" in lowered:
        return BackupError(
            f"PostgreSQL at {connection.host}:{connection.port} is unreachable or down "
            f"(database {database!r}): {detail}"
        )
    return BackupError(f"PostgreSQL ({connection}, database {database!r}): {detail}")


def query(connection: Connection, database: str, sql: str) -> list[list[str]]:
    """Rows of one query (unaligned, tab-separated)."""
    result = subprocess.run(
        [binary("psql"), "-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True,
        text=True,
        env=connection.environment(database),
        check=False,
    )
    if result.returncode != 0:
        raise connect_error(result.stderr, connection, database)
    return [line.split("\t") for line in result.stdout.splitlines() if line]


def databases(connection: Connection) -> list[str]:
    """Every database a backup covers: all that accept connections but the templates and
    RDS's own."""
    rows = query(
        connection,
        "postgres",
        "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1",
    )
    return [row[0] for row in rows if row[0] not in SYSTEM_DATABASES]


TABLES_SQL = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
ORDER BY 1
"""


def row_counts(connection: Connection, database: str) -> dict[str, int]:
    """Exact row count of every user table (the restore's comparison)."""
    tables = [row[0] for row in query(connection, database, TABLES_SQL)]
    if not tables:
        return {}
    sql = " UNION ALL ".join(
        # the names are the server's own quote_ident output (TABLES_SQL)
        f"SELECT '{t.replace(chr(39), chr(39) * 2)}', count(*) FROM {t}"  # noqa: S608
        for t in tables
    )
    return {name: int(count) for name, count in query(connection, database, sql)}


class Session:
    """A psql process kept open: a REPEATABLE READ transaction whose snapshot pg_dump shares
    (``--snapshot``), so the manifest's row counts are those of the dump itself."""

    MARK = "__exposcholar_backup_done__"

    def __init__(self, connection: Connection, database: str) -> None:
        self._connection = connection
        self._database = database
        self._process = subprocess.Popen(
            [binary("psql"), "-X", "-A", "-t", "-q", "-F", "\t", "-v", "ON_ERROR_STOP=1"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=connection.environment(database),
        )

    def run(self, sql: str) -> list[list[str]]:
        stdin, stdout = self._process.stdin, self._process.stdout
        if stdin is None or stdout is None:
            raise BackupError("psql was started without pipes")
        try:
            stdin.write(f"{sql.strip().rstrip(';')};\n\\echo {self.MARK}\n")
            stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._failure() from None
        rows: list[list[str]] = []
        for raw in stdout:
            line = raw.rstrip("\n")
            if line == self.MARK:
                return rows
            if line:
                rows.append(line.split("\t"))
        raise self._failure()

    def _failure(self) -> BackupError:
        self._process.kill()
        stderr = self._process.stderr.read() if self._process.stderr else ""
        return connect_error(stderr, self._connection, self._database)

    def close(self) -> None:
        if self._process.poll() is None:
            stdin = self._process.stdin
            try:
                if stdin is None:
                    raise OSError("no pipe")
                stdin.write("COMMIT;\n\\q\n")
                stdin.close()
                self._process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
