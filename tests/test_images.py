"""ECR repositories, content-addressed builds, prebuilt references, and the Dockerfiles as
Checkov sees them."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pulumi
import pytest
import yaml

from components.aws.images import Images, ImagesArgs, content_tag
from components.lib.naming import Naming
from components.settings import ImageSettings, ImagesSettings, NodeGroupSettings, StackSettings
from tests.conftest import component_plan, key_arn
from tools.plan import Plan
from tools.preview import REPO_ROOT
from tools.program import capture
from tools.project import StackConfig

IMAGES_DIR = REPO_ROOT / "components" / "aws" / "images"
IMAGE_SOURCES = {
    "server": IMAGES_DIR / "server",
    "web": IMAGES_DIR / "web",
    "backup": REPO_ROOT / "components" / "backups" / "program",
    "edgemetrics": REPO_ROOT / "components" / "app" / "edge" / "metrics",
}
"""The canonical build context of each image (the backup image is built with its program, the
edge's log-to-metrics sidecar with its mtail program)."""
CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"


def test_repositories(plan: Plan, stack_settings: dict[str, StackSettings]) -> None:
    images = component_plan(plan, "exposcholar:images:Images")
    repositories = {r.inputs["name"]: r for r in images.of_type("aws:ecr/repository:Repository")}
    assert set(repositories) == {
        f"exposcholar-{plan.stack}-images-{n}" for n in ("server", "web", "backup", "edgemetrics")
    }
    for repository in repositories.values():
        assert repository.inputs["imageTagMutability"] == "IMMUTABLE"
        assert repository.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
        (encryption,) = repository.inputs["encryptionConfigurations"]
        assert encryption == {"encryptionType": "KMS", "kmsKey": key_arn(plan, "images")}
        assert repository.inputs["forceDelete"] is False
    keep = stack_settings[plan.stack].images.retention_count
    for lifecycle in images.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy"):
        rules = json.loads(lifecycle.inputs["policy"])["rules"]
        assert rules[1]["selection"] == {
            "tagStatus": "any",
            "countType": "imageCountMoreThan",
            "countNumber": keep,
        }
        assert rules[0]["selection"]["tagStatus"] == "untagged"
    assert len(images.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")) == 4


def test_stack_files_build_backup_and_reference_server_and_web(plan: Plan) -> None:
    images = component_plan(plan, "exposcholar:images:Images")
    built_by_name = {b.name: b for b in images.of_type("docker:index/image:Image")}
    assert set(built_by_name) == {"images-backup-image", "images-edgemetrics-image"}
    metrics = built_by_name["images-edgemetrics-image"].inputs["build"]
    assert metrics["context"] == "components/app/edge/metrics" and not metrics.get("args")
    built = built_by_name["images-backup-image"]
    build = built.inputs["build"]
    # relative to the project, so every checkout (a laptop, CI) builds with the same inputs
    assert build["context"] == "components/backups/program"
    assert build["dockerfile"] == "components/backups/program/Dockerfile"
    assert build["args"] == {"PG_MAJOR": "17"}, "the client matches the RDS major version"
    assert build["platform"] == "linux/amd64"
    inputs = {key: build[key] for key in ("context", "dockerfile", "platform")}
    tag = content_tag(IMAGE_SOURCES["backup"], {"PG_MAJOR": "17"}, build_inputs=inputs)
    assert built.inputs["imageName"].endswith(f"/exposcholar-{plan.stack}-images-backup:{tag}")
    assert built.inputs.get("buildOnPreview") is False, "nothing is built or pushed in preview"
    refs = plan.outputs["images"]
    assert refs["backup"].split("@sha256:")[0] == built.inputs["imageName"].rsplit(":", 1)[0]
    account = {"staging": "123456789012", "prod": "210987654321"}[plan.stack]
    server = f"{account}.dkr.ecr.eu-west-1.amazonaws.com/exposcholar-{plan.stack}-images-server"
    # a prebuilt image is used as given: tag for people, digest for the kubelet
    assert re.fullmatch(rf"{re.escape(server)}:1\.0\.0@sha256:[0-9a-f]{{64}}", refs["server"])


def test_content_tag_changes_exactly_when_the_context_changes(tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\n")
    (context / "app.py").write_text("print('a')\n")
    first = content_tag(context)
    assert content_tag(context) == first, "deterministic: unchanged source keeps its tag"
    (context / "__pycache__").mkdir()
    (context / "__pycache__" / "app.pyc").write_bytes(b"junk")
    assert content_tag(context) == first, "caches are not part of the build"
    assert content_tag(context, {"PG_MAJOR": "17"}) != first, "build args are part of it"
    # a moved context or another platform is rebuilt by the provider: it must get a new tag,
    # or the push of the rebuilt image under the old one is refused (IMMUTABLE repositories)
    here = {
        "context": "images/app",
        "dockerfile": "images/app/Dockerfile",
        "platform": "linux/amd64",
    }
    tagged = content_tag(context, build_inputs=here)
    assert tagged != first
    assert content_tag(context, build_inputs=here) == tagged
    for key, other in (
        ("context", "app"),
        ("dockerfile", "app/Dockerfile"),
        ("platform", "linux/arm64"),
    ):
        assert content_tag(context, build_inputs={**here, key: other}) != tagged, key
    (context / "app.py").write_text("print('b')\n")
    second = content_tag(context)
    assert second != first
    (context / "app.py").chmod(0o755)
    assert content_tag(context) != second, "the executable bit is part of the image"
    (context / "app.py").rename(context / "main.py")
    assert content_tag(context) not in (first, second)


def test_source_build_and_prebuilt_in_one_component(
    tmp_path: Path, stack_configs: dict[str, StackConfig], stack_settings: dict[str, StackSettings]
) -> None:
    settings = stack_settings["staging"]
    source = tmp_path / "server"
    source.mkdir()
    (source / "Dockerfile").write_text("FROM scratch\n")
    images = ImagesSettings(
        5,
        (
            ImageSettings("server", source, None),
            ImageSettings(
                "web", None, "123456789012.dkr.ecr.eu-west-1.amazonaws.com/w@sha256:" + "a" * 64
            ),
        ),
    )

    def program() -> None:
        built = Images(
            "img",
            ImagesArgs(
                settings=images,
                naming=Naming.for_stack(settings),
                kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/k",
                runs_on=NodeGroupSettings(("m7g.large",), 1, 2, 1),  # Graviton: arm64
                protect=False,
            ),
        )
        pulumi.export("refs", built.refs)

    plan = capture(stack_configs["staging"], program)
    (image,) = plan.of_type("docker:index/image:Image")
    assert image.inputs["build"]["platform"] == "linux/arm64"
    built_with = {key: image.inputs["build"][key] for key in ("context", "dockerfile", "platform")}
    assert image.inputs["imageName"].endswith(f":{content_tag(source, build_inputs=built_with)}")
    assert plan.outputs["refs"]["server"].startswith(
        image.inputs["imageName"].rsplit(":", 1)[0] + "@sha256:"
    )
    assert plan.outputs["refs"]["web"].endswith("a" * 64)


def test_dockerfiles_pass_checkov() -> None:
    """Checkov's Dockerfile checks, run from its own virtualenv (make test installs it)."""
    assert CHECKOV.exists(), f"{CHECKOV} missing: run scripts/install-checkov.sh (make test does)"
    skips = yaml.safe_load((REPO_ROOT / ".checkov.yaml").read_text())["skip-check"]
    result = subprocess.run(
        [
            str(CHECKOV), "--directory", str(REPO_ROOT / "components"), "--framework", "dockerfile",
            "--skip-download", "--output", "json",
            "--config-file", str(REPO_ROOT / ".checkov.yaml"),
        ],
        capture_output=True, text=True, timeout=300, check=False, cwd=REPO_ROOT,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )  # fmt: skip
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['file_path']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert summary["failed"] == 0, failed
    assert summary["passed"] >= 100, summary
    files = {c["file_path"] for c in report["results"]["passed_checks"]}
    sources = {
        f"/{p.relative_to(REPO_ROOT / 'components').as_posix()}/Dockerfile"
        for p in IMAGE_SOURCES.values()
    }
    assert sources <= files, files
    assert summary["skipped"] == len(skips) == 0


@pytest.mark.parametrize("name", ["server", "web", "backup"])
def test_dockerfiles_run_unprivileged_with_pinned_bases(name: str) -> None:
    text = (IMAGE_SOURCES[name] / "Dockerfile").read_text()
    froms = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    assert froms, f"{name}/Dockerfile: no FROM line read"
    for base in froms:
        assert ":" in base and not base.endswith(":latest"), base
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "HEALTHCHECK" in text
