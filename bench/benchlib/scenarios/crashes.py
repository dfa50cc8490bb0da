"""Crashes of the interpreter (a synchronous WebSocket client): one of each kind, and
cycles of crash and recovery that must leak nothing in the service."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..messages import is_reply_to, parent_id, stream_text
from ..procs import fork_servers, kernel_descendants, kernel_processes, settle
from ..servers import Service
from ..wsclient import WSClient
from .common import Snapshot, snapshot

#: The crashes of test_crashes.py, each as the cell that causes it.
EXIT_CODE = "import os; os._exit(1)"
SEGFAULT_CODE = "import ctypes; ctypes.string_at(0)"
SLEEP_CODE = "import time; print('started', flush=True); time.sleep(60)"
#: Headroom above the worker's current address space under RLIMIT_AS.
MEMORY_HEADROOM_MIB = 200
#: Caps the address space (RLIMIT_AS) at the current size + MEMORY_HEADROOM_MIB (once:
#: a later cell under the cap leaves it as it is) and starts ``hog``.
MEMORY_LIMIT = f"""\
import resource
def _vm_size():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmSize:'):
                return int(line.split()[1]) * 1024
_soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
if _soft == resource.RLIM_INFINITY:
    resource.setrlimit(resource.RLIMIT_AS, (_vm_size() + {MEMORY_HEADROOM_MIB} * 2**20, _hard))
hog = []
"""
#: Fills the address space in 1 MiB blocks, keeping them.
MEMORY_CODE = MEMORY_LIMIT + "while True:\n    hog.append(bytearray(2**20))\n"
#: Fills it in 1 MiB blocks, then in smaller and smaller ones down to 64 bytes: nothing
#: is left for IPython, the traceback or the reply.
MEMORY_LAST_BYTE_CODE = MEMORY_LIMIT + (
    "for _size in (2**20, 2**16, 2**12, 2**9):\n"
    "    try:\n"
    "        while True:\n"
    "            hog.append(bytearray(_size))\n"
    "    except MemoryError:\n"
    "        pass\n"
    "while True:\n"
    "    hog.append(bytearray(64))\n"
)
#: Prints a line per MiB held: the MemoryError may come from print's path.
MEMORY_PRINT_CODE = MEMORY_LIMIT + (
    "while True:\n    hog.append(bytearray(2**20))\n    print('held', len(hog))\n"
)
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
    got += ws.until(lambda m: is_reply_to(m, msg_id), timeout)
    replied = time.monotonic()
    got += ws.until_idle(msg_id, timeout)
    rt_id = ws.execute_request("1")
    after = ws.until_idle(rt_id, timeout)
    recovered = time.monotonic()
    rt_replies = [m for m in after if m["msg_type"] == "execute_reply" and parent_id(m) == rt_id]
    assert rt_replies, f"no reply to the round trip: {[m['msg_type'] for m in after]}"
    return CrashOutcome(
        reply=next(m for m in got if is_reply_to(m, msg_id))["content"],
        cell=[m for m in got if parent_id(m) == msg_id],
        between=[m for m in after if parent_id(m) != rt_id],
        round_trip=rt_replies[0]["content"],
        reply_s=replied - sent,
        recover_s=recovered - replied,
    )


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
    #: Those interpreters and their keepers (over the worker link): all that may run below
    #: the service, before the cycles and after.
    kernel_procs_before: tuple[int, ...]
    kernel_procs: tuple[int, ...]
    seconds: float
    #: The fork servers among those (before, after): the service's one, the same.
    fork_servers: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())


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

    def settled() -> tuple[tuple[int, ...], tuple[int, ...], Snapshot]:
        """The current workers, them and their keepers, and, once those are all that runs
        below it, the service."""
        workers = tuple(sorted(worker_pid(ws) for ws in clients))
        expected = kernel_processes(svc.pid, workers)
        settle(lambda: tuple(kernel_descendants(svc.pid)) == expected, 10)
        return workers, expected, snapshot(svc.pid)

    try:
        with ThreadPoolExecutor(kernels) as pool:
            warm = list(pool.map(_cycle, clients, [CYCLE_WARMUP] * kernels))
            assert not any(f for _, _, f in warm), warm
            _, expected_before, before = settled()
            servers_before = tuple(fork_servers(svc.pid))
            started = time.monotonic()
            runs = list(pool.map(_cycle, clients, shares))
            seconds = time.monotonic() - started
        workers, expected, after = settled()
        servers = tuple(fork_servers(svc.pid))
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
        expected_before,
        expected,
        seconds,
        (servers_before, servers),
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
