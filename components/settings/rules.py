"""What a valid value is for the services the platform uses: AWS names, ARNs, instance types,
retention periods and engine versions; EKS versions and add-ons; Kubernetes quantities; the
GitHub repository of the deploy path; Django's secret key.

Each rule is a parser (see ``parsers``) that raises ``InvalidValueError`` saying what a valid
value looks like; the section parsers bind them to keys. Nothing here reads configuration.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from components.settings.parsers import InvalidValueError, Parser, one_of_ints, string_list, text

# --- AWS account, region and tags ----------------------------------------------------------

_REGION = re.compile(
    r"^[a-z]{2}(-gov|-iso[a-z]?)?-(central|north|south|east|west|northeast|northwest|southeast|southwest)-\d$"
)
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_COST_CENTER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{1,31}$")


def region(raw: str) -> str:
    return text(_REGION, "an AWS region name such as eu-west-1")(raw)


def account_id(raw: str) -> str:
    return text(_ACCOUNT_ID, "a 12-digit AWS account id")(raw)


def cost_center(raw: str) -> str:
    return text(_COST_CENTER, "2 to 32 letters, digits or dashes, such as EXPO-PROD")(raw)


def iam_role_arns(account: str | None, *, allow_empty: bool = False) -> Parser[tuple[str, ...]]:
    """A JSON array of IAM role ARNs (non-empty unless ``allow_empty``), all in ``account``
    when it is known."""
    acct = re.escape(account) if account else r"\d{12}"
    pattern = re.compile(rf"^arn:aws:iam::{acct}:role/[\w+=,.@/-]{{1,512}}$")
    where = f"account {account}" if account else "the stack's account"

    def parse(raw: str) -> tuple[str, ...]:
        values = string_list(raw)
        if not values and not allow_empty:
            raise InvalidValueError(f"at least one IAM role ARN of {where}")
        wrong = [v for v in values if not pattern.fullmatch(v)]
        if wrong:
            raise InvalidValueError(
                f"IAM role ARNs of {where}, such as arn:aws:iam::{account or '123456789012'}"
                f":role/platform-admin; not one: {', '.join(wrong)}"
            )
        return values

    return parse


# --- Retention periods AWS accepts ---------------------------------------------------------

CLOUDWATCH_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
"""The retention values CloudWatch Logs accepts (PutRetentionPolicy)."""

log_retention_days = one_of_ints(CLOUDWATCH_RETENTION_DAYS, "a CloudWatch Logs retention")

PERFORMANCE_INSIGHTS_DAYS = (7, *(31 * months for months in range(1, 24)), 731)
"""Retention values Performance Insights accepts: 7 days, whole months of 31 days, or 731."""

performance_insights_days = one_of_ints(
    PERFORMANCE_INSIGHTS_DAYS, "a Performance Insights retention"
)


# --- Instance types ------------------------------------------------------------------------

_INSTANCE_SIZE = r"(nano|micro|small|medium|large|metal|\d*xlarge|metal-\d+xl)"
_INSTANCE_FAMILY = r"[a-z][a-z0-9-]*\d[a-z0-9-]*"
INSTANCE_TYPE_PATTERNS = {
    "ec2": re.compile(rf"^{_INSTANCE_FAMILY}\.{_INSTANCE_SIZE}$"),
    "rds": re.compile(rf"^db\.{_INSTANCE_FAMILY}\.{_INSTANCE_SIZE}$"),
    "elasticache": re.compile(rf"^cache\.{_INSTANCE_FAMILY}\.{_INSTANCE_SIZE}$"),
}


def instance_type(kind: str) -> Parser[str]:
    """An instance type by pattern: ``ec2`` (m7i.large), ``rds`` (db.r7g.large) or
    ``elasticache`` (cache.r7g.large)."""
    example = {"ec2": "m7i.large", "rds": "db.r7g.large", "elasticache": "cache.r7g.large"}[kind]
    return text(INSTANCE_TYPE_PATTERNS[kind], f"an {kind} instance type such as {example}")


def instance_types(raw: str) -> tuple[str, ...]:
    """A non-empty JSON array of EC2 instance types of one CPU architecture."""
    values = string_list(raw)
    if not values:
        raise InvalidValueError("at least one EC2 instance type")
    parse = instance_type("ec2")
    for value in values:
        parse(value)
    if len({is_graviton(v) for v in values}) > 1:
        raise InvalidValueError("instance types of one CPU architecture (all x86_64 or all arm64)")
    return values


def is_graviton(instance: str) -> bool:
    """True for AWS Graviton (arm64) families such as m7g, c7gn, t4g, r8g."""
    family = instance.split(".", 1)[0]
    return re.fullmatch(r"[a-z]+\d+g[a-z]*", family) is not None and not family.startswith("g")


# --- Database and cache engines ------------------------------------------------------------

MIN_POSTGRES_MAJOR = 14
"""Oldest PostgreSQL major still in RDS standard support."""


def postgres_version(raw: str) -> str:
    """A PostgreSQL major version such as ``17``. Minor versions are not pinned: RDS upgrades
    them automatically, and a pinned minor would make every later deploy try to undo that."""
    if not re.fullmatch(r"\d{2}", raw) or int(raw) < MIN_POSTGRES_MAJOR:
        raise InvalidValueError(
            f"a PostgreSQL major version, {MIN_POSTGRES_MAJOR} or newer, such as 17 (minor "
            "versions are upgraded automatically)"
        )
    return raw


def identifier(raw: str) -> str:
    """A PostgreSQL identifier usable as a database or user name."""
    return text(
        re.compile(r"^[a-z][a-z0-9_]{0,62}$"),
        "a lower-case identifier: a letter, then letters, digits or _ (at most 63)",
    )(raw)


CACHE_VERSIONS = {"redis": re.compile(r"7\.[0-9]"), "valkey": re.compile(r"(7\.2|8\.[0-9])")}


def cache_version(engine: str | None) -> Parser[str]:
    def parse(raw: str) -> str:
        if engine is None:
            return raw  # the engine itself is wrong; reported under its own key
        if not CACHE_VERSIONS[engine].fullmatch(raw):
            example = {"redis": "7.1 (Redis OSS 7)", "valkey": "8.0 (or 7.2)"}[engine]
            raise InvalidValueError(f"a {engine} engine version such as {example}")
        return raw

    return parse


def cache_auth_token(raw: str) -> str:
    """ElastiCache AUTH: 16-128 printable ASCII characters, none of space, @, " and /."""
    if not 16 <= len(raw) <= 128 or any(
        c in ' @"/' or not 33 <= ord(c) <= 126 for c in raw
    ):  # fmt: skip
        raise InvalidValueError(
            "an ElastiCache AUTH token: 16 to 128 printable ASCII characters "
            'without space, @, " or /'
        )
    return raw


