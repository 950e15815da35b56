"""The time a backup belongs to, which names its objects.

A CronJob's Job is named ``<cronjob>-<scheduled time in minutes since the epoch>`` by the
Kubernetes CronJob controller, and its pods carry that name in the
``batch.kubernetes.io/job-name`` label (``BACKUP_JOB_NAME`` through the downward API). Keys
derived from it are the same for every run of one schedule (a retried pod, a Job created twice),
so a repeated run finds its own backup instead of writing a second one. A run outside a
CronJob, or a Job created by hand under another name, uses ``--at`` or, failing that, the
current minute.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from backup.errors import InvalidInputError

STAMP_FORMAT = "%Y%m%dT%H%MZ"
"""``20261130T0200Z``: sorts in time order, which is how "newest" is found."""
STAMP_PATTERN = re.compile(r"^\d{8}T\d{4}Z$")
_JOB_SUFFIX = re.compile(r"-(\d{7,})$")


def stamp(moment: datetime) -> str:
    """The timestamp in object keys for ``moment`` (UTC, to the minute)."""
    return moment.astimezone(UTC).strftime(STAMP_FORMAT)


def parse_stamp(text: str) -> datetime:
    """The moment a stamp names; InvalidInputError when it is not one."""
    if not STAMP_PATTERN.match(text):
        raise InvalidInputError(
            f"{text!r} is not a backup timestamp (expected like 20261130T0200Z)"
        )
    return datetime.strptime(text, STAMP_FORMAT).replace(tzinfo=UTC)


def scheduled_time(at: str | None, job_name: str | None, now: datetime | None = None) -> datetime:
    """The time the run belongs to: ``--at`` (ISO 8601), else the CronJob's scheduled time
    from the Job's name, else the current minute."""
    if at:
        try:
            moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInputError(
                f"--at {at!r} is not a time (expected ISO 8601, e.g. 2026-11-30T02:00Z)"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).replace(second=0, microsecond=0)
    match = _JOB_SUFFIX.search(job_name or "")
    if match:
        return datetime.fromtimestamp(int(match.group(1)) * 60, tz=UTC)
    # a Job created by hand (kubectl create job --from=cronjob/... NAME): its own minute
    moment = now or datetime.now(UTC)
    return moment.astimezone(UTC).replace(second=0, microsecond=0)
