"""Kubernetes RBAC: what Roles and ClusterRoles grant and to whom bindings give it.

``tests/test_rbac.py`` keeps the program's own RBAC least-privilege; these rules refuse the
grants that would undo it in a later change: wildcards, the verbs that step around RBAC
(``escalate``, ``bind``, ``impersonate``), cluster-wide reading of Secrets, the built-in powerful
roles bound to anyone not listed, and bindings to subjects the stack does not own.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping
from typing import Any, Final

from pulumi_policy import PolicyResource, ResourceValidationArgs, StackValidationArgs

from .kube import k8s_group, k8s_kind, object_ref
from .policy_config import STRINGS, Config, Setting, reasoned_list
from .registry import CRITICAL, HIGH, Violation, resource_policy, stack_policy
from .resources import each, get, known, maps, strings, text

DOMAIN = "rbac"
RBAC_GROUP = "rbac.authorization.k8s.io"
ROLE_KINDS: Final = frozenset({"Role", "ClusterRole"})
BINDING_KINDS: Final = frozenset({"RoleBinding", "ClusterRoleBinding"})
ESCALATION_VERBS: Final = ("escalate", "bind", "impersonate")
READ_VERBS: Final = frozenset({"get", "list", "watch"})
POWERFUL_ROLES: Final = ("cluster-admin", "admin", "edit")


def rbac_kind(resource_type: str) -> str | None:
    """``Role``, ``ClusterRole``, ``RoleBinding`` or ``ClusterRoleBinding`` of the RBAC API."""
    kind = k8s_kind(resource_type)
    if kind is None or k8s_group(resource_type) != RBAC_GROUP:
        return None
    return kind


def _rules(args: ResourceValidationArgs) -> list[Mapping[str, Any]]:
    if rbac_kind(args.resource_type) not in ROLE_KINDS:
        return []
    return maps(args.props, "rules")


def _allowed(config: Config, ref: str) -> bool:
    return any(fnmatch.fnmatchcase(ref, text(e, "object")) for e in config.entries("allowed"))


OBJECT_EXEMPTIONS = Setting(
    "allowed",
    reasoned_list({"object": {"type": "string"}}, ["object"]),
    [],
    "Roles (namespace/name, or name for a ClusterRole; patterns) exempt, each with the reason.",
)


@resource_policy(
    "k8s-rbac-no-wildcards",
    severity=HIGH,
    domain=DOMAIN,
    description="Roles and ClusterRoles must name their verbs, resources, API groups and "
    "non-resource URLs: a '*' grants whatever the API gains later, too.",
    remediation="List the verbs, resources and groups the workload's client calls (its "
    "upstream RBAC manifest is a start); record an unavoidable wildcard in "
    "k8s-rbac-no-wildcards.allowed with its reason.",
    settings=[OBJECT_EXEMPTIONS],
)
def k8s_rbac_no_wildcards(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if _allowed(config, object_ref(args.props)):
        return
    for index, rule in enumerate(_rules(args)):
        for field in ("verbs", "resources", "apiGroups", "nonResourceURLs"):
            if "*" in strings(rule, field):
                yield f"rule {index} has '*' in {field}."


@resource_policy(
    "k8s-rbac-no-escalation-verbs",
    severity=HIGH,
    domain=DOMAIN,
    description="Roles must not grant escalate, bind or impersonate: each lets the holder "
    "step around RBAC (grant itself more, bind any role, act as another identity).",
    remediation="Drop the verb; a controller that must create bindings gets them created by "
    "the program instead. Record an unavoidable grant in k8s-rbac-no-escalation-verbs.allowed.",
    settings=[OBJECT_EXEMPTIONS],
)
def k8s_rbac_no_escalation_verbs(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if _allowed(config, object_ref(args.props)):
        return
    for index, rule in enumerate(_rules(args)):
        verbs = strings(rule, "verbs")  # '*' is k8s-rbac-no-wildcards' concern
        for verb in ESCALATION_VERBS:
            if verb in verbs:
                yield f"rule {index} grants {verb}."


@resource_policy(
    "k8s-rbac-no-cluster-secrets-read",
    severity=HIGH,
    domain=DOMAIN,
    description="No ClusterRole may read Secrets (get, list or watch on secrets): bound by a "
    "ClusterRoleBinding it reads every namespace's credentials.",
    remediation="Grant Secret reads in a namespaced Role, limited with resourceNames to the "
    "Secrets the workload needs; record an unavoidable grant in "
    "k8s-rbac-no-cluster-secrets-read.allowed.",
    settings=[OBJECT_EXEMPTIONS],
)
def k8s_rbac_no_cluster_secrets_read(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if rbac_kind(args.resource_type) != "ClusterRole" or _allowed(config, object_ref(args.props)):
        return
    for index, rule in enumerate(_rules(args)):
        core = "" in strings(rule, "apiGroups")
        reads = READ_VERBS & set(strings(rule, "verbs"))
        if core and "secrets" in strings(rule, "resources") and reads:
            yield f"rule {index} grants {', '.join(sorted(reads))} on secrets cluster-wide."


def _subject_ref(subject: Mapping[str, Any]) -> str:
    kind = text(subject, "kind")
    namespace = text(subject, "namespace")
    name = text(subject, "name")
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


@resource_policy(
    "k8s-rbac-powerful-bindings",
    severity=CRITICAL,
    domain=DOMAIN,
    description="The built-in powerful ClusterRoles (cluster-admin, admin, edit) may be bound "
    "only to the subjects the configuration lists; people get them through EKS access "
    "policies, not bindings in the program.",
    remediation="Bind a Role of the permissions the subject uses instead; list a subject that "
    "really needs the role in k8s-rbac-powerful-bindings.allowedSubjects with the reason.",
    settings=[
        Setting(
            "powerfulRoles",
            STRINGS,
            list(POWERFUL_ROLES),
            "ClusterRoles that may be bound only to listed subjects.",
        ),
        Setting(
            "allowedSubjects",
            reasoned_list(
                {
                    "kind": {"enum": ["User", "Group", "ServiceAccount"]},
                    "name": {"type": "string"},
                    "namespace": {"type": "string"},
                    "role": {"type": "string"},
                },
                ["kind", "name", "role"],
            ),
            [],
            "Subjects allowed one of the powerful roles, each with the reason.",
        ),
    ],
)
def k8s_rbac_powerful_bindings(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if rbac_kind(args.resource_type) not in BINDING_KINDS:
        return
    role = text(args.props, "roleRef", "name")
    if text(args.props, "roleRef", "kind") != "ClusterRole" or role not in config.strings(
        "powerfulRoles"
    ):
        return
    allowed = config.entries("allowedSubjects")
    for subject in maps(args.props, "subjects"):
        if not any(
            text(e, "role") == role
            and text(e, "kind") == text(subject, "kind")
            and text(e, "name") == text(subject, "name")
            and text(e, "namespace") in ("", text(subject, "namespace"))
            for e in allowed
        ):
            yield f"{role} is bound to {_subject_ref(subject)}, which is not listed."


def _of_kind(resources: list[PolicyResource], kind: str) -> list[PolicyResource]:
    return [r for r in resources if k8s_kind(r.resource_type) == kind]


@stack_policy(
    "k8s-rbac-subjects",
    severity=HIGH,
    domain=DOMAIN,
    description="RoleBindings and ClusterRoleBindings may bind only ServiceAccounts the stack "
    "creates, or Groups the configuration lists: never Users, and never another component's "
    "(or a namespace's default) ServiceAccount.",
    remediation="Create the workload's own ServiceAccount with the program and bind that; map "
    "people to Kubernetes groups through EKS access entries and list the group in "
    "k8s-rbac-subjects.allowedGroups with the reason.",
    settings=[
        Setting(
            "allowedGroups",
            reasoned_list({"group": {"type": "string"}}, ["group"]),
            [],
            "Kubernetes groups that bindings may name, each with the reason.",
        ),
        Setting(
            "externalServiceAccounts",
            reasoned_list(
                {"namespace": {"type": "string"}, "name": {"type": "string"}},
                ["namespace", "name"],
            ),
            [],
            "ServiceAccounts the stack does not create (a chart's) that bindings may name.",
        ),
    ],
)
def k8s_rbac_subjects(args: StackValidationArgs, config: Config) -> Iterator[Violation]:
    resources = list(args.resources)
    created = {
        (known(a.props, "metadata", "namespace") or "default", known(a.props, "metadata", "name"))
        for a in _of_kind(resources, "ServiceAccount")
    }
    created |= {
        (text(e, "namespace"), text(e, "name")) for e in config.entries("externalServiceAccounts")
    }
    groups = {text(e, "group") for e in config.entries("allowedGroups")}

    def check(binding: PolicyResource) -> Iterator[Violation]:
        ref = object_ref(binding.props)
        for subject in maps(binding.props, "subjects"):
            kind = text(subject, "kind")
            if kind == "ServiceAccount":
                own_namespace = get(binding.props, "metadata", "namespace")
                namespace = text(subject, "namespace") or str(own_namespace or "default")
                if (namespace, text(subject, "name")) not in created:
                    yield (
                        f"{ref} binds {_subject_ref(subject)}, a ServiceAccount the stack does "
                        "not create.",
                        binding.urn,
                    )
            elif kind == "Group" and text(subject, "name") in groups:
                continue
            elif kind != "ServiceAccount":
                yield f"{ref} binds {_subject_ref(subject)}, which is not listed.", binding.urn

    bindings = [r for r in resources if rbac_kind(r.resource_type) in BINDING_KINDS]
    yield from each(bindings, check)
