"""IAM stack policy: a role's policies are managed in one place only.

A role whose ``managedPolicyArns`` or ``inlinePolicies`` is set is managed exclusively by those
properties: the provider removes, on every update, whatever separate ``RolePolicyAttachment``
or ``RolePolicy`` resources added, and those add it back on the next, so the permissions flap
(the same conflict ``sg-no-rule-conflicts`` refuses for security-group rules).
"""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import PolicyResource, StackValidationArgs

from .aws_iam import ROLE, ROLE_POLICY, ROLE_POLICY_ATTACHMENT
from .policy_config import Config
from .registry import MEDIUM, Violation, stack_policy
from .resources import each, get, has_key, known, refers_to


def _ids(role: PolicyResource) -> list[str]:
    """What a separate resource's ``role`` may hold: the role's name (or id, the same)."""
    values = [known(role.props, "name"), known(role.props, "id")]
    return [v for v in values if isinstance(v, str) and v]


def _exclusive(role: PolicyResource, prop: str) -> bool:
    """Whether the role manages ``prop`` exclusively: the property is set at all (an empty
    list too: it means "none but these", and removes the separate ones)."""
    return has_key(role.props, prop) and get(role.props, prop) is not None


@stack_policy(
    "iam-role-no-policy-management-conflicts",
    severity=MEDIUM,
    domain="iam",
    description="A role's policies must be managed in one place: not managedPolicyArns (or "
    "inlinePolicies) on the role together with separate RolePolicyAttachment (or RolePolicy) "
    "resources for the same role, which make the permissions flap on every update.",
    remediation="Keep the role's policies as separate resources (components.lib.aws."
    "service_role and the IRSA helpers do) and leave managedPolicyArns and inlinePolicies unset.",
)
def iam_role_no_policy_management_conflicts(
    args: StackValidationArgs, _: Config
) -> Iterator[Violation]:
    attachments = [r for r in args.resources if r.resource_type == ROLE_POLICY_ATTACHMENT]
    policies = [r for r in args.resources if r.resource_type == ROLE_POLICY]

    def check(role: PolicyResource) -> Iterator[Violation]:
        ids = _ids(role)
        pairs = (
            ("managedPolicyArns", attachments, "RolePolicyAttachment"),
            ("inlinePolicies", policies, "RolePolicy"),
        )
        for prop, separate, kind in pairs:
            if not _exclusive(role, prop):
                continue
            found = [r.name for r in separate if refers_to(r, "role", role, ids)]
            if found:
                yield (
                    f"role {role.name} sets {prop} and also has the {kind} "
                    f"{', '.join(sorted(found))}.",
                    role.urn,
                )

    yield from each([r for r in args.resources if r.resource_type == ROLE], check)
