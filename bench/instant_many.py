"""Many kernels on one ipytwist service (``instant_bench.py --many N``): N kernels asked
for at once, each answering ``1`` over its own WebSocket; then the memory of the whole
service, ``GET /api/kernels`` latency and the idle CPU of every process."""

from __future__ import annotations

import asyncio
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchlib.aclient import AsyncKernelClient
from benchlib.procs import cpu_seconds, descendants
from benchlib.servers import Service
from instant_kernels import ANSWER_TIMEOUT, memory_mib

#: Concurrent ``POST /api/kernels`` (threads): enough that the service, not the client,
#: decides how fast kernels start.
POSTERS = 50
#: ``GET /api/kernels`` samples.
LIST_SAMPLES = 20
#: Seconds over which the idle CPU is read.
IDLE_WINDOW = 10.0


async def _one(
    svc: Service, pool: ThreadPoolExecutor, t0: float
) -> tuple[AsyncKernelClient, float]:
    """POST a kernel, connect, execute ``1``: the client and when its result came."""
    loop = asyncio.get_running_loop()
    kernel_id = await loop.run_in_executor(pool, svc.start_kernel)
    client = await AsyncKernelClient(svc, kernel_id).open()
    pending = await client.execute("1", timeout=ANSWER_TIMEOUT)
    results = pending.of_type("execute_result")
    if pending.timed_out or not results or results[0]["content"]["data"].get("text/plain") != "1":
        raise RuntimeError(f"kernel {kernel_id}: no result of `1` ({client.closed})")
    return client, time.perf_counter() - t0


async def _start_all(svc: Service, n: int) -> tuple[list[AsyncKernelClient], list[float]]:
    """Start ``n`` kernels at once; their clients and each one's time to its result."""
    clients: list[AsyncKernelClient] = []
    times: list[float] = []
    with ThreadPoolExecutor(POSTERS) as pool:
        t0 = time.perf_counter()
        outcomes = await asyncio.gather(
            *(_one(svc, pool, t0) for _ in range(n)), return_exceptions=True
        )
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    for o in outcomes:
        if not isinstance(o, BaseException):
            clients.append(o[0])
            times.append(o[1])
    if errors:
        for c in clients:
            await c.close()
        raise RuntimeError(f"{len(errors)} of {n} kernels failed; first: {errors[0]!r}")
    return clients, times


def list_latency(svc: Service, expect: int) -> list[float]:
    """``GET /api/kernels`` :data:`LIST_SAMPLES` times; seconds each (all ``expect``
    kernels must be listed)."""
    samples = []
    for _ in range(LIST_SAMPLES):
        t0 = time.perf_counter()
        listed = svc.request("GET", "/api/kernels")
        samples.append(time.perf_counter() - t0)
        if len(listed) != expect:
            raise RuntimeError(f"GET /api/kernels listed {len(listed)}, not {expect}")
    return samples


def idle_cpu(root: int, window: float = IDLE_WINDOW) -> dict[str, Any]:
    """CPU time of ``root`` and every process below it over ``window`` seconds of idling
    (from ``/proc/<pid>/stat``), as a percentage of one core; the service's own share
    and the five busiest processes (pid, seconds) too."""
    pids = [root, *descendants(root)]
    before = {p: cpu_seconds(p) for p in pids}
    time.sleep(window)  # the measurement itself: nothing is waited for
    each = {}
    for p, b in before.items():
        a = cpu_seconds(p)
        if a is not None and b is not None:
            each[p] = a - b
    used = sum(each.values())
    busiest = sorted(each.items(), key=lambda kv: -kv[1])[:5]
    return {
        "processes": len(pids),
        "cpu_s": used,
        "core_percent": 100 * used / window,
        "service_cpu_s": each.get(root, 0.0),
        "busiest": [[p, s] for p, s in busiest],
    }


def run_many(svc: Service, n: int) -> dict[str, Any]:
    """The ``--many`` figures of ``n`` kernels on ``svc`` (its clients closed after;
    the kernels stay until the service stops)."""

    async def go() -> tuple[list[float], dict[str, float]]:
        clients, times = await _start_all(svc, n)
        try:
            pids = [svc.pid, *descendants(svc.pid)]
            memory = memory_mib(pids)
            total = {k: memory[k] for k in ("pss_mib", "rss_mib")}
            return times, {**total, "processes": len(pids)}
        finally:
            for c in clients:
                await c.close()

    times, memory = asyncio.run(go())
    lists = list_latency(svc, n)
    return {
        "kernels": n,
        "all_answered_s": max(times),
        "median_answered_s": statistics.median(times),
        "memory": memory,
        "list_ms": {
            "median": statistics.median(lists) * 1e3,
            "max": max(lists) * 1e3,
        },
        "idle_cpu": idle_cpu(svc.pid),
    }
