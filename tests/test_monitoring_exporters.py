"""The database exporters (``components.monitoring.exporters``): what the program renders, the
monitoring role's program against a real PostgreSQL set up like RDS (the master user no
superuser), and the real postgres_exporter and redis_exporter (Debian's builds,
scripts/install-monitoring-tools.sh) run with the rendered settings over TLS against throw-away
servers, producing every metric name the rules and dashboards use (``metrics.yaml``)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.monitoring import exporters
from components.monitoring.prometheus import EXPORTER_SERVICES, SCRAPE_TIMEOUT
from components.settings.model import DATABASE_EXPORTERS
from components.settings.rules import cpu_quantity, memory_quantity
from tests.backup_harness import PG_ROLE, Postgres, free_port, shared_folder
from tools import render
from tools.plan import Plan
from tools.preview import REPO_ROOT

METRICS = yaml.safe_load((REPO_ROOT / "components/monitoring/metrics.yaml").read_text())
PROGRAM = exporters.ROLE_PROGRAM / "monitor_role.py"
APP_DATABASE = "exposcholar"
INSTALL = "scripts/install-monitoring-tools.sh installs it (make test does)"

Document = dict[str, Any]


# ── What the program renders ──────────────────────────────────────────────────────────────


@pytest.fixture
def manifests(plan: Plan) -> dict[tuple[str, str], Document]:
    """Rendered objects by (kind, name)."""
    return {(d["kind"], d["metadata"]["name"]): d for d in render.render(plan).values()}


def _one(manifests: dict[tuple[str, str], Document], kind: str, prefix: str) -> Document:
    (found,) = [d for (k, name), d in manifests.items() if k == kind and name.startswith(prefix)]
    return found


def _pod(document: Document) -> dict[str, Any]:
    return dict(document["spec"]["template"]["spec"])


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


def _secret_volumes(pod: dict[str, Any]) -> dict[str, str]:
    return {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}


def test_exporters_run_where_prometheus_scrapes_them(
    manifests: dict[tuple[str, str], Document],
) -> None:
    """The Services are where prometheus.yml's jobs look (namespace, name, port name), in the
    application's namespace, on the nodes the data stores admit."""
    for job, name, number in (
        ("postgres-exporter", exporters.POSTGRES_EXPORTER, exporters.POSTGRES_EXPORTER_PORT),
        ("redis-exporter", exporters.REDIS_EXPORTER, exporters.REDIS_EXPORTER_PORT),
    ):
        namespace, service_name, port_name = EXPORTER_SERVICES[job]
        service = manifests["Service", service_name]
        assert service["metadata"]["namespace"] == namespace == "exposcholar"
        (port,) = service["spec"]["ports"]
        assert (port["name"], port["port"], port["targetPort"]) == (port_name, number, port_name)
        deployment = manifests["Deployment", name]
        assert deployment["metadata"]["namespace"] == namespace
        pod = _pod(deployment)
        assert pod["nodeSelector"] == {"exposcholar.io/pool": "app"}
        assert "tolerations" not in pod
        assert pod["automountServiceAccountToken"] is False
        (container,) = pod["containers"]
        assert container["ports"][0]["containerPort"] == number
        assert container["readinessProbe"] != container["livenessProbe"]
        probes = [container["readinessProbe"], container["livenessProbe"]]
        assert "/metrics" not in json.dumps(probes)


