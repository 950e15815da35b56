"""Mutation tests of the policy pack over the real stacks, through the real analyzer process.

For every policy of ``policies/``: take a deep copy of the program's captured plan (staging;
prod for the rules only production must meet), break exactly the property the policy guards
on one real resource, send the result through the pack running as its own process
(``tools.analyzer.session.PolicySession``: one process per stack, started and configured once
with the stack's ``policies/config/<stack>.json``, as ``pulumi preview --policy-pack`` starts
it), and assert that this policy, and no other, reports it, against the broken resource.

Where the real stacks have no resource of the kind a policy guards (a CronJob, a Helm v3
Release), the mutation adds one realistic resource derived from a real one, compliant with
every other policy (see the rows marked ``added``).

Each mutation sends ``Analyze`` only for the resources it changed or added and one
``AnalyzeStack`` with the whole mutated stack. That is enough because a resource policy sees one
resource (and its provider, which no mutation touches) and ``test_baseline_reports_nothing``
sends every resource of both unmutated stacks: whatever else is reported comes from the
mutation. The last test prints ``policy mutations: <caught>/<total> caught, <n> policies``.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from policies.rules import ALL_POLICIES, CONFIG_DIR
from tools.analyzer.report import PolicyDiagnostic, PolicyReport
from tools.analyzer.session import PolicySession
from tools.mocks import CapturedResource
from tools.plan import Plan
from tools.preview import POLICY_PACK_DIR, REPO_ROOT
from tools.project import StackConfig

PACK_DIR = REPO_ROOT / POLICY_PACK_DIR
STAGING = "staging"
PROD = "prod"

Step = str | int
PropertyPath = tuple[Step, ...]

# ---- the resource types the mutations break ------------------------------------------------

RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
BUCKET = "aws:s3/bucket:Bucket"
BUCKET_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
BUCKET_VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
BUCKET_LOGGING = "aws:s3/bucketLogging:BucketLogging"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
KMS_KEY = "aws:kms/key:Key"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
VPC = "aws:ec2/vpc:Vpc"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ECR_REPOSITORY = "aws:ecr/repository:Repository"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
JOB = "kubernetes:batch/v1:Job"
CRON_JOB = "kubernetes:batch/v1:CronJob"
SERVICE = "kubernetes:core/v1:Service"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
NAMESPACE = "kubernetes:core/v1:Namespace"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
HELM_CHART = "kubernetes:helm.sh/v4:Chart"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
IAM_ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ROLE_POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
RBAC = "kubernetes:rbac.authorization.k8s.io/v1"
CLUSTER_ROLE = f"{RBAC}:ClusterRole"
CLUSTER_ROLE_BINDING = f"{RBAC}:ClusterRoleBinding"
K8S_ROLE = f"{RBAC}:Role"
ROLE_BINDING = f"{RBAC}:RoleBinding"

SERVER = "app-server"
"""The application's Deployment (namespace exposcholar)."""
POD: PropertyPath = ("spec", "template", "spec")
CONTAINER: PropertyPath = (*POD, "containers", 0)
SECURITY: PropertyPath = (*CONTAINER, "securityContext")


# ---- a mutable copy of a stack -------------------------------------------------------------


def _container(props: Any, path: PropertyPath, *, create: bool) -> Any:
    """The map or list holding the last step of ``path`` (maps created on the way if asked)."""
    current = props
    for index, step in enumerate(path[:-1]):
        if isinstance(step, str) and step not in current:
            if not create:
                raise KeyError(path[: index + 1])
            current[step] = [] if isinstance(path[index + 1], int) else {}
        current = current[step]
    return current


class Draft:
    """A deep copy of one stack's captured resources for a mutation to break. Every change is
    made to a resource's inputs (what ``Analyze`` gets) and to its outputs (what
    ``AnalyzeStack`` gets: the mock provider echoes the inputs) alike."""

    def __init__(self, plan: Plan) -> None:
        self.source = plan
        self.resources = copy.deepcopy(plan.resources)
        self.touched: list[str] = []
        """URNs of the resources changed or added: the ones sent with ``Analyze``."""

    def find(self, typ: str, name: str) -> CapturedResource:
        found = [r for r in self.resources if r.type == typ and r.name == name]
        assert len(found) == 1, f"{len(found)} resources {typ} named {name}"
        return found[0]

    def change(self, typ: str, name: str, edit: Callable[[MutableMapping[str, Any]], None]) -> None:
        resource = self.find(typ, name)
        for props in (resource.inputs, resource.outputs):
            edit(props)
        self._touch(resource.urn)

    def set(self, typ: str, name: str, path: PropertyPath, value: Any) -> None:
        def edit(props: MutableMapping[str, Any]) -> None:
            _container(props, path, create=True)[path[-1]] = copy.deepcopy(value)

        self.change(typ, name, edit)

    def drop(self, typ: str, name: str, path: PropertyPath) -> None:
        def edit(props: MutableMapping[str, Any]) -> None:
            del _container(props, path, create=False)[path[-1]]

        self.change(typ, name, edit)

    def append(self, typ: str, name: str, path: PropertyPath, item: Any) -> None:
        def edit(props: MutableMapping[str, Any]) -> None:
            holder = _container(props, path, create=True)
            holder.setdefault(path[-1], []).append(copy.deepcopy(item))

        self.change(typ, name, edit)

    def remove(self, typ: str, name: str) -> None:
        self.resources.remove(self.find(typ, name))

    def derive(
        self, typ: str, name: str, *, like: tuple[str, str], inputs: Mapping[str, Any]
    ) -> None:
        """Add a resource of ``typ`` next to the real resource ``like`` (same parent, provider
        and dependencies; its URN built the way the engine builds one)."""
        source = self.find(*like)
        head, _, _ = source.urn.rpartition("::")
        prefix, _, qualified = head.rpartition("::")
        parents, dollar, _ = qualified.rpartition("$")
        urn = f"{prefix}::{parents}{dollar}{typ}::{name}"
        self.resources.append(
            CapturedResource(
                urn=urn,
                type=typ,
                name=name,
                custom=True,
                parent=source.parent,
                provider=source.provider,
                protect=False,
                dependencies=list(source.dependencies),
                property_dependencies={},
                inputs=copy.deepcopy(dict(inputs)),
                outputs=copy.deepcopy(dict(inputs)),
            )
        )
        self._touch(urn)

    def plan(self) -> Plan:
        source = self.source
        return Plan(source.project, source.stack, source.stack_urn, self.resources, source.outputs)

    def _touch(self, urn: str) -> None:
        if urn not in self.touched:
            self.touched.append(urn)


