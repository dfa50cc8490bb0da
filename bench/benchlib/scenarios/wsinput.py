"""What one WebSocket client's input may cost the service.

:func:`hostile_legacy_frames`: legacy binary frames whose offsets go back and forth
(each part would be a copy of most of the frame), then one valid frame with a large
buffer: the service's peak memory while it reads each, against the frame's size.

:func:`request_flood`: behind a running cell, one session sends execute_requests of
1 MB without reading: how many the service takes before it stops reading, and its
peak memory meanwhile; after an interrupt, every request is answered.

:func:`one_id_flood`: behind a running cell, one session sends execute_requests that
all share one msg_id: how many the service read before the interrupt (those are
aborted by ``stop_on_error``; the rest run after it).
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from ..aclient import open_ws
from ..messages import execute_content, make_message
from ..procs import status_kib
from ..servers import Service
from ..wsclient import WSClient
from .request_storms import wait_quiet

MiB = 1 << 20
#: The running cell the floods queue behind (interrupted once they are sent).
RUNNING_CELL = "import time; time.sleep(600)"


def reset_peak(pid: int) -> float:
    """Reset ``pid``'s peak RSS (VmHWM) to its current RSS; that RSS, in MiB."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")
    return (status_kib(pid, "VmRSS") or 0) / 1024


def peak_mib(pid: int) -> float:
    """``pid``'s peak RSS since the last :func:`reset_peak`, in MiB."""
    return (status_kib(pid, "VmHWM") or 0) / 1024


def back_and_forth(size: int, offsets: int) -> bytes:
    """A legacy binary frame of about ``size`` bytes: a valid JSON part (a comm_msg),
    then ``offsets`` offsets going back and forth between its end and the frame's."""
    msg = make_message("comm_msg", {"comm_id": "x", "data": {}}, "hostile")
    body = json.dumps({**msg, "channel": "shell"}).encode()
    table = 4 * (offsets + 1)
    end = max(size, table + len(body))
    points = [table] + [table + len(body) if i % 2 else end for i in range(1, offsets)]
    head = struct.pack(f"!{offsets + 1}I", offsets, *points)
    return head + body + b"x" * (end - table - len(body))


def one_buffer_frame(size: int) -> bytes:
    """A valid legacy binary frame: a comm_msg with one buffer of ``size`` bytes."""
    msg = make_message("comm_msg", {"comm_id": "x", "data": {}}, "valid")
    body = json.dumps({**msg, "channel": "shell"}).encode()
    return struct.pack("!3I", 2, 12, 12 + len(body)) + body + b"y" * size


@dataclass
class FramesResult:
    hostile: int
    hostile_bytes: int
    offsets: int
    hostile_peak_mib: float  # peak RSS growth while the service read them
    valid_bytes: int
    valid_peak_mib: float
    still_open: bool  # the connection answered a round trip after each
    log_lines: int  # lines the service logged meanwhile


def _round_trip(client: WSClient) -> bool:
    msg_id = client.send("shell", "kernel_info_request", {})
    got = client.until(lambda m: m.get("parent_header", {}).get("msg_id") == msg_id
                       and m["msg_type"] == "kernel_info_reply", 60)  # fmt: skip
    client.received.clear()
    return bool(got)


def hostile_legacy_frames(
    svc: Service, frames: int = 5, size: int = 99 << 10, offsets: int = 2000,
    valid_size: int = 16 * MiB,
) -> FramesResult:  # fmt: skip
    """``frames`` hostile frames of ``size`` bytes with ``offsets`` offsets, then one
    valid frame with a buffer of ``valid_size``, on one connection; the peak memory
    each costs the service."""
    kid = svc.start_kernel()
    client = WSClient.connect(svc, kid, timeout=60)
    try:
        open_ = _round_trip(client)
        log_before = len(svc.log().splitlines())
        wait_quiet(svc.pid)
        base = reset_peak(svc.pid)
        hostile = back_and_forth(size, offsets)
        for _ in range(frames):
            client.ws.send_binary(hostile)
        open_ = open_ and _round_trip(client)
        hostile_peak = peak_mib(svc.pid) - base
        wait_quiet(svc.pid)
        base = reset_peak(svc.pid)
        client.ws.send_binary(one_buffer_frame(valid_size))
        open_ = open_ and _round_trip(client)
        valid_peak = peak_mib(svc.pid) - base
        lines = len(svc.log().splitlines()) - log_before
        return FramesResult(
            frames, len(hostile), offsets, hostile_peak, valid_size, valid_peak, open_, lines
        )
    finally:
        client.close()
        svc.delete_kernel(kid)


