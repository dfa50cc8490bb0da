"""Kernels under the real service (``twistd -n ipytwist``): interrupts, ZeroMQ and
WebSocket clients of one kernel, shutdown requests, DELETE and SIGTERM, with real clients
(``websocket-client`` for kernel WebSockets, ``jupyter_client`` for ZMQ).
"""

from __future__ import annotations

import glob
import os
import signal
import time
from typing import Any

from benchlib.messages import parent_id, stream_text
from benchlib.procs import pid_alive, wait_for
from benchlib.running import running_service
from benchlib.servers import WARM_POOL, Service
from benchlib.wsclient import WSClient
from jupyter_client import BlockingKernelClient
from support.service import service_fixture

svc = service_fixture("svc", *WARM_POOL, shared=True)


def test_rest_interrupt_stops_sleep(svc: Service, kernel_id: str) -> None:
    """POST /api/kernels/{id}/interrupt stops a running ``time.sleep(60)`` within 2 s: the
    execute_reply is an error with ename KeyboardInterrupt, and the kernel runs code again."""
    ws = WSClient.connect(svc, kernel_id)
    try:
        # The very first cell of a fresh interpreter: the interrupt must land there too.
        msg_id = ws.execute_request("import time; time.sleep(60)")
        ws.until(lambda m: m["msg_type"] == "execute_input" and parent_id(m) == msg_id)
        t0 = time.monotonic()
        r = svc.api("POST", f"/api/kernels/{kernel_id}/interrupt")
        assert r.status_code == 204
        got = ws.until(
            lambda m: m["msg_type"] == "execute_reply" and parent_id(m) == msg_id, timeout=10
        )
        elapsed = time.monotonic() - t0
        reply = got[-1]
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert elapsed < 2.0, elapsed
        ws.until_idle(msg_id)
        reply, msgs = ws.execute("print('after', 6 * 7)")
        assert reply["content"]["status"] == "ok"
        assert stream_text(msgs) == "after 42\n"
    finally:
        ws.close()


def _zmq_shutdown(svc: Service, kernel_id: str) -> dict[str, Any]:
    kc = BlockingKernelClient()
    kc.load_connection_file(svc.connection_file(kernel_id))
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=30)
        msg_id = kc.shutdown(restart=False)
        while True:
            reply = kc.get_control_msg(timeout=30)
            if parent_id(reply) == msg_id:
                return reply
    finally:
        kc.stop_channels()


def test_a_zmq_clients_shutdown_leaves_a_shared_kernel_running(
    svc: Service, kernel_id: str
) -> None:
    """jupyter console --existing sends shutdown_request when it exits: it is answered,
    but the hosted kernel keeps running for everyone else (DELETE ends it)."""
    ws = WSClient.connect(svc, kernel_id)
    try:
        reply, _ = ws.execute("kept = 1")
        assert _zmq_shutdown(svc, kernel_id)["content"]["status"] == "ok"
        reply, msgs = ws.execute("print(kept)")
        assert reply["content"]["status"] == "ok" and stream_text(msgs) == "1\n"
        assert svc.api("GET", f"/api/kernels/{kernel_id}").status_code == 200
    finally:
        ws.close()


def test_allow_client_shutdown_lets_a_client_end_the_kernel(tmp_path_factory: Any) -> None:
    with running_service(tmp_path_factory, "client-shutdown", "--allow-client-shutdown") as s:
        kid = s.start_kernel()
        assert _zmq_shutdown(s, kid)["content"]["status"] == "ok"
        wait_for(
            lambda: s.api("GET", f"/api/kernels/{kid}").status_code == 404,
            10,
            "the kernel to be gone",
        )


def test_zmq_and_websocket_share_the_kernel(svc: Service, kernel_id: str) -> None:
    """A jupyter_client BlockingKernelClient on STATE_DIR/kernel-<id>.json and a WebSocket
    client drive the same interpreter: variables set on one are seen on the other, and the
    WebSocket client also sees the output of the ZMQ client's request."""
    ws = WSClient.connect(svc, kernel_id)
    kc = BlockingKernelClient()
    kc.load_connection_file(svc.connection_file(kernel_id))
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=30)
        reply, _ = ws.execute("shared_x = 41")
        assert reply["content"]["status"] == "ok"

        out: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])

        zreply = kc.execute_interactive("print(shared_x + 1)", output_hook=hook, timeout=30)
        assert zreply["content"]["status"] == "ok"
        assert "".join(out) == "42\n"
        zid = zreply["parent_header"]["msg_id"]
        seen = ws.until_idle(zid)
        assert stream_text(m for m in seen if parent_id(m) == zid) == "42\n"
        assert not [m for m in seen if m["msg_type"] == "execute_reply" and parent_id(m) == zid]

        zreply = kc.execute_interactive("shared_y = 'set over zmq'", timeout=30)
        assert zreply["content"]["status"] == "ok"
        reply, msgs = ws.execute("print(shared_y)")
        assert reply["content"]["status"] == "ok"
        assert stream_text(msgs) == "set over zmq\n"
    finally:
        kc.stop_channels()
        ws.close()


def test_delete_ends_a_kernel_with_a_background_child_at_once(svc: Service) -> None:
    """DELETE /api/kernels/{id} does not wait for a child process user code left running;
    the child ends with its kernel."""
    kid = svc.start_kernel()
    ws = WSClient.connect(svc, kid)
    try:
        reply, msgs = ws.execute(
            "import subprocess\nchild = subprocess.Popen(['sleep', '60'])\nprint(child.pid)"
        )
        child = int(stream_text(msgs))
        assert pid_alive(child)
        started = time.monotonic()
        assert svc.api("DELETE", f"/api/kernels/{kid}").status_code == 204
        assert time.monotonic() - started < 5
        wait_for(lambda: not pid_alive(child), 5, "the child to end")
    finally:
        ws.close()


def test_sigterm_stops_everything(tmp_path_factory: Any) -> None:
    """SIGTERM to twistd with two kernels running (one WebSocket still open, each with a
    background child of user code holding its output pipes) exits 0 within 10 s, leaves
    no worker process nor child, and removes the connection files and server.json."""
    with running_service(tmp_path_factory, "sigterm") as svc:
        pids = []
        kids = [svc.start_kernel(), svc.start_kernel()]
        clients = []
        for kid in kids:
            ws = WSClient.connect(svc, kid)
            clients.append(ws)
            reply, msgs = ws.execute(
                "import os, subprocess\n"
                "child = subprocess.Popen(['sleep', '60'])\n"
                "print(os.getpid(), child.pid)"
            )
            assert reply["content"]["status"] == "ok"
            pids += [int(p) for p in stream_text(msgs).split()]
        clients[1].close()
        assert all(pid_alive(p) for p in pids)
        files = glob.glob(os.path.join(svc.state_dir, "kernel-*.json"))
        assert sorted(files) == sorted(svc.connection_file(k) for k in kids)

        assert svc.proc is not None
        svc.proc.send_signal(signal.SIGTERM)
        code = svc.proc.wait(10)
        assert code == 0, svc.log()[-3000:]
        alive = [p for p in pids if pid_alive(p)]
        assert not alive, alive
        assert glob.glob(os.path.join(svc.state_dir, "kernel-*.json")) == []
        assert not os.path.exists(os.path.join(svc.state_dir, "server.json"))
        clients[0].ws.shutdown()
