"""The ``exposcholar-security`` policy pack (``policies/``), its validators called directly.

* A table with one row per policy: a minimal passing fixture and a failing one. Every policy of
  the same kind (resource or stack) runs over each fixture: the passing one is reported by
  none, the failing one by exactly the row's policy. The table's ids must equal the pack's.
* The pack's contract: severity critical/high <=> mandatory, every policy documented, config
  files valid against the policies' schemas and never lowering a level.
* The SDK's behaviour around the rules: unknown values during preview, malformed properties,
  the analyzer servicer's diagnostics, and the pack served as its own process.
* Both real stacks, every captured resource fed to the validators with the stack's config:
  no mandatory violation.

Resource validators get ``ResourceValidationArgs`` built the way the SDK's servicer builds
them (inputs behind the unknown-checking proxy, the resource's provider); stack validators get
``PolicyResource`` objects with parents and property dependencies resolved.
"""

from __future__ import annotations

import copy
import json
import select
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc  # type: ignore[import-untyped]  # no stubs installed; used for one channel
import jsonschema
import pytest
import yaml
from google.protobuf import (  # type: ignore[import-untyped]
    empty_pb2,
    json_format,
    struct_pb2,
)
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import _PolicyAnalyzerServicer
from pulumi_policy.proxy import (
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
    unknown_checking_proxy,
)

from policies.rules import (
    ALL_POLICIES,
    CONFIG_DIR,
    PACK_NAME,
    SPECS,
    effective_enforcement,
    load_config,
    policy_properties,
)
from policies.rules.k8s_containers import parse_image
from policies.rules.kube import containers, pod_specs, selector_matches
from policies.rules.policy_config import Config, PolicyConfigError, Setting
from policies.rules.registry import enforcement_for
from policies.rules.tokens import aws_taggable, is_bucket, s3_kind
from tools.mocks import UNKNOWN, CapturedResource
from tools.plan import Plan
from tools.preview import REPO_ROOT

POLICIES: dict[str, Policy] = {p.name: p for p in ALL_POLICIES}
RESOURCE_POLICIES = [p for p in ALL_POLICIES if isinstance(p, ResourceValidationPolicy)]
STACK_POLICIES = [p for p in ALL_POLICIES if isinstance(p, StackValidationPolicy)]
PACK_DIR = REPO_ROOT / "policies"

# ---- building the SDK's arguments ----------------------------------------------------------

DROP = object()
"""A fixture change that removes the key."""

ACCOUNT = "111122223333"
REGISTRY = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com"
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
DEFAULT_TAGS = {
    "Project": "exposcholar",
    "Environment": "test",
    "ManagedBy": "pulumi",
    "Owner": "platform@exposcholar.org",
    "CostCenter": "EXPO-TEST",
}
TAGS = {"Component": "test", "Name": "exposcholar-test-subject"}
AUTOSCALER = "registry.k8s.io/autoscaling/cluster-autoscaler"

TEST_CONFIG: dict[str, Any] = {
    "rds-multi-az": {"production": True},
    "rds-deletion-protection": {"production": True},
    "redis-ha-backup": {"production": True, "minimumSnapshotDays": 7},
    "s3-encryption": {"sseS3Allowed": [{"pattern": "*-logs-*", "reason": "log target"}]},
    "s3-versioning": {"requiredFor": [{"pattern": "*-data-*", "reason": "data"}]},
    "s3-access-logging": {"exempt": [{"pattern": "*-logs-*", "reason": "log target"}]},
    "sg-no-world-ingress": {
        "allowed": [{"port": 443, "names": ["*-load-balancer-*"], "reason": "ALB listener"}]
    },
    "k8s-image-pinned": {
        "registries": [REGISTRY],
        "thirdPartyImages": [{"image": AUTOSCALER, "reason": "upstream autoscaler"}],
    },
    "k8s-sa-token": {
        "allowed": [{"namespace": "kube-system", "serviceAccount": "ca", "reason": "API client"}]
    },
    "k8s-namespace-pss": {
        "externalNamespaces": [{"namespace": "kube-system", "reason": "EKS-managed"}]
    },
}
"""The configuration the fixtures run under (a production stack)."""


def options(parent: str | None = None) -> PolicyResourceOptions:
    """Resource options as the servicer builds them for a request with none set."""
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent)


def engine_values(value: Any) -> Any:
    """A deep copy of captured values as the engine would send them: the offline preview's
    ``[unknown]`` marker becomes the SDK's unknown sentinel."""
    if isinstance(value, dict):
        return {k: engine_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [engine_values(v) for v in value]
    return UNKNOWN_STRING_VALUE if value == UNKNOWN else value


def aws_provider(tags: Mapping[str, str] = DEFAULT_TAGS) -> PolicyProviderResource:
    """The explicit AWS provider: its inputs travel as JSON strings, like the program's."""
    props = {"region": "eu-west-1", "defaultTags": json.dumps({"tags": dict(tags)})}
    return PolicyProviderResource(
        "pulumi:providers:aws", unknown_checking_proxy(props), "urn:pulumi:test::p::aws", "aws"
    )


def urn_of(resource_type: str, name: str) -> str:
    return f"urn:pulumi:test::exposcholar::{resource_type}::{name}"


@dataclass(frozen=True)
class R:
    """One resource of a fixture: type, properties, and (stack fixtures) the names of the
    fixture's resources each property was computed from."""

    type: str
    props: dict[str, Any]
    name: str = "subject"
    deps: dict[str, list[str]] = field(default_factory=dict)

    def args(self, config: Mapping[str, Any]) -> ResourceValidationArgs:
        return ResourceValidationArgs(
            self.type,
            unknown_checking_proxy(engine_values(self.props)),
            urn_of(self.type, self.name),
            self.name,
            options(),
            aws_provider() if self.type.startswith("aws:") else None,
            dict(config),
        )


def patched(props: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``props`` with dotted paths (list indexes as numbers) set, or removed
    with ``DROP``; missing maps on the way are created."""
    result = copy.deepcopy(dict(props))
    for path, value in changes.items():
        *parents, last = path.split(".")
        target: Any = result
        for step in parents:
            target = target[int(step)] if isinstance(target, list) else target.setdefault(step, {})
        if isinstance(target, list):
            target[int(last)] = value
        elif value is DROP:
            target.pop(last, None)
        else:
            target[last] = value
    return result


def violations(policy: Policy, subject: R | Sequence[R], config: Mapping[str, Any]) -> list[str]:
    """The messages ``policy`` reports for a resource (or, for a stack policy, a stack)."""
    found: list[str] = []

    def report(message: str, urn: str | None = None) -> None:
        found.append(message)

    properties = policy_properties(dict(config), policy.name)
    if isinstance(policy, ResourceValidationPolicy):
        assert isinstance(subject, R)
        assert policy.validate(subject.args(properties), report) is None
    else:
        assert isinstance(policy, StackValidationPolicy)
        resources = [subject] if isinstance(subject, R) else list(subject)
        args = StackValidationArgs(stack_resources(resources), properties)
        assert policy.validate(args, report) is None
    return found


def stack_resources(fixture: Sequence[R]) -> list[PolicyResource]:
    """``PolicyResource`` objects for a stack fixture, property dependencies resolved by name."""
    made = {
        r.name: PolicyResource(
            r.type,
            unknown_checking_proxy(engine_values(r.props)),
            urn_of(r.type, r.name),
            r.name,
            options(),
            aws_provider() if r.type.startswith("aws:") else None,
            None,
            [],
            {},
        )
        for r in fixture
    }
    for r in fixture:
        for prop, names in r.deps.items():
            linked = [made[n] for n in names if n in made]
            made[r.name].property_dependencies[prop] = linked
            made[r.name].dependencies.extend(linked)
    return list(made.values())


def reporting(subject: R | Sequence[R], config: Mapping[str, Any] = TEST_CONFIG) -> set[str]:
    """Which policies of the pack report anything about ``subject`` (a resource: every
    resource policy; a list: every stack policy)."""
    policies = RESOURCE_POLICIES if isinstance(subject, R) else STACK_POLICIES
    return {p.name for p in policies if violations(p, subject, config)}


# ---- AWS fixtures --------------------------------------------------------------------------


def aws(resource_type: str, props: Mapping[str, Any], **changes: Any) -> R:
    """An AWS resource; ``changes`` use ``__`` for the dots of ``patched``'s paths."""
    return R(resource_type, patched(props, {k.replace("__", "."): v for k, v in changes.items()}))


RDS_PROPS: dict[str, Any] = {
    "engine": "postgres",
    "identifier": "exposcholar-test-database-postgres",
    "publiclyAccessible": False,
    "storageEncrypted": True,
    "kmsKeyId": KEY,
    "backupRetentionPeriod": 14,
    "multiAz": True,
    "deletionProtection": True,
    "skipFinalSnapshot": False,
    "finalSnapshotIdentifier": "exposcholar-test-database-final",
    "iamDatabaseAuthenticationEnabled": True,
    "performanceInsightsEnabled": True,
    "performanceInsightsKmsKeyId": KEY,
    "enabledCloudwatchLogsExports": ["postgresql", "upgrade"],
    "autoMinorVersionUpgrade": True,
    "parameterGroupName": "exposcholar-test-database-postgres17",
    "tags": TAGS,
}
PARAMETER_GROUP_PROPS: dict[str, Any] = {
    "family": "postgres17",
    "parameters": [
        {"name": "rds.force_ssl", "value": "1"},
        {"name": "log_lock_waits", "value": "1"},
    ],
    "tags": TAGS,
}
REDIS_PROPS: dict[str, Any] = {
    "engine": "redis",
    "atRestEncryptionEnabled": True,
    "kmsKeyId": KEY,
    "transitEncryptionEnabled": True,
    "transitEncryptionMode": "required",
    "authToken": "[secret]",
    "automaticFailoverEnabled": True,
    "multiAzEnabled": True,
    "numCacheClusters": 2,
    "snapshotRetentionLimit": 7,
    "tags": TAGS,
}
BUCKET_PROPS: dict[str, Any] = {"bucket": "exposcholar-test-data-111", "tags": TAGS}
KMS_PROPS: dict[str, Any] = {
    "enableKeyRotation": True,
    "rotationPeriodInDays": 365,
    "description": "test key",
    "tags": TAGS,
}
SG_PROPS: dict[str, Any] = {
    "name": "exposcholar-test-database",
    "description": "PostgreSQL from the nodes",
    "vpcId": "vpc-0123",
    "tags": TAGS,
}
SG_RULE_PROPS: dict[str, Any] = {
    "securityGroupId": "sg-0123",
    "description": "PostgreSQL from the nodes",
    "ipProtocol": "tcp",
    "fromPort": 5432,
    "toPort": 5432,
    "referencedSecurityGroupId": "sg-4567",
    "tags": TAGS,
}
EKS_PROPS: dict[str, Any] = {
    "name": "exposcholar-test-cluster-eks",
    "vpcConfig": {
        "endpointPrivateAccess": True,
        "endpointPublicAccess": True,
        "publicAccessCidrs": ["203.0.113.0/24"],
        "subnetIds": ["subnet-1", "subnet-2"],
    },
    "encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": KEY}},
    "enabledClusterLogTypes": ["api", "audit", "authenticator", "controllerManager", "scheduler"],
    "tags": TAGS,
}
LAUNCH_TEMPLATE_PROPS: dict[str, Any] = {
    "metadataOptions": {
        "httpEndpoint": "enabled",
        "httpTokens": "required",
        "httpPutResponseHopLimit": 1,
    },
    "networkInterfaces": [{"associatePublicIpAddress": "false", "securityGroups": ["sg-1"]}],
    "blockDeviceMappings": [
        {"deviceName": "/dev/xvda", "ebs": {"encrypted": "true", "volumeType": "gp3"}}
    ],
    "tags": TAGS,
}
ECR_PROPS: dict[str, Any] = {
    "name": "exposcholar-test-images-server",
    "imageTagMutability": "IMMUTABLE",
    "imageScanningConfiguration": {"scanOnPush": True},
    "encryptionConfigurations": [{"encryptionType": "KMS", "kmsKey": KEY}],
    "tags": TAGS,
}
VPC_PROPS: dict[str, Any] = {"cidrBlock": "10.0.0.0/16", "tags": TAGS}

