"""The backup image runs the program the tests run: its Dockerfile copies ``backup/`` and makes
``python3 -m backup`` the entrypoint (the CronJobs pass only arguments), installs the pinned
boto3 the program needs (S3's conditional writes), and points libpq at the RDS CA bundle, so the
jobs' ``verify-full`` connections can succeed."""

from __future__ import annotations

import json
import re
from pathlib import Path

from backup.pg import Connection

PROGRAM = Path(__file__).resolve().parent.parent / "components" / "backups" / "program"
DOCKERFILE = (PROGRAM / "Dockerfile").read_text()


def instruction(name: str) -> list[str]:
    joined = DOCKERFILE.replace("\\\n", " ")
    return [
        line[len(name) + 1 :].strip() for line in joined.splitlines() if line.startswith(name + " ")
    ]


def test_the_entrypoint_is_the_program() -> None:
    (entrypoint,) = instruction("ENTRYPOINT")
    assert json.loads(entrypoint) == ["python3", "-m", "backup"]
    assert "backup /opt/backup/backup" in instruction("COPY")
    env = " ".join(instruction("ENV"))
    assert "PYTHONPATH=/opt/backup" in env and "/opt/backup/venv/bin" in env


def test_the_image_pins_the_boto3_the_tests_use() -> None:
    image = dict(
        line.split("==")
        for line in (PROGRAM / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    dev = (PROGRAM.parent.parent.parent / "requirements-dev.txt").read_text()
    assert f"boto3=={image['boto3']}" in dev
    assert image["botocore"] == image["boto3"]
    assert "-r /opt/backup/requirements.txt" in DOCKERFILE


def test_verify_full_connections_have_the_rds_ca_bundle(tmp_path: Path) -> None:
    env = " ".join(instruction("ENV"))
    bundle = re.search(r"DATABASE_SSLROOTCERT=(\S+)", env)
    assert bundle, "the image names the CA bundle for libpq"
    assert f"-o {bundle.group(1)}" in DOCKERFILE.replace("\\\n", " ")
    assert "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem" in DOCKERFILE
    (tmp_path / "username").write_text("master\n")
    (tmp_path / "password").write_text("pw\n")
    connection = Connection.from_environment(
        {
            "DATABASE_HOST": "db.example",
            "DATABASE_SSLMODE": "verify-full",
            "DATABASE_SSLROOTCERT": bundle.group(1),
            "DATABASE_CREDENTIALS_DIR": str(tmp_path),
        }
    )
    libpq = connection.environment("exposcholar")
    assert libpq["PGSSLMODE"] == "verify-full" and libpq["PGSSLROOTCERT"] == bundle.group(1)
    assert libpq["PGUSER"] == "master" and libpq["PGPASSWORD"] == "pw"


def test_the_restore_test_can_load_current_elasticache_exports() -> None:
    """Debian bookworm's redis-server is 7.0, which refuses RDB format 11 (Redis 7.2 and later,
    Valkey 8): the image takes redis-server from Redis's own image, at least 7.2, and
    redis-check-rdb is redis-server under that name."""
    version = re.search(r"^ARG REDIS_VERSION=(\d+)\.(\d+)", DOCKERFILE, re.MULTILINE)
    assert version and (int(version.group(1)), int(version.group(2))) >= (7, 2)
    assert "FROM redis:${REDIS_VERSION}-bookworm AS redis" in DOCKERFILE
    assert (
        "COPY --from=redis /usr/local/bin/redis-server /usr/local/bin/redis-cli /usr/local/bin/"
        in DOCKERFILE
    )
    assert "ln -s redis-server /usr/local/bin/redis-check-rdb" in DOCKERFILE
    install = next(p for p in " ".join(instruction("RUN")).split("&&") if "apt-get install" in p)
    assert "redis" not in install, "not Debian's redis-server"
