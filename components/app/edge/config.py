"""The edge's nginx configuration, as the files of its ConfigMap, rendered from the stack's
settings.

The configuration is nginx files kept in ``nginx/``: static includes (``*.conf``, ``mime.types``)
taken as they are, and templates (``*.conf.tmpl``) whose ``{{name}}`` placeholders are filled
from ``EdgeConfig``: address lists become ``geo`` entries, rates and bursts numbers, the user
agent and referrer lists of ``lists/`` ``map`` entries. Rendering is strict: a placeholder
without a value, or a value no placeholder uses, is an error. The maintenance page comes from
``pages/``. Everything here is a pure function of its arguments, so the offline preview, the
tests and ``python -m tools.edge`` all run the very files the pods get.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.lib import template as templates
from components.settings import EdgeSettings, RateLimit

HERE = Path(__file__).resolve().parent
NGINX_DIR = HERE / "nginx"
LISTS_DIR = HERE / "lists"
PAGES_DIR = HERE / "pages"

PORT = 8080
"""Where nginx listens in the pod (unprivileged)."""
HEALTH_PATH = "/healthz"
"""Answered by nginx itself: probes and the load balancer's health check."""
STATUS_PORT = 8081
"""nginx's stub_status server, on the pod's loopback only: the nginx-prometheus-exporter sidecar
reads it (``status.conf``)."""
STATUS_PATH = "/stub_status"
NGINX_METRICS_PORT = ("nginx-metrics", 9113)
"""The nginx-prometheus-exporter sidecar (stub_status): container port name and number."""
LOG_METRICS_PORT = ("log-metrics", 3903)
"""The log-to-metrics sidecar (mtail over the metrics log; mtail's default port): port name and
number."""
METRICS_LOG_DIR = "logs"
"""The metrics log's folder under nginx's prefix (an emptyDir shared with the log-to-metrics
sidecar); the file is ``METRICS_LOG`` in it (``logging.conf``)."""
METRICS_LOG = "metrics.log"
MAINTENANCE_PAGE = "maintenance.html"
MAINTENANCE_RETRY_AFTER_SECONDS = 300
RATE_LIMIT_RETRY_AFTER_SECONDS = 60
"""Retry-After on 429: the strictest zones refill a request a minute at most per pod."""
TEMPLATE_SUFFIX = ".tmpl"
LOCAL_FILES = ("listen.conf", "status-listen.conf", "upstream.conf", "trusted-proxies.conf")
"""The only files that differ between the pod and a local run (``tools.edge``)."""

MAX_CONFIG_BYTES = 900 * 1024
"""The rendered files must fit one ConfigMap (1 MiB of data), with room for its metadata."""

AGENT_LEVELS = ("block", "allow", "limit")
"""User-agent levels, in match order: a user agent naming an attack tool is refused even when
it also claims to be a good bot (anyone can write "Googlebot"); good bots win over the limit
list. Only the address allowlist wins over everything."""
AGENT_FILES = {
    "allow": "good-user-agents.txt",
    "block": "bad-user-agents.txt",
    "limit": "limited-user-agents.txt",
}
REFERRER_FILE = "bad-referrers.txt"
MAX_PATTERN_CHARS = 3500
"""Longest pattern in one map entry: nginx reads a configuration token into a 4 KiB buffer."""

MIN_AGENT_LENGTH = 3
"""Shorter entries would match inside too many user agents."""

_AGENT = re.compile(r"[^\x00-\x1f\x7f\"'\\]+")
_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,62}$")
_UPSTREAM = re.compile(r"^[A-Za-z0-9.-]+:\d{1,5}$")


class EdgeConfigError(ValueError):
    """A list or template of the edge is malformed: the message names the file and line."""


@dataclass(frozen=True)
class AgentLists:
    """User agents per level (literal entries, matched case-insensitively and word-bounded)."""

    allow: tuple[str, ...]
    block: tuple[str, ...]
    limit: tuple[str, ...]

    @classmethod
    def load(cls, folder: Path = LISTS_DIR) -> AgentLists:
        lists = {level: read_list(folder / name) for level, name in AGENT_FILES.items()}
        seen: dict[str, str] = {}
        for level, entries in lists.items():
            for entry in entries:
                if len(entry) < MIN_AGENT_LENGTH or not _AGENT.fullmatch(entry):
                    raise EdgeConfigError(
                        f"{folder / AGENT_FILES[level]}: {entry!r} must be {MIN_AGENT_LENGTH} "
                        "or more printable characters, without quotes or backslashes"
                    )
                other = seen.setdefault(entry.lower(), level)
                if other != level:
                    raise EdgeConfigError(
                        f"{folder / AGENT_FILES[level]}: {entry!r} is also in "
                        f"{AGENT_FILES[other]}; an entry belongs to one level"
                    )
        return cls(lists["allow"], lists["block"], lists["limit"])

    def level(self, name: str) -> tuple[str, ...]:
        return {"allow": self.allow, "block": self.block, "limit": self.limit}[name]


