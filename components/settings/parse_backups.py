"""Section parser for the backup CronJobs (``components.backups``).

Besides each key's own rule it checks what spans keys: the daily backups fire every day (the
retention of each prefix counts on a copy a day), the daily pods' ``/scratch`` fits on a node's
disk, and the restore test's volume holds both the downloaded dump and the restored database.
"""

from __future__ import annotations

from functools import partial

from components.settings.cron import cron_schedule
from components.settings.model import (
    BackupSettings,
    ClusterSettings,
    DatabaseSettings,
    RestoreTestSettings,
    Schedule,
)
from components.settings.parse_cluster import resources
from components.settings.parsers import integer
from components.settings.reader import Reader
from components.settings.rules import cpu_quantity, memory_quantity

SCRATCH_PER_DATABASE_GB = 2
"""The restore test's scratch per GiB of the database's allocated storage: the downloaded
custom-format dump (compressed, and without the indexes' pages, so at most the database's size)
plus the restored database (at most the allocated storage). When storage autoscaling grows the
database past ``databaseAllocatedStorageGb``, raise ``restoreTestScratchGi`` with it."""
MAX_SCRATCH_SHARE_OF_NODE_DISK = 2
"""A daily pod's emptyDir takes at most half of a node's disk (``nodeDiskSizeGb``): images, logs
and the other pods' emptyDirs share it, and the kubelet evicts pods when it fills."""
MAX_EBS_GIB = 16384
"""The largest gp3 volume (16 TiB): the restore test's scratch is one."""
MIN_RESTORE_TEST_MEMORY = 1024**3
DAILY = (
    ("backupPostgresSchedule", "PostgreSQL"),
    ("backupRedisSchedule", "Redis"),
    ("backupMediaSchedule", "media"),
)


def backups(r: Reader, database: DatabaseSettings, cluster: ClusterSettings) -> BackupSettings:
    schedules = {}
    for key, what in DAILY:
        schedule = schedules[key] = r.get(key, cron_schedule)
        r.check(
            key,
            partial(_every_day, schedule),
            f"a schedule that fires every day (day-of-month, month and day-of-week '*'): the "
            f"{what} backups' retention counts on a copy a day",
        )
    scratch = r.get("backupScratchGi", integer(1, 1000))
    r.check(
        "backupScratchGi",
        lambda: scratch * MAX_SCRATCH_SHARE_OF_NODE_DISK <= cluster.node_disk_size_gb,
        f"at most half of nodeDiskSizeGb ({r.raw.get('nodeDiskSizeGb')}): the daily pods' "
        "/scratch is an emptyDir on the node's disk, shared with images and other pods",
        needs=("nodeDiskSizeGb",),
    )
    restore_scratch = r.get("restoreTestScratchGi", integer(1, MAX_EBS_GIB))
    allocated = r.raw.get("databaseAllocatedStorageGb")
    r.check(
        "restoreTestScratchGi",
        lambda: restore_scratch >= SCRATCH_PER_DATABASE_GB * database.allocated_storage_gb,
        f"at least {SCRATCH_PER_DATABASE_GB} x databaseAllocatedStorageGb ({allocated}): the "
        "volume holds the downloaded dump and the restored database",
        needs=("databaseAllocatedStorageGb",),
    )
    memory = r.get("restoreTestMemory", memory_quantity)
    r.check(
        "restoreTestMemory",
        lambda: memory.base >= MIN_RESTORE_TEST_MEMORY,
        "at least 1Gi: a throw-away PostgreSQL and Redis run in the restore test's pod",
    )
    return BackupSettings(
        postgres_schedule=schedules["backupPostgresSchedule"],
        redis_schedule=schedules["backupRedisSchedule"],
        media_schedule=schedules["backupMediaSchedule"],
        resources=resources(r, "backup"),
        scratch_gi=scratch,
        restore_test=RestoreTestSettings(
            schedule=r.get("restoreTestSchedule", cron_schedule),
            cpu=r.get("restoreTestCpu", cpu_quantity),
            memory=memory,
            scratch_gi=restore_scratch,
        ),
    )


def _every_day(schedule: Schedule) -> bool:
    return schedule.every_day