def test_every_pod_is_restricted_and_sized(manifests: dict[tuple[str, str], Document]) -> None:
    workloads = [
        manifests["Deployment", exporters.POSTGRES_EXPORTER],
        manifests["Deployment", exporters.REDIS_EXPORTER],
        _one(manifests, "Job", exporters.ROLE_JOB),
    ]
    for workload in workloads:
        pod = _pod(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert set(container["resources"]["limits"]) == {"cpu", "memory"}
            assert set(container["resources"]["requests"]) == {"cpu", "memory"}


def test_their_peak_fits_the_quota_reserved_for_them(
    manifests: dict[tuple[str, str], Document],
) -> None:
    """Two pods of each exporter (a rolling update's surge) and the Job: within
    ``DATABASE_EXPORTERS``, which the namespace quota check counts."""

    def limits(document: Document) -> tuple[int, int]:
        pod = _pod(document)

        def total(containers: list[dict[str, Any]], kind: str) -> int:
            parse = cpu_quantity if kind == "cpu" else memory_quantity
            return sum(parse(c["resources"]["limits"][kind]).base for c in containers)

        # a pod's effective limit: its containers' sum, or its largest init container
        return tuple(  # type: ignore[return-value]
            max(total(pod["containers"], kind),
                max((total([c], kind) for c in pod.get("initContainers", [])), default=0))
            for kind in ("cpu", "memory")
        )  # fmt: skip

    deployments = [
        manifests["Deployment", exporters.POSTGRES_EXPORTER],
        manifests["Deployment", exporters.REDIS_EXPORTER],
    ]
    for deployment in deployments:
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 1
    pods = [*deployments, *deployments, _one(manifests, "Job", exporters.ROLE_JOB)]
    assert len(pods) == DATABASE_EXPORTERS.pods
    assert sum(limits(p)[0] for p in pods) <= DATABASE_EXPORTERS.cpu.base
    assert sum(limits(p)[1] for p in pods) <= DATABASE_EXPORTERS.memory.base


def test_postgres_exporter_logs_in_as_the_monitoring_role_over_verified_tls(
    manifests: dict[tuple[str, str], Document],
) -> None:
    pod = _pod(manifests["Deployment", exporters.POSTGRES_EXPORTER])
    (container,) = pod["containers"]
    env = _env(container)
    assert env["DATA_SOURCE_USER"] == exporters.MONITOR_ROLE != PG_ROLE
    assert "DATA_SOURCE_NAME" not in env and "DATA_SOURCE_PASS" not in env
    uri = env["DATA_SOURCE_URI"]
    assert ".rds.amazonaws.com:5432/exposcholar?" in uri
    assert "sslmode=verify-full" in uri
    assert f"sslrootcert={exporters.RDS_CA_FILE}" in uri
    # the password: the generated Secret, never the master's
    secrets = _secret_volumes(pod)
    assert set(secrets.values()) == {exporters.PASSWORD_SECRET}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    (monitor,) = [name for name, secret in secrets.items() if secret == exporters.PASSWORD_SECRET]
    assert env["DATA_SOURCE_PASS_FILE"] == f"{mounts[monitor]}/{exporters.PASSWORD_KEY}"
    # the CA bundle: copied by the init container from the backup image into the mounted folder
    (init,) = pod["initContainers"]
    assert init["image"] == _one(manifests, "Job", exporters.ROLE_JOB)["spec"]["template"][
        "spec"]["containers"][0]["image"]  # fmt: skip
    assert "$DATABASE_SSLROOTCERT" in init["command"][-1]
    assert init["command"][-1].endswith(exporters.RDS_CA_FILE)
    assert exporters.RDS_CA_FILE.startswith(mounts["rds-ca"] + "/")
    timeout = [a for a in container["args"] if a.startswith("--collection-timeout=")]
    assert timeout and int(timeout[0].split("=")[1].rstrip("s")) < int(SCRAPE_TIMEOUT.rstrip("s"))
    dockerfile = (REPO_ROOT / "components/backups/program/Dockerfile").read_text()
    assert "DATABASE_SSLROOTCERT=" in dockerfile  # the bundle the init container copies


def test_redis_exporter_uses_tls_and_the_auth_token_from_a_secret_file(
    manifests: dict[tuple[str, str], Document],
) -> None:
    pod = _pod(manifests["Deployment", exporters.REDIS_EXPORTER])
    (container,) = pod["containers"]
    args = dict(a.split("=", 1) if "=" in a else (a, "") for a in container["args"])
    address = args["--redis.addr"]
    assert address.startswith("rediss://") and address.endswith(":6379")
    assert "--skip-tls-verification" not in args and "--redis.password" not in args
    assert "env" not in container  # no token in the environment
    assert args["--config-command"] == "-"
    assert "--disable-scrape-endpoint" in args
    secrets = _secret_volumes(pod)
    (name,) = secrets
    secret = manifests["Secret", secrets[name]]
    mount = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}[name]
    assert args["--redis.password-file"] == f"{mount}/{exporters.REDIS_PASSWORDS_KEY}"
    assert secret["stringData"][exporters.REDIS_PASSWORDS_KEY] == "[secret]"  # a secret Output
    # redis_exporter looks the token up by the address it connects to
    assert json.loads(exporters.redis_password_file(address, "token")) == {address: "token"}


