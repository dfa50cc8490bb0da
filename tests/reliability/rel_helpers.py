"""Helpers and scenarios of the reliability suite, shared by its tests and the bench.

Each scenario is a plain function that drives a running :class:`Service` and
returns what it measured; ``tests/reliability/test_*.py`` run them with CI
durations and assert on the figures, ``bench/reliability.py`` runs them longer
and prints them.  There is one copy of each scenario: this module.

Process figures come from ``/proc``: the service's open fds, its VmRSS, and its
descendant processes (``/proc/<pid>/task/*/children``, recursively).
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import random
import signal
import socket
import statistics
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import websocket
from service_proc import (
    Service,
    WSClient,
    WSClosed,
    execute_content,
    make_message,
    parent_id,
    pid_alive,
    rss_mib,
    stream_text,
    unpack_legacy_binary,
    wait_for,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

DISPLAY = "display_data"
#: Shell requests the kernel queues for its worker: each is surrounded by busy/idle.
QUEUED_REQUESTS = {
    "execute_request",
    "complete_request",
    "inspect_request",
    "is_complete_request",
    "history_request",
}

# -- processes, fds, memory ----------------------------------------------------------


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's list), zombies included."""
    out: list[int] = []
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            with open(path) as f:
                out += [int(p) for p in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, sorted."""
    found: list[int] = []
    todo = children(pid)
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children(p)
    return sorted(found)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass(frozen=True)
class Snapshot:
    """The service process at one moment."""

    fds: int
    procs: tuple[int, ...]
    rss_mib: float


def snapshot(pid: int) -> Snapshot:
    return Snapshot(fd_count(pid), tuple(descendants(pid)), rss_mib(pid))


def settle(check: Callable[[], Any], timeout: float, step: float = 0.05) -> bool:
    """Poll ``check`` until it is truthy or ``timeout`` passes; return whether it held.
    (``wait_for`` raises instead; scenarios report, their callers assert.)"""
    try:
        wait_for(check, timeout, "settle", step)
    except AssertionError:
        return False
    return True


def wchan(pid: int) -> str:
    """The kernel function ``pid`` sleeps in (``pipe_write``: blocked writing a pipe)."""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return f.read().strip()
    except OSError:
        return ""


def blocked_writing(pid: int) -> bool:
    """Whether ``pid`` sleeps in a pipe write.  Where the kernel hides wchan, whether it
    sleeps at all (a print loop that is not blocked is running)."""
    where = wchan(pid)
    if where and where != "0":
        return "pipe_write" in where
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "S"
    except (OSError, IndexError):
        return False


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


class TempDirs:
    """``tmp_path_factory.mktemp`` for scripts (the bench): directories under one root."""

    def __init__(self, root: str) -> None:
        self.root = root

    def mktemp(self, name: str) -> str:
        path = os.path.join(self.root, f"{name}-{uuid.uuid4().hex[:8]}")
        os.makedirs(path)
        return path


# -- crashes (synchronous WSClient) ------------------------------------------------------

#: The crashes of test_crashes.py, each as the cell that causes it.
EXIT_CODE = "import os; os._exit(1)"
SEGFAULT_CODE = "import ctypes; ctypes.string_at(0)"
SLEEP_CODE = "import time; print('started', flush=True); time.sleep(60)"
#: Headroom above the worker's current address space under RLIMIT_AS.
MEMORY_HEADROOM_MIB = 200
MEMORY_CODE = f"""\
import resource
def _vm_size():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmSize:'):
                return int(line.split()[1]) * 1024
_soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
resource.setrlimit(resource.RLIMIT_AS, (_vm_size() + {MEMORY_HEADROOM_MIB} * 2**20, _hard))
hog = []
while True:
    hog.append(bytearray(2**20))
"""
RECURSION_CODE = "def down(n):\n    return down(n + 1)\ndown(0)"
CHILD_CODE = (
    "import subprocess\nbackground = subprocess.Popen(['sleep', '60'])\nprint(background.pid)"
)
CLOSE_FD1_CODE = "import os; os.close(1)"
#: The cell after ``os.close(1)``: Python and C-level output.
PRINT_CHECK_CODE = "import os; print('py', flush=True); os.system('echo c')"


def worker_pid(ws: WSClient) -> int:
    reply, msgs = ws.execute("import os; print(os.getpid())")
    assert reply["content"]["status"] == "ok", reply["content"]
    return int(stream_text(msgs))


@dataclass
class CrashOutcome:
    """One crashing cell and the round trip of ``1`` that followed it."""

    reply: dict[str, Any]  # the crashing cell's execute_reply content
    cell: list[dict[str, Any]]  # messages parented to the crashing cell, in order
    between: list[dict[str, Any]]  # messages after the cell's idle, before the round trip's
    round_trip: dict[str, Any]  # the execute_reply content of ``1``
    reply_s: float  # request sent -> crash reply received
    recover_s: float  # crash reply received -> the round trip's idle

    def statuses(self) -> list[str]:
        return [m["content"]["execution_state"] for m in self.cell if m["msg_type"] == "status"]

    def errors(self) -> list[dict[str, Any]]:
        return [m for m in self.cell if m["msg_type"] == "error"]


def crash_and_recover(
    ws: WSClient,
    code: str,
    *,
    while_running: Callable[[], None] | None = None,
    timeout: float = 30.0,
) -> CrashOutcome:
    """Run ``code`` (``while_running`` is called once it printed ``started``), then
    time the round trip of ``1`` from the moment its reply arrived."""
    msg_id = ws.execute_request(code)
    sent = time.monotonic()
    got: list[dict[str, Any]] = []
    if while_running is not None:
        got += ws.until(
            lambda m: (
                m["msg_type"] == "stream"
                and parent_id(m) == msg_id
                and "started" in m["content"]["text"]
            ),
            timeout,
        )
        while_running()
    got += ws.until(lambda m: _is_reply(m, msg_id), timeout)
    replied = time.monotonic()
    got += ws.until_idle(msg_id, timeout)
    rt_id = ws.execute_request("1")
    after = ws.until_idle(rt_id, timeout)
    recovered = time.monotonic()
    rt_replies = [m for m in after if m["msg_type"] == "execute_reply" and parent_id(m) == rt_id]
    assert rt_replies, f"no reply to the round trip: {[m['msg_type'] for m in after]}"
    return CrashOutcome(
        reply=next(m for m in got if _is_reply(m, msg_id))["content"],
        cell=[m for m in got if parent_id(m) == msg_id],
        between=[m for m in after if parent_id(m) != rt_id],
        round_trip=rt_replies[0]["content"],
        reply_s=replied - sent,
        recover_s=recovered - replied,
    )


def _is_reply(msg: dict[str, Any], msg_id: str) -> bool:
    return msg["msg_type"] == "execute_reply" and parent_id(msg) == msg_id


@dataclass
class CrashCycles:
    """``cycles`` crashes (``os._exit(1)``), each followed by a round trip of ``1``."""

    cycles: int
    recover_s: list[float]
    cycle_s: list[float]
    failures: list[str]
    before: Snapshot
    after: Snapshot
    workers: tuple[int, ...]  # the interpreters running after the last cycles
    seconds: float


#: Crash cycles run before the "before" snapshot (lazy imports, first-use buffers).
CYCLE_WARMUP = 5


def _cycle(ws: WSClient, cycles: int) -> tuple[list[float], list[float], list[str]]:
    """``cycles`` crashes and round trips on one client's kernel: the time of each
    cycle, of each recovery, and what went wrong."""
    recover: list[float] = []
    cycle: list[float] = []
    failures: list[str] = []
    for i in range(cycles):
        t0 = time.monotonic()
        out = crash_and_recover(ws, EXIT_CODE)
        cycle.append(time.monotonic() - t0)
        recover.append(out.recover_s)
        if "exited with status 1" not in out.reply.get("evalue", ""):
            failures.append(f"cycle {i}: crash reply {out.reply}")
        if out.round_trip.get("status") != "ok":
            failures.append(f"cycle {i}: round trip {out.round_trip}")
    return cycle, recover, failures


def crash_cycles(svc: Service, cycles: int, kernels: int = 1) -> CrashCycles:
    """Crash the interpreters of ``kernels`` fresh kernels ``cycles`` times in all, the
    kernels side by side (one per core: the cycles are the workers' start-up); snapshot
    the service before (after :data:`CYCLE_WARMUP` cycles each) and after (once only the
    current workers are left)."""
    kids = [svc.start_kernel() for _ in range(kernels)]
    clients = [WSClient.connect(svc, kid) for kid in kids]
    shares = [cycles // kernels + (i < cycles % kernels) for i in range(kernels)]

    def settled() -> tuple[tuple[int, ...], Snapshot]:
        """The current workers and, once they are all that runs below it, the service."""
        workers = tuple(sorted(worker_pid(ws) for ws in clients))
        settle(lambda: tuple(sorted(descendants(svc.pid))) == workers, 10)
        return workers, snapshot(svc.pid)

    try:
        with ThreadPoolExecutor(kernels) as pool:
            warm = list(pool.map(_cycle, clients, [CYCLE_WARMUP] * kernels))
            assert not any(f for _, _, f in warm), warm
            _, before = settled()
            started = time.monotonic()
            runs = list(pool.map(_cycle, clients, shares))
            seconds = time.monotonic() - started
        workers, after = settled()
    finally:
        for ws in clients:
            ws.close()
        for kid in kids:
            svc.delete_kernel(kid)
    return CrashCycles(
        cycles,
        [s for _, recover, _ in runs for s in recover],
        [s for cycle, _, _ in runs for s in cycle],
        [f for _, _, failures in runs for f in failures],
        before,
        after,
        workers,
        seconds,
    )


def crash_kinds(svc: Service) -> dict[str, float]:
    """One of each crash of test_crashes.py, in one kernel: crash reply -> the idle of
    a ``1`` round trip, in seconds (the bench's per-kind figures)."""
    kid = svc.start_kernel()
    ws = WSClient.connect(svc, kid)
    out: dict[str, float] = {}
    try:
        out["os._exit(1)"] = crash_and_recover(ws, EXIT_CODE).recover_s
        out["segfault"] = crash_and_recover(ws, SEGFAULT_CODE).recover_s
        pid = worker_pid(ws)
        out["SIGKILL"] = crash_and_recover(
            ws, SLEEP_CODE, while_running=lambda: os.kill(pid, signal.SIGKILL)
        ).recover_s
        ws.execute(CHILD_CODE)
        out["exit, child running"] = crash_and_recover(ws, EXIT_CODE).recover_s
        out["RecursionError"] = crash_and_recover(ws, RECURSION_CODE).recover_s
        out["os.close(1)"] = crash_and_recover(ws, CLOSE_FD1_CODE).recover_s
        # Last: the address-space limit stays with this interpreter if it survives.
        out["MemoryError (RLIMIT_AS)"] = crash_and_recover(ws, MEMORY_CODE).recover_s
    finally:
        ws.close()
        svc.delete_kernel(kid)
    return out


# -- asynchronous kernel WebSocket clients ----------------------------------------------------


async def open_ws(
    svc: Service, kernel_id: str, session_id: str, timeout: float = 15.0
) -> ClientConnection:
    """A kernel WebSocket (legacy JSON frames) with the service's token."""
    return await asyncio.wait_for(
        connect(
            svc.ws_url(kernel_id, session_id=session_id),
            additional_headers={"Authorization": f"token {svc.token}"},
            compression=None,
            max_size=None,
            proxy=None,
            ping_interval=None,
            open_timeout=timeout,
            close_timeout=2,
        ),
        timeout,
    )


def decode(raw: str | bytes) -> dict[str, Any]:
    msg = json.loads(raw) if isinstance(raw, str) else unpack_legacy_binary(raw)
    msg.setdefault("msg_type", msg["header"]["msg_type"])
    return msg


def is_gap_notice(msg: dict[str, Any]) -> bool:
    return (
        msg["msg_type"] == "stream"
        and msg["content"].get("name") == "stderr"
        and msg["content"].get("text", "").startswith("[ipytwist]")
        and "dropped" in msg["content"]["text"]
    )


class Pending:
    """A request on its way: the messages parented to it, its reply, its idle."""

    def __init__(self, msg_id: str, msg_type: str, keep: bool = True) -> None:
        self.msg_id = msg_id
        self.msg_type = msg_type
        self.keep = keep
        self.msgs: list[dict[str, Any]] = []
        self.count = 0
        self.reply: dict[str, Any] | None = None
        self.idle = False
        self.needs_idle = msg_type in QUEUED_REQUESTS
        self.done = asyncio.Event()
        self.running = asyncio.Event()  # execute_input seen: its code runs
        self.output = asyncio.Event()  # a stream message seen
        self.timed_out = False
        self.sent_at = time.monotonic()

    def add(self, msg: dict[str, Any]) -> None:
        self.count += 1
        if self.keep:
            self.msgs.append(msg)
        msg_type = msg["msg_type"]
        if msg.get("channel") in ("shell", "control") and msg_type.endswith("_reply"):
            self.reply = msg
        elif msg_type == "status" and msg["content"].get("execution_state") == "idle":
            self.idle = True
        elif msg_type == "execute_input":
            self.running.set()
        elif msg_type == "stream":
            self.output.set()
        if self.reply is not None and (self.idle or not self.needs_idle):
            self.done.set()

    def of_type(self, msg_type: str) -> list[dict[str, Any]]:
        return [m for m in self.msgs if m["msg_type"] == msg_type]

    def stdout(self) -> str:
        return "".join(
            m["content"]["text"]
            for m in self.msgs
            if m["msg_type"] == "stream" and m["content"].get("name") == "stdout"
        )


class AsyncKernelClient:
    """A kernel WebSocket client on asyncio that routes messages to its pending requests.

    It parses only frames that mention one of its pending msg_ids (iopub is shared by
    every client of a kernel), and counts gap notices ("output dropped")."""

    def __init__(self, svc: Service, kernel_id: str, session_id: str | None = None) -> None:
        self.svc = svc
        self.kernel_id = kernel_id
        self.session_id = session_id or uuid.uuid4().hex
        self.ws: ClientConnection | None = None
        self.pending: dict[str, Pending] = {}
        self.frames = 0
        self.gaps = 0
        self.closed: str | None = None  # why the connection ended, if it did
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> AsyncKernelClient:
        self.ws = await open_ws(self.svc, self.kernel_id, self.session_id)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                self.frames += 1
                if isinstance(raw, str):
                    if "[ipytwist]" in raw and "dropped" in raw and is_gap_notice(decode(raw)):
                        self.gaps += 1
                    if len(self.pending) < 8 and not any(mid in raw for mid in self.pending):
                        continue  # not ours: no need to parse it
                msg = decode(raw)
                pending = self.pending.get(parent_id(msg) or "")
                if pending is not None:
                    pending.add(msg)
            self.closed = "closed by the server"
        except ConnectionClosed as e:
            self.closed = f"connection closed ({e})"
        except asyncio.CancelledError:
            self.closed = "closed by the client"
            raise
        except Exception as e:
            self.closed = f"{type(e).__name__}: {e}"
        finally:
            for p in self.pending.values():
                p.done.set()

    async def start(
        self, channel: str, msg_type: str, content: dict[str, Any], keep: bool = True
    ) -> Pending:
        assert self.ws is not None
        msg = make_message(msg_type, content, self.session_id)
        pending = Pending(msg["header"]["msg_id"], msg_type, keep)
        self.pending[pending.msg_id] = pending
        await self.ws.send(json.dumps({**msg, "channel": channel}))
        return pending

    async def finish(self, pending: Pending, timeout: float) -> Pending:
        try:
            await asyncio.wait_for(pending.done.wait(), timeout)
        except TimeoutError:
            pending.timed_out = True
        finally:
            self.pending.pop(pending.msg_id, None)
        return pending

    async def request(
        self, channel: str, msg_type: str, content: dict[str, Any], timeout: float = 30.0
    ) -> Pending:
        return await self.finish(await self.start(channel, msg_type, content), timeout)

    async def execute(self, code: str, timeout: float = 30.0, **extra: Any) -> Pending:
        content = execute_content(code, **extra)
        return await self.request("shell", "execute_request", content, timeout)

    async def close(self) -> None:
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 5)
            except (TimeoutError, ConnectionClosed, OSError):
                self.ws.transport.abort()
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass


async def connections(svc: Service, kernel_id: str) -> int:
    """``connections`` of GET /api/kernels/{id} (the request runs off the event loop)."""
    r = await asyncio.to_thread(svc.api, "GET", f"/api/kernels/{kernel_id}")
    assert r.status_code == 200, (r.status_code, r.text)
    return int(r.json()["connections"])


async def asettle(check: Callable[[], Awaitable[bool]], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)


class Errors:
    """Failures a scenario met: all counted, the first ``keep`` kept verbatim."""

    def __init__(self, keep: int = 50) -> None:
        self.keep = keep
        self.count = 0
        self.first: list[str] = []
        self.kinds: Counter[str] = Counter()

    def add(self, kind: str, text: str) -> None:
        self.count += 1
        self.kinds[kind] += 1
        if len(self.first) < self.keep:
            self.first.append(f"{kind}: {text[:300]}")

    def __bool__(self) -> bool:
        return self.count > 0

    def report(self) -> str:
        return f"{self.count} errors {dict(self.kinds)}:\n" + "\n".join(self.first)


# -- vanishing clients ----------------------------------------------------------------------

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


def _masked_frame(payload: bytes) -> bytes:
    """A client text frame (masked, as RFC 6455 requires of clients)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x81, 0x80 | n])
    elif n < 1 << 16:
        head = bytes([0x81, 0x80 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


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
        frame = _masked_frame(json.dumps({**msg, "channel": "shell"}).encode())
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
        sampler = asyncio.create_task(_sample_rss(svc.pid, rss, seconds))
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


async def _sample_rss(pid: int, out: list[tuple[float, float]], seconds: float) -> None:
    t0 = time.monotonic()
    while (now := time.monotonic() - t0) < seconds:
        out.append((now, rss_mib(pid)))
        await asyncio.sleep(RSS_INTERVAL)


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


# -- SIGTERM under output -------------------------------------------------------------------

#: A cell printing as fast as it can.
FLOOD_CODE = "i = 0\nwhile True:\n    print(i, 'x' * 200)\n    i += 1\n"
SETUP_CHILD_CODE = (
    "import os, subprocess\n"
    "background = subprocess.Popen(['sleep', '60'])\n"
    "print(os.getpid(), background.pid)"
)


@dataclass
class SigtermResult:
    exit_code: int | None
    exit_s: float
    pids: list[int]  # workers and their background children
    left_alive: list[int]
    files_before: list[str]
    files_after: list[str]
    server_json_after: bool
    stream_messages: int  # seen by the fast reader before the service closed it
    worker_blocked: bool  # the stalled kernel's worker was blocked writing its output
    reader_end: str


def sigterm_under_output(svc: Service, exit_timeout: float = 10.0) -> SigtermResult:
    """Two kernels, each with a ``sleep 60`` child of user code and a cell printing in a
    loop: one with a reader draining its WebSocket, one whose only reader never reads
    (its worker ends up blocked writing its stdout).  Then SIGTERM to twistd."""
    assert svc.proc is not None
    kids = [svc.start_kernel(), svc.start_kernel()]
    fast = WSClient.connect(svc, kids[0])
    stalled = WSClient.connect(svc, kids[1])
    pids: list[int] = []
    seen = {"stream": 0}
    reader_end = {"why": "still reading"}
    try:
        for ws in (fast, stalled):
            reply, msgs = ws.execute(SETUP_CHILD_CODE)
            assert reply["content"]["status"] == "ok", reply["content"]
            pids += [int(p) for p in stream_text(msgs).split()]
        stalled_worker = pids[2]
        fast.execute_request(FLOOD_CODE)
        stalled.execute_request(FLOOD_CODE)

        def drain() -> None:
            try:
                while True:
                    if fast.recv(30)["msg_type"] == "stream":
                        seen["stream"] += 1
                    if len(fast.received) > 1000:
                        del fast.received[:]
            except WSClosed as e:
                reader_end["why"] = f"closed by the service ({e.code})"
            except (websocket.WebSocketException, OSError) as e:
                reader_end["why"] = f"{type(e).__name__}: {e}"

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        wait_for(lambda: seen["stream"] >= 50, 30, "the fast reader to see output")
        blocked = settle(lambda: blocked_writing(stalled_worker), 15)
        files_before = sorted(glob.glob(os.path.join(svc.state_dir, "kernel-*.json")))

        t0 = time.monotonic()
        svc.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = svc.proc.wait(exit_timeout)
        except Exception:
            code = None
        exit_s = time.monotonic() - t0
        settle(lambda: not any(pid_alive(p) for p in pids), 2)
        reader.join(10)
        return SigtermResult(
            exit_code=code,
            exit_s=exit_s,
            pids=pids,
            left_alive=[p for p in pids if pid_alive(p)],
            files_before=files_before,
            files_after=sorted(glob.glob(os.path.join(svc.state_dir, "kernel-*.json"))),
            server_json_after=os.path.exists(os.path.join(svc.state_dir, "server.json")),
            stream_messages=seen["stream"],
            worker_blocked=blocked,
            reader_end=reader_end["why"],
        )
    finally:
        for ws in (fast, stalled):
            ws.ws.shutdown()
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)  # only if the service left it behind
            except ProcessLookupError:
                pass


# -- soak -----------------------------------------------------------------------------------

#: The soak service keeps a short output log so it is full after the warm-up: with the
#: default 10,000 messages the logs would still be filling at the end, which is growth
#: by design, not a leak.
SOAK_SERVICE_ARGS = ("--replay-messages", "500")
#: Mean pause between a client's requests (uniform in [0, 2 x this]).
SOAK_THINK_SECONDS = 0.5
#: Any single request must be answered (and reach idle) within this.
SOAK_REQUEST_TIMEOUT = 60.0
#: RSS is sampled this often; "after warm-up" and "end" are medians of the samples of
#: the last RSS_WINDOW seconds before each point.
RSS_INTERVAL = 0.5
RSS_WINDOW = 2.0


#: Cells each kernel runs before the soak: more than the 500 cells a kernel's transcript
#: keeps (ipytwist.kernel.transcript), and far more than its output log's messages.
SOAK_PREFILL_CELLS = 600


def stdout_difference(got: str, want: str, p: Pending) -> str:
    """Where printed output first differs from the expected, and how it came in
    (stream message sizes and their msg_ids), to tell a duplicate from a loss."""
    at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
    if at is None:
        at = min(len(got), len(want))
    streams = [
        (len(m["content"]["text"]), m["header"]["msg_id"][:8])
        for m in p.msgs
        if m["msg_type"] == "stream" and m["content"].get("name") == "stdout"
    ]
    return (
        f"first difference at {at}: got {got[max(0, at - 20) : at + 60]!r}, "
        f"wanted {want[max(0, at - 20) : at + 60]!r}; stream messages (chars, id): {streams}"
    )


@dataclass(frozen=True)
class SoakCell:
    """A cell of the soak workload and what its client must see."""

    kind: str
    code: str
    result: str | None = None  # its execute_result's text/plain
    stdout: str | None = None
    display: str | None = None  # the text/plain of its one display_data

    def problem(self, p: Pending) -> str | None:
        if self.result is not None:
            results = p.of_type("execute_result")
            text = results[0]["content"]["data"].get("text/plain") if results else None
            if text != self.result:
                return f"{self.code!r} gave {text!r}"
        if self.stdout is not None and p.stdout() != self.stdout:
            got = p.stdout()
            return f"{self.code!r}: {len(got)} of {len(self.stdout)} characters printed" + (
                f" ({stdout_difference(got, self.stdout, p)})"
            )
        if self.display is not None:
            shown = [m["content"]["data"].get("text/plain") for m in p.of_type(DISPLAY)]
            if shown != [self.display]:
                return f"{self.code!r} showed {shown}"
        return None


def soak_cell(rng: random.Random) -> SoakCell:
    """A small execute (checked against its result), a print burst (checked line by
    line) or a ``display()`` call."""
    r = rng.random()
    if r < 0.57:
        a, b = rng.randrange(1000), rng.randrange(1000)
        return SoakCell("execute", f"{a} * {b}", result=str(a * b))
    if r < 0.82:
        lines = rng.choice((20, 200, 2000))
        want = "".join(f"{i}\n" for i in range(lines))
        return SoakCell("print burst", f"for i in range({lines}): print(i)", stdout=want)
    v = rng.randrange(10**6)
    return SoakCell("display", f"from IPython.display import display\ndisplay({v})", display=str(v))


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
        workers = sum(cpu_seconds(p) for p in descendants(self.svc.pid))
        return time.monotonic(), cpu_seconds(self.svc.pid), workers, time.process_time()

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
            await asyncio.sleep(rng.uniform(0, 2 * SOAK_THINK_SECONDS))

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
            for kid in kids:
                await asyncio.to_thread(self.svc.delete_kernel, kid)


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
