"""One measurement of the fan-out benchmark: N clients on a server's kernel, one request
of a workload, and what every client received of it."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from benchlib.messages import execute_content
from benchlib.servers import ServerProcess
from fanout_clients import Client, Tracker

PRINT_LINES = 20_000
DISPLAY_CALLS = 500
WORKLOADS = {
    "print": f"for i in range({PRINT_LINES}): print(i)",
    "display": (
        f"from IPython.display import display\nfor i in range({DISPLAY_CALLS}): display(i)"
    ),
}
EXPECTED_STDOUT = "".join(f"{i}\n" for i in range(PRINT_LINES))


@dataclass
class Result:
    n: int
    server: str
    workload: str
    connected: int
    connect_errors: dict[str, int]
    open_at_start: int
    time_to_all_idle: float | None
    clients_idle: int
    messages: int
    msgs_per_s: float | None
    requester_iopub: int
    lost: int
    clients_missing: int
    bad_stdout: int
    note: str = ""


def add_note(note: str, more: str) -> str:
    return f"{note}; {more}" if note else more


async def run_request(
    clients: list[Client], tracker: Tracker, code: str, timeout: float
) -> tuple[str, list[Client], float, bool]:
    """Execute ``code`` from the first open client; wait until every open client is idle.

    Returns the request id, the clients open when it was sent, the send time and
    whether all of them (that stayed connected) saw its idle within ``timeout``.
    """
    participants = [c for c in clients if c.closed_reason is None]
    tracker.parsed.clear()
    requester = participants[0]
    msg_id = uuid.uuid4().hex
    for c in participants:
        c.track(msg_id)
    done = tracker.watch(msg_id, participants)
    t0 = time.perf_counter()
    content = execute_content(code, store_history=False)
    await requester.send(msg_id, "shell", "execute_request", content)
    try:
        await asyncio.wait_for(done.wait(), timeout)
        finished = True
    except TimeoutError:
        finished = False
    return msg_id, participants, t0, finished


def evaluate(
    n: int,
    server: str,
    workload: str,
    msg_id: str,
    participants: list[Client],
    connect_errors: dict[str, int],
    t0: float,
    finished: bool,
    note: str,
    timeout: float,
) -> Result:
    ref = participants[0].seen[msg_id]
    ref_ids = set(ref.msg_ids)
    messages = lost = missing = bad = 0
    idle_times = []
    for c in participants:
        s = c.seen[msg_id]
        messages += len(s.msg_ids)
        gone = len(ref_ids - set(s.msg_ids))
        lost += gone
        missing += gone > 0 or s.idle_at is None
        if s.idle_at is not None:
            idle_times.append(s.idle_at)
        if workload == "print" and "".join(s.stdout) != EXPECTED_STDOUT:
            bad += 1
    closed = sum(1 for c in participants if c.closed_reason is not None)
    elapsed = max(idle_times) - t0 if finished and idle_times else None
    if closed:
        note = add_note(note, f"{closed} connections closed during the request")
    if not finished:
        note = add_note(note, f"not all idle within {timeout:g}s")
    return Result(
        n=n,
        server=server,
        workload=workload,
        connected=n - sum(connect_errors.values()),
        connect_errors=connect_errors,
        open_at_start=len(participants),
        time_to_all_idle=elapsed,
        clients_idle=len(idle_times),
        messages=messages,
        msgs_per_s=messages / elapsed if elapsed else None,
        requester_iopub=len(ref.msg_ids),
        lost=lost,
        clients_missing=missing,
        bad_stdout=bad,
        note=note,
    )


async def connect_all(
    url: str, headers: dict[str, str], n: int, tracker: Tracker, concurrency: int
) -> tuple[list[Client], dict[str, int]]:
    sem = asyncio.Semaphore(concurrency)
    errors: dict[str, int] = {}

    async def one() -> Client | None:
        c = Client(url, headers, tracker)
        async with sem:
            try:
                await c.open(timeout=60)
                return c
            except Exception as e:
                key = f"{type(e).__name__}: {str(e)[:80]}"
                errors[key] = errors.get(key, 0) + 1
                return None

    opened = await asyncio.gather(*(one() for _ in range(n)))
    return [c for c in opened if c is not None], errors


def failed(n: int, server: str, workloads: list[str], errors: dict[str, int], why: str) -> list:
    return [
        Result(n, server, w, n - sum(errors.values()), errors, 0, None, 0, 0, None, 0, 0, 0, 0, why)
        for w in workloads
    ]


async def bench_server(
    server: ServerProcess, kernel_id: str, n: int, workloads: list[str], timeout: float
) -> list[Result]:
    ws_base = server.url.replace("http://", "ws://")
    url = f"{ws_base}/api/kernels/{kernel_id}/channels"
    tracker = Tracker()
    clients, errors = await connect_all(url, server.headers(), n, tracker, concurrency=32)
    try:
        if not clients:
            return failed(n, server.name, workloads, errors, "no client connected")
        # As JupyterLab does: kernel_info until answered, then a warm-up cell everyone sees.
        for _ in range(30):
            requester = next((c for c in clients if c.closed_reason is None), None)
            if requester is None:
                break
            if await requester.request("shell", "kernel_info_request", {}, timeout=2):
                break
        if not any(c.closed_reason is None for c in clients):
            return failed(n, server.name, workloads, errors, "all connections closed by server")
        await run_request(clients, tracker, "pass", 60)
        closed = [c for c in clients if c.closed_reason is not None]
        note = ""
        if closed:
            reasons: dict[str, int] = {}
            for c in closed:
                reasons[c.closed_reason or ""] = reasons.get(c.closed_reason or "", 0) + 1
            note = (
                f"{len(closed)}/{len(clients)} connections closed by the server after opening"
                + (" (" + ", ".join(f"{k} x{v}" for k, v in reasons.items()) + ")")
            )
        results = []
        for w in workloads:
            if not any(c.closed_reason is None for c in clients):
                results += failed(n, server.name, [w], errors, add_note(note, "no connection left"))
                continue
            msg_id, participants, t0, finished = await run_request(
                clients, tracker, WORKLOADS[w], timeout
            )
            r = evaluate(
                n, server.name, w, msg_id, participants, errors, t0, finished, note, timeout
            )
            results.append(r)
            print(
                f"  N={n:<5} {server.name:<15} {w:<8} "
                f"time={fmt_time(r.time_to_all_idle)} msgs/s={fmt_rate(r.msgs_per_s)} "
                f"lost={r.lost} open={r.open_at_start}/{n} {r.note}",
                flush=True,
            )
            if not finished:
                # Let the kernel finish before the next workload.
                live = next((c for c in clients if c.closed_reason is None), None)
                if live is not None:
                    content = execute_content("pass", store_history=False)
                    await live.request("shell", "execute_request", content, timeout)
        return results
    finally:
        await asyncio.gather(*(c.close() for c in clients))


def fmt_time(t: float | None) -> str:
    return f"{t:.3f}s" if t is not None else "n/a"


def fmt_rate(r: float | None) -> str:
    return f"{r:,.0f}" if r is not None else "n/a"