def read_list(path: Path) -> tuple[str, ...]:
    """The entries of a list file: one per line, ``#`` comments and blank lines skipped,
    duplicates (ignoring case) refused."""
    entries: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if entry.lower() in seen:
            raise EdgeConfigError(f"{path}:{number}: {entry!r} is listed twice")
        seen.add(entry.lower())
        entries.append(entry)
    return tuple(entries)


def read_referrers(path: Path = LISTS_DIR / REFERRER_FILE) -> tuple[str, ...]:
    """Referrer-spam domains: lower-case host names."""
    domains = read_list(path)
    for domain in domains:
        if not _HOST.fullmatch(domain):
            raise EdgeConfigError(f"{path}: {domain!r} is not a lower-case host name")
    return domains


@dataclass(frozen=True)
class EdgeConfig:
    """What the edge's configuration is rendered from."""

    settings: EdgeSettings
    """Limits, lists and maintenance mode of the stack."""
    upstream: str
    """The server's Service as ``host:port``."""
    trusted_proxies: tuple[str, ...]
    """CIDRs whose X-Forwarded-For is believed: the VPC (the load balancer)."""
    agents: AgentLists
    referrers: tuple[str, ...]
    listen: str = str(PORT)
    """nginx's ``listen`` argument."""

    def __post_init__(self) -> None:
        if not _UPSTREAM.fullmatch(self.upstream):
            raise ValueError(f"upstream must be host:port, got {self.upstream!r}")
        for cidr in self.trusted_proxies:
            ipaddress.ip_network(cidr, strict=True)
        if not self.trusted_proxies:
            raise ValueError("trusted_proxies must name the load balancer's network")


def agent_pattern(entries: Iterable[str]) -> str:
    """One case-insensitive regular expression (PCRE, as an nginx quoted string) matching any
    of ``entries`` as literal text not touched by a letter, digit or underscore. The entries
    are merged into a prefix tree (``ahrefsbot|ahrefssiteaudit`` becomes
    ``ahrefs(?:bot|siteaudit)``), so a clean user agent costs one pass of a few comparisons per
    position instead of one per entry."""
    return f'"~*(?<![a-z0-9_])(?:{_trie(entries)})(?![a-z0-9_])"'


def _trie(entries: Iterable[str]) -> str:
    root: dict[str, Any] = {}
    for entry in entries:
        node = root
        for char in entry.lower():
            node = node.setdefault(char, {})
        node[""] = {}
    return _branches(root)


def _branches(node: dict[str, Any]) -> str:
    ends = "" in node
    branches = [re.escape(char) + _branches(child) for char, child in sorted(node.items()) if char]
    if not branches:
        return ""
    if len(branches) == 1 and not ends:
        return branches[0]
    return f"(?:{'|'.join(branches)}){'?' if ends else ''}"


def _chunks(entries: tuple[str, ...]) -> list[tuple[str, ...]]:
    """``entries`` in sorted runs whose patterns fit one nginx token (``MAX_PATTERN_CHARS``);
    sorted, so neighbours share prefixes and each run's tree stays small."""
    chunks: list[list[str]] = [[]]
    for entry in sorted(entries, key=str.lower):
        candidate = [*chunks[-1], entry]
        if chunks[-1] and len(agent_pattern(candidate)) > MAX_PATTERN_CHARS:
            chunks.append([entry])
        else:
            chunks[-1] = candidate
    return [tuple(chunk) for chunk in chunks if chunk]


def _agent_map_lines(agents: AgentLists) -> list[str]:
    return [
        f"    {agent_pattern(chunk)} {level};"
        for level in AGENT_LEVELS
        for chunk in _chunks(agents.level(level))
    ]


def _geo_lines(cidrs: Iterable[str], value: str = "1") -> str:
    return "\n".join(f"    {cidr} {value};" for cidr in cidrs)


def _client_lines(allowed: Iterable[str], blocked: Iterable[str]) -> str:
    """The one client geo: allowed networks, then blocked ones that no allowed network holds
    (geo picks the most specific network, so the allowlist must not be out-specified)."""
    allow = [ipaddress.ip_network(cidr) for cidr in allowed]
    block = [
        cidr for cidr in blocked
        if not any(_within(ipaddress.ip_network(cidr), network) for network in allow)
    ]  # fmt: skip
    return "\n".join(
        line
        for line in (_geo_lines(map(str, allow), "allowed"), _geo_lines(block, "blocked"))
        if line
    )


def _within(
    inner: ipaddress.IPv4Network | ipaddress.IPv6Network,
    outer: ipaddress.IPv4Network | ipaddress.IPv6Network,
) -> bool:
    return inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def _rate(limit: RateLimit) -> tuple[int, int]:
    return limit.per_minute, limit.burst


