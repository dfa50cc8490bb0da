"""Request storms: hundreds of clients send requests at once and read nothing.

:func:`ws_storm`: 200 WebSocket sessions on one kernel send 200 ``kernel_info_request``
each and never read, in rounds; after each round they vanish.  Meanwhile a probe
process (:mod:`benchlib.stall`) times REST and another kernel's round trip: the
longest stall is the figure.  After each round the service's memory is measured once
it is quiet, and a few of the sessions come back to see that each got its replies,
or a notice of how many were dropped.

:func:`zmq_storm`: the same over ZeroMQ: clients on one kernel's shell socket send
requests (by default 100 ``execute_request`` of 1 MB) and read nothing.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from dataclasses import dataclass, field

import zmq
from jupyter_client.session import Session
from websockets.asyncio.client import ClientConnection, connect

from ..aclient import open_ws
from ..messages import execute_content, make_message
from ..procs import rss_mib, settle
from ..servers import Service
from ..stall import StallProbe, Stalls, main_thread_cpu

#: The service is quiet once its reactor used less than this share of a core over
#: QUIET_WINDOW seconds.
QUIET_SHARE = 0.05
QUIET_WINDOW = 0.5
#: The longest a storm may keep the service busy when it runs until quiet.
QUIET_TIMEOUT = 600.0


def wait_quiet(pid: int, timeout: float = 120.0) -> float:
    """Wait until the service's reactor is quiet; the seconds that took."""
    start = time.monotonic()
    if not quiet_within(pid, timeout):
        raise AssertionError(f"timed out after {timeout}s waiting for the service to be quiet")
    return time.monotonic() - start


def quiet_within(pid: int, timeout: float) -> bool:
    """Whether the service's reactor is quiet within ``timeout`` seconds."""
    last = [main_thread_cpu(pid), time.monotonic()]

    def quiet() -> bool:
        cpu, now = main_thread_cpu(pid), time.monotonic()
        if now - last[1] < QUIET_WINDOW:
            return False
        share = (cpu - last[0]) / (now - last[1])
        last[:] = [cpu, now]
        return share < QUIET_SHARE

    return settle(quiet, timeout, step=0.1)


@dataclass
class StormRound:
    stalls: Stalls
    seconds: float | None  # first request sent -> the service quiet again (None: not in time)
    rss_after: float  # MiB, once the clients left and the service is quiet
    returned: int = 0  # sessions that came back
    replies: int = 0  # replies they got
    dropped: int = 0  # replies their notices said were dropped


@dataclass
class StormResult:
    sessions: int
    requests: int
    rss_before: float
    rounds: list[StormRound] = field(default_factory=list)


async def _open(svc: Service, kid: str, session: str, rcvbuf: int) -> ClientConnection:
    """A kernel WebSocket whose socket receives into a buffer of ``rcvbuf`` bytes (0: the
    system's default), so the service finds it full sooner."""
    if not rcvbuf:
        return await open_ws(svc, kid, session)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", svc.port))
    return await connect(
        svc.ws_url(kid, session_id=session),
        sock=sock,
        additional_headers=svc.headers(),
        compression=None,
        max_size=None,
        ping_interval=None,
        close_timeout=2,
    )


async def _flood(ws: ClientConnection, session: str, requests: int) -> list[str]:
    ids = []
    for _ in range(requests):
        msg = make_message("kernel_info_request", {}, session)
        ids.append(msg["header"]["msg_id"])
        await ws.send(json.dumps({**msg, "channel": "shell"}))
    return ids


async def _come_back(svc: Service, kid: str, session: str, ids: set[str]) -> tuple[int, int]:
    """A storm session reconnects and reads up to the reply of a request of its own:
    (its storm replies received, replies its notice says were dropped)."""
    ws = await open_ws(svc, kid, session)
    replies = dropped = 0
    try:
        mine = make_message("kernel_info_request", {}, session)
        await ws.send(json.dumps({**mine, "channel": "shell"}))
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 60))
            parent = msg.get("parent_header", {}).get("msg_id")
            if msg["msg_type"] == "kernel_info_reply":
                if parent == mine["header"]["msg_id"]:
                    return replies, dropped
                replies += parent in ids
            text = msg["content"].get("text", "") if msg["msg_type"] == "stream" else ""
            if text.startswith("[ipytwist]") and "repl" in text.split("dropped")[0]:
                dropped += int(text.split()[1])
    finally:
        await ws.close()


