"""The flood benchmark's outcome per server, and its report: the figures, the table and
the JSON summary."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from flood_readers import STALLED_SILENCE

SERVERS = ("ipytwist", "jupyter_server")
MIB = 1024 * 1024


@dataclass
class Outcome:
    server: str
    flood_seconds: float | None = None  # flood request sent -> interrupt sent
    stopped_early: str = ""
    peak_rss_server: int = 0
    peak_rss_total: int = 0
    peak_rss_server_flood: int = 0  # within the flood period only
    peak_rss_total_flood: int = 0
    idle_rtts: list[float | None] = field(default_factory=list)
    flood_rtts: list[float | None] = field(default_factory=list)
    interrupt_http: str = ""
    interrupt_to_idle: float | None = None
    interrupt_to_rest_idle: float | None = None  # GET /api/kernels/{id} execution_state
    readers: dict[str, dict] = field(default_factory=dict)
    reader_errors: dict[str, str] = field(default_factory=dict)
    rss_samples: list[tuple[float, int, int, float]] = field(default_factory=list)
    server_cpu: float | None = None  # server process CPU seconds per second of flood
    t0: float | None = None  # monotonic time of the flood request
    t_interrupt: float | None = None
    error: str = ""

    # derived -------------------------------------------------------------------------

    def lines_per_s(self, role: str) -> float | None:
        r = self.readers.get(role)
        if not r or self.t0 is None or self.t_interrupt is None:
            return None
        upto = [n for t, n, _ in r["series"] if t <= self.t_interrupt]
        span = self.t_interrupt - self.t0
        return (upto[-1] if upto else 0) / span if span > 0 else None

    def reader_cpu(self, role: str) -> float | None:
        """A reader's CPU seconds per second during the flood."""
        r = self.readers.get(role)
        if not r or self.t0 is None or self.t_interrupt is None:
            return None
        inside = [(t, c) for t, _, c in r["series"] if self.t0 <= t <= self.t_interrupt]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return None
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])

    def closed_text(self, role: str) -> str:
        r = self.readers.get(role)
        if r is None:
            return "n/a (" + self.reader_errors.get(role, "no result")[:60] + ")"
        c = r.get("closed")
        if c is None:
            if role == "stalled":
                drained = f"{r['drained_bytes'] / MIB:,.1f} MiB"
                if not r.get("drain_finished"):
                    took = r["drain_seconds"]
                    return f"no close seen (read {drained} in {took:.0f}s, more coming)"
                return f"no close seen (read {drained}, then {STALLED_SILENCE:g}s without data)"
            return "no"
        at = f" at {c['at'] - self.t0:.1f}s" if self.t0 is not None else ""
        if role == "stalled":  # it only read at the end: when did TCP see the close?
            change = r.get("tcp_change")
            at = f", TCP {change[1]} at {change[0] - self.t0:.1f}s" if change and self.t0 else ""
            at = at or " (seen when read at the end)"
        if c.get("how") == "close frame":
            return f"{c['code']} {c['reason'][:50]!r}{at}".replace("|", "/")
        return f"{c['how'][:60]}{at}".replace("|", "/")


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def p90(xs: list[float]) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(0.9 * len(s)))]


def percent(x: float | None) -> float | None:
    return x * 100 if x is not None else None


def summary(o: Outcome) -> dict[str, Any]:
    """The table's figures (also saved in the JSON)."""
    idle = [x for x in o.idle_rtts if x is not None]
    flood_done = [x for x in o.flood_rtts if x is not None]
    timeouts = len(o.flood_rtts) - len(flood_done)
    # A timed-out probe counts as at least its timeout, so it cannot lower the median.
    flood_all = flood_done + [10.0] * timeouts
    fast = o.readers.get("fast", {})
    slow = o.readers.get("slow", {})
    idle_med, flood_med = median(idle), median(flood_all)
    return {
        "peak_rss_server_mib": o.peak_rss_server / MIB,
        "peak_rss_total_mib": o.peak_rss_total / MIB,
        "fast_lines_per_s": o.lines_per_s("fast"),
        "fast_lines": fast.get("lines"),
        "fast_lost": fast.get("lost"),
        "fast_malformed": fast.get("malformed"),
        "slow_lines_per_s": o.lines_per_s("slow"),
        "slow_lost": slow.get("lost"),
        "slow_notices": slow.get("notices"),
        "fast_closed": o.closed_text("fast"),
        "slow_closed": o.closed_text("slow"),
        "stalled_closed": o.closed_text("stalled"),
        "rtt_idle_median_ms": idle_med * 1000 if idle_med is not None else None,
        "rtt_flood_median_ms": flood_med * 1000 if flood_med is not None else None,
        "rtt_flood_p90_ms": (p90(flood_all) or 0) * 1000 if flood_all else None,
        "rtt_flood_over_idle": flood_med / idle_med if idle_med and flood_med else None,
        "rtt_flood_timeouts": timeouts,
        "rtt_flood_count": len(o.flood_rtts),
        "interrupt_to_idle_s": o.interrupt_to_idle,
        "interrupt_to_rest_idle_s": o.interrupt_to_rest_idle,
        "flood_seconds": o.flood_seconds,
        "server_cpu_pct": percent(o.server_cpu),
        "fast_cpu_pct": percent(o.reader_cpu("fast")),
    }