# ---- mutations that need more than one property set ----------------------------------------


def _force_ssl_off(props: MutableMapping[str, Any]) -> None:
    for parameter in props["parameters"]:
        if parameter["name"] == "rds.force_ssl":
            parameter["value"] = "0"


def _without_audit_logs(props: MutableMapping[str, Any]) -> None:
    props["enabledClusterLogTypes"] = [t for t in props["enabledClusterLogTypes"] if t != "audit"]


def _sse_s3(props: MutableMapping[str, Any]) -> None:
    for rule in props["rules"]:
        rule["applyServerSideEncryptionByDefault"] = {"sseAlgorithm": "AES256"}
        rule["bucketKeyEnabled"] = False


def _edit_document(prop: str, edit: Callable[[dict[str, Any]], None]) -> Callable[[Any], None]:
    """An edit of the JSON policy document held (as text) in ``prop``."""

    def apply(props: MutableMapping[str, Any]) -> None:
        document = json.loads(props[prop])
        edit(document)
        props[prop] = json.dumps(document)

    return apply


def _statement(sid: str, edit: Callable[[dict[str, Any]], None]) -> Callable[[Any], None]:
    def apply(document: dict[str, Any]) -> None:
        (found,) = [s for s in document["Statement"] if s.get("Sid") == sid]
        edit(found)

    return apply


def _add_statement(statement: Mapping[str, Any]) -> Callable[[dict[str, Any]], None]:
    def apply(document: dict[str, Any]) -> None:
        document["Statement"].append(dict(statement))

    return apply


def _unpin_subject(document: dict[str, Any]) -> None:
    (statement,) = document["Statement"]
    pinned = statement["Condition"]["StringEquals"]
    for key in [k for k in pinned if k.endswith(":sub")]:
        del pinned[key]


def _add_rule_item(field: str, value: str) -> Callable[[Any], None]:
    """Add ``value`` to ``field`` of the first rule whose verbs are read-only (get/list/watch)."""

    def apply(props: MutableMapping[str, Any]) -> None:
        rule = next(r for r in props["rules"] if set(r["verbs"]) == {"get", "list", "watch"})
        rule[field] = [*rule[field], value]

    return apply


def _https_egress_port(port: int) -> Callable[[Any], None]:
    def apply(props: MutableMapping[str, Any]) -> None:
        for rule in props["spec"]["egress"]:
            if any(p.get("ipBlock", {}).get("cidr") == "0.0.0.0/0" for p in rule["to"]):
                rule["ports"] = [{"protocol": "TCP", "port": port}]

    return apply


def _add_cron_job(draft: Draft) -> None:
    """A nightly CronJob running the real migration Job's spec (image, service account, pod
    and container security, resources, retries and deadline), in the app namespace with the
    Job's labels (so the namespace's NetworkPolicies select it), compliant but for
    ``concurrencyPolicy``, left at Kubernetes' ``Allow``."""
    job = draft.find(JOB, "app-migrate").inputs
    metadata = copy.deepcopy(job["metadata"])
    metadata["name"] = "server-clearsessions"
    draft.derive(
        CRON_JOB,
        "app-clearsessions",
        like=(JOB, "app-migrate"),
        inputs={
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": metadata,
            "spec": {
                "schedule": "0 3 * * *",
                "concurrencyPolicy": "Allow",
                "startingDeadlineSeconds": 300,
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {"spec": copy.deepcopy(job["spec"])},
            },
        },
    )


def _add_helm_release(draft: Draft) -> None:
    """The real External Secrets chart (same chart, version, repository, namespace and values;
    a chart without hooks, not on the pack's ``releaseAllowed`` list) installed as a
    ``helm.v3.Release`` instead of a ``helm.v4.Chart``."""
    chart = draft.find(HELM_CHART, "external-secrets-chart").inputs
    draft.derive(
        HELM_RELEASE,
        "external-secrets-release",
        like=(HELM_CHART, "external-secrets-chart"),
        inputs={
            "name": "external-secrets",
            **{k: chart[k] for k in ("chart", "version", "repositoryOpts", "namespace", "values")},
        },
    )


# ---- the table: one mutation per policy ----------------------------------------------------