def test_role_job_runs_with_the_master_credentials_bounded(
    manifests: dict[tuple[str, str], Document],
) -> None:
    job = _one(manifests, "Job", exporters.ROLE_JOB)
    spec = job["spec"]
    assert spec["backoffLimit"] == exporters.ROLE_JOB_RETRIES
    assert spec["activeDeadlineSeconds"] == exporters.ROLE_JOB_DEADLINE_SECONDS
    (rule,) = spec["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [2]
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] == {"exposcholar.io/pool": "app"}
    assert set(_secret_volumes(pod).values()) == {"database-credentials", exporters.PASSWORD_SECRET}
    (container,) = pod["containers"]
    assert "@sha256:" in container["image"]
    env = _env(container)
    assert env["DATABASE_SSLMODE"] == "verify-full"
    assert env["MONITOR_ROLE"] == exporters.MONITOR_ROLE
    config = manifests["ConfigMap", exporters.ROLE_JOB]
    assert config["data"] == exporters.role_program()
    assert container["command"] == ["python3", f"{exporters.PROGRAM_DIR}/{PROGRAM.name}"]


def test_password_is_generated_in_the_cluster_once(
    manifests: dict[tuple[str, str], Document],
) -> None:
    generator = manifests["Password", exporters.PASSWORD_GENERATOR]
    assert generator["apiVersion"] == exporters.GENERATOR_API_VERSION
    assert generator["spec"]["length"] >= 32 and generator["spec"]["symbols"] == 0
    external = manifests["ExternalSecret", exporters.PASSWORD_SECRET]
    assert external["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Ready"
    assert external["spec"]["refreshPolicy"] == "CreatedOnce"
    assert external["spec"]["target"]["name"] == exporters.PASSWORD_SECRET
    (source,) = external["spec"]["dataFrom"]
    assert source["sourceRef"]["generatorRef"] == {
        "apiVersion": exporters.GENERATOR_API_VERSION,
        "kind": "Password",
        "name": exporters.PASSWORD_GENERATOR,
    }
    # the pinned chart's CRDs serve that version (tools/engine records the chart)
    chart = json.loads((REPO_ROOT / "tools/engine/charts/external-secrets-0.19.2.json").read_text())
    assert chart["version"] == "0.19.2"


def test_the_plan_orders_role_job_before_the_exporter(plan: Plan) -> None:
    by_name = {r.name: r for r in plan.resources}
    job = by_name["exporters-role-job"]
    assert "exporters-password" in {d.rsplit("::", 1)[-1] for d in job.dependencies}
    deployment = by_name["exporters-postgres"]
    assert "exporters-role-job" in {d.rsplit("::", 1)[-1] for d in deployment.dependencies}


# ── The monitoring role's program against a real PostgreSQL ───────────────────────────────

MONITOR_PASSWORD = "Monitor0Password1For2Tests3Only4"  # a throw-away server's, not a secret
OTHER_PASSWORD = "Another5Password6For7Tests8Only9"  # likewise


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL whose master user is like RDS's: no superuser, CREATEROLE, and pg_monitor
    with its admin option (rds_superuser's); it owns the app database with an app table. Every
    statement is logged (to show the password never is)."""
    server = Postgres(shared_folder("monitor-role-")).start()
    try:
        server.admin("ALTER SYSTEM SET log_statement = 'all'")
        server.admin("SELECT pg_reload_conf()")
        server.admin(f"ALTER ROLE {PG_ROLE} CREATEROLE")
        server.admin(f"GRANT pg_monitor TO {PG_ROLE} WITH ADMIN OPTION")
        server.admin(f"CREATE DATABASE {APP_DATABASE} OWNER {PG_ROLE}")
        server.psql("CREATE TABLE papers (id int PRIMARY KEY, title text)", APP_DATABASE)
        server.psql("INSERT INTO papers VALUES (1, 'one')", APP_DATABASE)
        yield server
    finally:
        server.stop()


def run_role_program(
    server: Postgres, folder: Path, password: str, **overrides: str
) -> subprocess.CompletedProcess[str]:
    """``monitor_role.py`` as the Job runs it, with the master's credentials files."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "monitor-password").write_text(password + "\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PG")},
        "DATABASE_HOST": "127.0.0.1",
        "DATABASE_PORT": str(server.port),
        "DATABASE_NAME": APP_DATABASE,
        "DATABASE_SSLMODE": "disable",  # loopback; TLS is the exporter test's
        "DATABASE_CREDENTIALS_DIR": str(server.credentials(folder / "master")),
        "MONITOR_ROLE": exporters.MONITOR_ROLE,
        "MONITOR_PASSWORD_FILE": str(folder / "monitor-password"),
        **overrides,
    }
    return subprocess.run(
        [sys.executable, str(PROGRAM)], env=env, capture_output=True, text=True, check=False
    )


def as_monitor(
    server: Postgres, *sql: str, password: str = MONITOR_PASSWORD
) -> subprocess.CompletedProcess[str]:
    """``sql`` as the monitoring role, each statement a ``-c`` (a transaction of its own)."""
    env = {
        **os.environ,
        "PGHOST": "127.0.0.1",
        "PGPORT": str(server.port),
        "PGUSER": exporters.MONITOR_ROLE,
        "PGPASSWORD": password,
        "PGDATABASE": APP_DATABASE,
    }
    return subprocess.run(
        [binary("psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", *(f"-c{s}" for s in sql)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_role_is_created_least_privileged(postgres: Postgres, tmp_path: Path) -> None:
    assert exporters.MONITOR_ROLE == "exposcholar_monitor"  # the name the queries below use
    done = run_role_program(postgres, tmp_path, MONITOR_PASSWORD)
    assert done.returncode == 0, done.stderr
    role = postgres.admin(
        "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication, "
        "rolbypassrls, rolinherit FROM pg_roles WHERE rolname = 'exposcholar_monitor'"
    )
    assert role == "t|f|f|f|f|f|t"
    memberships = postgres.admin(
        "SELECT string_agg(g.rolname, ',') FROM pg_auth_members m JOIN pg_roles g "
        "ON g.oid = m.roleid JOIN pg_roles r ON r.oid = m.member "
        "WHERE r.rolname = 'exposcholar_monitor'"
    )
    assert memberships == "pg_monitor"
    # what postgres_exporter's collectors read: every session, sizes, settings, statistics
    postgres.psql("SELECT pg_sleep(0)", APP_DATABASE)
    for sql in (
        "SELECT count(*) FROM pg_stat_activity WHERE query IS NOT NULL "
        "AND query <> '<insufficient privilege>'",
        f"SELECT pg_database_size('{APP_DATABASE}') > 0",
        "SELECT setting FROM pg_settings WHERE name = 'max_connections'",
        "SELECT sum(deadlocks) >= 0 FROM pg_stat_database",
        "SELECT count(*) >= 0 FROM pg_stat_user_tables",
    ):
        done = as_monitor(postgres, sql)
        assert done.returncode == 0, (sql, done.stderr)
    insufficient = as_monitor(
        postgres, "SELECT count(*) FROM pg_stat_activity WHERE query = '<insufficient privilege>'"
    )
    assert insufficient.stdout.strip() == "0"
    # and nothing of the application's data, nor any write
    writes: tuple[tuple[tuple[str, ...], str], ...] = (
        (("SELECT * FROM papers",), "permission denied"),
        (("INSERT INTO papers VALUES (2, 'two')",), "read-only transaction"),
        (("CREATE TABLE mine (id int)",), "read-only transaction"),
        # read-only is a default a session can drop: the privileges still refuse the writes
        (("SET default_transaction_read_only = off", "INSERT INTO papers VALUES (2, 'two')"),
         "permission denied"),
        (("SET default_transaction_read_only = off", "CREATE TABLE mine (id int)"),
         "permission denied"),
    )  # fmt: skip
    for statements, error in writes:
        done = as_monitor(postgres, *statements)
        assert done.returncode != 0 and error in done.stderr, (statements, done.stderr)


def test_second_run_changes_nothing_and_a_new_password_replaces_the_old(
    postgres: Postgres, tmp_path: Path
) -> None:
    for _ in range(2):
        done = run_role_program(postgres, tmp_path / "same", MONITOR_PASSWORD)
        assert done.returncode == 0, done.stderr
        assert as_monitor(postgres, "SELECT 1").returncode == 0
    # a grant added by hand is taken back; the role's settings stay
    postgres.admin(f"GRANT pg_read_all_data TO {exporters.MONITOR_ROLE}")
    done = run_role_program(postgres, tmp_path / "new", OTHER_PASSWORD)
    assert done.returncode == 0, done.stderr
    assert as_monitor(postgres, "SELECT 1").returncode != 0  # the old password no longer works
    assert as_monitor(postgres, "SELECT 1", password=OTHER_PASSWORD).returncode == 0
    assert as_monitor(postgres, "SELECT * FROM papers", password=OTHER_PASSWORD).returncode != 0
    log = (postgres.folder / "log").read_text()
    assert "SCRAM-SHA-256$4096:" in log  # statements are logged: the verifier, never the password
    assert MONITOR_PASSWORD not in log and OTHER_PASSWORD not in log
    done = run_role_program(postgres, tmp_path / "back", MONITOR_PASSWORD)
    assert done.returncode == 0, done.stderr


def test_a_privileged_role_or_bad_input_is_refused(postgres: Postgres, tmp_path: Path) -> None:
    done = run_role_program(postgres, tmp_path / "short", "short")
    assert done.returncode == 2 and "printable ASCII" in done.stderr
    done = run_role_program(postgres, tmp_path / "master", MONITOR_PASSWORD, MONITOR_ROLE=PG_ROLE)
    assert done.returncode == 2 and "master user" in done.stderr
    done = run_role_program(postgres, tmp_path / "pg", MONITOR_PASSWORD, MONITOR_ROLE="pg_monitor")
    assert done.returncode == 2
    postgres.admin("CREATE ROLE grown_monitor REPLICATION")
    done = run_role_program(
        postgres, tmp_path / "grown", MONITOR_PASSWORD, MONITOR_ROLE="grown_monitor"
    )
    assert done.returncode == 1 and "replication" in done.stderr
    assert postgres.admin("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'grown_monitor'") == "f"


# ── The real exporters, with the rendered settings, over TLS ──────────────────────────────


def binary(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} missing: {INSTALL}"
    return path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and a server certificate for ``localhost``, readable by the postgres user."""
    folder = shared_folder("exporters-tls-")
    openssl = binary("openssl")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
        "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout",
        "server.key", "-out", "server.csr")  # fmt: skip
    (folder / "ext").write_text("subjectAltName=DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext", "-out", "server.pem")  # fmt: skip
    for path in folder.iterdir():
        path.chmod(0o600 if path.suffix == ".key" else 0o644)
        if os.geteuid() == 0:
            shutil.chown(path, user="postgres")
    return folder


def scrape(port: int, process: subprocess.Popen[bytes], wanted: str) -> str:
    """The exporter's ``/metrics`` once ``wanted`` (its up metric) reads 1."""
    text = ""
    for _ in range(100):
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                text = str(answer.read().decode())
        except OSError:
            time.sleep(0.1)
            continue
        if f"\n{wanted} 1\n" in f"\n{text}":
            return text
        time.sleep(0.2)
    raise AssertionError(f"{wanted} never 1:\n{text[-3000:]}")


def names_in(text: str) -> set[str]:
    return {
        line.split("{", 1)[0].split(" ", 1)[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def used(prefix: str) -> set[str]:
    return {name for name, exporter in METRICS.items() if exporter == prefix}


@pytest.fixture
def exporter_process() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.terminate()
        process.wait(timeout=10)


# flags of the pinned releases that Debian's older builds do not have (the rest is run as is)
NOT_IN_DEBIAN = {
    # postgres_exporter 0.11: --collection-timeout came in 0.14
    "--collection-timeout",
    # redis_exporter 1.45: --disable-scrape-endpoint came later
    "--disable-scrape-endpoint",
}


def _args(container: dict[str, Any], **replace: str) -> list[str]:
    out = []
    for arg in container.get("args", []):
        flag = arg.split("=", 1)[0]
        if flag in NOT_IN_DEBIAN:
            continue
        out.append(f"{flag}={replace[flag]}" if flag in replace else arg)
    return out


def test_postgres_exporter_reads_the_metrics_as_the_monitoring_role(
    postgres: Postgres,
    tls: Path,
    tmp_path: Path,
    manifests: dict[tuple[str, str], Document],
    exporter_process: list[subprocess.Popen[bytes]],
) -> None:
    postgres.admin(f"ALTER SYSTEM SET ssl_cert_file = '{tls / 'server.pem'}'")
    postgres.admin(f"ALTER SYSTEM SET ssl_key_file = '{tls / 'server.key'}'")
    postgres.admin("ALTER SYSTEM SET ssl = on")
    postgres.admin("SELECT pg_reload_conf()")
    assert run_role_program(postgres, tmp_path / "role", MONITOR_PASSWORD).returncode == 0
    (container,) = _pod(manifests["Deployment", exporters.POSTGRES_EXPORTER])["containers"]
    env = _env(container)
    _host, rest = env["DATA_SOURCE_URI"].split(":", 1)
    uri = f"localhost:{postgres.port}{rest[4:]}".replace(exporters.RDS_CA_FILE, str(tls / "ca.pem"))
    assert "sslmode=verify-full" in uri
    (tmp_path / "password").write_text(MONITOR_PASSWORD + "\n")
    port = free_port()
    args = _args(container, **{"--web.listen-address": f"127.0.0.1:{port}"})
    process = subprocess.Popen(
        [binary("prometheus-postgres-exporter"), *args],
        env={
            "PATH": os.environ["PATH"],
            "DATA_SOURCE_URI": uri,
            "DATA_SOURCE_USER": env["DATA_SOURCE_USER"],
            "DATA_SOURCE_PASS_FILE": str(tmp_path / "password"),
        },
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    exporter_process.append(process)
    postgres.psql("SELECT pg_sleep(0)", APP_DATABASE)
    text = scrape(port, process, "pg_up")
    missing = used("postgres-exporter") - names_in(text)
    assert not missing, f"postgres_exporter did not produce {sorted(missing)}"
    # connected over TLS, as the monitoring role
    sessions = postgres.admin(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
        "WHERE s.ssl AND a.usename = 'exposcholar_monitor'"
    )
    assert int(sessions) >= 1


@pytest.fixture
def redis_tls(tls: Path, tmp_path: Path) -> Iterator[tuple[int, str]]:
    """A redis-server on TLS only, with an AUTH password (ElastiCache's in-transit encryption
    and AUTH token)."""
    port, token = free_port(), "Redis0Auth1Token2For3Tests4Only5"
    process = subprocess.Popen(
        [binary("redis-server"), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(tls / "server.pem"), "--tls-key-file", str(tls / "server.key"),
         "--tls-ca-cert-file", str(tls / "ca.pem"), "--tls-auth-clients", "no",
         "--requirepass", token, "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        cli = [binary("redis-cli"), "--tls", "--cacert", str(tls / "ca.pem"), "-h", "localhost",
               "-p", str(port), "--no-auth-warning", "-a", token]  # fmt: skip
        for command in (["SET", "paper:1", "x"], ["GET", "paper:1"], ["GET", "missing"]):
            subprocess.run([*cli, *command], check=True, capture_output=True)
        yield port, token
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_redis_exporter_reads_the_metrics_over_tls_with_auth(
    redis_tls: tuple[int, str],
    tls: Path,
    tmp_path: Path,
    manifests: dict[tuple[str, str], Document],
    exporter_process: list[subprocess.Popen[bytes]],
) -> None:
    redis_port, token = redis_tls
    pod = _pod(manifests["Deployment", exporters.REDIS_EXPORTER])
    (container,) = pod["containers"]
    address = f"rediss://localhost:{redis_port}"
    # the Secret's file as the component writes it, for the test server's address
    (tmp_path / "passwords.json").write_text(exporters.redis_password_file(address, token))
    port = free_port()
    args = _args(
        container,
        **{
            "--redis.addr": address,
            "--redis.password-file": str(tmp_path / "passwords.json"),
            "--web.listen-address": f"127.0.0.1:{port}",
        },
    )
    # the test CA stands for the system CAs that carry Amazon's (the image's bundle)
    args.append(f"--tls-ca-cert-file={tls / 'ca.pem'}")
    process = subprocess.Popen(
        [binary("prometheus-redis-exporter"), *args],
        env={"PATH": os.environ["PATH"]},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    exporter_process.append(process)
    text = scrape(port, process, "redis_up")
    missing = used("redis-exporter") - names_in(text)
    assert not missing, f"redis_exporter did not produce {sorted(missing)}"


def test_redis_exporter_refuses_a_certificate_it_cannot_verify(
    redis_tls: tuple[int, str],
    tmp_path: Path,
    manifests: dict[tuple[str, str], Document],
    exporter_process: list[subprocess.Popen[bytes]],
) -> None:
    """Without the CA (the system bundle does not hold the test CA): no connection, redis_up 0."""
    redis_port, token = redis_tls
    (container,) = _pod(manifests["Deployment", exporters.REDIS_EXPORTER])["containers"]
    address = f"rediss://localhost:{redis_port}"
    (tmp_path / "passwords.json").write_text(exporters.redis_password_file(address, token))
    port = free_port()
    args = _args(
        container,
        **{
            "--redis.addr": address,
            "--redis.password-file": str(tmp_path / "passwords.json"),
            "--web.listen-address": f"127.0.0.1:{port}",
        },
    )
    process = subprocess.Popen(
        [binary("prometheus-redis-exporter"), *args],
        env={"PATH": os.environ["PATH"]},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    exporter_process.append(process)
    text = ""
    for _ in range(100):
        assert process.poll() is None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                text = answer.read().decode()
            break
        except OSError:
            time.sleep(0.1)
    assert "\nredis_up 0\n" in f"\n{text}", text[-2000:]