ROWS: list[tuple[str, str, str, bool]] = [
    # (label, summary key, format, whether an ipytwist / jupyter_server ratio makes sense)
    ("flood duration (s)", "flood_seconds", "s1", False),
    ("peak RSS, server process (MiB)", "peak_rss_server_mib", "n0", True),
    ("peak RSS, server + kernels (MiB)", "peak_rss_total_mib", "n0", True),
    ("fast reader lines/s", "fast_lines_per_s", "n0", True),
    ("fast reader lines lost", "fast_lost", "i", False),
    ("slow reader lines/s", "slow_lines_per_s", "n1", True),
    ("slow reader lines lost", "slow_lost", "i", False),
    ("slow reader drop notices", "slow_notices", "i", False),
    ("fast reader closed by server", "fast_closed", "t", False),
    ("slow reader closed by server", "slow_closed", "t", False),
    ("stalled reader closed by server", "stalled_closed", "t", False),
    ("kernel B round trip, idle median (ms)", "rtt_idle_median_ms", "n1", True),
    ("kernel B round trip, flood median (ms)", "rtt_flood_median_ms", "n1", True),
    ("kernel B round trip, flood p90 (ms)", "rtt_flood_p90_ms", "n1", True),
    ("kernel B round trip, flood/idle", "rtt_flood_over_idle", "x", True),
    ("kernel B round trips timed out (10 s)", "rtt_flood_timeouts", "i", False),
    ("interrupt -> idle seen by fast reader (s)", "interrupt_to_idle_s", "s2", True),
    ("interrupt -> kernel idle in REST model (s)", "interrupt_to_rest_idle_s", "s2", True),
    ("server process CPU during flood (% of a core)", "server_cpu_pct", "n0", False),
    ("fast reader CPU during flood (% of a core)", "fast_cpu_pct", "n0", False),
]


def fmt(v: Any, kind: str, cap: float) -> str:
    if kind == "t":
        return str(v)
    if v is None:
        if kind == "s2":
            return f"did not reach idle within {cap:g} s"
        return "n/a"
    if kind == "i":
        return f"{v:,}"
    if kind == "x":
        return f"{v:.1f}x"
    if kind.startswith("s"):
        return f"{v:.{kind[1]}f}"
    return f"{v:,.{kind[1]}f}"


def table(outcomes: list[Outcome], cap: float) -> str:
    sums = {o.server: summary(o) for o in outcomes}
    names = [s for s in SERVERS if s in sums]
    both = len(names) == 2
    head = "| metric | " + " | ".join(names) + (" | ipytwist / jupyter_server |" if both else " |")
    rows = [head, "|---" * (len(names) + 1 + both) + "|"]
    for label, key, kind, ratio in ROWS:
        cells = [fmt(sums[n][key], kind, cap) for n in names]
        if both:
            a, b = sums["ipytwist"][key], sums["jupyter_server"][key]
            numbers = isinstance(a, float | int) and isinstance(b, float | int)
            cells.append(f"{a / b:.3g}" if ratio and numbers and b else "")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    notes = [
        f"- {o.server}: {note}"
        for o in outcomes
        for note in (o.stopped_early, o.error, *(f"{r}: {e}" for r, e in o.reader_errors.items()))
        if note
    ]
    return "\n".join(rows + ([""] + notes if notes else []))


def print_outcome(o: Outcome, cap: float) -> None:
    s = summary(o)
    print(f"  {o.server}:", flush=True)
    for label, key, kind, _ in ROWS:
        print(f"    {label:<44} {fmt(s[key], kind, cap)}")
    if o.interrupt_http:
        print(f"    {'interrupt request':<44} {o.interrupt_http}")
    for note in (o.stopped_early, o.error):
        if note:
            print(f"    note: {note}")
    print(flush=True)
