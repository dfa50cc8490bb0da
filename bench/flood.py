"""Output flood benchmark: ipytwist and jupyter_server + ipykernel, in one run.

For each server, in turn (a fresh server each time):

* kernel A runs ``i = 0; while True: print(i, 'x' * 1000); i += 1`` for ``--seconds``;
* three WebSocket clients on kernel A, each in its own process with its own
  ``session_id``, connected before the flood: a fast reader (reads as fast as it
  can, and is the one that sends the flood request), a slow reader (pauses 50 ms
  after every message) and a stalled reader (small ``SO_RCVBUF``, never reads);
* kernel B, on the same server, is asked ``1`` every 0.2 s by a prober in the
  main process: ``execute_request`` -> its ``status: idle``, first ~25 times
  before the flood (baseline), then throughout it;
* after the flood period, kernel A is interrupted through REST
  (``POST /api/kernels/{id}/interrupt``) and the time until the fast reader sees
  the flood request's ``idle`` is measured (capped).

Reported per server: peak RSS of the server process and of the server with all
its descendants (kernels), sampled every 0.2 s; each reader's lines/s, lost
lines (gaps in the printed numbers), drop notices and whether the server closed
it (code, reason); kernel B's round trip (idle median, flood median and p90);
interrupt -> idle.  ``--max-rss-mib`` ends a server's flood early if the server
and its kernels pass that much memory.

Prints a markdown table and writes JSON to ``bench/results/``.
``python bench/flood.py --help`` for options.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import queue
import shlex
import sys
import threading
import time
import uuid
from dataclasses import asdict
from typing import Any

from benchlib.cli import add_common_options, scratch
from benchlib.procs import kill_leftovers
from benchlib.results import record, save
from benchlib.servers import ServerProcess, comparison_server, raise_fd_limit
from flood_meters import Prober, RssSampler, probe_until
from flood_readers import FLOOD_CODE, STALLED_DRAIN_SECONDS, ReaderConfig, reader_main
from flood_report import MIB, SERVERS, Outcome, print_outcome, summary, table


def make_server(name: str, tmp: str, args: argparse.Namespace) -> ServerProcess:
    """The server ``name``, with the options of ``--ipytwist-args``/``--jupyter-args``
    (and jupyter_server's iopub rate limits with ``--jupyter-rate-limits``)."""
    if name == "ipytwist":
        return comparison_server(name, tmp, *shlex.split(args.ipytwist_args))
    extra = shlex.split(args.jupyter_args)
    return comparison_server(name, tmp, *extra, iopub_limits=args.jupyter_rate_limits)


def run_server(name: str, args: argparse.Namespace, tmp: str) -> Outcome:
    out = Outcome(name)
    server = make_server(name, tmp, args)
    sampler: RssSampler | None = None
    prober: Prober | None = None
    procs: list[Any] = []
    ctx = mp.get_context("spawn")
    inbox: Any = ctx.Queue()
    go, stop = ctx.Event(), ctx.Event()
    got: dict[tuple[str, str], Any] = {}

    def drain(timeout: float = 0.0) -> None:
        """Move reader reports into ``got``; wait up to ``timeout`` for the first."""
        try:
            kind, role, value = inbox.get(timeout=timeout) if timeout else inbox.get_nowait()
            got[(kind, role)] = value
            while True:
                kind, role, value = inbox.get_nowait()
                got[(kind, role)] = value
        except queue.Empty:
            pass

    def wait_for(keys: list[tuple[str, str]], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not all(k in got for k in keys):
            errors = {r: v for (k, r), v in got.items() if k == "error"}
            if errors:
                out.reader_errors.update(errors)
                if any(("result", r) in keys or ("ready", r) in keys for r in errors):
                    return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            drain(min(left, 0.2))
        return True

    try:
        server.start()
        assert server.proc is not None
        limit = args.max_rss_mib * MIB
        # Started before the kernels, so that every kernel process is seen (and killed).
        sampler = RssSampler(server.proc.pid, limit, int(limit * 1.5))
        sampler.start()
        kernel_a = server.start_kernel()
        kernel_b = server.start_kernel()
        ws_base = server.url.replace("http://", "ws://")
        url_a = f"{ws_base}/api/kernels/{kernel_a}/channels"
        flood_id = uuid.uuid4().hex
        configs = [
            ReaderConfig("fast", "", server.headers(), flood_id),
            ReaderConfig("slow", "", server.headers(), flood_id, pause=args.slow_pause),
            ReaderConfig("stalled", "", server.headers(), flood_id, rcvbuf=args.stalled_rcvbuf),
        ]
        for cfg in configs:
            cfg.url = f"{url_a}?session_id={uuid.uuid4().hex}"
            p = ctx.Process(
                target=reader_main, args=(cfg, inbox, go, stop), name=f"flood-{cfg.role}"
            )
            p.start()
            procs.append(p)
        if not wait_for([("ready", c.role) for c in configs], 90):
            raise RuntimeError(f"readers not ready: {out.reader_errors or 'timeout'}")

        prober = Prober(f"{ws_base}/api/kernels/{kernel_b}/channels", server.headers(), 10.0)
        if not prober.ready():
            raise RuntimeError("kernel B never answered kernel_info")
        for _ in range(5):  # warm-up, untimed
            prober.round_trip()
        probe_until(prober, args.interval, out.idle_rtts, count=args.baseline)

        go.set()
        if not wait_for([("started", "fast")], 30):
            raise RuntimeError("the fast reader did not send the flood request")
        out.t0 = got[("started", "fast")]
        deadline = out.t0 + args.seconds

        def flood_over() -> bool:
            drain()
            if sampler is not None and sampler.over.is_set():
                out.stopped_early = (
                    f"server + kernels passed --max-rss-mib {args.max_rss_mib} "
                    f"after {sampler.over_at - out.t0:.1f}s"  # type: ignore[operator]
                )
                return True
            if server.proc is not None and server.proc.poll() is not None:
                out.stopped_early = f"server exited ({server.proc.returncode})"
                return True
            return time.monotonic() >= deadline

        # Probes run in a thread so that the interrupt goes out on time even when a
        # round trip takes seconds; the one in flight at the end still counts.
        halt = threading.Event()
        probes = threading.Thread(
            target=probe_until,
            args=(prober, args.interval, out.flood_rtts),
            kwargs={"until": halt.is_set},
            daemon=True,
        )
        probes.start()
        while not flood_over():
            time.sleep(0.05)
        out.t_interrupt = time.monotonic()
        halt.set()
        out.flood_seconds = out.t_interrupt - out.t0
        try:
            server.request("POST", f"/api/kernels/{kernel_a}/interrupt", timeout=args.idle_cap)
            out.interrupt_http = f"ok in {time.monotonic() - out.t_interrupt:.3f}s"
        except Exception as e:
            out.interrupt_http = f"{type(e).__name__}: {e}"[:160]
        wait_idle(out, server, kernel_a, sampler, got, drain, args.idle_cap)
        probes.join(timeout=prober.timeout + 5)

        stop.set()
        wait_for([("result", c.role) for c in configs], 30 + STALLED_DRAIN_SECONDS)
        for c in configs:
            if ("result", c.role) in got:
                out.readers[c.role] = got[("result", c.role)]
            elif c.role not in out.reader_errors:
                out.reader_errors[c.role] = got.get(("error", c.role), "no result")
    except Exception as e:
        out.error = f"{type(e).__name__}: {e}"[:500]
        print(f"  {name}: failed: {out.error}", flush=True)
    finally:
        # Every step on its own, so that one failing cannot leave processes behind.
        stop.set()
        go.set()
        if prober is not None:
            prober.close()
        for p in procs:
            quietly(end_process, p)
        if sampler is not None:
            quietly(sampler.stop)
            quietly(sampler.sample)  # a last look for descendants
        quietly(server.stop)
        if sampler is not None:
            if sampler.over_hard.is_set():
                killed_note = "server killed: server + kernels passed 1.5x --max-rss-mib"
                out.stopped_early = "; ".join(x for x in (out.stopped_early, killed_note) if x)
            killed = kill_leftovers(sampler.seen)
            if killed:
                print(f"  {name}: killed leftover processes {killed}", flush=True)
            out.peak_rss_server = sampler.peak_server
            out.peak_rss_total = sampler.peak_total
            out.rss_samples = sampler.samples
            if out.t0 is not None and out.t_interrupt is not None:
                out.server_cpu = sampler.cpu_share(out.t0, out.t_interrupt)
            if out.t0 is not None and out.t_interrupt is not None:
                out.peak_rss_server_flood, out.peak_rss_total_flood = sampler.peaks_between(
                    out.t0, out.t_interrupt
                )
        quietly(inbox.close)
        quietly(inbox.cancel_join_thread)
    return out


def quietly(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception as e:
        print(f"  teardown: {getattr(fn, '__name__', fn)}: {type(e).__name__}: {e}", flush=True)


def end_process(p: Any) -> None:
    p.join(timeout=5)
    if p.is_alive():
        p.kill()
        p.join(timeout=5)


def wait_idle(
    out: Outcome,
    server: ServerProcess,
    kernel_a: str,
    sampler: RssSampler | None,
    got: dict[tuple[str, str], Any],
    drain: Any,
    cap: float,
) -> None:
    """Until the fast reader sees the flood's idle (or ``cap`` s); meanwhile poll the
    kernel's ``execution_state`` through REST."""
    assert out.t_interrupt is not None
    end = out.t_interrupt + cap
    next_poll = 0.0
    while time.monotonic() < end:
        drain(0.05)
        if ("idle", "fast") in got:
            out.interrupt_to_idle = got[("idle", "fast")] - out.t_interrupt
            if out.interrupt_to_rest_idle is not None:
                return
        if ("result", "fast") in got or ("error", "fast") in got:
            return  # the fast reader is gone (closed by the server?)
        if sampler is not None and sampler.over_hard.is_set():
            return  # the sampler killed the server
        now = time.monotonic()
        if out.interrupt_to_rest_idle is None and now >= next_poll:
            next_poll = now + 0.1
            try:
                model = server.request("GET", f"/api/kernels/{kernel_a}", timeout=5)
                if model.get("execution_state") == "idle":
                    out.interrupt_to_rest_idle = time.monotonic() - out.t_interrupt
            except Exception:
                pass
        seen = got.get(("idle", "fast"))
        if seen is not None and time.monotonic() - seen > 5:
            return  # REST still busy 5 s after the reader saw idle: stop asking


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="flood duration (default 60)")
    p.add_argument(
        "--max-rss-mib",
        type=int,
        default=4096,
        help="end a server's flood early once server + kernels pass this RSS (default 4096);\n"
        "the server is killed at once if they pass 1.5x that",
    )
    p.add_argument("--interval", type=float, default=0.2, help="kernel B probe interval (s)")
    p.add_argument("--baseline", type=int, default=25, help="idle round trips before the flood")
    p.add_argument("--idle-cap", type=float, default=30.0, help="interrupt -> idle cap (s)")
    p.add_argument("--slow-pause", type=float, default=0.05, help="slow reader pause (s)")
    p.add_argument(
        "--stalled-rcvbuf", type=int, default=4096, help="stalled reader SO_RCVBUF (bytes)"
    )
    p.add_argument(
        "--jupyter-rate-limits",
        action="store_true",
        help="keep jupyter_server's default iopub rate limits (default: off, as in ws_fanout)",
    )
    p.add_argument("--ipytwist-args", default="", help="extra twistd ipytwist options")
    p.add_argument("--jupyter-args", default="", help="extra jupyter_server options")
    add_common_options(p, SERVERS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    outcomes: list[Outcome] = []
    started = time.time()
    with scratch("ipytwist-flood-", args.keep_logs) as tmp:
        for name in SERVERS:
            if name not in args.servers:
                continue
            print(f"{name}: {args.seconds:g} s flood ...", flush=True)
            o = run_server(name, args, tmp)
            outcomes.append(o)
            print_outcome(o, args.idle_cap)
    print(table(outcomes, args.idle_cap))
    if not args.no_save:
        data = record("flood", started, vars(args), code=FLOOD_CODE)
        data["results"] = [{"summary": summary(o), **asdict(o)} for o in outcomes]
        print(f"\nwrote {save('flood', data, indent=None)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
