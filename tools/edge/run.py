"""``python -m tools.edge``: run a stack's edge configuration on loopback with a real nginx.

    python -m tools.edge STACK --port PORT --upstream HOST:PORT
        [--set KEY=VALUE]... [--trust CIDR]... [--site DIR] [--keep DIR]
        [--config-dir DIR] [--status-port PORT]

Runs the program for the stack under the mock runtime (as the offline preview does; ``--set``
changes a key of the stack file for this run only, e.g. ``--set maintenanceEnabled=true``),
takes the edge ConfigMap's files exactly as rendered, and starts Debian's nginx on them in a
temporary prefix: the prefix's ``html/`` holds ``--site`` (default: a stand-in laid out like
the Flutter build), ``run/`` and ``logs/`` (the metrics log, ``logs/metrics.log``) are nginx's
only writable folders. Four files are local, the only differences from the pods:
``listen.conf`` (127.0.0.1:PORT), ``status-listen.conf`` (stub_status on 127.0.0.1:
``--status-port``, a free port when not given), ``upstream.conf`` (``--upstream`` instead of
the server's Service) and ``trusted-proxies.conf`` (the stack's VPC plus each ``--trust``
address, to act as the load balancer from loopback).

``--config-dir`` runs the files of a folder instead of rendering them (``build/<stack>/edge``
after ``make preview``, or the bench's variants with longer lists); the local files are still
replaced.

Prints ``stub_status on http://127.0.0.1:STATUS_PORT/stub_status``, then ``listening on
http://127.0.0.1:PORT`` once nginx answers its health check; nginx's
access log (JSON lines) goes to stdout, its error log to stderr. SIGTERM or SIGINT stops nginx
gracefully and removes the prefix. Exit codes: 0 stopped cleanly, 1 nginx refused the
configuration or died, 2 bad arguments or stack configuration.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from components.settings import KEYS_BY_NAME, PROJECT, SettingsError
from tools.edge.rendered import NoEdgeError, edge_files
from tools.project import ConfigFileError, StackConfig, check_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_SITE = Path(__file__).resolve().parent / "site"
NGINX_CANDIDATES = ("nginx", "/usr/sbin/nginx")
STARTUP_SECONDS = 15.0
HEALTH_PATH = "/healthz"
LISTEN_FILE = "listen.conf"
STATUS_LISTEN_FILE = "status-listen.conf"
UPSTREAM_FILE = "upstream.conf"
TRUSTED_FILE = "trusted-proxies.conf"
_TRUSTED = re.compile(r"^set_real_ip_from\s+(\S+);", re.MULTILINE)
_UPSTREAM_SERVER = re.compile(r"^(\s*server\s+)\S+(\s)", re.MULTILINE)


class EdgeRunError(Exception):
    """A problem to report on stderr with an exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def find_nginx() -> str:
    for candidate in NGINX_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise EdgeRunError(
        1, "nginx not found: install it with `bash scripts/install-edge-tools.sh` (Debian nginx)"
    )


def override(config: StackConfig, assignments: Sequence[str]) -> StackConfig:
    """``config`` with ``KEY=VALUE`` assignments applied (values as the CLI passes them:
    booleans and numbers as text, arrays as JSON)."""
    values = dict(config.values)
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        key = key.removeprefix(f"{PROJECT}:")
        if not sep or key not in KEYS_BY_NAME:
            raise EdgeRunError(
                2, f"--set {assignment!r}: expected KEY=VALUE with a key of Pulumi.yaml"
            )
        if KEYS_BY_NAME[key].type == "array":
            try:
                json.loads(value)
            except json.JSONDecodeError:
                raise EdgeRunError(
                    2,
                    f"--set {assignment!r}: {key} is an array: give it as JSON, e.g. "
                    "'[\"203.0.113.0/24\"]'",
                ) from None
        values[f"{PROJECT}:{key}"] = value
    return StackConfig(config.stack, values, config.secret_keys, config.placeholders)