# --- Existing AWS resources the stack refers to --------------------------------------------

_UUID = r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}"
_ACM_ARN = re.compile(rf"^arn:aws(-[a-z]+)*:acm:[a-z0-9-]+:\d{{12}}:certificate/{_UUID}$")
_HOSTED_ZONE = re.compile(r"^Z[A-Z0-9]{1,31}$")
_WAFV2_ACL = re.compile(
    rf"^arn:aws(-[a-z]+)*:wafv2:[a-z0-9-]+:\d{{12}}:regional/webacl/[A-Za-z0-9_-]{{1,128}}/{_UUID}$"
)
_S3_BUCKET = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_KMS_KEY_ARN = re.compile(
    rf"^arn:aws(-[a-z]+)*:kms:[a-z0-9-]+:\d{{12}}:key/(mrk-[0-9a-f]{{32}}|{_UUID})$"
)


def _in_stack(raw: str, region: str | None, account: str | None) -> None:
    """An ARN's region and account must be the stack's: an ALB only takes certificates and
    web ACLs of its own region and account."""
    _, _, _, arn_region, arn_account, *_ = raw.split(":")
    if region is not None and arn_region != region:
        raise InvalidValueError(f"an ARN in the stack's region {region}, not {arn_region}")
    if account is not None and arn_account != account:
        raise InvalidValueError(f"an ARN in the stack's account {account}, not {arn_account}")


