"""One measurement of the widget benchmark: a slider set N times in a cell, on one
server's kernel, with clients that tally what each of them received of it."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from benchlib.frames import decode_legacy, pack_v1, unpack_v1
from benchlib.messages import execute_content
from benchlib.procs import cpu_seconds, descendants
from benchlib.servers import ServerProcess
from benchlib.widgetcount import Summary, Tally, summarize
from fanout_clients import Client, Tracker
from flood_meters import RssSampler
from websockets.typing import Subprotocol

V1 = Subprotocol("v1.kernel.websocket.jupyter.org")
PROTOCOLS = ("v1", "legacy")
#: A fresh slider per trial (the one before is closed).  Its ``max`` is N: an IntSlider
#: clamps its value to ``[min, max]`` (0-100 by default), and a value set to what it
#: already is sends nothing.
SETUP = (
    "import ipywidgets as w\n"
    "try:\n    s.close()\nexcept NameError:\n    pass\n"
    "s = w.IntSlider(min=0, max={n})\ndisplay(s)"
)
LOOP = "for i in range({n}):\n    s.value = i"
SLIDER = "IntSliderModel"
MIB = 1024 * 1024


class WidgetClient(Client):
    """A fan-out client on ``v1`` or ``legacy`` frames that tallies one request at a
    time; each distinct iopub frame is summarised once for all clients (``cache``)."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        tracker: Tracker,
        protocol: str,
        cache: dict[Any, Summary],
    ) -> None:
        super().__init__(url, headers, tracker, [V1] if protocol == "v1" else None)
        self.v1 = protocol == "v1"
        self.cache = cache
        #: The requests being tallied: the current one, and any before it still missing
        #: messages (to see whether they come after all).
        self.tallies: list[Tally] = []

    async def open(self, timeout: float) -> None:
        await super().open(timeout)
        assert self.ws is not None
        if self.v1 and self.ws.subprotocol != V1:
            raise RuntimeError(f"the server did not accept {V1} ({self.ws.subprotocol})")

    def frame(self, msg: dict[str, Any], channel: str) -> str | bytes:
        return pack_v1(msg, channel) if self.v1 else super().frame(msg, channel)

    def receive(self, raw: str | bytes) -> None:
        now = time.monotonic()
        s = self.cache.get(raw)
        if s is None:
            msg = unpack_v1(raw) if self.v1 and isinstance(raw, bytes) else decode_legacy(raw)
            s = summarize(msg)
            if s.channel == "iopub":
                self.cache[raw] = s
            else:
                self.reply(msg)
        for tally in self.tallies:
            if tally.feed(s, now):
                self.tracker.idle(self, tally.request)


