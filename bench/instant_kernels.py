"""The instant-kernels benchmark's kernels, one at a time: a new kernel until the result
of ``1``, the memory of idle kernels, a restart and a crash recovery.

ipytwist is reached as JupyterLab reaches it: ``POST /api/kernels``, then a kernel
WebSocket (the request is sent at once; the service holds it until the interpreter is
up).  ipykernel is started by jupyter_client's ``KernelManager`` and driven by its
blocking client, which sends ``kernel_info_request`` until it is answered and iopub
delivers (``wait_for_ready`` without its final 0.2 s iopub flush, which would only add
to ipykernel's figure), then executes ``1``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from queue import Empty
from typing import Any

from benchlib.messages import parent_id
from benchlib.procs import fork_servers, rss_kib
from benchlib.scenarios.crashes import crash_and_recover
from benchlib.servers import Service
from benchlib.wsclient import WSClient
from kernel_bench_metrics import SPEC_PREFIX, process_tree, pss_kib

#: The cell that crashes the interpreter: the kernel's own process is SIGKILLed.
CRASH_CODE = "import os; os.kill(os.getpid(), 9)"
#: How long one kernel may take to answer (a loaded machine, many kernels at once).
ANSWER_TIMEOUT = 120.0


def memory_mib(pids: list[int]) -> dict[str, Any]:
    """PSS (pages shared by N processes count 1/N) and RSS of ``pids`` in MiB, summed
    and each (in the order of ``pids``: for ipytwist the keeper, then its interpreter)."""
    pss = [pss_kib(p) / 1024 for p in pids]
    rss = [rss_kib(p) / 1024 for p in pids]
    return {"pss_mib": sum(pss), "rss_mib": sum(rss), "pss_each": pss, "rss_each": rss}


def ws_result_of_1(ws: WSClient, timeout: float = ANSWER_TIMEOUT) -> None:
    """Execute ``1`` and wait for its ``execute_result`` (1 as its text)."""
    msg_id = ws.execute_request("1")
    got = ws.until(lambda m: m["msg_type"] == "execute_result" and parent_id(m) == msg_id, timeout)
    text = got[-1]["content"]["data"].get("text/plain")
    if text != "1":
        raise RuntimeError(f"`1` gave {text!r}")


class TwistKernels:
    """Kernels of one ipytwist service, each with a WebSocket client kept open."""

    name = "ipytwist"

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.clients: dict[str, WSClient] = {}

    def new(self) -> float:
        """POST a kernel, connect, execute ``1``: seconds until its result arrived."""
        t0 = time.perf_counter()
        kernel_id = self.svc.start_kernel()
        ws = WSClient.connect(self.svc, kernel_id, timeout=ANSWER_TIMEOUT)
        self.clients[kernel_id] = ws
        ws_result_of_1(ws)
        return time.perf_counter() - t0

    def processes(self) -> dict[str, list[int]]:
        """Each kernel's processes: the keeper its record names, and all below it (the
        interpreter and whatever the interpreter started)."""
        out = {}
        for kernel_id in self.clients:
            record = os.path.join(self.svc.state_dir, "kernels", kernel_id, "kernel.json")
            with open(record) as f:
                keeper = json.load(f)["keeper_pid"]
            out[kernel_id] = process_tree(keeper)
        return out

    def shared(self) -> list[int]:
        """Processes every kernel of the service relies on: its fork server."""
        return fork_servers(self.svc.pid)

    def restart(self) -> float:
        """Restart the first kernel over REST, then execute ``1``: seconds to its result."""
        kernel_id, ws = next(iter(self.clients.items()))
        t0 = time.perf_counter()
        self.svc.request("POST", f"/api/kernels/{kernel_id}/restart")
        ws_result_of_1(ws)
        return time.perf_counter() - t0

    def crash(self) -> dict[str, float]:
        """Crash the first kernel's interpreter; the crash cell's reply, then ``1``:
        seconds from the reply to the idle of ``1``, and from sending the crash."""
        ws = next(iter(self.clients.values()))
        out = crash_and_recover(ws, CRASH_CODE, timeout=ANSWER_TIMEOUT)
        if out.round_trip.get("status") != "ok":
            raise RuntimeError(f"no working interpreter after the crash: {out.round_trip}")
        return {"recover_s": out.recover_s, "total_s": out.reply_s + out.recover_s}

    def close(self) -> None:
        """Close the clients (the service shuts the kernels down when it stops)."""
        for ws in self.clients.values():
            ws.close()
        self.clients.clear()


class PyKernels:
    """ipykernel kernels, each with its KernelManager and blocking client."""

    name = "ipykernel"

    def __init__(self, ipython_dir: str) -> None:
        self.ipython_dir = ipython_dir
        self.sessions: list[tuple[Any, Any]] = []

    def new(self) -> float:
        """start_kernel, then ready and ``1``: seconds until its result arrived."""
        from jupyter_client.manager import KernelManager

        km = KernelManager(kernel_name=SPEC_PREFIX + "ipykernel")
        n = len(self.sessions)
        env = dict(os.environ, IPYTHONDIR=os.path.join(self.ipython_dir, f"ipykernel-{n}"))
        t0 = time.perf_counter()
        # Its stderr (a warning about TCP without encryption) is not the benchmark's.
        km.start_kernel(env=env, stderr=subprocess.DEVNULL)
        kc = km.client()
        self.sessions.append((km, kc))
        kc.start_channels()
        ready(kc, km)
        self.result_of_1(kc)
        return time.perf_counter() - t0

    @staticmethod
    def result_of_1(kc: Any) -> None:
        msg_id = kc.execute("1")
        deadline = time.perf_counter() + ANSWER_TIMEOUT
        while True:
            msg = kc.get_iopub_msg(timeout=max(0.01, deadline - time.perf_counter()))
            if msg["msg_type"] == "execute_result" and parent_id(msg) == msg_id:
                text = msg["content"]["data"].get("text/plain")
                if text != "1":
                    raise RuntimeError(f"`1` gave {text!r}")
                return

    def processes(self) -> dict[str, list[int]]:
        """Each kernel's process tree."""
        return {
            str(i): process_tree(km.provisioner.process.pid)
            for i, (km, _) in enumerate(self.sessions)
        }

    def shared(self) -> list[int]:
        """None: each kernel is a Python of its own."""
        return []

    def restart(self) -> float:
        """``restart_kernel()`` (a shutdown_request first, as jupyter_server does), ready,
        then ``1``: seconds to its result."""
        km, kc = self.sessions[0]
        t0 = time.perf_counter()
        km.restart_kernel()
        ready(kc, km)
        self.result_of_1(kc)
        return time.perf_counter() - t0

    def close(self) -> None:
        """Stop every client and kernel (killed: nothing is left behind)."""
        for km, kc in self.sessions:
            try:
                kc.stop_channels()
            finally:
                km.shutdown_kernel(now=True)
        self.sessions.clear()


def reply_to(get: Any, msg_id: str, timeout: float) -> dict[str, Any]:
    """The first message ``get`` (a channel's ``get_*_msg``) gives that is parented to
    ``msg_id`` within ``timeout`` seconds; others are dropped.  Raises ``Empty``."""
    deadline = time.perf_counter() + timeout
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise Empty
        msg: dict[str, Any] = get(timeout=left)
        if parent_id(msg) == msg_id:
            return msg


def ready(kc: Any, km: Any, timeout: float = ANSWER_TIMEOUT) -> None:
    """``kernel_info_request`` until it is answered on shell and its status comes on
    iopub (so iopub is subscribed to this kernel, not to one before a restart), as
    ``wait_for_ready`` does, without its final 0.2 s flush."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        asked = kc.kernel_info()
        try:
            reply_to(kc.get_shell_msg, asked, 1.0)
            reply_to(kc.get_iopub_msg, asked, 0.2)
            return
        except Empty:
            if not km.is_alive():
                raise RuntimeError("ipykernel died before it was ready") from None
    raise RuntimeError(f"ipykernel not ready within {timeout}s")