def acm_certificate_arn(region: str | None, account: str | None) -> Parser[str]:
    """An ACM certificate ARN of the stack's region and account."""

    def parse(raw: str) -> str:
        if not _ACM_ARN.fullmatch(raw):
            raise InvalidValueError(
                "an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<uuid>)"
            )
        _in_stack(raw, region, account)
        return raw

    return parse


def wafv2_acl_arn(region: str | None, account: str | None) -> Parser[str]:
    """A regional WAFv2 web ACL ARN of the stack's region and account."""

    def parse(raw: str) -> str:
        if not _WAFV2_ACL.fullmatch(raw):
            raise InvalidValueError(
                "a regional WAFv2 web ACL ARN "
                "(arn:aws:wafv2:<region>:<account>:regional/webacl/<name>/<id>)"
            )
        _in_stack(raw, region, account)
        return raw

    return parse


hosted_zone_id = text(_HOSTED_ZONE, "a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ")


def s3_bucket_name(raw: str) -> str:
    return text(_S3_BUCKET, "an S3 bucket name (3-63 lower-case letters, digits, dots, dashes)")(
        raw
    )


def kms_key_arn(raw: str) -> str:
    """A KMS key ARN (not an alias: IAM grants on keys need the key's own ARN)."""
    return text(_KMS_KEY_ARN, "a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key-id>)")(raw)


# --- The deploy path: GitHub Actions through OIDC ------------------------------------------

_GITHUB_REPOSITORY = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}(?:@\d+)?/[A-Za-z0-9._-]{1,100}(?:@\d+)?$"
)
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"


def github_repository(raw: str) -> str:
    """``owner/name`` as GitHub writes it into the OIDC ``sub`` claim, or the immutable form
    ``owner@<id>/name@<id>`` that repositories created since 2026-07-15 emit."""
    return text(
        _GITHUB_REPOSITORY,
        "a GitHub repository as owner/name (or owner@<owner-id>/name@<repo-id> when the "
        "repository emits immutable subject claims)",
    )(raw)


def github_oidc_provider_arn(account: str | None) -> Parser[str]:
    """The ARN of the account's existing GitHub Actions OIDC provider (one per account)."""
    expected = f"arn:aws:iam::{account or '<account>'}:oidc-provider/{GITHUB_OIDC_HOST}"
    acct = re.escape(account) if account else r"\d{12}"
    pattern = re.compile(rf"^arn:aws:iam::{acct}:oidc-provider/{re.escape(GITHUB_OIDC_HOST)}$")
    return text(pattern, f"the ARN of the account's GitHub OIDC provider, {expected}")


# --- EKS and images ------------------------------------------------------------------------

MIN_KUBERNETES_MINOR = 30
"""EKS 1.30 and newer: standard support, and no default annotation on the legacy gp2 class."""


def kubernetes_version(raw: str) -> str:
    match = re.fullmatch(r"1\.(\d{2})", raw)
    if not match or int(match.group(1)) < MIN_KUBERNETES_MINOR:
        raise InvalidValueError(
            f"an EKS Kubernetes version 1.{MIN_KUBERNETES_MINOR} or newer, such as 1.33"
        )
    return raw


ADDON_VERSION = re.compile(r"^v\d+\.\d+\.\d+-eksbuild\.\d+$")


