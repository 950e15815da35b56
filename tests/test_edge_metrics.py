"""The edge pod's metrics sidecars with their real programs: the staging edge on loopback
(``python -m tools.edge``) writes its metrics log and serves stub_status; the edgemetrics
image's entry script (``components/app/edge/metrics/edge-log-metrics``) runs Debian's mtail,
the version the image installs, over that log with the image's program; Debian's
prometheus-nginx-exporter reads the stub_status. What Prometheus would scrape is checked
against the requests sent and against ``components/monitoring/metrics.yaml``.

Needs ``mtail`` and ``prometheus-nginx-exporter`` (``scripts/install-edge-tools.sh``, run by
``make test``): without them these tests fail, they never skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
import yaml

from components.app.edge.config import METRICS_LOG, METRICS_LOG_DIR, STATUS_PATH
from tests.edge_harness import BROWSERS, GOOD_BOTS, Edge, Upstream, edge, free_port, request
from tests.edge_harness import upstream as stub_upstream

REPO_ROOT = Path(__file__).resolve().parents[1]
METRICS_DIR = REPO_ROOT / "components" / "app" / "edge" / "metrics"
ENTRY = METRICS_DIR / "edge-log-metrics"
METRICS_YAML = REPO_ROOT / "components" / "monitoring" / "metrics.yaml"
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def _tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is not installed: run scripts/install-edge-tools.sh (make test does)"
    return found


def _samples(port: int) -> list[tuple[str, dict[str, str], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and not line.startswith("#"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
            samples.append((match["name"], labels, float(match["value"])))
    return samples


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            errors = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise AssertionError(f"{what} exited with {process.returncode}:\n{errors[-3000:]}")
        try:
            _samples(port)
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{what} did not answer on {port}")


def _exporter_names(exporter: str) -> set[str]:
    mapping = yaml.safe_load(METRICS_YAML.read_text())
    return {name for name, source in mapping.items() if source == exporter}


class LogMetrics:
    """The entry script running over ``log``; mtail listens on a port it picks (port 0), read
    from its log, so no other process can take the port between choosing and binding it."""

    def __init__(self, log: Path, **env: str) -> None:
        self.log = log
        self.errors: list[str] = []
        self.process = subprocess.Popen(
            ["/bin/sh", str(ENTRY)],
            env={
                **os.environ,
                "EDGE_METRICS_LOG": str(log),
                "EDGE_METRICS_PROGS": str(METRICS_DIR),
                "EDGE_METRICS_PORT": "0",
                **env,
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        threading.Thread(target=self._pump, args=(self.process.stderr,), daemon=True).start()
        self.port = self._listening_port()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.errors.append(line.rstrip("\n"))

    def _listening_port(self) -> int:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for line in self.errors:
                found = re.search(r"Listening on \S*:(\d+)$", line)
                if found:
                    return int(found.group(1))
            if self.process.poll() is not None:
                time.sleep(0.2)
                break
            time.sleep(0.05)
        raise AssertionError(
            f"edge-log-metrics did not listen (exit {self.process.poll()}):\n"
            + "\n".join(self.errors[-40:])
        )

    def counts(self) -> Counter[tuple[str, str]]:
        return Counter(
            {
                (labels["decision"], labels["status"]): int(value)
                for name, labels, value in _samples(self.port)
                if name == "edge_requests_total"
            }
        )

    def settled(self) -> Counter[tuple[str, str]]:
        """The counts once unchanged for a second (four of mtail's reads)."""
        last, since = self.counts(), time.monotonic()
        while time.monotonic() - since < 1.0:
            time.sleep(0.1)
            now = self.counts()
            if now != last:
                last, since = now, time.monotonic()
        return last

    def honeypot_hits(self) -> int:
        (hits,) = [v for name, _, v in _samples(self.port) if name == "edge_honeypot_hits_total"]
        return int(hits)

    def wait_for(self, expected: Counter[tuple[str, str]], timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.counts() != expected:
            assert time.monotonic() < deadline, (dict(self.counts()), dict(expected))
            time.sleep(0.2)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=15)


@pytest.fixture(scope="module")
def stub() -> Iterator[Upstream]:
    with stub_upstream() as running:
        yield running


@pytest.fixture(scope="module")
def running(stub: Upstream) -> Iterator[Edge]:
    """The staging edge, its prefix kept where the test reads the metrics log (a folder nginx's
    workers, ``nobody`` under root, can traverse: pytest's own temporary folders are private)."""
    base = Path(tempfile.mkdtemp(prefix="edge-metrics-"))
    os.chmod(base, 0o755)  # noqa: S103 - a temporary folder of this test
    try:
        with edge("staging", stub.port, keep=base / "prefix") as run:
            yield run
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _prefix(edge_run: Edge) -> Path:
    """The ``--keep`` prefix the edge was started with."""
    args = [str(arg) for arg in edge_run.process.args]  # type: ignore[union-attr]
    return Path(args[args.index("--keep") + 1])


def _status_url(edge_run: Edge) -> str:
    (line,) = [line for line in edge_run.lines if line.startswith("stub_status on ")]
    return line.removeprefix("stub_status on ")


def test_the_image_installs_the_mtail_the_tests_run() -> None:
    dockerfile = (METRICS_DIR / "Dockerfile").read_text()
    pinned = re.search(r"^ARG MTAIL_VERSION=(\S+)$", dockerfile, re.M)
    assert pinned is not None
    installed = subprocess.run(
        [_tool("dpkg-query"), "-W", "-f", "${Version}", "mtail"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, "mtail is not installed (scripts/install-edge-tools.sh)"
    assert installed.stdout == pinned.group(1)
    assert 'ENTRYPOINT ["/usr/local/bin/edge-log-metrics"]' in dockerfile
    assert "COPY edge.mtail /etc/mtail/" in dockerfile
    # the exporter the nginx-metrics sidecar runs, from its release image at build time
    assert re.search(r"^ARG NGINX_EXPORTER_VERSION=1\.4\.2$", dockerfile, re.M)
    assert "COPY --from=nginx-exporter /usr/bin/nginx-prometheus-exporter /usr/local/bin/" in (
        dockerfile
    )
    compiled = subprocess.run(
        [_tool("mtail"), "--compile_only", "--progs", str(METRICS_DIR)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert compiled.returncode == 0, compiled.stderr


def test_the_decisions_of_every_request_reach_prometheus(running: Edge) -> None:
    log = _prefix(running) / METRICS_LOG_DIR / METRICS_LOG
    sidecar = LogMetrics(log)
    try:
        sent: Counter[tuple[str, str]] = Counter()

        def send(path: str, agent: str | None, source: str = "127.0.0.1") -> None:
            answer = request(running.port, path, agent=agent, source=source)
            sent[(_decision_of(running, answer.header("X-Request-ID")), str(answer.status))] += 1

        for agent in BROWSERS[:3]:
            send("/", agent)
            send("/api/papers", agent)
        send("/", GOOD_BOTS[0])
        for path in ("/wp-login.php", "/.env", "/.git/config"):
            send(path, BROWSERS[0])
        for agent in ("sqlmap/1.7.2#stable (https://sqlmap.org)", "Nikto/2.5.0"):
            send("/", agent)
        for _ in range(4):  # a limited bot past its burst: 429
            send("/", None, source="127.0.0.40")
        # health checks are not logged, so not counted
        assert request(running.port, "/healthz", agent="kube-probe/1.33").status == 200
        assert ("honeypot", "403") in sent and ("blocked-agent", "403") in sent
        assert ("limited-bot", "429") in sent and ("pass", "200") in sent
        assert ("good-bot", "200") in sent
        # nginx flushes its 64 KiB block within a second; mtail reads it within 250 ms
        sidecar.wait_for(sent)
        assert sidecar.honeypot_hits() == sent[("honeypot", "403")]
        # the metrics log holds exactly the stdout log's decisions and statuses
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        assert Counter((e["decision"], str(e["status"])) for e in lines) == sent
    finally:
        assert sidecar.stop() == 0  # SIGTERM stops mtail, and the script, cleanly


def _decision_of(edge_run: Edge, request_id: str | None) -> str:
    """The decision the edge logged on stdout (its JSON access log) for one request."""
    assert request_id
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        for event in edge_run.events("access") + edge_run.events("honeypot"):
            if event.get("request_id") == request_id:
                return str(event["decision"])
        time.sleep(0.02)
    raise AssertionError(f"no log line for {request_id}")


def test_nginx_prometheus_exporter_reads_the_stub_status(running: Edge) -> None:
    url = _status_url(running)
    assert url.endswith(STATUS_PATH)
    port = free_port()
    exporter = subprocess.Popen(
        [
            _tool("prometheus-nginx-exporter"),
            f"--nginx.scrape-uri={url}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.telemetry-path=/metrics",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, exporter, "prometheus-nginx-exporter")
        before = {name: value for name, _, value in _samples(port)}
        for _ in range(5):
            assert request(running.port, "/", agent=BROWSERS[0]).status == 200
        after = {name: value for name, _, value in _samples(port)}
        assert after["nginx_up"] == 1
        # every nginx_* name the rules and dashboards use is produced
        assert _exporter_names("nginx-prometheus-exporter") <= set(after)
        # stub_status counts every request (the scrapes themselves included)
        assert after["nginx_http_requests_total"] - before["nginx_http_requests_total"] >= 5
    finally:
        exporter.terminate()
        exporter.wait(timeout=10)
    # the counters are not served on the edge's own port (it is the status server's alone)
    assert b"Active connections" not in request(running.port, STATUS_PATH, agent=BROWSERS[0]).body


def test_the_log_is_emptied_past_its_size_and_counting_goes_on(tmp_path: Path) -> None:
    log = tmp_path / "metrics.log"
    line = '{"decision":"pass","status":200}\n'
    sidecar = LogMetrics(
        log, EDGE_METRICS_LOG_MAX_BYTES=str(len(line) * 20), EDGE_METRICS_CHECK_SECONDS="0.2"
    )
    try:
        assert log.exists() and log.stat().st_size == 0  # created empty, for nginx to append
        with log.open("a") as out:
            out.write(line * 10)
        sidecar.wait_for(Counter({("pass", "200"): 10}))
        with log.open("a") as out:  # past the limit: emptied at the next check
            out.write(line * 15)
        deadline = time.monotonic() + 10
        while log.stat().st_size:
            assert time.monotonic() < deadline, "the log was not emptied"
            time.sleep(0.05)
        counted = sidecar.settled()[("pass", "200")]
        assert 10 <= counted <= 25  # never counted twice
        with log.open("a") as out:  # what comes after is read from the file's new start
            out.write(line * 7 + '{"decision":"honeypot","status":403}\n')
        sidecar.wait_for(Counter({("pass", "200"): counted + 7, ("honeypot", "403"): 1}))
        assert sidecar.honeypot_hits() == 1
    finally:
        assert sidecar.stop() == 0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EDGE_METRICS_LOG_MAX_BYTES": "16M"}, "EDGE_METRICS_LOG_MAX_BYTES must be a number"),
        ({"EDGE_METRICS_LOG": "/nonexistent/logs/metrics.log"}, "its folder does not exist"),
    ],
)
def test_bad_settings_are_refused_before_anything_runs(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    result = subprocess.run(
        ["/bin/sh", str(ENTRY)],
        env={
            **os.environ,
            "EDGE_METRICS_LOG": str(tmp_path / "metrics.log"),
            "EDGE_METRICS_PROGS": str(METRICS_DIR),
            "EDGE_METRICS_PORT": str(free_port()),
            **env,
        },
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "metrics.log").exists()