@dataclass
class Trial:
    """One timed loop on one server, and what every client saw of it."""

    server: str
    round: int
    n: int
    clients: int
    protocol: str
    #: execute_request sent -> every client saw the last value and the idle (None:
    #: not within the timeout, or the trial failed).
    time_s: float | None = None
    setup_s: float | None = None
    #: Per client: frames, iopub, updates, last, backwards, gaps, done_s.
    per_client: list[dict[str, Any]] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    rss_before_mib: float = 0.0
    #: CPU seconds of the server and its descendants (the kernel) during the loop.
    server_cpu_s: float | None = None
    #: CPU seconds of this (the clients') process during the loop.
    client_cpu_s: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def updates_per_s(self) -> float | None:
        """Median over clients of updates received ÷ that client's time to done."""
        rates = [c["updates"] / c["done_s"] for c in self.per_client if c["done_s"]]
        return statistics.median(rates) if rates and not self.failures else None

    @property
    def received_per_s(self) -> float | None:
        """Median over clients of the updates received ÷ the time to the last one
        received, whether or not some were lost."""
        rates = [c["updates"] / c["updates_s"] for c in self.per_client if c["updates_s"]]
        return statistics.median(rates) if rates else None


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its descendants (those alive now)."""
    return sum(cpu_seconds(p) or 0.0 for p in [pid, *descendants(pid)])


async def run_cell(
    clients: list[WidgetClient],
    tracker: Tracker,
    code: str,
    limits: tuple[float, float],
    keep: tuple[list[Tally], ...] = (),
    **want: Any,
) -> tuple[list[Tally], float, str]:
    """Execute ``code`` from the first client; wait until every client's tally (of
    ``want``: ``comm_id``, ``target``) is done.  ``limits``: the timeout, and how long
    no client may receive anything before the cell is given up as stalled.  ``keep``:
    earlier tallies (one list per request) the clients go on feeding.  The tallies, the
    send time (monotonic) and how it ended: ``done``, ``timeout`` or ``stalled``."""
    timeout, stall = limits
    msg_id = uuid.uuid4().hex
    tallies = [Tally(msg_id, **want) for _ in clients]
    for i, c in enumerate(clients):
        c.tallies = [*(old[i] for old in keep), tallies[i]]
    done = tracker.watch(msg_id, clients)
    t0 = time.monotonic()
    await clients[0].send(msg_id, "shell", "execute_request", execute_content(code))
    while not done.is_set():
        try:
            await asyncio.wait_for(done.wait(), min(1.0, stall))
        except TimeoutError:
            now = time.monotonic()
            quiet = now - max([t0, *(t.seen_at or t0 for t in tallies)])
            if now - t0 > timeout or quiet > stall:
                return tallies, t0, "timeout" if now - t0 > timeout else "stalled"
    return tallies, t0, "done" if all(t.done_at is not None for t in tallies) else "closed"


def judge(trial: Trial, tallies: list[Tally], t0: float, ended: str, why: str) -> None:
    """Fill ``trial`` from the tallies; every client must end at the last value."""
    for i, t in enumerate(tallies):
        done_s = t.done_at - t0 if t.done_at is not None else None
        trial.per_client.append(
            {
                "frames": t.frames,
                "iopub": t.iopub,
                "updates": t.updates,
                "last": t.last,
                "backwards": t.backwards,
                "gaps": t.gaps,
                "done_s": done_s,
                "updates_s": t.update_at - t0 if t.update_at is not None else None,
            }
        )
        if t.last != trial.n - 1 or t.idle_at is None:
            trial.failures.append(
                f"client {i}: last value {t.last} (want {trial.n - 1}), {t.updates} updates, "
                f"idle {'seen' if t.idle_at is not None else 'not seen'}"
            )
        if t.backwards or t.gaps:
            trial.failures.append(f"client {i}: {t.backwards} values out of order, {t.gaps} gaps")
    if ended != "done":
        trial.failures.append(f"not every client done: {why}")
    times = [c["done_s"] for c in trial.per_client]
    if ended == "done" and not trial.failures and None not in times:
        trial.time_s = max(times)


async def trial(
    server: ServerProcess,
    sampler: RssSampler,
    clients: list[WidgetClient],
    tracker: Tracker,
    rnd: int,
    n: int,
    limits: tuple[float, float],
) -> Trial:
    """A fresh slider, then the timed loop of ``n`` updates (``limits``: see
    :func:`run_cell`)."""
    proto = "v1" if clients[0].v1 else "legacy"
    out = Trial(server.name, rnd, n, len(clients), proto)
    setup, t0, ended = await run_cell(clients, tracker, SETUP.format(n=n), limits)
    comm_id = setup[0].widget(SLIDER)
    if ended != "done" or comm_id is None:
        out.failures.append(f"setup cell: {ended}, {SLIDER} opened: {comm_id}")
        return out
    out.setup_s = max(t.done_at or 0.0 for t in setup) - t0
    for c in clients:
        c.cache.clear()
    sampler.sample()
    out.rss_before_mib = sampler.samples[-1][2] / MIB
    cpu0, own0 = tree_cpu(server.pid), time.process_time()
    tallies, t0, ended = await run_cell(
        clients, tracker, LOOP.format(n=n), limits, comm_id=comm_id, target=n - 1
    )
    out.client_cpu_s = time.process_time() - own0
    out.server_cpu_s = tree_cpu(server.pid) - cpu0
    sampler.sample()
    out.peak_rss_mib = sampler.peaks_between(t0, time.monotonic())[1] / MIB
    why = ended
    if ended in ("stalled", "timeout"):
        why = await diagnose(clients, tracker, tallies, limits, ended)
    judge(out, tallies, t0, ended, why)
    return out


async def diagnose(
    clients: list[WidgetClient],
    tracker: Tracker,
    tallies: list[Tally],
    limits: tuple[float, float],
    ended: str,
) -> str:
    """Why a loop did not reach every client: were its last messages held back (they
    come once the kernel publishes something else: one more cell, ``pass``) or lost?"""
    lasts = sorted({t.last for t in tallies}, key=lambda v: -1 if v is None else v)
    text = (
        f"{ended} (nothing received for {limits[1]:g} s)"
        if ended == "stalled"
        else f"{ended} ({limits[0]:g} s)"
    )
    text += f" with the clients' last values at {lasts[0]}..{lasts[-1]}"
    await run_cell(clients, tracker, "pass", limits, keep=(tallies,))
    reached = sum(t.done_at is not None for t in tallies)
    if reached == len(tallies):
        return text + "; every client got the rest after one more cell: held back, not lost"
    return text + f"; after one more cell {len(tallies) - reached} clients still lack the rest"


async def attach(server: ServerProcess, kernel_id: str, n: int, protocol: str) -> tuple:
    """``n`` clients on the kernel, answered a ``kernel_info`` (as JupyterLab asks first)."""
    tracker = Tracker()
    cache: dict[Any, Summary] = {}
    url = server.ws_url(kernel_id)
    clients = [WidgetClient(url, server.headers(), tracker, protocol, cache) for _ in range(n)]
    await asyncio.gather(*(c.open(60) for c in clients))
    for _ in range(30):
        if await clients[0].request("shell", "kernel_info_request", {}, timeout=2):
            return clients, tracker
    raise RuntimeError(f"{server.name}: no kernel_info_reply")
