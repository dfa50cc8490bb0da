"""Reliability figures: crashes, vanishing clients, SIGTERM under output, soak, the
transcript under its worst outputs, spawn and restart storms, a ZeroMQ client's restart,
the state directory (bench/reliability_host.py), hostile outputs on the notebook page, a
client's hostile input: frames, floods and request storms (bench/reliability_input.py).

Runs the scenarios of ``benchlib.scenarios`` (one copy of each: ``tests/reliability``
runs them shorter) against real ``twistd -n ipytwist`` services, each with its own
temporary state directory, and prints a markdown table for the README's
"Reliability" section.  Full results go to ``bench/results/reliability-<time>.json``.

    python bench/reliability.py                     # about 8-9 minutes
    python bench/reliability.py --soak-seconds 120  # shorter soak
    python bench/reliability.py --only crashes,sigterm
    python bench/reliability.py --only transcript   # about 1-2 minutes
    python bench/reliability.py --only storms,client-restart,state-dir
    python bench/reliability.py --only hostile      # Chromium (/usr/bin/chromium)
    python bench/reliability.py --only large        # large outputs, about 20 s
    python bench/reliability.py --only wsinput      # hostile frames, floods, storms

Fuzzing is not part of this bench: ``tests/reliability/test_fuzz.py`` drives its
fuzzers from hypothesis ``@given`` tests, not from plain scenario functions;
run it with pytest.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

from benchlib.results import Rows, dur, jsonable, save
from benchlib.running import TempDirs, running_service
from benchlib.scenarios.common import median, percentile
from benchlib.scenarios.crashes import crash_cycles, crash_kinds
from benchlib.scenarios.hostile_page import hostile_outputs
from benchlib.scenarios.large import MIB, large_outputs
from benchlib.scenarios.sigterm import sigterm_under_output
from benchlib.scenarios.soak import soak
from benchlib.scenarios.soak_cells import SOAK_SERVICE_ARGS
from benchlib.scenarios.transcript import carriage_storm, large_display, update_storm
from benchlib.scenarios.vanish import VANISH_SERVICE_ARGS, vanishing_clients
from benchlib.servers import REPO, WARM_POOL, checkout_env
from reliability_host import RUNNERS as HOST_RUNNERS
from reliability_host import add_arguments as host_arguments
from reliability_input import RUNNERS as INPUT_RUNNERS
from reliability_input import add_arguments as input_arguments

SCENARIOS = (
    "crashes",
    "clients",
    "sigterm",
    "soak",
    "transcript",
    "large",
    "hostile",
    *HOST_RUNNERS,
    *INPUT_RUNNERS,
)
CPU_KEYS = ("service", "workers", "clients")


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


def run_transcript(tmp: TempDirs, args: argparse.Namespace, out: dict[str, Any]) -> Rows:
    with running_service(tmp, "transcript") as svc:
        big = large_display(svc, 30)
        storm = update_storm(svc, 200, 200, 500)
        returns = carriage_storm(svc, 1, 100_000)
    out["transcript"] = jsonable(
        {"large_display": big, "update_storm": storm, "carriage_storm": returns}
    )
    mib = 1024 * 1024
    return [
        (
            "transcript",
            f"`display()` of a 30 MiB image ({big.image_bytes / mib:.0f} MiB of base64): "
            "transcript bytes / its bound",
            f"{big.transcript_bytes or big.transcript_json_bytes:,} / {big.bound:,} "
            f"(the output kept as a {len(big.note)}-character note)",
        ),
        (
            "transcript",
            f"{storm.cells} cells × {storm.displays} displays, then {storm.updates} updates "
            "of unknown display ids: the cell (on an empty transcript)",
            f"{dur(storm.storm_s)} ({dur(storm.empty_storm_s)})",
        ),
        (
            "transcript",
            "meanwhile `GET /api/kernels`, median / max",
            f"{dur(storm.rest.typical)} / {dur(storm.rest.longest)}",
        ),
        (
            "transcript",
            f"a {returns.line_bytes / mib:.0f} MiB line, {returns.returns:,} `\\ry`, then "
            "Show all: the request (meanwhile `GET /api/kernels`, max)",
            f"{dur(returns.show_all_s)} ({dur(returns.rest.longest)})"
            + ("" if returns.shown_right else ", WRONG TEXT"),
        ),
    ]


def run_hostile(tmp: TempDirs, args: argparse.Namespace, out: dict[str, Any]) -> Rows:
    from benchlib.chromium import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    with running_service(tmp, "hostile", *WARM_POOL) as svc, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            r = hostile_outputs(browser, svc, svc.start_kernel())  # one at a time
        finally:
            browser.close()
    out["hostile"] = jsonable(r)
    out["hostile_breaches"] = r.breaches()
    return [
        (
            "hostile outputs",
            f"{r.tried} hostile outputs on the notebook page, each live and from the "
            "transcript in Chromium: blocked (no navigation, script, cookie read, request "
            "to another site or covered control)",
            f"{r.blocked} of {r.tried}",
        ),
        ("hostile outputs", "links in them clicked: opened in a new tab", str(r.new_tabs)),
        ("hostile outputs", "time", dur(r.seconds)),
    ]


def run_large(tmp: TempDirs, args: argparse.Namespace, out: dict[str, Any]) -> Rows:
    with running_service(tmp, "large") as svc:
        r = large_outputs(svc)
    out["large"] = jsonable(r)
    rows: Rows = []
    for im in r.images:
        got = ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in im.delivered.items())
        rows += [
            ("large", f"{im.name}: byte for byte to", f"{got} ({dur(im.seconds)})"),
            (
                "large",
                f"{im.name}: service RSS before → peak → after",
                f"{im.rss_before:.0f} → {im.peak:.0f} → {im.rss_after:.0f} MiB "
                f"(peak +{(im.peak - im.rss_before) / (im.chars / MIB):.1f}x its size)",
            ),
        ]
    s = r.stalled
    if s is not None:
        notices = "; ".join(f"{n:,} messages ({b:,} bytes)" for n, b in s.notices)
        exact = "exact" if s.notices == s.expected else f"expected {s.expected}"
        rows += [
            (
                "large",
                "a reader stalled before the 40 MiB image, then 80 MB printed: "
                "its image, then its drop notice",
                f"{'image whole' if s.image_delivered else 'image MISSING'}; "
                f"{notices or 'none'} ({exact})",
            ),
            (
                "large",
                "service RSS before → with the reader stalled → after",
                f"{s.rss_before:.0f} → {s.rss_stalled:.0f} → {s.rss_after:.0f} MiB",
            ),
        ]
    return rows


RUNNERS: dict[str, Callable[[TempDirs, argparse.Namespace, dict[str, Any]], Rows]] = {
    "crashes": run_crashes,
    "clients": run_clients,
    "sigterm": run_sigterm,
    "soak": run_soak,
    "transcript": run_transcript,
    "large": run_large,
    "hostile": run_hostile,
    **HOST_RUNNERS,
    **INPUT_RUNNERS,
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
    host_arguments(ap)
    input_arguments(ap)
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
