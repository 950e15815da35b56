"""The edge, proven on a real nginx: each stack's rendered configuration is started through
``python -m tools.edge`` (the operator's command) in front of a stub upstream, and answers real
HTTP requests from loopback client addresses.

Client addresses (all on loopback): 127.0.0.2 is allowlisted (and also on the block list: the
allowlist must win), 127.0.0.3 is blocked, 127.0.0.5 plays the load balancer (trusted to say
who the client is), 198.51.100.0/24 is blocked when it arrives through the load balancer. Tests
that count requests (rate limits) each use an address of their own.
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.app.edge.config import AgentLists, read_referrers
from components.settings import StackSettings
from tests import STACKS
from tests.edge_harness import (
    BROWSER,
    BROWSERS,
    GOOD_BOTS,
    Edge,
    Response,
    Upstream,
    edge,
    request,
    upstream,
)
from tools.edge.run import find_nginx

ALLOWED = "127.0.0.2"
BLOCKED = "127.0.0.3"
LOAD_BALANCER = "127.0.0.5"
UNTRUSTED = "127.0.0.6"
BLOCKED_REMOTE = "198.51.100.7"
BLOCKING = (
    'edgeAllowedCidrs=["203.0.113.0/24", "127.0.0.2/32"]',
    'edgeBlockedCidrs=["127.0.0.2/32", "127.0.0.3/32", "198.51.100.0/24"]',
)
HONEYPOT = (
    "/.env", "/.git/config", "/.git/HEAD", "/.aws/credentials", "/.ssh/id_rsa", "/.DS_Store",
    "/.htaccess", "/wp-login.php", "/wp-admin/", "/wp-content/plugins/x/readme.txt",
    "/wordpress/wp-admin/setup-config.php", "/xmlrpc.php", "/index.php", "/phpmyadmin/",
    "/pma/index.php", "/adminer.php", "/phpinfo.php", "/cgi-bin/luci", "/cgi-bin/test.cgi",
    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", "/actuator/health",
    "/actuator/env", "/jolokia/list", "/manager/html", "/_ignition/execute-solution",
    "/backup.sql", "/db.sql.gz", "/site.tar.gz", "/backup.zip", "/dump.sql", "/config.php.bak",
    "/web.config", "/server-status", "/owa/auth/logon.aspx", "/solr/admin/info/system",
    "/api/.env", "/static/../.env", "/boaform/admin/formLogin", "/HNAP1/",
    # bypass forms: path info, parameters, a trailing space, depth, Django's own folders
    "/index.php/x", "/x.php;.js", "/x.php%20", "/foo/backup.sql", "/static/.env",
    "/media/.git/config", "//wp-login.php", "/%2e%65nv", "/.ENV", "/index.html/../.env",
    # each of the server's paths and /.well-known/ has its own decoy location
    "/admin/.git/config", "/api/v1/users.php", "/admin/login.asp", "/api/auth/.env",
    "/admin/login/x.php", "/.well-known/.env", "/.well-known/x.php", "/.well-known/backup.sql",
)  # fmt: skip
NOT_HONEYPOT = (
    "/.well-known/acme-challenge/x", "/.well-known/security.txt", "/static/app.php.css",
    "/media/uploads/backup.zip", "/assets/app.3f2a9c1e7b.js", "/papers/wordpressing",
    # look-alikes of decoys among real paths
    "/pmanager", "/api/v1/pmax/stats", "/api/v1/users/dbadministrator",
    "/api/v1/export/papers.zip", "/api/v1/wp/stats", "/papers/actuators",
    # user uploads and Django's files may have any name but a dot-file's
    "/media/uploads/report.php", "/static/admin/backup.sql",
)  # fmt: skip


def _bounded(entries: tuple[str, ...]) -> re.Pattern[str]:
    """The lists' matching rule (case-insensitive, word-bounded), to pick test strings."""
    alternatives = "|".join(re.escape(entry) for entry in entries)
    return re.compile(rf"(?<![a-z0-9_])(?:{alternatives})(?![a-z0-9_])", re.IGNORECASE)


AGENTS = AgentLists.load()
ANY_AGENT = _bounded(AGENTS.allow + AGENTS.block + AGENTS.limit)


