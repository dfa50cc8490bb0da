"""Widget update throughput to many WebSocket clients: ipytwist and jupyter_server +
ipykernel, side by side in one run.

Each server gets one kernel and ``--clients`` WebSocket clients on it (the
``v1.kernel.websocket.jupyter.org`` subprotocol, which both speak, or ``--protocol
legacy``), all in one asyncio event loop.  One client executes

    import ipywidgets as w; s = w.IntSlider(min=0, max=N); display(s)

(untimed), then the timed cell ``for i in range(N): s.value = i``.  Measured: the time
from that execute_request until every client has seen the ``comm_msg`` whose state value
is N-1 and the cell's ``status: idle``; the updates each client received per second; the
messages and frames each client received; the peak RSS of the server and its kernel; the
CPU time of both sides.  Every client must end at N-1, with no value out of order and no
notice of dropped output: a trial where one does not is reported as FAILED (and the exit
status is 1).

Rounds alternate the order of the servers.  Prints a markdown table (medians over the
rounds, min-max in brackets, the ratio ipytwist / jupyter_server against the goal of 5x
on updates/s) and writes JSON to ``bench/results/``.  ``--help`` for options.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import asdict
from typing import Any

from benchlib.cli import add_common_options, scratch
from benchlib.procs import kill_leftovers
from benchlib.results import record, save, versions
from benchlib.servers import ServerProcess, comparison_server
from browser_report import fmt_value, stats
from flood_meters import RssSampler
from widget_run import MIB, PROTOCOLS, Trial, attach, trial

SERVERS = ("ipytwist", "jupyter_server")
GOAL = 5.0  # the project's goal: ipytwist delivers >= 5x the updates/s per client
WARMUP_UPDATES = 1000

#: (Trial attribute, label, unit, ratio is a goal row)
METRICS = [
    ("time_s", "execute_request -> every client at value N-1 and idle", "s", False),
    ("updates_per_s", "updates/s per client (median client)", "n", True),
    (
        "received_per_s",
        "updates received/s per client, all trials, lost updates or not",
        "n",
        False,
    ),
    ("updates", "updates received per client", "n", False),
    ("iopub", "iopub messages of the cell per client", "n", False),
    ("frames", "frames received per client", "n", False),
    ("peak_rss_mib", "peak RSS, server + kernel, during the loop", "MiB", False),
    ("rss_before_mib", "RSS, server + kernel, before the loop", "MiB", False),
    ("server_cpu_s", "CPU, server + kernel, during the loop", "s", False),
    ("client_cpu_s", "CPU of the clients' process during the loop", "s", False),
]
PER_CLIENT = ("updates", "iopub", "frames")
#: Rows taken from the good trials only (the others from every trial, failed or not).
GOOD_ONLY = ("time_s", "updates_per_s")


def metric_values(trials: list[Trial], server: str, key: str) -> list[float]:
    """The values of one metric over the trials of ``server`` (the good ones only for
    :data:`GOOD_ONLY`; per-client counts: every client's)."""
    out: list[float] = []
    for t in trials:
        if t.server != server or (t.failures and key in GOOD_ONLY):
            continue
        if key in PER_CLIENT:
            out += [float(c[key]) for c in t.per_client]
        elif (v := getattr(t, key)) is not None:
            out.append(float(v))
    return out


def table(trials: list[Trial], servers: list[str]) -> str:
    out = [
        "| metric | " + " | ".join(servers) + " | ratio | goal >= 5x |",
        "|---|" + "---|" * len(servers) + "---|---|",
    ]
    for key, label, unit, goal in METRICS:
        st = {s: stats(metric_values(trials, s, key)) for s in servers}
        a, b = st.get("ipytwist"), st.get("jupyter_server")
        ratio = a["median"] / b["median"] if a and b and b["median"] else None
        verdict = ("met" if ratio >= GOAL else "not met") if goal and ratio is not None else ""
        cells = " | ".join(fmt_value(st[s], unit) for s in servers)
        text = f"{ratio:.2f}x" if ratio is not None else ""
        out.append(f"| {label} | {cells} | {text} | {verdict} |")
    good = {s: sum(1 for t in trials if t.server == s and not t.failures) for s in servers}
    runs = {s: sum(1 for t in trials if t.server == s) for s in servers}
    cells = " | ".join(f"{good[s]}/{runs[s]}" for s in servers)
    out.append(f"| trials where every client ended at N-1 | {cells} | | |")
    return "\n".join(out)


def describe(t: Trial) -> str:
    rate = t.updates_per_s
    text = (
        f"  round {t.round} {t.server:<15} N={t.n} "
        f"time={'n/a' if t.time_s is None else f'{t.time_s:.3f}s'} "
        f"updates/s/client={'n/a' if rate is None else f'{rate:,.0f}'} "
        f"peak RSS={t.peak_rss_mib:.0f} MiB"
    )
    return text + (f"  FAILED: {'; '.join(t.failures[:3])}" if t.failures else "")


async def run_all(
    args: argparse.Namespace, servers: dict[str, ServerProcess], samplers: dict[str, RssSampler]
) -> list[Trial]:
    kernels = {name: s.start_kernel() for name, s in servers.items()}
    attached = {}
    trials: list[Trial] = []
    try:
        for name, s in servers.items():
            attached[name] = await attach(s, kernels[name], args.clients, args.protocol)
        order = list(servers)
        limits = (args.timeout, args.stall)
        for rnd in range(args.warmup + args.rounds):
            n = WARMUP_UPDATES if rnd < args.warmup else args.updates
            for name in order if rnd % 2 == 0 else order[::-1]:
                clients, tracker = attached[name]
                t = await trial(servers[name], samplers[name], clients, tracker, rnd, n, limits)
                print(describe(t) + (" (warm-up)" if rnd < args.warmup else ""), flush=True)
                if rnd >= args.warmup:
                    trials.append(t)
                if t.failures:
                    print(f"FAILED {name} round {rnd}: {t.failures}", file=sys.stderr, flush=True)
    finally:
        for clients, _ in attached.values():
            await asyncio.gather(*(c.close() for c in clients))
    return trials


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-n", "--updates", type=int, default=20_000, help="N (default 20000)")
    p.add_argument("--clients", type=int, default=10, help="WebSocket clients (default 10)")
    p.add_argument("--rounds", type=int, default=3, help="timed trials per server (3)")
    p.add_argument(
        "--warmup", type=int, default=1, help=f"untimed trials of {WARMUP_UPDATES} first (1)"
    )
    p.add_argument("--protocol", choices=PROTOCOLS, default="v1", help="v1 (default) or legacy")
    p.add_argument("--timeout", type=float, default=300.0, help="per cell (seconds, 300)")
    p.add_argument(
        "--stall",
        type=float,
        default=20.0,
        help="give a cell up once no client received anything for this long (seconds, 20)",
    )
    p.add_argument(
        "--max-rss-mib", type=int, default=4096, help="kill a server + kernel past 1.5x this"
    )
    add_common_options(p, SERVERS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    trials: list[Trial] = []
    with scratch("ipytwist-widgets-", args.keep_logs) as tmp:
        servers = {name: comparison_server(name, tmp) for name in args.servers}
        samplers: dict[str, RssSampler] = {}
        try:
            for name, s in servers.items():
                s.start()
                limit = args.max_rss_mib * MIB
                samplers[name] = RssSampler(s.pid, limit, limit * 3 // 2, interval=0.1)
                samplers[name].start()
            trials = asyncio.run(run_all(args, servers, samplers))
        finally:
            for sampler in samplers.values():
                sampler.stop()
            for s in servers.values():
                s.stop()
            for sampler in samplers.values():
                kill_leftovers(sampler.seen)
    print()
    print(table(trials, args.servers))
    failed = [t for t in trials if t.failures]
    if not args.no_save:
        data: dict[str, Any] = record("widget_bench", started, vars(args))
        data["versions"] = versions("ipywidgets", "ipykernel", "jupyter_server", "websockets")
        data["trials"] = [asdict(t) for t in trials]
        print(f"\nwrote {save('widgets', data, indent=2)}")
    if failed or not trials:
        print(f"\nFAILED: {len(failed)} of {len(trials)} trials", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
