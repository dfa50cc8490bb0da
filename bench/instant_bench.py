"""Instant kernels (issue 20): ipytwist and ipykernel side by side, in one run, as ratios.

1. new kernel -> result of ``1``, ``--kernels`` in a row (the two kernels take turns):
   median, min, max;
2. PSS (and RSS) per idle kernel, all its processes, with those kernels all running:
   for ipytwist the keeper each kernel's record names and everything below it (its
   interpreter), for ipykernel the kernel's process tree;
3. restart -> result of ``1`` (ipytwist: ``POST /api/kernels/<id>/restart``; ipykernel:
   ``KernelManager.restart_kernel``) and crash -> result of ``1`` (a cell SIGKILLs the
   interpreter; ipykernel has no recovery of its own: it stays dead);
4. ``--many N``: N kernels asked for at once on one service (``instant_many.py``);
5. ``--round-trip``: ``kernel_bench.py``'s execute round trip and stdout throughput,
   and the round trip's overhead above the client's floor (``instant_roundtrip.py``).

Prints
a markdown table (metric, unit, ipytwist, ipykernel, ratio, goal) and writes JSON to
``bench/results/instant-<time>.json``.  Every kernel and service it started is stopped
on the way out, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from benchlib.procs import end_keepers
from benchlib.results import machine, save, versions
from benchlib.servers import Service, checkout_env
from instant_kernels import PyKernels, TwistKernels, memory_mib
from instant_many import run_many
from instant_roundtrip import round_trip_rows, run_round_trip
from kernel_bench import prepare_environment

#: Seconds idle before the memory is read.
SETTLE = 1.0


@contextmanager
def service(root: str, name: str, extra: list[str]) -> Iterator[Service]:
    """A started service in ``root/name``; stopped after, and any keeper its records
    name that outlived it ended."""
    base = os.path.join(root, name)
    svc = Service(base, *extra, env=checkout_env(os.path.join(base, "ipython")))
    try:
        svc.start()
        yield svc
    finally:
        svc.stop()
        end_keepers(svc.state_dir)


def spread(samples: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "samples": samples,
    }


def per_kernel_memory(kernels: TwistKernels | PyKernels) -> dict[str, Any]:
    """PSS and RSS per kernel (all its processes, and its share of the fork server's),
    and their mean."""
    procs = kernels.processes()
    each = {k: memory_mib(pids) for k, pids in procs.items()}
    n = len(each)
    shared = memory_mib(kernels.shared())
    return {
        "pss_mib": (sum(m["pss_mib"] for m in each.values()) + shared["pss_mib"]) / n,
        "rss_mib": sum(m["rss_mib"] for m in each.values()) / n,
        "shared_pss_mib": shared["pss_mib"],
        "processes_per_kernel": sum(len(p) for p in procs.values()) / n,
        "kernels": each,
    }


def measure(args: argparse.Namespace, root: str) -> dict[str, Any]:
    """Rows 1-3: both kernels taking turns, all of them running for the memory row."""
    out: dict[str, Any] = {"ipytwist": {}, "ipykernel": {}}
    py = PyKernels(os.path.join(root, "ipython"))
    try:
        with service(root, "instant", args.service_arg) as svc:
            tw = TwistKernels(svc)
            try:
                starts: dict[str, list[float]] = {"ipytwist": [], "ipykernel": []}
                for i in range(args.kernels):
                    print(f"kernel {i + 1}/{args.kernels}", file=sys.stderr, flush=True)
                    for k in (tw, py):
                        starts[k.name].append(k.new())
                time.sleep(SETTLE)  # idle before reading the memory: not a synchronisation
                for k in (tw, py):
                    out[k.name]["start"] = spread(starts[k.name])
                    out[k.name]["memory"] = per_kernel_memory(k)
                print("restarts and crashes", file=sys.stderr, flush=True)
                restarts: dict[str, list[float]] = {"ipytwist": [], "ipykernel": []}
                crashes: list[dict[str, float]] = []
                for _ in range(args.restarts):
                    for k in (tw, py):
                        restarts[k.name].append(k.restart())
                    crashes.append(tw.crash())
                for k in (tw, py):
                    out[k.name]["restart"] = spread(restarts[k.name])
                out["ipytwist"]["crash"] = spread([c["recover_s"] for c in crashes])
                out["ipytwist"]["crash_from_cell"] = spread([c["total_s"] for c in crashes])
            finally:
                tw.close()
    finally:
        py.close()
    return out


def fmt_range(s: dict[str, Any]) -> str:
    return f"{s['median']:.3f} ({s['min']:.3f}-{s['max']:.3f})"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def pair_ratios(tw: dict[str, Any], py: dict[str, Any], key: str) -> str:
    """The range of the ratios of the samples taken in turn (ipytwist's i-th over
    ipykernel's i-th), in brackets."""
    pairs = sorted(a / b for a, b in zip(tw[key]["samples"], py[key]["samples"], strict=True))
    return f" ({pairs[0]:.2f}-{pairs[-1]:.2f}x)"


def table(r: dict[str, Any], args: argparse.Namespace) -> str:
    """The markdown table: metric, unit, ipytwist, ipykernel, ratio, goal."""
    tw, py = r["ipytwist"], r["ipykernel"]
    rows = [
        ("metric", "unit", "ipytwist", "ipykernel", "ratio", "goal"),
        ("---", "---", "---:", "---:", "---:", "---:"),
        (
            f"new kernel -> result of `1`, {args.kernels} in a row: median (min-max)",
            "s",
            fmt_range(tw["start"]),
            fmt_range(py["start"]),
            ratio(tw["start"]["median"], py["start"]["median"]) + pair_ratios(tw, py, "start"),
            "<= 0.1x",
        ),
    ]
    for what in ("pss", "rss"):
        a, b = tw["memory"][f"{what}_mib"], py["memory"][f"{what}_mib"]
        goal = "<= 0.25x" if what == "pss" else ""
        label = f"{what.upper()} per idle kernel, all its processes, {args.kernels} kernels"
        label += " (+ a share of the fork server)" if what == "pss" else ""
        rows.append((label, "MiB", f"{a:.1f}", f"{b:.1f}", ratio(a, b), goal))
    rt = (tw["restart"], py["restart"])
    rows.append(
        (
            "restart -> result of `1`: median (min-max)",
            "s",
            fmt_range(rt[0]),
            fmt_range(rt[1]),
            ratio(rt[0]["median"], rt[1]["median"]) + pair_ratios(tw, py, "restart"),
            "<= 0.05 s",
        )
    )
    rows.append(
        (
            "crash (its reply) -> result of `1`: median (min-max)",
            "s",
            fmt_range(tw["crash"]),
            "(dies)",
            "",
            "<= 0.05 s",
        )
    )
    if "many" in r:
        rows += many_rows(r["many"])
    if "round_trip" in r:
        rows += round_trip_rows(r["round_trip"])
    else:
        rows.append(
            (
                "round trip of `1` above the client floor; stdout throughput",
                "",
                "`--round-trip`",
                "",
                "",
                "<= 0.15x; >= 3x",
            )
        )
    legend = (
        "\nRatio = ipytwist / ipykernel, of the medians; in brackets the range of the ratios"
        " of the samples taken in turn. Crash: from the crashing cell's reply."
    )
    return "\n".join("| " + " | ".join(row) + " |" for row in rows) + "\n" + legend


def many_rows(m: dict[str, Any]) -> list[tuple[str, ...]]:
    n = m["kernels"]
    return [
        (f"{n} kernels at once -> all answer `1`", "s", f"{m['all_answered_s']:.1f}", "", "",
         "200 in <= 10 s"),
        (f"{n} kernels: PSS / RSS of the service and all its processes", "MiB",
         f"{m['memory']['pss_mib']:,.0f} / {m['memory']['rss_mib']:,.0f}", "", "",
         "200: <= 1,800 MiB"),
        (f"{n} kernels: `GET /api/kernels`, median (max) of 20", "ms",
         f"{m['list_ms']['median']:.1f} ({m['list_ms']['max']:.1f})", "", "", "< 200 ms"),
        (f"{n} kernels idle: CPU of all processes over 10 s", "% of a core",
         f"{m['idle_cpu']['core_percent']:.1f}", "", "", "< 5 %"),
    ]  # fmt: skip


def stop_on_sigterm() -> None:
    """SIGTERM ends the run as Ctrl-C does: through every ``finally`` that stops kernels."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kernels", type=int, default=20, help="kernels started in a row (20)")
    p.add_argument("--restarts", type=int, default=5, help="restarts and crashes each (5)")
    p.add_argument(
        "--many",
        type=int,
        nargs="?",
        const=200,
        default=0,
        metavar="N",
        help="also N kernels at once on one service (200 if N is not given)",
    )
    p.add_argument(
        "--round-trip",
        type=int,
        nargs="?",
        const=300,
        default=0,
        metavar="RUNS",
        help="also kernel_bench's round trips (300 if RUNS is not given), stdout throughput"
        " and the client's floor",
    )
    p.add_argument(
        "--service-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an option for the service (repeatable: --service-arg=--prespawn ...)",
    )
    p.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    args = p.parse_args(argv)  # fmt: skip
    stop_on_sigterm()
    root = prepare_environment()
    started = time.perf_counter()
    try:
        results = measure(args, root)
        if args.round_trip:
            print("round trips and stdout", file=sys.stderr, flush=True)
            results["round_trip"] = run_round_trip(root, args.round_trip)
        if args.many:
            print(f"{args.many} kernels at once", file=sys.stderr, flush=True)
            with service(root, "many", args.service_arg) as svc:
                results["many"] = run_many(svc, args.many)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    elapsed = time.perf_counter() - started
    md = table(results, args)
    print(md)
    print(f"\n(total {elapsed:.1f}s)")
    if not args.no_save:
        report = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "elapsed_s": elapsed,
            "args": vars(args),
            "machine": machine(),
            "versions": versions("ipytwist", "ipykernel", "jupyter_client", "ipython"),
            "results": results,
            "table": md,
        }
        print(f"wrote {os.path.relpath(save('instant', report))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
