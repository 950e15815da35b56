"""``backup media`` and ``restore media``: the media bucket as one compressed archive.

The backup streams every object of the media bucket into a tar archive compressed with gzip,
itself streamed into a multipart upload at ``application/<stamp>/media.tar.gz`` (no local
copy: the pod needs no disk for it), and writes the manifest last: the archive's size and
SHA-256, and every object's key, size and SHA-256.

The restore checks the archive's checksum before it touches the target bucket, then writes
each object (checking it against the manifest as it goes). A target that holds objects is
refused unless ``--replace``; with it, objects of the same key get a new version (the media
bucket is versioned: the old one is kept) and objects not in the archive are left alone.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import time
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from botocore.exceptions import BotoCoreError, ClientError

from backup.errors import BackupError, CorruptBackupError, InvalidInputError
from backup.log import event, say
from backup.schedule import stamp
from backup.store import READ_CHUNK, Store, begin_folder, describe

PREFIX = "application"
ARCHIVE = "media.tar.gz"


def manifest_key(moment: str) -> str:
    return f"{PREFIX}/{moment}/manifest.json"


class _Hashing(io.RawIOBase):
    """A read stream that hashes what passes through it."""

    def __init__(self, body: IO[bytes]) -> None:
        self._body = body
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        self.digest.update(data)
        self.size += len(data)
        buffer[: len(data)] = data
        return len(data)


KEPT_HEADERS = ("ContentType", "CacheControl", "ContentDisposition", "ContentEncoding")
"""What S3 keeps with an object besides its bytes that a restore must put back (a PDF served
as a download, an image as an image), with its user metadata."""


def _archive_one(
    archive: tarfile.TarFile, media: Store, key: str, etag: str
) -> dict[str, Any] | None:
    """Add one object to the archive and describe it for the manifest; None (logged) when it
    was deleted or replaced since the listing: the next day's backup has its new state."""
    try:
        reply = media.s3.get_object(Bucket=media.bucket, Key=key, IfMatch=etag)
    except ClientError as error:
        if _gone(error):
            event("backup-skip", kind=PREFIX, key=key, reason="deleted or replaced since listed")
            return None
        raise
    size = int(reply["ContentLength"])
    body = _Hashing(reply["Body"])
    info = tarfile.TarInfo(name=key)
    info.size = size
    info.mtime = int(time.time())
    archive.addfile(info, io.BufferedReader(body, buffer_size=READ_CHUNK))
    if body.size != size:
        raise BackupError(f"{media.uri(key)}: read {body.size} of {size} bytes")
    entry: dict[str, Any] = {"key": key, "size": size, "sha256": body.digest.hexdigest()}
    kept = {name: reply[name] for name in KEPT_HEADERS if reply.get(name)}
    if reply.get("Metadata"):
        kept["Metadata"] = reply["Metadata"]
    if kept:
        entry["headers"] = kept
    return entry


def _gone(error: ClientError) -> bool:
    info = error.response.get("Error", {})
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    return info.get("Code") in ("NoSuchKey", "PreconditionFailed", "404", "412") or status in (
        404,
        412,
    )


def run(store: Store, media: Store, when: datetime, *, job: str = "") -> str:
    """Archive the media bucket; returns ``ok``, ``exists`` or ``held``."""
    moment = stamp(when)
    manifest = manifest_key(moment)
    claim = begin_folder(store, PREFIX, moment, job)
    if isinstance(claim, str):
        return claim
    started = time.monotonic()
    writer = store.writer(f"{PREFIX}/{moment}/{ARCHIVE}")
    objects = []
    try:
        with tarfile.open(fileobj=writer, mode="w|gz", format=tarfile.PAX_FORMAT) as archive:  # type: ignore[call-overload]
            for key, _size, etag in media.objects(""):
                entry = _archive_one(archive, media, key, etag)
                if entry is not None:
                    objects.append(entry)
        written = writer.close()
    except (ClientError, BotoCoreError) as error:
        writer.abort()
        claim.release()
        raise BackupError(f"archiving {media.uri('')} failed: {describe(error)}") from None
    except BaseException:
        writer.abort()
        claim.release()
        raise
    claim.release()
    if not claim.confirm():
        raise BackupError(
            f"another run took over the media backup of {moment}: no manifest written"
        )
    document = {
        "kind": PREFIX,
        "scheduled": moment,
        "bucket": media.bucket,
        "key": written.key,
        "size": written.size,
        "sha256": written.sha256,
        "version_id": written.version_id,
        "objects": objects,
        "duration_seconds": round(time.monotonic() - started, 3),
    }
    if not store.put_json(manifest, document, only_if_absent=True):
        return "exists"
    event(
        "backup",
        kind=PREFIX,
        scheduled=moment,
        result="ok",
        key=store.uri(written.key),
        size=written.size,
        objects=len(objects),
    )
    return "ok"