def render_stack(stack: str, assignments: Sequence[str] = ()) -> dict[str, str]:
    """The edge ConfigMap's files for the stack (with ``assignments``), as the preview renders
    them."""
    from tools.program import StageError, run_program  # noqa: PLC0415 - the SDKs load only here

    try:
        config = override(check_stack(REPO_ROOT, stack), assignments)
        plan = run_program(REPO_ROOT, config)
        return edge_files(plan)
    except ConfigFileError as exc:
        lines = "\n".join(f"  - {problem}" for problem in exc.problems)
        raise EdgeRunError(2, f"stack {stack!r}: configuration problems:\n{lines}") from None
    except SettingsError as exc:
        raise EdgeRunError(2, str(exc)) from None
    except StageError as exc:
        raise EdgeRunError(exc.exit_code, "\n".join(exc.lines)) from None
    except NoEdgeError as exc:
        raise EdgeRunError(1, f"stack {stack!r}: {exc}") from None


def read_folder(folder: Path) -> dict[str, str]:
    """The files of a rendered configuration folder."""
    if not (folder / "nginx.conf").is_file():
        raise EdgeRunError(2, f"--config-dir {folder}: expected the edge's files (nginx.conf)")
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.iterdir()) if p.is_file()}


def localize(
    files: dict[str, str],
    *,
    port: int,
    upstream: str,
    trust: Sequence[str],
    status_port: int | None = None,
) -> dict[str, str]:
    """The rendered files with the local ones changed: listen on 127.0.0.1:``port`` (and
    stub_status on 127.0.0.1:``status_port``, a free port when None), proxy to ``upstream``,
    and also trust ``trust`` as load balancers."""
    for name in (LISTEN_FILE, STATUS_LISTEN_FILE, UPSTREAM_FILE, TRUSTED_FILE):
        if name not in files:
            raise EdgeRunError(1, f"the rendered edge configuration has no {name}")
    local = dict(files)
    local[LISTEN_FILE] = f"listen 127.0.0.1:{port};\n"
    local[STATUS_LISTEN_FILE] = f"listen 127.0.0.1:{status_port or free_port()};\n"
    local[UPSTREAM_FILE], count = _UPSTREAM_SERVER.subn(
        lambda m: f"{m.group(1)}{upstream}{m.group(2)}", files[UPSTREAM_FILE], count=1
    )
    if count != 1:
        raise EdgeRunError(1, f"{UPSTREAM_FILE} names no upstream server to replace")
    trusted = [*_TRUSTED.findall(files[TRUSTED_FILE]), *trust]
    geo = "\n".join(f"    {cidr} 1;" for cidr in trusted)
    local[TRUSTED_FILE] = (
        "# local run: the stack's trusted proxies and --trust\n"
        + "".join(f"set_real_ip_from {cidr};\n" for cidr in trusted)
        + "geo $realip_remote_addr $edge_peer_trusted {\n    default 0;\n"
        + geo
        + "\n}\n"
    )
    return local


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def status_port(files: dict[str, str]) -> int:
    """The port of the stub_status server in the localized ``files``."""
    found = re.search(r":(\d+);", files[STATUS_LISTEN_FILE])
    if found is None:
        raise EdgeRunError(1, f"{STATUS_LISTEN_FILE} names no port")
    return int(found.group(1))


def prepare(prefix: Path, files: dict[str, str], site: Path) -> None:
    """``prefix``/edge (configuration), /html (the site), /run and /logs (writable), readable
    by the worker processes (which run as ``nobody`` when nginx starts as root)."""
    (prefix / "run").mkdir(parents=True, exist_ok=True)
    (prefix / "logs").mkdir(exist_ok=True)
    edge = prefix / "edge"
    edge.mkdir()
    for name, content in files.items():
        (edge / name).write_text(content, encoding="utf-8")
    shutil.copytree(site, prefix / "html")
    for root, _dirs, names in os.walk(prefix):
        os.chmod(root, 0o755)  # noqa: S103 - read by nginx's workers
        for name in names:
            os.chmod(Path(root) / name, 0o644)
    # nginx's workers write their temp files and logs here (as ``nobody`` under root)
    for writable in ("run", "logs"):
        os.chmod(prefix / writable, 0o777)  # noqa: S103 - a private temporary folder