def bad_agents_and_near_misses() -> list[tuple[str, str]]:
    """Bad user agents with a look-alike each: the name with letters glued on (``Titan`` /
    ``Titanium``), which no entry of any list matches."""
    pairs = []
    for name in AGENTS.block:
        if not (name[-1].isalnum() and name[0].isalnum()):
            continue
        for near in (f"{name}ium", f"Xq{name}"):
            if not ANY_AGENT.search(near):
                pairs.append((name, near))
                break
    return pairs


@pytest.fixture(scope="module")
def stub() -> Iterator[Upstream]:
    with upstream() as running:
        yield running


@pytest.fixture(scope="module", params=STACKS)
def blocking(request: pytest.FixtureRequest, stub: Upstream) -> Iterator[Edge]:
    """The stack's edge with an allowlist and a block list set (``--set``)."""
    with edge(request.param, stub.port, sets=BLOCKING, trust=[f"{LOAD_BALANCER}/32"]) as run:
        yield run


@pytest.fixture(scope="module", params=STACKS)
def maintenance(request: pytest.FixtureRequest, stub: Upstream) -> Iterator[Edge]:
    """The stack's edge in maintenance mode, 127.0.0.2 allowlisted."""
    sets = ("maintenanceEnabled=true", f'maintenanceAllowlist=["{ALLOWED}/32"]')
    with edge(request.param, stub.port, sets=sets, trust=[f"{LOAD_BALANCER}/32"]) as run:
        yield run


def _id() -> str:
    return uuid.uuid4().hex