@dataclass(frozen=True)
class Mutation:
    policy: str
    what: str
    """The one property broken, on which real resource."""
    apply: Callable[[Draft], None]
    subject: str
    """The resource the violation must be reported against (logical name)."""
    stack: str = STAGING
    added: bool = False
    """The stacks have no resource of the guarded kind: the mutation adds one."""


MUTATIONS: list[Mutation] = [
    # ---- RDS, ElastiCache, S3 ACLs, KMS (resource policies) ----
    Mutation(
        "rds-no-public-access",
        "publiclyAccessible: true on the RDS instance",
        lambda d: d.set(RDS_INSTANCE, "database-instance", ("publiclyAccessible",), True),
        "database-instance",
    ),
    Mutation(
        "rds-storage-encrypted",
        "storageEncrypted: false on the RDS instance",
        lambda d: d.set(RDS_INSTANCE, "database-instance", ("storageEncrypted",), False),
        "database-instance",
    ),
    Mutation(
        "rds-backup-retention",
        "backupRetentionPeriod 1 (staging's minimum is 7) on the RDS instance",
        lambda d: d.set(RDS_INSTANCE, "database-instance", ("backupRetentionPeriod",), 1),
        "database-instance",
    ),
    Mutation(
        "rds-multi-az",
        "multiAz: false on prod's RDS instance (production only)",
        lambda d: d.set(RDS_INSTANCE, "database-instance", ("multiAz",), False),
        "database-instance",
        stack=PROD,
    ),
    Mutation(
        "rds-deletion-protection",
        "deletionProtection: false on prod's RDS instance (production only)",
        lambda d: d.set(RDS_INSTANCE, "database-instance", ("deletionProtection",), False),
        "database-instance",
        stack=PROD,
    ),
    Mutation(
        "rds-hardening",
        "iamDatabaseAuthenticationEnabled: false on the RDS instance",
        lambda d: d.set(
            RDS_INSTANCE, "database-instance", ("iamDatabaseAuthenticationEnabled",), False
        ),
        "database-instance",
    ),
    Mutation(
        "rds-tls-in-transit",
        "rds.force_ssl = 0 in the instance's parameter group",
        lambda d: d.change(RDS_PARAMETER_GROUP, "database-parameters", _force_ssl_off),
        "database-parameters",
    ),
    Mutation(
        "redis-at-rest-encryption",
        "atRestEncryptionEnabled: false on the Redis replication group",
        lambda d: d.set(
            REPLICATION_GROUP, "cache-replication-group", ("atRestEncryptionEnabled",), False
        ),
        "cache-replication-group",
    ),
    Mutation(
        "redis-transit-encryption-auth",
        "transitEncryptionMode: preferred (plaintext accepted) on the Redis replication group",
        lambda d: d.set(
            REPLICATION_GROUP, "cache-replication-group", ("transitEncryptionMode",), "preferred"
        ),
        "cache-replication-group",
    ),
    Mutation(
        "redis-ha-backup",
        "snapshotRetentionLimit 0 (snapshots off) on the Redis replication group",
        lambda d: d.set(
            REPLICATION_GROUP, "cache-replication-group", ("snapshotRetentionLimit",), 0
        ),
        "cache-replication-group",
    ),
    Mutation(
        "s3-no-public-acl",
        "acl: public-read on the static bucket",
        lambda d: d.set(BUCKET, "storage-static", ("acl",), "public-read"),
        "storage-static",
    ),
    Mutation(
        "kms-rotation",
        "enableKeyRotation: false on the data key",
        lambda d: d.set(KMS_KEY, "keys-data", ("enableKeyRotation",), False),
        "keys-data",
    ),
    # ---- security groups, EKS, nodes, ECR, tags (resource policies) ----
    Mutation(
        "sg-no-world-ingress",
        "the VPC endpoints' HTTPS ingress rule admits 0.0.0.0/0 instead of the VPC CIDR",
        lambda d: d.set(INGRESS_RULE, "network-endpoints-https", ("cidrIpv4",), "0.0.0.0/0"),
        "network-endpoints-https",
    ),
    Mutation(
        "sg-descriptions",
        "no description on the database's ingress rule",
        lambda d: d.drop(INGRESS_RULE, "database-sg-from-0", ("description",)),
        "database-sg-from-0",
    ),
    Mutation(
        "eks-endpoint-private",
        "the EKS public endpoint's publicAccessCidrs is 0.0.0.0/0",
        lambda d: d.set(
            EKS_CLUSTER, "cluster-eks", ("vpcConfig", "publicAccessCidrs"), ["0.0.0.0/0"]
        ),
        "cluster-eks",
    ),
    Mutation(
        "eks-secrets-encryption",
        "no provider.keyArn in the cluster's secrets encryptionConfig",
        lambda d: d.drop(EKS_CLUSTER, "cluster-eks", ("encryptionConfig", "provider", "keyArn")),
        "cluster-eks",
    ),
    Mutation(
        "eks-control-plane-logs",
        "the audit log type left out of enabledClusterLogTypes",
        lambda d: d.change(EKS_CLUSTER, "cluster-eks", _without_audit_logs),
        "cluster-eks",
    ),
    Mutation(
        "nodes-imdsv2-no-public-ip",
        "metadataOptions.httpTokens: optional (IMDSv1) on the app nodes' launch template",
        lambda d: d.set(
            LAUNCH_TEMPLATE, "nodes-app-template", ("metadataOptions", "httpTokens"), "optional"
        ),
        "nodes-app-template",
    ),
    Mutation(
        "ecr-immutable-tags",
        "imageTagMutability: MUTABLE on the server image repository",
        lambda d: d.set(ECR_REPOSITORY, "images-server", ("imageTagMutability",), "MUTABLE"),
        "images-server",
    ),
    Mutation(
        "ecr-scan-on-push",
        "imageScanningConfiguration.scanOnPush: false on the server image repository",
        lambda d: d.set(
            ECR_REPOSITORY, "images-server", ("imageScanningConfiguration", "scanOnPush"), False
        ),
        "images-server",
    ),
    Mutation(
        "ecr-kms",
        "AES256 instead of the images KMS key on the server image repository",
        lambda d: d.set(
            ECR_REPOSITORY,
            "images-server",
            ("encryptionConfigurations",),
            [{"encryptionType": "AES256"}],
        ),
        "images-server",
    ),
    Mutation(
        "required-tags",
        "the Component tag removed from the VPC",
        lambda d: d.drop(VPC, "network-vpc", ("tags", "Component")),
        "network-vpc",
    ),
    # ---- S3 and network (stack policies) ----
    Mutation(
        "s3-public-access-block",
        "the media bucket's BucketPublicAccessBlock deleted",
        lambda d: d.remove(BUCKET_BLOCK, "storage-media-public-access-block"),
        "storage-media",
    ),
    Mutation(
        "s3-encryption",
        "the media bucket's default encryption is SSE-S3 (AES256) instead of SSE-KMS",
        lambda d: d.change(BUCKET_ENCRYPTION, "storage-media-encryption", _sse_s3),
        "storage-media",
    ),
    Mutation(
        "s3-versioning",
        "versioning Suspended on the media bucket",
        lambda d: d.set(
            BUCKET_VERSIONING,
            "storage-media-versioning",
            ("versioningConfiguration", "status"),
            "Suspended",
        ),
        "storage-media",
    ),
    Mutation(
        "s3-access-logging",
        "the static bucket's BucketLogging deleted",
        lambda d: d.remove(BUCKET_LOGGING, "storage-static-logging"),
        "storage-static",
    ),
    Mutation(
        "s3-tls-only",
        "the static bucket's BucketPolicy (the aws:SecureTransport deny) deleted",
        lambda d: d.remove(BUCKET_POLICY, "storage-static-policy"),
        "storage-static",
    ),
    Mutation(
        "vpc-flow-logs",
        "the VPC's FlowLog deleted",
        lambda d: d.remove(FLOW_LOG, "network-flow-log"),
        "network-vpc",
    ),
    Mutation(
        "sg-no-rule-conflicts",
        "an inline ingress block (5432 from the VPC CIDR, described) on the database's "
        "security group, which also has a separate rule resource",
        lambda d: d.append(
            SECURITY_GROUP,
            "database-sg",
            ("ingress",),
            {
                "protocol": "tcp",
                "fromPort": 5432,
                "toPort": 5432,
                "cidrBlocks": ["10.20.0.0/16"],
                "description": "PostgreSQL from the whole VPC",
            },
        ),
        "database-sg",
    ),
    # ---- Pod Security Standards baseline, on the server Deployment ----
    Mutation(
        "k8s-pss-privileged",
        "privileged: true on the server container",
        lambda d: d.set(DEPLOYMENT, SERVER, (*SECURITY, "privileged"), True),
        SERVER,
    ),
    Mutation(
        "k8s-pss-host-namespaces",
        "hostNetwork: true on the server pod",
        lambda d: d.set(DEPLOYMENT, SERVER, (*POD, "hostNetwork"), True),
        SERVER,
    ),
    Mutation(
        "k8s-pss-host-process",
        "windowsOptions.hostProcess: true on the server container",
        lambda d: d.set(DEPLOYMENT, SERVER, (*SECURITY, "windowsOptions", "hostProcess"), True),
        SERVER,
    ),
    Mutation(
        "k8s-pss-host-path",
        "a hostPath volume (/var/log of the node) added to the server pod",
        lambda d: d.append(
            DEPLOYMENT,
            SERVER,
            (*POD, "volumes"),
            {"name": "node-logs", "hostPath": {"path": "/var/log", "type": "Directory"}},
        ),
        SERVER,
    ),
    Mutation(
        "k8s-pss-host-ports",
        "hostPort 8000 on the server container's http port",
        lambda d: d.set(DEPLOYMENT, SERVER, (*CONTAINER, "ports", 0, "hostPort"), 8000),
        SERVER,
    ),
    Mutation(
        "k8s-pss-proc-mount",
        "procMount: Unmasked on the server container",
        lambda d: d.set(DEPLOYMENT, SERVER, (*SECURITY, "procMount"), "Unmasked"),
        SERVER,
    ),
    Mutation(
        "k8s-pss-sysctls",
        "the unsafe sysctl net.core.somaxconn on the server pod",
        lambda d: d.set(
            DEPLOYMENT,
            SERVER,
            (*POD, "securityContext", "sysctls"),
            [{"name": "net.core.somaxconn", "value": "4096"}],
        ),
        SERVER,
    ),
    Mutation(
        "k8s-pss-selinux",
        "seLinuxOptions.type spc_t (super-privileged) on the server container",
        lambda d: d.set(DEPLOYMENT, SERVER, (*SECURITY, "seLinuxOptions"), {"type": "spc_t"}),
        SERVER,
    ),
    Mutation(
        "k8s-pss-apparmor",
        "appArmorProfile Unconfined on the server container",
        lambda d: d.set(DEPLOYMENT, SERVER, (*SECURITY, "appArmorProfile"), {"type": "Unconfined"}),
        SERVER,
    ),
    Mutation(
        "k8s-pss-host-probes",
        "the server container's livenessProbe.httpGet targets host 10.20.0.10",
        lambda d: d.set(
            DEPLOYMENT, SERVER, (*CONTAINER, "livenessProbe", "httpGet", "host"), "10.20.0.10"
        ),
        SERVER,
    ),
    # ---- Pod Security Standards restricted, on the server Deployment ----
    Mutation(
        "k8s-no-priv-escalation",
        "allowPrivilegeEscalation: true on the server container",
        lambda d: d.set(DEPLOYMENT, SERVER, (*SECURITY, "allowPrivilegeEscalation"), True),
        SERVER,
    ),
    Mutation(
        "k8s-non-root",
        "runAsUser 0 on the server container",
        lambda d: d.set(DEPLOYMENT, SERVER, (*SECURITY, "runAsUser"), 0),
        SERVER,
    ),
    Mutation(
        "k8s-drop-all-caps",
        "NET_RAW added back to the server container's capabilities",
        lambda d: d.set(DEPLOYMENT, SERVER, (*SECURITY, "capabilities", "add"), ["NET_RAW"]),
        SERVER,
    ),
    Mutation(
        "k8s-seccomp",
        "seccompProfile Unconfined on the server container",
        lambda d: d.set(DEPLOYMENT, SERVER, (*SECURITY, "seccompProfile", "type"), "Unconfined"),
        SERVER,
    ),
    Mutation(
        "k8s-volume-types",
        "an NFS volume (EFS) added to the server pod",
        lambda d: d.append(
            DEPLOYMENT,
            SERVER,
            (*POD, "volumes"),
            {
                "name": "shared",
                "nfs": {"server": "fs-0a1b2c3d.efs.eu-west-1.amazonaws.com", "path": "/"},
            },
        ),
        SERVER,
    ),
    # ---- container hygiene ----
    Mutation(
        "k8s-readonly-rootfs",
        "readOnlyRootFilesystem: false on the server container",
        lambda d: d.set(DEPLOYMENT, SERVER, (*SECURITY, "readOnlyRootFilesystem"), False),
        SERVER,
    ),
    Mutation(
        "k8s-resources",
        "no memory limit on the server container",
        lambda d: d.drop(DEPLOYMENT, SERVER, (*CONTAINER, "resources", "limits", "memory")),
        SERVER,
    ),
    Mutation(
        "k8s-probes",
        "no readinessProbe on the server container",
        lambda d: d.drop(DEPLOYMENT, SERVER, (*CONTAINER, "readinessProbe")),
        SERVER,
    ),
    Mutation(
        "k8s-image-pinned",
        "the cluster autoscaler's image is :latest",
        lambda d: d.set(
            DEPLOYMENT,
            "autoscaler-deployment",
            (*CONTAINER, "image"),
            "registry.k8s.io/autoscaling/cluster-autoscaler:latest",
        ),
        "autoscaler-deployment",
    ),
    Mutation(
        "k8s-sa-token",
        "automountServiceAccountToken: true on the server's ServiceAccount",
        lambda d: d.set(
            SERVICE_ACCOUNT, "app-server-account", ("automountServiceAccountToken",), True
        ),
        "app-server-account",
    ),
    Mutation(
        "k8s-no-secret-env",
        "DATABASE_PASSWORD from a secretKeyRef in the server container's environment",
        lambda d: d.append(
            DEPLOYMENT,
            SERVER,
            (*CONTAINER, "env"),
            {
                "name": "DATABASE_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "database-credentials", "key": "password"}},
            },
        ),
        SERVER,
    ),
    # ---- exposure and object hygiene ----
    Mutation(
        "k8s-ingress-tls",
        "spec.tls removed from the Ingress",
        lambda d: d.drop(INGRESS, "ingress-ingress", ("spec", "tls")),
        "ingress-ingress",
    ),
    Mutation(
        "k8s-service-exposure",
        "the server Service is of type NodePort",
        lambda d: d.set(SERVICE, "app-server-service", ("spec", "type"), "NodePort"),
        "app-server-service",
    ),
    Mutation(
        "k8s-cronjob-hygiene",
        "added: a CronJob running the migration Job's spec, concurrencyPolicy Allow",
        _add_cron_job,
        "app-clearsessions",
        added=True,
    ),
    Mutation(
        "k8s-job-hygiene",
        "no activeDeadlineSeconds on the migration Job",
        lambda d: d.drop(JOB, "app-migrate", ("spec", "activeDeadlineSeconds")),
        "app-migrate",
    ),
    Mutation(
        # A workload in 'default' would also (rightly) be reported by k8s-namespace-pss (the
        # stack does not create 'default') and k8s-netpol-coverage (no NetworkPolicy there):
        # the precise mutation moves an object no other policy looks at.
        "k8s-no-default-namespace",
        "metadata.namespace removed from the server ConfigMap (it lands in 'default')",
        lambda d: d.drop(CONFIG_MAP, "app-server-config", ("metadata", "namespace")),
        "app-server-config",
    ),
    Mutation(
        "k8s-no-helm-release",
        "added: the External Secrets chart installed as a helm.v3.Release",
        _add_helm_release,
        "external-secrets-release",
        added=True,
    ),
    # ---- Kubernetes (stack policies) ----
    Mutation(
        "k8s-replicas-pdb",
        "maxUnavailable 0 on the server's PodDisruptionBudget (HPA: 2-4 replicas)",
        lambda d: d.set(PDB, "app-server-pdb", ("spec", "maxUnavailable"), 0),
        SERVER,
    ),
    Mutation(
        "k8s-netpol-coverage",
        "the cluster autoscaler's NetworkPolicy (the only one in kube-system) deleted",
        lambda d: d.remove(NETWORK_POLICY, "autoscaler-network-policy"),
        "autoscaler-deployment",
    ),
    Mutation(
        "k8s-namespace-pss",
        "the app namespace enforces Pod Security baseline instead of restricted",
        lambda d: d.set(
            NAMESPACE,
            "app-namespace",
            ("metadata", "labels", "pod-security.kubernetes.io/enforce"),
            "baseline",
        ),
        "app-namespace",
    ),
    # ---- IAM (resource policies) ----
    Mutation(
        "iam-no-wildcard-actions",
        "s3:* on every resource in the server role's Objects statement",
        lambda d: d.change(
            ROLE_POLICY,
            "app-server-role-policy",
            _edit_document(
                "policy", _statement("Objects", lambda s: s.update(Action=["s3:*"], Resource="*"))
            ),
        ),
        "app-server-role-policy",
    ),
    Mutation(
        "iam-no-passrole-on-all",
        "iam:PassRole on '*' added to the load balancer controller's policy",
        lambda d: d.change(
            ROLE_POLICY,
            "lb-controller-role-policy",
            _edit_document(
                "policy",
                _add_statement(
                    {"Sid": "Pass", "Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}
                ),
            ),
        ),
        "lb-controller-role-policy",
    ),
    Mutation(
        "iam-no-admin-policies",
        "AdministratorAccess instead of AmazonEKSWorkerNodePolicy on the node role",
        lambda d: d.set(
            ROLE_POLICY_ATTACHMENT,
            "cluster-node-role-managed-0",
            ("policyArn",),
            "arn:aws:iam::aws:policy/AdministratorAccess",
        ),
        "cluster-node-role-managed-0",
    ),
    Mutation(
        "iam-web-identity-trust-pinned",
        "the :sub condition dropped from the server role's IRSA trust policy",
        lambda d: d.change(
            IAM_ROLE, "app-server-role", _edit_document("assumeRolePolicy", _unpin_subject)
        ),
        "app-server-role",
    ),
    Mutation(
        "iam-no-wildcard-principals",
        "Principal '*' in the flow-log role's trust policy (its conditions kept)",
        lambda d: d.change(
            IAM_ROLE,
            "network-flow-logs-role",
            _edit_document(
                "assumeRolePolicy", lambda doc: doc["Statement"][0].update(Principal="*")
            ),
        ),
        "network-flow-logs-role",
    ),
    Mutation(
        "iam-role-no-policy-management-conflicts",
        "managedPolicyArns set on the node role, which also has RolePolicyAttachments",
        lambda d: d.set(
            IAM_ROLE,
            "cluster-node-role",
            ("managedPolicyArns",),
            [
                "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
                "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
            ],
        ),
        "cluster-node-role",
    ),
    # ---- nodes' volumes, log groups ----
    Mutation(
        "nodes-ebs-encrypted",
        "encrypted: false on the app nodes' root volume",
        lambda d: d.set(
            LAUNCH_TEMPLATE,
            "nodes-app-template",
            ("blockDeviceMappings", 0, "ebs", "encrypted"),
            "false",
        ),
        "nodes-app-template",
    ),
    Mutation(
        "logs-kms-encrypted",
        "no kmsKeyId on the flow logs' log group",
        lambda d: d.drop(LOG_GROUP, "network-flow-logs", ("kmsKeyId",)),
        "network-flow-logs",
    ),
    # ---- RBAC ----
    Mutation(
        "k8s-rbac-no-wildcards",
        "apiGroups ['*'] on the autoscaler Role's first rule",
        lambda d: d.set(K8S_ROLE, "autoscaler-role", ("rules", 0, "apiGroups"), ["*"]),
        "autoscaler-role",
    ),
    Mutation(
        "k8s-rbac-no-escalation-verbs",
        "the verb impersonate added to the autoscaler Role's first rule",
        lambda d: d.set(
            K8S_ROLE, "autoscaler-role", ("rules", 0, "verbs"), ["create", "impersonate"]
        ),
        "autoscaler-role",
    ),
    Mutation(
        "k8s-rbac-no-cluster-secrets-read",
        "secrets added to the autoscaler ClusterRole's read-only core rule",
        lambda d: d.change(
            CLUSTER_ROLE, "autoscaler-cluster-role", _add_rule_item("resources", "secrets")
        ),
        "autoscaler-cluster-role",
    ),
    Mutation(
        "k8s-rbac-powerful-bindings",
        "the autoscaler's ClusterRoleBinding refers to cluster-admin",
        lambda d: d.set(
            CLUSTER_ROLE_BINDING,
            "autoscaler-cluster-role-binding",
            ("roleRef", "name"),
            "cluster-admin",
        ),
        "autoscaler-cluster-role-binding",
    ),
    Mutation(
        "k8s-rbac-subjects",
        "the autoscaler's RoleBinding binds kube-system's default ServiceAccount",
        lambda d: d.set(
            ROLE_BINDING, "autoscaler-role-binding", ("subjects", 0, "name"), "default"
        ),
        "autoscaler-role-binding",
    ),
    # ---- NetworkPolicy ----
    Mutation(
        "k8s-netpol-no-admit-all",
        "'from' dropped from the edge's ingress rule (every source on 8080)",
        lambda d: d.drop(NETWORK_POLICY, "edge-netpol", ("spec", "ingress", 0, "from")),
        "edge-netpol",
    ),
    Mutation(
        "k8s-netpol-internet-egress",
        "the server's internet egress on TCP 80 instead of 443",
        lambda d: d.change(NETWORK_POLICY, "app-netpol-server", _https_egress_port(80)),
        "app-netpol-server",
    ),
    Mutation(
        "k8s-netpol-default-deny",
        "the app namespace's default-deny NetworkPolicy deleted",
        lambda d: d.remove(NETWORK_POLICY, "app-netpol-default-deny"),
        "app-namespace",
    ),
]

BY_POLICY = {m.policy: m for m in MUTATIONS}
STACKS_USED = sorted({m.stack for m in MUTATIONS})


# ---- running them --------------------------------------------------------------------------


@dataclass
class Outcome:
    mutation: Mutation
    diagnostics: list[PolicyDiagnostic] = field(default_factory=list)
    touched: list[str] = field(default_factory=list)
    analyzed: int = 0
    error: str | None = None

    @property
    def reported(self) -> set[str]:
        return {d.policy_name for d in self.diagnostics}

    @property
    def subjects(self) -> set[str]:
        return {d.resource_name for d in self.diagnostics}

    @property
    def caught(self) -> bool:
        return (
            self.error is None
            and self.reported == {self.mutation.policy}
            and self.subjects == {self.mutation.subject}
        )

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.mutation.policy}: the mutation failed: {self.error}"
        lines = [f"{self.mutation.policy} ({self.mutation.what}):"]
        lines += [
            f"  [{d.source}] {d.policy_name} on {d.resource_name}: "
            + " | ".join(d.message.splitlines()[1:] or [d.message])
            for d in self.diagnostics
        ]
        return "\n".join(lines) if self.diagnostics else lines[0] + " nothing reported"


