#!/usr/bin/env python3
"""Benchmark: requests per second through the full edge configuration against a plain proxy.

    python bench/edge.py [--stack staging] [--duration 1] [--connections 32] [--threads 2]
        [--rounds 20] [--launches 4] [--no-pin]

What runs, all on loopback on this machine, at the same time (idle while not measured):

* **upstream**: a minimal nginx (``worker_processes 1``) answering every request with
  ``200 {"ok":true}``: a stand-in for the Django server fast enough that it is not what limits
  either side (a Python server would cap both equally and hide the edge's cost);
* **edge**: the stack's rendered edge configuration, started as an operator starts it,
  ``python -m tools.edge STACK --port P --upstream 127.0.0.1:UP --set ...``, with the API rate,
  burst and connection limits raised (``SETS``) so that wrk, one client address, measures the
  limit machinery without being refused (the ``limit_req`` and ``limit_conn`` lines stay);
* **plain**: a minimal proxy written here (``plain_config``) with what the edge shares with any
  nginx in front of a server and nothing of what makes it the edge: the edge's worker count
  (``worker_processes`` of its rendered files: one per CPU of the pod's limit), the same
  connection, keepalive and open-file-cache tuning, same keepalive pool to the upstream, the
  same static site (``tools/edge/site``) for ``/``, the standard proxy headers (Debian's
  ``proxy_params``), and an access log of the same JSON shape and volume to the same kind of
  sink (the edge logs JSON lines to ``/dev/stdout``; both servers' stdout is a file here), so
  logging is not what the ratio measures;
* **synthetic**: the edge's files with 5,000 synthetic user agents added to the block list
  (names spread over every first letter, ``synthetic_agent``) and 50,000 synthetic addresses to
  the blocked list (``user-agents.conf`` and ``clients.conf`` re-rendered through
  ``components.app.edge.config``), run with ``python -m tools.edge STACK
  --config-dir DIR``: what longer lists cost per request, at startup and in memory.

Placement: with more CPUs than the edge has workers, each server under test (its nginx
master and workers) is pinned to the first of them, one per worker, and the load, wrk and the
upstream, to the others (``--no-pin`` leaves every process on every CPU). Otherwise four busy
processes share the CPUs as the scheduler sees fit, which changes from one second to the next
and moves a one-second rate by more than the edge costs; apart, a server's rate is its own CPU
time per request, and the paired ratios agree to a percent or two. Pinned, both servers must
keep their CPU at least 90% busy on the targeted workloads (``busy``, printed): a plain proxy
held back by the load side would flatter the edge, and the run is then reported INCONCLUSIVE
(exit 3), whatever the ratios.

Workloads: ``GET /api/bench`` (proxied to the upstream) and ``GET /`` (the site's index.html,
served by nginx), each measured with ``wrk -t T -c C -d D --latency`` and a browser's
User-Agent (no X-Forwarded-For), for every configuration, interleaved (edge, plain, synthetic,
reversed every other round), ``--rounds`` rounds split over ``--launches`` launches of the
three servers under test (each started afresh, checked and warmed up untimed; the first edge
as an operator starts it, rendering the stack, later ones from the same rendered files with
``--config-dir``, as the synthetic variant always is). The ratio is
paired: in each round the configurations run back to back on each workload, so each round
gives one edge / plain ratio measured a second apart, and the median of those ratios counts,
printed with its quartiles (this machine's speed drifts by more than the edge's cost between
runs tens of seconds apart; a pair shares the drift). The median requests per second are
printed too, and the synthetic configuration's paired ratios to plain and to the edge.
Before measuring, one request per configuration and workload checks the answer (200, the
upstream's body through the proxies, the edge's logged decision ``pass``); any non-2xx answer
or socket error during a run fails the bench (a 403 or 429 would mean it measured refusals).
Also printed: the CPU time of each server's nginx processes per request (from /proc, median):
unpinned, wrk, the upstream and the server under test share this machine's cores, so the rps
ratio may dilute the edge's own cost, which this number shows undiluted; ``nginx -t`` time
(median of 3) and memory (PSS of nginx's master and workers) for the plain, shipped and
synthetic configurations, their time from launch to answering, and the access log bytes per
request.

Target: edge / plain >= 0.90 for every workload with the shipped lists; exits 1 when missed
(the synthetic rows are information, without a target), 2 when the bench itself cannot run, 3
when the run is INCONCLUSIVE (pinned, a server was not kept busy).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import NoReturn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edge_report import (  # noqa: E402 - bench/ is on sys.path when this runs
    SYNTHETIC_ADDRESSES,
    SYNTHETIC_AGENTS,
    WORKLOADS,
    Results,
    Run,
    report,
)
from edge_servers import (  # noqa: E402 - bench/ is on sys.path when this runs
    BROWSER,
    EDGE,
    PLAIN,
    SYNTHETIC,
    BenchError,
    Placement,
    Server,
    config_test_seconds,
    edge_config_test_seconds,
    edge_workers,
    get,
    logged_decision,
    nginx_cpu_seconds,
    nginx_memory_mib,
    nginx_pids,
    pin,
    placement,
    start_edge,
    start_plain,
    start_upstream,
    stop,
    wait_for_edge,
    write_folder,
)

from components.app.edge.config import (  # noqa: E402
    AgentLists,
    EdgeConfig,
    read_referrers,
    render_file,
    template_values,
)
from components.settings import SettingsError, parse_settings  # noqa: E402
from tools.edge.run import (  # noqa: E402
    EdgeRunError,
    find_nginx,
    override,
    render_stack,
)
from tools.project import ConfigFileError, check_stack  # noqa: E402

SETS = (
    "edgeApiRatePerSecond=100000",
    "edgeApiBurst=100000",
    "edgeConnectionsPerClient=10000",
)
"""Limits high enough that one client address is never refused: the zones still count (10,000
connections is the settings' maximum: 5,000 per pod at staging's floor of 2, wrk opens 32)."""
UPSTREAM_BODY = b'{"ok":true}'
WARM_UP_SECONDS = 1
MIN_ROUNDS = 4
VARIANT_FILES = ("user-agents.conf", "clients.conf")
"""The files the synthetic variant re-renders."""

_RPS = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", re.MULTILINE)
_SOCKET_ERRORS = re.compile(
    r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)
_P99 = re.compile(r"^\s*99%\s+(\S+)", re.MULTILINE)


def synthetic_agent(number: int) -> str:
    """A synthetic user agent such as ``qcfSynth0042``. The three letters in front spread the
    names over every first letter as a real list's are (names sharing one prefix let PCRE skip
    most positions of a user agent and understate what a longer list costs)."""
    code = number * 7919 % 26**3
    letters = "".join(chr(ord("a") + code // 26**k % 26) for k in range(3))
    return f"{letters}Synth{number:04d}"


def synthetic_files(stack_name: str, rendered: dict[str, str]) -> dict[str, str]:
    """``rendered`` with ``user-agents.conf`` and ``clients.conf`` re-rendered from the stack's
    settings and the repository's lists plus ``SYNTHETIC_AGENTS`` blocked user agents and
    ``SYNTHETIC_ADDRESSES`` blocked addresses, through ``template_values`` and ``render_file``
    as the edge renders them. Re-rendering with the lists unchanged must reproduce the stack's
    files exactly, or the bench no longer builds its variant the way the edge does."""
    try:
        config = override(check_stack(ROOT, stack_name), SETS)
        settings = parse_settings(stack_name, config.values).edge
    except (ConfigFileError, SettingsError, EdgeRunError) as exc:
        raise BenchError(f"stack {stack_name!r}: {exc}") from None
    agents, referrers = AgentLists.load(), read_referrers()

    def render(edge_config: EdgeConfig) -> dict[str, str]:
        values = template_values(edge_config)
        return {name: render_file(name, values[name]) for name in VARIANT_FILES}

    shipped = EdgeConfig(
        settings=settings,
        upstream="127.0.0.1:8080",  # not in the two files re-rendered
        trusted_proxies=("127.0.0.1/32",),
        agents=agents,
        referrers=referrers,
    )
    for name, content in render(shipped).items():
        if content != rendered[name]:
            raise BenchError(
                f"{name} re-rendered with the shipped lists differs from the stack's: the bench "
                "no longer builds its variant the way components/app/edge/config.py does"
            )
    names = tuple(synthetic_agent(i) for i in range(SYNTHETIC_AGENTS))
    addresses = tuple(f"100.64.{i // 256}.{i % 256}/32" for i in range(SYNTHETIC_ADDRESSES))
    variant = replace(
        shipped,
        settings=replace(settings, blocked_cidrs=(*settings.blocked_cidrs, *addresses)),
        agents=AgentLists(agents.allow, (*agents.block, *names), agents.limit),
    )
    return {**rendered, **render(variant)}


def check_answers(server: Server, workload: str, path: str, agent: str) -> None:
    """One request before measuring: 200, the upstream's answer through the proxy, and on the
    edge the decision ``pass`` (nothing blocked or limited)."""
    request_id = f"bench-probe-{server.name}-{workload}"
    try:
        status, body = get(server.port, path, request_id, agent)
    except OSError as exc:
        raise BenchError(f"{server.name}: GET {path} failed: {exc}\n{server.tail()}") from None
    if status != 200:
        raise BenchError(f"{server.name} answered GET {path} with {status}", code=1)
    if path.startswith("/api/") and body != UPSTREAM_BODY:
        raise BenchError(f"{server.name}: GET {path} did not reach the upstream: {body[:200]!r}")
    if server.name != PLAIN:
        decision = logged_decision(server, request_id)
        if decision != "pass":
            raise BenchError(
                f"{server.name}: GET {path} logged decision {decision!r}, expected 'pass'", code=1
            )


def wrk(port: int, path: str, args: argparse.Namespace, seconds: int, agent: str = BROWSER) -> Run:
    """One wrk run; a non-2xx answer or a socket error fails the bench."""
    url = f"http://127.0.0.1:{port}{path}"
    command = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{seconds}s",
               "--latency", "-H", f"User-Agent: {agent}", url]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=seconds + 60
    )
    output = result.stdout
    rps, total = _RPS.search(output), _TOTAL.search(output)
    if result.returncode != 0 or rps is None or total is None:
        raise BenchError(f"wrk failed ({result.returncode}) on {url}:\n{output}{result.stderr}")
    non_2xx = _NON_2XX.search(output)
    if non_2xx is not None and int(non_2xx.group(1)) > 0:
        raise BenchError(
            f"{url}: {non_2xx.group(1)} non-2xx answers of {total.group(1)}: the bench measured "
            f"refusals, not the configuration\n{output}",
            code=1,
        )
    errors = _SOCKET_ERRORS.search(output)
    if errors is not None and any(int(n) for n in errors.groups()):
        raise BenchError(f"{url}: socket errors during the run\n{output}", code=1)
    p99 = _P99.search(output)
    return Run(float(rps.group(1)), int(total.group(1)), p99.group(1) if p99 else "?")


def measured(server: Server, path: str, args: argparse.Namespace, agent: str = BROWSER) -> Run:
    """A wrk run against ``server`` with its nginx's CPU time per request."""
    pids = nginx_pids(server)
    before = nginx_cpu_seconds(pids)
    run = wrk(server.port, path, args, args.duration, agent)
    cpu = nginx_cpu_seconds(pids) - before
    return replace(run, cpu_us=cpu * 1e6 / max(1, run.requests))


