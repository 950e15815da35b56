"""The backups bucket: streamed multipart uploads, manifests written once, claims, verified
downloads.

Write discipline (nothing lost): data objects first, the manifest last and only when it does
not exist yet (a conditional PUT); a backup without its manifest does not count. A failed
upload is aborted, so no partial object appears. Nothing here deletes: retention is the
bucket's lifecycle (and Object Lock in prod); the jobs' roles may not delete at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from backup.errors import BackupError, CorruptBackupError, InvalidInputError
from backup.log import event

MiB = 1024 * 1024
PART_SIZE = int(os.environ.get("BACKUP_PART_MB", "32")) * MiB
"""Multipart part size: 32 MiB parts reach 312 GiB within S3's 10,000 parts."""
GROW_EVERY = 1000
"""Parts after which the part size doubles (32 MiB parts alone would stop at 312 GiB)."""
PARTS_IN_FLIGHT = 3
"""Parts uploading while the next is read: memory is about (this + 1) x PART_SIZE."""
READ_CHUNK = 4 * MiB


def client(service: str) -> Any:
    """A boto3 client with bounded retries and timeouts (the endpoint comes from the
    standard ``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_<SERVICE>`` settings when set)."""
    config = Config(
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=10,
        read_timeout=120,
    )
    return boto3.client(service, config=config)


def describe(error: Exception) -> str:
    """One line for an AWS error: its code and message."""
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        return f"{info.get('Code', 'error')}: {info.get('Message', '')}".strip()
    return str(error) or type(error).__name__


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


@dataclass(frozen=True)
class Written:
    """What an upload wrote: its key, size and SHA-256 (hex)."""

    key: str
    size: int
    sha256: str
    version_id: str = ""
    """The object version written (versioned buckets): manifests name it, so a later write of
    the same key by another run can never make a manifest describe bytes it did not hash."""