@pytest.fixture(scope="module")
def sessions(
    plans: dict[str, Plan], stack_configs: dict[str, StackConfig]
) -> Iterator[dict[str, PolicySession]]:
    """One pack process per stack, configured with the stack's policy config, kept open."""
    with contextlib.ExitStack() as stack:
        opened: dict[str, PolicySession] = {}
        for name in STACKS_USED:
            config = stack_configs[name]
            opened[name] = stack.enter_context(
                PolicySession(
                    PACK_DIR,
                    project=plans[name].project,
                    stack=name,
                    config_file=CONFIG_DIR / f"{name}.json",
                    stack_config=config.values,
                    secret_keys=config.secret_keys,
                    pack_label=POLICY_PACK_DIR,
                )
            )
        yield opened


def _outcome(session: PolicySession, plan: Plan, mutation: Mutation) -> Outcome:
    """The mutation applied to a copy of ``plan`` and sent through ``session``: ``Analyze`` for
    the resources it touched, one ``AnalyzeStack`` for the whole mutated stack."""
    outcome = Outcome(mutation)
    draft = Draft(plan)
    try:
        mutation.apply(draft)
    except (AssertionError, KeyError, IndexError, TypeError) as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
        return outcome
    report = session.check(draft.plan(), analyze=draft.touched)
    outcome.touched = list(draft.touched)
    outcome.diagnostics = report.diagnostics
    outcome.analyzed = report.resources_analyzed
    return outcome


