"""A ZeroMQ client restarts the shared kernel: ``BlockingKernelClient.shutdown(restart=True)``
on the connection file of a kernel a WebSocket client has set a variable in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient

from ..messages import stream_text
from ..servers import Service
from ..wsclient import WSClient
from .storms import WorkerWatch

#: Seconds to wait for the control reply and for a restart to show.
TIMEOUT = 20.0


@dataclass
class ClientRestart:
    reply: dict[str, Any]  # the shutdown_reply's content
    variable_kept: bool  # the WebSocket client's variable is still there after
    pid_kept: bool  # the same interpreter answers
    interpreters_started: int


def _pid_and_variable(ws: WSClient) -> tuple[int, bool]:
    reply, msgs = ws.execute("import os; print(os.getpid(), 'shared' in globals())")
    assert reply["content"]["status"] == "ok", reply["content"]
    pid, kept = stream_text(msgs).split()
    return int(pid), kept == "True"


def zmq_client_restart(svc: Service) -> ClientRestart:
    """A WebSocket client sets ``shared``; a ZeroMQ client asks for a restart; then the
    WebSocket client looks for ``shared`` (waiting for the kernel to be idle again)."""
    kid = svc.start_kernel()
    ws = WSClient.connect(svc, kid)
    kc = BlockingKernelClient(connection_file=svc.connection_file(kid))
    kc.load_connection_file()
    kc.start_channels()
    try:
        reply, _ = ws.execute("shared = 42")
        assert reply["content"]["status"] == "ok", reply["content"]
        pid, _ = _pid_and_variable(ws)
        kc.wait_for_ready(timeout=TIMEOUT)
        with WorkerWatch(svc) as watch:
            msg_id = kc.shutdown(restart=True)
            answer = kc.get_control_msg(timeout=TIMEOUT)
            assert answer["parent_header"]["msg_id"] == msg_id, answer
            # A restart (if any) is under way now: the next cell waits for its interpreter.
            pid_after, kept = _pid_and_variable(ws)
        return ClientRestart(answer["content"], kept, pid_after == pid, watch.started)
    finally:
        kc.stop_channels()
        ws.close()
        svc.delete_kernel(kid)