@dataclass
class FloodResult:
    requests: int
    size: int  # bytes of each request
    taken: int  # requests the client could send before the service stopped reading
    peak_mib: float  # peak RSS growth while they waited behind the running cell
    statuses: Counter[str] = field(default_factory=Counter)  # of every reply
    seconds: float = 0.0  # interrupt -> the last reply


async def _send_all(ws: object, frames: list[str], sent: list[int]) -> None:
    for frame in frames:
        await ws.send(frame)  # type: ignore[attr-defined]
        sent[0] += 1


def _request(session: str, size: int, in_code: bool, msg_id: str | None) -> str:
    """An execute_request of about ``size`` bytes: in its code (a comment, which IPython
    takes a while to read), or in its metadata (which the worker never gets)."""
    code = "pass  # " + "x" * size if in_code else "pass"
    msg = make_message("execute_request", execute_content(code), session, msg_id)
    if not in_code:
        msg["metadata"] = {"padding": "x" * size}
    return json.dumps({**msg, "channel": "shell"})


async def _flood(
    svc: Service, requests: int, size: int, same_id: bool, in_code: bool = True
) -> FloodResult:
    kid = await asyncio.to_thread(svc.start_kernel)
    session = uuid.uuid4().hex
    ws = await open_ws(svc, kid, session)
    try:
        running = make_message("execute_request", execute_content(RUNNING_CELL), session)
        await ws.send(json.dumps({**running, "channel": "shell"}))
        while "execute_input" not in await ws.recv():
            pass  # the cell runs
        await asyncio.to_thread(wait_quiet, svc.pid)
        base = await asyncio.to_thread(reset_peak, svc.pid)
        one = uuid.uuid4().hex if same_id else None
        frames = [_request(session, size, in_code, one) for _ in range(requests)]
        sent = [0]
        sender = asyncio.create_task(_send_all(ws, frames, sent))
        taken = -1
        while taken != sent[0] and not sender.done():  # until sending stops moving
            taken = sent[0]
            await asyncio.wait([sender], timeout=2.0)
        await asyncio.to_thread(wait_quiet, svc.pid)
        result = FloodResult(requests, len(frames[0]), sent[0], peak_mib(svc.pid) - base)
        start = time.monotonic()
        await asyncio.to_thread(svc.api, "POST", f"/api/kernels/{kid}/interrupt")
        while sum(result.statuses.values()) < requests + 1:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 120))
            if msg["msg_type"] == "execute_reply":
                result.statuses[msg["content"]["status"]] += 1
        result.seconds = time.monotonic() - start
        await sender
        return result
    finally:
        await ws.close()
        await asyncio.to_thread(svc.delete_kernel, kid)


def request_flood(
    svc: Service, requests: int = 100, size: int = MiB, in_code: bool = True
) -> FloodResult:
    """``requests`` execute_requests of about ``size`` bytes behind a running cell (the
    bytes in their code, or in their metadata: see :func:`_request`)."""
    return asyncio.run(_flood(svc, requests, size, same_id=False, in_code=in_code))


def one_id_flood(svc: Service, requests: int = 2000, same_id: bool = True) -> FloodResult:
    """``requests`` small execute_requests sharing one msg_id (or not) behind a running
    cell; ``statuses["aborted"]`` are those the service had read at the interrupt."""
    return asyncio.run(_flood(svc, requests, 0, same_id))