def log_bytes_per_request(server: Server, requests: int) -> float:
    """Access log volume of the last run, then the log is emptied (nginx appends: O_APPEND)."""
    size = server.log.stat().st_size
    os.truncate(server.log, 0)
    return size / max(1, requests)


def launch_rounds(rounds: int, launches: int) -> list[range]:
    """The round numbers of each launch: ``rounds`` split as evenly as it goes."""
    bounds = [rounds * number // launches for number in range(launches + 1)]
    return [range(start, end) for start, end in itertools.pairwise(bounds)]


def measure(
    servers: dict[str, Server],
    args: argparse.Namespace,
    numbers: range,
    results: Results,
    say: Callable[[str], None],
) -> None:
    """Warm-up, then rounds ``numbers`` of every workload on every server: the plain proxy in
    the middle, so each configuration's pair with it is back to back, and the order reversed
    every other round, so neither goes first more often (with an even round count)."""
    for workload, path, agent in WORKLOADS:
        for server in servers.values():
            check_answers(server, workload, path, agent)
            wrk(server.port, path, args, WARM_UP_SECONDS, agent)
            os.truncate(server.log, 0)
    order = [EDGE, PLAIN, SYNTHETIC]
    for round_number in numbers:
        ordered = order if round_number % 2 == 0 else order[::-1]
        for workload, path, agent in WORKLOADS:
            for name in ordered:
                run = measured(servers[name], path, args, agent)
                results.add(workload, name, run, log_bytes_per_request(servers[name], run.requests))
                say(
                    f"round {round_number + 1}/{args.rounds} {workload:6} {name:9} "
                    f"{run.rps:10.0f} rps  p99 {run.p99:>7}  nginx CPU {run.cpu_us:5.1f} us/request"
                )


def _interrupt(signum: int, _frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt(f"signal {signum}")


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw} must be 1 or more")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/edge.py",
        description="Requests per second through the full edge configuration vs a plain proxy.",
    )
    parser.add_argument("--stack", default="staging", help="stack to render (default: staging)")
    parser.add_argument("--duration", type=_positive, default=1, help="seconds per wrk run")
    parser.add_argument("--connections", type=_positive, default=32, help="wrk connections")
    parser.add_argument("--threads", type=_positive, default=2, help="wrk threads")
    parser.add_argument("--rounds", type=_positive, default=20, help="rounds (4 or more)")
    parser.add_argument(
        "--launches",
        type=_positive,
        default=4,
        help="times the servers are started afresh, the rounds split among them (default 4)",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="leave every process on every CPU (default: servers under test apart from the load)",
    )
    args = parser.parse_args(argv)
    if args.rounds < MIN_ROUNDS:
        parser.error(f"--rounds must be {MIN_ROUNDS} or more (the ratios' quartiles)")
    if args.launches > args.rounds:
        parser.error("--launches must be at most --rounds")
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads")
    return args


