"""Reliability figures: crashes, vanishing clients, SIGTERM under output, soak, input.

Runs the scenarios of ``benchlib.scenarios`` (one copy of each: ``tests/reliability``
runs them shorter) against real ``twistd -n ipytwist`` services, each with its own
temporary state directory, and prints a markdown table for the README's
"Reliability" section.  Full results go to ``bench/results/reliability-<time>.json``.

    python bench/reliability.py                     # about 8-9 minutes
    python bench/reliability.py --soak-seconds 120  # shorter soak
    python bench/reliability.py --only crashes,sigterm
    python bench/reliability.py --only wsinput      # hostile frames, floods, storms

Fuzzing is not part of this bench: ``tests/reliability/test_fuzz.py`` drives its
fuzzers from hypothesis ``@given`` tests, not from plain scenario functions;
run it with pytest.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from typing import Any

from benchlib.results import save
from benchlib.running import TempDirs, running_service
from benchlib.scenarios.common import Errors, median, percentile
from benchlib.scenarios.crashes import crash_cycles, crash_kinds
from benchlib.scenarios.sigterm import sigterm_under_output
from benchlib.scenarios.soak import soak
from benchlib.scenarios.soak_cells import SOAK_SERVICE_ARGS
from benchlib.scenarios.storms import ws_storm, zmq_storm
from benchlib.scenarios.vanish import VANISH_SERVICE_ARGS, vanishing_clients
from benchlib.scenarios.wsinput import MiB, hostile_legacy_frames, one_id_flood, request_flood
from benchlib.servers import REPO, checkout_env

SCENARIOS = ("crashes", "clients", "sigterm", "soak", "wsinput")
CPU_KEYS = ("service", "workers", "clients")
Rows = list[tuple[str, str, str]]  # (scenario, what, figure)


def jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Errors):
        return {"count": obj.count, "kinds": dict(obj.kinds), "first": obj.first}
    if isinstance(obj, Counter | dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    return obj


def dur(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def secs(xs: list[float]) -> str:
    """median / max."""
    if not xs:
        return "-"
    return f"{dur(median(xs))} / {dur(max(xs))}"


def run_crashes(tmp: TempDirs, args: argparse.Namespace, out: dict[str, Any]) -> Rows:
    rows: Rows = []
    with running_service(tmp, "crashes") as svc:
        kinds = crash_kinds(svc)
        out["crash_kinds"] = kinds
        for name, s in kinds.items():
            rows.append(("crash", f"{name}: its reply → `1` answered", dur(s)))
        r = crash_cycles(svc, args.cycles)
        out["crash_cycles"] = jsonable(r)
    n = r.cycles
    rows += [
        (
            "crash",
            f"{n} cycles of `os._exit(1)` + `1`: time per cycle, median / max",
            secs(r.cycle_s),
        ),
        ("crash", f"{n} cycles: crash reply → `1` answered, median / max", secs(r.recover_s)),
        ("crash", f"{n} cycles: failed crash reports or round trips", str(len(r.failures))),
        ("crash", f"service fds before → after {n} cycles", f"{r.before.fds} → {r.after.fds}"),
        (
            "crash",
            f"service child processes before → after {n} cycles",
            f"{len(r.before.procs)} → {len(r.after.procs)} (the current worker)",
        ),
        (
            "crash",
            f"service RSS before → after {n} cycles",
            f"{r.before.rss_mib:.1f} → {r.after.rss_mib:.1f} MiB "
            f"({r.after.rss_mib - r.before.rss_mib:+.1f} MiB)",
        ),
    ]
    return rows


def run_clients(tmp: TempDirs, args: argparse.Namespace, out: dict[str, Any]) -> Rows:
    with running_service(tmp, "clients", *VANISH_SERVICE_ARGS) as svc:
        r = vanishing_clients(svc, args.vanish_seconds, args.clients)
    out["vanishing_clients"] = jsonable(r)
    half = [v for t, v in r.rss if t >= r.seconds / 2]
    kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(r.cycles.items()))
    return [
        (
            "clients",
            f"{r.slots} clients × {r.seconds:.0f} s: connect/vanish cycles",
            f"{r.total_cycles:,} ({r.total_cycles / r.seconds:,.0f}/s): {kinds}",
        ),
        ("clients", "failed connections or cycles", str(r.errors.count)),
        (
            "clients",
            "kernel `connections` before → after (back to baseline in)",
            f"{r.connections_before} → {r.connections_after} ({r.settle_s:.2f} s)",
        ),
        ("clients", "service fds before → after", f"{r.baseline.fds} → {r.after.fds}"),
        (
            "clients",
            "service RSS before → after (second half of the churn)",
            f"{r.baseline.rss_mib:.1f} → {r.after.rss_mib:.1f} MiB ({half[-1] - half[0]:+.1f} MiB)"
            if half
            else "-",
        ),
        ("clients", "print loop interrupted, then `1`", f"{r.interrupted}, {r.round_trip}"),
    ]


def run_sigterm(tmp: TempDirs, args: argparse.Namespace, out: dict[str, Any]) -> Rows:
    with running_service(tmp, "sigterm") as svc:
        r = sigterm_under_output(svc)
    out["sigterm"] = jsonable(r)
    return [
        (
            "SIGTERM",
            "2 kernels printing (one reader draining, one stalled), each with a child",
            f"exit status {r.exit_code} after {r.exit_s:.2f} s",
        ),
        (
            "SIGTERM",
            "workers and children left alive; connection files and server.json left",
            f"{len(r.left_alive)} of {len(r.pids)}; "
            f"{len(r.files_after)} of {len(r.files_before)} and "
            f"{'server.json' if r.server_json_after else 'none'}",
        ),
    ]


def run_soak(tmp: TempDirs, args: argparse.Namespace, out: dict[str, Any]) -> Rows:
    with running_service(tmp, "soak", *SOAK_SERVICE_ARGS) as svc:
        r = soak(svc, args.soak_seconds, args.soak_warmup, args.kernels, args.per_kernel)
    out["soak"] = jsonable(r)
    every = [x for xs in r.latency.values() for x in xs]
    kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(r.done.items()))
    return [
        (
            "soak",
            f"{r.kernels} kernels × {r.clients} clients, {r.warmup:.0f} s warm-up + "
            f"{r.seconds:.0f} s: requests answered",
            f"{r.requests:,} ({r.requests / (r.warmup + r.seconds):,.0f}/s): {kinds}",
        ),
        (
            "soak",
            "request → reply (and idle), median / p99 / max",
            f"{median(every) * 1000:.0f} / {percentile(every, 0.99) * 1000:.0f} / "
            f"{max(every) * 1000:.0f} ms"
            if every
            else "-",
        ),
        (
            "soak",
            "errors (missing or wrong replies, no idle), gap notices, closed connections",
            f"{r.errors.count}, {r.gaps}, {len(r.closed)}",
        ),
        ("soak", "interrupt → KeyboardInterrupt reply, median / max", secs(r.interrupt_s)),
        (
            "soak",
            "service RSS after warm-up → end",
            f"{r.rss_warm:.1f} → {r.rss_end:.1f} MiB ({r.growth_pct:+.1f} %)",
        ),
        ("soak", "service fds after warm-up → end", f"{r.fds_warm} → {r.fds_end}"),
        (
            "soak",
            "CPU while measured, % of one core: service / all workers / the clients",
            " / ".join(f"{r.cpu_pct.get(k, float('nan')):.0f} %" for k in CPU_KEYS),
        ),
    ]


def run_wsinput(tmp: TempDirs, args: argparse.Namespace, out: dict[str, Any]) -> Rows:
    with running_service(tmp, "wsinput") as svc:
        frames = hostile_legacy_frames(svc)
        flood = request_flood(svc, requests=300, size=MiB)
        one_id = one_id_flood(svc, requests=4000)
        zmq = zmq_storm(svc, clients=10, requests=10, size=MiB)
    with running_service(tmp, "storm") as svc:
        storm = ws_storm(svc, rounds=args.storms)
    out["wsinput"] = jsonable(
        {"frames": frames, "flood": flood, "one_id": one_id, "zmq": zmq, "storm": storm}
    )
    rows: Rows = [
        (
            "input",
            f"{frames.hostile} legacy frames of {frames.hostile_bytes // 1024} KiB, "
            f"{frames.offsets} offsets going back and forth: peak memory",
            f"+{frames.hostile_peak_mib:.1f} MiB (refused, {frames.log_lines} log lines)",
        ),
        (
            "input",
            f"a legacy frame with a {frames.valid_bytes // MiB} MiB buffer: peak memory",
            f"+{frames.valid_peak_mib:.1f} MiB "
            f"({frames.valid_peak_mib * MiB / frames.valid_bytes:.1f}x its size)",
        ),
        (
            "input",
            f"{flood.requests} execute_requests of 1 MiB behind a running cell: taken in, "
            "peak memory",
            f"{flood.taken}, +{flood.peak_mib:.1f} MiB; all {sum(flood.statuses.values())} "
            f"answered after the interrupt ({dict(flood.statuses)})",
        ),
        (
            "input",
            f"{one_id.requests} execute_requests with one msg_id behind a running cell: "
            "read before the interrupt",
            f"{one_id.statuses['aborted']} (then the rest: {dict(one_id.statuses)})",
        ),
        (
            "input",
            f"ZeroMQ: {zmq.clients * zmq.requests} execute_requests of 1 MiB at once: "
            "longest stall",
            f"{dur(zmq.stalls.longest())} ({zmq.stalls.count()} round trips timed)",
        ),
    ]
    for i, rd in enumerate(storm.rounds, 1):
        took = f"busy {rd.seconds:.0f} s" if rd.seconds is not None else "busy past 600 s"
        rows.append(
            (
                "input",
                f"storm {i}: {storm.sessions} sessions x {storm.requests} requests nobody "
                "reads: longest stall; RSS after (before the first)",
                f"{dur(rd.stalls.longest())} ({rd.stalls.count()} round trips, {took}); "
                f"{rd.rss_after:.0f} MiB ({storm.rss_before:.0f})",
            )
        )
    return rows


RUNNERS: dict[str, Callable[[TempDirs, argparse.Namespace, dict[str, Any]], Rows]] = {
    "crashes": run_crashes,
    "clients": run_clients,
    "sigterm": run_sigterm,
    "soak": run_soak,
    "wsinput": run_wsinput,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=100, help="crash/restart cycles (100)")
    ap.add_argument("--vanish-seconds", type=float, default=60.0, help="client churn (60)")
    ap.add_argument("--clients", type=int, default=200, help="vanishing clients (200)")
    ap.add_argument("--soak-seconds", type=float, default=300.0, help="measured soak (300)")
    ap.add_argument("--soak-warmup", type=float, default=30.0, help="soak warm-up (30)")
    ap.add_argument("--kernels", type=int, default=10, help="soak kernels (10)")
    ap.add_argument("--per-kernel", type=int, default=10, help="soak clients per kernel (10)")
    ap.add_argument("--storms", type=int, default=3, help="request storms in a row (3)")
    ap.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    ap.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = ap.parse_args()
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")

    root = tempfile.mkdtemp(prefix="ipytwist-reliability-")
    # The checkout's ipytwist, a throwaway IPython profile (no user history touched).
    os.environ.update(checkout_env(os.path.join(root, "ipython")))
    tmp = TempDirs(root)
    rows: Rows = []
    out: dict[str, Any] = {"args": vars(args), "failed": {}}
    started = time.monotonic()
    try:
        for name in chosen:
            t0 = time.monotonic()
            print(f"[reliability] {name} ...", file=sys.stderr, flush=True)
            try:
                rows += RUNNERS[name](tmp, args, out)
            except Exception as e:  # report and go on with the other scenarios
                traceback.print_exc()
                out["failed"][name] = f"{type(e).__name__}: {e}"
                rows.append((name, "FAILED", f"{type(e).__name__}: {str(e)[:200]}"))
            print(f"[reliability] {name}: {time.monotonic() - t0:.0f} s", file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out["seconds"] = time.monotonic() - started

    print("| scenario | what | figure |")
    print("|---|---|---|")
    for scenario, what, figure in rows:
        print(f"| {scenario} | {what} | {figure} |")
    if not args.no_save:
        path = save("reliability", out)
        print(f"\nfull results: {os.path.relpath(path, REPO)}", file=sys.stderr)
    return 1 if out["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
