"""Vanishing clients: hundreds of WebSocket clients connect to a kernel that prints
without end and leave in every way a client can, in a loop."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
import time
import uuid
from collections import Counter
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection

from ..aclient import AsyncKernelClient, asettle, connections, open_ws
from ..frames import client_frame
from ..messages import execute_content, make_message
from ..procs import fd_count, settle
from ..servers import Service
from .common import Errors, Snapshot, sample_rss, snapshot

#: The vanishing-clients service keeps a short output log, so it is full (and its
#: memory flat) after the warm-up; the default (10,000 messages) would still be filling.
VANISH_SERVICE_ARGS = ("--replay-messages", "300")
#: A cell printing continuously: about 1,000 lines of 90 bytes per second.
PRINT_LOOP_CODE = (
    "import itertools, time\n"
    "for i in itertools.count():\n"
    "    print(i, 'x' * 80)\n"
    "    if i % 10 == 0:\n"
    "        time.sleep(0.01)\n"
)
#: How each connection ends, in turn per slot.
VANISH_KINDS = (
    "clean",  # reads a while, then a close handshake
    "drop",  # reads a while, then drops the TCP connection (FIN, no close frame)
    "reset",  # reads a while, then resets the TCP connection (RST, SO_LINGER 0)
    "half-frame",  # sends the first half of an execute_request frame, then drops
    "ask-and-vanish",  # sends kernel_info_request and drops before the reply
    "stalled",  # never reads (the server's writes back up), then drops
    "replay-drop",  # reconnects with its session (replay of what it missed), drops at once
)


@dataclass
class VanishResult:
    seconds: float
    slots: int
    cycles: Counter[str]
    errors: Errors
    baseline: Snapshot
    after: Snapshot
    connections_before: int
    connections_after: int
    settle_s: float  # end of the churn -> connections back to the baseline
    observer_frames: int
    observer_closed: str | None
    interrupted: str  # ename of the print loop's reply after the interrupt
    round_trip: str  # status of ``1`` afterwards
    rss: list[tuple[float, float]]  # (seconds into the measured churn, MiB)

    @property
    def total_cycles(self) -> int:
        return sum(self.cycles.values())


async def _read_for(ws: ClientConnection, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            await asyncio.wait_for(ws.recv(), left)
        except TimeoutError:
            return


async def _vanish(ws: ClientConnection, kind: str, session: str, rng: random.Random) -> None:
    """Use the connection a little, then end it the ``kind`` way."""
    transport = ws.transport
    if kind == "clean":
        await _read_for(ws, rng.uniform(0.0, 0.3))
        await asyncio.wait_for(ws.close(), 5)
        return
    if kind in ("drop", "reset"):
        await _read_for(ws, rng.uniform(0.0, 0.3))
        if kind == "reset":
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    elif kind == "half-frame":
        msg = make_message("execute_request", execute_content("1"), session)
        frame = client_frame(json.dumps({**msg, "channel": "shell"}).encode())
        transport.write(frame[: len(frame) // 2])
        await asyncio.sleep(rng.uniform(0.0, 0.05))
    elif kind == "ask-and-vanish":
        msg = make_message("kernel_info_request", {}, session)
        await ws.send(json.dumps({**msg, "channel": "shell"}))
    elif kind == "stalled":
        transport.pause_reading()
        await asyncio.sleep(rng.uniform(0.2, 0.8))
    elif kind == "replay-drop":
        await asyncio.sleep(0)
    transport.abort()


async def _vanish_slot(
    svc: Service,
    kernel_id: str,
    slot: int,
    deadline: float,
    cycles: Counter[str],
    errors: Errors,
    rng: random.Random,
    kinds: tuple[str, ...],
) -> None:
    await asyncio.sleep(rng.uniform(0.0, 0.5))  # not all handshakes in the same instant
    own_session = f"slot{slot}-{uuid.uuid4().hex}"
    turn = slot
    while time.monotonic() < deadline:
        kind = kinds[turn % len(kinds)]
        turn += 1
        session = own_session if kind == "replay-drop" else uuid.uuid4().hex
        try:
            ws = await open_ws(svc, kernel_id, session)
        except Exception as e:
            errors.add("connect", f"{kind}: {type(e).__name__}: {e}")
            await asyncio.sleep(0.2)
            continue
        try:
            await _vanish(ws, kind, session, rng)
            cycles[kind] += 1
        except Exception as e:
            errors.add(kind, f"{type(e).__name__}: {e}")
        finally:
            ws.transport.abort()


async def _churn(
    svc: Service, kernel_id: str, slots: int, seconds: float, seed: int, kinds: tuple[str, ...]
) -> tuple[Counter[str], Errors]:
    cycles: Counter[str] = Counter()
    errors = Errors()
    deadline = time.monotonic() + seconds
    await asyncio.gather(
        *(
            _vanish_slot(
                svc, kernel_id, i, deadline, cycles, errors, random.Random(seed + i), kinds
            )
            for i in range(slots)
        )
    )
    return cycles, errors


#: The churn before the baseline snapshot (first-use allocations, the output log filling).
VANISH_WARMUP = 3.0


async def _vanishing_clients(
    svc: Service, seconds: float, slots: int, seed: int, kinds: tuple[str, ...]
) -> VanishResult:
    kid = await asyncio.to_thread(svc.start_kernel)
    observer = await AsyncKernelClient(svc, kid).open()
    try:
        ready = await observer.execute("1")
        assert ready.reply is not None and not ready.timed_out, "kernel not ready"
        flood = await observer.start(
            "shell", "execute_request", execute_content(PRINT_LOOP_CODE), keep=False
        )
        await asyncio.wait_for(flood.output.wait(), 30)
        _, warm_errors = await _churn(svc, kid, slots, VANISH_WARMUP, seed, kinds)
        await asettle(lambda: _connections_are(svc, kid, 1), 15)
        connections_before = await connections(svc, kid)
        baseline = snapshot(svc.pid)

        rss: list[tuple[float, float]] = []
        sampler = asyncio.create_task(sample_rss(svc.pid, rss, seconds))
        cycles, errors = await _churn(svc, kid, slots, seconds, seed + 10_000, kinds)
        await sampler
        for line in warm_errors.first:
            errors.add("warm-up", line)
        ended = time.monotonic()
        await asettle(lambda: _connections_are(svc, kid, connections_before), 15)
        settle_s = time.monotonic() - ended
        connections_after = await connections(svc, kid)
        await asyncio.to_thread(settle, lambda: fd_count(svc.pid) <= baseline.fds, 5)
        after = snapshot(svc.pid)

        interrupt = await observer.request("control", "interrupt_request", {}, 10)
        if interrupt.timed_out:
            errors.add("interrupt", "no interrupt_reply")
        await observer.finish(flood, 15)
        interrupted = (flood.reply or {}).get("content", {}).get("ename", "no reply")
        rt = await observer.execute("1")
        round_trip = (rt.reply or {}).get("content", {}).get("status", "no reply")
        return VanishResult(
            seconds=seconds,
            slots=slots,
            cycles=cycles,
            errors=errors,
            baseline=baseline,
            after=after,
            connections_before=connections_before,
            connections_after=connections_after,
            settle_s=settle_s,
            observer_frames=observer.frames,
            observer_closed=observer.closed,
            interrupted=interrupted,
            round_trip=round_trip,
            rss=rss,
        )
    finally:
        await observer.close()
        await asyncio.to_thread(svc.delete_kernel, kid)


async def _connections_are(svc: Service, kernel_id: str, n: int) -> bool:
    return await connections(svc, kernel_id) == n


def vanishing_clients(
    svc: Service,
    seconds: float,
    slots: int = 200,
    seed: int = 0,
    kinds: tuple[str, ...] = VANISH_KINDS,
) -> VanishResult:
    """``slots`` WebSocket clients connect to a kernel whose cell prints continuously and
    vanish in each of the :data:`VANISH_KINDS` ways, in a loop, for ``seconds``; an
    observer client stays connected throughout.  Snapshots of the service are taken
    after a :data:`VANISH_WARMUP` churn and once the connections are back to the
    baseline; then the print loop is interrupted and ``1`` is run."""
    return asyncio.run(_vanishing_clients(svc, seconds, slots, seed, kinds))
