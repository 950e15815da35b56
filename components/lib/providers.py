"""Explicit providers. Every resource in the program uses one of these (the stack files set
``pulumi:disable-default-providers``), so no resource can pick up ambient AWS settings.

The Kubernetes provider is built from the cluster's outputs, never from a local kubeconfig.
The AWS provider is pinned to the stack's account (``allowed_account_ids``): credentials for
any other account make it fail before it changes anything. The stack-wide tags ride on its
``default_tags`` so every taggable resource carries them.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker
import pulumi_kubernetes as k8s

from components.lib.naming import Naming
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
    )


def kubernetes_provider(name: str, kubeconfig: pulumi.Input[str]) -> k8s.Provider:
    """The provider every Kubernetes object of the program uses: the cluster's own kubeconfig
    (a secret Output), server-side apply, and no fallback to an ambient kubeconfig."""
    return k8s.Provider(
        name,
        kubeconfig=kubeconfig,
        enable_server_side_apply=True,
        delete_unreachable=False,
        opts=pulumi.ResourceOptions(additional_secret_outputs=["kubeconfig"]),
    )


def docker_provider(name: str) -> docker.Provider:
    """The provider that builds and pushes images. Registry credentials come from the deploying
    machine's Docker credential helper for ECR, so none are stored in state."""
    return docker.Provider(name)
