"""Throw-away servers for the restore test, inside the pod's scratch volume: a PostgreSQL
cluster (initdb, listening only on a Unix socket) and a redis-server loading an exported RDB.
Both are stopped and their files removed when the test ends.

PostgreSQL refuses to run as root; run as root (an operator's shell, a CI machine), the
server programs are started as ``RESTORE_TEST_OS_USER`` (default ``postgres``) through
``runuser``. In the pod the program runs as an unprivileged user and starts them itself."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from backup import pg
from backup.errors import BackupError, InvalidInputError


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    user = os.environ.get("RESTORE_TEST_OS_USER", "postgres")
    runuser = shutil.which("runuser")
    if not runuser:
        raise BackupError(
            "running as root, PostgreSQL must run as another user, and runuser is missing"
        )
    return [runuser, "-u", user, "--", *command]


def _chown_for_server(path: Path) -> None:
    if os.geteuid() == 0:
        user = os.environ.get("RESTORE_TEST_OS_USER", "postgres")
        shutil.chown(path, user=user, group=None)


class LocalPostgres:
    """A PostgreSQL cluster in ``folder``: no TCP, trust over its own socket, fsync off (a
    throw-away copy), started by ``__enter__`` and removed by ``__exit__``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.port = _free_port()

    def __enter__(self) -> LocalPostgres:
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        _chown_for_server(self.folder)
        self._run(
            [
                pg.binary("initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            "initdb",
        )
        options = (
            f"-c listen_addresses='' -c unix_socket_directories='{self.folder}' -p {self.port} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            # a pod's /dev/shm is 64 MiB: parallel index builds use files in the data folder
            "-c dynamic_shared_memory_type=mmap "
            # nothing replicates from it: restored tables are written without WAL
            "-c wal_level=minimal -c max_wal_senders=0 -c max_wal_size=4GB"
        )
        self._run(
            [
                pg.binary("pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.folder / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
            "pg_ctl start",
        )
        return self

    def _run(self, command: list[str], what: str) -> None:
        result = subprocess.run(
            _as_server_user(command), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            detail = (result.stderr or result.stdout).strip() + ("\n" + tail if tail else "")
            if "No space left" in detail:
                raise BackupError(f"the scratch volume {self.folder} is full: {what} failed")
            raise BackupError(f"{what} of the throw-away PostgreSQL failed: {detail}")

    @property
    def connection(self) -> pg.Connection:
        return pg.Connection(
            host=str(self.folder), port=self.port, user="postgres", password="", sslmode="disable"
        )

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        subprocess.run(
            _as_server_user(
                [pg.binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
            ),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


class LocalRedis:
    """A redis-server on a Unix socket in ``folder`` that loads ``rdb`` at start and never
    saves; removed by ``__exit__``."""

    def __init__(self, folder: Path, rdb: Path) -> None:
        self.folder = folder
        self.rdb = rdb
        self.socket = folder / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalRedis:
        server = shutil.which("redis-server")
        if not server:
            raise BackupError("redis-server not found (the backup image installs it)")
        self.folder.mkdir(parents=True, exist_ok=True)
        shutil.move(str(self.rdb), self.folder / "dump.rdb")
        self._process = subprocess.Popen(
            [server, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
             "--dir", str(self.folder), "--dbfilename", "dump.rdb", "--save", "",
             "--appendonly", "no",
             "--logfile", str(self.folder / "redis.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log = (
                    (self.folder / "redis.log").read_text()[-2000:]
                    if (self.folder / "redis.log").exists()
                    else ""
                )
                raise BackupError(f"redis-server could not load the export: {log.strip()}")
            reply = self.cli("PING", check=False)
            if reply == "PONG":
                return self
            time.sleep(0.2)
        raise BackupError("redis-server did not finish loading the export within 10 minutes")

    def cli(self, *command: str, check: bool = True) -> str:
        tool = shutil.which("redis-cli")
        if not tool:
            raise InvalidInputError("redis-cli not found (the backup image installs it)")
        result = subprocess.run(
            [tool, "-s", str(self.socket), *command], capture_output=True, text=True, check=False
        )
        if check and result.returncode != 0:
            raise BackupError(f"redis-cli {' '.join(command)}: {result.stderr.strip()}")
        return result.stdout.strip()

    def keys_per_db(self) -> dict[str, int]:
        """``{"db0": 1234, ...}`` from INFO keyspace."""
        counts = {}
        for line in self.cli("INFO", "keyspace").splitlines():
            if line.startswith("db") and ":" in line:
                name, fields = line.split(":", 1)
                values = dict(item.split("=") for item in fields.split(","))
                counts[name] = int(values["keys"])
        return counts

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
        shutil.rmtree(self.folder, ignore_errors=True)
