"""Section parsers for the cluster and what runs on it: the EKS version and add-ons, the node
groups, the container images and the workloads.

Besides each key's own rule they check what spans keys (node group sizes in order, exactly one
source per image, limits at least the requests, a namespace quota with room for the server at
its peak) and the production floors (two nodes per group, two server replicas).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from components.settings.model import (
    CLUSTER_ADDONS,
    IMAGES,
    PROJECT_ROOT,
    AccountSettings,
    ClusterSettings,
    ImageSettings,
    ImagesSettings,
    LogLevel,
    NodeGroupSettings,
    QuotaSettings,
    Resources,
    Secret,
    WorkloadSettings,
)
from components.settings.parsers import (
    InvalidValueError,
    choice,
    cidr_allowlist,
    host_name,
    integer,
    optional,
)
from components.settings.reader import Reader
from components.settings.rules import (
    Quantity,
    acm_certificate_arn,
    addon_versions,
    cpu_quantity,
    django_secret_key,
    hosted_zone_id,
    iam_role_arns,
    image_reference,
    instance_types,
    kubernetes_version,
    log_retention_days,
    memory_quantity,
    wafv2_acl_arn,
)


def _node_group(r: Reader, prefix: str, minimum: int) -> NodeGroupSettings:
    low = r.get(f"{prefix}MinSize", integer(minimum, 100))
    high = r.get(f"{prefix}MaxSize", integer(1, 100))
    desired = r.get(f"{prefix}DesiredSize", integer(0, 100))
    r.check(
        f"{prefix}MaxSize",
        lambda: high >= low,
        f"at least {prefix}MinSize ({low})",
        needs=(f"{prefix}MinSize",),
    )
    r.check(
        f"{prefix}DesiredSize",
        lambda: low <= desired <= high,
        f"a size within [{prefix}MinSize, {prefix}MaxSize] = [{low}, {high}]",
        needs=(f"{prefix}MinSize", f"{prefix}MaxSize"),
    )
    return NodeGroupSettings(r.get(f"{prefix}InstanceTypes", instance_types), low, high, desired)


def cluster(r: Reader, account: str | None) -> ClusterSettings:
    return ClusterSettings(
        version=r.get("clusterVersion", kubernetes_version),
        public_access_cidrs=r.get("clusterPublicAccessCidrs", cidr_allowlist(allow_empty=True)),
        read_only_role_arns=r.get(
            "clusterReadOnlyRoleArns", iam_role_arns(account, allow_empty=True)
        ),
        log_retention_days=r.get("clusterLogRetentionDays", log_retention_days),
        addons=r.get("clusterAddons", addon_versions(CLUSTER_ADDONS)),
        # prod keeps two system nodes so CoreDNS and the autoscaler survive losing one
        system_nodes=_node_group(r, "systemNode", 2 if r.production else 1),
        app_nodes=_node_group(r, "appNode", 2 if r.production else 1),
        node_disk_size_gb=r.get("nodeDiskSizeGb", integer(20, 1000)),
    )


def _image_source(raw: str) -> Path:
    folder = (PROJECT_ROOT / raw).resolve()
    if not folder.is_dir():
        raise InvalidValueError(
            f"a folder, relative to the project, holding the image's build context; {folder} "
            "does not exist"
        )
    if not (folder / "Dockerfile").is_file():
        raise InvalidValueError(f"a folder with a Dockerfile; {folder} has none")
    return folder


def images(r: Reader, account: AccountSettings) -> ImagesSettings:
    registry = (
        f"{account.account_id}.dkr.ecr.{account.region}.amazonaws.com"
        if r.ok("accountId", "region")
        else None
    )
    images = []
    for name in IMAGES:
        source = r.get(f"{name}ImageSource", optional(_image_source))
        reference = r.get(f"{name}Image", optional(image_reference(registry)))
        exactly_one: bool = (source is None) != (reference is None)
        r.check(
            f"{name}Image",
            partial(bool, exactly_one),
            f"exactly one of {name}ImageSource (build from source) and {name}Image (a prebuilt "
            "image) to be set",
            needs=(f"{name}ImageSource",),
        )
        images.append(ImageSettings(name, source, reference))
    return ImagesSettings(r.get("imageRetentionCount", integer(1, 1000)), tuple(images))


def covers(
    big: Quantity, smalls: tuple[Quantity, ...], times: tuple[int, ...] | None = None
) -> bool:
    """Whether ``big`` holds each of ``smalls`` as many ``times`` (once each by default)."""
    counts = times or (1,) * len(smalls)
    return big.base >= sum(n * small.base for small, n in zip(smalls, counts, strict=True))


def replicas(r: Reader, prefix: str) -> tuple[int, int]:
    """``<prefix>MinReplicas`` and ``<prefix>MaxReplicas``: in order, two or more in prod."""
    low = r.get(f"{prefix}MinReplicas", integer(1, 100))
    high = r.get(f"{prefix}MaxReplicas", integer(1, 500))
    r.check(
        f"{prefix}MinReplicas",
        lambda: not r.production or low >= 2,
        "at least 2 in prod (a replica per zone survives a node or zone loss)",
    )
    r.check(
        f"{prefix}MaxReplicas",
        lambda: high >= low,
        f"at least {prefix}MinReplicas ({low})",
        needs=(f"{prefix}MinReplicas",),
    )
    return low, high


def resources(r: Reader, prefix: str) -> Resources:
    """``<prefix>{Cpu,Memory}{Request,Limit}``, limits at least the requests."""
    values = {
        kind: (
            r.get(f"{prefix}{kind}Request", parse),
            r.get(f"{prefix}{kind}Limit", parse),
        )
        for kind, parse in (("Cpu", cpu_quantity), ("Memory", memory_quantity))
    }
    for kind, (request, limit) in values.items():
        r.check(
            f"{prefix}{kind}Limit",
            partial(covers, limit, (request,)),
            f"at least {prefix}{kind}Request ({r.raw.get(f'{prefix}{kind}Request')}): a limit "
            "below the request is refused by the API server",
            needs=(f"{prefix}{kind}Request",),
        )
    return Resources(values["Cpu"][0], values["Cpu"][1], values["Memory"][0], values["Memory"][1])


def workloads(r: Reader, account: AccountSettings) -> WorkloadSettings:
    where = (account.region, account.account_id)
    certificate = r.get("appCertificateArn", optional(acm_certificate_arn(*where)))
    zone = r.get("appHostedZoneId", optional(hosted_zone_id))
    exactly_one = (
        "exactly one of appCertificateArn (an existing certificate) and appHostedZoneId (a "
        "certificate created and DNS-validated there) to be set"
    )
    r.check(
        "appCertificateArn",
        lambda: certificate is None or zone is None,
        f"{exactly_one}; both are",
        needs=("appHostedZoneId",),
    )
    r.check(
        "appHostedZoneId",
        lambda: certificate is not None or zone is not None,
        f"{exactly_one}; neither is",
        needs=("appCertificateArn",),
    )
    low, high = replicas(r, "server")
    percent = integer(1, 100)
    server = resources(r, "server")
    quota = QuotaSettings(
        r.get("namespaceQuotaCpu", cpu_quantity),
        r.get("namespaceQuotaMemory", memory_quantity),
        r.get("namespaceQuotaPods", integer(1, 10000)),
    )
    settings = WorkloadSettings(
        host=r.get("appHost", host_name),
        certificate_arn=certificate,
        hosted_zone_id=zone,
        waf_acl_arn=r.get("appWafAclArn", optional(wafv2_acl_arn(*where))),
        log_level=r.get("appLogLevel", choice(LogLevel)),
        min_replicas=low,
        max_replicas=high,
        cpu_target_percent=r.get("serverCpuTargetPercent", percent),
        memory_target_percent=r.get("serverMemoryTargetPercent", percent),
        scale_down_stabilization_seconds=r.get(
            "serverScaleDownStabilizationSeconds", integer(0, 3600)
        ),
        server=server,
        quota=quota,
        django_secret_key=Secret(r.get("djangoSecretKey", django_secret_key)),
    )
    return settings