def trusted_proxies_values(cidrs: Iterable[str]) -> dict[str, str]:
    listed = list(cidrs)
    return {
        "set_real_ip_from": "\n".join(f"set_real_ip_from {cidr};" for cidr in listed),
        "trusted_peers": _geo_lines(listed),
    }


def template_values(config: EdgeConfig) -> dict[str, dict[str, str]]:
    """Each template's placeholder values."""
    edge = config.settings
    api_rate, api_burst = _rate(edge.per_pod(edge.api))
    auth_rate, auth_burst = _rate(edge.per_pod(edge.auth))
    bot_rate, bot_burst = _rate(edge.per_pod(edge.bots))
    connections = max(1, -(-edge.connections_per_client // edge.min_replicas))
    maintenance = edge.maintenance
    agents = config.agents
    return {
        "listen.conf": {"listen": config.listen},
        "status-listen.conf": {"status_port": str(STATUS_PORT)},
        "workers.conf": {"workers": str(max(1, -(-edge.resources.cpu_limit.base // 1000)))},
        "upstream.conf": {"upstream": config.upstream},
        "trusted-proxies.conf": trusted_proxies_values(config.trusted_proxies),
        "clients.conf": {"clients": _client_lines(edge.allowed_cidrs, edge.blocked_cidrs)},
        "gate.conf": {
            "state": "on" if maintenance.enabled else "off",
            "off": "" if maintenance.enabled else "# ",
        },
        "logging.conf": {
            "logged_decision": "edge_logged_decision" if maintenance.enabled else "edge_decision"
        },
        "maintenance.conf": {
            "state": "on" if maintenance.enabled else "off",
            "enabled": "1" if maintenance.enabled else "0",
            "allowlist": _geo_lines(maintenance.allowlist, "0"),
            "maintenance_retry_after": str(MAINTENANCE_RETRY_AFTER_SECONDS),
        },
        "limits.conf": {
            "replicas": str(edge.min_replicas),
            "api_rate": str(api_rate),
            "auth_rate": str(auth_rate),
            "bot_rate": str(bot_rate),
        },
        "server.conf": {
            "max_body_mb": str(edge.max_body_mb),
            "connections": str(connections),
            "api_burst": str(api_burst),
            "auth_burst": str(auth_burst),
            "bot_burst": str(bot_burst),
            "rate_limit_retry_after": str(RATE_LIMIT_RETRY_AFTER_SECONDS),
        },
        "user-agents.conf": {
            "allow_count": str(len(agents.allow)),
            "block_count": str(len(agents.block)),
            "limit_count": str(len(agents.limit)),
            "patterns": "\n".join(_agent_map_lines(agents)),
        },
        "referrers.conf": {
            "count": str(len(config.referrers)),
            "domains": "\n".join(f"    .{domain} 1;" for domain in config.referrers),
        },
    }


def fill(name: str, template: str, values: Mapping[str, str]) -> str:
    """``template`` with its ``{{name}}`` placeholders replaced; every placeholder must have a
    value and every value a placeholder (``components.lib.template``, raised as the edge's
    error)."""
    try:
        return templates.fill(f"{name}{TEMPLATE_SUFFIX}", template, values)
    except templates.TemplateError as error:
        raise EdgeConfigError(str(error)) from None


def render_file(name: str, values: Mapping[str, str]) -> str:
    """One template of ``nginx/`` rendered (``name`` without the ``.tmpl`` suffix)."""
    path = NGINX_DIR / f"{name}{TEMPLATE_SUFFIX}"
    return fill(name, path.read_text(encoding="utf-8"), values)


def render(config: EdgeConfig) -> dict[str, str]:
    """The ConfigMap's files: file name to content."""
    values = template_values(config)
    files: dict[str, str] = {}
    for path in sorted(NGINX_DIR.iterdir()):
        if path.name.endswith(TEMPLATE_SUFFIX):
            name = path.name.removesuffix(TEMPLATE_SUFFIX)
            files[name] = fill(name, path.read_text(encoding="utf-8"), values.pop(name, {}))
        else:
            files[path.name] = path.read_text(encoding="utf-8")
    if values:
        raise EdgeConfigError(f"values for templates that do not exist: {sorted(values)}")
    files[MAINTENANCE_PAGE] = (PAGES_DIR / MAINTENANCE_PAGE).read_text(encoding="utf-8")
    size = sum(len(content.encode()) for content in files.values())
    if size > MAX_CONFIG_BYTES:
        raise EdgeConfigError(
            f"the edge configuration is {size} bytes, over the ConfigMap budget of "
            f"{MAX_CONFIG_BYTES} (the API server refuses a ConfigMap over 1 MiB): shorten the "
            "lists or the CIDR settings"
        )
    return files
