"""S3 stack policies: every bucket has Block Public Access, default encryption (SSE-KMS;
SSE-S3 only for the buckets the configuration exempts, e.g. access-log targets), versioning and
access logging where required, and a bucket policy that denies requests not made over TLS.

Stack policies (over the resources' **outputs**) because a bucket's configuration lives in
separate resources: they are found through their ``bucket`` property's dependencies (or, when
those are not recorded, by bucket name), in both the v7 and the ``…V2`` spellings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import PolicyResource, StackValidationArgs

from .policy_config import CUSTOMER_KEY, Config, Setting, reasoned_list
from .registry import CRITICAL, HIGH, MEDIUM, Violation, stack_policy
from .resources import (
    each,
    flag,
    get,
    is_map,
    json_document,
    known,
    maps,
    matches_any,
    present,
    refers_to,
    strings,
    text,
)
from .tokens import is_bucket, s3_kind

BUCKET_PARTS = (
    "bucketPublicAccessBlock",
    "bucketServerSideEncryptionConfiguration",
    "bucketVersioning",
    "bucketLogging",
    "bucketPolicy",
)


@dataclass
class Bucket:
    """A bucket and the configuration resources that point at it."""

    resource: PolicyResource
    name: str
    parts: dict[str, list[PolicyResource]] = field(default_factory=dict)

    def part(self, kind: str) -> list[PolicyResource]:
        return self.parts.get(kind, [])

    @property
    def props(self) -> Mapping[str, Any]:
        return self.resource.props


def _bucket_ids(bucket: PolicyResource) -> list[str]:
    """The values a configuration resource's ``bucket`` may hold: name and id (unknown ones,
    e.g. an id during preview, are skipped)."""
    values = (known(bucket.props, "bucket"), known(bucket.props, "id"))
    return [v for v in values if isinstance(v, str) and v]


def buckets(resources: Sequence[PolicyResource]) -> list[Bucket]:
    """Every bucket of the stack with its Block Public Access, encryption, versioning, logging
    and policy resources (reads only identifying values: never raises on unknowns)."""
    found = [
        Bucket(r, (_bucket_ids(r) or [r.name])[0]) for r in resources if is_bucket(r.resource_type)
    ]
    for resource in resources:
        kind = s3_kind(resource.resource_type)
        if kind not in BUCKET_PARTS:
            continue
        for bucket in found:
            if refers_to(resource, "bucket", bucket.resource, _bucket_ids(bucket.resource)):
                bucket.parts.setdefault(str(kind), []).append(resource)
    return found


ACCOUNT_BLOCK = "aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock"
BLOCK_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def _all_blocked(props: Mapping[str, Any]) -> bool:
    return all(flag(props, f) is True for f in BLOCK_FLAGS)


@stack_policy(
    "s3-public-access-block",
    severity=CRITICAL,
    domain="s3",
    description="Every S3 bucket must have Block Public Access with all four settings on.",
    remediation="Create an aws.s3.BucketPublicAccessBlock for each bucket with "
    "blockPublicAcls, blockPublicPolicy, ignorePublicAcls and restrictPublicBuckets true.",
)
def s3_public_access_block(args: StackValidationArgs, _: Config) -> Iterator[Violation]:
    blocks = [
        r
        for r in args.resources
        if r.resource_type == ACCOUNT_BLOCK or s3_kind(r.resource_type) == "bucketPublicAccessBlock"
    ]

    def incomplete(block: PolicyResource) -> Iterator[Violation]:
        off = [f for f in BLOCK_FLAGS if flag(block.props, f) is not True]
        if off:
            yield f"{block.name}: {', '.join(off)} not true.", block.urn

    def unblocked(bucket: Bucket) -> Iterator[Violation]:
        if not any(_all_blocked(b.props) for b in bucket.part("bucketPublicAccessBlock")):
            yield f"bucket {bucket.name} has no complete Block Public Access.", bucket.resource.urn

    yield from each(blocks, incomplete)
    account_wide = [b for b in blocks if b.resource_type == ACCOUNT_BLOCK]
    if not any(_all_blocked(b.props) for b in account_wide):  # else it covers every bucket
        yield from each(buckets(args.resources), unblocked)


def _sse_rules(bucket: Bucket) -> list[Mapping[str, Any]]:
    rules: list[Mapping[str, Any]] = []
    for inline in ("serverSideEncryptionConfiguration", "serverSideEncryptionConfigurations"):
        for block in maps(bucket.props, inline):
            rules.extend(maps(block, "rule") + maps(block, "rules"))
    for part in bucket.part("bucketServerSideEncryptionConfiguration"):
        rules.extend(maps(part.props, "rules") + maps(part.props, "rule"))
    return [r for r in (get(rule, "applyServerSideEncryptionByDefault") for rule in rules) if r]


def _named(bucket: Bucket, entries: Iterable[Mapping[str, Any]]) -> bool:
    return matches_any(bucket.name, [text(e, "pattern") for e in entries])


PATTERNS = reasoned_list({"pattern": {"type": "string", "minLength": 1}}, ["pattern"])


@stack_policy(
    "s3-encryption",
    severity=HIGH,
    domain="s3",
    description="Every S3 bucket must encrypt by default with SSE-KMS under a customer-managed "
    "key; SSE-S3 only on buckets the configuration exempts (access-log targets).",
    remediation="Create an aws.s3.BucketServerSideEncryptionConfiguration with sseAlgorithm "
    "aws:kms, kmsMasterKeyId and bucketKeyEnabled. A bucket that must use SSE-S3 (S3 server "
    "access logs cannot be delivered to SSE-KMS buckets) goes in s3-encryption.sseS3Allowed.",
    settings=[
        CUSTOMER_KEY,
        Setting(
            "sseS3Allowed",
            PATTERNS,
            [],
            "Bucket name patterns allowed to use SSE-S3 (AES256) instead of SSE-KMS.",
        ),
    ],
)
def s3_encryption(args: StackValidationArgs, config: Config) -> Iterator[Violation]:
    allowed = config.entries("sseS3Allowed")
    customer_key = config.flag("requireCustomerManagedKey")

    def check(bucket: Bucket) -> Iterator[Violation]:
        defaults = _sse_rules(bucket)
        algorithms = {text(d, "sseAlgorithm") for d in defaults}
        urn = bucket.resource.urn
        if not defaults:
            yield f"bucket {bucket.name} has no default encryption configuration.", urn
        elif algorithms <= {"aws:kms", "aws:kms:dsse"}:
            if customer_key and not all(present(d, "kmsMasterKeyId") for d in defaults):
                yield f"bucket {bucket.name} uses SSE-KMS with the AWS-managed key.", urn
        elif not _named(bucket, allowed):
            yield f"bucket {bucket.name} uses {', '.join(sorted(algorithms))}, not SSE-KMS.", urn

    yield from each(buckets(args.resources), check)


def _versioned(bucket: Bucket) -> bool:
    for part in bucket.part("bucketVersioning"):
        if text(part.props, "versioningConfiguration", "status") == "Enabled":
            return True
    inline = maps(bucket.props, "versioning") + maps(bucket.props, "versionings")
    return any(flag(v, "enabled") is True for v in inline)


@stack_policy(
    "s3-versioning",
    severity=MEDIUM,
    domain="s3",
    description="Buckets that hold data which must survive an overwrite or deletion (backups, "
    "uploads) must be versioned.",
    remediation="Create an aws.s3.BucketVersioning with status Enabled (and a lifecycle rule "
    "expiring noncurrent versions).",
    settings=[
        Setting(
            "requiredFor",
            PATTERNS,
            [{"pattern": "*", "reason": "every bucket, unless configured otherwise"}],
            "Bucket name patterns that must be versioned.",
        )
    ],
)
def s3_versioning(args: StackValidationArgs, config: Config) -> Iterator[Violation]:
    required = config.entries("requiredFor")

    def check(bucket: Bucket) -> Iterator[Violation]:
        if _named(bucket, required) and not _versioned(bucket):
            yield f"bucket {bucket.name} is not versioned.", bucket.resource.urn

    yield from each(buckets(args.resources), check)


def _logged(bucket: Bucket) -> bool:
    inline = maps(bucket.props, "logging") + maps(bucket.props, "loggings")
    parts = [p.props for p in bucket.part("bucketLogging")]
    return any(present(entry, "targetBucket") for entry in [*inline, *parts])


@stack_policy(
    "s3-access-logging",
    severity=MEDIUM,
    domain="s3",
    description="Every S3 bucket must write server access logs, except the log targets the "
    "configuration exempts.",
    remediation="Create an aws.s3.BucketLogging targeting the stack's logs bucket with a "
    "per-bucket prefix.",
    settings=[
        Setting(
            "exempt",
            PATTERNS,
            [],
            "Bucket name patterns that do not log (a log target cannot log to itself).",
        )
    ],
)
def s3_access_logging(args: StackValidationArgs, config: Config) -> Iterator[Violation]:
    exempt = config.entries("exempt")

    def check(bucket: Bucket) -> Iterator[Violation]:
        if not _named(bucket, exempt) and not _logged(bucket):
            yield f"bucket {bucket.name} has no access logging.", bucket.resource.urn

    yield from each(buckets(args.resources), check)


def _denies_plain_http(statement: Mapping[str, Any]) -> bool:
    if text(statement, "Effect") != "Deny":
        return False
    principal = get(statement, "Principal")
    if principal != "*" and not (is_map(principal) and "*" in strings(principal, "AWS")):
        return False
    actions = strings(statement, "Action")
    if not any(a in ("s3:*", "*") for a in actions):
        return False
    secure = get(statement, "Condition", "Bool", "aws:SecureTransport")
    return str(secure).lower() == "false"


def _policies(bucket: Bucket) -> list[Any]:
    documents = [json_document(get(p.props, "policy")) for p in bucket.part("bucketPolicy")]
    inline = get(bucket.props, "policy")
    if inline:
        documents.append(json_document(inline))
    return documents


@stack_policy(
    "s3-tls-only",
    severity=HIGH,
    domain="s3",
    description="Every S3 bucket policy must deny requests not made over TLS "
    "(aws:SecureTransport false).",
    remediation='Add a statement {"Effect": "Deny", "Principal": "*", "Action": "s3:*", '
    '"Resource": [bucket ARN, bucket ARN/*], "Condition": {"Bool": {"aws:SecureTransport": '
    '"false"}}} to the bucket\'s aws.s3.BucketPolicy.',
)
def s3_tls_only(args: StackValidationArgs, _: Config) -> Iterator[Violation]:
    def check(bucket: Bucket) -> Iterator[Violation]:
        documents = _policies(bucket)
        statements = [s for document in documents for s in maps(document, "Statement")]
        if not any(_denies_plain_http(s) for s in statements):
            yield f"bucket {bucket.name} accepts requests without TLS.", bucket.resource.urn

    yield from each(buckets(args.resources), check)
