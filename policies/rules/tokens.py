"""Pulumi type tokens (``package:module:Name``) taken apart, with the S3 resources' v7 and
``…V2`` spellings unified and which AWS types take ``tags``."""

from __future__ import annotations

import functools
import importlib


def type_parts(resource_type: str) -> tuple[str, str, str]:
    """``"aws:s3/bucket:Bucket"`` -> ``("aws", "s3/bucket", "Bucket")``."""
    parts = resource_type.split(":")
    if len(parts) != 3:
        return ("", "", "")
    return (parts[0], parts[1], parts[2])


def s3_kind(resource_type: str) -> str | None:
    """The S3 resource kind with the v7 spellings unified: ``aws:s3/bucketV2:BucketV2`` and
    ``aws:s3/bucket:Bucket`` are both ``"bucket"``, ``…/bucketVersioningV2:…`` and
    ``…/bucketVersioning:…`` both ``"bucketVersioning"``; ``None`` for other types."""
    package, module, _ = type_parts(resource_type)
    if package != "aws" or not module.startswith("s3/"):
        return None
    kind = module.removeprefix("s3/")
    return kind.removesuffix("V2")


def is_bucket(resource_type: str) -> bool:
    """``aws:s3/bucket:Bucket`` or ``aws:s3/bucketV2:BucketV2`` (aliases of each other in v7)."""
    return s3_kind(resource_type) == "bucket"


def is_s3(resource_type: str, kind: str) -> bool:
    """Whether ``resource_type`` is the S3 ``kind`` (e.g. ``"bucketVersioning"``), in either
    of its spellings."""
    return s3_kind(resource_type) == kind


@functools.cache
def aws_taggable(resource_type: str) -> bool | None:
    """Whether an AWS resource type takes ``tags``, from the installed pulumi-aws SDK's own
    argument classes; ``None`` when the SDK (or the type) is not available."""
    package, module, name = type_parts(resource_type)
    if package != "aws" or not module:
        return None
    try:
        sdk = importlib.import_module(f"pulumi_aws.{module.split('/')[0]}")
    except ImportError:
        return None
    args_class = getattr(sdk, f"{name}Args", None)
    if args_class is None:
        return None
    return isinstance(getattr(args_class, "tags", None), property)
