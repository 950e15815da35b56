"""Compute and its supply chain: the EKS control plane, node launch templates (and plain EC2
instances), ECR repositories, and the tags every taggable AWS resource carries."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import ResourceValidationArgs

from .policy_config import CUSTOMER_KEY, STRINGS, Config, Setting, exempted, exemptions
from .registry import CRITICAL, HIGH, LOW, MEDIUM, resource_policy
from .resources import (
    flag,
    get,
    has_key,
    is_list,
    is_map,
    is_world_cidr,
    json_document,
    maps,
    number,
    present,
    strings,
    text,
)
from .tokens import aws_taggable, type_parts

EKS_CLUSTER = "aws:eks/cluster:Cluster"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
INSTANCE = "aws:ec2/instance:Instance"
ECR_REPOSITORY = "aws:ecr/repository:Repository"
CONTROL_PLANE_LOGS = ("api", "audit", "authenticator", "controllerManager", "scheduler")
REQUIRED_TAGS = ("Project", "Environment", "ManagedBy", "Component", "Owner", "CostCenter")


def _first(props: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A nested block that is an object in some schema versions and a one-item list in others."""
    found = maps(props, key)
    return found[0] if found else {}


# ---- EKS -----------------------------------------------------------------------------------


@resource_policy(
    "eks-endpoint-private",
    severity=CRITICAL,
    domain="eks",
    description="The EKS API endpoint must not be reachable from the whole internet.",
    remediation="Set vpcConfig.endpointPublicAccess to false (with endpointPrivateAccess true), "
    "or restrict vpcConfig.publicAccessCidrs to the operators' networks.",
)
def eks_endpoint_private(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    if args.resource_type != EKS_CLUSTER:
        return
    vpc = _first(args.props, "vpcConfig")
    if flag(vpc, "endpointPublicAccess") is False:
        return  # AWS's default is a public endpoint, so only an explicit false is private
    cidrs = strings(vpc, "publicAccessCidrs")
    if not cidrs:
        yield (
            "the public endpoint is on and publicAccessCidrs is not set (AWS opens it to "
            "0.0.0.0/0)."
        )
    for cidr in cidrs:
        if is_world_cidr(cidr):
            yield f"the public endpoint admits {cidr}."


@resource_policy(
    "eks-secrets-encryption",
    severity=HIGH,
    domain="eks",
    description="EKS must envelope-encrypt Kubernetes Secrets with a customer-managed KMS key.",
    remediation="Set encryptionConfig with resources ['secrets'] and provider.keyArn (the "
    "cluster domain key).",
)
def eks_secrets_encryption(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    if args.resource_type != EKS_CLUSTER:
        return
    configs = maps(args.props, "encryptionConfig")
    covering = [c for c in configs if "secrets" in strings(c, "resources")]
    if not covering:
        yield "encryptionConfig does not cover secrets."
    elif not any(present(c, "provider", "keyArn") for c in covering):
        yield "encryptionConfig has no provider.keyArn."


@resource_policy(
    "eks-control-plane-logs",
    severity=MEDIUM,
    domain="eks",
    description="EKS must send all five control-plane log types to CloudWatch.",
    remediation="Set enabledClusterLogTypes to api, audit, authenticator, controllerManager and "
    "scheduler (and create the /aws/eks/<name>/cluster log group with a retention first).",
)
def eks_control_plane_logs(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    if args.resource_type != EKS_CLUSTER:
        return
    enabled = set(strings(args.props, "enabledClusterLogTypes"))
    missing = [t for t in CONTROL_PLANE_LOGS if t not in enabled]
    if missing:
        yield f"enabledClusterLogTypes lacks {', '.join(missing)}."


# ---- nodes ---------------------------------------------------------------------------------


@resource_policy(
    "nodes-imdsv2-no-public-ip",
    severity=HIGH,
    domain="ec2",
    description="Launch templates and instances must require IMDSv2 with a hop limit that keeps "
    "pods away from the node's credentials, and must not get public IP addresses.",
    remediation="Set metadataOptions.httpTokens to 'required' and httpPutResponseHopLimit to 1; "
    "set associatePublicIpAddress to false on every network interface and run nodes in "
    "private subnets.",
    settings=[
        Setting(
            "maximumHopLimit",
            {"type": "integer", "minimum": 1, "maximum": 64},
            1,
            "Largest allowed httpPutResponseHopLimit (1 keeps containers off the node's IMDS).",
        )
    ],
)
def nodes_imdsv2_no_public_ip(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if args.resource_type not in (LAUNCH_TEMPLATE, INSTANCE):
        return
    props = args.props
    metadata = _first(props, "metadataOptions")
    inherits = args.resource_type == INSTANCE and present(props, "launchTemplate") and not metadata
    if text(metadata, "httpEndpoint") != "disabled" and not inherits:
        if text(metadata, "httpTokens") != "required":
            yield "metadataOptions.httpTokens is not 'required': IMDSv1 stays available."
        hops = number(metadata, "httpPutResponseHopLimit")
        maximum = config.number("maximumHopLimit")
        if hops is None or hops > maximum:
            shown = "not set" if hops is None else f"{hops:g}"
            yield f"metadataOptions.httpPutResponseHopLimit is {shown}; maximum {maximum}."
    interfaces = maps(props, "networkInterfaces")
    if any(flag(i, "associatePublicIpAddress") for i in interfaces) or flag(
        props, "associatePublicIpAddress"
    ):
        yield "associatePublicIpAddress is true: instances get a public IP address."


VOLUME = "aws:ebs/volume:Volume"
ROOT_DEVICE_NAMES = ("/dev/xvda", "/dev/sda1")


def _encrypted(device: Mapping[str, Any]) -> bool:
    return flag(device, "encrypted") is True


@resource_policy(
    "nodes-ebs-encrypted",
    severity=HIGH,
    domain="ec2",
    description="Every block device of a launch template, instance or EBS volume must be "
    "encrypted, and a launch template must map the root device itself: one that maps none "
    "leaves the image's own root volume, which may be unencrypted.",
    remediation="Map the root device (/dev/xvda on Amazon Linux and Bottlerocket) in "
    "blockDeviceMappings with ebs.encrypted true (and a KMS key where the account's default "
    "is not wanted); set encrypted on every other mapping and volume.",
    settings=[
        Setting(
            "rootDeviceNames",
            STRINGS,
            list(ROOT_DEVICE_NAMES),
            "Device names that are the root device of the images the stack uses.",
        ),
        exemptions(
            "allowed",
            "resource",
            "Templates, instances or volumes (logical-name patterns) that may be unencrypted.",
        ),
    ],
)
def nodes_ebs_encrypted(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    props = args.props
    if exempted(config, "allowed", "resource", args.name):
        return
    if args.resource_type == VOLUME:
        if not _encrypted(props):
            yield "the volume is not encrypted."
        return
    if args.resource_type == LAUNCH_TEMPLATE:
        mappings = maps(props, "blockDeviceMappings")
        for mapping in mappings:
            ebs = _first(mapping, "ebs")
            if ebs and not _encrypted(ebs):
                yield f"block device {text(mapping, 'deviceName') or '?'} is not encrypted."
        roots = set(config.strings("rootDeviceNames"))
        if not any(text(m, "deviceName") in roots for m in mappings):
            yield (
                "no root device is mapped (one of "
                f"{', '.join(sorted(roots))}): the image's own volume is used."
            )
    elif args.resource_type == INSTANCE:
        root = _first(props, "rootBlockDevice")
        if not present(props, "launchTemplate") and not _encrypted(root):
            yield "rootBlockDevice.encrypted is not true."
        for device in maps(props, "ebsBlockDevices"):
            if not _encrypted(device):
                yield f"block device {text(device, 'deviceName') or '?'} is not encrypted."


# ---- ECR -----------------------------------------------------------------------------------


@resource_policy(
    "ecr-immutable-tags",
    severity=HIGH,
    domain="ecr",
    description="ECR repositories must have immutable tags, so a tag always names one image.",
    remediation="Set imageTagMutability to IMMUTABLE and publish every build under a new tag.",
)
def ecr_immutable_tags(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    if args.resource_type != ECR_REPOSITORY:
        return
    mutability = text(args.props, "imageTagMutability") or "MUTABLE"
    if not mutability.startswith("IMMUTABLE"):
        yield f"imageTagMutability is {mutability}."


@resource_policy(
    "ecr-scan-on-push",
    severity=HIGH,
    domain="ecr",
    description="ECR repositories must scan every image for vulnerabilities when it is pushed.",
    remediation="Set imageScanningConfiguration.scanOnPush to true.",
)
def ecr_scan_on_push(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    if args.resource_type != ECR_REPOSITORY:
        return
    if flag(args.props, "imageScanningConfiguration", "scanOnPush") is not True:
        yield "imageScanningConfiguration.scanOnPush is not true."


@resource_policy(
    "ecr-kms",
    severity=LOW,
    domain="ecr",
    description="ECR repositories should be encrypted with a customer-managed KMS key.",
    remediation="Set encryptionConfigurations to [{encryptionType: KMS, kmsKey: <images key>}] "
    "(this replaces the repository: set it when creating it).",
    settings=[CUSTOMER_KEY],
)
def ecr_kms(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if args.resource_type != ECR_REPOSITORY:
        return
    encryption = maps(args.props, "encryptionConfigurations")
    kinds = [text(e, "encryptionType") or "AES256" for e in encryption] or ["AES256"]
    if not all(kind.startswith("KMS") for kind in kinds):
        yield f"encryptionType is {kinds[0]}, not KMS."
    elif config.flag("requireCustomerManagedKey") and not all(
        present(e, "kmsKey") for e in encryption
    ):
        yield "kmsKey is not set: images are encrypted with the AWS-managed key."


# ---- tags ----------------------------------------------------------------------------------


def provider_default_tags(args: ResourceValidationArgs) -> dict[str, str]:
    """The ``defaultTags`` of the resource's AWS provider. The engine sends the provider's
    properties with the request; provider inputs may travel as JSON-encoded strings."""
    provider = args.provider
    if provider is None or not provider.resource_type.startswith("pulumi:providers:aws"):
        return {}
    default_tags = json_document(get(provider.props, "defaultTags"))
    tags = json_document(get(default_tags, "tags"))
    if not is_map(tags):
        return {}
    return {str(k): str(v) for k, v in tags.items() if v is not None}


def resource_tags(props: Mapping[str, Any]) -> dict[str, str]:
    """The resource's own tags: a map, or a list of ``{key, value}`` (Auto Scaling groups)."""
    tags = get(props, "tags")
    if is_map(tags):
        return {str(k): str(v) for k, v in tags.items() if v is not None}
    if is_list(tags):
        return {text(t, "key"): text(t, "value") for t in maps(props, "tags") if text(t, "key")}
    return {}


def is_taggable(args: ResourceValidationArgs) -> bool:
    """AWS resources whose schema has ``tags`` (from the pulumi-aws SDK when installed; else
    whether the resource was given tags at all)."""
    if type_parts(args.resource_type)[0] != "aws":
        return False
    known = aws_taggable(args.resource_type)
    if known is not None:
        return known
    return has_key(args.props, "tags")


@resource_policy(
    "required-tags",
    severity=LOW,
    domain="tags",
    description="Every taggable AWS resource must carry the required tags, from its own tags or "
    "its provider's defaultTags.",
    remediation="Put the stack-wide tags on the explicit AWS provider's defaultTags (Naming."
    "default_tags) and the per-resource ones (Component, Name) through Naming.tags.",
    settings=[
        Setting(
            "requiredTags",
            STRINGS,
            list(REQUIRED_TAGS),
            "Tag keys every taggable resource must carry, with a non-empty value.",
        )
    ],
)
def required_tags(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if not is_taggable(args):
        return
    effective = {**provider_default_tags(args), **resource_tags(args.props)}
    missing = [key for key in config.strings("requiredTags") if not effective.get(key)]
    if missing:
        yield f"missing tags: {', '.join(missing)}."
