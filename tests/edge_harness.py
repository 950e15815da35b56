"""What the edge tests and the bench share: a stub upstream that echoes what it received, the
edge started through ``python -m tools.edge`` (the same command an operator runs), and HTTP
requests from chosen loopback source addresses (each test its own client address, so rate
limits and blocks of one test never touch another)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
START_SECONDS = 120.0
BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.6778.81 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.70",
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 OPR/115.0.0.0",
    # in-app browsers (WeChat, QQ) and Internet Explorer's compatibility view
    "Mozilla/5.0 (Linux; Android 13; V2227A) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 XWEB/1160065 MMWEBSDK/20231202 "
    "MMWEBID/2247 MicroMessenger/8.0.47.2560(0x28002F30) WeChat/arm64 Weixin NetType/WIFI "
    "Language/zh_CN ABI/arm64",
    "Mozilla/5.0 (Linux; U; Android 12; zh-cn; PDEM10 Build/SKQ1.211019.001) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/109.0.5414.86 MQQBrowser/14.2 Mobile Safari/537.36",
    "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 10.0; WOW64; Trident/7.0; .NET4.0C; "
    "Microsoft Outlook 16.0.17928; ms-office; MSOffice 16)",
)
BROWSER = BROWSERS[0]
GOOD_BOTS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
    "Blackbox Exporter/0.23.0",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Upstream:
    """A stand-in for the Django server: answers every request with JSON describing it (path,
    method, headers) and records them. Asked in the query: ``hold=1`` waits until ``release``
    is set (``holding`` counts the waiting requests), ``status=N`` answers N, ``h=Name:Value``
    adds a response header."""

    port: int
    received: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    holding: int = 0


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream: Upstream

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        query = parse_qs(urlsplit(self.path).query)
        stub = self.upstream
        if query.get("hold"):
            stub.holding += 1
            stub.release.wait(timeout=15)
        seen = {"path": self.path, "method": self.command, "headers": dict(self.headers)}
        stub.received.append(seen)
        body = json.dumps(seen).encode()
        self.send_response(int(query.get("status", ["200"])[0]))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for header in query.get("h", []):
            name, _, value = header.partition(":")
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True


@contextmanager
def upstream() -> Iterator[Upstream]:
    stub = Upstream(free_port())
    handler = type("Echo", (_Echo,), {"upstream": stub})
    server = _Server(("127.0.0.1", stub.port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        stub.release.set()
        server.shutdown()
        server.server_close()


@dataclass
class Edge:
    """A running ``python -m tools.edge``: its port and everything it printed."""

    stack: str
    port: int
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def events(self, kind: str) -> list[dict[str, Any]]:
        """The JSON log lines of one ``event`` kind (``access`` or ``honeypot``)."""
        found = []
        for line in list(self.lines):
            if line.startswith("{"):
                event = json.loads(line)
                if event.get("event") == kind:
                    found.append(event)
        return found

    def logged(self, kind: str, request_id: str, timeout: float = 3.0) -> dict[str, Any]:
        """The log event of ``kind`` for one request id (nginx writes it after answering)."""
        return self.first(kind, "request_id", request_id, timeout)

    def first(self, kind: str, field: str, value: object, timeout: float = 3.0) -> dict[str, Any]:
        """The first log event of ``kind`` whose ``field`` is ``value``, waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events(kind):
                if event.get(field) == value:
                    return event
            time.sleep(0.02)
        raise AssertionError(f"no {kind} log line with {field} {value}")


def _pump(stream: Any, into: list[str]) -> None:
    for line in stream:
        into.append(line.rstrip("\n"))


@contextmanager
def edge(
    stack: str,
    upstream_port: int,
    *,
    sets: Sequence[str] = (),
    trust: Sequence[str] = (),
    keep: Path | None = None,
) -> Iterator[Edge]:
    """Start the edge for ``stack`` and stop it with SIGTERM afterwards (it must exit 0)."""
    port = free_port()
    command = [
        sys.executable, "-m", "tools.edge", stack, "--port", str(port),
        "--upstream", f"127.0.0.1:{upstream_port}",
        *(f"--set={s}" for s in sets), *(f"--trust={t}" for t in trust),
        *(["--keep", str(keep)] if keep else []),
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    running = Edge(stack, port, process)
    assert process.stdout is not None and process.stderr is not None
    threading.Thread(target=_pump, args=(process.stdout, running.lines), daemon=True).start()
    threading.Thread(target=_pump, args=(process.stderr, running.errors), daemon=True).start()
    deadline = time.monotonic() + START_SECONDS
    try:
        while f"listening on http://127.0.0.1:{port}" not in running.lines:
            if process.poll() is not None or time.monotonic() > deadline:
                time.sleep(0.2)
                raise AssertionError(
                    f"tools.edge did not start (exit {process.poll()}):\n"
                    + "\n".join(running.errors[-30:])
                )
            time.sleep(0.05)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        assert code == 0, f"tools.edge exited {code}:\n" + "\n".join(running.errors[-30:])


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    port: int,
    path: str,
    *,
    source: str = "127.0.0.1",
    agent: str | None = BROWSER,
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    body: bytes | None = None,
) -> Response:
    """One HTTP/1.1 request to the edge from ``source`` (a loopback address)."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=10, source_address=(source, 0)
    )
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        sent = {"Host": "expo.test", **({"User-Agent": agent} if agent is not None else {})}
        sent.update(headers or {})
        for name, value in sent.items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return Response(
            response.status,
            {name.lower(): value for name, value in response.getheaders()},
            response.read(),
        )
    finally:
        connection.close()
