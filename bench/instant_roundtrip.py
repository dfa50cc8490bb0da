"""``instant_bench.py --round-trip``: ``kernel_bench.py``'s round trips of ``1`` and stdout
throughput (its :func:`measure_sessions`, the kernels taking turns), for ipytwist over
the worker link (what the service runs) and ipykernel, and the client's floor: the
same round trip to ``floor_kernel.py``, a kernel that runs nothing.  A kernel's
overhead is its median round trip minus the floor's."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from kernel_bench_metrics import (
    SPEC_PREFIX,
    PidLog,
    measure_sessions,
    round_trip_stats,
    run_cell,
    start_session,
    stop_session,
)

HERE = os.path.dirname(os.path.abspath(__file__))
#: kernel_bench's kernelspec names: ipytwist as the service runs it, and ipykernel.
KERNELS = {"ipytwist": "ipytwist-link", "ipykernel": "ipykernel"}
FLOOR = "floor"


def add_floor_spec(root: str) -> None:
    """The floor kernel's kernelspec, next to those ``kernel_bench.prepare_environment``
    wrote under ``root``."""
    spec_dir = os.path.join(root, "jupyter", "kernels", SPEC_PREFIX + FLOOR)
    os.makedirs(spec_dir, exist_ok=True)
    argv = [sys.executable, os.path.join(HERE, "floor_kernel.py"), "-f", "{connection_file}"]
    with open(os.path.join(spec_dir, "kernel.json"), "w") as f:
        json.dump({"argv": argv, "display_name": "floor", "language": "python"}, f)


def floor_round_trips(args: argparse.Namespace, pids: PidLog) -> dict[str, Any]:
    """The floor's round trips: ``args.warmup`` untimed, then ``args.runs``."""
    session, _ = start_session(FLOOR, pids)
    try:
        for _ in range(args.warmup):
            run_cell(session.kc, "1")
        return round_trip_stats([run_cell(session.kc, "1") for _ in range(args.runs)])
    finally:
        stop_session(session, pids)


def run_round_trip(root: str, runs: int) -> dict[str, Any]:
    """The floor, then both kernels' round trips and stdout (kernel_bench's defaults
    otherwise: 30 warm-up round trips, blocks of 25, 3 trials of 100,000 lines)."""
    args = argparse.Namespace(
        runs=runs, warmup=30, block=25, lines=100_000, stdout_runs=3, settle=1.0
    )
    pids = PidLog(None)
    add_floor_spec(root)
    floor = floor_round_trips(args, pids)
    measured = measure_sessions(list(KERNELS.values()), args, pids)
    out: dict[str, Any] = {"floor": floor, "lines": args.lines}
    for name, spec in KERNELS.items():
        r = measured[spec]
        out[name] = {
            "kernelspec": spec,
            "round_trip": r["round_trip"],
            "overhead_ms": r["round_trip"]["median_ms"] - floor["median_ms"],
            "stdout": {k: v for k, v in r["stdout"].items() if k != "trials"},
        }
    return out


def round_trip_rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    """The table's rows for ``--round-trip``."""
    tw, py, floor = r["ipytwist"], r["ipykernel"], r["floor"]["median_ms"]
    a, b = tw["round_trip"]["median_ms"], py["round_trip"]["median_ms"]
    oa, ob = tw["overhead_ms"], py["overhead_ms"]
    ta, tb = tw["stdout"]["median_lines_per_s"], py["stdout"]["median_lines_per_s"]
    lost = sum(x["stdout"]["lost"] + x["stdout"]["out_of_order"] for x in (tw, py))
    return [
        ("round trip of `1` (request -> idle), median", "ms", f"{a:.2f}", f"{b:.2f}",
         f"{a / b:.2f}x", ""),
        (f"the same above the client's floor ({floor:.2f} ms)", "ms", f"{oa:.2f}",
         f"{ob:.2f}", f"{oa / ob:.2f}x" if ob > 0 else "-", "<= 0.15x"),
        (f"stdout, {r['lines']:,} printed lines ({lost} lost or out of order)", "lines/s",
         f"{ta:,.0f}", f"{tb:,.0f}", f"{ta / tb:.2f}x", ">= 3x"),
    ]  # fmt: skip
