"""``Images``: the ECR repositories of the platform and the images in them.

One repository per image (``server``, ``web``, ``backup``): immutable tags, scan on push, the
images KMS key, and a lifecycle that keeps the newest ``imageRetentionCount`` images. Each image
is built from source, the folder named in ``<name>ImageSource`` (this package holds the
canonical server and web Dockerfiles, the application checkouts carry their own; the backup
image is built from ``components/backups/program``, with the program it runs), under a content tag,
or taken prebuilt from ``<name>Image``. ``refs`` is what workloads run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_docker as docker
from pulumi_aws import ecr

from components.lib.component import Component
from components.lib.naming import Naming
from components.settings import PROJECT_ROOT, ImagesSettings, NodeGroupSettings

COMPONENT = "images"
IGNORED_PARTS = frozenset({".git", "__pycache__", ".venv", "node_modules", ".dart_tool", "build"})
"""Folders never part of a build context's hash (caches and build outputs)."""


def project_relative(path: Path) -> str:
    """``path`` relative to the project folder, in POSIX form. The CLI runs the program there,
    so the docker provider resolves it the same from any checkout; an absolute path would differ
    between a laptop and CI, read as a changed input, rebuild and push the same content tag to
    an IMMUTABLE repository, which refuses it."""
    return Path(os.path.relpath(path.resolve(), PROJECT_ROOT)).as_posix()


def content_tag(
    folder: Path,
    build_args: Mapping[str, str] | None = None,
    *,
    build_inputs: Mapping[str, str] | None = None,
) -> str:
    """A tag that changes exactly when the image would be rebuilt: an unchanged source keeps
    its tag and is neither rebuilt nor pushed again, a changed one gets a new immutable tag.

    Hashes each file's relative path, executable bit and bytes, in sorted order, skipping the
    folders in IGNORED_PARTS, then the build arguments and ``build_inputs``: the other inputs
    the docker provider compares (context and Dockerfile paths, platform). A change to any of
    them makes the provider rebuild, and a rebuilt image pushed under an existing tag is
    refused by an IMMUTABLE repository, so each must be part of the tag. Pure and
    deterministic (tested directly).
    """
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or IGNORED_PARTS.intersection(relative.parts):
            continue
        executable = os.access(path, os.X_OK)
        digest.update(f"{relative.as_posix()}\0{int(executable)}\0".encode())
        digest.update(path.read_bytes())
        digest.update(b"\0")
    digest.update(json.dumps(dict(build_args or {}), sort_keys=True).encode())
    if build_inputs:
        digest.update(json.dumps(dict(build_inputs), sort_keys=True).encode())
    return f"src-{digest.hexdigest()[:20]}"


@dataclass(frozen=True)
class ImagesArgs:
    settings: ImagesSettings
    """Each image's source folder or prebuilt reference, and how many images to keep."""
    naming: Naming
    """Names and tags of the stack."""
    kms_key_arn: pulumi.Input[str]
    """The images domain key: encrypts every repository."""
    runs_on: NodeGroupSettings
    """The node group the images run on: its CPU architecture is the build platform."""
    protect: bool
    """Protect the repositories from deletion by Pulumi (production)."""
    build_args: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Build arguments per image name, e.g. {"backup": {"PG_MAJOR": "17"}}."""


class Images(Component):
    """ECR repositories, and the images built into them or referenced from them."""

    TYPE = "exposcholar:images:Images"

    repository_urls: dict[str, pulumi.Output[str]]
    """Each image's repository."""
    refs: dict[str, pulumi.Output[str]]
    """What workloads run, per image: the pushed image by digest, or the prebuilt reference."""

    def __init__(
        self, name: str, args: ImagesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, opts)
        platform = "linux/arm64" if args.runs_on.arm64 else "linux/amd64"
        self.repository_urls = {}
        self.refs = {}
        lifecycle = json.dumps(_lifecycle_policy(args.settings.retention_count))
        for image in args.settings.images:
            label = image.name
            repository = ecr.Repository(
                f"{name}-{label}",
                name=args.naming.physical(COMPONENT, label),
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration=ecr.RepositoryImageScanningConfigurationArgs(
                    scan_on_push=True
                ),
                encryption_configurations=[
                    ecr.RepositoryEncryptionConfigurationArgs(
                        encryption_type="KMS", kms_key=args.kms_key_arn
                    )
                ],
                force_delete=False,
                tags=args.naming.tags(COMPONENT, label),
                opts=self.child_opts(protect=args.protect),
            )
            ecr.LifecyclePolicy(
                f"{name}-{label}-lifecycle",
                repository=repository.name,
                policy=lifecycle,
                opts=self.child_opts(),
            )
            self.repository_urls[label] = repository.repository_url
            if image.source is not None:
                build_args = dict(args.build_args.get(label, {}))
                location = {
                    "context": project_relative(image.source),
                    "dockerfile": project_relative(image.source / "Dockerfile"),
                    "platform": platform,
                }
                tag = content_tag(image.source, build_args, build_inputs=location)
                # Built and pushed only on ``pulumi up``, never in a preview. Registry credentials
                # come from the deploying machine's ECR credential helper: no cloud call here,
                # no registry password in state.
                built = docker.Image(
                    f"{name}-{label}-image",
                    image_name=pulumi.Output.concat(repository.repository_url, ":", tag),
                    build=docker.DockerBuildArgs(
                        context=location["context"],
                        dockerfile=location["dockerfile"],
                        platform=location["platform"],
                        args=build_args,
                    ),
                    build_on_preview=False,
                    skip_push=False,
                    opts=self.child_opts(),
                )
                self.refs[label] = built.repo_digest
            else:
                self.refs[label] = pulumi.Output.from_input(str(image.reference))
        self.register()

    def ref(self, image: str) -> pulumi.Output[str]:
        """The reference a workload runs for ``image`` (``server``, ``web``, ``backup``)."""
        if image not in self.refs:
            raise KeyError(f"no image {image!r}: the images are {', '.join(sorted(self.refs))}")
        return self.refs[image]


def _lifecycle_policy(keep: int) -> dict[str, object]:
    """Untagged images expire after a day, and every image beyond the newest ``keep``."""
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": "Untagged layers left by failed or replaced pushes",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": 1,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": f"Keep the newest {keep} images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": keep,
                },
                "action": {"type": "expire"},
            },
        ]
    }
