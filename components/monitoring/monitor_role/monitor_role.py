"""Creates or updates the PostgreSQL role postgres_exporter logs in as (``monitor_role.sql``),
with the RDS master credentials: the program of the ``postgres-monitor-role`` Job, run by the
backup image's ``python3`` (standard library only) with its ``psql`` and RDS CA bundle.

Environment (the Job's): ``DATABASE_HOST``, ``DATABASE_PORT``, ``DATABASE_NAME``,
``DATABASE_SSLMODE`` and ``DATABASE_SSLROOTCERT`` (libpq's checks of the server's
certificate), ``DATABASE_CREDENTIALS_DIR`` (the master's ``username`` and ``password`` files,
the synced Secret), ``MONITOR_ROLE`` (the role's name) and ``MONITOR_PASSWORD_FILE`` (its
password, generated in the cluster). The password leaves the pod only as a SCRAM-SHA-256
verifier (salted, 4096 iterations, what the server would store), so neither the server's logs
nor ``pg_stat_activity`` ever show it.

Exit codes: 0 done, 1 psql failed (the server unreachable or refusing: the Job retries),
2 bad input (a retry would fail the same way: the Job stops at once).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

SQL = Path(__file__).with_name("monitor_role.sql")
ITERATIONS = 4096
"""PostgreSQL's own default (``scram_iterations``)."""
SALT_BYTES = 16
ROLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
"""A plain lower-case identifier: no quoting surprises, and never a reserved ``pg_`` role."""
MIN_PASSWORD = 16
EXIT_FAILED, EXIT_INPUT = 1, 2


class InputError(Exception):
    """Bad or missing input: retrying cannot help."""


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier of ``password`` (RFC 5802 and 7677), in the form PostgreSQL
    stores and accepts in place of a password. ``password`` is printable ASCII, which SASLprep
    leaves as it is."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _required(env: Mapping[str, str], key: str) -> str:
    value = env.get(key, "")
    if not value:
        raise InputError(f"{key} is not set")
    return value


def _read(path: Path, what: str) -> str:
    try:
        value = path.read_text().strip()
    except OSError as error:
        raise InputError(f"cannot read {what} from {path} ({error.strerror})") from None
    if not value:
        raise InputError(f"{path} is empty: expected {what}")
    return value


def script(role: str, database: str, verifier: str) -> str:
    """``monitor_role.sql`` with its variables set first (on psql's standard input: nothing
    secret on a command line)."""
    for name, value in (("database", database), ("verifier", verifier)):
        if "'" in value or "\\" in value or "\n" in value:
            raise InputError(f"{name} has a quote, a backslash or a line break")
    return (
        f"\\set role '{role}'\n\\set database '{database}'\n\\set verifier '{verifier}'\n"
        + SQL.read_text()
    )


def run(env: Mapping[str, str]) -> int:
    role = _required(env, "MONITOR_ROLE")
    if not ROLE.fullmatch(role) or role.startswith("pg_"):
        raise InputError(f"MONITOR_ROLE {role!r} is not a plain lower-case identifier")
    database = _required(env, "DATABASE_NAME")
    password = _read(Path(_required(env, "MONITOR_PASSWORD_FILE")), "the monitoring password")
    if len(password) < MIN_PASSWORD or not (password.isascii() and password.isprintable()):
        raise InputError(f"the monitoring password is not {MIN_PASSWORD}+ printable ASCII")
    folder = Path(_required(env, "DATABASE_CREDENTIALS_DIR"))
    user, master_password = (_read(folder / name, f"the master {name}") for name in
                             ("username", "password"))  # fmt: skip
    if user == role:
        raise InputError("the monitoring role cannot be the master user")
    psql = shutil.which("psql")
    if psql is None:
        raise InputError("psql is not on PATH")
    libpq = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    libpq.update(
        PGHOST=_required(env, "DATABASE_HOST"),
        PGPORT=env.get("DATABASE_PORT", "5432"),
        PGUSER=user,
        PGPASSWORD=master_password,
        PGDATABASE=database,
        PGSSLMODE=env.get("DATABASE_SSLMODE", "verify-full"),
        PGCONNECT_TIMEOUT="15",
        PGAPPNAME="exposcholar-monitor-role",
    )
    if env.get("DATABASE_SSLROOTCERT"):
        libpq["PGSSLROOTCERT"] = env["DATABASE_SSLROOTCERT"]
    result = subprocess.run(  # noqa: S603 - psql from PATH, the script on its stdin
        [psql, "-X", "-q", "-f", "-"],
        input=script(role, database, scram_verifier(password)),
        text=True, env=libpq, capture_output=True, check=False,
    )  # fmt: skip
    sys.stderr.write(result.stderr)
    if result.returncode != 0:
        print(f"monitor role {role}: psql failed ({result.returncode})", file=sys.stderr)
        return EXIT_FAILED
    print(f"monitor role {role}: LOGIN, pg_monitor, CONNECT on {database}; password set")
    return 0


def main() -> int:
    try:
        return run(os.environ)
    except InputError as error:
        print(f"monitor role: {error}", file=sys.stderr)
        return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