@dataclass
class StackRun:
    baseline: PolicyReport
    """The unmutated stack, every resource analyzed."""
    outcomes: list[Outcome]
    """The mutations of this stack."""
    production_only: list[Outcome]
    """In staging: the prod mutations (rules only production must meet) applied here."""


def _run_stack(session: PolicySession, plan: Plan) -> StackRun:
    return StackRun(
        baseline=session.check(plan),
        outcomes=[_outcome(session, plan, m) for m in MUTATIONS if m.stack == plan.stack],
        production_only=[
            _outcome(session, plan, m) for m in MUTATIONS if m.stack == PROD != plan.stack
        ],
    )


@pytest.fixture(scope="module")
def runs(sessions: dict[str, PolicySession], plans: dict[str, Plan]) -> dict[str, StackRun]:
    """Each stack's requests, sent to its own pack process; the stacks side by side (each
    process answers one request at a time, so a thread per stack halves the waiting)."""
    with ThreadPoolExecutor(max_workers=len(STACKS_USED)) as pool:
        futures = {
            name: pool.submit(_run_stack, sessions[name], plans[name]) for name in STACKS_USED
        }
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="module")
def outcomes(runs: dict[str, StackRun]) -> dict[str, Outcome]:
    found = {o.mutation.policy: o for run in runs.values() for o in run.outcomes}
    return {m.policy: found[m.policy] for m in MUTATIONS}