@dataclass(frozen=True)
class S3Uri:
    """``s3://bucket/key``."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, text: str) -> S3Uri:
        if not text.startswith("s3://") or "/" not in text[5:] or text.endswith("/"):
            raise InvalidInputError(f"{text!r} is not an S3 object URI (expected s3://bucket/key)")
        bucket, key = text[5:].split("/", 1)
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class MultipartWriter:
    """A write-only stream to one S3 object through a multipart upload: parts upload in
    background threads while the caller writes the next, the SHA-256 and size of everything
    written are kept, ``close()`` completes, ``abort()`` (or an error) leaves no object."""

    def __init__(self, store: Store, key: str, *, part_size: int = PART_SIZE) -> None:
        self._store = store
        self.key = key
        self._part_size = max(part_size, 5 * MiB)
        self._buffer = bytearray()
        self._hash = hashlib.sha256()
        self._size = 0
        self._parts: list[Future[dict[str, Any]]] = []
        self._pool = ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT)
        self._slots = threading.BoundedSemaphore(PARTS_IN_FLIGHT)
        try:
            upload = store.s3.create_multipart_upload(Bucket=store.bucket, Key=key)
        except (ClientError, BotoCoreError) as error:
            self._pool.shutdown()
            raise BackupError(
                f"cannot start the upload of {store.uri(key)}: {describe(error)}"
            ) from None
        self._upload_id: str = upload["UploadId"]
        self._done = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._hash.update(data)
        self._size += len(data)
        self._buffer += data
        while len(self._buffer) >= self._part_size:
            part = bytes(self._buffer[: self._part_size])
            del self._buffer[: self._part_size]
            self._submit(part)
        return len(data)

    def _submit(self, body: bytes) -> None:
        for future in self._parts:
            if future.done() and future.exception():
                self._fail(future.exception())
        number = len(self._parts) + 1
        if number % GROW_EVERY == 0:
            # S3 allows 10,000 parts: doubling every 1,000 parts never runs out
            self._part_size *= 2
        self._slots.acquire()

        def upload() -> dict[str, Any]:
            try:
                reply = self._store.s3.upload_part(
                    Bucket=self._store.bucket,
                    Key=self.key,
                    UploadId=self._upload_id,
                    PartNumber=number,
                    Body=body,
                )
                return {"PartNumber": number, "ETag": reply["ETag"]}
            finally:
                self._slots.release()

        self._parts.append(self._pool.submit(upload))

    def _fail(self, error: BaseException | None) -> None:
        self.abort()
        detail = describe(error) if isinstance(error, Exception) else str(error)
        raise BackupError(f"upload of {self._store.uri(self.key)} failed: {detail}")

    def close(self, *, if_none_match: bool = False) -> Written:
        """Upload the rest and complete the object (only if absent when ``if_none_match``)."""
        if self._buffer or not self._parts:
            self._submit(bytes(self._buffer))
            self._buffer.clear()
        parts = []
        for future in self._parts:
            error = future.exception()
            if error is not None:
                self._fail(error)
            parts.append(future.result())
        extra = {"IfNoneMatch": "*"} if if_none_match else {}
        try:
            reply = self._store.s3.complete_multipart_upload(
                Bucket=self._store.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
                **extra,
            )
        except (ClientError, BotoCoreError) as error:
            self._fail(error)
        self._done = True
        self._pool.shutdown()
        version = str(reply.get("VersionId") or "")
        return Written(self.key, self._size, self._hash.hexdigest(), version)

    def abort(self) -> None:
        """Abandon the upload: S3 discards its parts; no object appears."""
        if self._done:
            return
        self._done = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        # if this fails too, the bucket's lifecycle removes the parts (abortIncompleteUploadDays)
        with contextlib.suppress(ClientError, BotoCoreError):
            self._store.s3.abort_multipart_upload(
                Bucket=self._store.bucket, Key=self.key, UploadId=self._upload_id
            )


class Store:
    """One bucket, by name, through one S3 client."""

    def __init__(self, bucket: str, s3: Any | None = None) -> None:
        if not bucket:
            raise InvalidInputError("no bucket named (BACKUP_BUCKET or --bucket)")
        self.bucket = bucket
        self.s3 = s3 if s3 is not None else client("s3")

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def writer(self, key: str) -> MultipartWriter:
        return MultipartWriter(self, key)

    def put_json(self, key: str, document: dict[str, Any], *, only_if_absent: bool) -> bool:
        """Write a JSON document; with ``only_if_absent`` a conditional PUT that returns False
        (and writes nothing) when the key already exists."""
        body = json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"
        return self.put_bytes(
            key, body, only_if_absent=only_if_absent, content_type="application/json"
        )

    def put_bytes(
        self,
        key: str,
        body: bytes,
        *,
        only_if_absent: bool,
        content_type: str = "application/octet-stream",
    ) -> bool:
        """Write a small object; with ``only_if_absent`` False (nothing written) when it exists."""
        extra = {"IfNoneMatch": "*"} if only_if_absent else {}
        try:
            self.s3.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, **extra
            )
        except ClientError as error:
            # 412: the key exists; 409: another conditional write of it was in flight
            if only_if_absent and (
                _code(error) in ("PreconditionFailed", "412", "ConditionalRequestConflict")
                or _status(error) in (409, 412)
            ):
                return False
            raise BackupError(f"cannot write {self.uri(key)}: {describe(error)}") from None
        except BotoCoreError as error:
            raise BackupError(f"cannot write {self.uri(key)}: {describe(error)}") from None
        return True

    def download(self, manifest: dict[str, Any], path: Path, what: str) -> Path:
        """The backup object a manifest names, in ``path``, checked against it; a clear error
        first when the folder cannot hold it."""
        check_free_space(path.parent, int(manifest["size"]), f"{what} {self.uri(manifest['key'])}")
        self.verify(
            manifest["key"],
            size=int(manifest["size"]),
            sha256=manifest["sha256"],
            into=path,
            version_id=str(manifest.get("version_id", "")),
        )
        return path

    def read(self, key: str) -> bytes:
        """A small object's bytes."""
        body = self.stream(key)
        try:
            return body.read()
        except (BotoCoreError, OSError) as error:
            raise BackupError(f"reading {self.uri(key)} failed: {describe(error)}") from None

    def get_json(self, key: str) -> dict[str, Any] | None:
        """A JSON document, or None when the key does not exist."""
        found = self.get_json_tagged(key)
        return None if found is None else found[0]

    def get_json_tagged(self, key: str) -> tuple[dict[str, Any], str] | None:
        """A JSON document and its ETag, or None when the key does not exist."""
        try:
            reply = self.s3.get_object(Bucket=self.bucket, Key=key)
            body = reply["Body"].read()
        except ClientError as error:
            if self._missing(error, key):
                return None
            raise BackupError(f"cannot read {self.uri(key)}: {describe(error)}") from None
        except BotoCoreError as error:
            raise BackupError(f"cannot read {self.uri(key)}: {describe(error)}") from None
        try:
            document = json.loads(body)
        except ValueError:
            raise CorruptBackupError(
                f"{self.uri(key)} is not JSON: the manifest is damaged"
            ) from None
        if not isinstance(document, dict):
            raise CorruptBackupError(
                f"{self.uri(key)} is not a JSON object: the manifest is damaged"
            )
        return document, str(reply.get("ETag", ""))

    def replace_json(self, key: str, document: dict[str, Any], etag: str) -> bool:
        """Overwrite a JSON document only if it is still the version ``etag`` names."""
        body = json.dumps(document, sort_keys=True).encode()
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, IfMatch=etag)
        except ClientError as error:
            if _code(error) in (
                "PreconditionFailed",
                "412",
                "ConditionalRequestConflict",
            ) or _status(error) in (409, 412):
                return False
            raise BackupError(f"cannot write {self.uri(key)}: {describe(error)}") from None
        except BotoCoreError as error:
            raise BackupError(f"cannot write {self.uri(key)}: {describe(error)}") from None
        return True

    def objects(self, prefix: str) -> Iterator[tuple[str, int, str]]:
        """Every key under ``prefix`` with its size and ETag, in key order."""
        try:
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"], int(item["Size"]), str(item.get("ETag", ""))
        except (ClientError, BotoCoreError) as error:
            raise BackupError(f"cannot list {self.uri(prefix)}: {describe(error)}") from None

    def keys(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Every key under ``prefix`` with its size, in key order."""
        for key, size, _ in self.objects(prefix):
            yield key, size

    def size(self, key: str) -> int | None:
        try:
            return int(self.s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as error:
            if self._missing(error, key):
                return None
            raise BackupError(f"cannot read {self.uri(key)}: {describe(error)}") from None

    def _missing(self, error: ClientError, key: str) -> bool:
        """Whether a failed read means "no such object". S3 answers 404 only to a caller that
        may list the bucket; the jobs may list only their own prefix (an ``s3:prefix``
        condition, which a GET does not carry), so S3 answers them 403 for a missing key.
        Then a listing with the key as the prefix (which the condition admits) decides."""
        if _code(error) in ("NoSuchKey", "404", "NotFound") or _status(error) == 404:
            return True
        if _code(error) not in ("AccessDenied", "403") and _status(error) != 403:
            return False
        try:
            reply = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        except (ClientError, BotoCoreError):
            return False  # the 403 stands: a real denial
        return not any(item["Key"] == key for item in reply.get("Contents", []))

    def stream(self, key: str, version_id: str = "") -> IO[bytes]:
        """The object's bytes as a stream (of ``version_id`` when given)."""
        version = {"VersionId": version_id} if version_id else {}
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=key, **version)["Body"]  # type: ignore[no-any-return]
        except ClientError as error:
            if _code(error) in ("NoSuchKey", "404"):
                raise InvalidInputError(f"{self.uri(key)} does not exist") from None
            raise BackupError(f"cannot read {self.uri(key)}: {describe(error)}") from None
        except BotoCoreError as error:
            raise BackupError(f"cannot read {self.uri(key)}: {describe(error)}") from None

    def copy_out(self, key: str, into: Path | None = None, version_id: str = "") -> tuple[int, str]:
        """Read the object (into the file ``into`` when given): its size and SHA-256. A
        failed read or write is a clear error and leaves no partial file."""
        digest = hashlib.sha256()
        count = 0
        body = self.stream(key, version_id)
        target = open(into, "wb") if into else None  # noqa: SIM115 - closed below
        try:
            while chunk := _read(body, key, self):
                digest.update(chunk)
                count += len(chunk)
                if target:
                    _write(target, chunk, into)
        except BaseException:
            if target and into:
                target.close()
                into.unlink(missing_ok=True)
            raise
        if target:
            target.close()
        return count, digest.hexdigest()

    def version(self, key: str) -> str:
        """The current version of an object (empty where the bucket keeps none)."""
        try:
            return str(self.s3.head_object(Bucket=self.bucket, Key=key).get("VersionId") or "")
        except (ClientError, BotoCoreError) as error:
            raise BackupError(f"cannot read {self.uri(key)}: {describe(error)}") from None

    def verify(
        self,
        key: str,
        *,
        size: int,
        sha256: str,
        into: Path | None = None,
        version_id: str = "",
    ) -> None:
        """Read the object (into ``into`` when given) and check its size and SHA-256 against
        the manifest's; CorruptBackupError when either differs (the file, if any, is removed)."""
        count, digest = self.copy_out(key, into, version_id)
        if count != size or digest != sha256:
            if into:
                into.unlink(missing_ok=True)
            raise CorruptBackupError(
                f"{self.uri(key)} does not match its manifest: {count} bytes, SHA-256 "
                f"{digest[:16]}..., expected {size} bytes, {sha256[:16]}... "
                "(truncated or damaged; nothing was restored)"
            )