@dataclass(frozen=True)
class Setup:
    """What every launch of the servers under test shares: the nginx binary, the upstream,
    the folder, the rendered edge files (``edge-config`` in it) and the synthetic ones
    (``synthetic-config``), and where the processes run."""

    args: argparse.Namespace
    nginx: str
    upstream: Server
    folder: Path
    rendered: dict[str, str]
    pinned: Placement | None


def start_servers(setup: Setup, number: int, stack: contextlib.ExitStack) -> dict[str, Server]:
    """Launch ``number`` of the edge, the plain proxy and the synthetic variant, in their own
    folder, answering and pinned. The first edge starts as an operator starts it (rendering the
    stack with the bench's ``--set``s); later ones from the same rendered files
    (``--config-dir``), as the synthetic variant always does."""
    where = setup.folder / f"launch-{number + 1}"
    where.mkdir()
    os.chmod(where, 0o755)  # noqa: S103 - readable test files, as the folder
    stack_name = setup.args.stack
    edge_args = (
        [stack_name, *(f"--set={assignment}" for assignment in SETS)]
        if number == 0
        else [stack_name, "--config-dir", str(setup.folder / "edge-config")]
    )
    edge = start_edge(EDGE, edge_args, setup.upstream, where, stack)
    synthetic_args = [stack_name, "--config-dir", str(setup.folder / "synthetic-config")]
    synthetic = start_edge(SYNTHETIC, synthetic_args, setup.upstream, where, stack)
    plain = start_plain(where, setup.nginx, setup.upstream, setup.rendered, stack)
    wait_for_edge(edge)
    wait_for_edge(synthetic)
    servers = {EDGE: edge, PLAIN: plain, SYNTHETIC: synthetic}
    if setup.pinned is not None:
        for server in servers.values():
            pin(server, setup.pinned.servers)
    return servers


