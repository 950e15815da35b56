"""The command line: ``backup postgres|redis|media``, ``restore-test`` and
``restore postgres|redis|media``. Every command has ``--help``; settings come from flags or,
in the CronJobs, from the environment (named in each flag's help).

Exit status: 0 done (or nothing to do: this schedule's backup exists, or another run is
writing it), 1 failed (retry may help), 2 bad input or refused (nothing changed), 3 a backup
failed verification (nothing changed). See ``backup.errors``."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from backup import manifests, media, pg, pg_backup, pg_restore, redis_backup, restore_test
from backup.errors import FAILED, BackupError, InvalidInputError
from backup.log import say
from backup.schedule import scheduled_time
from backup.store import Store, client


def _env(name: str) -> str:
    return os.environ.get(name, "")


def _required(value: str | None, flag: str, variable: str, what: str) -> str:
    if not value:
        raise InvalidInputError(f"{flag} is not given and {variable} is not set ({what})")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


@contextmanager
def _scratch(given: str | None) -> Iterator[Path]:
    """The scratch folder: ``--scratch``, ``BACKUP_SCRATCH``, or a temporary one removed after."""
    folder = given or _env("BACKUP_SCRATCH")
    if folder:
        path = Path(folder)
        if not path.is_dir() or not os.access(path, os.W_OK):
            raise InvalidInputError(
                f"scratch folder {path} does not exist or is not writable "
                "(--scratch, BACKUP_SCRATCH)"
            )
        yield path
        return
    path = Path(tempfile.mkdtemp(prefix="exposcholar-backup-"))
    path.chmod(0o755)  # run as root, the throw-away PostgreSQL's user must reach its folder
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _store(args: argparse.Namespace) -> Store:
    return Store(
        _required(
            args.bucket or _env("BACKUP_BUCKET"), "--bucket", "BACKUP_BUCKET", "the backups bucket"
        )
    )


def _when(args: argparse.Namespace) -> Any:
    return scheduled_time(args.at, _env("BACKUP_JOB_NAME"))


def _backup_postgres(args: argparse.Namespace) -> int:
    outcomes = pg_backup.run(
        _store(args),
        pg.Connection.from_environment(),
        _when(args),
        only=args.database or None,
        job=_env("BACKUP_JOB_NAME"),
    )
    failed = [o for o in outcomes if o.result == "failed"]
    for outcome in failed:
        say(f"error: database {outcome.database!r}: {outcome.detail}")
    return FAILED if failed else 0


def _backup_redis(args: argparse.Namespace) -> int:
    group = _required(
        args.replication_group or _env("REDIS_REPLICATION_GROUP"),
        "--replication-group",
        "REDIS_REPLICATION_GROUP",
        "the ElastiCache replication group",
    )
    with _scratch(args.scratch) as scratch:
        redis_backup.run(
            _store(args),
            client("elasticache"),
            group,
            _when(args),
            scratch,
            job=_env("BACKUP_JOB_NAME"),
        )
    return 0


def _backup_media(args: argparse.Namespace) -> int:
    bucket = _required(
        args.media_bucket or _env("MEDIA_BUCKET"),
        "--media-bucket",
        "MEDIA_BUCKET",
        "the media bucket",
    )
    store = _store(args)
    media.run(store, Store(bucket, store.s3), _when(args), job=_env("BACKUP_JOB_NAME"))
    return 0


def _restore_test(args: argparse.Namespace) -> int:
    jobs = args.jobs or int(_env("RESTORE_TEST_JOBS") or 2)
    with _scratch(args.scratch) as scratch:
        return restore_test.run(
            _store(args), scratch, jobs=jobs, only=tuple(args.only or restore_test.STORES)
        )


def _restore_postgres(args: argparse.Namespace) -> int:
    store = _store(args)
    database = args.database or _env("DATABASE_NAME")
    if args.source == "latest" and not database:
        raise InvalidInputError(
            "restore postgres latest needs --database (or DATABASE_NAME): whose latest backup"
        )
    prefix = f"{pg_backup.PREFIX}/{database}/"
    holder, key, manifest = manifests.resolve(store, args.source, prefix, pg_backup.PREFIX, ".dump")
    env = dict(os.environ)
    if args.target_host:
        env["DATABASE_HOST"] = args.target_host
    if args.target_port:
        env["DATABASE_PORT"] = str(args.target_port)
    connection = pg.Connection.from_environment(env)
    target = args.target_database or str(manifest.get("database") or database)
    with _scratch(args.scratch) as scratch:
        pg_restore.restore(
            holder,
            key,
            manifest,
            connection,
            target=target,
            replace=args.replace,
            dry_run=args.dry_run,
            jobs=args.jobs,
            scratch=scratch,
        )
    return 0


def _restore_redis(args: argparse.Namespace) -> int:
    store = _store(args)
    holder, key, manifest = manifests.resolve(
        store, args.source, f"{redis_backup.PREFIX}/", redis_backup.PREFIX, "manifest.json"
    )
    like = _required(
        args.like or _env("REDIS_REPLICATION_GROUP"),
        "--like",
        "REDIS_REPLICATION_GROUP",
        "the group whose settings the new one copies",
    )
    token = ""
    if args.auth_token_file:
        try:
            token = Path(args.auth_token_file).read_text().strip()
        except OSError as error:
            raise InvalidInputError(
                f"--auth-token-file {args.auth_token_file}: {error.strerror}"
            ) from None
    redis_backup.restore(
        holder,
        key,
        manifest,
        client("elasticache"),
        target_group=args.target_group,
        like=like,
        auth_token=token,
        dry_run=args.dry_run,
    )
    return 0


def _restore_media(args: argparse.Namespace) -> int:
    store = _store(args)
    holder, key, manifest = manifests.resolve(
        store, args.source, f"{media.PREFIX}/", media.PREFIX, media.ARCHIVE
    )
    bucket = _required(
        args.target_bucket or _env("MEDIA_BUCKET"),
        "--target-bucket",
        "MEDIA_BUCKET",
        "the bucket to restore into",
    )
    with _scratch(args.scratch) as scratch:
        media.restore(
            holder,
            key,
            manifest,
            Store(bucket, store.s3),
            replace=args.replace,
            dry_run=args.dry_run,
            scratch=scratch,
        )
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="backup", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = top.add_subparsers(
        dest="command", required=True, metavar="{backup,restore-test,restore}"
    )

    def common(sub: argparse.ArgumentParser, handler: Callable[[argparse.Namespace], int]) -> None:
        sub.add_argument("--bucket", help="the backups bucket (default: BACKUP_BUCKET)")
        sub.set_defaults(handler=handler)

    def scheduled(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--at",
            help="the time this backup belongs to, ISO 8601 (default: the CronJob's scheduled "
            "time from BACKUP_JOB_NAME, else now)",
        )

    _backup_commands(commands, common, scheduled)
    _restore_commands(commands, common)
    return top


Common = Callable[[argparse.ArgumentParser, Callable[[argparse.Namespace], int]], None]


def _backup_commands(
    commands: Any, common: Common, scheduled: Callable[[argparse.ArgumentParser], None]
) -> None:
    backup = commands.add_parser("backup", help="take a backup").add_subparsers(
        dest="store", required=True
    )
    sub = backup.add_parser(
        "postgres",
        help="pg_dump of every database to s3://BUCKET/postgresql/<database>/<stamp>.dump",
    )
    sub.add_argument(
        "--database",
        action="append",
        help="only this database (repeatable; default: every database)",
    )
    scheduled(sub)
    common(sub, _backup_postgres)
    sub = backup.add_parser(
        "redis", help="ElastiCache snapshot exported to s3://BUCKET/redis/<stamp>/"
    )
    sub.add_argument(
        "--replication-group",
        help="ElastiCache replication group (default: REDIS_REPLICATION_GROUP)",
    )
    sub.add_argument(
        "--scratch",
        help="folder to check the export in (default: BACKUP_SCRATCH or a temporary one)",
    )
    scheduled(sub)
    common(sub, _backup_redis)
    sub = backup.add_parser(
        "media", help="the media bucket as s3://BUCKET/application/<stamp>/media.tar.gz"
    )
    sub.add_argument("--media-bucket", help="the media bucket (default: MEDIA_BUCKET)")
    scheduled(sub)
    common(sub, _backup_media)

    sub = commands.add_parser(
        "restore-test", help="restore the newest backups into throw-away servers and compare"
    )
    sub.add_argument(
        "--jobs", type=_positive, help="pg_restore -j (default: RESTORE_TEST_JOBS or 2)"
    )
    sub.add_argument(
        "--scratch",
        help="folder for downloads and the throw-away servers "
        "(default: BACKUP_SCRATCH or a temporary one)",
    )
    sub.add_argument(
        "--only",
        action="append",
        choices=restore_test.STORES,
        help="only this store (repeatable; default: all)",
    )
    common(sub, _restore_test)


def _restore_commands(commands: Any, common: Common) -> None:
    restore = commands.add_parser("restore", help="restore a backup (operators)").add_subparsers(
        dest="store", required=True
    )
    sub = restore.add_parser(
        "postgres", help="restore a dump into a database (the current one is kept, renamed)"
    )
    sub.add_argument(
        "source",
        help="s3://BUCKET/postgresql/<database>/<stamp>.dump (or its manifest), or 'latest'",
    )
    sub.add_argument(
        "--database", help="with 'latest': whose latest backup (default: DATABASE_NAME)"
    )
    sub.add_argument("--target-database", help="database to restore into (default: the backup's)")
    sub.add_argument(
        "--target-host", help="PostgreSQL server to restore into (default: DATABASE_HOST)"
    )
    sub.add_argument(
        "--target-port", type=_positive, help="its port (default: DATABASE_PORT or 5432)"
    )
    sub.add_argument(
        "--replace",
        action="store_true",
        help="restore over a non-empty database (it is kept as <name>_before_<stamp>)",
    )
    sub.add_argument(
        "--dry-run",
        action="store_true",
        help="verify the backup and say what would be done; change nothing",
    )
    sub.add_argument("--jobs", type=_positive, default=2, help="pg_restore -j (default: 2)")
    sub.add_argument(
        "--scratch", help="folder for the download (default: BACKUP_SCRATCH or a temporary one)"
    )
    common(sub, _restore_postgres)
    sub = restore.add_parser(
        "redis", help="create a new ElastiCache replication group from an export"
    )
    sub.add_argument("source", help="s3://BUCKET/redis/<stamp>/manifest.json, or 'latest'")
    sub.add_argument(
        "--target-group", required=True, help="id of the new replication group (must not exist)"
    )
    sub.add_argument(
        "--like", help="group whose settings the new one copies (default: REDIS_REPLICATION_GROUP)"
    )
    sub.add_argument(
        "--auth-token-file",
        help="file with the AUTH token for the new group, when the current one uses AUTH",
    )
    sub.add_argument(
        "--dry-run",
        action="store_true",
        help="verify the export and print the request; change nothing",
    )
    common(sub, _restore_redis)
    sub = restore.add_parser("media", help="write the objects of a media archive into a bucket")
    sub.add_argument(
        "source", help="s3://BUCKET/application/<stamp>/media.tar.gz (or its manifest), or 'latest'"
    )
    sub.add_argument("--target-bucket", help="bucket to restore into (default: MEDIA_BUCKET)")
    sub.add_argument(
        "--replace",
        action="store_true",
        help="write into a non-empty bucket (same keys get a new version)",
    )
    sub.add_argument(
        "--dry-run",
        action="store_true",
        help="verify the archive and say what would be done; change nothing",
    )
    sub.add_argument(
        "--scratch", help="folder for the download (default: BACKUP_SCRATCH or a temporary one)"
    )
    common(sub, _restore_media)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except BackupError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        print(
            "error: interrupted; an unfinished upload was abandoned, no manifest written",
            file=sys.stderr,
        )
        return FAILED