RDS = "aws:rds/instance:Instance"
REDIS = "aws:elasticache/replicationGroup:ReplicationGroup"
SG = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EKS = "aws:eks/cluster:Cluster"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ECR = "aws:ecr/repository:Repository"
KMS = "aws:kms/key:Key"
BUCKET = "aws:s3/bucket:Bucket"
PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
VPC = "aws:ec2/vpc:Vpc"

# ---- Kubernetes fixtures -------------------------------------------------------------------

DIGEST = "sha256:" + "ab" * 32
POD = "spec.template.spec"
CONTAINER = f"{POD}.containers.0"
LABELS = {"app.kubernetes.io/name": "web", "app.kubernetes.io/instance": "web-test"}


def container_spec() -> dict[str, Any]:
    return {
        "name": "web",
        "image": f"{REGISTRY}/exposcholar-test-images-web:1.0.0@{DIGEST}",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "1", "memory": "256Mi"},
        },
        "ports": [{"name": "http", "containerPort": 8080}],
        "livenessProbe": {"httpGet": {"path": "/live", "port": "http"}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
        "envFrom": [{"configMapRef": {"name": "web"}}],
        "volumeMounts": [{"name": "tmp", "mountPath": "/scratch"}],
    }


def pod_spec() -> dict[str, Any]:
    return {
        "serviceAccountName": "web",
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container_spec()],
        "volumes": [
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
            {"name": "config", "configMap": {"name": "web"}},
        ],
    }


def meta(name: str = "web", namespace: str = "app") -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(LABELS)}


def deployment(**changes: Any) -> R:
    """A compliant Deployment; ``changes`` are ``patched`` paths with ``__`` for dots."""
    props = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(),
        "spec": {
            "selector": {"matchLabels": dict(LABELS)},
            "template": {"metadata": {"labels": dict(LABELS)}, "spec": pod_spec()},
        },
    }
    return R(
        "kubernetes:apps/v1:Deployment",
        patched(props, {k.replace("__", "."): v for k, v in changes.items()}),
        name="web",
    )


def on_pod(path: str, value: Any) -> R:
    """The Deployment with one change in its pod spec (``path`` relative to the spec)."""
    return R("kubernetes:apps/v1:Deployment", patched(deployment().props, {f"{POD}.{path}": value}))


def on_container(path: str, value: Any) -> R:
    return on_pod(f"containers.0.{path}", value)


def batch_pod() -> dict[str, Any]:
    spec = pod_spec()
    spec["restartPolicy"] = "Never"
    del spec["containers"][0]["livenessProbe"], spec["containers"][0]["readinessProbe"]
    return spec


def job(**changes: Any) -> R:
    props = {
        "metadata": meta("migrate"),
        "spec": {
            "backoffLimit": 3,
            "activeDeadlineSeconds": 900,
            "template": {"metadata": {"labels": dict(LABELS)}, "spec": batch_pod()},
        },
    }
    return R(
        "kubernetes:batch/v1:Job",
        patched(props, {k.replace("__", "."): v for k, v in changes.items()}),
        name="migrate",
    )


def cronjob(**changes: Any) -> R:
    props = {
        "metadata": meta("backup"),
        "spec": {
            "schedule": "0 3 * * *",
            "startingDeadlineSeconds": 600,
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 2,
                    "activeDeadlineSeconds": 3600,
                    "template": {"metadata": {"labels": dict(LABELS)}, "spec": batch_pod()},
                }
            },
        },
    }
    return R(
        "kubernetes:batch/v1:CronJob",
        patched(props, {k.replace("__", "."): v for k, v in changes.items()}),
        name="backup",
    )


def ingress(**changes: Any) -> R:
    props = {
        "metadata": {
            **meta("web"),
            "annotations": {
                "alb.ingress.kubernetes.io/listen-ports": '[{"HTTP": 80}, {"HTTPS": 443}]',
                "alb.ingress.kubernetes.io/ssl-redirect": "443",
            },
        },
        "spec": {
            "ingressClassName": "alb",
            "tls": [{"hosts": ["test.exposcholar.org"]}],
            "rules": [{"host": "test.exposcholar.org", "http": {"paths": []}}],
        },
    }
    return R(
        "kubernetes:networking.k8s.io/v1:Ingress",
        patched(props, {k.replace("__", "."): v for k, v in changes.items()}),
    )


def service(**changes: Any) -> R:
    props = {
        "metadata": meta("web"),
        "spec": {"type": "ClusterIP", "selector": dict(LABELS), "ports": [{"port": 80}]},
    }
    return R(
        "kubernetes:core/v1:Service",
        patched(props, {k.replace("__", "."): v for k, v in changes.items()}),
    )


# ---- stack fixtures ------------------------------------------------------------------------

TLS_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ],
}


def bucket_set(
    label: str,
    *,
    sse: str = "aws:kms",
    versioned: bool = True,
    logged: bool = True,
    v2: bool = False,
) -> list[R]:
    """A bucket and its configuration resources (v7 spelling, or the ``…V2`` one)."""
    suffix = "V2" if v2 else ""
    name = f"exposcholar-test-{label}-111"

    def part(kind: str, props: dict[str, Any], versioned_kind: bool = True) -> R:
        token = f"aws:s3/{kind}{suffix if versioned_kind else ''}:"
        token += f"{kind[0].upper()}{kind[1:]}{suffix if versioned_kind else ''}"
        return R(token, {"bucket": name, **props}, f"{label}-{kind}", {"bucket": [label]})

    default: dict[str, Any] = {"sseAlgorithm": sse}
    if sse.startswith("aws:kms"):
        default["kmsMasterKeyId"] = KEY
    parts = [
        R(f"aws:s3/bucket{suffix}:Bucket{suffix}", {"bucket": name, "tags": TAGS}, label),
        part(
            "bucketPublicAccessBlock",
            {
                "blockPublicAcls": True,
                "blockPublicPolicy": True,
                "ignorePublicAcls": True,
                "restrictPublicBuckets": True,
            },
            versioned_kind=False,
        ),
        part(
            "bucketServerSideEncryptionConfiguration",
            {"rules": [{"applyServerSideEncryptionByDefault": default, "bucketKeyEnabled": True}]},
        ),
        part("bucketPolicy", {"policy": json.dumps(TLS_POLICY)}, versioned_kind=False),
    ]
    if versioned:
        parts.append(part("bucketVersioning", {"versioningConfiguration": {"status": "Enabled"}}))
    if logged:
        parts.append(
            part(
                "bucketLogging",
                {"targetBucket": "exposcholar-test-logs-111", "targetPrefix": f"{label}/"},
            )
        )
    return parts


def storage(v2: bool = False) -> list[R]:
    return [
        *bucket_set("data", v2=v2),
        *bucket_set("logs", sse="AES256", versioned=False, logged=False, v2=v2),
    ]


def network(inline: bool = False, flow_log: bool = True) -> list[R]:
    group = dict(SG_PROPS)
    if inline:
        group["ingress"] = [
            {
                "protocol": "tcp",
                "fromPort": 22,
                "toPort": 22,
                "cidrBlocks": ["10.0.0.0/16"],
                "description": "ssh",
            }
        ]
    resources = [
        R(VPC, VPC_PROPS, "vpc"),
        R(SG, group, "sg", {"vpcId": ["vpc"]}),
        R(SG_RULE, SG_RULE_PROPS, "sg-rule", {"securityGroupId": ["sg"]}),
    ]
    if flow_log:
        resources.append(
            R(
                "aws:ec2/flowLog:FlowLog",
                {"vpcId": "vpc-0123", "trafficType": "ALL"},
                "flow-log",
                {"vpcId": ["vpc"]},
            )
        )
    return resources


def namespace(level: str = "restricted", name: str = "app") -> R:
    labels = {f"pod-security.kubernetes.io/{m}": level for m in ("enforce", "audit", "warn")}
    return R("kubernetes:core/v1:Namespace", {"metadata": {"name": name, "labels": labels}}, name)


