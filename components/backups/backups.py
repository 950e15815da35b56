"""``Backups``: the scheduled backups and the weekly restore test, as CronJobs running the
``backup`` image (``components/backups/program``) in the application's namespace.

Creates, per job (``backup-postgres``, ``backup-redis``, ``backup-media`` daily and
``restore-test`` weekly, schedules from settings, in UTC):

- a ServiceAccount with no Kubernetes API token and its own IRSA role, whose inline policy
  (``components.backups.iam``) writes only the job's own prefix of the backups bucket and
  deletes nothing;
- a CronJob that never overlaps itself, starts late at most ``STARTING_DEADLINE_SECONDS``,
  retries a failed pod a bounded number of times but never a run that failed on bad input or
  a corrupt backup (exit codes 2 and 3), gives up after a deadline and keeps a
  short history; its pod is ``restricted`` (uid 10001, read-only root, no capabilities,
  RuntimeDefault seccomp) with emptyDirs for ``/tmp`` and ``/scratch`` (the restore test's
  scratch is a gp3 volume made for the pod: a restored database does not fit a node's disk);
- a NetworkPolicy: no ingress; HTTPS to the AWS APIs (S3 through the gateway endpoint, STS,
  ElastiCache); PostgreSQL for ``backup-postgres`` only. The restore test's PostgreSQL and Redis
  run inside its pod, on loopback.

Why the application's namespace: the ``backup-postgres`` pod mounts the
``database-credentials`` Secret the External Secrets Operator keeps there (a pod can mount only
Secrets of its own namespace), and its quota and default-deny policies then cover the backups.
The database admits the pods because they run on the app nodes, whose security group it allows
(``network.data_placement``: the VPC CNI gives pods the node's security groups).

IRSA without a Kubernetes token: ``automountServiceAccountToken: false`` removes only the API
token volume. The EKS pod identity webhook sees the ``eks.amazonaws.com/role-arn`` annotation
of the pod's service account and adds its own projected token (audience ``sts.amazonaws.com``)
and ``AWS_ROLE_ARN``/``AWS_WEB_IDENTITY_TOKEN_FILE`` to the pod, which the AWS SDKs use; the
``sts-regional-endpoints`` annotation makes them call the regional STS (the VPC's interface
endpoint) rather than the global one. The projected token is readable by the pod's non-root
user because the pod sets ``fsGroup`` (aws/amazon-eks-pod-identity-webhook#8: without it, a
non-root container cannot read the token).

The program's contract: each pod gets ``BACKUP_BUCKET``, ``AWS_REGION``, ``BACKUP_SCRATCH`` and
``BACKUP_JOB_NAME`` (the Job's name, ``<cronjob>-<minutes since the epoch of the scheduled
time>``, from the pod's ``batch.kubernetes.io/job-name`` label: a retried or repeated run of one
schedule writes the same keys), plus the database's (``DATABASE_*``, credentials as files under
``DATABASE_CREDENTIALS_DIR``, as the server reads them), ``REDIS_REPLICATION_GROUP``,
``MEDIA_BUCKET`` or ``RESTORE_TEST_JOBS`` as the job needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.app.credentials import DATABASE_READER
from components.app.pod_spec import CREDENTIALS_DIR
from components.app.scope import NAMESPACE, AppScope
from components.app.workloads import Workloads
from components.aws.database import DatabaseConnection
from components.aws.storage import AppBuckets
from components.backups import iam
from components.lib.component import Component
from components.lib.irsa import OidcIssuer, irsa_role
from components.lib.kube.network_policies import Allowance, Peer, Port, allow
from components.lib.kube.pods import (
    app_pool,
    container_security_context,
    pod_security_context,
    writable,
)
from components.lib.naming import Naming
from components.settings import BackupSettings, Schedule

COMPONENT = "backups"
CONTAINER = "backup"
POSTGRES, REDIS, MEDIA, RESTORE_TEST = (
    "backup-postgres", "backup-redis", "backup-media", "restore-test",
)  # fmt: skip
"""The CronJobs, their service accounts, roles, labels and NetworkPolicies."""
SCRATCH_DIR = "/scratch"
TMP_SIZE = "1Gi"
TIME_ZONE = "Etc/UTC"
"""``spec.timeZone`` (batch/v1 since Kubernetes 1.27): schedules are read in UTC, whatever the
controller's own zone."""
STARTING_DEADLINE_SECONDS = 3600
"""A run that could not start within an hour of its time (controller down, no node) is
skipped, not started late in a pile; it also bounds the missed schedules the controller counts
(over 100 and a CronJob stops being scheduled)."""
BACKOFF_LIMIT = 2
"""Retries of a failed pod (S3 or the database briefly unreachable): three attempts in all."""
DAILY_DEADLINE_SECONDS = 4 * 3600
"""A daily run ends within 4 hours, well before the next one (``Forbid`` would skip it)."""
RESTORE_TEST_DEADLINE_SECONDS = 8 * 3600
DAILY_TTL_SECONDS = 4 * 24 * 3600
"""A finished Job (and its pods' logs) stays 4 days: a failure on Friday night is still there
on Monday; the history limits below bound the count meanwhile."""
WEEKLY_TTL_SECONDS = 8 * 24 * 3600
HISTORY_LIMIT = 3
NO_RETRY_EXIT_CODES = (2, 3)
"""The program's exit codes for bad input or a refused target (2) and for a backup that failed
verification (3): a retry would fail the same way, so the Job fails at once
(``podFailurePolicy``); 1, an operation that failed (S3 or the database unreachable), is
retried."""
TEMP_SPACE_GI = 1
"""Ephemeral storage of a pod besides its scratch: ``/tmp`` and its logs."""
STORAGE_CLASS = "gp3"
"""The cluster's default StorageClass (``components.eks.addons``): encrypted gp3, made in the
pod's zone."""

