"""What ``bench/edge.py`` measured and how it is judged: the workloads and the target, the runs
of every round (``Results``: paired ratios, CPU per request, how busy each server was), and the
printed report with its verdict (``report``)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from edge_servers import BROWSER, EDGE, PLAIN, SYNTHETIC, Placement

SYNTHETIC_AGENTS = 5_000
SYNTHETIC_ADDRESSES = 50_000
TARGET = 0.90
APP = "ExpoScholarSync/1.4 (+https://exposcholar.org/sync)"
"""A client that is not a browser and is on no list: its user agent is scanned in full (a
browser's exact string takes the fast path), so its row shows what the lists cost."""
WORKLOADS = (
    ("api", "/api/bench", BROWSER),
    ("static", "/", BROWSER),
    ("api-app", "/api/bench", APP),
)
"""Name, path and user agent: proxied to the upstream, the site's index.html served by nginx,
and the proxied path again from a non-browser client."""
TARGETED = ("api", "static")
"""Workloads the target applies to (browser traffic, most of it); ``api-app`` is reported."""
NOISE = 0.15
"""Paired ratios whose quartiles differ by more than this (of their median) are reported."""
MET, MISSED, INCONCLUSIVE = 0, 1, 3
"""The bench's exit codes for its verdict (2: it could not run)."""
SATURATED = 0.9
"""Pinned, a server under test must be this busy (CPU time over wall time, per worker) for its
rate to be its own: a plain proxy held back by the load side would flatter the edge."""


@dataclass(frozen=True)
class Run:
    """One wrk run."""

    rps: float
    requests: int
    p99: str
    cpu_us: float = 0.0
    """CPU time of the server's nginx processes per request, in microseconds."""


@dataclass
class Results:
    """Every measured run: ``runs[workload][server]``, and log volume per server."""

    runs: dict[str, dict[str, list[Run]]] = field(default_factory=dict)
    log_bytes: dict[str, list[float]] = field(default_factory=dict)

    def add(self, workload: str, server: str, run: Run, log_bytes: float) -> None:
        self.runs.setdefault(workload, {}).setdefault(server, []).append(run)
        self.log_bytes.setdefault(server, []).append(log_bytes)

    def median(self, workload: str, server: str) -> float:
        """Median requests per second."""
        return statistics.median(run.rps for run in self.runs[workload][server])

    def ratios(self, workload: str, server: str, base: str = PLAIN) -> list[float]:
        """``server``'s requests per second over ``base``'s, one per round (the runs of a
        round are seconds apart)."""
        pairs = zip(self.runs[workload][server], self.runs[workload][base], strict=True)
        return [run.rps / other.rps for run, other in pairs]

    def ratio(self, workload: str, server: str, base: str = PLAIN) -> float:
        """Median of the paired ratios."""
        return statistics.median(self.ratios(workload, server, base))

    def quartiles(self, workload: str, server: str) -> tuple[float, float]:
        """First and third quartiles of the paired ratios."""
        first, _, third = statistics.quantiles(self.ratios(workload, server), n=4)
        return first, third

    def spread(self, workload: str, server: str) -> float:
        """Interquartile range of the paired ratios over their median."""
        first, third = self.quartiles(workload, server)
        return (third - first) / self.ratio(workload, server)

    def cpu(self, workload: str, server: str) -> float:
        """Median nginx CPU microseconds per request."""
        return statistics.median(run.cpu_us for run in self.runs[workload][server])

    def busy(self, workload: str, server: str) -> float:
        """Median share of the run the server's nginx spent on the CPU (CPU seconds per
        second: 1.0 is one CPU kept busy)."""
        return statistics.median(run.cpu_us * run.rps / 1e6 for run in self.runs[workload][server])


def report(
    results: Results,
    *,
    config_tests: dict[str, float],
    memory: dict[str, float],
    ready: dict[str, float],
    sizes: dict[str, int],
    pinned: Placement | None,
    workers: int,
    launches: Sequence[range],
) -> int:
    """Print the table; the verdict: MET when every shipped ratio meets the target, MISSED
    when one does not, INCONCLUSIVE when, pinned, a server did not keep its CPUs busy on a
    targeted workload (its rate was not its own)."""
    met = True
    print()
    print(f"placement: {pinned.describe() if pinned else 'not pinned (every process, every CPU)'}")
    print(
        f"{'workload':22} {'plain rps':>10} {'edge rps':>10} {'ratio':>6} {'quartiles':>12}   "
        f"{'nginx CPU us/request: plain':>27} {'edge':>6}"
    )
    for workload, path, _ in WORKLOADS:
        plain, edge = results.median(workload, PLAIN), results.median(workload, EDGE)
        ratio = results.ratio(workload, EDGE)
        first, third = results.quartiles(workload, EDGE)
        targeted = workload in TARGETED
        met = met and (ratio >= TARGET or not targeted)
        flag = ("" if ratio >= TARGET else f"  < {TARGET:.2f}") if targeted else "  (no target)"
        print(
            f"{workload + ' GET ' + path:22} {plain:10.0f} {edge:10.0f} {ratio:6.3f} "
            f"{first:5.3f}-{third:5.3f}   "
            f"{results.cpu(workload, PLAIN):27.1f} {results.cpu(workload, EDGE):6.1f}{flag}"
        )
    print(
        "  ratio: median over the rounds of edge rps / plain rps measured in the same round, "
        "and the quartiles of those ratios (rps: medians of the runs, unpaired)"
    )
    if len(launches) > 1:
        print(
            "  per launch (median of its rounds): "
            + "; ".join(
                f"{workload} "
                + " ".join(
                    f"{statistics.median(results.ratios(workload, EDGE)[r.start : r.stop]):.3f}"
                    for r in launches
                )
                for workload in TARGETED
            )
        )
    busy = {
        (workload, name): results.busy(workload, name) / workers
        for workload, _, _ in WORKLOADS
        for name in (PLAIN, EDGE)
    }
    print(
        "  busy (nginx CPU time / wall time per worker): "
        + ", ".join(f"{w} {n} {value:.2f}" for (w, n), value in busy.items())
    )
    idle = [f"{w} {n}" for (w, n), value in busy.items() if w in TARGETED and value < SATURATED]
    conclusive = not (pinned and idle)
    if not conclusive:
        print(
            f"  INCONCLUSIVE: {', '.join(idle)} below {SATURATED:.0%} busy on its own CPU: the "
            "load side (wrk, the upstream) set the pace, not the server; rerun on a quiet machine"
        )
    print()
    print(
        f"scaling: edge files with +{SYNTHETIC_AGENTS:,} blocked user agents and "
        f"+{SYNTHETIC_ADDRESSES:,} blocked addresses (synthetic)"
    )
    print(
        f"{'workload':22} {'plain rps':>10} {'synth rps':>10} {'ratio':>6} {'vs edge':>8} "
        f"{'nginx CPU us/request: synth':>27}"
    )
    for workload, path, _ in WORKLOADS:
        plain = results.median(workload, PLAIN)
        synthetic = results.median(workload, SYNTHETIC)
        ratio = results.ratio(workload, SYNTHETIC)
        print(
            f"{workload + ' GET ' + path:22} {plain:10.0f} {synthetic:10.0f} "
            f"{ratio:6.3f} {results.ratio(workload, SYNTHETIC, EDGE):8.3f} "
            f"{results.cpu(workload, SYNTHETIC):27.1f}"
        )
    print()
    print(f"{'configuration':22} {'nginx -t':>9} {'memory':>10} {'ready':>8} {'lists':>10}")
    for name in (PLAIN, EDGE, SYNTHETIC):
        test = f"{config_tests[name] * 1000:7.0f}ms"
        lists = f"{sizes[name] / 1024:8.0f}KB" if name in sizes else "-"
        print(f"{name:22} {test:>9} {memory[name]:8.1f}MB {ready[name]:7.1f}s {lists:>10}")
    print(
        "  memory: PSS of nginx master and workers after the runs; ready: launch to answering "
        "(edge: includes rendering the stack); lists: user-agents.conf + clients.conf"
    )
    volume = ", ".join(
        f"{name} {statistics.median(values):.0f}" for name, values in results.log_bytes.items()
    )
    print(f"  access log bytes/request: {volume}")
    noisy = [
        f"{workload} {name} {results.spread(workload, name):.0%}"
        for workload, _, _ in WORKLOADS
        for name in (EDGE, SYNTHETIC)
        if results.spread(workload, name) > NOISE
    ]
    if noisy:
        print(
            f"  noisy: paired ratios' quartiles differ by more than {NOISE:.0%} "
            f"({', '.join(noisy)}): something else used the CPUs; the CPU per request is the "
            "other figure to compare; rerun, or add --rounds"
        )
    print()
    if not conclusive:
        print(f"INCONCLUSIVE: the servers under test were not kept busy ({', '.join(idle)})")
        return INCONCLUSIVE
    if met:
        print(f"target met: edge / plain >= {TARGET:.2f} for {' and '.join(TARGETED)}")
        return MET
    print(f"TARGET MISSED: edge / plain < {TARGET:.2f} for {' or '.join(TARGETED)}")
    return MISSED