# ---- the tests -----------------------------------------------------------------------------


def test_one_mutation_per_policy_of_the_pack(sessions: dict[str, PolicySession]) -> None:
    ids = [m.policy for m in MUTATIONS]
    assert len(ids) == len(set(ids)), "one mutation per policy"
    assert set(ids) == {p.name for p in ALL_POLICIES}
    for session in sessions.values():
        assert set(ids) == {p.name for p in session.info.policies}, "what the process serves"


@pytest.mark.parametrize("stack", STACKS_USED)
def test_baseline_reports_nothing(
    stack: str, runs: dict[str, StackRun], plans: dict[str, Plan]
) -> None:
    """The unmutated stack, every resource analyzed: nothing reported (not even a policy that
    cannot run during preview)."""
    report = runs[stack].baseline
    assert report.resources_analyzed == len(plans[stack].resources) + 1  # and the stack itself
    assert [d.to_json() for d in report.diagnostics] == []


def test_production_only_rules_stay_quiet_in_staging(runs: dict[str, StackRun]) -> None:
    """The prod mutations, applied to staging (whose policy config says production: false)."""
    quiet = runs[STAGING].production_only
    assert {o.mutation.policy for o in quiet} == {"rds-multi-az", "rds-deletion-protection"}
    for outcome in quiet:
        assert outcome.error is None and outcome.diagnostics == [], outcome.describe()


