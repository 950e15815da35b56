"""Explicit providers. Every resource in the program uses one of these (the stack files set
``pulumi:disable-default-providers``), so no resource can pick up ambient AWS settings.

The AWS provider is pinned to the stack's account (``allowed_account_ids``): credentials for
any other account make it fail before it changes anything. The stack-wide tags ride on its
``default_tags`` so every taggable resource carries them.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.naming import Naming
from components.settings import StackSettings


def aws_provider(
    name: str, settings: StackSettings, naming: Naming, *, region: str | None = None
) -> aws.Provider:
    """An AWS provider for the stack's account in ``region`` (default: the stack's region)."""
    return aws.Provider(
        name,
        region=region or settings.account.region,
        allowed_account_ids=[settings.account.account_id],
        default_tags=aws.ProviderDefaultTagsArgs(tags=naming.default_tags()),
        opts=pulumi.ResourceOptions(),
    )