core = k8s.core.v1
batch = k8s.batch.v1
meta = k8s.meta.v1


@dataclass(frozen=True)
class BackupsArgs:
    settings: BackupSettings
    """Schedules, the daily pods' size, the restore test's size."""
    naming: Naming
    """Names, tags and labels of the stack."""
    region: str
    """The stack's region (the AWS clients, ARNs, ``kms:ViaService``)."""
    account_id: str
    """The stack's account (ElastiCache ARNs)."""
    oidc: OidcIssuer
    """The cluster's OIDC issuer, for the IRSA roles."""
    kubernetes: k8s.Provider
    """The cluster's provider."""
    image: pulumi.Input[str]
    """The ``backup`` image, pinned by digest (its entrypoint is the backup program)."""
    namespace: pulumi.Input[str]
    """The application's namespace, where the database credentials Secret is."""
    database: DatabaseConnection
    """The database: host, port, name (credentials from the namespace's Secret)."""
    cache_group_id: pulumi.Input[str]
    """The ElastiCache replication group the Redis backup snapshots."""
    cache_key_arn: pulumi.Input[str]
    """The key the cache (and so its snapshots) is encrypted with."""
    backups_bucket: pulumi.Input[str]
    """The backups bucket's name."""
    backups_bucket_arn: pulumi.Input[str]
    """The backups bucket's ARN."""
    backups_key_arn: pulumi.Input[str]
    """The backups bucket's key."""
    media: AppBuckets
    """The media bucket (and its key), which the media backup archives."""
    data_cidrs: tuple[str, ...] = ()
    """Where the database is (the isolated subnets)."""


@dataclass(frozen=True)
class _Job:
    """What differs between the four CronJobs."""

    name: str
    args: tuple[str, ...]
    schedule: Schedule
    policy: pulumi.Output[str]
    env: Mapping[str, pulumi.Input[str]]
    resources: core.ResourceRequirementsArgs
    scratch: core.VolumeArgs
    deadline_seconds: int
    ttl_seconds: int
    egress: tuple[Peer, ...]
    reads_database: bool = False