@pytest.mark.parametrize("policy", list(BY_POLICY))
def test_mutation_is_reported_by_its_policy_alone(
    policy: str, outcomes: dict[str, Outcome]
) -> None:
    outcome = outcomes[policy]
    mutation = outcome.mutation
    assert outcome.error is None, outcome.describe()
    assert outcome.analyzed == len(outcome.touched), "Analyze only for what was touched"
    assert outcome.reported == {policy}, outcome.describe()
    assert outcome.subjects == {mutation.subject}, outcome.describe()
    assert outcome.caught


def test_mutations_leave_the_captured_plans_alone(plans: dict[str, Plan]) -> None:
    """Every mutation edits its own deep copy: the session's plans, which other test modules
    share, are as captured."""
    before = {
        name: copy.deepcopy([(r.inputs, r.outputs) for r in plans[name].resources])
        for name in STACKS_USED
    }
    for mutation in MUTATIONS:
        mutation.apply(Draft(plans[mutation.stack]))
    for name in STACKS_USED:
        assert [(r.inputs, r.outputs) for r in plans[name].resources] == before[name]


def test_added_resources_are_documented() -> None:
    added = {m.policy for m in MUTATIONS if m.added}
    assert added == {"k8s-cronjob-hygiene", "k8s-no-helm-release"}
    assert all(m.what.startswith("added: ") == m.added for m in MUTATIONS)