async def _round(
    svc: Service, kids: tuple[str, str], r: StormResult, back: int, rcvbuf: int, window: float
) -> None:
    kid, probe_kid = kids
    sessions = [uuid.uuid4().hex for _ in range(r.sessions)]
    socks = await asyncio.gather(*(_open(svc, kid, s, rcvbuf) for s in sessions))
    for ws in socks:
        ws.transport.pause_reading()  # nobody reads
    with StallProbe(svc.url, svc.token, probe_kid, svc.pid) as probe:
        start = time.monotonic()
        floods = (_flood(ws, s, r.requests) for ws, s in zip(socks, sessions, strict=True))
        ids = await asyncio.gather(*floods)
        for ws in socks:  # every request has left this process
            while ws.transport.get_write_buffer_size():
                await asyncio.sleep(0.05)
        left = max(0.0, window - (time.monotonic() - start)) if window else QUIET_TIMEOUT
        done = await asyncio.to_thread(quiet_within, svc.pid, left)
        seconds = time.monotonic() - start if done else None
    for ws in socks:
        ws.transport.abort()  # and they vanish
    await asyncio.to_thread(wait_quiet, svc.pid)
    result = StormRound(probe.result, seconds, rss_mib(svc.pid))
    r.rounds.append(result)
    pairs = list(zip(sessions, ids, strict=True))
    for session, sent in pairs[: back // 2] + pairs[len(pairs) - (back - back // 2) :]:
        got, dropped = await _come_back(svc, kid, session, set(sent))
        result.returned += 1
        result.replies += got
        result.dropped += dropped


def ws_storm(
    svc: Service,
    rounds: int = 2,
    sessions: int = 200,
    requests: int = 200,
    *,
    back: int = 4,
    rcvbuf: int = 0,
    window: float = 0.0,
) -> StormResult:
    """``rounds`` storms of ``sessions`` x ``requests`` kernel_info_requests nobody reads
    on one kernel (their sockets' receive buffers ``rcvbuf`` bytes, 0: the system's),
    another kernel probed meanwhile, until the service is quiet again or, with
    ``window``, for that many seconds at most; then the storm's clients vanish, and
    ``back`` of its sessions (the first and the last) come back for their replies."""
    kids = svc.start_kernel(), svc.start_kernel()
    try:
        wait_quiet(svc.pid)
        result = StormResult(sessions, requests, rss_mib(svc.pid))
        for _ in range(rounds):
            asyncio.run(_round(svc, kids, result, back, rcvbuf, window))
        return result
    finally:
        for kid in kids:
            svc.delete_kernel(kid)


@dataclass
class ZmqStormResult:
    clients: int
    requests: int
    size: int
    stalls: Stalls
    seconds: float
    rss_before: float
    rss_peak: float


def zmq_storm(
    svc: Service, clients: int = 10, requests: int = 10, size: int = 1 << 20
) -> ZmqStormResult:
    """``clients`` ZeroMQ clients each send ``requests`` execute_requests of ``size``
    bytes of code (a comment) to one kernel, and read nothing; another kernel is probed
    meanwhile.  (With ``size`` 0, kernel_info_requests.)

    The storm is over once each client has the reply to a last ``pass`` of its own
    (the kernel runs one client's requests in the order sent).  The probe stops there:
    waiting for a quiet service while it still probes would measure the probe."""
    kid, probe_kid = svc.start_kernel(), svc.start_kernel()
    with open(svc.connection_file(kid)) as f:
        info = json.load(f)
    session = Session(key=info["key"].encode(), signature_scheme=info["signature_scheme"])
    ctx = zmq.Context()
    try:
        socks = []
        for _ in range(clients):
            sock = ctx.socket(zmq.DEALER)
            sock.linger = 0
            sock.sndhwm = 0
            sock.connect(f"tcp://{info['ip']}:{info['shell_port']}")
            socks.append(sock)
        content = execute_content("#" + "x" * size, silent=True, store_history=False)
        wait_quiet(svc.pid)
        rss_before, peak = rss_mib(svc.pid), 0.0
        with StallProbe(svc.url, svc.token, probe_kid, svc.pid) as probe:
            start = time.monotonic()
            markers = []
            for sock in socks:
                for _ in range(requests):
                    if size:
                        session.send(sock, "execute_request", content)
                    else:
                        session.send(sock, "kernel_info_request", {})
                last = session.send(sock, "execute_request", execute_content("pass"))
                markers.append(last["header"]["msg_id"])
            for sock, marker in zip(socks, markers, strict=True):
                _read_until_reply(session, sock, marker, QUIET_TIMEOUT)
            seconds = time.monotonic() - start
        wait_quiet(svc.pid)
        peak = rss_mib(svc.pid)
        return ZmqStormResult(
            clients, requests, size, probe.result, seconds, rss_before, max(peak, rss_before)
        )
    finally:
        ctx.destroy(0)
        svc.delete_kernel(kid)
        svc.delete_kernel(probe_kid)


def _read_until_reply(
    session: Session, sock: zmq.Socket[bytes], msg_id: str, timeout: float
) -> None:
    """Read ``sock`` until the reply to ``msg_id`` comes (or fail after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not sock.poll(left * 1000):
            raise AssertionError(f"no reply to the storm's last request in {timeout:.0f} s")
        _, msg = session.recv(sock)
        if msg is not None and msg["parent_header"].get("msg_id") == msg_id:
            return
