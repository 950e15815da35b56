"""``parse_settings``: the raw configuration in, a validated ``StackSettings`` out.

A pure function over the raw string values the CLI hands the program (integers and booleans as
text, arrays as JSON; defaults from ``Pulumi.yaml`` already applied), so it is tested without a
Pulumi runtime. It refuses a bad stack name and keys nothing reads, parses the account and
deploy keys, and leaves the other sections to ``parse_aws``, ``parse_cluster``,
``parse_edge``, ``parse_backups``, ``parse_alerting`` and ``parse_monitoring``. Every
problem found is raised together in one ``SettingsError``.
"""

from __future__ import annotations

from collections.abc import Mapping

from components.settings import (
    parse_alerting,
    parse_aws,
    parse_backups,
    parse_cluster,
    parse_edge,
    parse_monitoring,
)
from components.settings.keys import (
    ALLOWED_FOREIGN_KEYS,
    KEYS_BY_NAME,
    PROJECT,
    STACK_NAME,
    STACK_NAME_RULE,
)
from components.settings.model import (
    AccountSettings,
    DeploySettings,
    Secret,
    StackSettings,
)
from components.settings.parse_alerting import grafana_password
from components.settings.parsers import email, integer, optional
from components.settings.reader import Reader, SettingsError, SettingsProblem
from components.settings.rules import (
    account_id,
    cost_center,
    github_oidc_provider_arn,
    github_repository,
    iam_role_arns,
    kms_key_arn,
    region,
    s3_bucket_name,
)


def parse_settings(stack: str, raw: Mapping[str, str]) -> StackSettings:
    """Validate raw configuration (``namespace:key`` to the string the CLI passes) and build
    the settings tree, or raise SettingsError naming every problem."""
    prefix = f"{PROJECT}:"
    own = {k.removeprefix(prefix): v for k, v in raw.items() if k.startswith(prefix)}
    r = Reader(stack, own)

    if not STACK_NAME.fullmatch(stack):
        r.problems.append(SettingsProblem("stack", stack, f"a stack name of {STACK_NAME_RULE}"))
    for key in sorted(set(own) - set(KEYS_BY_NAME)):
        r.problem(key, "no such key (a typo?); known keys are listed in Pulumi.yaml", own[key])
    for key in sorted(k for k in raw if not k.startswith(prefix)):
        if key not in ALLOWED_FOREIGN_KEYS:
            r.problems.append(
                SettingsProblem(
                    key,
                    raw[key],
                    "no such key: the program configures its providers explicitly from "
                    f"{PROJECT}: keys, so this one would be ignored",
                )
            )

    account = _account(r)
    workloads = parse_cluster.workloads(r, account)
    edge = parse_edge.edge(r)
    database = parse_aws.database(r)
    cluster = parse_cluster.cluster(r, account.account_id)
    backups = parse_backups.backups(r, database, cluster)
    parse_edge.namespace_quota(r, workloads, edge, backups)
    settings = StackSettings(
        PROJECT,
        stack,
        r.role,
        account,
        parse_aws.network(r, account.region),
        database,
        parse_aws.cache(r),
        parse_aws.storage(r, account.region),
        cluster,
        parse_cluster.images(r, account),
        workloads,
        edge,
        backups,
        DeploySettings(
            repository=r.get("githubRepository", github_repository),
            oidc_provider_arn=r.get(
                "githubOidcProviderArn", optional(github_oidc_provider_arn(account.account_id))
            ),
            state_bucket=r.get("pulumiStateBucket", optional(s3_bucket_name)),
            secrets_key_arn=r.get("pulumiSecretsKeyArn", optional(kms_key_arn)),
        ),
        parse_alerting.alerting(r),
        parse_monitoring.alert_thresholds(r),
        parse_monitoring.prometheus(r),
        Secret(r.get("grafanaAdminPassword", grafana_password)),
    )
    if r.problems:
        raise SettingsError(stack, r.problems)
    return settings


def _account(r: Reader) -> AccountSettings:
    account = r.get("accountId", account_id)
    return AccountSettings(
        region=r.get("region", region),
        account_id=account,
        owner=r.get("owner", email),
        cost_center=r.get("costCenter", cost_center),
        admin_role_arns=r.get("adminRoleArns", iam_role_arns(account)),
        kms_key_rotation_days=r.get("kmsKeyRotationDays", integer(90, 2560)),
    )