def cluster(pdb: bool = True, netpol: bool = True, level: str = "restricted") -> list[R]:
    resources = [
        namespace(level),
        deployment(),
        R(
            "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
            {
                "metadata": meta(),
                "spec": {
                    "scaleTargetRef": {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "web",
                    },
                    "minReplicas": 2,
                    "maxReplicas": 6,
                },
            },
            "web-hpa",
        ),
    ]
    if pdb:
        resources.append(
            R(
                "kubernetes:policy/v1:PodDisruptionBudget",
                {
                    "metadata": meta(),
                    "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(LABELS)}},
                },
                "web-pdb",
            )
        )
    if netpol:
        resources.append(
            R(
                "kubernetes:networking.k8s.io/v1:NetworkPolicy",
                {
                    "metadata": meta("default-deny"),
                    "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
                },
                "default-deny",
            )
        )
    return resources


def combined(*parts: list[R]) -> list[R]:
    return [r for part in parts for r in part]


COMPLIANT_STACK = combined(storage(), network(), cluster())


def without(resources: list[R], name: str) -> list[R]:
    assert any(r.name == name for r in resources), name
    return [r for r in resources if r.name != name]


def replaced(resources: list[R], name: str, changes: Mapping[str, Any]) -> list[R]:
    return [
        R(r.type, patched(r.props, changes), r.name, r.deps) if r.name == name else r
        for r in resources
    ]


# ---- IAM, RBAC, NetworkPolicy and log-group fixtures ---------------------------------------

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
OIDC = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"


def document(*statements: Mapping[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(actions: Any, resources: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resources, **extra}


def irsa_trust(**conditions: str) -> str:
    """A web-identity trust policy; ``conditions`` maps aud/sub to values (all by default)."""
    pinned = conditions or {"aud": "sts.amazonaws.com", "sub": "system:serviceaccount:app:web"}
    return document(
        {
            "Effect": "Allow",
            "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{OIDC}"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {f"{OIDC}:{k}": v for k, v in pinned.items()}},
        }
    )


ROLE_PROPS: dict[str, Any] = {
    "name": "exposcholar-test-app-web",
    "assumeRolePolicy": irsa_trust(),
    "tags": TAGS,
}
ROLE_POLICY_PROPS: dict[str, Any] = {
    "role": "exposcholar-test-app-web",
    "policy": document(
        allow(["s3:GetObject", "s3:PutObject"], "arn:aws:s3:::exposcholar-test-data-111/*"),
        allow(["ec2:DescribeInstances"]),
    ),
}
ATTACHMENT_PROPS: dict[str, Any] = {
    "role": "exposcholar-test-app-web",
    "policyArn": "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
}
KEY_POLICY_PROPS: dict[str, Any] = {
    **KMS_PROPS,
    "policy": document(
        {
            "Sid": "UseThroughRdsOnly",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["kms:Decrypt"],
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:CallerAccount": ACCOUNT}},
        }
    ),
}
LOG_GROUP_PROPS: dict[str, Any] = {
    "name": "/aws/vpc/exposcholar-test-flow-logs",
    "retentionInDays": 30,
    "kmsKeyId": KEY,
    "tags": TAGS,
}


def iam(managed_on_role: bool = False) -> list[R]:
    """A role with its policies as separate resources (or, ``managed_on_role``, also listed
    exclusively on the role)."""
    role = dict(ROLE_PROPS)
    if managed_on_role:
        role["managedPolicyArns"] = [ATTACHMENT_PROPS["policyArn"]]
    return [
        R(ROLE, role, "role"),
        R(ROLE_POLICY, ROLE_POLICY_PROPS, "role-policy", {"role": ["role"]}),
        R(ATTACHMENT, ATTACHMENT_PROPS, "role-attachment", {"role": ["role"]}),
    ]


RBAC = "kubernetes:rbac.authorization.k8s.io/v1"


def rbac_role(*rules: Mapping[str, Any], cluster: bool = False) -> R:
    kind = "ClusterRole" if cluster else "Role"
    metadata = {"name": "web"} if cluster else meta()
    return R(f"{RBAC}:{kind}", {"metadata": metadata, "rules": list(rules)}, f"web-{kind}")


READ_PODS = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}


def binding(
    role: str = "web", role_kind: str = "Role", subject: Mapping[str, str] | None = None
) -> R:
    found = dict(subject or {"kind": "ServiceAccount", "name": "web", "namespace": "app"})
    cluster_wide = role_kind == "ClusterRole" and role in ("cluster-admin", "web-cluster")
    binding_kind = "ClusterRoleBinding" if cluster_wide else "RoleBinding"
    return R(
        f"{RBAC}:{binding_kind}",
        {
            "metadata": {"name": "web"} if cluster_wide else meta(),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": [found],
        },
        "web-binding",
    )


def rbac(subject: Mapping[str, str] | None = None) -> list[R]:
    """The web workload's ServiceAccount, a Role and its binding (to ``subject``)."""
    account = R(
        "kubernetes:core/v1:ServiceAccount",
        {"metadata": meta(), "automountServiceAccountToken": False},
        "web-account",
    )
    return [account, rbac_role(READ_PODS), binding(subject=subject)]


NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
HTTPS_OUT = {
    "to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
    "ports": [{"protocol": "TCP", "port": 443}],
}
FROM_EDGE = {
    "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "edge"}}}],
    "ports": [{"protocol": "TCP", "port": 8000}],
}


def network_policy(ingress: Any = (FROM_EDGE,), egress: Any = (HTTPS_OUT,)) -> R:
    return R(
        NETPOL,
        {
            "metadata": meta("allow-web"),
            "spec": {
                "podSelector": {"matchLabels": dict(LABELS)},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": list(ingress),
                "egress": list(egress),
            },
        },
        "allow-web",
    )


# ---- the table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    policy: str
    passing: R | list[R]
    failing: R | list[R]


