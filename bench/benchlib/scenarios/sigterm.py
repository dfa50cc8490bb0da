"""SIGTERM to the service while two kernels print: one read by a client, one whose only
client reads nothing, each with a child process of user code."""

from __future__ import annotations

import glob
import os
import signal
import threading
import time
from dataclasses import dataclass

import websocket

from ..messages import stream_text
from ..procs import pid_alive, settle, wait_for
from ..servers import Service
from ..wsclient import WSClient, WSClosed

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