def nginx_command(nginx: str, prefix: Path, *extra: str) -> list[str]:
    return [nginx, "-p", f"{prefix}/", "-c", str(prefix / "edge" / "nginx.conf"), "-e", "stderr",
            *extra]  # fmt: skip


def check_config(nginx: str, prefix: Path) -> None:
    """``nginx -t`` on the prepared prefix."""
    result = subprocess.run(  # noqa: S603 - nginx found on PATH, arguments of ours
        nginx_command(nginx, prefix, "-t"), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise EdgeRunError(1, f"nginx refused the configuration:\n{result.stderr.strip()}")


def wait_until_answering(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    url = f"http://127.0.0.1:{port}{HEALTH_PATH}"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EdgeRunError(1, f"nginx exited with status {process.returncode} on start")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise EdgeRunError(1, f"nginx did not answer {url} within {STARTUP_SECONDS:.0f} s")


def _port(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{raw} is not a TCP port")
    return value


def _upstream(raw: str) -> str:
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{raw!r} is not HOST:PORT")
    return raw


def _cidr(raw: str) -> str:
    try:
        return str(ipaddress.ip_network(raw, strict=True))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a CIDR with its host bits zero") from None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.edge",
        description="Run a stack's rendered edge configuration on loopback with nginx.",
    )
    parser.add_argument("stack", help="stack name (Pulumi.<stack>.yaml)")
    parser.add_argument("--port", type=_port, required=True, help="port on 127.0.0.1")
    parser.add_argument("--upstream", type=_upstream, required=True, help="the server, HOST:PORT")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="change a stack key for this run (arrays as JSON); repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--trust", action="append", default=[], type=_cidr, metavar="CIDR",
        help="also believe X-Forwarded-For from this address (a stand-in load balancer)",
    )  # fmt: skip
    parser.add_argument("--site", type=Path, default=SAMPLE_SITE, help="the web build to serve")
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="use DIR as the prefix and keep it afterwards"
    )
    parser.add_argument(
        "--status-port", type=_port, help="stub_status's port on 127.0.0.1 (default: a free one)"
    )
    parser.add_argument(
        "--config-dir", type=Path, metavar="DIR",
        help="run the nginx files in DIR (e.g. build/STACK/edge) instead of rendering the stack",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        nginx = find_nginx()
        if not (args.site / "index.html").is_file():
            raise EdgeRunError(2, f"--site {args.site}: expected a web build with index.html")
        if args.config_dir is not None:
            if args.set:
                raise EdgeRunError(2, "--set applies when rendering; not with --config-dir")
            rendered = read_folder(args.config_dir)
        else:
            rendered = render_stack(args.stack, args.set)
        files = localize(
            rendered,
            port=args.port,
            upstream=args.upstream,
            trust=args.trust,
            status_port=args.status_port,
        )
        if args.keep is not None and args.keep.exists():
            raise EdgeRunError(2, f"--keep {args.keep}: already exists; name a new folder")
        prefix = args.keep or Path(tempfile.mkdtemp(prefix=f"edge-{args.stack}-"))
        try:
            return serve(nginx, prefix, files, args)
        finally:
            if args.keep is None:
                shutil.rmtree(prefix, ignore_errors=True)
    except EdgeRunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code


def serve(nginx: str, prefix: Path, files: dict[str, str], args: argparse.Namespace) -> int:
    prepare(prefix, files, args.site)
    check_config(nginx, prefix)
    stopping: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    process = subprocess.Popen(nginx_command(nginx, prefix, "-g", "daemon off;"))  # noqa: S603
    try:
        wait_until_answering(process, args.port)
        print(f"stub_status on http://127.0.0.1:{status_port(files)}/stub_status", flush=True)
        print(f"listening on http://127.0.0.1:{args.port}", flush=True)
        while not stopping and process.poll() is None:
            time.sleep(0.1)
        if process.poll() is not None:
            raise EdgeRunError(1, f"nginx exited with status {process.returncode}")
        return 0
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)  # graceful: finish requests in flight
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