class Backups(Component):
    """The backup CronJobs and the restore test (``depends_on``: ``Workloads``, whose
    namespace, quota and database credentials they use)."""

    TYPE = "exposcholar:backups:Backups"

    cron_jobs: list[pulumi.Output[str]]
    """The CronJobs' names (``kubectl create job --from=cronjob/<name>`` runs one now)."""
    role_arns: dict[str, pulumi.Output[str]]
    """Each job's IRSA role."""

    def __init__(
        self, name: str, args: BackupsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, opts)
        self.require(Workloads, "the namespace, its quota and the database credentials Secret")
        self._name = name
        self._args = args
        self._aws_opts = self.child_opts()
        self._k8s_opts = self.child_opts(provider=args.kubernetes)
        self._scope = AppScope(
            name, pulumi.Output.from_input(args.namespace), args.naming, COMPONENT
        )
        self.cron_jobs = []
        self.role_arns = {}
        for job in _jobs(args):
            self._cron_job(job)
        self.register()

    def _cron_job(self, job: _Job) -> None:
        args, scope = self._args, self._scope
        role = irsa_role(
            f"{self._name}-{job.name}-role",
            opts=self._aws_opts,
            oidc=args.oidc,
            namespace=NAMESPACE,
            service_account=job.name,
            role_name=args.naming.physical(COMPONENT, job.name, max_length=64),
            tags=args.naming.tags(COMPONENT, job.name),
            inline_policy=job.policy,
        )
        account = core.ServiceAccount(
            f"{self._name}-{job.name}-account",
            metadata=meta.ObjectMetaArgs(
                name=job.name,
                namespace=scope.namespace,
                labels=scope.labels(job.name),
                annotations=role.arn.apply(
                    lambda arn: {
                        "eks.amazonaws.com/role-arn": arn,
                        "eks.amazonaws.com/sts-regional-endpoints": "true",
                    }
                ),
            ),
            automount_service_account_token=False,
            opts=self._k8s_opts,
        )
        labels = scope.labels(job.name)
        cron_job = batch.CronJob(
            f"{self._name}-{job.name}",
            metadata=scope.meta(job.name, job.name),
            spec=batch.CronJobSpecArgs(
                schedule=job.schedule.text,
                time_zone=TIME_ZONE,
                concurrency_policy="Forbid",
                starting_deadline_seconds=STARTING_DEADLINE_SECONDS,
                successful_jobs_history_limit=HISTORY_LIMIT,
                failed_jobs_history_limit=HISTORY_LIMIT,
                suspend=False,
                job_template=batch.JobTemplateSpecArgs(
                    metadata=meta.ObjectMetaArgs(labels=labels),
                    spec=batch.JobSpecArgs(
                        backoff_limit=BACKOFF_LIMIT,
                        active_deadline_seconds=job.deadline_seconds,
                        ttl_seconds_after_finished=job.ttl_seconds,
                        pod_failure_policy=_failure_policy(),
                        template=core.PodTemplateSpecArgs(
                            metadata=meta.ObjectMetaArgs(
                                labels=labels,
                                # a run takes hours: scaling a node down must not kill it
                                annotations={
                                    "cluster-autoscaler.kubernetes.io/safe-to-evict": "false"
                                },
                            ),
                            spec=_pod_spec(job, account, args.image),
                        ),
                    ),
                ),
            ),
            opts=self._k8s_opts,
        )
        allow(
            f"{self._name}-netpol-{job.name}",
            Allowance(job.name, scope.selector(job.name), egress=job.egress),
            namespace=scope.namespace,
            naming=args.naming,
            opts=self._k8s_opts,
        )
        self.cron_jobs.append(cron_job.metadata.name)
        self.role_arns[job.name] = role.arn