# --- nginx accepts the configuration --------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_nginx_accepts_each_stacks_rendered_configuration(
    stack: str, stub: Upstream, tmp_path: Path
) -> None:
    prefix = tmp_path / "prefix"
    with edge(stack, stub.port, keep=prefix):
        pass
    result = subprocess.run(
        [find_nginx(), "-t", "-p", f"{prefix}/", "-c", str(prefix / "edge" / "nginx.conf")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


# --- who gets in ------------------------------------------------------------------------------


def test_browsers_get_the_site_and_the_api(blocking: Edge, stub: Upstream) -> None:
    for agent in BROWSERS:
        site = request(blocking.port, "/", agent=agent)
        assert site.status == 200, agent
        assert b"flutter_bootstrap.js" in site.body
        api = request(blocking.port, "/api/papers?page=2", agent=agent)
        assert api.status == 200, agent
        assert api.json()["path"] == "/api/papers?page=2"


def test_a_page_load_is_never_limited_for_browsers_nor_for_the_files_of_limited_bots(
    blocking: Edge,
) -> None:
    files = ("/flutter_bootstrap.js", "/main.dart.js", "/canvaskit/canvaskit.wasm",
             "/manifest.json", "/assets/app.3f2a9c1e7b.js")  # fmt: skip
    for number, agent in enumerate((*BROWSERS, f"{AGENTS.limit[0]}/1.0")):
        source = f"127.0.0.{40 + number}"
        assert request(blocking.port, "/", source=source, agent=agent).status == 200, agent
        for _ in range(3):
            for path in files:
                assert request(blocking.port, path, source=source, agent=agent).status == 200


def test_at_least_100_bad_user_agents_are_refused_and_their_look_alikes_are_not(
    blocking: Edge,
) -> None:
    pairs = bad_agents_and_near_misses()
    assert len(AGENTS.block) >= 500
    assert len(pairs) >= 100, "too few testable entries"
    refused, passed = [], []
    for name, near in pairs:
        agent = f"Mozilla/5.0 (compatible; {name}/2.1; +https://example.org/bot)"
        request_id = _id()
        answer = request(blocking.port, "/", agent=agent, headers={"X-Request-ID": request_id})
        if answer.status == 403:
            refused.append(name)
            logged = blocking.logged("access", request_id)
            assert logged["decision"] == "blocked-agent" and logged["status"] == 403
        if request(blocking.port, "/", agent=f"{near}/1.0").status == 200:
            passed.append(near)
    assert len(refused) == len(pairs), sorted({n for n, _ in pairs} - set(refused))[:20]
    assert len(passed) == len(pairs), sorted({m for _, m in pairs} - set(passed))[:20]


ATTACK_TOOLS = (
    "Titan", "sqlmap/1.7.2#stable (https://sqlmap.org)", "masscan/1.3",
    "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None)", "Mozilla/5.0 zgrab/0.x",
    "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
)  # fmt: skip


@pytest.mark.parametrize("agent", ATTACK_TOOLS)
def test_attack_tools_are_refused_in_any_case(blocking: Edge, agent: str) -> None:
    assert request(blocking.port, "/", agent=agent).status == 403
    assert request(blocking.port, "/", agent=agent.upper()).status == 403
    assert request(blocking.port, "/", agent=agent.lower()).status == 403


def test_titan_is_blocked_and_titanium_is_not(blocking: Edge) -> None:
    assert request(blocking.port, "/", agent="Titan/1.0").status == 403
    assert request(blocking.port, "/", agent="Titanium/1.0").status == 200


def test_a_bots_name_inside_a_browser_string_is_still_found(blocking: Edge) -> None:
    """Browsers' exact strings skip the list scan (a fast path); anything added to one does
    not."""
    chrome = BROWSER
    iphone = next(agent for agent in BROWSERS if "Mobile/15E148" in agent)
    for agent in (
        f"{chrome} sqlmap/1.7",
        chrome.replace("Win64; x64", "Win64; x64; Nikto"),
        chrome.replace("(KHTML, like Gecko)", "(KHTML, like Gecko; masscan)"),
        iphone.replace("Mobile/15E148", "Mobile/sqlmap"),  # Safari's build code is not a word
    ):
        assert request(blocking.port, "/", agent=agent).status == 403, agent
    request_id = _id()
    request(blocking.port, "/", agent=chrome, headers={"X-Request-ID": request_id})
    assert blocking.logged("access", request_id)["decision"] == "pass"


def test_a_good_bots_name_does_not_excuse_an_attack_tool(blocking: Edge) -> None:
    for agent in ("sqlmap/1.7 (compatible; Googlebot/2.1)", "Nikto/2.5 bingbot/2.0"):
        assert request(blocking.port, "/", agent=agent).status == 403, agent


def test_good_bots_pass(blocking: Edge) -> None:
    for agent in GOOD_BOTS:
        request_id = _id()
        answer = request(blocking.port, "/", agent=agent, headers={"X-Request-ID": request_id})
        assert answer.status == 200, agent
        assert blocking.logged("access", request_id)["decision"] == "good-bot"


def test_bad_referrers_are_refused_by_domain_and_subdomain_only(blocking: Edge) -> None:
    domains = read_referrers()
    assert len(domains) >= 100
    for domain in domains[:: max(1, len(domains) // 40)]:
        for referrer in (f"https://{domain}/", f"http://www.{domain}/page?q=1"):
            answer = request(blocking.port, "/", headers={"Referer": referrer})
            assert answer.status == 403, referrer
        look_alike = f"https://not{domain.replace('.', '')}.example/"
        assert request(blocking.port, "/", headers={"Referer": look_alike}).status == 200


def test_the_lists_refuse_before_nginx_answers_anything_itself(blocking: Edge) -> None:
    # paths nginx would answer while choosing the location (a folder's redirect), a case
    # variant of the health check (not the health check), and decoys, whatever the body
    for path in ("/static", "/media", "/admin", "/api", "/HEALTHZ", "/healthz/"):
        request_id = _id()
        answer = request(blocking.port, path, source=BLOCKED, headers={"X-Request-ID": request_id})
        assert answer.status == 403, path
        assert blocking.logged("access", request_id)["decision"] == "blocked-ip", path
    for path in ("/wp-login.php", "/api/.env", "/static/.env"):
        request_id = _id()
        # over any edgeMaxBodyMb the settings accept (1,024 MiB at most)
        declared = {"X-Request-ID": request_id, "Content-Length": str(1025 * 2**20)}
        answer = request(blocking.port, path, method="POST", headers=declared)
        assert answer.status == 403, path
        assert blocking.logged("honeypot", request_id)["decision"] == "honeypot", path
    assert request(blocking.port, "/healthz", source=BLOCKED).status == 200


def test_blocked_addresses_are_refused(blocking: Edge) -> None:
    request_id = _id()
    answer = request(blocking.port, "/", source=BLOCKED, headers={"X-Request-ID": request_id})
    assert answer.status == 403
    logged = blocking.logged("access", request_id)
    assert (logged["client"], logged["decision"]) == (BLOCKED, "blocked-ip")


def test_the_allowlist_beats_every_block_list(blocking: Edge) -> None:
    bad_agent = "sqlmap/1.7.2"
    bad_referrer = f"https://{read_referrers()[0]}/"
    # 127.0.0.2 is on both lists, sends a bad agent and a bad referrer, probes a decoy path
    for path in ("/", "/api/x", "/wp-login.php", "/api/.env"):
        request_id = _id()
        answer = request(
            blocking.port, path, source=ALLOWED, agent=bad_agent,
            headers={"Referer": bad_referrer, "X-Request-ID": request_id},
        )  # fmt: skip
        # a decoy exists nowhere: 404, not the honeypot's 403 (nor the server's answer)
        decoy = path in HONEYPOT
        assert answer.status == (404 if decoy else 200), path
        assert decoy or not path.startswith("/api/") or answer.json()["path"] == path
        assert blocking.logged("access", request_id)["decision"] == "allowlisted"
    # and is never rate-limited
    statuses = {request(blocking.port, "/api/auth/login", source=ALLOWED).status for _ in range(60)}
    assert statuses == {200}


# --- real client address ---------------------------------------------------------------------


def test_forwarded_for_is_honoured_from_the_load_balancer_only(blocking: Edge) -> None:
    spoofed = {"X-Forwarded-For": BLOCKED_REMOTE, "X-Forwarded-Proto": "https"}
    via_lb = request(blocking.port, "/api/who", source=LOAD_BALANCER, headers=spoofed)
    assert via_lb.status == 403  # the client it names is blocked: the header was believed
    request_id = _id()
    direct = request(
        blocking.port, "/api/who", source=UNTRUSTED,
        headers={**spoofed, "X-Request-ID": request_id},
    )  # fmt: skip
    assert direct.status == 200  # from anywhere else the header is ignored
    seen = direct.json()["headers"]
    assert seen["X-Forwarded-For"] == UNTRUSTED
    assert seen["X-Forwarded-Proto"] == "http"  # the peer is not the load balancer
    assert blocking.logged("access", request_id)["client"] == UNTRUSTED
    # through the load balancer, a client that is not blocked: its address and scheme pass on
    request_id = _id()
    honoured = request(
        blocking.port, "/api/who", source=LOAD_BALANCER,
        headers={"X-Forwarded-For": "192.0.2.44", "X-Forwarded-Proto": "https",
                 "X-Request-ID": request_id},
    )  # fmt: skip
    assert honoured.status == 200
    assert honoured.json()["headers"]["X-Forwarded-For"] == "192.0.2.44"
    assert honoured.json()["headers"]["X-Forwarded-Proto"] == "https"
    logged = blocking.logged("access", request_id)
    assert (logged["client"], logged["peer"]) == ("192.0.2.44", LOAD_BALANCER)
    # a client that sends its own X-Forwarded-For through the load balancer: the load balancer
    # appends the address it saw, the last one not trusted, and that is the one used
    chained = request(
        blocking.port, "/api/who", source=LOAD_BALANCER,
        headers={"X-Forwarded-For": f"192.0.2.45, {BLOCKED_REMOTE}"},
    )  # fmt: skip
    assert chained.status == 403
    disguised = request(
        blocking.port, "/api/who", source=LOAD_BALANCER,
        headers={"X-Forwarded-For": f"{BLOCKED_REMOTE}, 192.0.2.46"},
    )  # fmt: skip
    assert disguised.status == 200
    assert disguised.json()["headers"]["X-Forwarded-For"] == "192.0.2.46"


# --- honeypot ---------------------------------------------------------------------------------


def test_every_honeypot_path_is_refused_and_logged_as_its_own_event(blocking: Edge) -> None:
    for path in HONEYPOT:
        request_id = _id()
        agent = f"scanner-{request_id[:6]}"
        answer = request(
            blocking.port, path, source="127.0.0.8", agent=agent,
            headers={"X-Request-ID": request_id},
        )  # fmt: skip
        assert answer.status == 403, path
        event = blocking.logged("honeypot", request_id)
        assert event["client"] == "127.0.0.8" and event["user_agent"] == agent
        assert event["path"] == path and event["time"].startswith("20")
        assert not [e for e in blocking.events("access") if e["request_id"] == request_id]


def test_a_decoy_is_a_honeypot_hit_whatever_else_refuses_the_client(blocking: Edge) -> None:
    # decoys come before every list but the allowlist: a blocked address or a blocked user
    # agent probing one is counted as a honeypot hit, under every kind of path
    for path, source, agent in (
        ("/api/.env", BLOCKED, BROWSER),
        ("/static/.git/config", "127.0.0.8", "sqlmap/1.7.2"),
        ("/wp-login.php", BLOCKED, "sqlmap/1.7.2"),
        ("/.well-known/x.php", "127.0.0.8", "Googlebot/2.1"),
    ):
        request_id = _id()
        answer = request(blocking.port, path, source=source, agent=agent,
                         headers={"X-Request-ID": request_id})  # fmt: skip
        assert answer.status == 403, path
        assert blocking.logged("honeypot", request_id)["decision"] == "honeypot", path
    # and the lists still refuse that client elsewhere, for their own reason
    request_id = _id()
    answer = request(blocking.port, "/api/papers", source=BLOCKED,
                     headers={"X-Request-ID": request_id})  # fmt: skip
    assert answer.status == 403
    assert blocking.logged("access", request_id)["decision"] == "blocked-ip"


def test_well_known_and_look_alike_paths_are_not_decoys(blocking: Edge) -> None:
    for path in NOT_HONEYPOT:
        request_id = _id()
        answer = request(blocking.port, path, headers={"X-Request-ID": request_id})
        assert answer.status in (200, 404), (path, answer.status)
        assert blocking.logged("access", request_id)["decision"] == "pass", path
        assert not [e for e in blocking.events("honeypot") if e["request_id"] == request_id]


# --- rate limits ------------------------------------------------------------------------------


def _burst(
    edge_port: int, path: str, source: str, count: int, agent: str = BROWSER
) -> list[Response]:
    return [request(edge_port, path, source=source, agent=agent) for _ in range(count)]


def test_requests_beyond_the_burst_get_429_with_retry_after(blocking: Edge) -> None:
    answers = _burst(blocking.port, "/api/search", "127.0.0.20", 120)
    limited = [a for a in answers if a.status == 429]
    assert answers[0].status == 200 and limited, [a.status for a in answers]
    assert all(a.header("Retry-After") == "60" for a in limited)
    assert all(a.header("Retry-After") is None for a in answers if a.status == 200)


def test_authentication_paths_are_stricter(blocking: Edge) -> None:
    auth = _burst(blocking.port, "/api/auth/login", "127.0.0.21", 20)
    api = _burst(blocking.port, "/api/search", "127.0.0.22", 20)
    assert sum(a.status == 429 for a in auth) > sum(a.status == 429 for a in api)
    assert auth[0].status == 200 and auth[-1].status == 429


@pytest.mark.parametrize(("path", "sources"), [("/", (23, 24)), ("/api/search", (31, 32))])
def test_limited_bots_get_a_stricter_rate(
    blocking: Edge, path: str, sources: tuple[int, int]
) -> None:
    agent = AGENTS.limit[0]
    bot, browser = (f"127.0.0.{n}" for n in sources)
    answers = _burst(blocking.port, path, bot, 10, agent=f"{agent}/1.0")
    assert answers[0].status == 200 and answers[-1].status == 429
    assert answers[-1].header("Retry-After") == "60"
    assert all(a.status == 200 for a in _burst(blocking.port, path, browser, 10))


@pytest.mark.parametrize(("agent", "source"), [(None, "127.0.0.29"), ("", "127.0.0.30")])
def test_a_client_without_a_user_agent_is_a_limited_bot(
    blocking: Edge, agent: str | None, source: str
) -> None:
    # browsers always send one: no header, or an empty one, is treated as a limited bot
    first = request(blocking.port, "/", source=source, agent=agent,
                    headers={"X-Request-ID": f"no-agent-{source}"})  # fmt: skip
    assert first.status == 200
    assert blocking.logged("access", f"no-agent-{source}")["decision"] == "limited-bot"
    answers = [request(blocking.port, "/", source=source, agent=agent) for _ in range(9)]
    assert answers[-1].status == 429


def test_a_malformed_request_is_logged_and_judged_by_the_lists(blocking: Edge) -> None:
    # answered (400) before the server's rewrite phase, where a browser's user agent is set
    # without a lookup (browsers.conf): its line still has an event and the lists' decision,
    # and nothing is logged about an unset variable
    with socket.create_connection(("127.0.0.1", blocking.port), timeout=5) as connection:
        connection.sendall(
            b"GET /malformed HTTP/1.1\r\nHost: expo.test\r\nUser-Agent: sqlmap/1.7\r\n"
            b"Bad Header Line\r\n\r\n"
        )
        assert connection.recv(4096).startswith(b"HTTP/1.1 400")
    logged = blocking.first("access", "path", "/malformed")
    assert logged["status"] == 400 and logged["decision"] == "blocked-agent"
    assert not [line for line in blocking.errors if "uninitialized" in line]


def test_health_checks_are_never_limited(blocking: Edge) -> None:
    answers = _burst(blocking.port, "/healthz", "127.0.0.25", 200, agent="kube-probe/1.33")
    assert {a.status for a in answers} == {200}


def test_concurrent_connections_per_client_are_limited(
    blocking: Edge, stub: Upstream, stack_settings: dict[str, StackSettings]
) -> None:
    edge_settings = stack_settings[blocking.stack].edge
    per_pod = -(-edge_settings.connections_per_client // edge_settings.min_replicas)
    results: list[int] = []
    stub.release.clear()
    stub.holding = 0

    def held() -> None:
        results.append(request(blocking.port, "/static/x?hold=1", source="127.0.0.26").status)

    threads = [threading.Thread(target=held) for _ in range(per_pod + 10)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while stub.holding + len(results) < len(threads) and time.monotonic() < deadline:
        time.sleep(0.02)
    held_at_once = stub.holding
    stub.release.set()
    for thread in threads:
        thread.join()
    # exactly the pod's share held open at once; the rest refused
    assert held_at_once == per_pod
    assert sorted(results) == [200] * per_pod + [429] * 10


# --- headers, proxying, the site --------------------------------------------------------------


def test_security_headers_on_every_answer(blocking: Edge) -> None:
    answers = [
        ("/", request(blocking.port, "/", source="127.0.0.1")),
        ("/api/x", request(blocking.port, "/api/x", source="127.0.0.1")),
        ("/nope", request(blocking.port, "/nope", source=BLOCKED)),
        ("/api/x", request(blocking.port, "/api/x?status=502", source="127.0.0.1")),
        *[("/api/", r) for r in _burst(blocking.port, "/api/auth/login", "127.0.0.27", 12)
          if r.status == 429][:1],
    ]  # fmt: skip
    assert {a.status for _, a in answers} == {200, 403, 502, 429}
    for path, answer in answers:
        assert answer.header("Strict-Transport-Security") == "max-age=63072000; includeSubDomains"
        assert answer.header("X-Content-Type-Options") == "nosniff"
        csp = answer.header("Content-Security-Policy") or ""
        assert "frame-ancestors 'none'" in csp
        assert "object-src 'none'" in csp or csp.startswith("default-src 'none'")
        assert answer.header("Server") == "nginx"  # no version
        if answer.status in (403, 429, 502):
            assert answer.header("Cache-Control") in (None, "no-store")
        if path.startswith("/api/"):  # JSON, never a document: the document policies are moot
            assert answer.header("Referrer-Policy") is None
            assert answer.header("Permissions-Policy") is None
        else:
            assert answer.header("Referrer-Policy") == "strict-origin-when-cross-origin"
            assert "camera=()" in (answer.header("Permissions-Policy") or "")
    admin = request(blocking.port, "/admin/")
    assert admin.header("Referrer-Policy") == "strict-origin-when-cross-origin"
    # nested locations (authentication paths) classify their answers like their parents
    login = request(blocking.port, "/api/v1/auth/login", source="127.0.0.28")
    assert login.status == 200 and login.header("Content-Security-Policy") == (
        "default-src 'none'; frame-ancestors 'none'"
    )
    assert login.header("Cache-Control") is None  # the server decides
    admin_login = request(blocking.port, "/admin/login/", source="127.0.0.28")
    assert "script-src 'self'" in (admin_login.header("Content-Security-Policy") or "")
    assert admin_login.header("Cache-Control") is None
    api_csp = request(blocking.port, "/api/x").header("Content-Security-Policy")
    assert api_csp == "default-src 'none'; frame-ancestors 'none'"  # JSON: nothing loads
    admin_csp = request(blocking.port, "/admin/").header("Content-Security-Policy") or ""
    assert "script-src 'self'" in admin_csp and "wasm" not in admin_csp
    site_csp = request(blocking.port, "/").header("Content-Security-Policy") or ""
    assert "'wasm-unsafe-eval'" in site_csp and "script-src 'self'" in site_csp
    assert "'unsafe-eval'" not in site_csp.replace("'wasm-unsafe-eval'", "")


def test_request_id_is_passed_upstream_returned_and_logged(blocking: Edge) -> None:
    given = "abc-123-def-456"
    answer = request(blocking.port, "/api/x", headers={"X-Request-ID": given})
    assert answer.json()["headers"]["X-Request-ID"] == given
    assert answer.header("X-Request-ID") == given
    logged = blocking.logged("access", given)
    assert logged["path"] == "/api/x" and logged["status"] == 200 and logged["method"] == "GET"
    assert float(logged["upstream_time"]) >= 0 and logged["request_time"] >= 0
    assert logged["user_agent"] == BROWSER and logged["bytes"] > 0
    # none given: one is made, passed on and returned
    fresh = request(blocking.port, "/api/x")
    made = fresh.json()["headers"]["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made) and fresh.header("X-Request-ID") == made
    # a header that is not a plain token is replaced, not logged or passed on
    odd = request(blocking.port, "/api/x", headers={"X-Request-ID": 'x" injected'})
    assert re.fullmatch(r"[0-9a-f]{32}", odd.json()["headers"]["X-Request-ID"])


def test_the_servers_own_retry_after_and_request_id_are_not_doubled(blocking: Edge) -> None:
    busy = request(blocking.port, "/api/x?status=503&h=Retry-After:7&h=X-Request-ID:upstream-id1")
    assert busy.status == 503
    assert busy.headers["retry-after"] == "7"  # the server's, alone
    assert busy.header("X-Request-ID") != "upstream-id1"  # the edge's own, alone
    raw = request(blocking.port, "/api/x?status=429&h=Retry-After:9")
    assert raw.status == 429 and raw.header("Retry-After") == "9"
    # the edge adds its own only to its own 429 and 503, not to the server's; the server's
    # passes through as it sent it
    for status in (429, 503):
        bare = request(blocking.port, f"/api/x?status={status}")
        assert bare.status == status and bare.header("Retry-After") is None
    moved = request(blocking.port, "/api/x?status=301&h=Retry-After:5&h=Location:/api/y")
    assert moved.status == 301 and moved.header("Retry-After") == "5"


def test_each_class_of_429_has_its_header_set_and_retry_after(blocking: Edge) -> None:
    # the rate limits' 429 comes from a named location per class (server.conf): each has the
    # header set of the paths it refuses and Retry-After
    admin = _burst(blocking.port, "/admin/papers/", "127.0.0.33", 120)
    admin_limited = [a for a in admin if a.status == 429]
    assert admin[0].status == 200 and admin_limited
    for answer in admin_limited[:3]:
        assert answer.header("Retry-After") == "60"
        assert "script-src 'self'" in (answer.header("Content-Security-Policy") or "")
        assert "wasm" not in (answer.header("Content-Security-Policy") or "")
        assert answer.header("Referrer-Policy") == "strict-origin-when-cross-origin"
        assert answer.header("Cache-Control") is None  # Django's paths: the server decides
    bot = f"{AGENTS.limit[0]}/1.0"
    site = _burst(blocking.port, "/papers/42", "127.0.0.34", 10, agent=bot)
    site_limited = [a for a in site if a.status == 429]
    assert site[0].status == 200 and site_limited
    for answer in site_limited:
        assert answer.header("Retry-After") == "60"
        assert "'wasm-unsafe-eval'" in (answer.header("Content-Security-Policy") or "")
        assert answer.header("Cache-Control") == "no-store"
        assert b"429 Too Many Requests" in answer.body


def test_missing_files_are_404_not_the_app(blocking: Edge) -> None:
    for path in ("/assets/missing.3f2a9c1e7b.js", "/main.dart.js.map", "/favicon.ico"):
        answer = request(blocking.port, path)
        assert answer.status == 404, path
        assert answer.header("Cache-Control") == "no-store"
    assert request(blocking.port, "/api").status == 404
    # the server's folders without their slash: to the folder, the query kept
    for folder in ("admin", "static", "media"):
        moved = request(blocking.port, f"/{folder}")
        assert moved.status == 301 and moved.header("Location") == f"/{folder}/", folder
        moved = request(blocking.port, f"/{folder}?page=2")
        assert moved.header("Location") == f"/{folder}/?page=2", folder


def test_server_paths_are_proxied_and_the_rest_is_the_site(blocking: Edge, stub: Upstream) -> None:
    for path in ("/api/v1/papers", "/admin/", "/static/admin/css/base.css", "/media/a.pdf"):
        answer = request(blocking.port, path)
        assert answer.status == 200 and answer.json()["path"] == path
        assert answer.header("Cache-Control") is None  # the server decides
    for path in ("/", "/papers/42", "/deep/client/route"):
        answer = request(blocking.port, path)
        assert answer.status == 200 and b"flutter_bootstrap.js" in answer.body  # SPA fallback
        assert answer.header("Content-Type") == "text/html; charset=utf-8"
        assert "no-cache" in (answer.header("Cache-Control") or "")
    for page in ("/", "/index.html"):  # the start page: a release must be seen at once
        assert request(blocking.port, page).header("Cache-Control") == (
            "no-cache, no-store, must-revalidate"
        ), page
    hashed = request(blocking.port, "/assets/app.3f2a9c1e7b.js")
    assert hashed.header("Cache-Control") == "public, max-age=31536000, immutable"
    assert request(blocking.port, "/main.dart.js").header("Cache-Control") == "no-cache"
    wasm = request(blocking.port, "/canvaskit/canvaskit.wasm")
    assert wasm.header("Content-Type") == "application/wasm"


def test_request_bodies_over_the_limit_are_refused(blocking: Edge) -> None:
    small = request(blocking.port, "/api/upload", method="POST", body=b"x" * 1024)
    assert small.status == 200
    too_big = request(blocking.port, "/api/upload", method="POST", body=b"x" * (21 * 1024 * 1024))
    assert too_big.status == 413


# --- maintenance mode -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
def test_maintenance_answers_503_with_the_page(maintenance: Edge, method: str) -> None:
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    for path in ("/", "/api/papers", "/papers/42", "/main.dart.js", "/admin/", "/static/a.css"):
        answer = request(maintenance.port, path, method=method, body=body)
        assert answer.status == 503, (method, path)
        assert answer.header("Retry-After") == "300"
        assert answer.header("Content-Type") == "text/html; charset=utf-8"
        assert answer.header("Cache-Control") == "no-store"
        assert answer.header("Strict-Transport-Security")
        if method != "HEAD":
            assert b"down for maintenance" in answer.body, (method, path)
    direct = request(maintenance.port, "/maintenance.html", source=ALLOWED)
    assert direct.status == 404 and direct.header("Retry-After") is None


def test_maintenance_judges_a_client_behind_the_load_balancer_by_its_address(
    maintenance: Edge,
) -> None:
    # a client behind the load balancer is judged by its own address
    via_lb = request(maintenance.port, "/", source=LOAD_BALANCER,
                     headers={"X-Forwarded-For": "192.0.2.9"})  # fmt: skip
    assert via_lb.status == 503


def test_maintenance_lets_allowlisted_clients_and_the_health_check_through(
    maintenance: Edge,
) -> None:
    assert request(maintenance.port, "/healthz").status == 200
    site = request(maintenance.port, "/", source=ALLOWED)
    assert site.status == 200 and b"flutter_bootstrap.js" in site.body
    api = request(maintenance.port, "/api/papers", source=ALLOWED)
    assert api.status == 200 and api.json()["path"] == "/api/papers"
    via_lb = request(maintenance.port, "/", source=LOAD_BALANCER,
                     headers={"X-Forwarded-For": ALLOWED})  # fmt: skip
    assert via_lb.status == 200


def test_maintenance_answers_are_logged_as_such_and_refusals_as_refusals(maintenance: Edge) -> None:
    # the decision the access log and the metrics log carry: maintenance's 503s are told from
    # the server's, refusals keep their own reason, allowlisted clients are not in maintenance
    cases = (
        ("/api/papers", BROWSER, "127.0.0.1", 503, "maintenance"),
        ("/", BROWSER, ALLOWED, 200, "pass"),  # the maintenance allowlist is not edgeAllowedCidrs
        ("/", "sqlmap/1.7.2", "127.0.0.1", 403, "blocked-agent"),
        ("/wp-login.php", BROWSER, "127.0.0.1", 403, "honeypot"),
    )
    for path, agent, source, status, decision in cases:
        given = f"maint-{_id()}"
        answer = request(maintenance.port, path, source=source, agent=agent,
                         headers={"X-Request-ID": given})  # fmt: skip
        assert answer.status == status, (path, agent)
        kind = "honeypot" if decision == "honeypot" else "access"
        assert maintenance.logged(kind, given)["decision"] == decision, (path, agent)
