"""The browser benchmark's samples and its report: medians, ranges and the ratio of
ipytwist to JupyterLab, against the project's goal."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

SERVERS = ("ipytwist", "jupyterlab")
LABELS = {"ipytwist": "ipytwist", "jupyterlab": "JupyterLab"}
#: new: the kernel is started by opening the page; running: it was started before.
MODES = ("new", "running")
GOAL = 0.5  # the project's goal: ipytwist <= 0.5 x JupyterLab on each metric


@dataclass
class Sample:
    server: str
    mode: str  # "new" or "running"
    rep: int
    cache: str  # "cold" (fresh context) or "warm" (context reused after a warm-up)
    #: From the start (kernel creation for ipytwist "new", else navigation) to ...
    ready_s: float | None = None  # ... a focused code cell editor with the kernel idle
    one_s: float | None = None  # ... the ``2`` of ``1+1`` shown
    #: The same from navigation (equal to the above except for ipytwist "new").
    nav_ready_s: float | None = None
    nav_one_s: float | None = None
    nav_focus_s: float | None = None  # navigation -> the editor first had the focus
    nav_idle_s: float | None = None  # navigation -> the page first showed the kernel idle
    one_exec_s: float | None = None  # Shift+Enter -> 2 shown
    #: ready shown -> Shift+Enter of 1+1: the driver's round trips and typing (in one_s).
    one_typing_s: float | None = None
    flood_s: float | None = None  # Shift+Enter -> 19999 shown
    flood_seen_s: float | None = None  # ... first in the DOM (before the next frame)
    flood_first_s: float | None = None  # Shift+Enter -> the first line of the print shown
    flood_on_screen: bool | None = None  # the output's end was inside the window then
    heap_mib: float | None = None  # JS heap used after the print, after GC
    heap_before_gc_mib: float | None = None
    heap_total_mib: float | None = None
    dom_nodes: int | None = None
    page_mb: float | None = None  # the page and its resources, decoded (resource timing)
    js_listeners: int | None = None
    kernel_ready_before_s: float | None = None  # "running": start -> kernel_info answered
    kernel_reused: bool | None = None  # "running": the page uses the pre-started kernel
    page: dict[str, Any] = field(default_factory=dict)  # resource and navigation timing
    page_errors: list[str] = field(default_factory=list)
    clock_offset_ms: float | None = None  # page time origin - navigation start (python)
    error: str | None = None


def describe(s: Sample) -> str:
    def f(v: float | None, unit: str = "s", digits: int = 2) -> str:
        return "n/a" if v is None else f"{v:.{digits}f}{unit}"

    text = (
        f"{s.server:<10} {s.mode:<7} rep {s.rep}: ready {f(s.ready_s)} 1+1 {f(s.one_s)} "
        f"flood {f(s.flood_s, digits=3)} heap {f(s.heap_mib, ' MiB', 1)}"
    )
    if s.kernel_reused is False:
        text += " KERNEL NOT REUSED"
    if s.page_errors:
        text += f" ({len(s.page_errors)} page errors)"
    if s.error:
        text += f" ERROR {s.error}"
    return text


# -- report -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    key: str  # Sample attribute
    label: str
    unit: str  # "s", "ms", "MiB", "n", "MB"
    modes: tuple[str, ...] = MODES  # which samples it is taken from
    goal: bool = True  # the <= 0.5x goal applies


METRICS = [
    Metric(
        "ready_s", "open (kernel started with the page) -> focused cell, kernel idle", "s", ("new",)
    ),
    Metric("one_s", "open (kernel started with the page) -> `2` of `1+1` shown", "s", ("new",)),
    Metric(
        "ready_s", "open (kernel already running) -> focused cell, kernel idle", "s", ("running",)
    ),
    Metric("one_s", "open (kernel already running) -> `2` of `1+1` shown", "s", ("running",)),
    Metric("flood_s", "Shift+Enter on the print -> `19999` shown", "s"),
    Metric("heap_mib", "JS heap after the print, after GC", "MiB"),
    Metric("one_exec_s", "`1+1`: Shift+Enter -> `2` shown", "ms", goal=False),
    Metric("flood_first_s", "Shift+Enter on the print -> first line shown", "s", goal=False),
    Metric("heap_before_gc_mib", "JS heap after the print, before GC", "MiB", goal=False),
    Metric("dom_nodes", "DOM nodes after the print", "n", goal=False),
    Metric("page_mb", "bytes of the page and its resources (decoded)", "MB", goal=False),
]


def values(samples: list[Sample], server: str, m: Metric) -> list[float]:
    out = []
    for s in samples:
        if s.server != server or s.mode not in m.modes or s.error:
            continue
        if s.mode == "running" and s.kernel_reused is False:
            continue  # the page started another kernel: not the scenario
        v = getattr(s, m.key)
        if v is not None:
            out.append(v * 1000 if m.unit == "ms" else float(v))
    return out


def stats(xs: list[float]) -> dict[str, Any] | None:
    if not xs:
        return None
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def summarize(samples: list[Sample], servers: list[str]) -> list[dict[str, Any]]:
    rows = []
    for m in METRICS:
        row: dict[str, Any] = {"metric": m.label, "unit": m.unit, "goal_applies": m.goal}
        for name in servers:
            row[name] = stats(values(samples, name, m))
        a, b = row.get("ipytwist"), row.get("jupyterlab")
        row["ratio"] = a["median"] / b["median"] if a and b and b["median"] else None
        rows.append(row)
    return rows


def fmt_value(st: dict[str, Any] | None, unit: str) -> str:
    if not st:
        return "n/a"
    digits = {"s": 3, "ms": 0, "MiB": 1, "n": 0, "MB": 2}[unit]

    def f(v: float) -> str:
        return f"{v:,.{digits}f}"

    text = f"{f(st['median'])} {'' if unit == 'n' else unit}".rstrip()
    if st["n"] > 1:
        text += f" ({f(st['min'])}-{f(st['max'])})"
    return text


def table(rows: list[dict[str, Any]], servers: list[str]) -> str:
    heads = [LABELS[s] for s in servers]
    out = [
        "| metric | " + " | ".join(heads) + " | ratio | goal <= 0.5x |",
        "|---|" + "---|" * len(heads) + "---|---|",
    ]
    for r in rows:
        if not any(r.get(s) for s in servers):
            continue  # a mode that was not run
        cells = [fmt_value(r.get(s), r["unit"]) for s in servers]
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else ""
        goal = ""
        if r["goal_applies"] and r["ratio"] is not None:
            goal = "met" if r["ratio"] <= GOAL else "not met"
        out.append(f"| {r['metric']} | " + " | ".join(cells) + f" | {ratio} | {goal} |")
    return "\n".join(out)