def _failure_policy() -> batch.PodFailurePolicyArgs:
    """Exit codes 2 and 3 (bad input, a corrupt backup) fail the Job at once; a pod lost to a node
    drain or preemption (``DisruptionTarget``) is retried without counting against
    ``backoffLimit``. Needs ``restartPolicy: Never``."""
    return batch.PodFailurePolicyArgs(
        rules=[
            batch.PodFailurePolicyRuleArgs(
                action="FailJob",
                on_exit_codes=batch.PodFailurePolicyOnExitCodesRequirementArgs(
                    container_name=CONTAINER, operator="In", values=list(NO_RETRY_EXIT_CODES)
                ),
            ),
            batch.PodFailurePolicyRuleArgs(
                action="Ignore",
                on_pod_conditions=[
                    batch.PodFailurePolicyOnPodConditionsPatternArgs(
                        type="DisruptionTarget", status="True"
                    )
                ],
            ),
        ]
    )


def _pod_spec(
    job: _Job, account: core.ServiceAccount, image: pulumi.Input[str]
) -> core.PodSpecArgs:
    tmp_volume, tmp_mount = writable("tmp", "/tmp", size=TMP_SIZE)  # noqa: S108 - an emptyDir
    volumes = [tmp_volume, job.scratch]
    mounts = [tmp_mount, core.VolumeMountArgs(name="scratch", mount_path=SCRATCH_DIR)]
    if job.reads_database:
        volumes.append(
            core.VolumeArgs(
                name="database",
                # mode 0440: the fsGroup reads the files, nobody writes them
                secret=core.SecretVolumeSourceArgs(secret_name=DATABASE_READER, default_mode=0o440),
            )
        )
        mounts.append(
            core.VolumeMountArgs(name="database", mount_path=CREDENTIALS_DIR, read_only=True)
        )
    job_name = core.EnvVarSourceArgs(
        field_ref=core.ObjectFieldSelectorArgs(
            field_path="metadata.labels['batch.kubernetes.io/job-name']"
        )
    )
    env = [core.EnvVarArgs(name="BACKUP_JOB_NAME", value_from=job_name)]
    env += [core.EnvVarArgs(name=key, value=value) for key, value in sorted(job.env.items())]
    return core.PodSpecArgs(
        service_account_name=account.metadata.name,
        automount_service_account_token=False,
        enable_service_links=False,
        security_context=pod_security_context(),
        node_selector=app_pool(),
        restart_policy="Never",
        termination_grace_period_seconds=60,
        containers=[
            core.ContainerArgs(
                name=CONTAINER,
                image=image,
                image_pull_policy="Always",
                # the image's ENTRYPOINT is the program (python3 -m backup)
                args=list(job.args),
                env=env,
                resources=job.resources,
                security_context=container_security_context(),
                volume_mounts=mounts,
            )
        ],
        volumes=volumes,
    )


def _empty_dir(size_gi: int) -> core.VolumeArgs:
    return core.VolumeArgs(
        name="scratch", empty_dir=core.EmptyDirVolumeSourceArgs(size_limit=f"{size_gi}Gi")
    )


def _volume(size_gi: int) -> core.VolumeArgs:
    """A generic ephemeral volume: a gp3 PersistentVolumeClaim made with the pod and deleted
    with it (``restricted`` admits the ``ephemeral`` volume type)."""
    return core.VolumeArgs(
        name="scratch",
        ephemeral=core.EphemeralVolumeSourceArgs(
            volume_claim_template=core.PersistentVolumeClaimTemplateArgs(
                spec=core.PersistentVolumeClaimSpecArgs(
                    access_modes=["ReadWriteOnce"],
                    storage_class_name=STORAGE_CLASS,
                    resources=core.VolumeResourceRequirementsArgs(
                        requests={"storage": f"{size_gi}Gi"}
                    ),
                )
            )
        ),
    )


