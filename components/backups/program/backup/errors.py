"""Errors and exit codes. Every failure the program foresees ends in one line that names what
failed and what was expected; the exit code tells a retry apart from a refusal:

* ``FAILED`` (1): an operation failed (S3 unreachable, the database down); a retry may succeed.
* ``INVALID`` (2): bad input (an argument, a setting, a source that is not a backup, a target
  the command refuses); nothing was changed, and a retry would fail the same way.
* ``CORRUPT`` (3): a backup failed verification (checksum, size, restored tables or keys not
  matching its manifest); nothing was changed. The restore test's alarm.
"""

from __future__ import annotations

FAILED = 1
INVALID = 2
CORRUPT = 3


class BackupError(Exception):
    """A foreseen failure: ``str(error)`` is the message for the operator."""

    code = FAILED


class InvalidInputError(BackupError):
    """Bad input or a refused target: nothing was changed."""

    code = INVALID


class CorruptBackupError(BackupError):
    """A backup that does not match its manifest: nothing was changed."""

    code = CORRUPT