def _read(body: IO[bytes], key: str, store: Store) -> bytes:
    try:
        return body.read(READ_CHUNK)
    except (BotoCoreError, OSError) as error:
        raise BackupError(f"reading {store.uri(key)} failed: {describe(error)}") from None


def _write(target: IO[bytes], chunk: bytes, path: Path | None) -> None:
    try:
        target.write(chunk)
    except OSError as error:
        raise BackupError(
            f"cannot write {path}: {error.strerror} (is the scratch volume full?)"
        ) from None


class Claim:
    """The right to write one backup (one prefix and timestamp), so two runs of a schedule
    never both write: a small object created only if absent, holding its holder and a
    heartbeat the holder renews every ``lease / 4`` seconds while it works.

    A run that finds the claim taken watches it for up to one ``lease``: when the backup's
    manifest appears, or the holder keeps renewing, it gives way and changes nothing; when the
    heartbeat stops (its holder died: a killed pod, a lost node), it takes the claim over with
    a conditional overwrite, so of two runs taking over at once only one succeeds. A holder
    whose claim was taken over stops before writing its manifest. A retried pod of the same
    Job (same keys) waits at most one lease for its predecessor's claim to go stale."""

    def __init__(
        self, store: Store, key: str, job: str, *, done: str, lease: float | None = None
    ) -> None:
        self._store = store
        self.key = key
        self._done = done
        self._job = job
        self._lease = (
            lease
            if lease is not None
            else float(os.environ.get("BACKUP_CLAIM_LEASE_SECONDS", "120"))
        )
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
        self._etag = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def _document(self) -> dict[str, Any]:
        return {"holder": self._holder, "job": self._job, "heartbeat": time.time()}

    def _mine(self) -> bool:
        found = self._store.get_json_tagged(self.key)
        if found and found[0].get("holder") == self._holder:
            self._etag = found[1]
            return True
        return False

    def acquire(self) -> str | None:
        """Take the claim; None when taken, else why this run gives way (another holder, or
        the backup finished meanwhile)."""
        if self._store.put_json(self.key, self._document(), only_if_absent=True) and self._mine():
            return None
        deadline = time.monotonic() + self._lease
        poll = max(min(self._lease / 8, 5.0), 0.05)
        while True:
            if self._store.get_json(self._done) is not None:
                return "the backup was completed by another run meanwhile"
            found = self._store.get_json_tagged(self.key)
            if found is None:
                if (
                    self._store.put_json(self.key, self._document(), only_if_absent=True)
                    and self._mine()
                ):
                    return None
                continue
            document, etag = found
            holder = f"{document.get('holder')} (job {document.get('job') or 'none'})"
            stale = time.time() - float(document.get("heartbeat", 0)) > self._lease
            if stale:
                if self._store.replace_json(self.key, self._document(), etag) and self._mine():
                    return None
                return f"{holder}, which another run took over at the same moment"
            if time.monotonic() > deadline:
                return f"{holder}, alive (its heartbeat was renewed for a whole lease)"
            time.sleep(poll)

    def keep(self) -> None:
        """Renew the heartbeat in the background until ``release``."""
        every = self._lease / 4

        def beat() -> None:
            while not self._stop.wait(every):
                try:
                    renewed = (
                        self._store.replace_json(self.key, self._document(), self._etag)
                        and self._mine()
                    )
                except Exception:  # any failure to renew loses the claim
                    renewed = False
                if not renewed:
                    # no heartbeat means another run may take over after a lease: stop
                    self.lost = True
                    return

        self._thread = threading.Thread(target=beat, daemon=True)
        self._thread.start()

    def confirm(self) -> bool:
        """Whether the claim is still this run's, read from S3 now (just before a manifest is
        written: a renewal may not have run since another run took over)."""
        try:
            return not self.lost and self._mine()
        except BackupError:
            return False

    def release(self) -> None:
        """Stop renewing (the claim object stays: the jobs may not delete)."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)


def begin_folder(store: Store, prefix: str, moment: str, job: str) -> Claim | str:
    """``begin`` for a backup kept as a folder, ``<prefix>/<stamp>/`` with its
    ``manifest.json`` and ``claim.json`` (Redis exports, media archives)."""
    return begin(
        store,
        manifest=f"{prefix}/{moment}/manifest.json",
        claim=f"{prefix}/{moment}/claim.json",
        job=job,
        kind=prefix,
        scheduled=moment,
    )


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """A clear error before a download that cannot fit."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise BackupError(
            f"the scratch folder {folder} is too small for {what}: needs {needed:,} bytes, "
            f"{free:,} free (raise the restore pod's scratch size)"
        )


def begin(store: Store, *, manifest: str, claim: str, job: str, **labels: Any) -> Claim | str:
    """Start writing one backup: ``"exists"`` when its manifest is already there, ``"held"``
    when another run holds (or just finished) it, both logged with ``labels``; else the claim,
    taken and being renewed (the caller releases it)."""
    if store.get_json(manifest) is not None:
        event("backup", **labels, result="exists", manifest=store.uri(manifest))
        return "exists"
    taken = Claim(store, claim, job, done=manifest)
    holder = taken.acquire()
    if holder is not None:
        event("backup", **labels, result="held", holder=holder)
        return "held"
    taken.keep()
    return taken


def sha256_file(path: Path, progress: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(READ_CHUNK):
            digest.update(chunk)
            if progress:
                progress(len(chunk))
    return digest.hexdigest()
