"""Migrations as a Job per release: the server's pod running ``manage.py migrate`` under its
own service account (no AWS role: migrations only talk to the database), with bounded retries
and a deadline. The server's Deployment waits for it, so a release's pods start only after its
migrations succeeded.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.app.accounts import service_account
from components.app.pod_spec import ServerPod, pod_spec
from components.app.scope import SERVER, AppScope, after

MIGRATE = "migrate"
"""The Job's name prefix, its service account, container and labels."""
MIGRATE_COMMAND = ("python", "manage.py", "migrate", "--noinput")
"""Idempotent: Django records the migrations it applied."""
MIGRATION_RETRIES = 3
MIGRATION_DEADLINE_SECONDS = 900


def migration_job(
    scope: AppScope,
    pod: ServerPod,
    release: pulumi.Output[str],
    *,
    waits_for: Sequence[pulumi.Resource],
    opts: pulumi.ResourceOptions,
) -> k8s.batch.v1.Job:
    """The release's ``migrate`` Job, named after ``release`` (a hash of the image and the
    configuration): a new name per release, so Pulumi replaces it (and waits for it to
    complete) whenever either changes. The Job also waits for ``waits_for``."""
    account = service_account(scope, MIGRATE, MIGRATE, opts=opts)
    return k8s.batch.v1.Job(
        f"{scope.name}-{MIGRATE}",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=release.apply(lambda digest: f"{SERVER}-{MIGRATE}-{digest[:10]}"),
            namespace=scope.namespace,
            labels=scope.labels(MIGRATE),
        ),
        spec=k8s.batch.v1.JobSpecArgs(
            backoff_limit=MIGRATION_RETRIES,
            active_deadline_seconds=MIGRATION_DEADLINE_SECONDS,
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=scope.labels(MIGRATE)),
                spec=pod_spec(pod, account, command=MIGRATE_COMMAND, container=MIGRATE),
            ),
        ),
        opts=after(opts, *waits_for),
    )
