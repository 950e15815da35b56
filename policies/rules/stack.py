"""Stack policies: rules about how resources relate, checked once over the whole stack (the
engine sends every resource's **outputs**, with parents and property dependencies).

* S3: every bucket has Block Public Access, default encryption (SSE-KMS; SSE-S3 only for the
  buckets the configuration exempts, e.g. access-log targets), versioning and access logging
  where required, and a bucket policy that denies requests not made over TLS. A bucket's
  configuration resources are found through their ``bucket`` property's dependencies (or, when
  those are not recorded, by bucket name), in both the v7 and the ``…V2`` spellings.
* Network: every VPC has a flow log; no security group mixes inline rules with separate rule
  resources.
* Kubernetes: a PodDisruptionBudget that allows a disruption for every multi-replica
  Deployment or StatefulSet (``spec.replicas`` > 1, or an HPA targeting it with
  ``maxReplicas`` > 1), a NetworkPolicy selecting every workload, and Pod Security labels on
  every namespace workloads run in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import PolicyResource, StackValidationArgs

from .aws_network import CLASSIC_RULE, GROUPS, VPC_EGRESS_RULE, VPC_INGRESS_RULE
from .common import (
    CRITICAL,
    CUSTOMER_KEY,
    HIGH,
    MEDIUM,
    Config,
    Setting,
    each,
    flag,
    get,
    is_bucket,
    is_map,
    json_document,
    k8s_kind,
    known,
    labels_of,
    maps,
    matches_any,
    namespace_of,
    number,
    pod_templates,
    present,
    reasoned_list,
    refers_to,
    s3_kind,
    selector_matches,
    stack_policy,
    strings,
    text,
    workload_kind,
)

Violation = tuple[str, str | None]

# ---- S3 ------------------------------------------------------------------------------------

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


# ---- network -------------------------------------------------------------------------------

VPC = "aws:ec2/vpc:Vpc"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"


def _ids(resource: PolicyResource) -> list[str]:
    value = known(resource.props, "id")
    return [value] if isinstance(value, str) and value else []


@stack_policy(
    "vpc-flow-logs",
    severity=MEDIUM,
    domain="network",
    description="Every VPC must have a flow log.",
    remediation="Create an aws.ec2.FlowLog with vpcId set to the VPC (traffic type ALL) into "
    "a log group with bounded retention.",
)
def vpc_flow_logs(args: StackValidationArgs, _: Config) -> Iterator[Violation]:
    logs = [r for r in args.resources if r.resource_type == FLOW_LOG]
    for vpc in (r for r in args.resources if r.resource_type == VPC):
        if not any(refers_to(log, "vpcId", vpc, _ids(vpc)) for log in logs):  # never raises
            yield f"VPC {vpc.name} has no flow log.", vpc.urn


Permission = tuple[str, str, int, int, str]
"""(direction, protocol, from port, to port, peer): one atomic security group permission."""


def _protocol(value: str) -> str:
    value = value.lower()
    return {"6": "tcp", "17": "udp", "1": "icmp", "all": "-1"}.get(value, value)


def _permissions(direction: str, rule: Mapping[str, Any], peers: Iterable[str]) -> set[Permission]:
    protocol = _protocol(text(rule, "protocol") or text(rule, "ipProtocol"))
    low = int(number(rule, "fromPort") or 0)
    high = int(number(rule, "toPort") or 0)
    if protocol == "-1":
        low = high = 0
    return {(direction, protocol, low, high, peer) for peer in peers}


def _inline_permissions(group: PolicyResource) -> set[Permission]:
    found: set[Permission] = set()
    for direction in ("ingress", "egress"):
        for rule in maps(group.props, direction):
            peers = [
                *strings(rule, "cidrBlocks"),
                *strings(rule, "ipv6CidrBlocks"),
                *strings(rule, "prefixListIds"),
                *strings(rule, "securityGroups"),
                *(["self"] if flag(rule, "self") else []),
            ]
            found |= _permissions(direction, rule, peers)
    return found


def _separate_permissions(rule: PolicyResource) -> set[Permission]:
    props = rule.props
    if rule.resource_type == CLASSIC_RULE:
        peers = [
            *strings(props, "cidrBlocks"),
            *strings(props, "ipv6CidrBlocks"),
            *strings(props, "prefixListIds"),
            *strings(props, "sourceSecurityGroupId"),
            *(["self"] if flag(props, "self") else []),
        ]
        return _permissions(text(props, "type"), props, peers)
    direction = "ingress" if rule.resource_type == VPC_INGRESS_RULE else "egress"
    peers = [
        v
        for v in (
            text(props, "cidrIpv4"),
            text(props, "cidrIpv6"),
            text(props, "prefixListId"),
            text(props, "referencedSecurityGroupId"),
        )
        if v
    ]
    return _permissions(direction, props, peers)


@stack_policy(
    "sg-no-rule-conflicts",
    severity=MEDIUM,
    domain="network",
    description="A security group must be managed either with inline rules or with separate "
    "rule resources, never both (each apply would remove the other's rules).",
    remediation="Move the group's inline ingress/egress blocks into "
    "aws.vpc.SecurityGroupIngressRule / SecurityGroupEgressRule resources (or the reverse).",
)
def sg_no_rule_conflicts(args: StackValidationArgs, _: Config) -> Iterator[Violation]:
    rules = [
        r
        for r in args.resources
        if r.resource_type in (CLASSIC_RULE, VPC_INGRESS_RULE, VPC_EGRESS_RULE)
    ]

    def check(group: PolicyResource) -> Iterator[Violation]:
        attached = [r for r in rules if refers_to(r, "securityGroupId", group, _ids(group))]
        if not attached:
            return
        # A group's outputs list every rule it has, separate ones included: only rules no
        # separate resource accounts for are inline.
        explained: set[Permission] = set()
        for rule in attached:
            explained |= _separate_permissions(rule)
        if _inline_permissions(group) - explained:
            yield (
                f"security group {group.name} has inline rules and {len(attached)} separate "
                "rule resource(s).",
                group.urn,
            )

    yield from each((r for r in args.resources if r.resource_type in GROUPS), check)


# ---- Kubernetes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    resource: PolicyResource
    kind: str
    namespace: str
    name: str
    labels: dict[str, str]

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def workload_resources(resources: Iterable[PolicyResource]) -> list[PolicyResource]:
    return [r for r in resources if workload_kind(r.resource_type)]


def workload(resource: PolicyResource) -> Workload | None:
    """The workload a resource runs (may raise ``UnknownValueError``: check it with ``each``)."""
    kind = workload_kind(resource.resource_type)
    templates = pod_templates(resource.resource_type, resource.props)
    if kind is None or not templates:
        return None
    return Workload(
        resource,
        kind,
        namespace_of(resource.props),
        text(resource.props, "metadata", "name"),
        labels_of(templates[0].metadata, "labels"),
    )


def _of_kind(resources: Iterable[PolicyResource], kind: str) -> list[PolicyResource]:
    return [r for r in resources if k8s_kind(r.resource_type) == kind]


def _replicas(workload: Workload, hpas: Sequence[PolicyResource]) -> tuple[int, int]:
    """(fewest, most) replicas the workload runs with: its HPA's bounds, else spec.replicas
    (default 1)."""
    for hpa in hpas:
        target = get(hpa.props, "spec", "scaleTargetRef") or {}
        if (
            namespace_of(hpa.props) == workload.namespace
            and text(target, "kind") == workload.kind
            and text(target, "name") == workload.name
        ):
            low = number(hpa.props, "spec", "minReplicas") or 1
            high = number(hpa.props, "spec", "maxReplicas") or low
            return int(low), int(high)
    replicas = number(workload.resource.props, "spec", "replicas")
    count = 1 if replicas is None else int(replicas)
    return count, count


def _amount(value: Any, replicas: int) -> float | None:
    """An int-or-percent PDB field as a number of pods (``None`` if it does not parse)."""
    try:
        if isinstance(value, str) and value.endswith("%"):
            return float(value[:-1]) * replicas / 100
        return float(value)
    except (TypeError, ValueError):
        return None


def _allows_disruption(pdb: Mapping[str, Any], fewest: int) -> bool:
    """Whether the PDB lets at least one pod go when the workload runs ``fewest`` replicas
    (percentages round the way the disruption controller rounds them: up)."""
    spec = get(pdb, "spec") or {}
    unavailable = get(spec, "maxUnavailable")
    if unavailable is not None:
        amount = _amount(unavailable, fewest)
        return amount is not None and math.ceil(amount) >= 1
    available = get(spec, "minAvailable")
    if available is not None:
        amount = _amount(available, fewest)
        return amount is not None and math.ceil(amount) < fewest
    return True  # a PDB with neither field allows every disruption


@stack_policy(
    "k8s-replicas-pdb",
    severity=HIGH,
    domain="kubernetes",
    description="Every Deployment or StatefulSet that runs more than one replica (spec.replicas "
    "or an HPA's maxReplicas) must have a PodDisruptionBudget that selects its pods and still "
    "allows a voluntary disruption.",
    remediation="Create a policy/v1 PodDisruptionBudget in the workload's namespace selecting "
    "its pod labels, with maxUnavailable: 1 (or a minAvailable below the HPA's minReplicas), "
    "so node drains proceed one pod at a time.",
)
def k8s_replicas_pdb(args: StackValidationArgs, _: Config) -> Iterator[Violation]:
    hpas = _of_kind(args.resources, "HorizontalPodAutoscaler")
    pdbs = _of_kind(args.resources, "PodDisruptionBudget")

    def check(resource: PolicyResource) -> Iterator[Violation]:
        found = workload(resource)
        if found is None or found.kind not in ("Deployment", "StatefulSet"):
            return
        fewest, most = _replicas(found, hpas)
        if most <= 1:
            return
        selecting = [
            pdb
            for pdb in pdbs
            if namespace_of(pdb.props) == found.namespace
            and selector_matches(get(pdb.props, "spec", "selector"), found.labels)
        ]
        if not selecting:
            yield (
                f"{found.ref} runs up to {most} replicas without a PodDisruptionBudget.",
                (resource.urn),
            )
        elif not any(_allows_disruption(pdb.props, fewest) for pdb in selecting):
            yield f"the PodDisruptionBudget of {found.ref} allows no disruption.", resource.urn

    yield from each(workload_resources(args.resources), check)


@stack_policy(
    "k8s-netpol-coverage",
    severity=MEDIUM,
    domain="kubernetes",
    description="Every workload's pods must be selected by a NetworkPolicy in their namespace.",
    remediation="Give the namespace the default-deny baseline (components.lib.kube."
    "network_policies.namespace_baseline) and declare the workload's traffic with an Allowance.",
)
def k8s_netpol_coverage(args: StackValidationArgs, _: Config) -> Iterator[Violation]:
    policies = _of_kind(args.resources, "NetworkPolicy")

    def check(resource: PolicyResource) -> Iterator[Violation]:
        found = workload(resource)
        if found is not None and not any(
            namespace_of(p.props) == found.namespace
            and selector_matches(get(p.props, "spec", "podSelector"), found.labels)
            for p in policies
        ):
            yield f"{found.ref} is not selected by any NetworkPolicy.", resource.urn

    yield from each(workload_resources(args.resources), check)


PSS_ENFORCE = "pod-security.kubernetes.io/enforce"


@stack_policy(
    "k8s-namespace-pss",
    severity=HIGH,
    domain="kubernetes",
    description="Every namespace must enforce the Pod Security Standards 'restricted' level, "
    "unless the configuration exempts it (with the level and the reason); workloads may run "
    "only in namespaces of the stack or in external ones the configuration lists.",
    remediation="Create namespaces with components.lib.kube.namespaces.namespace (enforce, audit "
    "and "
    "warn labels at the pinned version); record any exemption in k8s-namespace-pss.exempt, and "
    "namespaces the stack does not own (kube-system) in externalNamespaces.",
    settings=[
        Setting(
            "exempt",
            reasoned_list(
                {
                    "namespace": {"type": "string"},
                    "level": {"enum": ["baseline", "privileged"]},
                },
                ["namespace", "level"],
            ),
            [],
            "Namespaces that enforce a lower level than restricted.",
        ),
        Setting(
            "externalNamespaces",
            reasoned_list({"namespace": {"type": "string"}}, ["namespace"]),
            [],
            "Namespaces the stack does not create but runs workloads in.",
        ),
    ],
)
def k8s_namespace_pss(args: StackValidationArgs, config: Config) -> Iterator[Violation]:
    levels = {text(e, "namespace"): text(e, "level") for e in config.entries("exempt")}
    external = {text(e, "namespace") for e in config.entries("externalNamespaces")}
    namespaces = _of_kind(args.resources, "Namespace")
    created = {known(n.props, "metadata", "name") for n in namespaces} | external

    def labelled(namespace: PolicyResource) -> Iterator[Violation]:
        name = text(namespace.props, "metadata", "name")
        wanted = levels.get(name, "restricted")
        enforced = labels_of(namespace.props, "metadata", "labels").get(PSS_ENFORCE, "")
        if enforced != wanted:
            shown = enforced or "no"
            message = f"namespace {name} enforces {shown} Pod Security level; wanted {wanted}."
            yield message, namespace.urn

    def placed(resource: PolicyResource) -> Iterator[Violation]:
        found = workload(resource)
        if found is not None and found.namespace not in created:
            yield (
                f"{found.ref} runs in namespace {found.namespace}, which the stack does not "
                "create (its Pod Security labels are unknown).",
                resource.urn,
            )

    yield from each(namespaces, labelled)
    yield from each(workload_resources(args.resources), placed)
