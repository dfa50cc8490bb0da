"""The soak: many kernels, many clients each, a mixed workload for minutes; the service's
memory, fds and CPU sampled throughout."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..aclient import AsyncKernelClient, Pending
from ..messages import execute_content
from ..procs import cpu_seconds, descendants, fd_count, rss_mib
from ..servers import Service
from .common import RSS_INTERVAL, Errors, median
from .soak_cells import (
    SOAK_PREFILL_CELLS,
    SOAK_REQUEST_TIMEOUT,
    SOAK_THINK_SECONDS,
    soak_cell,
)

#: "After warm-up" and "end" are medians of the RSS samples of the last RSS_WINDOW
#: seconds before each point.
RSS_WINDOW = 2.0


@dataclass
class SoakResult:
    seconds: float
    warmup: float
    kernels: int
    clients: int
    done: Counter[str]  # requests answered as expected, per kind
    latency: dict[str, list[float]]
    errors: Errors
    gaps: int
    interrupt_s: list[float]  # interrupt sent -> the interrupted cell's reply
    rss: list[tuple[float, float]]  # (seconds since start, MiB)
    rss_warm: float
    rss_end: float
    fds_warm: int
    fds_end: int
    closed: list[str]  # connections that ended during the soak, and why
    prefill_s: float
    #: CPU use over the measured part, in % of one core: the service, its workers
    #: (all kernels together) and this process (the 100 clients).
    cpu_pct: dict[str, float]

    @property
    def requests(self) -> int:
        return sum(self.done.values())

    @property
    def growth_pct(self) -> float:
        return (self.rss_end - self.rss_warm) / self.rss_warm * 100


def _window_median(samples: list[tuple[float, float]], until: float) -> float:
    values = [v for t, v in samples if until - RSS_WINDOW <= t <= until]
    if not values:
        values = [v for t, v in samples if t <= until][-1:]
    return median(values)


class _Soak:
    def __init__(self, svc: Service, seconds: float, warmup: float, seed: int) -> None:
        self.svc = svc
        self.seconds = seconds
        self.warmup = warmup
        self.seed = seed
        self.done: Counter[str] = Counter()
        self.latency: dict[str, list[float]] = {}
        self.errors = Errors()
        self.interrupt_s: list[float] = []
        self.rss: list[tuple[float, float]] = []
        self.fds: list[tuple[float, int]] = []
        self.cpu_start: tuple[float, float, float, float] | None = None
        self.t0 = 0.0
        self.stop_at = 0.0

    def ok(self, kind: str, p: Pending) -> None:
        self.done[kind] += 1
        self.latency.setdefault(kind, []).append(time.monotonic() - p.sent_at)

    def check(self, kind: str, p: Pending, status: str = "ok") -> dict[str, Any] | None:
        """The reply's content if it came (with its idle) and has ``status``."""
        if p.timed_out or p.reply is None:
            self.errors.add(kind, f"no reply within {SOAK_REQUEST_TIMEOUT}s")
            return None
        if p.needs_idle and not p.idle:
            self.errors.add(kind, "the reply came but the request never reached idle")
            return None
        content = p.reply["content"]
        if content.get("status") != status:
            self.errors.add(kind, f"status {content.get('status')}: {content}")
            return None
        return content

    def cpu(self) -> tuple[float, float, float, float]:
        """(now, CPU seconds of the service, of its workers, of this client process)."""
        workers = sum(cpu_seconds(p) or 0.0 for p in descendants(self.svc.pid))
        service = cpu_seconds(self.svc.pid) or 0.0
        return time.monotonic(), service, workers, time.process_time()

    async def sample(self) -> None:
        measured_from = self.t0 + self.warmup
        while time.monotonic() < self.stop_at:
            now = time.monotonic() - self.t0
            self.rss.append((now, rss_mib(self.svc.pid)))
            self.fds.append((now, fd_count(self.svc.pid)))
            if self.cpu_start is None and time.monotonic() >= measured_from:
                self.cpu_start = self.cpu()
            await asyncio.sleep(RSS_INTERVAL)

    async def client(self, c: AsyncKernelClient, interrupter: bool, rng: random.Random) -> None:
        await asyncio.sleep(rng.uniform(0, 2 * SOAK_THINK_SECONDS))
        n = 0
        while time.monotonic() < self.stop_at and c.closed is None:
            n += 1
            r = rng.random()
            if interrupter and r < 0.06:
                await self.interrupt(c, use_rest=n % 2 == 0)
            elif r < 0.62:
                cell = soak_cell(rng)
                p = await c.execute(cell.code, SOAK_REQUEST_TIMEOUT)
                if self.check(cell.kind, p) is not None:
                    problem = cell.problem(p)
                    if problem:
                        self.errors.add(cell.kind, problem)
                    else:
                        self.ok(cell.kind, p)
            elif r < 0.81:
                complete = {"code": "pri", "cursor_pos": 3}
                p = await c.request("shell", "complete_request", complete, SOAK_REQUEST_TIMEOUT)
                content = self.check("complete", p)
                if content is not None:
                    if "print" not in content.get("matches", []):
                        self.errors.add("complete", f"no 'print' in {content.get('matches')}")
                    else:
                        self.ok("complete", p)
            else:
                inspect = {"code": "len", "cursor_pos": 3, "detail_level": 0}
                p = await c.request("shell", "inspect_request", inspect, SOAK_REQUEST_TIMEOUT)
                content = self.check("inspect", p)
                if content is not None:
                    if not content.get("found"):
                        self.errors.add("inspect", f"len not found: {content}")
                    else:
                        self.ok("inspect", p)
            think = rng.uniform(0, 2 * SOAK_THINK_SECONDS)
            if time.monotonic() + think < self.stop_at:  # no pause past the end
                await asyncio.sleep(think)

    async def prefill(self, c: AsyncKernelClient, rng: random.Random) -> None:
        """Fill the kernel's output log and transcript with cells like the workload's,
        pipelined, so that what the soak measures is their steady state."""
        cells = [soak_cell(rng) for _ in range(SOAK_PREFILL_CELLS)]
        started = [
            await c.start("shell", "execute_request", execute_content(x.code)) for x in cells
        ]
        for cell, p in zip(cells, started, strict=True):
            await c.finish(p, 120)
            if self.check("prefill", p) is not None and (problem := cell.problem(p)):
                self.errors.add("prefill", problem)

    async def interrupt(self, c: AsyncKernelClient, use_rest: bool) -> None:
        """A cell of its own that sleeps, interrupted once it runs (stop_on_error off, so
        the other clients' queued cells are not aborted)."""
        p = await c.start(
            "shell",
            "execute_request",
            execute_content("import time; time.sleep(30)", stop_on_error=False),
        )
        try:
            await asyncio.wait_for(p.running.wait(), SOAK_REQUEST_TIMEOUT)
        except TimeoutError:
            await c.finish(p, 0)
            self.errors.add("interrupt", "the sleeping cell never started")
            return
        t0 = time.monotonic()
        if use_rest:
            r = await asyncio.to_thread(
                self.svc.api, "POST", f"/api/kernels/{c.kernel_id}/interrupt"
            )
            if r.status_code != 204:
                self.errors.add("interrupt", f"REST interrupt answered {r.status_code}")
        else:
            q = await c.request("control", "interrupt_request", {}, SOAK_REQUEST_TIMEOUT)
            if self.check("interrupt", q) is None:
                return
        await c.finish(p, SOAK_REQUEST_TIMEOUT)
        content = self.check("interrupt", p, status="error")
        if content is None:
            return
        if content.get("ename") != "KeyboardInterrupt":
            self.errors.add("interrupt", f"ename {content.get('ename')}")
            return
        self.interrupt_s.append(time.monotonic() - t0)
        self.ok("interrupt", p)

    async def run(self, kernels: int, clients: int) -> SoakResult:
        kids = [await asyncio.to_thread(self.svc.start_kernel) for _ in range(kernels)]
        conns: list[AsyncKernelClient] = []
        try:
            firsts = [await AsyncKernelClient(self.svc, kid).open() for kid in kids]
            prefill_started = time.monotonic()
            await asyncio.gather(
                *(self.prefill(c, random.Random(self.seed - i)) for i, c in enumerate(firsts))
            )
            if self.errors:
                raise AssertionError(f"the prefill failed: {self.errors.report()}")
            prefill_s = time.monotonic() - prefill_started
            for first in firsts:
                conns.append(first)
                for _ in range(clients - 1):
                    conns.append(await AsyncKernelClient(self.svc, first.kernel_id).open())
            self.t0 = time.monotonic()
            self.stop_at = self.t0 + self.warmup + self.seconds
            sampler = asyncio.create_task(self.sample())
            await asyncio.gather(
                *(
                    self.client(c, i % clients == 0, random.Random(self.seed + i))
                    for i, c in enumerate(conns)
                )
            )
            await sampler
            closed = [f"{c.kernel_id[:8]}/{c.session_id[:8]}: {c.closed}" for c in conns]
            closed = [line for line, c in zip(closed, conns, strict=True) if c.closed]
            end = time.monotonic() - self.t0
            cpu_pct: dict[str, float] = {}
            if self.cpu_start is not None:
                stop = self.cpu()
                wall = stop[0] - self.cpu_start[0]
                for i, who in enumerate(("service", "workers", "clients"), 1):
                    cpu_pct[who] = (stop[i] - self.cpu_start[i]) / wall * 100
            return SoakResult(
                seconds=self.seconds,
                warmup=self.warmup,
                kernels=kernels,
                clients=clients,
                done=self.done,
                latency=self.latency,
                errors=self.errors,
                gaps=sum(c.gaps for c in conns),
                interrupt_s=self.interrupt_s,
                rss=self.rss,
                rss_warm=_window_median(self.rss, self.warmup),
                rss_end=_window_median(self.rss, end),
                fds_warm=int(_window_median([(t, float(v)) for t, v in self.fds], self.warmup)),
                fds_end=int(_window_median([(t, float(v)) for t, v in self.fds], end)),
                closed=closed,
                prefill_s=prefill_s,
                cpu_pct=cpu_pct,
            )
        finally:
            await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
            await asyncio.gather(*(asyncio.to_thread(self.svc.delete_kernel, k) for k in kids))


def soak(
    svc: Service,
    seconds: float,
    warmup: float,
    kernels: int = 10,
    clients: int = 10,
    seed: int = 0,
) -> SoakResult:
    """``kernels`` kernels with ``clients`` WebSocket clients each, every client running a
    mixed workload (small executes checked against their result, print bursts checked
    line by line, completes, inspects, ``display()`` calls; the first client of each
    kernel also sleeps and interrupts itself now and then) for ``warmup`` + ``seconds``.
    The service's RSS and fds are sampled throughout."""
    return asyncio.run(_Soak(svc, seconds, warmup, seed).run(kernels, clients))