def verify_archive(path: Path, manifest: dict[str, Any]) -> int:
    """Check every member of a downloaded archive against the manifest; the object count."""
    expected = {item["key"]: item for item in manifest.get("objects", [])}
    seen: set[str] = set()
    try:
        with tarfile.open(path, mode="r|gz") as archive:
            for member in archive:
                item = expected.get(member.name)
                if item is None or not member.isfile():
                    raise CorruptBackupError(f"{path.name}: {member.name!r} is not in the manifest")
                handle = archive.extractfile(member)
                if handle is None:
                    raise CorruptBackupError(f"{path.name}: {member.name!r} has no contents")
                digest = hashlib.sha256()
                while chunk := handle.read(READ_CHUNK):
                    digest.update(chunk)
                if member.size != item["size"] or digest.hexdigest() != item["sha256"]:
                    raise CorruptBackupError(
                        f"{path.name}: {member.name!r} does not match its checksum in the manifest"
                    )
                seen.add(member.name)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise CorruptBackupError(f"{path.name} is not a readable archive: {error}") from None
    missing = sorted(set(expected) - seen)
    if missing:
        raise CorruptBackupError(
            f"{path.name} lacks {len(missing)} objects of its manifest, e.g. {missing[0]!r}"
        )
    return len(seen)


def fetch(store: Store, manifest: dict[str, Any], scratch: Path) -> Path:
    """The archive in ``scratch``, verified against its manifest."""
    return store.download(
        manifest, scratch / f"media-{manifest['scheduled']}.tar.gz", "the archive"
    )


def restore(
    store: Store,
    key: str,
    manifest: dict[str, Any],
    target: Store,
    *,
    replace: bool,
    dry_run: bool,
    scratch: Path,
) -> int:
    """Write the archive's objects into ``target``; the number written."""
    present = next(iter(target.keys("")), None)
    if present and not replace:
        raise InvalidInputError(
            f"bucket {target.bucket} is not empty (e.g. {present[0]!r}): pass --replace to write "
            "the archive's objects over it (their current versions are kept as older versions)"
        )
    path = fetch(store, manifest, scratch)
    try:
        count = verify_archive(path, manifest)
        if dry_run:
            say(
                f"dry run: {store.uri(manifest['key'])} verified: {count} objects would be "
                f"written to s3://{target.bucket}"
            )
            say("nothing was changed")
            return 0
        expected = {item["key"]: item for item in manifest["objects"]}
        with tarfile.open(path, mode="r|gz") as archive:
            for member in archive:
                handle = archive.extractfile(member)
                if handle is None:
                    raise CorruptBackupError(f"{path.name}: {member.name!r} has no contents")
                body = _Hashing(handle)
                headers = expected[member.name].get("headers", {})
                try:
                    target.s3.upload_fileobj(
                        io.BufferedReader(body, buffer_size=READ_CHUNK),
                        target.bucket,
                        member.name,
                        ExtraArgs=headers or None,
                    )
                except (ClientError, BotoCoreError) as error:
                    raise BackupError(
                        f"writing {target.uri(member.name)} failed: {describe(error)}"
                    ) from None
                if body.digest.hexdigest() != expected[member.name]["sha256"]:
                    raise CorruptBackupError(
                        f"{member.name!r} changed on the scratch disk while restoring: restore "
                        "stopped"
                    )
    finally:
        path.unlink(missing_ok=True)
    event(
        "restore",
        kind=PREFIX,
        source=store.uri(manifest["key"]),
        bucket=target.bucket,
        objects=count,
        result="ok",
    )
    say(f"restored {count} objects from {store.uri(manifest['key'])} into s3://{target.bucket}")
    return count