def stop_servers(servers: dict[str, Server], say: Callable[[str], None]) -> None:
    """Stop the two tools.edge runs of a launch, saying so when one did not exit cleanly (the
    plain proxy stops with the launch's stack)."""
    for name in (EDGE, SYNTHETIC):
        stop(servers[name])
        if servers[name].process.returncode != 0:
            say(f"warning: tools.edge ({name}) exited {servers[name].process.returncode}")


def run(args: argparse.Namespace) -> int:
    """Render, start the upstream, then measure over ``args.launches`` launches of the servers
    under test, print, stop everything; the verdict (``report``). (Single-launch runs of one
    configuration gave medians a percent or two apart, more than their rounds' spread
    explains; whatever a launch brings, several average it out.)"""
    nginx = find_nginx()
    if shutil.which("wrk") is None:
        raise BenchError("wrk not found: install it with `bash scripts/install-edge-tools.sh`")

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-edge-")))
        # nginx's workers (nobody, when started as root) read the prefixes inside
        os.chmod(folder, 0o755)  # noqa: S103 - a folder of readable test files
        say(f"rendering {args.stack} (the bench's copy, and its synthetic variant) ...")
        try:
            rendered = render_stack(args.stack, SETS)
        except EdgeRunError as exc:
            raise BenchError(str(exc)) from None
        variant = synthetic_files(args.stack, rendered)
        write_folder(folder / "edge-config", rendered)
        write_folder(folder / "synthetic-config", variant)
        upstream = start_upstream(folder, nginx, stack)
        workers = edge_workers(rendered)
        pinned = None if args.no_pin else placement(workers)
        if pinned is not None:
            # the bench's own children from now on (wrk) start on the load's CPUs
            os.sched_setaffinity(0, pinned.load)
            pin(upstream, pinned.load)
        say(f"placement: {pinned.describe() if pinned else 'not pinned'}")
        setup = Setup(args, nginx, upstream, folder, rendered, pinned)
        results = Results()
        ready: dict[str, float] = {}
        memory: dict[str, float] = {}
        for number, rounds in enumerate(launch_rounds(args.rounds, args.launches)):
            with contextlib.ExitStack() as launch:
                say(f"launch {number + 1}/{args.launches}: starting the servers ...")
                servers = start_servers(setup, number, launch)
                ready = ready or {name: server.ready_seconds for name, server in servers.items()}
                measure(servers, args, rounds, results, say)
                memory = {name: nginx_memory_mib(server) for name, server in servers.items()}
                stop_servers(servers, say)
        config_tests = {
            PLAIN: config_test_seconds(nginx, folder / "launch-1" / PLAIN),
            EDGE: edge_config_test_seconds(nginx, rendered, folder),
            SYNTHETIC: edge_config_test_seconds(nginx, variant, folder),
        }
        sizes = {
            EDGE: sum(len(rendered[name].encode()) for name in VARIANT_FILES),
            SYNTHETIC: sum(len(variant[name].encode()) for name in VARIANT_FILES),
        }
        return report(
            results,
            config_tests=config_tests,
            memory=memory,
            ready=ready,
            sizes=sizes,
            pinned=pinned,
            workers=int(workers) if workers.isdigit() else 1,
            launches=launch_rounds(args.rounds, args.launches),
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    start = time.perf_counter()
    try:
        verdict = run(args)
    except BenchError as exc:
        print(f"error: {str(exc).removeprefix('error: ')}", file=sys.stderr)
        return exc.code
    except EdgeRunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: every process stopped, temporary files removed", file=sys.stderr)
        return 130
    print(f"total time: {time.perf_counter() - start:.0f} s")
    return verdict


if __name__ == "__main__":
    sys.exit(main())