CASES = [
    # RDS and ElastiCache
    Case("rds-no-public-access", aws(RDS, RDS_PROPS), aws(RDS, RDS_PROPS, publiclyAccessible=True)),
    Case("rds-storage-encrypted", aws(RDS, RDS_PROPS), aws(RDS, RDS_PROPS, kmsKeyId=DROP)),
    Case("rds-backup-retention", aws(RDS, RDS_PROPS), aws(RDS, RDS_PROPS, backupRetentionPeriod=3)),
    Case("rds-multi-az", aws(RDS, RDS_PROPS), aws(RDS, RDS_PROPS, multiAz=False)),
    Case(
        "rds-deletion-protection",
        aws(RDS, RDS_PROPS),
        aws(RDS, RDS_PROPS, skipFinalSnapshot=True),
    ),
    Case(
        "rds-hardening",
        aws(RDS, RDS_PROPS),
        aws(RDS, RDS_PROPS, enabledCloudwatchLogsExports=["upgrade"]),
    ),
    Case(
        "rds-tls-in-transit",
        aws(PARAMETER_GROUP, PARAMETER_GROUP_PROPS),
        aws(PARAMETER_GROUP, PARAMETER_GROUP_PROPS, parameters__0__value="0"),
    ),
    Case(
        "redis-at-rest-encryption",
        aws(REDIS, REDIS_PROPS),
        aws(REDIS, REDIS_PROPS, atRestEncryptionEnabled=False),
    ),
    Case(
        "redis-transit-encryption-auth",
        aws(REDIS, REDIS_PROPS),
        aws(REDIS, REDIS_PROPS, authToken=DROP),
    ),
    Case("redis-ha-backup", aws(REDIS, REDIS_PROPS), aws(REDIS, REDIS_PROPS, multiAzEnabled=False)),
    # S3 and KMS
    Case(
        "s3-no-public-acl", aws(BUCKET, BUCKET_PROPS), aws(BUCKET, BUCKET_PROPS, acl="public-read")
    ),
    Case("kms-rotation", aws(KMS, KMS_PROPS), aws(KMS, KMS_PROPS, enableKeyRotation=False)),
    Case(
        "s3-public-access-block",
        COMPLIANT_STACK,
        without(COMPLIANT_STACK, "data-bucketPublicAccessBlock"),
    ),
    Case(
        "s3-encryption",
        COMPLIANT_STACK,
        replaced(
            COMPLIANT_STACK,
            "data-bucketServerSideEncryptionConfiguration",
            {"rules.0.applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}},
        ),
    ),
    Case("s3-versioning", COMPLIANT_STACK, without(COMPLIANT_STACK, "data-bucketVersioning")),
    Case("s3-access-logging", COMPLIANT_STACK, without(COMPLIANT_STACK, "data-bucketLogging")),
    Case(
        "s3-tls-only",
        COMPLIANT_STACK,
        replaced(COMPLIANT_STACK, "data-bucketPolicy", {"policy": json.dumps({"Statement": []})}),
    ),
    # network
    Case(
        "sg-no-world-ingress",
        aws(SG_RULE, SG_RULE_PROPS),
        aws(SG_RULE, SG_RULE_PROPS, referencedSecurityGroupId=DROP, cidrIpv4="0.0.0.0/0"),
    ),
    Case("sg-descriptions", aws(SG, SG_PROPS), aws(SG, SG_PROPS, description="Managed by Pulumi")),
    Case(
        "sg-no-rule-conflicts",
        COMPLIANT_STACK,
        combined(storage(), network(inline=True), cluster()),
    ),
    Case("vpc-flow-logs", COMPLIANT_STACK, without(COMPLIANT_STACK, "flow-log")),
    # compute
    Case(
        "eks-endpoint-private",
        aws(EKS, EKS_PROPS),
        aws(EKS, EKS_PROPS, vpcConfig__publicAccessCidrs=DROP),
    ),
    Case("eks-secrets-encryption", aws(EKS, EKS_PROPS), aws(EKS, EKS_PROPS, encryptionConfig=DROP)),
    Case(
        "eks-control-plane-logs",
        aws(EKS, EKS_PROPS),
        aws(EKS, EKS_PROPS, enabledClusterLogTypes=["api", "audit"]),
    ),
    Case(
        "nodes-imdsv2-no-public-ip",
        aws(LAUNCH_TEMPLATE, LAUNCH_TEMPLATE_PROPS),
        aws(LAUNCH_TEMPLATE, LAUNCH_TEMPLATE_PROPS, metadataOptions__httpPutResponseHopLimit=2),
    ),
    Case(
        "ecr-immutable-tags",
        aws(ECR, ECR_PROPS),
        aws(ECR, ECR_PROPS, imageTagMutability="MUTABLE"),
    ),
    Case(
        "ecr-scan-on-push",
        aws(ECR, ECR_PROPS),
        aws(ECR, ECR_PROPS, imageScanningConfiguration__scanOnPush=False),
    ),
    Case(
        "ecr-kms",
        aws(ECR, ECR_PROPS),
        aws(ECR, ECR_PROPS, encryptionConfigurations=[{"encryptionType": "AES256"}]),
    ),
    Case("required-tags", aws(VPC, VPC_PROPS), aws(VPC, VPC_PROPS, tags={"Name": "no-component"})),
    # Pod Security Standards, baseline
    Case("k8s-pss-privileged", deployment(), on_container("securityContext.privileged", True)),
    Case("k8s-pss-host-namespaces", deployment(), on_pod("hostPID", True)),
    Case(
        "k8s-pss-host-process",
        deployment(),
        on_pod("securityContext.windowsOptions", {"hostProcess": True}),
    ),
    Case(
        "k8s-pss-host-path",
        deployment(),
        on_pod("volumes.1", {"name": "host", "hostPath": {"path": "/var/run"}}),
    ),
    Case("k8s-pss-host-ports", deployment(), on_container("ports.0.hostPort", 8080)),
    Case("k8s-pss-proc-mount", deployment(), on_container("securityContext.procMount", "Unmasked")),
    Case(
        "k8s-pss-sysctls",
        deployment(),
        on_pod("securityContext.sysctls", [{"name": "kernel.msgmax", "value": "65536"}]),
    ),
    Case(
        "k8s-pss-selinux",
        deployment(),
        on_pod("securityContext.seLinuxOptions", {"type": "spc_t"}),
    ),
    Case(
        "k8s-pss-apparmor",
        deployment(),
        on_container("securityContext.appArmorProfile", {"type": "Unconfined"}),
    ),
    Case(
        "k8s-pss-host-probes",
        deployment(),
        on_container("livenessProbe.httpGet.host", "169.254.169.254"),
    ),
    # Pod Security Standards, restricted
    Case(
        "k8s-no-priv-escalation",
        deployment(),
        on_container("securityContext.allowPrivilegeEscalation", True),
    ),
    Case("k8s-non-root", deployment(), on_container("securityContext.runAsUser", 0)),
    Case(
        "k8s-drop-all-caps",
        deployment(),
        on_container("securityContext.capabilities.add", ["SYS_ADMIN"]),
    ),
    Case(
        "k8s-seccomp",
        deployment(),
        on_pod("securityContext.seccompProfile.type", "Unconfined"),
    ),
    Case(
        "k8s-volume-types",
        deployment(),
        on_pod("volumes.1", {"name": "shared", "nfs": {"server": "nfs", "path": "/"}}),
    ),
    # container hygiene
    Case(
        "k8s-readonly-rootfs",
        deployment(),
        on_container("securityContext.readOnlyRootFilesystem", False),
    ),
    Case("k8s-resources", deployment(), on_container("resources.limits", DROP)),
    Case(
        "k8s-probes",
        deployment(),
        on_container("livenessProbe", {"httpGet": {"path": "/ready", "port": "http"}}),
    ),
    Case("k8s-image-pinned", deployment(), on_container("image", "nginx:latest")),
    Case("k8s-sa-token", deployment(), on_pod("automountServiceAccountToken", DROP)),
    Case(
        "k8s-no-secret-env",
        deployment(),
        on_container("envFrom.0", {"secretRef": {"name": "web-secrets"}}),
    ),
    Case("k8s-ingress-tls", ingress(), ingress(spec__tls=DROP)),
    Case("k8s-service-exposure", service(), service(spec__type="NodePort")),
    Case("k8s-cronjob-hygiene", cronjob(), cronjob(spec__concurrencyPolicy=DROP)),
    Case("k8s-job-hygiene", job(), job(spec__backoffLimit=DROP)),
    Case("k8s-no-default-namespace", deployment(), deployment(metadata__namespace="default")),
    Case(
        "k8s-no-helm-release",
        R("kubernetes:helm.sh/v4:Chart", {"chart": "vpa", "version": "4.7.2", "values": {}}),
        R("kubernetes:helm.sh/v3:Release", {"chart": "vpa", "version": "4.7.2", "values": {}}),
    ),
    # Kubernetes, stack
    Case("k8s-replicas-pdb", COMPLIANT_STACK, combined(storage(), network(), cluster(pdb=False))),
    Case(
        "k8s-netpol-coverage",
        COMPLIANT_STACK,
        # a namespace the stack lists but does not create, with no NetworkPolicy of the stack
        # (one the stack creates has its default deny, which selects every pod)
        combined(
            COMPLIANT_STACK,
            [R(deployment().type, deployment(metadata__namespace="kube-system").props, "web-sys")],
        ),
    ),
    Case(
        "k8s-namespace-pss",
        COMPLIANT_STACK,
        combined(storage(), network(), cluster(level="baseline")),
    ),
    # IAM
    Case(
        "iam-no-wildcard-actions",
        aws(ROLE_POLICY, ROLE_POLICY_PROPS),
        aws(ROLE_POLICY, ROLE_POLICY_PROPS, policy=document(allow("s3:*"))),
    ),
    Case(
        "iam-no-passrole-on-all",
        aws(ROLE_POLICY, ROLE_POLICY_PROPS),
        aws(ROLE_POLICY, ROLE_POLICY_PROPS, policy=document(allow(["iam:PassRole"]))),
    ),
    Case(
        "iam-no-admin-policies",
        aws(ATTACHMENT, ATTACHMENT_PROPS),
        aws(ATTACHMENT, ATTACHMENT_PROPS, policyArn="arn:aws:iam::aws:policy/AdministratorAccess"),
    ),
    Case(
        "iam-web-identity-trust-pinned",
        aws(ROLE, ROLE_PROPS),
        aws(ROLE, ROLE_PROPS, assumeRolePolicy=irsa_trust(aud="sts.amazonaws.com")),
    ),
    Case(
        "iam-no-wildcard-principals",
        aws(KMS, KEY_POLICY_PROPS),
        aws(
            KMS,
            KEY_POLICY_PROPS,
            policy=document({"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt"}),
        ),
    ),
    Case(
        "iam-role-no-policy-management-conflicts",
        combined(COMPLIANT_STACK, iam()),
        combined(COMPLIANT_STACK, iam(managed_on_role=True)),
    ),
    # RBAC
    Case(
        "k8s-rbac-no-wildcards",
        rbac_role(READ_PODS),
        rbac_role({**READ_PODS, "resources": ["*"]}),
    ),
    Case(
        "k8s-rbac-no-escalation-verbs",
        rbac_role(READ_PODS),
        rbac_role(
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["bind"]}
        ),
    ),
    Case(
        "k8s-rbac-no-cluster-secrets-read",
        rbac_role(READ_PODS, cluster=True),
        rbac_role({**READ_PODS, "resources": ["pods", "secrets"]}, cluster=True),
    ),
    Case(
        "k8s-rbac-powerful-bindings",
        binding(),
        binding("admin", "ClusterRole"),
    ),
    Case(
        "k8s-rbac-subjects",
        combined(COMPLIANT_STACK, rbac()),
        combined(COMPLIANT_STACK, rbac({"kind": "User", "name": "alice@exposcholar.org"})),
    ),
    # NetworkPolicy
    Case("k8s-netpol-no-admit-all", network_policy(), network_policy(ingress=[{}])),
    Case(
        "k8s-netpol-internet-egress",
        network_policy(),
        network_policy(egress=[{**HTTPS_OUT, "ports": [{"protocol": "TCP", "port": 22}]}]),
    ),
    Case(
        "k8s-netpol-default-deny",
        COMPLIANT_STACK,
        combined(storage(), network(), cluster(netpol=False), [network_policy()]),
    ),
    # nodes' volumes and log groups
    Case(
        "nodes-ebs-encrypted",
        aws(LAUNCH_TEMPLATE, LAUNCH_TEMPLATE_PROPS),
        aws(LAUNCH_TEMPLATE, LAUNCH_TEMPLATE_PROPS, blockDeviceMappings=DROP),
    ),
    Case(
        "logs-kms-encrypted",
        aws(LOG_GROUP, LOG_GROUP_PROPS),
        aws(LOG_GROUP, LOG_GROUP_PROPS, kmsKeyId=DROP),
    ),
]


def test_the_table_covers_every_policy_of_the_pack() -> None:
    ids = [case.policy for case in CASES]
    assert len(ids) == len(set(ids)), "one row per policy"
    assert set(ids) == set(POLICIES)
    print(f"\n{len(ALL_POLICIES)} policies in the {PACK_NAME} pack: ", end="")
    print(f"{len(RESOURCE_POLICIES)} resource, {len(STACK_POLICIES)} stack")
    assert len(ALL_POLICIES) >= 35


@pytest.mark.parametrize("case", CASES, ids=[c.policy for c in CASES])
def test_passing_fixture_passes_every_policy(case: Case) -> None:
    assert reporting(case.passing) == set()


@pytest.mark.parametrize("case", CASES, ids=[c.policy for c in CASES])
def test_failing_fixture_reports_exactly_its_policy(case: Case) -> None:
    assert reporting(case.failing) == {case.policy}
    messages = violations(POLICIES[case.policy], case.failing, TEST_CONFIG)
    assert all(isinstance(m, str) and m for m in messages)


# ---- the pack's contract -------------------------------------------------------------------


def test_critical_and_high_are_mandatory_everything_else_advisory() -> None:
    for policy in ALL_POLICIES:
        blocking = policy.severity in (Severity.CRITICAL, Severity.HIGH)
        assert policy.enforcement_level == (
            EnforcementLevel.MANDATORY if blocking else EnforcementLevel.ADVISORY
        ), policy.name
        assert policy.enforcement_level == enforcement_for(SPECS[policy.name].severity)
    assert {p.severity for p in ALL_POLICIES} == set(Severity)