def _jobs(args: BackupsArgs) -> list[_Job]:
    settings, region = args.settings, args.region
    daily = settings.resources
    scratch_gi = settings.scratch_gi
    ephemeral = f"{scratch_gi + TEMP_SPACE_GI}Gi"
    daily_resources = core.ResourceRequirementsArgs(
        requests={**daily.requests(), "ephemeral-storage": ephemeral},
        limits={**daily.limits(), "ephemeral-storage": ephemeral},
    )
    restore = settings.restore_test
    restore_size = {
        "cpu": restore.cpu.text,
        "memory": restore.memory.text,
        "ephemeral-storage": f"{TEMP_SPACE_GI}Gi",
    }
    common: dict[str, pulumi.Input[str]] = {
        "BACKUP_BUCKET": args.backups_bucket,
        "AWS_REGION": region,
        "BACKUP_SCRATCH": SCRATCH_DIR,
    }
    database = args.database
    database_env: dict[str, pulumi.Input[str]] = {
        "DATABASE_HOST": database.host,
        "DATABASE_PORT": str(database.port),
        "DATABASE_NAME": database.name,
        "DATABASE_SSLMODE": "verify-full",
        "DATABASE_CREDENTIALS_DIR": CREDENTIALS_DIR,
    }
    bucket, key = args.backups_bucket_arn, args.backups_key_arn
    aws_apis = Peer.https_anywhere()
    database_peer = Peer((Port(database.port),), cidrs=args.data_cidrs)
    media = args.media

    def daily_job(
        name: str,
        schedule: Schedule,
        policy: pulumi.Output[str],
        *,
        env: Mapping[str, pulumi.Input[str]],
        egress: tuple[Peer, ...],
        reads_database: bool = False,
    ) -> _Job:
        """``backup-<what>`` runs ``backup <what>``."""
        return _Job(
            name=name,
            args=("backup", name.removeprefix("backup-")),
            schedule=schedule,
            policy=policy,
            env=env,
            resources=daily_resources,
            scratch=_empty_dir(scratch_gi),
            deadline_seconds=DAILY_DEADLINE_SECONDS,
            ttl_seconds=DAILY_TTL_SECONDS,
            egress=egress,
            reads_database=reads_database,
        )

    redis_policy = pulumi.Output.all(bucket, key, args.cache_group_id, args.cache_key_arn).apply(
        lambda v: iam.redis_policy(
            bucket_arn=v[0],
            key_arn=v[1],
            region=region,
            account_id=args.account_id,
            group_id=v[2],
            cache_key_arn=v[3],
        )
    )
    media_policy = pulumi.Output.all(bucket, key, media.media_arn, media.key_arn).apply(
        lambda v: iam.media_policy(
            bucket_arn=v[0], key_arn=v[1], region=region, media_arn=v[2], media_key_arn=v[3]
        )
    )
    return [
        daily_job(
            POSTGRES,
            settings.postgres_schedule,
            pulumi.Output.all(bucket, key).apply(lambda v: iam.postgres_policy(v[0], v[1], region)),
            env={**common, **database_env},
            egress=(database_peer, aws_apis),
            reads_database=True,
        ),
        daily_job(
            REDIS,
            settings.redis_schedule,
            redis_policy,
            env={**common, "REDIS_REPLICATION_GROUP": args.cache_group_id},
            egress=(aws_apis,),
        ),
        daily_job(
            MEDIA,
            settings.media_schedule,
            media_policy,
            env={**common, "MEDIA_BUCKET": media.media_bucket},
            egress=(aws_apis,),
        ),
        _Job(
            name=RESTORE_TEST,
            args=("restore-test",),
            schedule=restore.schedule,
            policy=pulumi.Output.all(bucket, key).apply(
                lambda v: iam.restore_test_policy(v[0], v[1], region)
            ),
            # it restores into its own throw-away servers: no database credentials
            env={**common, "RESTORE_TEST_JOBS": str(restore.restore_jobs)},
            # Guaranteed QoS: what it is sized for is what it gets
            resources=core.ResourceRequirementsArgs(requests=restore_size, limits=restore_size),
            scratch=_volume(restore.scratch_gi),
            deadline_seconds=RESTORE_TEST_DEADLINE_SECONDS,
            ttl_seconds=WEEKLY_TTL_SECONDS,
            # its PostgreSQL and Redis run in the pod, on loopback: only the AWS APIs
            egress=(aws_apis,),
        ),
    ]
