"""Kubernetes objects beyond their pods: Jobs and CronJobs bound their retries, run time and
history; namespaced objects stay out of ``default``; and charts are not installed as Helm v3
Releases, whose objects no policy would see.
"""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import ResourceValidationArgs

from .kube import k8s_group, k8s_kind, namespace_of, object_ref, pods_of, workload_kind
from .policy_config import Config, Setting, reasoned_list
from .registry import LOW, MEDIUM, resource_policy
from .resources import get, number, text

DOMAIN = "kubernetes"


@resource_policy(
    "k8s-cronjob-hygiene",
    severity=LOW,
    domain=DOMAIN,
    description="CronJobs must not pile up: a starting deadline, concurrencyPolicy Forbid, "
    "restartPolicy OnFailure or Never, and bounded job history.",
    remediation="Set startingDeadlineSeconds, concurrencyPolicy: Forbid, the pod's "
    "restartPolicy, successfulJobsHistoryLimit and failedJobsHistoryLimit.",
    settings=[
        Setting(
            "maximumHistoryLimit",
            {"type": "integer", "minimum": 0, "maximum": 100},
            5,
            "Largest successful/failed jobs history kept.",
        )
    ],
)
def k8s_cronjob_hygiene(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if workload_kind(args.resource_type) != "CronJob":
        return
    spec = get(args.props, "spec") or {}
    deadline = number(spec, "startingDeadlineSeconds")
    if not deadline or deadline <= 0:
        yield "startingDeadlineSeconds is not set: missed runs start late, all at once."
    policy = text(spec, "concurrencyPolicy") or "Allow"
    if policy != "Forbid":
        yield f"concurrencyPolicy is {policy}, not Forbid."
    for pod in pods_of(args):
        restart = text(pod.spec, "restartPolicy")
        if restart not in ("OnFailure", "Never"):
            yield f"restartPolicy is {restart or 'unset'}, not OnFailure or Never."
    maximum = config.number("maximumHistoryLimit")
    for field in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        limit = number(spec, field)
        if limit is None or limit > maximum:
            shown = "not set" if limit is None else f"{limit:g}"
            yield f"{field} is {shown}; maximum {maximum}."


@resource_policy(
    "k8s-job-hygiene",
    severity=LOW,
    domain=DOMAIN,
    description="Jobs (and CronJobs' job templates) must bound their retries and run time.",
    remediation="Set backoffLimit and activeDeadlineSeconds on the Job spec.",
)
def k8s_job_hygiene(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    kind = workload_kind(args.resource_type)
    if kind == "Job":
        spec = get(args.props, "spec")
    elif kind == "CronJob":
        spec = get(args.props, "spec", "jobTemplate", "spec")
    else:
        return
    for field in ("backoffLimit", "activeDeadlineSeconds"):
        if number(spec, field) is None:
            yield f"{field} is not set."


NAMESPACED_KINDS = frozenset(
    {
        "ConfigMap",
        "CronJob",
        "DaemonSet",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Ingress",
        "Job",
        "LimitRange",
        "NetworkPolicy",
        "PersistentVolumeClaim",
        "Pod",
        "PodDisruptionBudget",
        "PodTemplate",
        "ReplicaSet",
        "ReplicationController",
        "ResourceQuota",
        "Role",
        "RoleBinding",
        "Secret",
        "Service",
        "ServiceAccount",
        "StatefulSet",
    }
)
BUILTIN_GROUPS = frozenset(
    {
        "core",
        "apps",
        "batch",
        "extensions",
        "autoscaling",
        "policy",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
    }
)


@resource_policy(
    "k8s-no-default-namespace",
    severity=LOW,
    domain=DOMAIN,
    description="Namespaced objects must live in a namespace of their own, not 'default'.",
    remediation="Set metadata.namespace to the component's namespace (created with "
    "components.lib.kube.namespaces.namespace, which labels it for Pod Security).",
)
def k8s_no_default_namespace(args: ResourceValidationArgs, _: Config) -> Iterator[str]:
    kind = k8s_kind(args.resource_type)
    if kind not in NAMESPACED_KINDS or k8s_group(args.resource_type) not in BUILTIN_GROUPS:
        return
    if namespace_of(args.props) == "default":
        yield f"{kind} {object_ref(args.props)} is in the default namespace."


HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


@resource_policy(
    "k8s-no-helm-release",
    severity=MEDIUM,
    domain=DOMAIN,
    description="Third-party charts must be installed with helm.v4.Chart, not helm.v3.Release: "
    "a Release installs its objects inside one resource, so no policy sees them. A chart whose "
    "install depends on hooks (which helm.v4.Chart never runs) is the exception the "
    "configuration names.",
    remediation="Replace the kubernetes.helm.v3.Release with a kubernetes.helm.v4.Chart (same "
    "chart, version and values); its rendered objects are then registered, previewed and "
    "checked one by one. If the chart needs its hooks, list it under releaseAllowed with why.",
    settings=[
        Setting(
            "releaseAllowed",
            reasoned_list({"chart": {"type": "string"}}, ["chart"]),
            [],
            "Charts whose install runs hooks (a TLS Secret made by a pre-install Job, say) and "
            "so must be a helm.v3.Release.",
        )
    ],
)
def k8s_no_helm_release(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if args.resource_type == HELM_RELEASE:
        chart = text(args.props, "chart") or "<chart>"
        if chart in {text(e, "chart") for e in config.entries("releaseAllowed")}:
            return
        yield f"Helm release of {chart} hides its workloads from the policy pack."