def test_the_analyzer_announces_levels_and_severities() -> None:
    """What the CLI learns from GetAnalyzerInfo: each policy's level, severity, remediation
    steps and config schema (with the defaults the SDK itself does not apply)."""
    servicer: Any = _PolicyAnalyzerServicer(  # the SDK's private servicer is untyped
        PACK_NAME, "0.1.0", ALL_POLICIES, EnforcementLevel.ADVISORY
    )
    info = servicer.GetAnalyzerInfo(None, None)
    assert {p.name for p in info.policies} == set(POLICIES)
    for announced in info.policies:
        spec = SPECS[announced.name]
        blocking = spec.severity in (Severity.CRITICAL, Severity.HIGH)
        assert announced.enforcementLevel == (
            analyzer_pb2.MANDATORY if blocking else analyzer_pb2.ADVISORY
        ), announced.name
        assert announced.severity != analyzer_pb2.POLICY_SEVERITY_UNSPECIFIED
        assert announced.remediation_steps == spec.remediation
        schema = json_format.MessageToDict(announced.configSchema.properties)
        assert set(schema) == {s.name for s in spec.settings}
        for setting in spec.settings:
            assert schema[setting.name]["default"] == setting.default


def test_every_policy_is_documented() -> None:
    for policy in ALL_POLICIES:
        spec = SPECS[policy.name]
        assert policy.description.endswith(".") and len(policy.description) > 30, policy.name
        assert policy.remediation_steps and len(policy.remediation_steps) > 20, policy.name
        assert policy.tags and spec.domain in policy.tags
        for setting in spec.settings:
            jsonschema.Draft7Validator.check_schema(setting.json_schema())
            jsonschema.validate(setting.default, setting.json_schema())


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_config_file_is_what_the_cli_accepts(stack: str) -> None:
    """Every key is a policy of the pack, every property is declared by it and valid against
    its schema (the CLI validates the same way), and no entry lowers a policy's level."""
    config = load_config(stack)
    assert (CONFIG_DIR / f"{stack}.json").is_file()
    assert set(config) <= set(POLICIES), set(config) - set(POLICIES)
    for name, entry in config.items():
        assert isinstance(entry, dict), name
        spec = SPECS[name]
        properties = policy_properties(config, name)
        declared = {s.name: s.json_schema() for s in spec.settings}
        assert set(properties) <= set(declared), (name, set(properties) - set(declared))
        jsonschema.validate(
            properties, {"type": "object", "properties": declared, "additionalProperties": False}
        )
    for policy in ALL_POLICIES:
        assert effective_enforcement(policy, config) == policy.enforcement_level, policy.name


def test_stack_configs_differ_only_in_numbers_and_accounts() -> None:
    staging, prod = load_config("staging"), load_config("prod")
    assert set(staging) == set(prod)
    assert staging["rds-multi-az"] == {"production": False}
    assert prod["rds-multi-az"] == {"production": True}
    assert prod["rds-deletion-protection"] == {"production": True}
    for config, account in ((staging, "123456789012"), (prod, "210987654321")):
        assert config["k8s-image-pinned"]["registries"] == [
            f"{account}.dkr.ecr.*.amazonaws.com"  # any region: a second-region stack
        ]
        third_party = config["k8s-image-pinned"]["thirdPartyImages"]
        assert AUTOSCALER in [e["image"] for e in third_party]
        assert all(e["reason"] for e in third_party)


def test_engine_resolution_of_levels() -> None:
    """``all`` overrides every policy's own level and a policy's entry overrides ``all``: why
    the stack configs never set ``all`` (it would make critical rules advisory, or every
    advisory rule blocking)."""
    critical, low = POLICIES["rds-no-public-access"], POLICIES["rds-hardening"]
    assert effective_enforcement(critical, {}) == EnforcementLevel.MANDATORY
    assert effective_enforcement(low, {}) == EnforcementLevel.ADVISORY
    assert effective_enforcement(critical, {"all": "advisory"}) == EnforcementLevel.ADVISORY
    assert effective_enforcement(low, {"all": {"enforcementLevel": "mandatory"}}) == (
        EnforcementLevel.MANDATORY
    )
    config = {"all": "advisory", "rds-no-public-access": {"enforcementLevel": "mandatory"}}
    assert effective_enforcement(critical, config) == EnforcementLevel.MANDATORY
    assert policy_properties({"all": "advisory", "x": "disabled"}, "x") == {}
    assert policy_properties({"x": {"enforcementLevel": "advisory", "a": 1}}, "x") == {"a": 1}


def test_config_falls_back_to_declared_defaults() -> None:
    """The SDK sends only what the configuration sets, numbers as doubles."""
    settings = [
        Setting("days", {"type": "integer"}, 7, "d"),
        Setting("on", {"type": "boolean"}, True, "o"),
        Setting("names", {"type": "array", "items": {"type": "string"}}, ["a"], "n"),
    ]
    empty = Config(None, settings)
    assert (empty.number("days"), empty.flag("on"), empty.strings("names")) == (7, True, ["a"])
    given = Config({"days": 14.0, "on": False, "names": []}, settings)
    assert (given.number("days"), given.flag("on"), given.strings("names")) == (14, False, [])
    with pytest.raises(PolicyConfigError, match="days"):
        Config({"days": "seven"}, settings).number("days")
    with pytest.raises(KeyError):
        empty.value("undeclared")


# ---- helpers the rules share ---------------------------------------------------------------


def test_s3_types_match_both_v7_spellings() -> None:
    assert is_bucket("aws:s3/bucket:Bucket") and is_bucket("aws:s3/bucketV2:BucketV2")
    assert not is_bucket("aws:s3/bucketPolicy:BucketPolicy")
    assert s3_kind("aws:s3/bucketVersioningV2:BucketVersioningV2") == "bucketVersioning"
    assert s3_kind("aws:s3/bucketVersioning:BucketVersioning") == "bucketVersioning"
    assert s3_kind("aws:ec2/vpc:Vpc") is None
    v2 = combined(storage(v2=True), network(), cluster())
    assert reporting(v2) == set()
    assert reporting(without(v2, "data-bucketVersioning")) == {"s3-versioning"}
    assert reporting(without(v2, "data-bucketPublicAccessBlock")) == {"s3-public-access-block"}


def test_bucket_settings_found_by_name_without_property_dependencies() -> None:
    """Older state may not record property dependencies: configuration resources are then
    matched on the bucket name they name."""
    unlinked = [R(r.type, r.props, r.name) for r in storage()]
    assert reporting(unlinked) == set()


def test_pod_specs_of_every_workload_kind() -> None:
    spec = pod_spec()
    template = {"metadata": {"labels": LABELS}, "spec": spec}
    shapes = {
        "kubernetes:core/v1:Pod": {"metadata": meta(), "spec": spec},
        "kubernetes:core/v1:PodTemplate": {"template": template},
        "kubernetes:apps/v1:Deployment": {"spec": {"template": template}},
        "kubernetes:apps/v1:StatefulSet": {"spec": {"template": template}},
        "kubernetes:apps/v1:DaemonSet": {"spec": {"template": template}},
        "kubernetes:apps/v1:ReplicaSet": {"spec": {"template": template}},
        "kubernetes:batch/v1:Job": {"spec": {"template": template}},
        "kubernetes:batch/v1:CronJob": {"spec": {"jobTemplate": {"spec": {"template": template}}}},
    }
    for resource_type, props in shapes.items():
        assert pod_specs(resource_type, props) == [spec], resource_type
    assert (
        pod_specs("kubernetes:apps/v1:DeploymentPatch", shapes["kubernetes:apps/v1:Deployment"])
        == []
    )
    assert pod_specs("kubernetes:example.com/v1:Deployment", {"spec": {"template": template}}) == []
    assert pod_specs("kubernetes:apps/v1:Deployment", {"spec": {}}) == []
    spec["initContainers"] = [{"name": "init"}]
    spec["ephemeralContainers"] = [{"name": "debug"}]
    assert [c.label for c in containers(spec)] == [
        'container "web"',
        'init container "init"',
        'ephemeral container "debug"',
    ]


def test_pod_rules_cover_init_containers_and_every_kind() -> None:
    """A rule written once holds for a CronJob's init container as for a Deployment's."""
    escalating = {**container_spec(), "name": "init"}
    escalating["securityContext"] = {**escalating["securityContext"], "privileged": True}
    found = reporting(cronjob(spec__jobTemplate__spec__template__spec__initContainers=[escalating]))
    assert found == {"k8s-pss-privileged"}
    bare = R(
        "kubernetes:core/v1:Pod", {"metadata": meta(), "spec": {**pod_spec(), "hostIPC": True}}
    )
    assert reporting(bare) == {"k8s-pss-host-namespaces"}


def test_label_selectors() -> None:
    labels = {"app": "web", "tier": "front"}
    assert selector_matches({}, labels)
    assert not selector_matches(None, labels)
    assert selector_matches({"matchLabels": {"app": "web"}}, labels)
    assert not selector_matches({"matchLabels": {"app": "api"}}, labels)
    expressions = [
        ({"key": "tier", "operator": "In", "values": ["front"]}, True),
        ({"key": "tier", "operator": "NotIn", "values": ["front"]}, False),
        ({"key": "app", "operator": "Exists"}, True),
        ({"key": "zone", "operator": "DoesNotExist"}, True),
        ({"key": "app", "operator": "Unknown"}, False),
    ]
    for expression, expected in expressions:
        assert selector_matches({"matchExpressions": [expression]}, labels) is expected


