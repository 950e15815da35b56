"""Reading an RDB file with ``redis-check-rdb`` (shipped with redis-server): it verifies the
file's structure and checksum and counts its keys, which is what a Redis backup's manifest
records and its restore test compares."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from backup.errors import BackupError, CorruptBackupError


@dataclass(frozen=True)
class RdbCheck:
    keys: int
    """Keys in the file."""
    expires: int
    """Keys with a time to live: a load may drop those expired since the export."""


def check(path: Path) -> RdbCheck:
    tool = shutil.which("redis-check-rdb")
    if not tool:
        raise BackupError("redis-check-rdb not found (it comes with redis-server)")
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    keys = re.search(r"\[info\] (\d+) keys read", output)
    expires = re.search(r"\[info\] (\d+) expires", output)
    if result.returncode != 0 or not keys or not expires:
        lines = [line for line in output.splitlines() if line.strip()]
        raise CorruptBackupError(f"{path.name} is not a valid RDB file: {' / '.join(lines[-3:])}")
    return RdbCheck(int(keys.group(1)), int(expires.group(1)))
