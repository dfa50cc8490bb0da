"""WebSocket fan-out benchmark: ipytwist and jupyter_server + ipykernel, in one run.

For each server and each client count N: one kernel, N WebSocket clients on
the kernel's ``/api/kernels/{id}/channels`` (legacy JSON protocol, one
``session_id`` each, all in one asyncio event loop), and one of them executes

* ``print``: ``for i in range(20000): print(i)``
* ``display``: ``from IPython.display import display`` + 500 ``display(i)`` calls.

Reported per (N, server, workload):

* time to all idle: execute_request sent -> the last client saw the request's
  ``status: idle`` on iopub;
* delivered msgs/s: iopub messages parented to the request, summed over all
  clients, divided by that time;
* lost: iopub msg_ids the requester saw that a client did not (summed over
  clients), plus, for ``print``, clients whose stdout is not exactly the lines
  0..19999 in order.

jupyter_server runs with the ``python3`` kernelspec from ipykernel, its iopub
rate limits off (ipytwist has none), in temporary Jupyter dirs, with a raised
RLIMIT_NOFILE.  It opens ZeroMQ sockets per WebSocket connection; connections
it refuses or drops are reported as results, not errors.

Prints a markdown table and writes JSON to ``bench/results/``.
``python bench/ws_fanout.py --help`` for options.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import asdict

from benchlib.cli import add_common_options, comma_list, scratch
from benchlib.results import record, save
from benchlib.servers import ServerProcess, comparison_server, raise_fd_limit
from fanout_run import WORKLOADS, Result, bench_server, failed, fmt_rate, fmt_time

SERVERS = ("ipytwist", "jupyter_server")


# -- report ---------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    rows = [
        "| N | server | workload | clients served | iopub msgs/client | time to all idle "
        "| msgs/s | lost | ipytwist/jupyter_server msgs/s | jupyter_server/ipytwist time | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_key = {(r.n, r.server, r.workload): r for r in results}
    for r in results:
        ratio = time_ratio = ""
        if r.server == "ipytwist":
            peer = by_key.get((r.n, "jupyter_server", r.workload))
            if peer and peer.msgs_per_s and r.msgs_per_s:
                ratio = f"{r.msgs_per_s / peer.msgs_per_s:.1f}x"
                if peer.open_at_start < r.open_at_start:
                    ratio += f" (peer served {peer.open_at_start})"
            elif peer and r.msgs_per_s and not peer.msgs_per_s:
                ratio = "peer failed"
            if peer and peer.time_to_all_idle and r.time_to_all_idle:
                time_ratio = f"{peer.time_to_all_idle / r.time_to_all_idle:.1f}x"
                if peer.open_at_start < r.open_at_start:
                    time_ratio += f" (peer served {peer.open_at_start})"
        lost = str(r.lost)
        if r.open_at_start < r.n:
            lost += f" + {r.n - r.open_at_start} clients refused or dropped"
        if r.bad_stdout:
            lost += f" ({r.bad_stdout} bad stdout)"
        errors = sum(r.connect_errors.values())
        note = r.note
        if errors:
            note = (
                (note + "; " if note else "")
                + f"{errors} connect errors: "
                + "; ".join(f"{k} x{v}" for k, v in r.connect_errors.items())
            )
        rows.append(
            f"| {r.n} | {r.server} | {r.workload} | {r.open_at_start}/{r.n} "
            f"| {r.requester_iopub} | {fmt_time(r.time_to_all_idle)} | {fmt_rate(r.msgs_per_s)} "
            f"| {lost} | {ratio} | {time_ratio} | {note} |"
        )
    return "\n".join(rows)


# -- main -------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace, servers: dict[str, ServerProcess]) -> list[Result]:
    kernels = {name: s.start_kernel() for name, s in servers.items()}
    results: list[Result] = []
    for n in args.clients:
        for name, server in servers.items():
            try:
                results.extend(
                    await bench_server(server, kernels[name], n, args.workloads, args.timeout)
                )
            except Exception as e:  # one server's failure is a result, not a crash
                print(f"  N={n} {name}: failed: {type(e).__name__}: {e}", flush=True)
                for w in args.workloads:
                    results.extend(
                        failed(n, name, [w], {}, f"bench failed: {type(e).__name__}: {e}"[:160])
                    )
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "-n",
        "--clients",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[10, 100, 1000],
        help="comma-separated client counts (default: 10,100,1000)",
    )
    p.add_argument(
        "--workloads",
        type=comma_list(list(WORKLOADS), "workload"),
        default=list(WORKLOADS),
        help="comma-separated: print,display",
    )
    p.add_argument("--timeout", type=float, default=90.0, help="per workload (seconds)")
    add_common_options(p, SERVERS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fd_limit = raise_fd_limit()
    results: list[Result] = []
    started = time.time()
    with scratch("ipytwist-fanout-", args.keep_logs) as tmp:
        servers = {name: comparison_server(name, tmp) for name in args.servers}
        try:
            for s in servers.values():
                s.start()
            results = asyncio.run(main_async(args, servers))
        finally:
            for s in servers.values():
                s.stop()
    print()
    print(table(results))
    if not args.no_save:
        data = record("ws_fanout", started, vars(args), fd_limit=fd_limit)
        data["results"] = [asdict(r) for r in results]
        print(f"\nwrote {save('ws-fanout', data, indent=2)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