def test_image_references() -> None:
    ecr = parse_image(f"{REGISTRY}/server:1.0.0@{DIGEST}")
    assert (ecr.registry, ecr.repository, ecr.tag, ecr.digest) == (
        REGISTRY,
        "server",
        "1.0.0",
        DIGEST,
    )
    hub = parse_image("nginx")
    assert (hub.registry, hub.repository, hub.tag) == ("docker.io", "library/nginx", "")
    port = parse_image("localhost:5000/team/app:2")
    assert (port.registry, port.repository, port.tag) == ("localhost:5000", "team/app", "2")
    image = "spec.template.spec.containers.0.image"
    for reference, ok in (
        (f"{REGISTRY}/web:1.0.0", True),
        (f"{REGISTRY}/web@{DIGEST}", True),
        (f"{REGISTRY}/web", False),
        (f"{REGISTRY}/web:latest", False),
        (f"{REGISTRY}/web@sha256:short", False),
        (f"{AUTOSCALER}:v1.33.1", True),
        ("registry.k8s.io/pause:3.10", False),
        ("999999999999.dkr.ecr.eu-west-1.amazonaws.com/web:1", False),
    ):
        found = reporting(deployment(**{image.replace(".", "__"): reference}))
        assert found == (set() if ok else {"k8s-image-pinned"}), reference


def test_required_tags_merge_the_providers_default_tags() -> None:
    policy = POLICIES["required-tags"]
    assert isinstance(policy, ResourceValidationPolicy)
    assert violations(policy, aws(VPC, VPC_PROPS), TEST_CONFIG) == []

    def check(provider: PolicyProviderResource | None) -> list[str]:
        messages: list[str] = []
        args = ResourceValidationArgs(
            VPC,
            unknown_checking_proxy(copy.deepcopy(VPC_PROPS)),
            urn_of(VPC, "vpc"),
            "vpc",
            options(),
            provider,
            {},
        )

        def report(message: str, urn: str | None = None) -> None:
            messages.append(message)

        policy.validate(args, report)
        return messages

    assert check(None) == ["missing tags: Project, Environment, ManagedBy, Owner, CostCenter."]
    assert check(aws_provider()) == []  # defaultTags as a JSON string (the program's)
    structured = PolicyProviderResource(
        "pulumi:providers:aws",
        unknown_checking_proxy({"defaultTags": {"tags": DEFAULT_TAGS}}),
        "urn:pulumi:test::exposcholar::pulumi:providers:aws::aws",
        "aws",
    )
    assert check(structured) == []  # defaultTags as an object
    assert aws_taggable("aws:s3/bucket:Bucket") is True
    assert aws_taggable("aws:s3/bucketPolicy:BucketPolicy") is False
    assert aws_taggable("aws:example/thing:Thing") is None
    untaggable = R("aws:s3/bucketPolicy:BucketPolicy", {"bucket": "b", "policy": "{}"})
    assert violations(policy, untaggable, TEST_CONFIG) == []


def test_allowlists_come_from_configuration() -> None:
    world_https = aws(
        SG_RULE,
        SG_RULE_PROPS,
        referencedSecurityGroupId=DROP,
        cidrIpv4="0.0.0.0/0",
        fromPort=443,
        toPort=443,
        tags={**TAGS, "Name": "exposcholar-test-load-balancer-alb"},
    )
    assert reporting(world_https) == set()
    assert reporting(world_https, {}) == {"sg-no-world-ingress"}
    autoscaler = on_pod("automountServiceAccountToken", True)
    autoscaler = R(
        autoscaler.type,
        patched(
            autoscaler.props,
            {
                "metadata.namespace": "kube-system",
                f"{POD}.serviceAccountName": "ca",
                f"{CONTAINER}.image": f"{AUTOSCALER}:v1.33.1",
            },
        ),
    )
    assert reporting(autoscaler) == set()
    assert reporting(autoscaler, {}) == {"k8s-sa-token", "k8s-image-pinned"}


def test_prod_only_rules_follow_the_production_flag() -> None:
    single = aws(RDS, RDS_PROPS, multiAz=False, deletionProtection=False)
    staging = {**TEST_CONFIG, "rds-multi-az": {}, "rds-deletion-protection": {}}
    assert reporting(single, staging) == set()
    assert reporting(single) == {"rds-multi-az", "rds-deletion-protection"}


ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
WORLD_SSH = {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}
MORE_VIOLATIONS: list[tuple[str, R]] = [
    ("rds-tls-in-transit", aws(RDS, RDS_PROPS, parameterGroupName="default.postgres17")),
    ("rds-tls-in-transit", aws(RDS, RDS_PROPS, parameterGroupName=DROP)),
    ("redis-transit-encryption-auth", aws(REDIS, REDIS_PROPS, transitEncryptionMode="preferred")),
    ("eks-endpoint-private", aws(EKS, EKS_PROPS, vpcConfig__publicAccessCidrs=["::/0"])),
    (
        "nodes-imdsv2-no-public-ip",
        aws(
            LAUNCH_TEMPLATE,
            LAUNCH_TEMPLATE_PROPS,
            networkInterfaces__0__associatePublicIpAddress="true",
        ),
    ),
    (
        "s3-no-public-acl",
        aws(BUCKET, BUCKET_PROPS, grants=[{"type": "Group", "uri": ALL_USERS}]),
    ),
    (
        "sg-no-world-ingress",
        aws(SG, SG_PROPS, ingress=[{**WORLD_SSH, "protocol": "-1", "description": "all"}]),
    ),
    (
        "sg-no-world-ingress",
        R(
            "aws:ec2/securityGroupRule:SecurityGroupRule",
            {**WORLD_SSH, "type": "ingress", "description": "ssh", "securityGroupId": "sg-1"},
        ),
    ),
    ("k8s-non-root", on_container("securityContext.runAsNonRoot", False)),
    ("k8s-no-secret-env", on_container("env", [{"name": "API_TOKEN", "value": "abc"}])),
    (
        "k8s-no-secret-env",
        on_container("env", [{"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db"}}}]),
    ),
    (
        "k8s-ingress-tls",
        ingress(metadata__annotations={"nginx.ingress.kubernetes.io/server-snippet": "x"}),
    ),
    (
        "k8s-ingress-tls",  # HTTP without the redirect to HTTPS
        ingress(metadata__annotations={"alb.ingress.kubernetes.io/listen-ports": '[{"HTTP":80}]'}),
    ),
    ("k8s-ingress-tls", ingress(spec__rules__0__host="other.exposcholar.org")),
    ("k8s-service-exposure", service(spec__type="LoadBalancer")),
    ("k8s-service-exposure", service(spec__externalIPs=["203.0.113.10"])),
    ("k8s-sa-token", R("kubernetes:core/v1:ServiceAccount", {"metadata": meta()})),
    ("k8s-cronjob-hygiene", cronjob(spec__failedJobsHistoryLimit=50)),
    ("k8s-job-hygiene", cronjob(spec__jobTemplate__spec__activeDeadlineSeconds=DROP)),
    ("k8s-volume-types", on_pod("volumes.1", {"name": "repo", "gitRepo": {"repository": "x"}})),
    (
        "k8s-pss-apparmor",
        deployment(
            spec__template__metadata__annotations={
                "container.apparmor.security.beta.kubernetes.io/web": "unconfined"
            }
        ),
    ),
    # IAM, RBAC, NetworkPolicy, volumes: the branches past each table row
    ("iam-no-wildcard-actions", aws(ROLE_POLICY, ROLE_POLICY_PROPS, policy=document(allow("*")))),
    (
        "iam-no-wildcard-actions",
        aws(
            ROLE_POLICY,
            ROLE_POLICY_PROPS,
            policy=document({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}),
        ),
    ),
    (
        "iam-no-wildcard-actions",
        aws(ROLE, ROLE_PROPS, inlinePolicies=[{"name": "p", "policy": document(allow("ec2:*"))}]),
    ),
    (
        "iam-no-passrole-on-all",
        aws(ROLE_POLICY, ROLE_POLICY_PROPS, policy=document(allow("iam:Pass*"))),
    ),
    (
        "iam-no-admin-policies",
        aws(ROLE, ROLE_PROPS, managedPolicyArns=["arn:aws:iam::aws:policy/PowerUserAccess"]),
    ),
    ("iam-web-identity-trust-pinned", aws(ROLE, ROLE_PROPS, assumeRolePolicy=irsa_trust(sub="*"))),
    (
        "iam-no-wildcard-principals",
        aws(
            ROLE,
            ROLE_PROPS,
            assumeRolePolicy=document(
                {"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": "sts:AssumeRole"}
            ),
        ),
    ),
    (
        "iam-no-wildcard-principals",
        aws(
            "aws:s3/bucketPolicy:BucketPolicy",
            {"bucket": "b"},
            policy=document(
                {"Effect": "Allow", "NotPrincipal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}
            ),
        ),
    ),
    ("k8s-rbac-no-wildcards", rbac_role({**READ_PODS, "verbs": ["*"]}, cluster=True)),
    ("k8s-rbac-no-escalation-verbs", rbac_role({**READ_PODS, "verbs": ["impersonate"]})),
    ("k8s-rbac-powerful-bindings", binding("cluster-admin", "ClusterRole")),
    ("k8s-netpol-no-admit-all", network_policy(egress=[{"ports": [{"port": 53}]}])),
    (
        "k8s-netpol-no-admit-all",
        network_policy(egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]),
    ),
    (
        "k8s-netpol-internet-egress",
        network_policy(egress=[{"to": [{"ipBlock": {"cidr": "52.94.0.0/16"}}]}]),
    ),
    (
        "nodes-ebs-encrypted",
        aws(LAUNCH_TEMPLATE, LAUNCH_TEMPLATE_PROPS, blockDeviceMappings__0__ebs__encrypted="false"),
    ),
    (
        "nodes-ebs-encrypted",
        aws(
            LAUNCH_TEMPLATE,
            LAUNCH_TEMPLATE_PROPS,
            blockDeviceMappings__0__deviceName="/dev/xvdb",
        ),
    ),
    ("nodes-ebs-encrypted", aws("aws:ebs/volume:Volume", {"size": 10, "tags": TAGS})),
]
"""Branches the table's single failing fixture per policy does not reach."""


@pytest.mark.parametrize(
    ("policy", "subject"), MORE_VIOLATIONS, ids=[p for p, _ in MORE_VIOLATIONS]
)
def test_more_violations_of_the_same_rules(policy: str, subject: R) -> None:
    assert reporting(subject) == {policy}