def test_mutation_count(outcomes: dict[str, Outcome], capsys: pytest.CaptureFixture[str]) -> None:
    caught = sum(o.caught for o in outcomes.values())
    line = f"policy mutations: {caught}/{len(outcomes)} caught, {len(ALL_POLICIES)} policies"
    with capsys.disabled():
        print(f"\n{line}")
    missed = [o.describe() for o in outcomes.values() if not o.caught]
    assert caught == len(outcomes) == len(ALL_POLICIES), "\n".join(missed)


# ---- the node-agent exemption, on the real node-exporter DaemonSet -------------------------

DAEMON_SET = "kubernetes:apps/v1:DaemonSet"
NODE_EXPORTER = "monitoring-node-exporter-daemonset"
"""node-exporter's DaemonSet (namespace node-exporter, the one node-agent namespace)."""
HOST_POLICIES = frozenset({"k8s-pss-host-namespaces", "k8s-pss-host-path"})


@dataclass(frozen=True)
class AgentMutation:
    """A change that makes the real node agent more than one (or moves it out of its
    namespace): the host policies refuse it again, with the policies that guard the changed
    property anyway."""

    what: str
    apply: Callable[[Draft], None]
    also: frozenset[str] = frozenset()


def _agent_set(path: PropertyPath, value: Any) -> Callable[[Draft], None]:
    return lambda d: d.set(DAEMON_SET, NODE_EXPORTER, path, value)


AGENT_MUTATIONS = [
    AgentMutation(
        "the host root mounted writable",
        _agent_set((*CONTAINER, "volumeMounts", 2, "readOnly"), False),
    ),
    AgentMutation(
        "the node-exporter container privileged",
        _agent_set((*SECURITY, "privileged"), True),
        frozenset({"k8s-pss-privileged"}),
    ),
    AgentMutation("hostIPC on the pod", _agent_set((*POD, "hostIPC"), True)),
    AgentMutation(
        "the root volume pointed at /var/run instead of /",
        _agent_set((*POD, "volumes", 2, "hostPath", "path"), "/var/run"),
    ),
    AgentMutation(
        "SYS_ADMIN added to the container",
        _agent_set((*SECURITY, "capabilities", "add"), ["SYS_ADMIN"]),
        frozenset({"k8s-drop-all-caps"}),
    ),
    AgentMutation(
        "the same DaemonSet moved to the monitoring namespace",
        _agent_set(("metadata", "namespace"), "monitoring"),
    ),
]


@pytest.mark.parametrize("mutation", AGENT_MUTATIONS, ids=[m.what for m in AGENT_MUTATIONS])
def test_the_node_agent_exemption_covers_only_a_node_agent_in_its_namespace(
    mutation: AgentMutation, sessions: dict[str, PolicySession], plans: dict[str, Plan]
) -> None:
    """Through the real analyzer with the stack's config: the unmutated DaemonSet is part of
    the silent baseline; each mutation brings back the host policies' refusal, on it alone."""
    draft = Draft(plans[STAGING])
    mutation.apply(draft)
    report = sessions[STAGING].check(draft.plan(), analyze=draft.touched)
    assert {d.policy_name for d in report.diagnostics} == HOST_POLICIES | mutation.also
    assert {d.resource_name for d in report.diagnostics} == {NODE_EXPORTER}
