"""IAM: what the policy documents of the stack grant (identity policies of roles, trust policies,
and the resource policies of keys and buckets), and which managed policies roles carry.

The program's own tests keep its IAM tight (``tests/test_cluster.py``, ``test_deploy_access.py``);
these rules make the same promises hold for any later change, reviewed or not:

* ``iam-no-wildcard-actions`` — no identity statement allowing ``*`` (or ``NotAction``), and no
  service-wide ``<svc>:*`` on every resource;
* ``iam-no-passrole-on-all`` — ``iam:PassRole`` only on named roles;
* ``iam-no-admin-policies`` — no administrator managed policy on a role, except listed ones;
* ``iam-web-identity-trust-pinned`` — web-identity trust pins both audience and subject;
* ``iam-no-wildcard-principals`` — no statement allowing any principal unless a condition pins
  the caller's account or organisation.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from pulumi_policy import ResourceValidationArgs

from .policy_config import STRINGS, Config, Setting, exempted, exemptions, reasoned_list
from .registry import CRITICAL, HIGH, resource_policy
from .resources import get, is_list, is_map, json_document, maps, text
from .tokens import type_parts

DOMAIN = "iam"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ROLE_POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
IDENTITY_POLICY_TYPES: Final = frozenset(
    {
        ROLE_POLICY,
        "aws:iam/policy:Policy",
        "aws:iam/userPolicy:UserPolicy",
        "aws:iam/groupPolicy:GroupPolicy",
    }
)
"""Resources whose ``policy`` is an identity policy (what their holder may do)."""
ATTACHMENT_TYPES: Final[Mapping[str, str]] = {
    ROLE_POLICY_ATTACHMENT: "role",
    "aws:iam/userPolicyAttachment:UserPolicyAttachment": "user",
    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment": "group",
}
"""Managed-policy attachments and the property naming who gets the policy."""
ADMIN_POLICIES: Final = (
    "arn:aws:iam::aws:policy/AdministratorAccess",
    "arn:aws:iam::aws:policy/PowerUserAccess",
    "arn:aws:iam::aws:policy/IAMFullAccess",
)
ACCOUNT_PINNING_KEYS: Final = frozenset(
    {
        "aws:principalaccount",
        "aws:principalorgid",
        "aws:principalarn",
        "kms:calleraccount",
    }
)
"""Condition keys (lower-cased, as IAM compares them) that tie "any principal" to this account
or organisation."""


# ---- reading policy documents ------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    """One statement of a policy document, its lists normalised (a string is a list of one)."""

    sid: str
    allows: bool
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[str, ...]
    principal: Any
    not_principal: bool
    conditions: Mapping[str, Mapping[str, Any]]

    @property
    def label(self) -> str:
        return f"statement {self.sid!r}" if self.sid else "a statement"


def _list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if is_list(value):
        return tuple(str(v) for v in value if isinstance(v, str))
    return ()


def statements(document: Any) -> list[Statement]:
    """The statements of a policy document given as JSON text or data; ``[]`` when it does not
    parse (a document the provider would refuse anyway)."""
    parsed = json_document(document)
    found = get(parsed, "Statement")
    raw = [found] if is_map(found) else maps(parsed, "Statement")
    result = []
    for s in raw:
        conditions = get(s, "Condition")
        result.append(
            Statement(
                sid=text(s, "Sid"),
                allows=text(s, "Effect") == "Allow",
                actions=_list(get(s, "NotAction") or get(s, "Action")),
                not_action=get(s, "NotAction") is not None,
                resources=_list(get(s, "NotResource") or get(s, "Resource")),
                principal=get(s, "NotPrincipal") or get(s, "Principal"),
                not_principal=get(s, "NotPrincipal") is not None,
                conditions={
                    str(op): v for op, v in (conditions.items() if is_map(conditions) else ())
                },
            )
        )
    return result


def identity_documents(args: ResourceValidationArgs) -> list[tuple[str, Any]]:
    """``(holder, document)`` for each identity policy of the resource: the policy of a
    ``RolePolicy`` (its role) or managed ``Policy`` (its name), and a role's inline policies."""
    props = args.props
    if args.resource_type in IDENTITY_POLICY_TYPES:
        holder = text(props, "role") or text(props, "user") or text(props, "group")
        return [(holder or text(props, "name") or args.name, get(props, "policy"))]
    if args.resource_type == ROLE:
        holder = text(props, "name") or args.name
        return [(holder, get(p, "policy")) for p in maps(props, "inlinePolicies")]
    return []