def test_windows_pods_skip_the_linux_only_controls() -> None:
    windows = patched(
        on_pod("os", {"name": "windows"}).props,
        {
            f"{CONTAINER}.securityContext.allowPrivilegeEscalation": DROP,
            f"{CONTAINER}.securityContext.capabilities": DROP,
            f"{CONTAINER}.securityContext.seccompProfile": DROP,
            f"{POD}.securityContext.seccompProfile": DROP,
        },
    )
    assert reporting(R("kubernetes:apps/v1:Deployment", windows)) == set()


def test_pdb_must_allow_a_disruption() -> None:
    blocking = replaced(
        COMPLIANT_STACK, "web-pdb", {"spec.maxUnavailable": DROP, "spec.minAvailable": 2}
    )
    assert reporting(blocking) == {"k8s-replicas-pdb"}
    allowing = replaced(
        COMPLIANT_STACK, "web-pdb", {"spec.maxUnavailable": DROP, "spec.minAvailable": 1}
    )
    assert reporting(allowing) == set()
    single = replaced(without(COMPLIANT_STACK, "web-pdb"), "web-hpa", {"spec.maxReplicas": 1})
    assert reporting(single) == set()
    replicas = replaced(
        without(without(COMPLIANT_STACK, "web-hpa"), "web-pdb"), "web", {"spec.replicas": 3}
    )
    assert reporting(replicas) == {"k8s-replicas-pdb"}
    elsewhere = replaced(COMPLIANT_STACK, "web-pdb", {"metadata.namespace": "other"})
    assert reporting(elsewhere) == {"k8s-replicas-pdb"}


def test_workloads_outside_the_stacks_namespaces() -> None:
    system = replaced(COMPLIANT_STACK, "web", {"metadata.namespace": "kube-system"})
    netpol = R(
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
        {
            "metadata": meta("allow-web", "kube-system"),
            "spec": {"podSelector": {"matchLabels": LABELS}},
        },
        "allow-web",
    )
    found = reporting([*system, netpol], {**TEST_CONFIG, "k8s-namespace-pss": {}})
    assert found == {"k8s-namespace-pss"}
    assert "k8s-namespace-pss" not in reporting([*system, netpol])
    exempt = {"exempt": [{"namespace": "app", "level": "baseline", "reason": "node agent"}]}
    relaxed = combined(storage(), network(), cluster(level="baseline"))
    assert reporting(relaxed, {**TEST_CONFIG, "k8s-namespace-pss": exempt}) == set()


# ---- the SDK around the rules --------------------------------------------------------------


def test_unknown_values_during_preview() -> None:
    """An unknown that only has to be present passes; one that decides the outcome raises the
    SDK's UnknownValueError, which the servicer reports as "can't run during preview"."""
    encrypted = POLICIES["rds-storage-encrypted"]
    assert violations(encrypted, aws(RDS, RDS_PROPS, kmsKeyId=UNKNOWN), TEST_CONFIG) == []
    public = POLICIES["rds-no-public-access"]
    with pytest.raises(UnknownValueError):
        violations(public, aws(RDS, RDS_PROPS, publiclyAccessible=UNKNOWN_BOOLEAN_VALUE), {})
    policy_names = ("rds-no-public-access", "rds-storage-encrypted")
    servicer: Any = _PolicyAnalyzerServicer(
        PACK_NAME, "0.1.0", [POLICIES[n] for n in policy_names], EnforcementLevel.ADVISORY
    )
    properties = struct_pb2.Struct()
    properties.update({**RDS_PROPS, "publiclyAccessible": UNKNOWN_BOOLEAN_VALUE, "kmsKeyId": ""})
    request = analyzer_pb2.AnalyzeRequest(
        type=RDS, urn=urn_of(RDS, "db"), name="db", properties=properties
    )
    response = servicer.Analyze(request, None)
    by_policy = {d.policyName: d for d in response.diagnostics}
    assert set(by_policy) == set(policy_names)
    cant_run = by_policy["rds-no-public-access"]
    assert cant_run.enforcementLevel == analyzer_pb2.ADVISORY
    assert "can't run policy" in cant_run.message and "during preview" in cant_run.message
    violation = by_policy["rds-storage-encrypted"]
    assert violation.enforcementLevel == analyzer_pb2.MANDATORY
    assert violation.severity == analyzer_pb2.POLICY_SEVERITY_HIGH
    assert violation.message.startswith(POLICIES["rds-storage-encrypted"].description + "\n")


def _analyzer_resources(fixture: Sequence[R]) -> list[analyzer_pb2.AnalyzerResource]:
    """A stack fixture as the engine sends it to AnalyzeStack."""
    urns = {r.name: urn_of(r.type, r.name) for r in fixture}
    made = []
    for r in fixture:
        properties = struct_pb2.Struct()
        properties.update(engine_values(r.props))
        dependencies = {
            key: analyzer_pb2.AnalyzerPropertyDependencies(urns=[urns[n] for n in names])
            for key, names in r.deps.items()
        }
        made.append(
            analyzer_pb2.AnalyzerResource(
                type=r.type,
                urn=urns[r.name],
                name=r.name,
                properties=properties,
                dependencies=sorted({u for deps in dependencies.values() for u in deps.urns}),
                propertyDependencies=dependencies,
            )
        )
    return made


def configure_request(
    policies: Sequence[Policy], config: dict[str, Any]
) -> analyzer_pb2.ConfigureAnalyzerRequest:
    """What the engine sends after reconciling ``config``: every policy's level (the CLI
    always sends one) and its properties."""
    entries = {}
    for policy in policies:
        level = effective_enforcement(policy, config)
        properties = struct_pb2.Struct()
        properties.update(policy_properties(config, policy.name))
        entries[policy.name] = analyzer_pb2.PolicyConfig(
            enforcementLevel=analyzer_pb2.MANDATORY
            if level == EnforcementLevel.MANDATORY
            else analyzer_pb2.ADVISORY,
            properties=properties,
        )
    return analyzer_pb2.ConfigureAnalyzerRequest(policyConfig=entries)


def _during_preview(r: R) -> R:
    """What a resource about to be created looks like in a preview: no id yet, and so no
    bucket id in its configuration resources either."""
    if r.type == BUCKET:
        return R(r.type, {**r.props, "id": UNKNOWN}, r.name, r.deps)
    if s3_kind(r.type):
        return R(r.type, {**r.props, "bucket": UNKNOWN}, r.name, r.deps)
    return r


def test_stack_policies_check_what_is_known_during_preview() -> None:
    """During preview ids and computed policies are unknown: buckets are still matched with
    their settings through property dependencies, a bucket whose policy document is unknown
    is reported as "can't run", and the other buckets are still checked."""
    preview = [_during_preview(r) for r in COMPLIANT_STACK]
    assert reporting(preview) == set()
    preview = replaced(
        without(preview, "logs-bucketPolicy"), "data-bucketPolicy", {"policy": UNKNOWN}
    )
    stack_policies: list[Policy] = list(STACK_POLICIES)
    servicer: Any = _PolicyAnalyzerServicer(
        PACK_NAME, "0.1.0", stack_policies, EnforcementLevel.ADVISORY
    )
    servicer.Configure(configure_request(stack_policies, TEST_CONFIG), None)
    request = analyzer_pb2.AnalyzeStackRequest(resources=_analyzer_resources(preview))
    diagnostics = servicer.AnalyzeStack(request, None).diagnostics
    found = sorted(
        (d.policyName, d.enforcementLevel, d.urn.rsplit("::", 1)[-1]) for d in diagnostics
    )
    assert found == [
        ("s3-tls-only", analyzer_pb2.ADVISORY, ""),  # data: its policy is not known yet
        ("s3-tls-only", analyzer_pb2.MANDATORY, "logs"),  # logs: no policy at all
    ]


