"""The backup CronJobs (components/backups/backups.py) for both stacks: their hygiene and
schedules from settings, the restricted pods and the program's environment, each job's own
service account and IRSA policy (no delete, every write under its own prefix, the restore test
read-only), their NetworkPolicies, ElastiCache's grant on the backups bucket and key, the
retention of each backup prefix against the seed and the stack files, and the policy pack over
the backups' objects through the real analyzer."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from typing import Any

import pytest
import yaml

from components.app.pod_spec import CREDENTIALS_DIR
from components.aws.keys import elasticache_export_key_statement
from components.aws.storage import elasticache_export_grant
from components.backups import iam
from components.backups.backups import (
    DAILY_DEADLINE_SECONDS,
    HISTORY_LIMIT,
    RESTORE_TEST_DEADLINE_SECONDS,
    STARTING_DEADLINE_SECONDS,
)
from components.settings import StackSettings
from components.settings.cron import cron_schedule
from components.settings.parsers import InvalidValueError
from components.settings.subnets import Tier, plan_subnets
from tests.conftest import component_plan, key_arn, only
from tools.analyzer.session import run_policy_check
from tools.mocks import CapturedResource
from tools.plan import Plan
from tools.preview import REPO_ROOT

BACKUPS = "exposcholar:backups:Backups"
CRON_JOB = "kubernetes:batch/v1:CronJob"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
NS = "exposcholar"
JOBS = {
    # job: (args, own prefix written, reads the database Secret)
    "backup-postgres": (["backup", "postgres"], "postgresql", True),
    "backup-redis": (["backup", "redis"], "redis", False),
    "backup-media": (["backup", "media"], "application", False),
    "restore-test": (["restore-test"], None, False),  # its own throw-away servers
}
SEED_RETENTION = {"postgresql": 30, "redis": 7, "application": 30}
"""What the seed kept (issue 14): PostgreSQL 30 days, Redis 7, media 30."""
RETENTION_KEYS = {
    "postgresql": "backupPostgresRetentionDays",
    "redis": "backupRedisRetentionDays",
    "application": "backupApplicationRetentionDays",
}
COMMON_ENV = {"BACKUP_BUCKET", "AWS_REGION", "BACKUP_JOB_NAME", "BACKUP_SCRATCH"}
DATABASE_ENV = {
    "DATABASE_HOST", "DATABASE_PORT", "DATABASE_NAME", "DATABASE_SSLMODE",
    "DATABASE_CREDENTIALS_DIR",
}  # fmt: skip
ENV = {
    "backup-postgres": COMMON_ENV | DATABASE_ENV,
    "backup-redis": COMMON_ENV | {"REDIS_REPLICATION_GROUP"},
    "backup-media": COMMON_ENV | {"MEDIA_BUCKET"},
    "restore-test": COMMON_ENV | {"RESTORE_TEST_JOBS"},
}
WRITES = {"s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}
READS = {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "kms:Decrypt"}


@pytest.fixture
def backups(plan: Plan) -> Plan:
    return component_plan(plan, BACKUPS)


def cron_jobs(backups: Plan) -> dict[str, dict[str, Any]]:
    return {r.inputs["metadata"]["name"]: r.inputs for r in backups.of_type(CRON_JOB)}


def job_spec(cron_job: dict[str, Any]) -> dict[str, Any]:
    return dict(cron_job["spec"]["jobTemplate"]["spec"])


def pod(cron_job: dict[str, Any]) -> dict[str, Any]:
    return dict(job_spec(cron_job)["template"]["spec"])


def env_of(cron_job: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod(cron_job)["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def role_policy(backups: Plan, job: str) -> dict[str, Any]:
    (policy,) = [r for r in backups.of_type(ROLE_POLICY) if r.name.startswith(f"backups-{job}-")]
    return dict(json.loads(policy.inputs["policy"]))


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {**s, "Action": _listed(s["Action"]), "Resource": _listed(s["Resource"])}
        for s in document["Statement"]
    ]


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


# --- the CronJobs -----------------------------------------------------------------------------


def test_four_cron_jobs_run_the_backup_image_on_their_schedules(
    backups: Plan, plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings[plan.stack].backups
    found = cron_jobs(backups)
    assert set(found) == set(JOBS)
    schedules = {
        "backup-postgres": settings.postgres_schedule.text,
        "backup-redis": settings.redis_schedule.text,
        "backup-media": settings.media_schedule.text,
        "restore-test": settings.restore_test.schedule.text,
    }
    for name, cron_job in found.items():
        assert cron_job["metadata"]["namespace"] == NS
        assert cron_job["spec"]["schedule"] == schedules[name]
        assert cron_job["spec"]["timeZone"] == "Etc/UTC"
        (container,) = pod(cron_job)["containers"]
        assert container["image"] == plan.outputs["images"]["backup"]
        assert "@sha256:" in container["image"]
        assert "command" not in container  # the image's ENTRYPOINT is the program
        assert container["args"] == JOBS[name][0]
    assert sorted(plan.outputs["backupCronJobs"]) == sorted(JOBS)


def test_cron_job_hygiene(backups: Plan) -> None:
    for name, cron_job in cron_jobs(backups).items():
        spec = cron_job["spec"]
        assert spec["concurrencyPolicy"] == "Forbid", name
        assert spec["startingDeadlineSeconds"] == STARTING_DEADLINE_SECONDS
        assert spec["successfulJobsHistoryLimit"] == spec["failedJobsHistoryLimit"] == HISTORY_LIMIT
        assert spec["suspend"] is False
        job = job_spec(cron_job)
        assert 0 < job["backoffLimit"] <= 3
        deadline = (
            RESTORE_TEST_DEADLINE_SECONDS if name == "restore-test" else DAILY_DEADLINE_SECONDS
        )
        assert job["activeDeadlineSeconds"] == deadline
        # a run ends well before the next one, which Forbid would otherwise skip
        assert job["activeDeadlineSeconds"] < 24 * 3600
        # finished Jobs stay long enough to read a failure after a weekend, then go
        assert 3 * 24 * 3600 <= job["ttlSecondsAfterFinished"] <= 8 * 24 * 3600
        assert pod(cron_job)["restartPolicy"] == "Never"  # podFailurePolicy requires it
        fail, ignore = job["podFailurePolicy"]["rules"]
        assert fail == {
            "action": "FailJob",
            "onExitCodes": {"containerName": "backup", "operator": "In", "values": [2, 3]},
        }
        assert ignore == {
            "action": "Ignore",
            "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
        }
        template = job["template"]["metadata"]
        assert template["labels"]["app.kubernetes.io/name"] == name
        assert template["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"


def test_pods_are_restricted_with_writable_tmp_and_scratch(
    backups: Plan, plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings[plan.stack].backups
    for name, cron_job in cron_jobs(backups).items():
        spec = pod(cron_job)
        assert spec["automountServiceAccountToken"] is False
        assert spec["serviceAccountName"] == name
        assert spec["securityContext"] == {
            "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        }  # fmt: skip
        assert spec["nodeSelector"] == {"exposcholar.io/pool": "app"}
        (container,) = spec["containers"]
        assert container["securityContext"] == {
            "runAsNonRoot": True, "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }  # fmt: skip
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes[mounts["/tmp"]]["emptyDir"]["sizeLimit"] == "1Gi"  # noqa: S108
        scratch = volumes[mounts["/scratch"]]
        if name == "restore-test":
            claim = scratch["ephemeral"]["volumeClaimTemplate"]["spec"]
            assert claim["storageClassName"] == "gp3"
            assert claim["accessModes"] == ["ReadWriteOnce"]
            size = settings.restore_test.scratch_gi
            assert claim["resources"]["requests"] == {"storage": f"{size}Gi"}
        else:
            assert scratch["emptyDir"] == {"sizeLimit": f"{settings.scratch_gi}Gi"}
        types = {key for volume in volumes.values() for key in volume if key != "name"}
        assert types <= {"emptyDir", "ephemeral", "secret"}, types


def test_resources_come_from_settings(
    backups: Plan, plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings[plan.stack].backups
    for name, cron_job in cron_jobs(backups).items():
        (container,) = pod(cron_job)["containers"]
        resources = container["resources"]
        if name == "restore-test":
            restore = settings.restore_test
            size = {"cpu": restore.cpu.text, "memory": restore.memory.text,
                    "ephemeral-storage": "1Gi"}  # fmt: skip
            assert resources == {"requests": size, "limits": size}  # Guaranteed QoS
            assert env_of(cron_job)["RESTORE_TEST_JOBS"] == str(max(1, restore.cpu.base // 1000))
        else:
            ephemeral = f"{settings.scratch_gi + 1}Gi"
            assert resources == {
                "requests": {**settings.resources.requests(), "ephemeral-storage": ephemeral},
                "limits": {**settings.resources.limits(), "ephemeral-storage": ephemeral},
            }


def test_environment_is_the_programs_contract(backups: Plan, plan: Plan) -> None:
    database = only(plan, "aws:rds/instance:Instance").outputs
    group = only(plan, "aws:elasticache/replicationGroup:ReplicationGroup").outputs
    for name, cron_job in cron_jobs(backups).items():
        env = env_of(cron_job)
        assert set(env) == ENV[name], name
        assert env["BACKUP_JOB_NAME"] == {
            "fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}
        }
        assert env["BACKUP_BUCKET"] == plan.outputs["backupsBucket"]
        assert env["AWS_REGION"] == plan.outputs["region"]
        assert env["BACKUP_SCRATCH"] == "/scratch"
        if "DATABASE_HOST" in env:
            assert env["DATABASE_HOST"] == database["address"]
            assert env["DATABASE_PORT"] == "5432"
            assert env["DATABASE_NAME"] == plan.outputs["databaseName"]
            assert env["DATABASE_SSLMODE"] == "verify-full"
            assert env["DATABASE_CREDENTIALS_DIR"] == CREDENTIALS_DIR
        if name == "backup-redis":
            assert env["REDIS_REPLICATION_GROUP"] == group["replicationGroupId"]
        if name == "backup-media":
            assert env["MEDIA_BUCKET"] == plan.outputs["mediaBucket"]
        assert not any(key.endswith(("PASSWORD", "TOKEN", "SECRET")) for key in env)


def test_only_the_database_jobs_mount_its_credentials(backups: Plan) -> None:
    for name, cron_job in cron_jobs(backups).items():
        spec = pod(cron_job)
        (container,) = spec["containers"]
        secrets = [v for v in spec["volumes"] if "secret" in v]
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        if JOBS[name][2]:
            (volume,) = secrets
            assert volume["secret"] == {"secretName": "database-credentials", "defaultMode": 0o440}
            assert mounts[volume["name"]]["mountPath"] == CREDENTIALS_DIR
            assert mounts[volume["name"]]["readOnly"] is True
        else:
            assert secrets == [], name


# --- identities -------------------------------------------------------------------------------


def test_each_job_has_its_own_token_less_account_and_irsa_role(backups: Plan) -> None:
    accounts = {
        r.inputs["metadata"]["name"]: r
        for r in backups.of_type("kubernetes:core/v1:ServiceAccount")
    }
    roles = {r.name: r for r in backups.of_type("aws:iam/role:Role")}
    assert set(accounts) == set(JOBS)
    assert len(roles) == len(JOBS)
    for job, account in accounts.items():
        assert account.inputs["automountServiceAccountToken"] is False
        role = roles[f"backups-{job}-role"]
        annotations = account.inputs["metadata"]["annotations"]
        assert annotations["eks.amazonaws.com/role-arn"] == role.outputs["arn"]
        assert annotations["eks.amazonaws.com/sts-regional-endpoints"] == "true"
        trust = json.loads(role.inputs["assumeRolePolicy"])
        (condition,) = [s["Condition"]["StringEquals"] for s in trust["Statement"]]
        subjects = [v for k, v in condition.items() if k.endswith(":sub")]
        assert subjects == [f"system:serviceaccount:{NS}:{job}"]
    # no Kubernetes RBAC at all: the jobs never call the Kubernetes API
    assert not [r for r in backups.resources if "rbac.authorization.k8s.io" in r.type]


def _s3_resources(statement: dict[str, Any]) -> list[str]:
    return [r for r in statement["Resource"] if r.startswith("arn:aws:s3:::")]


def policy_problems(document: dict[str, Any], bucket: str, own: str | None) -> list[str]:
    """What breaks the backups' IAM rules in ``document``: a wildcard or delete action (bar the
    Redis job's own ElastiCache snapshots), an S3 write outside ``own/`` of the backups bucket,
    any write for a job that owns no prefix, a listing without its prefix condition, a key used
    other than through a named service."""
    problems = []
    for s in statements(document):
        for action in s["Action"]:
            if "*" in action:
                problems.append(f"{s['Sid']}: wildcard action {action}")
            if "Delete" in action and action != "elasticache:DeleteSnapshot":
                problems.append(f"{s['Sid']}: deletes ({action})")
            if action == "elasticache:DeleteSnapshot" and not all(
                r.endswith("-backup-*") for r in s["Resource"]
            ):
                problems.append(f"{s['Sid']}: deletes snapshots it did not make")
        writes = WRITES & set(s["Action"])
        if writes and own is None:
            problems.append(f"{s['Sid']}: writes {sorted(writes)} but owns no prefix")
        if writes and s["Resource"] != [f"arn:aws:s3:::{bucket}/{own}/*"]:
            problems.append(f"{s['Sid']}: writes to {s['Resource']}")
        if "s3:ListBucket" in s["Action"] and f"arn:aws:s3:::{bucket}" in s["Resource"]:
            prefixes = s.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
            if not prefixes:
                problems.append(f"{s['Sid']}: lists the whole backups bucket")
        uses_key = any(a.startswith("kms:") for a in s["Action"])
        if uses_key and "kms:ViaService" not in s.get("Condition", {}).get("StringEquals", {}):
            problems.append(f"{s['Sid']}: uses a key directly")
    return problems


def test_every_role_writes_only_its_own_prefix_and_deletes_nothing(backups: Plan) -> None:
    bucket = _bucket(backups)
    for job, (_, own, _) in JOBS.items():
        document = role_policy(backups, job)
        assert policy_problems(document, bucket, own) == [], job
        written = {
            r.removeprefix(f"arn:aws:s3:::{bucket}/")
            for s in statements(document) if WRITES & set(s["Action"])
            for r in _s3_resources(s)
        }  # fmt: skip
        assert written == ({f"{own}/*"} if own else set()), job


def _bucket(backups: Plan) -> str:
    (cron_job, *_) = cron_jobs(backups).values()
    return str(env_of(cron_job)["BACKUP_BUCKET"])


def test_the_restore_test_only_reads(backups: Plan) -> None:
    bucket = _bucket(backups)
    document = role_policy(backups, "restore-test")
    actions = {a for s in statements(document) for a in s["Action"]}
    assert actions == READS
    read = {r for s in statements(document) if "s3:GetObject" in s["Action"] for r in s["Resource"]}
    assert read == {f"arn:aws:s3:::{bucket}/{p}/*" for p in ("postgresql", "redis", "application")}


def test_the_redis_role_reaches_only_its_replication_group(backups: Plan, plan: Plan) -> None:
    group = only(plan, "aws:elasticache/replicationGroup:ReplicationGroup").outputs
    group_id = group["replicationGroupId"]
    document = role_policy(backups, "backup-redis")
    elasticache = [
        r for s in statements(document)
        if any(a.startswith("elasticache:") for a in s["Action"]) for r in s["Resource"]
    ]  # fmt: skip
    assert elasticache
    for resource in elasticache:
        name = resource.split(":", 6)[-1]  # arn:aws:elasticache:<region>:<account>:<type>:<name>
        assert group_id in name or name == "redis/*", resource
    (key,) = [s for s in statements(document) if s["Sid"] == "CacheKeyThroughElastiCache"]
    assert key["Resource"] == [key_arn(plan, "data")]


def test_the_media_role_reads_the_media_bucket_with_its_key(backups: Plan, plan: Plan) -> None:
    media = f"arn:aws:s3:::{plan.outputs['mediaBucket']}"
    document = role_policy(backups, "backup-media")
    (read,) = [s for s in statements(document) if s["Sid"] == "ReadMedia"]
    assert read["Action"] == ["s3:GetObject"] and read["Resource"] == [f"{media}/*"]
    (key,) = [s for s in statements(document) if s["Sid"] == "MediaKey"]
    assert key["Action"] == ["kms:Decrypt"] and key["Resource"] == [key_arn(plan, "storage")]
    (backups_key,) = [s for s in statements(document) if s["Sid"] == "BackupsKey"]
    assert backups_key["Resource"] == [key_arn(plan, "backups")]


@pytest.mark.parametrize(
    ("breakage", "found"),
    [
        (lambda s: s.update(Resource=["arn:aws:s3:::b/*"]) if "Write" in s["Sid"] else None,
         "writes to"),
        (lambda s: s.update(Action=[*s["Action"], "s3:DeleteObject"]), "deletes"),
        (lambda s: s.update(Action=["s3:*"]) if "Read" in s["Sid"] else None, "wildcard"),
        (lambda s: s.pop("Condition", None) if "List" in s["Sid"] else None,
         "lists the whole backups bucket"),
        (lambda s: s.pop("Condition", None) if s["Sid"] == "BackupsKey" else None,
         "uses a key directly"),
    ],
)  # fmt: skip
def test_the_policy_rules_catch_a_broken_grant(breakage: Any, found: str) -> None:
    """The checks above are not vacuous: each breaks on one seeded weakness."""
    arn = "arn:aws:s3:::b"
    document = json.loads(iam.postgres_policy(arn, "arn:aws:kms:eu-west-1:1:key/k", "eu-west-1"))
    assert policy_problems(document, "b", "postgresql") == []
    for statement in document["Statement"]:
        breakage(statement)
    assert any(found in problem for problem in policy_problems(document, "b", "postgresql"))
    restore = json.loads(iam.restore_test_policy(arn, "k", "eu-west-1"))
    restore["Statement"].append(
        {"Sid": "X", "Effect": "Allow", "Action": ["s3:PutObject"], "Resource": [f"{arn}/x/*"]}
    )
    assert any("owns no prefix" in p for p in policy_problems(restore, "b", None))


# --- network ----------------------------------------------------------------------------------


def test_network_policies_no_ingress_and_only_what_each_job_needs(
    backups: Plan, stack_settings: dict[str, StackSettings], plan: Plan
) -> None:
    policies = {
        r.inputs["metadata"]["name"]: r.inputs["spec"]
        for r in backups.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    }
    assert set(policies) == {f"allow-{job}" for job in JOBS}
    network = stack_settings[plan.stack].network
    isolated = {
        p.cidr for p in plan_subnets(network.vpc_cidr, network.availability_zones,
                                     network.subnet_prefixes)
        if p.tier is Tier.ISOLATED
    }  # fmt: skip
    for job in JOBS:
        spec = policies[f"allow-{job}"]
        assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == job
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        assert spec["ingress"] == []
        egress = {
            (peer["ipBlock"]["cidr"], port["port"])
            for rule in spec["egress"] for peer in rule["to"] for port in rule["ports"]
        }  # fmt: skip
        https = {("0.0.0.0/0", 443)}
        if job == "backup-postgres":
            database = egress - https
            assert {port for _, port in database} == {5432}
            assert {cidr for cidr, _ in database} == isolated
        else:
            assert egress == https, job


# --- ElastiCache's export grant -----------------------------------------------------------------


def test_elasticache_may_export_into_redis_only(plan: Plan) -> None:
    storage = component_plan(plan, "exposcholar:data:Storage")
    (bucket,) = [b for b in storage.of_type("aws:s3/bucket:Bucket") if b.name == "storage-backups"]
    (policy,) = [
        p for p in storage.of_type("aws:s3/bucketPolicy:BucketPolicy")
        if p.name == "storage-backups-policy"
    ]  # fmt: skip
    document = json.loads(policy.inputs["policy"])
    (grant,) = [s for s in document["Statement"] if s["Principal"] != "*"]
    assert grant == elasticache_export_grant("eu-west-1", bucket.id or "")
    assert grant["Principal"] == {"Service": "eu-west-1.elasticache-snapshot.amazonaws.com"}
    objects = [r for r in grant["Resource"] if "/" in r.removeprefix("arn:aws:s3:::")]
    assert objects == [f"arn:aws:s3:::{bucket.id}/redis/*"]
    keys = component_plan(plan, "exposcholar:security:Keys")
    (key,) = [k for k in keys.of_type("aws:kms/key:Key") if k.name == "keys-backups"]
    key_policy = json.loads(key.inputs["policy"])
    (statement,) = [s for s in key_policy["Statement"] if "Service" in s["Principal"]]
    assert statement == elasticache_export_key_statement("eu-west-1", bucket.id or "")
    context = statement["Condition"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"]
    assert context == [f"arn:aws:s3:::{bucket.id}", f"arn:aws:s3:::{bucket.id}/redis/*"]
    assert statement["Condition"]["StringEquals"] == {
        "kms:ViaService": "s3.eu-west-1.amazonaws.com"
    }
    # no other key admits the principal
    for other in keys.of_type("aws:kms/key:Key"):
        if other is not key:
            assert "elasticache-snapshot" not in other.inputs["policy"]


# --- retention per prefix (issue 14, point 3) ---------------------------------------------------


def _stack_file(stack: str) -> dict[str, Any]:
    document = yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())
    return dict(document["config"])


def _expiry_days(plan: Plan, label: str) -> dict[str, int]:
    storage = component_plan(plan, "exposcholar:data:Storage")
    (lifecycle,) = [
        r for r in storage.of_type(
            "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
        ) if r.name == f"storage-{label}-lifecycle"
    ]  # fmt: skip
    return {
        rule["filter"]["prefix"].rstrip("/"): rule["expiration"]["days"]
        for rule in lifecycle.inputs["rules"]
        if rule["id"].endswith("-expiry") and rule["filter"]["prefix"]
    }


def test_retention_per_prefix_matches_the_seed_unless_the_stack_file_says_less(
    plan: Plan, stack_settings: dict[str, StackSettings]
) -> None:
    declared = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())["config"]
    stack_file = _stack_file(plan.stack)
    labels = ["backups"] + (["backups-replica"] if plan.stack == "prod" else [])
    for label in labels:
        rendered = _expiry_days(plan, label)
        assert set(rendered) == set(SEED_RETENTION), label
        for prefix, seed in SEED_RETENTION.items():
            key = RETENTION_KEYS[prefix]
            assert declared[key]["default"] == seed  # the project's default is the seed
            given = stack_file[f"exposcholar:{key}"]  # every stack file says it explicitly
            assert rendered[prefix] == given, (label, prefix)
            if stack_settings[plan.stack].is_production:
                assert rendered[prefix] == seed, (label, prefix)
            else:
                assert rendered[prefix] <= seed, (label, prefix)


def test_object_lock_ends_before_every_expiry(plan: Plan) -> None:
    storage = component_plan(plan, "exposcholar:data:Storage")
    locks = storage.of_type("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    if plan.stack != "prod":
        assert locks == []
        return
    (lock,) = locks
    days = lock.inputs["rule"]["defaultRetention"]["days"]
    assert 0 < days < min(_expiry_days(plan, "backups").values())


# --- the policy pack over the backups' objects ---------------------------------------------------


def _of_backups(urn: str) -> bool:
    return "exposcholar:backups:Backups" in urn


@pytest.fixture
def pack_config(plan: Plan) -> Any:
    return REPO_ROOT / "policies" / "config" / f"{plan.stack}.json"


def test_the_policy_pack_passes_the_backups_and_catches_a_broken_cron_job(
    plan: Plan, pack_config: Any
) -> None:
    report = run_policy_check(plan, REPO_ROOT / "policies", config_file=pack_config)
    on_backups = [d for d in report.diagnostics if _of_backups(d.urn)]
    assert on_backups == [], [(d.policy_name, d.resource_name, d.message) for d in on_backups]
    assert report.resources_analyzed >= len(plan.resources)
    # the same stack with one CronJob that may pile up and one pod that runs as root
    broken: list[CapturedResource] = []
    for resource in plan.resources:
        if resource.type != CRON_JOB or resource.inputs["metadata"]["name"] != "backup-media":
            broken.append(resource)
            continue
        inputs = json.loads(json.dumps(resource.inputs))
        inputs["spec"]["concurrencyPolicy"] = "Allow"
        pod_spec = inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        pod_spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
        broken.append(dataclasses.replace(resource, inputs=inputs))
    variant = Plan(plan.project, plan.stack, plan.stack_urn, broken, plan.outputs)
    report = run_policy_check(variant, REPO_ROOT / "policies", config_file=pack_config)
    found = {(d.policy_name, d.resource_name) for d in report.diagnostics if _of_backups(d.urn)}
    assert found == {
        ("k8s-cronjob-hygiene", "backups-backup-media"),
        ("k8s-readonly-rootfs", "backups-backup-media"),
    }


# --- schedules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule",
    ["30 3 * * *", "0 6 * * 1", "*/15 * * * *", "0 0-6/2 * * mon-fri", "0 4 1,15 jan,jul ?",
     "@daily", "@weekly", "5 4 * * SUN"],
)  # fmt: skip
def test_schedules_the_controller_accepts(schedule: str) -> None:
    assert cron_schedule(schedule).text == schedule


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [("60 * * * *", "minute field takes 0-59"), ("0 24 * * *", "hour field takes 0-23"),
     ("0 0 0 * *", "day of month field takes 1-31"), ("0 0 * 13 *", "month field takes 1-12"),
     ("0 0 * * 1 2", "got 6 field(s)"), ("? 0 * * *", "only for the day fields"),
     ("CRON_TZ=UTC 0 0 * * *", "without a TZ= prefix"), ("0 0 * * mon-", "has 'mon-'")],
)  # fmt: skip
def test_schedules_the_controller_refuses(schedule: str, expected: str) -> None:
    with pytest.raises(InvalidValueError) as caught:
        cron_schedule(schedule)
    assert expected in caught.value.expected


def test_backup_urns_are_unique_and_named_from_the_component(backups: Plan) -> None:
    """Every backup object's URN is unique and named from the component's name."""
    names = [r.urn.rsplit("::", 1)[1] for r in backups.resources]
    assert len(names) == len(set(names))
    assert all(fnmatch.fnmatch(n, "backups*") for n in names), names
