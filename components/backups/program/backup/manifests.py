"""Finding backups by their manifests: ``latest`` or an S3 URI, checked for the fields every
use relies on. A backup without its manifest does not count, so both ways go through it."""

from __future__ import annotations

from typing import Any

from backup.errors import CorruptBackupError, InvalidInputError
from backup.store import S3Uri, Store

REQUIRED = ("kind", "scheduled", "key", "size", "sha256")


def check(document: dict[str, Any], uri: str, kind: str) -> dict[str, Any]:
    """The manifest, when it has the fields of a ``kind`` backup; CorruptBackupError otherwise."""
    missing = [name for name in REQUIRED if name not in document]
    if missing:
        raise CorruptBackupError(
            f"{uri} lacks {', '.join(missing)}: not a complete backup manifest"
        )
    if document["kind"] != kind:
        raise InvalidInputError(f"{uri} is a {document['kind']} backup, not {kind}")
    if not isinstance(document["size"], int) or not isinstance(document["sha256"], str):
        raise CorruptBackupError(f"{uri}: size or sha256 has the wrong type")
    return document


def newest(store: Store, prefix: str, kind: str) -> tuple[str, dict[str, Any]] | None:
    """The newest manifest under ``prefix`` (stamps sort in time order), or None."""
    keys = [key for key, _ in store.keys(prefix) if key.endswith("manifest.json")]
    if not keys:
        return None
    key = max(keys)
    document = store.get_json(key)
    if document is None:
        return None
    return key, check(document, store.uri(key), kind)


def resolve(
    store: Store, source: str, prefix: str, kind: str, suffix: str
) -> tuple[Store, str, dict[str, Any]]:
    """``latest`` (the newest under ``prefix``) or the manifest of an S3 URI: the URI of the
    manifest itself, or of the backup object (``suffix`` replaced by the manifest's name).
    Returns the store holding it (an URI may name another bucket), its key and the manifest."""
    if source == "latest":
        found = newest(store, prefix, kind)
        if found is None:
            raise InvalidInputError(f"no {kind} backup with a manifest under {store.uri(prefix)}")
        return store, found[0], found[1]
    uri = S3Uri.parse(source)
    if uri.bucket != store.bucket:
        store = Store(uri.bucket, store.s3)
    key = uri.key
    if not key.endswith("manifest.json"):
        if not key.endswith(suffix):
            raise InvalidInputError(
                f"{source} is not a {kind} backup (expected a key ending {suffix} or manifest.json)"
            )
        key = key[: -len(suffix)] + (
            ".manifest.json" if suffix.startswith(".") else "manifest.json"
        )
    document = store.get_json(key)
    if document is None:
        raise InvalidInputError(
            f"{store.uri(key)} does not exist: a backup without its manifest does not count"
        )
    return store, key, check(document, store.uri(key), kind)