def malformed(props: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Shapes real properties may take when a value is missing or of another type."""
    yield {}
    replacements: tuple[Any, ...] = (None, "", 0, [], {}, "x", [None], [{}])
    for replacement in replacements:
        yield {key: replacement for key in props}
    yield {key: ([value] if isinstance(value, dict) else value) for key, value in props.items()}


def fixture_subjects() -> Iterator[R]:
    for case in CASES:
        for subject in (case.passing, case.failing):
            yield from [subject] if isinstance(subject, R) else subject


@pytest.mark.parametrize("policy", ALL_POLICIES, ids=[p.name for p in ALL_POLICIES])
def test_no_policy_crashes_on_missing_or_malformed_properties(policy: Policy) -> None:
    subjects = {(r.type, json.dumps(r.props, sort_keys=True)): r for r in fixture_subjects()}
    for subject in subjects.values():
        for props in malformed(subject.props):
            bent = R(subject.type, props, subject.name, subject.deps)
            if isinstance(policy, ResourceValidationPolicy):
                violations(policy, bent, TEST_CONFIG)
            else:
                violations(policy, [bent], TEST_CONFIG)


def _rpc(port: int) -> analyzer_pb2_grpc.AnalyzerStub:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=30)
    return analyzer_pb2_grpc.AnalyzerStub(channel)


def test_the_pack_serves_as_the_cli_starts_it() -> None:
    """``python -m pulumi.policy <engine> .`` in the pack's directory, as
    pulumi-analyzer-policy-python runs it: the port on the first line of stdout, then every
    policy over gRPC."""
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", "."],
        cwd=PACK_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        line = process.stdout.readline() if ready else ""
        if not line.strip().isdigit():
            process.kill()
            pytest.fail(f"no port announced: {line!r} {process.communicate(timeout=30)[1]}")
        info = _rpc(int(line)).GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
        assert info.name == PACK_NAME
        assert sorted(p.name for p in info.policies) == sorted(POLICIES)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_pack_files() -> None:
    manifest = (PACK_DIR / "PulumiPolicy.yaml").read_text()
    # the pack's name comes from PolicyPack(name=PACK_NAME); PulumiPolicy.yaml has no top-level
    # name key. The CLI installs nothing for a pack: it runs in the project's virtualenv.
    document = yaml.safe_load(manifest)
    assert "name" not in document
    assert document["runtime"] == {
        "name": "python",
        "options": {"toolchain": "pip", "virtualenv": "../.venv"},
    }
    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
    assert (PACK_DIR / "../.venv").resolve() == (
        REPO_ROOT / project["runtime"]["options"]["virtualenv"]
    ).resolve()
    assert "version: " in manifest and "description: " in manifest
    pins = {
        line.split("==")[0]: line
        for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line
    }
    for line in (PACK_DIR / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            assert pins[line.split("==")[0]] == line, line
    main = (PACK_DIR / "__main__.py").read_text()
    assert "PolicyPack(" in main and "def " not in main and "class " not in main


# ---- the real stacks -----------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    policy: str
    level: EnforcementLevel
    resource: str
    message: str

    def __str__(self) -> str:
        return f"[{self.level.value}] {self.policy} {self.resource}: {self.message}"


def _provider(plan: Plan, resource: CapturedResource) -> PolicyProviderResource | None:
    if resource.provider is None:
        return None
    provider = plan.by_urn(resource.provider.rsplit("::", 1)[0])
    props = unknown_checking_proxy(engine_values(provider.inputs))
    return PolicyProviderResource(provider.type, props, provider.urn, provider.name)


def _stack_resources(plan: Plan) -> list[PolicyResource]:
    """What AnalyzeStack sees: outputs (over inputs, which the mocks echo), parents and
    (property) dependencies as objects."""
    made = {
        r.urn: PolicyResource(
            r.type,
            unknown_checking_proxy(engine_values({**r.inputs, **r.outputs})),
            r.urn,
            r.name,
            options(r.parent),
            _provider(plan, r),
            None,
            [],
            {},
        )
        for r in plan.resources
    }
    for r in plan.resources:
        resource = made[r.urn]
        resource.parent = made.get(r.parent or "")
        resource.dependencies = [made[u] for u in r.dependencies if u in made]
        resource.property_dependencies = {
            key: [made[u] for u in urns if u in made]
            for key, urns in r.property_dependencies.items()
        }
    return list(made.values())


def analyze(plan: Plan, config: dict[str, Any]) -> list[Finding]:
    """Every policy over the stack, as the engine would run it: each resource's inputs to the
    resource policies, the whole stack's outputs to the stack policies."""
    findings: list[Finding] = []

    def reporter(policy: Policy, resource: str) -> Callable[[str, str | None], None]:
        level = effective_enforcement(policy, config)

        def report(message: str, urn: str | None = None) -> None:
            name = urn.rsplit("::", 1)[-1] if urn else resource
            findings.append(Finding(policy.name, level, name, message))

        return report

    for policy in RESOURCE_POLICIES:
        properties = policy_properties(config, policy.name)
        for r in plan.resources:
            args = ResourceValidationArgs(
                r.type,
                unknown_checking_proxy(engine_values(r.inputs)),
                r.urn,
                r.name,
                options(r.parent),
                _provider(plan, r),
                properties,
            )
            try:
                policy.validate(args, reporter(policy, r.name))
            except UnknownValueError as error:  # the servicer reports these as advisory
                findings.append(
                    Finding(policy.name, EnforcementLevel.ADVISORY, r.name, error.message)
                )
    resources = _stack_resources(plan)
    for stack_policy in STACK_POLICIES:
        properties = policy_properties(config, stack_policy.name)
        stack_policy.validate(
            StackValidationArgs(resources, properties), reporter(stack_policy, "<stack>")
        )
    return findings


def test_real_stack_has_no_mandatory_violation(plan: Plan) -> None:
    config = load_config(plan.stack)
    findings = analyze(plan, config)
    print(f"\n{plan.stack}: {len(plan.resources)} resources, {len(findings)} findings")
    for finding in findings:
        print(f"  {finding}")
    mandatory = [str(f) for f in findings if f.level == EnforcementLevel.MANDATORY]
    assert mandatory == []


def test_real_stack_is_really_checked(plan: Plan) -> None:
    """Without the stack's configuration (no allowlists, no registries) the same stack fails:
    the zero above is the policies passing, not the policies not running."""
    found = {f.policy for f in analyze(plan, {})}
    assert {"k8s-image-pinned", "k8s-sa-token", "s3-encryption", "k8s-namespace-pss"} <= found
    kinds = {r.type for r in plan.resources}
    for required in (RDS, REDIS, EKS, LAUNCH_TEMPLATE, ECR, KMS, BUCKET, VPC, SG, SG_RULE):
        assert required in kinds, required
    assert "kubernetes:networking.k8s.io/v1:NetworkPolicy" in kinds


def test_a_release_is_allowed_only_for_the_charts_the_config_names() -> None:
    """A chart whose install needs hooks (which helm.v4.Chart never runs) may be a Release
    when the configuration names it, with its reason; any other Release is still reported."""
    policy = POLICIES["k8s-no-helm-release"]
    release = R("kubernetes:helm.sh/v3:Release", {"chart": "vpa", "version": "4.7.2", "values": {}})
    allowed = {"k8s-no-helm-release": {"releaseAllowed": [{"chart": "vpa", "reason": "hooks"}]}}
    assert violations(policy, release, allowed) == []
    other = R("kubernetes:helm.sh/v3:Release", {"chart": "external-secrets", "values": {}})
    assert violations(policy, other, allowed) == [
        "Helm release of external-secrets hides its workloads from the policy pack."
    ]
    for stack in ("staging", "prod"):
        config = json.loads((REPO_ROOT / "policies" / "config" / f"{stack}.json").read_text())
        assert [e["chart"] for e in config["k8s-no-helm-release"]["releaseAllowed"]] == ["vpa"]


def test_iam_and_rbac_exemptions_come_from_the_stack_config() -> None:
    """The deploy role's PowerUserAccess is accepted by name (with its reason) in the real
    stack configuration; the same policy on any other role is not."""
    config = load_config("staging")
    deploy = "exposcholar-staging-deploy-github-deploy"
    power = "arn:aws:iam::aws:policy/PowerUserAccess"
    admin = POLICIES["iam-no-admin-policies"]
    assert violations(admin, aws(ATTACHMENT, {"role": deploy, "policyArn": power}), config) == []
    assert violations(
        admin,
        aws(ATTACHMENT, {"role": "exposcholar-staging-app-server", "policyArn": power}),
        config,
    )
    entries = config["iam-no-admin-policies"]["allowed"]
    assert all(e["reason"].strip() for e in entries)
    egress = config["k8s-netpol-internet-egress"]["allowedPorts"]
    # HTTPS, and SMTP submission for Alertmanager's alert email only
    assert [(e["port"], e["protocol"]) for e in egress] == [(443, "TCP"), (587, "TCP")]
    assert all(e["reason"].strip() for e in egress)


EXEMPTIONS: list[tuple[str, R | list[R], dict[str, Any]]] = [
    (
        "iam-web-identity-trust-pinned",
        aws(ROLE, ROLE_PROPS, assumeRolePolicy=irsa_trust(aud="sts.amazonaws.com")),
        {"allowed": [{"role": "exposcholar-test-app-*", "reason": "test"}]},
    ),
    (
        "iam-no-wildcard-principals",
        aws(KMS, KEY_POLICY_PROPS, policy=document({"Effect": "Allow", "Principal": "*"})),
        {"allowed": [{"resource": "subject", "reason": "test"}]},
    ),
    (
        "iam-no-wildcard-actions",
        aws(ROLE_POLICY, ROLE_POLICY_PROPS, policy=document(allow("s3:*"))),
        {"allowed": [{"holder": "exposcholar-test-*", "action": "s3:*", "reason": "test"}]},
    ),
    (
        "k8s-rbac-no-wildcards",
        rbac_role({**READ_PODS, "resources": ["*"]}),
        {"allowed": [{"object": "app/web", "reason": "test"}]},
    ),
    (
        "k8s-rbac-powerful-bindings",
        binding("admin", "ClusterRole"),
        {
            "allowedSubjects": [
                {"kind": "ServiceAccount", "name": "web", "role": "admin", "reason": "test"}
            ]
        },
    ),
    (
        "k8s-netpol-no-admit-all",
        network_policy(ingress=[{}]),
        {"allowed": [{"object": "app/allow-*", "reason": "test"}]},
    ),
    (
        "k8s-netpol-internet-egress",
        network_policy(egress=[{**HTTPS_OUT, "ports": [{"protocol": "TCP", "port": 22}]}]),
        {"allowedPorts": [{"port": 22, "protocol": "TCP", "reason": "test"}]},
    ),
    (
        "k8s-netpol-default-deny",
        combined(storage(), network(), cluster(netpol=False), [network_policy()]),
        {"exempt": [{"namespace": "app", "reason": "test"}]},
    ),
    (
        "k8s-rbac-subjects",
        combined(COMPLIANT_STACK, rbac({"kind": "Group", "name": "exposcholar:viewers"})),
        {"allowedGroups": [{"group": "exposcholar:viewers", "reason": "test"}]},
    ),
    (
        "nodes-ebs-encrypted",
        aws(LAUNCH_TEMPLATE, LAUNCH_TEMPLATE_PROPS, blockDeviceMappings=DROP),
        {"allowed": [{"resource": "subject", "reason": "test"}]},
    ),
    (
        "logs-kms-encrypted",
        aws(LOG_GROUP, LOG_GROUP_PROPS, kmsKeyId=DROP),
        {"exempt": [{"pattern": "/aws/vpc/*", "reason": "test"}]},
    ),
]
"""A failing fixture of each new policy and a configuration entry (with its reason) that
exempts exactly it."""


@pytest.mark.parametrize(("policy", "subject", "entry"), EXEMPTIONS, ids=[e[0] for e in EXEMPTIONS])
def test_exemptions_are_configured_with_their_reasons(
    policy: str, subject: R | list[R], entry: dict[str, Any]
) -> None:
    assert reporting(subject) == {policy}
    assert reporting(subject, {**TEST_CONFIG, policy: entry}) == set()
    schema = SPECS[policy].config_schema()
    assert schema is not None
    for key, value in entry.items():
        jsonschema.validate(value, schema.properties[key])
        without_reason = [{k: v for k, v in e.items() if k != "reason"} for e in value]
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(without_reason, schema.properties[key])