def addon_versions(known: Iterable[str]) -> Parser[dict[str, str]]:
    """A JSON array of ``name@version`` (e.g. ``vpc-cni@v1.20.4-eksbuild.1``) naming every
    add-on in ``known`` exactly once."""
    known = tuple(known)

    def parse(raw: str) -> dict[str, str]:
        result: dict[str, str] = {}
        for item in string_list(raw):
            name, _, version = item.partition("@")
            if name not in known:
                raise InvalidValueError(
                    f"add-ons from {', '.join(known)}; {name!r} is not one of them"
                )
            if not ADDON_VERSION.fullmatch(version):
                raise InvalidValueError(
                    f"name@version with an EKS build version such as {name}@v1.2.3-eksbuild.1; "
                    f"got {item!r}"
                )
            if name in result:
                raise InvalidValueError(f"each add-on once; {name} appears twice")
            result[name] = version
        missing = [name for name in known if name not in result]
        if missing:
            raise InvalidValueError(
                f"a pinned version for every add-on; missing {', '.join(missing)}"
            )
        return result

    return parse


def image_reference(registry: str | None) -> Parser[str]:
    """An image in ``registry`` (the stack's ECR) pinned by tag or digest."""
    host = re.escape(registry) if registry else r"[a-z0-9.-]+(:\d+)?"
    pattern = re.compile(
        rf"^{host}/[a-z0-9]+([._/-][a-z0-9]+)*(?=[:@])(:[\w][\w.-]{{0,127}})?(@sha256:[a-f0-9]{{64}})?$"
    )
    where = registry or "the stack's ECR registry"

    def parse(raw: str) -> str:
        if not pattern.fullmatch(raw):
            raise InvalidValueError(
                f"an image in {where} with a tag or digest, such as "
                f"{registry or '<account>.dkr.ecr.<region>.amazonaws.com'}/repo:1.4.2 or "
                "…/repo@sha256:<64 hex>"
            )
        return raw

    return parse


# --- Kubernetes resource quantities --------------------------------------------------------

_CPU = re.compile(r"^(\d+)(m?)$")
_MEMORY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_MEMORY_UNITS = {
    None: 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}  # fmt: skip


@dataclass(frozen=True)
class Quantity:
    """A Kubernetes resource quantity as given (``500m``, ``1Gi``) and its value in base units
    (millicores for CPU, bytes for memory), so quantities compare and add up."""

    text: str
    base: int


def cpu_quantity(raw: str) -> Quantity:
    """A CPU quantity in whole cores or millicores (``2``, ``250m``), more than zero."""
    match = _CPU.fullmatch(raw)
    if not match or int(match.group(1)) == 0:
        raise InvalidValueError("a CPU quantity above zero such as 250m or 2 (cores)")
    number = int(match.group(1))
    return Quantity(raw, number if match.group(2) else number * 1000)


def memory_quantity(raw: str) -> Quantity:
    """A memory quantity (``512Mi``, ``2Gi``, ``1G``) of at least 4Mi."""
    match = _MEMORY.fullmatch(raw)
    if not match:
        raise InvalidValueError("a memory quantity such as 512Mi or 2Gi")
    value = int(match.group(1)) * _MEMORY_UNITS[match.group(2)]
    if value < 4 * 2**20:
        raise InvalidValueError("a memory quantity of at least 4Mi such as 512Mi or 2Gi")
    return Quantity(raw, value)


# --- Django --------------------------------------------------------------------------------


def django_secret_key(raw: str) -> str:
    """Django's own deployment check: at least 50 characters, at least 5 distinct ones, and not
    a key generated by ``startproject`` for development."""
    if len(raw) < 50 or len(set(raw)) < 5 or raw.startswith("django-insecure"):
        raise InvalidValueError(
            "a random key of at least 50 characters with at least 5 distinct ones, not a "
            "'django-insecure-' development key (python -c 'import secrets; "
            "print(secrets.token_urlsafe(50))')"
        )
    return raw
