"""The captured AWS resources of an offline preview as a Terraform plan (JSON), so that Checkov's
``terraform_plan`` framework (hundreds of AWS checks) can judge a Pulumi program.

    python -m tools.preview <stack> --checkov   # writes build/<stack>/tfplan.json, runs Checkov

pulumi-aws is a bridge of the Terraform AWS provider: each Pulumi type is one Terraform type
(``TERRAFORM_TYPES``: ``aws:rds/instance:Instance`` is ``aws_db_instance``) and each input is the
Terraform attribute in camelCase. The export writes what ``terraform show -json`` writes for a
plan that creates everything:

* attribute names in snake_case (``multiAz`` -> ``multi_az``), with the bridge's plurals of
  repeated blocks turned back into Terraform's singular names (``RENAMES``: a parameter group's
  ``parameters`` is Terraform's ``parameter`` block);
* nested objects (an ``*Args`` type in the provider schema) as one-element lists, the way
  Terraform writes a block; maps (``tags``) stay objects;
* a property computed from another resource (its property dependencies) as a reference in the
  plan's ``configuration`` (``aws_s3_bucket.storage_media.id``), and left unknown in the planned
  values when it is that resource's id, ARN or name: Checkov's connection checks (a bucket and
  its public access block, a VPC and its flow log) follow references, not equal strings;
* secrets as ``[secret]`` (marked sensitive), unknowns as unknown (``after_unknown``).

An AWS type missing from ``TERRAFORM_TYPES`` is an error (``UnmappedTypeError``), not a silent
gap: a new type must be mapped before Checkov can judge it. So is a repeated block with a plural
name that is neither in ``RENAMES`` nor known to be plural in Terraform too
(``PLURAL_IN_TERRAFORM``; ``UnmappedBlockError``): Checkov would not find it under the plural.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tools.engine.schema import SchemaCache, Spec
from tools.mocks import MASK, UNKNOWN, CapturedResource
from tools.plan import Plan

TERRAFORM_TYPES: Final[Mapping[str, str]] = {
    "aws:acm/certificate:Certificate": "aws_acm_certificate",
    "aws:acm/certificateValidation:CertificateValidation": "aws_acm_certificate_validation",
    "aws:cloudwatch/logGroup:LogGroup": "aws_cloudwatch_log_group",
    "aws:cloudwatch/metricAlarm:MetricAlarm": "aws_cloudwatch_metric_alarm",
    "aws:ebs/volume:Volume": "aws_ebs_volume",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "aws_default_security_group",
    "aws:ec2/eip:Eip": "aws_eip",
    "aws:ec2/flowLog:FlowLog": "aws_flow_log",
    "aws:ec2/instance:Instance": "aws_instance",
    "aws:ec2/internetGateway:InternetGateway": "aws_internet_gateway",
    "aws:ec2/launchTemplate:LaunchTemplate": "aws_launch_template",
    "aws:ec2/natGateway:NatGateway": "aws_nat_gateway",
    "aws:ec2/route:Route": "aws_route",
    "aws:ec2/routeTable:RouteTable": "aws_route_table",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "aws_route_table_association",
    "aws:ec2/securityGroup:SecurityGroup": "aws_security_group",
    "aws:ec2/securityGroupRule:SecurityGroupRule": "aws_security_group_rule",
    "aws:ec2/subnet:Subnet": "aws_subnet",
    "aws:ec2/vpc:Vpc": "aws_vpc",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "aws_vpc_endpoint",
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": "aws_ecr_lifecycle_policy",
    "aws:ecr/repository:Repository": "aws_ecr_repository",
    "aws:ecr/repositoryPolicy:RepositoryPolicy": "aws_ecr_repository_policy",
    "aws:eks/accessEntry:AccessEntry": "aws_eks_access_entry",
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": "aws_eks_access_policy_association",
    "aws:eks/addon:Addon": "aws_eks_addon",
    "aws:eks/cluster:Cluster": "aws_eks_cluster",
    "aws:eks/nodeGroup:NodeGroup": "aws_eks_node_group",
    "aws:eks/podIdentityAssociation:PodIdentityAssociation": "aws_eks_pod_identity_association",
    "aws:elasticache/replicationGroup:ReplicationGroup": "aws_elasticache_replication_group",
    "aws:elasticache/subnetGroup:SubnetGroup": "aws_elasticache_subnet_group",
    "aws:iam/instanceProfile:InstanceProfile": "aws_iam_instance_profile",
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": "aws_iam_openid_connect_provider",
    "aws:iam/policy:Policy": "aws_iam_policy",
    "aws:iam/role:Role": "aws_iam_role",
    "aws:iam/rolePolicy:RolePolicy": "aws_iam_role_policy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "aws_iam_role_policy_attachment",
    "aws:kms/alias:Alias": "aws_kms_alias",
    "aws:kms/key:Key": "aws_kms_key",
    "aws:rds/instance:Instance": "aws_db_instance",
    "aws:rds/parameterGroup:ParameterGroup": "aws_db_parameter_group",
    "aws:rds/subnetGroup:SubnetGroup": "aws_db_subnet_group",
    "aws:route53/record:Record": "aws_route53_record",
    "aws:s3/bucket:Bucket": "aws_s3_bucket",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": (
        "aws_s3_bucket_lifecycle_configuration"
    ),
    "aws:s3/bucketLogging:BucketLogging": "aws_s3_bucket_logging",
    "aws:s3/bucketNotification:BucketNotification": "aws_s3_bucket_notification",
    "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration": (
        "aws_s3_bucket_object_lock_configuration"
    ),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": "aws_s3_bucket_ownership_controls",
    "aws:s3/bucketPolicy:BucketPolicy": "aws_s3_bucket_policy",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": "aws_s3_bucket_public_access_block",
    "aws:s3/bucketReplicationConfig:BucketReplicationConfig": (
        "aws_s3_bucket_replication_configuration"
    ),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        "aws_s3_bucket_server_side_encryption_configuration"
    ),
    "aws:s3/bucketVersioning:BucketVersioning": "aws_s3_bucket_versioning",
    "aws:secretsmanager/secret:Secret": "aws_secretsmanager_secret",
    "aws:sns/topic:Topic": "aws_sns_topic",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": (
        "aws_vpc_security_group_egress_rule"
    ),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": (
        "aws_vpc_security_group_ingress_rule"
    ),
}
"""Pulumi type token -> Terraform resource type (the bridge's own mapping, per type)."""

RENAMES: Final[Mapping[str, str]] = {
    "rules": "rule",
    "parameters": "parameter",
    "taints": "taint",
    "logDeliveryConfigurations": "log_delivery_configuration",
    "encryptionConfigurations": "encryption_configuration",
    "inlinePolicies": "inline_policy",
    "aliases": "alias",
    "transitions": "transition",
    "noncurrentVersionTransitions": "noncurrent_version_transition",
    "ebsBlockDevices": "ebs_block_device",
}
"""The bridge names repeated blocks in the plural; Terraform names them in the singular (a
``rule`` block per rule). Only names that are repeated blocks in the types above."""

PLURAL_IN_TERRAFORM: Final = frozenset(
    {
        "blockDeviceMappings",
        "networkInterfaces",
        "tagSpecifications",
        "elasticGpuSpecifications",
        "elasticInferenceAccelerators",
        "licenseSpecifications",
    }
)
"""Repeated blocks whose Terraform name is plural too (``block_device_mappings``)."""

PROVIDER = "registry.terraform.io/hashicorp/aws"


class ExportError(ValueError):
    """The plan has something the export cannot write as Terraform would."""


class UnmappedBlockError(ExportError):
    """Repeated blocks named in the plural that ``RENAMES`` does not turn into Terraform's
    (singular) name, nor ``PLURAL_IN_TERRAFORM`` knows to be plural there too."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(
            "no Terraform name for the repeated block(s) "
            + ", ".join(names)
            + " (add each to tools.tfplan.RENAMES, or to PLURAL_IN_TERRAFORM)"
        )
        self.names = list(names)


class UnmappedTypeError(ExportError):
    """AWS resources of types ``TERRAFORM_TYPES`` does not map: Checkov would not see them."""

    def __init__(self, types: Sequence[str]) -> None:
        super().__init__(
            "no Terraform type for "
            + ", ".join(types)
            + " (add each to tools.tfplan.TERRAFORM_TYPES)"
        )
        self.types = list(types)


def terraform_type(pulumi_type: str) -> str | None:
    """The Terraform type of a Pulumi AWS type; the v7 ``…V2`` S3 spellings share their
    Terraform type with the plain ones."""
    found = TERRAFORM_TYPES.get(pulumi_type)
    if found is None and pulumi_type.startswith("aws:s3/") and pulumi_type.endswith("V2"):
        package, module, name = pulumi_type.split(":")
        found = TERRAFORM_TYPES.get(f"{package}:{module.removesuffix('V2')}:{name[:-2]}")
    return found


def snake(name: str) -> str:
    """``httpPutResponseHopLimit`` -> ``http_put_response_hop_limit``; ``cidrIpv4`` ->
    ``cidr_ipv4``; ``RENAMES`` for the bridge's plurals."""
    if name in RENAMES:
        return RENAMES[name]
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def exported(resource: CapturedResource) -> bool:
    """Custom AWS resources (not components, providers or other packages)."""
    return resource.custom and resource.type.startswith("aws:")


def unmapped_types(resources: Sequence[CapturedResource]) -> list[str]:
    return sorted({r.type for r in resources if exported(r) and terraform_type(r.type) is None})


@dataclass(frozen=True)
class _Address:
    type: str
    name: str

    @property
    def address(self) -> str:
        return f"{self.type}.{self.name}"


def _addresses(resources: Sequence[CapturedResource]) -> dict[str, _Address]:
    """A Terraform address per exported resource (URN -> address): the Pulumi name with
    ``-`` as ``_``, numbered when two resources of a type would share one."""
    found: dict[str, _Address] = {}
    taken: set[str] = set()
    for resource in resources:
        tf_type = terraform_type(resource.type)
        if not exported(resource) or tf_type is None:
            continue
        base = re.sub(r"[^A-Za-z0-9_]", "_", resource.name)
        name, index = base, 1
        while f"{tf_type}.{name}" in taken:
            index += 1
            name = f"{base}_{index}"
        taken.add(f"{tf_type}.{name}")
        found[resource.urn] = _Address(tf_type, name)
    return found


class _Converter:
    """Pulumi inputs to Terraform values, typed by the provider schema of the pinned SDK."""

    def __init__(self, schemas: SchemaCache) -> None:
        self.schemas = schemas
        self.unnamed: set[str] = set()
        """Plural repeated blocks with no known Terraform name (``type.property``)."""
        self._type = ""

    def resource(self, resource: CapturedResource) -> tuple[dict[str, Any], dict[str, Any]]:
        """The planned values and their ``after_unknown`` marks."""
        schema = self.schemas.resource(resource.type)
        properties = schema.input_properties if schema else {}
        values: dict[str, Any] = {}
        unknown: dict[str, Any] = {}
        self._type = resource.type
        for key, value in resource.inputs.items():
            self._named(key, value, properties.get(key, {}))
            converted, is_unknown = self.value(value, properties.get(key, {}))
            if is_unknown:
                unknown[snake(key)] = True
            else:
                values[snake(key)] = converted
        return values, unknown

    def value(self, value: Any, spec: Spec) -> tuple[Any, bool]:
        if value == UNKNOWN:
            return None, True
        block = self._block(spec)
        if isinstance(value, dict):
            if block is not None:
                return [self._object(value, block)], False
            return {str(k): self.value(v, _items(spec, "additionalProperties"))[0] for k, v in
                    value.items()}, False  # fmt: skip
        if isinstance(value, list):
            item = _items(spec, "items")
            item_block = self._block(item)
            if item_block is not None:
                return [self._object(v, item_block) for v in value if isinstance(v, dict)], False
            return [self.value(v, item)[0] for v in value], False
        if isinstance(value, float) and value.is_integer():
            return int(value), False
        return value, False

    def _object(self, value: Mapping[str, Any], properties: Mapping[str, Spec]) -> dict[str, Any]:
        for key, item in value.items():
            self._named(key, item, properties.get(key, {}))
        return {snake(k): self.value(v, properties.get(k, {}))[0] for k, v in value.items()}

    def _named(self, key: str, value: Any, spec: Spec) -> None:
        """Record a repeated block whose plural name has no known Terraform name."""
        repeated = isinstance(value, list) and self._block(_items(spec, "items")) is not None
        plural = key.endswith("s") and not key.endswith("ss")  # ingress, egress: singular
        if repeated and plural and key not in RENAMES and key not in PLURAL_IN_TERRAFORM:
            self.unnamed.add(f"{self._type}.{key}")

    def _block(self, spec: Spec) -> Mapping[str, Spec] | None:
        """The properties of a nested object type (a Terraform block), if ``spec`` is one."""
        ref = spec.get("$ref")
        if isinstance(ref, str):
            target = self.schemas.type(ref)
            if "properties" in target:
                properties: Mapping[str, Spec] = target["properties"]
                return properties
        for option in spec.get("oneOf", []):
            found = self._block(option)
            if found is not None:
                return found
        return None


def _items(spec: Spec, key: str) -> Spec:
    found = spec.get(key)
    if isinstance(found, dict):
        return found
    for option in spec.get("oneOf", []):
        if isinstance(option, dict) and isinstance(option.get(key), dict):
            nested: Spec = option[key]
            return nested
    return {}


REFERENCED_ATTRIBUTES: Final = ("id", "arn", "name", "bucket", "keyId", "roleName")
"""Outputs of a resource that another one names it by (in this order)."""


def _reference(
    value: Any, dependency: CapturedResource, address: _Address
) -> tuple[list[str], bool]:
    """The reference expressions to ``dependency`` and whether ``value`` is one of its
    identifying outputs (then the planned value is the reference itself, unknown until apply)."""
    for attribute in REFERENCED_ATTRIBUTES:
        output = dependency.outputs.get(attribute)
        if isinstance(output, str) and output and value == output:
            return [f"{address.address}.{snake(attribute)}", address.address], True
    return [address.address], False


def _expressions(
    resource: CapturedResource,
    values: dict[str, Any],
    unknown: dict[str, Any],
    addresses: Mapping[str, _Address],
    by_urn: Mapping[str, CapturedResource],
) -> dict[str, Any]:
    """The resource's configuration expressions: a reference per property computed from
    another exported resource; an identifying value becomes unknown (known after apply)."""
    expressions: dict[str, Any] = {}
    for key, urns in sorted(resource.property_dependencies.items()):
        attribute = snake(key)
        references: list[str] = []
        identifying = False
        for urn in urns:
            if urn not in addresses:
                continue
            found, whole = _reference(resource.inputs.get(key), by_urn[urn], addresses[urn])
            references += [r for r in found if r not in references]
            identifying = identifying or whole
        if not references:
            continue
        expressions[attribute] = {"references": references}
        if identifying and attribute in values:
            del values[attribute]
            unknown[attribute] = True
    return expressions


def _sensitive(values: Any) -> Any:
    """The ``sensitive_values`` mirror: ``true`` where a value is a masked secret."""
    if values == MASK:
        return True
    if isinstance(values, dict):
        marked = {k: _sensitive(v) for k, v in values.items()}
        return {k: v for k, v in marked.items() if v not in (False, {}, [])}
    if isinstance(values, list):
        items = [_sensitive(v) for v in values]
        return items if any(i not in (False, {}) for i in items) else []
    return False


def export(
    plan: Plan, schemas: SchemaCache | None = None, *, references: bool = True
) -> dict[str, Any]:
    """The Terraform plan (``terraform show -json`` format) of the plan's AWS resources;
    ``references=False`` writes every value as the plain value it is, with no references (what
    a naive export would do: the tests show Checkov's connection checks then see nothing)."""
    missing = unmapped_types(plan.resources)
    if missing:
        raise UnmappedTypeError(missing)
    schemas = schemas or SchemaCache(None)
    converter = _Converter(schemas)
    addresses = _addresses(plan.resources)
    by_urn = {r.urn: r for r in plan.resources}
    planned: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    configured: list[dict[str, Any]] = []
    for resource in plan.resources:
        address = addresses.get(resource.urn)
        if address is None:
            continue
        values, unknown = converter.resource(resource)
        expressions = (
            _expressions(resource, values, unknown, addresses, by_urn) if references else {}
        )
        common = {
            "address": address.address,
            "mode": "managed",
            "type": address.type,
            "name": address.name,
            "provider_name": PROVIDER,
        }
        sensitive = _sensitive(values) or {}
        planned.append(
            {**common, "schema_version": 0, "values": values, "sensitive_values": sensitive}
        )
        changes.append(
            {
                **common,
                "change": {
                    "actions": ["create"],
                    "before": None,
                    "after": values,
                    "after_unknown": unknown,
                    "before_sensitive": False,
                    "after_sensitive": sensitive,
                },
            }
        )
        configured.append(
            {
                "address": address.address,
                "mode": "managed",
                "type": address.type,
                "name": address.name,
                "provider_config_key": "aws",
                "expressions": expressions,
                "schema_version": 0,
            }
        )
    if converter.unnamed:
        raise UnmappedBlockError(sorted(converter.unnamed))
    return {
        "format_version": "1.2",
        "terraform_version": "1.9.8",
        "planned_values": {"root_module": {"resources": planned}},
        "resource_changes": changes,
        "configuration": {
            "provider_config": {"aws": {"name": "aws", "full_name": PROVIDER}},
            "root_module": {"resources": configured},
        },
    }


def pulumi_names(plan: Plan) -> dict[str, str]:
    """Terraform address -> the Pulumi logical name it was exported from."""
    by_urn = {r.urn: r for r in plan.resources}
    return {a.address: by_urn[urn].name for urn, a in _addresses(plan.resources).items()}


def write(plan: Plan, path: Path, schemas: SchemaCache | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(export(plan, schemas), indent=1, sort_keys=True) + "\n")
    return path


def iter_references(document: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(address, referenced address)`` of every reference in an exported plan."""
    for resource in document["configuration"]["root_module"]["resources"]:
        for expression in resource["expressions"].values():
            for reference in expression.get("references", []):
                yield resource["address"], reference