def action_matches(pattern: str, action: str) -> bool:
    """Whether an action pattern of a statement (``iam:Pass*``, ``*``) covers ``action``
    (IAM compares actions case-insensitively)."""
    return fnmatch.fnmatchcase(action.lower(), pattern.lower())


def _exempt(config: Config, holder: str, action: str) -> bool:
    return any(
        fnmatch.fnmatchcase(holder, text(e, "holder"))
        and (not text(e, "action") or text(e, "action") == action)
        for e in config.entries("allowed")
    )


HOLDER_EXEMPTIONS = Setting(
    "allowed",
    reasoned_list({"holder": {"type": "string"}, "action": {"type": "string"}}, ["holder"]),
    [],
    "Identities (role, user or policy name patterns) allowed the grant, optionally only for one "
    "action, each with the reason.",
)


# ---- identity policies -------------------------------------------------------------------


@resource_policy(
    "iam-no-wildcard-actions",
    severity=HIGH,
    domain=DOMAIN,
    description="Identity policies must name their actions: no statement allowing '*' or "
    "using NotAction, and no service-wide '<service>:*' on every resource ('*').",
    remediation="List the actions the holder calls (the service's documented least-privilege "
    "policy is a start) and scope the resources to ARNs; record an unavoidable grant in "
    "iam-no-wildcard-actions.allowed with its reason.",
    settings=[HOLDER_EXEMPTIONS],
)
def iam_no_wildcard_actions(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    for holder, document in identity_documents(args):
        for s in statements(document):
            if not s.allows:
                continue
            if s.not_action:
                if not _exempt(config, holder, "NotAction"):
                    yield f"{s.label} of {holder} allows everything but NotAction."
                continue
            for action in s.actions:
                if _exempt(config, holder, action):
                    continue
                if action == "*":
                    yield f"{s.label} of {holder} allows every action ('*')."
                elif action.endswith(":*") and "*" in s.resources:
                    yield f"{s.label} of {holder} allows {action} on every resource."


@resource_policy(
    "iam-no-passrole-on-all",
    severity=HIGH,
    domain=DOMAIN,
    description="iam:PassRole must name the roles it may pass: passing any role ('*') lets "
    "the holder hand any role, an administrator's too, to a service it controls.",
    remediation="Scope the statement's Resource to the role ARNs (or a name prefix of this "
    "stack, arn:aws:iam::<account>:role/exposcholar-<stack>-*), ideally with an "
    "iam:PassedToService condition.",
    settings=[HOLDER_EXEMPTIONS],
)
def iam_no_passrole_on_all(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    for holder, document in identity_documents(args):
        for s in statements(document):
            if not s.allows or s.not_action or "*" not in s.resources:
                continue
            # '*' alone is iam-no-wildcard-actions' concern
            named = [a for a in s.actions if a != "*" and action_matches(a, "iam:PassRole")]
            if named and not _exempt(config, holder, "iam:PassRole"):
                yield f"{s.label} of {holder} allows {named[0]} on every role ('*')."


# ---- managed policies --------------------------------------------------------------------


def attached_policies(args: ResourceValidationArgs) -> list[tuple[str, str]]:
    """``(holder, policy ARN)`` of each managed policy the resource attaches."""
    props = args.props
    holder_key = ATTACHMENT_TYPES.get(args.resource_type)
    if holder_key is not None:
        return [(text(props, holder_key), text(props, "policyArn"))]
    if args.resource_type == ROLE:
        holder = text(props, "name") or args.name
        return [(holder, arn) for arn in _list(get(props, "managedPolicyArns"))]
    return []


@resource_policy(
    "iam-no-admin-policies",
    severity=HIGH,
    domain=DOMAIN,
    description="No administrator managed policy (AdministratorAccess, PowerUserAccess, "
    "IAMFullAccess) on a role, user or group, except the listed ones: a workload's role gets "
    "the permissions it uses, written out.",
    remediation="Replace the managed policy with an inline policy of the actions the workload "
    "calls; a deploy role that must create everything is listed in "
    "iam-no-admin-policies.allowed with its reason.",
    settings=[
        Setting(
            "adminPolicies",
            STRINGS,
            list(ADMIN_POLICIES),
            "Managed policy ARNs that count as administrator access.",
        ),
        Setting(
            "allowed",
            reasoned_list({"holder": {"type": "string"}, "policy": {"type": "string"}}, ["holder"]),
            [],
            "Holders (name patterns) allowed an administrator policy (optionally only one), "
            "each with the reason.",
        ),
    ],
)
def iam_no_admin_policies(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    admin = set(config.strings("adminPolicies"))
    allowed = config.entries("allowed")
    for holder, arn in attached_policies(args):
        if arn not in admin:
            continue
        if any(
            fnmatch.fnmatchcase(holder, text(e, "holder")) and text(e, "policy") in ("", arn)
            for e in allowed
        ):
            continue
        yield f"{holder or args.name} gets the administrator policy {arn}."


# ---- trust and resource policies ---------------------------------------------------------


def _condition_keys(s: Statement) -> dict[str, list[str]]:
    """Condition keys (lower-cased) of a statement with the values they are compared with."""
    found: dict[str, list[str]] = {}
    for operator, block in s.conditions.items():
        if operator.startswith("Null") or not is_map(block):
            continue
        for key, value in block.items():
            found.setdefault(str(key).lower(), []).extend(_list(value))
    return found


WEB_IDENTITY = "sts:AssumeRoleWithWebIdentity"


@resource_policy(
    "iam-web-identity-trust-pinned",
    severity=HIGH,
    domain=DOMAIN,
    description="A role trusted through web identity (EKS service accounts, GitHub Actions) "
    "must pin both the token's audience (<provider>:aud) and its subject (<provider>:sub, "
    "not a bare wildcard): otherwise any service account of the cluster, or any repository, "
    "can assume it.",
    remediation="Build the trust policy with components.lib.irsa (StringEquals on :aud "
    "sts.amazonaws.com and :sub system:serviceaccount:<namespace>:<name>) or, for GitHub, "
    "pin :sub to the repository and ref.",
    settings=[
        exemptions("allowed", "role", "Roles (name patterns) whose trust may leave one open.")
    ],
)
def iam_web_identity_trust_pinned(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if args.resource_type != ROLE:
        return
    if exempted(config, "allowed", "role", text(args.props, "name") or args.name):
        return
    for s in statements(get(args.props, "assumeRolePolicy")):
        if not s.allows or not any(action_matches(a, WEB_IDENTITY) for a in s.actions):
            continue
        keys = _condition_keys(s)
        audience = [v for k, vs in keys.items() if k.endswith(":aud") for v in vs]
        subject = [v for k, vs in keys.items() if k.endswith(":sub") for v in vs]
        if not audience:
            yield f"{s.label} of the trust policy does not pin the token's audience (:aud)."
        if not subject or any(v.strip("*") == "" for v in subject):
            yield f"{s.label} of the trust policy does not pin the token's subject (:sub)."


def _principals(principal: Any) -> list[str]:
    if isinstance(principal, str):
        return [principal]
    if is_map(principal):
        return [v for value in principal.values() for v in _list(value)]
    return []


def policy_documents(args: ResourceValidationArgs) -> list[tuple[str, Any]]:
    """``(property, document)`` for every policy document of an AWS resource that names
    principals: trust policies and resource policies (keys, buckets, queues, topics...)."""
    if type_parts(args.resource_type)[0] != "aws":
        return []
    found = []
    for prop in ("assumeRolePolicy", "policy"):
        value = get(args.props, prop)
        if (isinstance(value, str) and value.lstrip().startswith("{")) or is_map(value):
            found.append((prop, value))
    return found


@resource_policy(
    "iam-no-wildcard-principals",
    severity=CRITICAL,
    domain=DOMAIN,
    description="No trust or resource policy may allow any principal ('*', or NotPrincipal) "
    "unless a condition ties the caller to this account or organisation (aws:PrincipalAccount, "
    "aws:PrincipalOrgID, aws:PrincipalArn, kms:CallerAccount).",
    remediation="Name the principals (account root, role ARNs, service principals), or keep "
    "'*' only with a condition on the caller's account, as the KMS keys' use statements do.",
    settings=[
        Setting(
            "accountConditionKeys",
            STRINGS,
            sorted(ACCOUNT_PINNING_KEYS),
            "Condition keys that tie 'any principal' to the account or organisation.",
        ),
        exemptions(
            "allowed",
            "resource",
            "Resources (logical-name patterns) whose policy may admit any principal.",
        ),
    ],
)
def iam_no_wildcard_principals(args: ResourceValidationArgs, config: Config) -> Iterator[str]:
    if exempted(config, "allowed", "resource", args.name):
        return
    pinning = {k.lower() for k in config.strings("accountConditionKeys")}
    for prop, document in policy_documents(args):
        for s in statements(document):
            if not s.allows:
                continue
            anyone = s.not_principal or "*" in _principals(s.principal)
            if anyone and not pinning & set(_condition_keys(s)):
                yield f"{s.label} of {prop} allows any principal without an account condition."
