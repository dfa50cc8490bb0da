"""Kernel benchmark: ipytwist and ipykernel side by side, in one run.

Both kernels are started from kernelspecs written to a temporary JUPYTER_PATH
and driven by the same jupyter_client code, so the only difference measured is
the kernel.  Metrics:

1. execute round trip of the cell ``1``: execute_request sent -> its
   ``status: idle`` received on iopub (median, p99);
2. stdout throughput of ``for i in range(N): print(i)``: every line checked,
   lines/s and wall time to idle;
3. time to ready (``start_kernel`` -> ``wait_for_ready``) and time to the
   first ``execute_result`` of ``1`` (counted from ``start_kernel`` too);
4. idle RSS of the kernel process and all its descendants.

Prints a markdown table (ipytwist, ipykernel, ratio) and writes JSON to
``bench/results/``.  ipytwist's workers run over pipes here; ``--link`` adds
``ipytwist-link``, the same kernel with its worker behind a keeper over the worker
link (docs/durable-kernels.md), taking turns with the others, and a second table:
the link against the pipes (goals: round trip at most 1.1x, stdout throughput at
least 0.9x).  Run ``python bench/kernel_bench.py --help`` for options.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchlib.results import machine, save, versions
from kernel_bench_metrics import SPEC_PREFIX, PidLog, measure_sessions, measure_startup

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # run from a checkout without installing

KERNELS = {
    "ipytwist": [sys.executable, "-m", "ipytwist.kernel", "-f", "{connection_file}"],
    "ipykernel": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
    "ipytwist-link": [sys.executable, "-m", "ipytwist.kernel", "-f", "{connection_file}"],
}
#: The kernelspecs' environment: ipytwist over pipes, and over the worker link.
SPEC_ENV = {
    "ipytwist": {"IPYTWIST_WORKER_LINK": "pipes"},
    "ipytwist-link": {"IPYTWIST_WORKER_LINK": "socket"},
}
#: The link's goals against the pipes (issue 18): the row's label, and the ratio's bound.
LINK_GOALS = {"round trip `1`, median": ("<=", 1.1), "throughput": (">=", 0.9)}


# -- environment ----------------------------------------------------------------


def prepare_environment() -> str:
    """Kernelspecs for both kernels in a fresh JUPYTER_PATH; a fresh IPYTHONDIR too."""
    root = tempfile.mkdtemp(prefix="ipytwist-bench-")
    for name, argv in KERNELS.items():
        spec_dir = os.path.join(root, "jupyter", "kernels", SPEC_PREFIX + name)
        os.makedirs(spec_dir)
        with open(os.path.join(spec_dir, "kernel.json"), "w") as f:
            json.dump(
                {
                    "argv": argv,
                    "display_name": f"Python 3 ({name}, bench)",
                    "language": "python",
                    "interrupt_mode": "signal",
                    "env": SPEC_ENV.get(name, {}),
                },
                f,
            )
    os.environ["JUPYTER_PATH"] = (
        os.path.join(root, "jupyter") + os.pathsep + os.environ.get("JUPYTER_PATH", "")
    )
    os.environ["IPYTHONDIR"] = os.path.join(root, "ipython")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    # The kernels import ipytwist from this checkout even when it is not installed.
    repo = os.path.dirname(HERE)
    os.environ["PYTHONPATH"] = repo + os.pathsep + os.environ.get("PYTHONPATH", "")
    return root


# -- report -----------------------------------------------------------------------


@dataclass
class Row:
    label: str
    unit: str
    get: Callable[[dict], float]
    fmt: str = "{:.2f}"
    better: str = "lower"
    notes: list[str] = field(default_factory=list)


def rows(lines: int) -> list[Row]:
    return [
        Row("round trip `1`, median", "ms", lambda r: r["round_trip"]["median_ms"]),
        Row("round trip `1`, p99", "ms", lambda r: r["round_trip"]["p99_ms"]),
        Row(
            f"stdout {lines:,} lines, throughput",
            "lines/s",
            lambda r: r["stdout"]["median_lines_per_s"],
            "{:,.0f}",
            "higher",
        ),
        Row(
            f"stdout {lines:,} lines, wall to idle",
            "s",
            lambda r: r["stdout"]["median_wall_s"],
            "{:.3f}",
        ),
        Row(
            "stdout lines lost / out of order",
            "lines",
            lambda r: r["stdout"]["lost"] + r["stdout"]["out_of_order"],
            "{:.0f}",
        ),
        Row(
            "time to ready (start -> wait_for_ready)",
            "s",
            lambda r: r["startup"]["median_ready_s"],
            "{:.3f}",
        ),
        Row(
            "time to first result of `1` (from start)",
            "s",
            lambda r: r["startup"]["median_first_result_s"],
            "{:.3f}",
        ),
        Row("idle RSS, all processes", "MiB", lambda r: r["rss_idle"]["total_mib"], "{:.1f}"),
        Row("idle PSS, all processes", "MiB", lambda r: r["rss_idle"]["pss_mib"], "{:.1f}"),
        Row("RSS after the stdout test", "MiB", lambda r: r["rss_after"]["total_mib"], "{:.1f}"),
    ]


#: The tables printed when both kernels of a pair ran.
PAIRS = [("ipytwist", "ipykernel"), ("ipytwist-link", "ipytwist")]


def table(results: dict[str, dict], lines: int, a_name: str, b_name: str) -> str:
    """Each metric of ``a_name`` and ``b_name``, and their ratio (with its goal, if any)."""
    goals = LINK_GOALS if a_name == "ipytwist-link" else {}
    out = [
        f"| metric | unit | {a_name} | {b_name} | ratio ({a_name}/{b_name}) |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows(lines):
        a = row.get(results[a_name])
        b = row.get(results[b_name])
        ratio = f"{a / b:.2f}x" if b else "-"
        for label, (op, bound) in goals.items():
            if label in row.label and b:
                met = a / b <= bound if op == "<=" else a / b >= bound
                ratio += f" (goal {op} {bound}x: {'met' if met else 'NOT met'})"
        out.append(
            f"| {row.label} | {row.unit} | {row.fmt.format(a)} | {row.fmt.format(b)} | {ratio} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=300, help="timed round trips (default 300)")
    p.add_argument("--warmup", type=int, default=30, help="untimed round trips first")
    p.add_argument("--block", type=int, default=25, help="round trips per turn of a kernel")
    p.add_argument("--lines", type=int, default=100_000, help="lines printed by the stdout cell")
    p.add_argument("--stdout-runs", type=int, default=3, help="repeats of the stdout cell")
    p.add_argument("--starts", type=int, default=5, help="cold starts per kernel")
    p.add_argument("--settle", type=float, default=1.0, help="idle seconds before reading RSS")
    p.add_argument("--only", choices=sorted(KERNELS), help="measure one kernel only")
    p.add_argument(
        "--link",
        action="store_true",
        help="ipytwist over the worker link too, against ipytwist over pipes",
    )
    p.add_argument("--pid-file", help="append every kernel pid here (for cleanup scripts)")
    p.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    args = p.parse_args(argv)

    root = prepare_environment()
    pids = PidLog(args.pid_file)
    names = [args.only] if args.only else ["ipytwist", "ipykernel"]
    if args.link:
        names = [n for n in names if n != "ipytwist-link"]
        names = [*dict.fromkeys(["ipytwist", *names]), "ipytwist-link"]
    results: dict[str, dict[str, Any]] = {n: {} for n in names}
    started = time.perf_counter()
    try:
        # Cold starts alternate between the kernels so drift hits both alike.
        print("cold starts ...", file=sys.stderr, flush=True)
        starts: dict[str, list[dict]] = {n: [] for n in names}
        for _ in range(args.starts):
            for n in names:
                starts[n].append(measure_startup(n, pids))
        for n in names:
            results[n]["startup"] = {
                "runs": args.starts,
                "median_ready_s": statistics.median(x["ready_s"] for x in starts[n]),
                "median_first_result_s": statistics.median(x["first_result_s"] for x in starts[n]),
                "trials": starts[n],
            }
        print("round trips, stdout, memory ...", file=sys.stderr, flush=True)
        for n, r in measure_sessions(names, args, pids).items():
            results[n].update(r)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    elapsed = time.perf_counter() - started

    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "elapsed_s": elapsed,
        "args": vars(args),
        "machine": machine(),
        "versions": versions(
            "ipytwist", "ipykernel", "jupyter_client", "pyzmq", "twisted", "ipython"
        ),
        "results": results,
    }
    tables = [(a, b) for a, b in PAIRS if a in names and b in names]
    if tables:
        md = "\n\n".join(table(results, args.lines, a, b) for a, b in tables)
        print(md)
        report["table"] = md
    else:
        print(json.dumps(results, indent=1))
    print(f"\n(total {elapsed:.1f}s)")
    if not args.no_save:
        print(f"wrote {os.path.relpath(save('kernel', report))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
