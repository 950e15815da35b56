"""Pulumi mocks that stand in for the engine and the providers during the offline preview.

``RealisticMocks`` answers each registration with the outputs the real provider would return
(ids in the provider's own format, ARNs in the stack's region and account, endpoints, generated
names), deterministic for the same stack so plans can be compared. ``CapturingMonitor`` records
every registration — type, name, URN, parent, provider, protect, dependencies and inputs — and the
stack's outputs, which is what ``pulumi preview`` would see.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks
from pulumi.runtime.settings import get_project, get_stack
from pulumi.runtime.sync_await import _sync_await

from tools.engine.schema import SchemaCache, typed

SECRET_SIG = rpc._special_sig_key
SECRET_VALUE = rpc._special_secret_sig
MASK = "[secret]"
UNKNOWN = "[unknown]"


def mask(value: Any) -> Any:
    """A JSON-able copy of ``value`` with every secret value replaced by ``[secret]``."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE:
            inner = value.get("value")
            # a secret map (a Kubernetes Secret's data) keeps its keys: only values are hidden
            return {str(k): MASK for k in inner} if isinstance(inner, dict) else MASK
        return {str(k): mask(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # protobuf carries every number as a double
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if type(value).__name__ == "Unknown":
        return UNKNOWN
    return str(value)


def _hex(seed: str, length: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:length]


@dataclass
class _Target:
    region: str = "us-east-1"
    account: str = "000000000000"


@dataclass
class RealisticMocks(Mocks):
    """Per-type realistic outputs, keyed by the stack name for determinism."""

    stack: str
    providers: dict[str, _Target] = field(default_factory=dict)
    """Provider reference (``urn::id``) to the region and account it targets."""
    schemas: SchemaCache | None = None
    """Provider schemas (derived from the pinned SDKs): inputs get the provider's types
    before outputs are computed from them, as a provider would return them."""

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        # Components must not call the cloud while constructing (DESIGN.md): any invoke is a bug.
        raise RuntimeError(f"unexpected provider function call {args.token} during the program")

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        seed = f"{self.stack}/{args.typ}/{args.name}"
        if args.typ.startswith("pulumi:providers:"):
            return f"{_hex(seed, 8)}-{_hex(seed + 'p', 4)}-4{_hex(seed + 'q', 3)}", dict(
                args.inputs
            )
        inputs = self._typed(args.typ, dict(args.inputs))
        if args.typ.startswith("kubernetes:"):
            return _kubernetes_id(inputs), inputs
        target = self.providers.get(args.provider or "", _Target())
        region = inputs.get("region") or target.region
        state = inputs
        new = _New(args.typ, args.name, seed, str(region), target.account, state)
        return _OUTPUTS.get(args.typ, _generic)(new), state

    def _typed(self, typ: str, inputs: dict[str, Any]) -> dict[str, Any]:
        schema = self.schemas.resource(typ) if self.schemas is not None else None
        if schema is None or self.schemas is None:
            return inputs
        return {
            key: typed(value, schema.input_properties.get(key, {"type": "any"}), self.schemas.types)
            for key, value in inputs.items()
        }


_EC2_PREFIXES = {
    "aws:ec2/vpc:Vpc": ("vpc", "vpc"),
    "aws:ec2/subnet:Subnet": ("subnet", "subnet"),
    "aws:ec2/internetGateway:InternetGateway": ("igw", "internet-gateway"),
    "aws:ec2/eip:Eip": ("eipalloc", "elastic-ip"),
    "aws:ec2/natGateway:NatGateway": ("nat", "natgateway"),
    "aws:ec2/routeTable:RouteTable": ("rtb", "route-table"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": ("rtbassoc", None),
    "aws:ec2/route:Route": ("r-rtb", None),
    "aws:ec2/securityGroup:SecurityGroup": ("sg", "security-group"),
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": ("sg", "security-group"),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": ("sgr", "security-group-rule"),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": ("sgr", "security-group-rule"),
    "aws:ec2/vpcEndpoint:VpcEndpoint": ("vpce", "vpc-endpoint"),
    "aws:ec2/flowLog:FlowLog": ("fl", "vpc-flow-log"),
}


@dataclass(frozen=True)
class _New:
    """What a per-type output function knows about the resource being registered."""

    typ: str
    name: str
    seed: str
    region: str
    account: str
    state: dict[str, Any]

    def named(self, key: str = "name") -> str:
        """The physical name given, or one generated the way Pulumi auto-names."""
        value = str(self.state.get(key) or f"{self.name}-{_hex(self.seed, 7)}")
        self.state[key] = value
        return value


def _ec2(new: _New) -> str:
    prefix, arn_kind = _EC2_PREFIXES[new.typ]
    resource_id = f"{prefix}-{_hex(new.seed, 17)}"
    state = new.state
    if arn_kind:
        state["arn"] = f"arn:aws:ec2:{new.region}:{new.account}:{arn_kind}/{resource_id}"
    if new.typ == "aws:ec2/vpc:Vpc":
        state["defaultSecurityGroupId"] = f"sg-{_hex(new.seed + 'sg', 17)}"
        state["mainRouteTableId"] = f"rtb-{_hex(new.seed + 'rt', 17)}"
        state["ownerId"] = new.account
    elif new.typ in ("aws:ec2/eip:Eip", "aws:ec2/natGateway:NatGateway"):
        state["publicIp"] = f"203.0.113.{int(_hex(new.seed, 2), 16) % 254 + 1}"
        state.setdefault("allocationId", resource_id)
    elif new.typ == "aws:ec2/vpcEndpoint:VpcEndpoint":
        short = str(state.get("serviceName", "")).split(".", 3)[-1]
        state["dnsEntries"] = [
            {"dnsName": f"{resource_id}.{short}.{new.region}.vpce.amazonaws.com"}
        ]
    return resource_id


def _log_group(new: _New) -> str:
    group = new.named()
    new.state["arn"] = f"arn:aws:logs:{new.region}:{new.account}:log-group:{group}"
    return group


def _role(new: _New) -> str:
    role = new.named()
    new.state["arn"] = f"arn:aws:iam::{new.account}:role/{role}"
    new.state["uniqueId"] = f"AROA{_hex(new.seed, 17).upper()}"
    return role


def _kms_key(new: _New) -> str:
    seed = new.seed
    key_id = f"{_hex(seed, 8)}-{_hex(seed + '1', 4)}-{_hex(seed + '2', 4)}-{_hex(seed + '3', 12)}"
    new.state["keyId"] = key_id
    new.state["arn"] = f"arn:aws:kms:{new.region}:{new.account}:key/{key_id}"
    return key_id


def _bucket(new: _New) -> str:
    bucket = new.named("bucket")
    new.state["arn"] = f"arn:aws:s3:::{bucket}"
    new.state["bucketRegionalDomainName"] = f"{bucket}.s3.{new.region}.amazonaws.com"
    new.state["region"] = new.region
    return bucket


def _db_instance(new: _New) -> str:
    identifier = new.named("identifier")
    region, account, seed = new.region, new.account, new.seed
    address = f"{identifier}.c{_hex(seed, 12)}.{region}.rds.amazonaws.com"
    new.state.update(
        address=address,
        endpoint=f"{address}:{new.state.get('port', 5432)}",
        arn=f"arn:aws:rds:{region}:{account}:db:{identifier}",
        masterUserSecrets=[
            {
                "secretArn": f"arn:aws:secretsmanager:{region}:{account}:secret:"
                f"rds!db-{_hex(seed, 8)}-{_hex(seed + 's', 6)}",
                "kmsKeyId": new.state.get("masterUserSecretKmsKeyId"),
                "secretStatus": "active",
            }
        ],
    )
    return f"db-{_hex(seed, 26).upper()}"


def _replication_group(new: _New) -> str:
    group = new.named("replicationGroupId")
    suffix = f"{_hex(new.seed, 6)}.{_short_region(new.region)}.cache.amazonaws.com"
    new.state.update(
        arn=f"arn:aws:elasticache:{new.region}:{new.account}:replicationgroup:{group}",
        primaryEndpointAddress=f"master.{group}.{suffix}",
        readerEndpointAddress=f"replica.{group}.{suffix}",
    )
    return group


def _eks_cluster(new: _New) -> str:
    cluster = new.named()
    oidc_id = _hex(new.seed, 32).upper()
    vpc_config = dict(new.state.get("vpcConfig") or {})
    vpc_config.update(
        clusterSecurityGroupId=f"sg-{_hex(new.seed + 'cluster-sg', 17)}",
        vpcId=f"vpc-{_hex(new.seed + 'vpc', 17)}",
    )
    new.state.update(
        arn=f"arn:aws:eks:{new.region}:{new.account}:cluster/{cluster}",
        endpoint=f"https://{oidc_id}.gr7.{new.region}.eks.amazonaws.com",
        certificateAuthority={"data": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="},
        identities=[
            {"oidcs": [{"issuer": f"https://oidc.eks.{new.region}.amazonaws.com/id/{oidc_id}"}]}
        ],
        vpcConfig=vpc_config,
        status="ACTIVE",
    )
    return cluster


def _oidc_provider(new: _New) -> str:
    host = str(new.state.get("url", "")).removeprefix("https://")
    arn = f"arn:aws:iam::{new.account}:oidc-provider/{host}"
    new.state["arn"] = arn
    return arn


def _node_group(new: _New) -> str:
    group = new.named("nodeGroupName")
    new.state["arn"] = (
        f"arn:aws:eks:{new.region}:{new.account}:nodegroup/{new.state.get('clusterName')}/"
        f"{group}/{_hex(new.seed, 8)}"
    )
    new.state["status"] = "ACTIVE"
    return f"{new.state.get('clusterName')}:{group}"


def _launch_template(new: _New) -> str:
    new.state["latestVersion"] = 1
    new.state["defaultVersion"] = 1
    template_id = f"lt-{_hex(new.seed, 17)}"
    new.state["arn"] = f"arn:aws:ec2:{new.region}:{new.account}:launch-template/{template_id}"
    return template_id


def _repository(new: _New) -> str:
    repository = new.named()
    registry = f"{new.account}.dkr.ecr.{new.region}.amazonaws.com"
    new.state.update(
        arn=f"arn:aws:ecr:{new.region}:{new.account}:repository/{repository}",
        repositoryUrl=f"{registry}/{repository}",
        registryId=new.account,
    )
    return repository


def _docker_image(new: _New) -> str:
    image_name = str(new.state.get("imageName", new.name))
    repository = image_name.rsplit(":", 1)[0]
    new.state["repoDigest"] = f"{repository}@sha256:{_hex(new.seed + image_name, 64)}"
    return image_name


def _role_policy(new: _New) -> str:
    return f"{new.state.get('role', new.name)}:{new.state.get('name') or new.name}"


def _generic(new: _New) -> str:
    """Any other AWS type: a generated physical name and a plausible ARN."""
    physical = new.named()
    service = new.typ.split(":")[1].split("/", maxsplit=1)[0]
    kind = new.typ.rsplit(":", maxsplit=1)[-1].lower()
    new.state.setdefault("arn", f"arn:aws:{service}:{new.region}:{new.account}:{kind}/{physical}")
    return physical


def _certificate(new: _New) -> str:
    """An ACM certificate pending DNS validation: one CNAME to create per domain name."""
    seed = new.seed
    cert_id = "-".join(_hex(seed + str(i), n) for i, n in enumerate((8, 4, 4, 4, 12)))
    arn = f"arn:aws:acm:{new.region}:{new.account}:certificate/{cert_id}"
    domains = [str(new.state.get("domainName", ""))]
    domains += [str(d) for d in new.state.get("subjectAlternativeNames") or [] if d not in domains]
    new.state.update(
        arn=arn,
        status="PENDING_VALIDATION",
        domainValidationOptions=[
            {
                "domainName": domain,
                "resourceRecordName": f"_{_hex(seed + domain, 32)}.{domain}.",
                "resourceRecordType": "CNAME",
                "resourceRecordValue": f"_{_hex(seed + domain + 'v', 32)}."
                f"{_hex(seed + domain + 'w', 10)}.acm-validations.aws.",
            }
            for domain in domains
        ],
    )
    return arn


def _certificate_validation(new: _New) -> str:
    """The provider's id of a validation is the time the certificate was issued."""
    return "2025-01-01 00:00:00 +0000 UTC"


def _route53_record(new: _New) -> str:
    name = str(new.state.get("name", new.name))
    new.state["fqdn"] = name.rstrip(".").lower()
    return f"{new.state.get('zoneId')}_{name}_{new.state.get('type')}"


_OUTPUTS: dict[str, Callable[[_New], str]] = {
    **dict.fromkeys(_EC2_PREFIXES, _ec2),
    "aws:cloudwatch/logGroup:LogGroup": _log_group,
    "aws:iam/role:Role": _role,
    "aws:iam/rolePolicy:RolePolicy": _role_policy,
    "aws:kms/key:Key": _kms_key,
    "aws:s3/bucket:Bucket": _bucket,
    "aws:rds/instance:Instance": _db_instance,
    "aws:elasticache/replicationGroup:ReplicationGroup": _replication_group,
    "aws:eks/cluster:Cluster": _eks_cluster,
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": _oidc_provider,
    "aws:eks/nodeGroup:NodeGroup": _node_group,
    "aws:ec2/launchTemplate:LaunchTemplate": _launch_template,
    "aws:ecr/repository:Repository": _repository,
    "docker:index/image:Image": _docker_image,
    "aws:acm/certificate:Certificate": _certificate,
    "aws:acm/certificateValidation:CertificateValidation": _certificate_validation,
    "aws:route53/record:Record": _route53_record,
}
"""Per-type output functions: fill in the outputs the provider would and return the id."""


def _kubernetes_id(inputs: dict[str, Any]) -> str:
    """Kubernetes object ids are ``namespace/name`` (or ``name`` when cluster-scoped)."""
    metadata = inputs.get("metadata") or {}
    name = str(metadata.get("name", ""))
    namespace = metadata.get("namespace")
    return f"{namespace}/{name}" if namespace else name


def _short_region(region: str) -> str:
    """``eu-west-1`` -> ``euw1``, as ElastiCache endpoints spell it."""
    parts = region.split("-")
    return parts[0] + "".join(p[0] for p in parts[1:-1]) + parts[-1]


@dataclass
class CapturedResource:
    """One registration, as ``pulumi preview`` would see it."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str | None
    provider: str | None
    protect: bool
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    inputs: dict[str, Any]
    id: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    """What the mock provider returned (ids, ARNs, endpoints); kept in memory, not in plan.json."""
    options: dict[str, Any] = field(default_factory=dict)
    """Resource options that change what ``pulumi up`` does with a change (deleteBeforeReplace,
    ignoreChanges, replaceOnChanges), as the engine receives them; in memory only."""


class CapturingMonitor(MockMonitor):
    """A mock monitor that also records the resource graph and the stack outputs."""

    def __init__(
        self,
        mocks: RealisticMocks,
        listener: Callable[[CapturedResource], None] | None = None,
    ) -> None:
        super().__init__(mocks)
        self.realistic = mocks
        self.listener = listener
        """Called with each captured resource, in registration order (the policy pack
        analyzes them while the program runs)."""
        self.captured: list[CapturedResource] = []
        self.stack_urn: str | None = None
        self.stack_outputs: dict[str, Any] = {}
        self._lock = threading.Lock()

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """URNs as the engine makes them: the qualified type joins the types of every ancestor
        below the stack with ``$`` (the SDK's mock keeps only the parent's type), so two
        resources share a URN here exactly when the engine would refuse the second."""
        if parent:
            parent_type = parent.split("::")[2]
            if parent_type != "pulumi:pulumi:Stack":
                type_ = f"{parent_type}${type_}"
        return "urn:pulumi:" + "::".join([get_stack(), get_project(), type_, name])

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type == "pulumi:pulumi:Stack":
            self.stack_urn = response.urn
            return response
        inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
        record = CapturedResource(
            urn=response.urn,
            type=request.type,
            name=request.name,
            custom=bool(request.custom),
            parent=request.parent or None,
            provider=request.provider or None,
            protect=bool(request.protect),
            dependencies=sorted(set(request.dependencies)),
            property_dependencies={
                key: sorted(set(deps.urns)) for key, deps in request.propertyDependencies.items()
            },
            inputs=mask(inputs),
            id=response.id or None,
            outputs=mask(rpc.deserialize_properties(response.object, keep_unknowns=True)),
            options={
                "deleteBeforeReplace": bool(request.deleteBeforeReplace),
                "ignoreChanges": list(request.ignoreChanges),
                "replaceOnChanges": list(request.replaceOnChanges),
            },
        )
        with self._lock:
            self.captured.append(record)
            if self.listener is not None:
                self.listener(record)
            if request.type.startswith("pulumi:providers:"):
                accounts = inputs.get("allowedAccountIds") or "[]"
                if isinstance(accounts, str):  # provider inputs travel as JSON strings
                    accounts = json.loads(accounts)
                self.realistic.providers[f"{response.urn}::{response.id}"] = _Target(
                    region=str(inputs.get("region") or "us-east-1"),
                    account=str(accounts[0]) if accounts else "000000000000",
                )
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        if self.stack_urn is not None and request.urn == self.stack_urn:
            outputs = rpc.deserialize_properties(request.outputs, keep_unknowns=True)
            self.stack_outputs = mask(outputs)
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]


__all__ = ["CapturedResource", "CapturingMonitor", "RealisticMocks", "_sync_await", "mask"]
