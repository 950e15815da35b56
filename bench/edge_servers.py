"""The servers of ``bench/edge.py``: a fast nginx upstream, the plain proxy, the edge through
``python -m tools.edge``, each in its own process group with its log in a file; and what the
bench reads of a running nginx (its processes' CPU time and memory, ``nginx -t`` time, the
decision the edge logged for a request).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.edge.run import SAMPLE_SITE, localize, nginx_command, prepare  # noqa: E402

BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
EDGE, PLAIN, SYNTHETIC = "edge", "plain", "synthetic"
CONFIG_TESTS = 3
"""``nginx -t`` runs per configuration (the median counts)."""


START_SECONDS = 180.0
"""tools.edge renders the stack first (the program under mocks), then starts nginx."""


STOP_SECONDS = 15.0


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


_WORKERS = re.compile(r"^\s*worker_processes\s+(\S+);", re.MULTILINE)


_PSS = re.compile(r"^Pss:\s+(\d+) kB", re.MULTILINE)


UPSTREAM_CONFIG = """\
# bench upstream: a stand-in for the server that is never the bottleneck
worker_processes 1;
pid run/nginx.pid;
error_log stderr warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path run/client_body;
    proxy_temp_path run/proxy;
    fastcgi_temp_path run/fastcgi;
    uwsgi_temp_path run/uwsgi;
    scgi_temp_path run/scgi;
    keepalive_timeout 75s;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        default_type application/json;
        location / {{
            return 200 '{{"ok":true}}';
        }}
    }}
}}
"""


PLAIN_CONFIG = """\
# bench plain proxy: the edge's nginx.conf tuning, upstream pool and log volume; no edge rules
worker_processes {workers};
worker_rlimit_nofile 16384;
pid run/nginx.pid;
error_log stderr warn;
pcre_jit on;
events {{
    worker_connections 4096;
}}
http {{
    include mime.types;
    default_type application/octet-stream;
    charset utf-8;
    server_tokens off;
    client_body_temp_path run/client_body;
    proxy_temp_path run/proxy;
    fastcgi_temp_path run/fastcgi;
    uwsgi_temp_path run/uwsgi;
    scgi_temp_path run/scgi;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=2000 inactive=120s;
    open_file_cache_valid 120s;
    open_file_cache_min_uses 1;
    open_file_cache_errors on;
    keepalive_timeout 75s;
    keepalive_requests 1000;
    gzip on;
    gzip_comp_level 5;
    gzip_min_length 1024;
    gzip_proxied any;
    gzip_vary on;
    gzip_types text/css text/plain text/javascript application/javascript application/json
               application/manifest+json application/wasm image/svg+xml application/xml;

    # the edge's access log line, field for field (the edge-only values as constants)
    log_format plain_access escape=json
        '{{"event":"access","time":"$time_iso8601","request_id":"$request_id",'
        '"client":"$remote_addr","peer":"$realip_remote_addr","method":"$request_method",'
        '"path":"$request_uri","status":$status,"bytes":$body_bytes_sent,'
        '"upstream_time":"$upstream_response_time","request_time":$request_time,'
        '"user_agent":"$http_user_agent","referer":"$http_referer","host":"$host",'
        '"decision":"pass","rate_limit":"$limit_req_status"}}';
    access_log /dev/stdout plain_access;

    upstream plain_server {{
        server 127.0.0.1:{upstream} max_fails=0;
        keepalive 32;
        keepalive_requests 1000;
        keepalive_timeout 60s;
    }}

    server {{
        listen 127.0.0.1:{port};
        server_name _;
        root html;
        location = /healthz {{
            access_log off;
            default_type text/plain;
            return 200 "ok\\n";
        }}
        location /api/ {{
            proxy_pass http://plain_server;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # what any proxy in front of Django passes (Debian's /etc/nginx/proxy_params)
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
        location / {{
            try_files $uri $uri/ /index.html;
        }}
    }}
}}
"""


class BenchError(Exception):
    """The bench could not measure: reported on stderr, exit 2 (or 1 for failed runs)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Server:
    """A running server of the bench: its port, process (its own process group), and the
    files its stdout (the access log) and stderr go to."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    errors: Path
    started: float = field(default_factory=time.perf_counter)
    ready_seconds: float = 0.0

    def tail(self, lines: int = 20) -> str:
        """The end of the server's stderr, for error messages."""
        text = self.errors.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(
    name: str, command: Sequence[str], port: int, folder: Path, stack: contextlib.ExitStack
) -> Server:
    """Start ``command`` in its own process group, stdout and stderr to files in ``folder``;
    registered on ``stack`` to be stopped."""
    log, errors = folder / f"{name}.log", folder / f"{name}.err"
    with log.open("ab") as out, errors.open("ab") as err:
        process = subprocess.Popen(
            list(command),
            cwd=ROOT,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    server = Server(name, port, process, log, errors)
    stack.callback(stop, server)
    return server


def stop(server: Server) -> None:
    """SIGTERM to the server's leader (tools.edge stops nginx gracefully and exits 0; nginx
    stops at once), then SIGKILL to whatever is left of its process group."""
    process = server.process
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            print(
                f"warning: {server.name} did not stop within {STOP_SECONDS:.0f} s", file=sys.stderr
            )
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def get(
    port: int, path: str, request_id: str | None = None, agent: str = BROWSER
) -> tuple[int, bytes]:
    """Status and body of one GET with ``agent`` as User-Agent."""
    headers = {"User-Agent": agent}
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for_nginx(server: Server, path: str) -> None:
    """Until nginx answers ``path`` with 200."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(
                f"{server.name} exited with {server.process.returncode}:\n{server.tail()}"
            )
        with contextlib.suppress(OSError):
            if get(server.port, path)[0] == 200:
                server.ready_seconds = time.perf_counter() - server.started
                return
        time.sleep(0.05)
    raise BenchError(f"{server.name} did not answer within {START_SECONDS:.0f} s")


def wait_for_edge(server: Server) -> None:
    """Until tools.edge prints that it listens (it checked /healthz itself)."""
    expected = f"listening on http://127.0.0.1:{server.port}".encode()
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if expected in server.log.read_bytes():
            server.ready_seconds = time.perf_counter() - server.started
            return
        if server.process.poll() is not None:
            raise BenchError(
                f"tools.edge ({server.name}) exited with {server.process.returncode}:\n"
                + server.tail()
            )
        time.sleep(0.1)
    raise BenchError(f"tools.edge ({server.name}) did not listen within {START_SECONDS:.0f} s")


def write_prefix(prefix: Path, files: dict[str, str]) -> None:
    """An nginx prefix laid out as tools.edge lays out its own (``edge/`` the configuration,
    ``html/`` the site, ``run/`` writable), readable by nginx's workers."""
    prepare(prefix, files, SAMPLE_SITE)


def start_upstream(folder: Path, nginx: str, stack: contextlib.ExitStack) -> Server:
    """The stand-in server: one nginx worker answering ``{"ok":true}``."""
    port = free_port()
    prefix = folder / "upstream"
    write_prefix(prefix, {"nginx.conf": UPSTREAM_CONFIG.format(port=port)})
    command = nginx_command(nginx, prefix, "-g", "daemon off;")
    server = launch("upstream", command, port, folder, stack)
    wait_for_nginx(server, "/")
    return server


def edge_workers(files: dict[str, str]) -> str:
    """The edge's ``worker_processes`` argument (``workers.conf``: one per CPU of the pod's
    limit), wherever in the rendered files it is."""
    found: list[str] = [m for text in files.values() for m in _WORKERS.findall(text)]
    if len(found) != 1:
        raise BenchError(f"expected one worker_processes in the edge's files, found {found}")
    return found[0]


def plain_config(port: int, upstream: int, workers: str) -> str:
    """The plain proxy's nginx.conf."""
    return PLAIN_CONFIG.format(port=port, upstream=upstream, workers=workers)


def start_plain(
    folder: Path,
    nginx: str,
    upstream: Server,
    edge_files: dict[str, str],
    stack: contextlib.ExitStack,
) -> Server:
    """The plain proxy, with the edge's worker count and ``mime.types`` (both serve the site
    alike)."""
    port = free_port()
    prefix = folder / PLAIN
    config = plain_config(port, upstream.port, edge_workers(edge_files))
    write_prefix(prefix, {"nginx.conf": config, "mime.types": edge_files["mime.types"]})
    server = launch(PLAIN, nginx_command(nginx, prefix, "-g", "daemon off;"), port, folder, stack)
    wait_for_nginx(server, "/healthz")
    return server


def start_edge(
    name: str, extra: Sequence[str], upstream: Server, folder: Path, stack: contextlib.ExitStack
) -> Server:
    """``python -m tools.edge`` with ``extra`` arguments (``--set``s, or ``--config-dir``); its
    prefix is kept under ``folder`` so it is removed with it whatever happens."""
    port = free_port()
    command = [
        sys.executable, "-m", "tools.edge", *extra, "--port", str(port),
        "--upstream", f"127.0.0.1:{upstream.port}", "--keep", str(folder / f"{name}-prefix"),
    ]  # fmt: skip
    return launch(name, command, port, folder, stack)


def write_folder(folder: Path, files: dict[str, str]) -> None:
    """``files`` into a new ``folder``, for ``--config-dir``."""
    folder.mkdir(parents=True)
    for name, content in files.items():
        (folder / name).write_text(content, encoding="utf-8")


def config_test_seconds(nginx: str, prefix: Path) -> float:
    """Median wall time of ``nginx -t`` on a prepared prefix: parsing, compiling the patterns
    and building the maps and geo trees, as at every start."""
    times = []
    for _ in range(CONFIG_TESTS):
        start = time.perf_counter()
        result = subprocess.run(
            nginx_command(nginx, prefix, "-t"), capture_output=True, text=True, check=False
        )
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise BenchError(f"nginx -t refused the configuration:\n{result.stderr.strip()}")
    return statistics.median(times)


def edge_config_test_seconds(nginx: str, files: dict[str, str], folder: Path) -> float:
    """``config_test_seconds`` for edge files, localized as tools.edge localizes them."""
    prefix = Path(tempfile.mkdtemp(prefix="config-test-", dir=folder))
    write_prefix(prefix, localize(files, port=free_port(), upstream="127.0.0.1:9", trust=()))
    try:
        return config_test_seconds(nginx, prefix)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(parent, []).append(int(entry.name))
    return tree


def nginx_pids(server: Server) -> list[int]:
    """The server's nginx processes, master and workers (not tools.edge's Python process)."""
    tree, pids = _children(), []
    pending = [server.process.pid]
    while pending:
        pid = pending.pop()
        pending.extend(tree.get(pid, []))
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "nginx":
                pids.append(pid)
    return pids


def nginx_memory_mib(server: Server) -> float:
    """Proportional set size (shared pages split among sharers) of the server's nginx
    processes, in MiB."""
    total = 0
    for pid in nginx_pids(server):
        with contextlib.suppress(OSError):
            pss = _PSS.search(Path(f"/proc/{pid}/smaps_rollup").read_text())
            total += int(pss.group(1)) if pss else 0
    return total / 1024


@dataclass(frozen=True)
class Placement:
    """The CPUs the bench's processes run on: the servers under test on ``servers`` (one per
    nginx worker), and the load, wrk and the upstream (and the bench itself, idle while wrk
    runs), on ``load``. Apart, a server under test has its CPUs to itself: its requests per
    second measure its own work per request, not how the scheduler shared the CPUs among
    four busy processes this time."""

    servers: frozenset[int]
    load: frozenset[int]

    def describe(self) -> str:
        def cpus(which: frozenset[int]) -> str:
            return ", ".join(str(cpu) for cpu in sorted(which))

        return (
            f"nginx under test on CPU {cpus(self.servers)}; "
            f"wrk and the upstream on CPU {cpus(self.load)}"
        )


def placement(workers: str, allowed: set[int] | None = None) -> Placement | None:
    """Where to run what: the first ``workers`` of the CPUs this process may use for the
    servers under test, the rest for the load; None when there are not more CPUs than
    workers (or the worker count is not a number), and nothing is pinned."""
    cpus = sorted(os.sched_getaffinity(0) if allowed is None else allowed)
    if not workers.isdigit() or not 0 < int(workers) < len(cpus):
        return None
    count = int(workers)
    return Placement(frozenset(cpus[:count]), frozenset(cpus[count:]))


def pin(server: Server, cpus: frozenset[int]) -> None:
    """Every nginx process of ``server`` (master and workers) onto ``cpus``."""
    pids = nginx_pids(server)
    if not pids:
        raise BenchError(f"{server.name}: no nginx process to pin\n{server.tail()}")
    for pid in pids:
        os.sched_setaffinity(pid, cpus)


def nginx_cpu_seconds(pids: Sequence[int]) -> float:
    """User and system CPU time of ``pids`` so far."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / CLOCK_TICKS


def logged_decision(server: Server, request_id: str) -> str | None:
    """The edge's logged decision for one request id (nginx logs after answering)."""
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        for line in server.log.read_text(encoding="utf-8", errors="replace").splitlines():
            if request_id in line and line.startswith("{"):
                event = json.loads(line)
                if event.get("request_id") == request_id:
                    return str(event.get("decision"))
        time.sleep(0.05)
    return None
