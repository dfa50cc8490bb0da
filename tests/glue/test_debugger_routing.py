"""The kernel's debugger routing (kernel/debugger.py, kernel/dapclient.py) with a fake
worker and a fake debugpy on a StringTransport: what is forwarded and how replies come
back, what the kernel answers itself, control served while a cell is stopped, and bad
input from a client or from debugpy answered with an error, never a crash."""

from __future__ import annotations

import os
from typing import Any

import pytest
from support.fakes import FakeProvisioner, FakeWorker, Iopub, Requester
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs

from ipytwist.dap import DapDecoder, cell_dir, encode_dap
from ipytwist.kernel import Kernel
from ipytwist.kernel.dapclient import DapConnection
from ipytwist.kernel.debugger import MAX_SOURCE_BYTES
from ipytwist.wire import new_message


class FakeDebugpy:
    """debugpy's side of the connection: what the kernel sent, and replies fed back."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []
        self.protocol: DapConnection | None = None
        self.transport = StringTransport()
        self._decoder = DapDecoder()

    def connect(self, host: str, port: int, protocol: DapConnection) -> Deferred[DapConnection]:
        self.connects.append((host, port))
        self.protocol = protocol
        protocol.makeConnection(self.transport)
        return succeed(protocol)

    def received(self) -> list[dict[str, Any]]:
        out = self._decoder.feed(self.transport.value())
        self.transport.clear()
        return out

    def respond(self, request: dict[str, Any], **fields: Any) -> None:
        assert self.protocol is not None
        reply = {"type": "response", "request_seq": request["seq"], "success": True}
        self.protocol.dataReceived(encode_dap({**reply, "command": request["command"], **fields}))

    def event(self, name: str, **body: Any) -> None:
        assert self.protocol is not None
        self.protocol.dataReceived(encode_dap({"type": "event", "event": name, "body": body}))


class Env:
    def __init__(self) -> None:
        self.prov = FakeProvisioner(first_pid=4242)
        self.debugpy = FakeDebugpy()
        self.kernel = Kernel(Clock(), self.prov, debug_connect=self.debugpy.connect)
        self.iopub = Iopub()
        self.kernel.output_log.subscribe(self.iopub)
        self.kernel.start()
        self.worker.ready()
        self.client = Requester()
        self.seq = 0

    @property
    def worker(self) -> FakeWorker:
        return self.prov.workers[-1]

    def debug(self, command: str, **arguments: Any) -> dict[str, Any]:
        self.seq += 1
        content = {"type": "request", "seq": self.seq, "command": command, "arguments": arguments}
        return self.send(content)

    def send(self, content: Any) -> dict[str, Any]:
        msg = new_message("debug_request", content, "client")
        self.kernel.handle("control", msg, self.client)
        return msg

    def reply(self, msg: dict[str, Any]) -> dict[str, Any]:
        reply = self.client.reply_to(msg)
        assert reply["msg_type"] == "debug_reply"
        return dict(reply["content"])

    def start(self) -> None:
        """initialize: debugpy listens in the worker, the kernel connects."""
        msg = self.debug("initialize", clientID="t")
        assert self.worker.sent[-1]["req"] == "debug_listen"
        self.worker.reply({"status": "ok", "host": "127.0.0.1", "port": 5678, "pid": 4242})
        assert self.debugpy.connects == [("127.0.0.1", 5678)]
        (sent,) = self.debugpy.received()
        assert sent["command"] == "initialize"
        self.debugpy.respond(sent, body={"supportsConfigurationDoneRequest": True})
        assert self.reply(msg)["success"] is True


@pytest.fixture
def env() -> Env:
    return Env()


def test_forwarded_replies_carry_the_clients_seq(env: Env) -> None:
    env.start()
    env.seq = 100
    msg = env.debug("threads")
    (sent,) = env.debugpy.received()
    assert sent["command"] == "threads" and sent["seq"] != 101  # the kernel's own numbering
    env.debugpy.respond(sent, body={"threads": [{"id": 1, "name": "MainThread"}]})
    reply = env.reply(msg)
    assert reply["request_seq"] == 101 and reply["body"]["threads"][0]["id"] == 1


def test_attach_says_where_debugpy_is_and_configures_it_when_initialized(env: Env) -> None:
    env.start()
    msg = env.debug("attach")
    (attach,) = env.debugpy.received()
    assert attach["arguments"]["connect"] == {"host": "127.0.0.1", "port": 5678}
    env.debugpy.event("initialized")
    (done,) = env.debugpy.received()
    assert done["command"] == "configurationDone"
    env.debugpy.respond(done)
    env.debugpy.respond(attach)
    assert env.reply(msg)["success"] is True
    events = [m["content"]["event"] for m in env.iopub.msgs if m["msg_type"] == "debug_event"]
    assert events == ["initialized"]


def test_control_is_served_while_a_breakpoint_stops_the_cell(env: Env) -> None:
    env.start()
    cell = new_message("execute_request", {"code": "f()"}, "client")
    env.kernel.handle("shell", cell, env.client)
    assert env.worker.sent[-1]["req"] == "execute"  # the cell runs, and stops:
    env.debugpy.event("stopped", reason="breakpoint", threadId=7, allThreadsStopped=True)
    info = env.reply(env.debug("debugInfo"))
    assert info["body"]["stoppedThreads"] == [7]
    msg = env.debug("stackTrace", threadId=7)
    (sent,) = env.debugpy.received()
    env.debugpy.respond(sent, body={"stackFrames": [{"id": 3, "name": "f", "line": 2}]})
    assert env.reply(msg)["body"]["stackFrames"][0]["name"] == "f"
    msg = env.debug("continue", threadId=7)
    (sent,) = env.debugpy.received()
    env.debugpy.respond(sent, body={"allThreadsContinued": True})
    assert env.reply(msg)["success"]
    assert env.reply(env.debug("debugInfo"))["body"]["stoppedThreads"] == []
    env.worker.reply({"status": "ok"})
    assert env.client.reply_to(cell)["content"]["status"] == "ok"


def test_variables_while_not_stopped_are_asked_of_the_worker(env: Env) -> None:
    env.start()
    msg = env.debug("inspectVariables")
    sent = env.worker.sent[-1]
    assert sent["req"] == "debug_variables" and sent["content"] == {}
    assert sent["header"]["msg_type"] == "debug_variables_request"  # the worker's parent
    variables = [{"name": "x", "value": "1", "type": "int", "variablesReference": 0}]
    env.worker.reply({"status": "ok", "variables": variables})
    assert env.reply(msg)["body"]["variables"] == variables
    msg = env.debug("richInspectVariables", variableName="x")
    sent = env.worker.sent[-1]
    assert sent["req"] == "debug_rich" and sent["content"] == {"name": "x"}
    env.worker.reply({"status": "ok", "data": {"text/plain": "1"}, "metadata": {"a": 1}})
    assert env.reply(msg)["body"] == {"data": {"text/plain": "1"}, "metadata": {}}


def test_dump_cell_and_debug_info_name_the_workers_cell_files(env: Env) -> None:
    info = env.reply(env.debug("debugInfo"))["body"]
    assert info["tmpFilePrefix"] == cell_dir(4242) + os.sep and info["isStarted"] is False
    reply = env.reply(env.debug("dumpCell", code="y = 2\n"))
    path = reply["body"]["sourcePath"]
    try:
        assert path.startswith(info["tmpFilePrefix"])
        with open(path, encoding="utf-8") as f:
            assert f.read() == "y = 2\n"
        assert env.reply(env.debug("source", source={"path": path}))["body"]["content"] == "y = 2\n"
    finally:
        os.unlink(path)
        os.rmdir(os.path.dirname(path))


@pytest.mark.parametrize(
    "content",
    [None, [], "x", {}, {"type": "request", "seq": "1", "command": "initialize"},
     {"type": "request", "seq": 1, "command": 5}, {"type": "event", "seq": 1, "command": "x"},
     {"type": "request", "seq": 1, "command": "attach", "arguments": []}],
)  # fmt: skip
def test_a_malformed_debug_request_gets_an_error_and_one_log_line(env: Env, content: Any) -> None:
    with capturedLogs() as events:
        reply = env.reply(env.send(content))
    assert reply["success"] is False and "malformed" in reply["message"]
    assert [e["log_format"] for e in events] == ["malformed debug_request"]
    info = new_message("kernel_info_request", {}, "client")
    env.kernel.handle("control", info, env.client)
    assert env.client.reply_to(info)["content"]["debugger"] is True


def test_commands_before_initialize_fail_without_a_worker_request(env: Env) -> None:
    reply = env.reply(env.debug("stackTrace", threadId=1))
    assert reply["success"] is False and reply["message"] == "the debugger is not started"
    assert [r["req"] for r in env.worker.sent] == []


def test_bad_dap_from_debugpy_closes_the_session_and_fails_what_waits(env: Env) -> None:
    env.start()
    msg = env.debug("threads")
    assert env.debugpy.protocol is not None
    env.debugpy.protocol.dataReceived(b"Content-Length: x\r\n\r\n")
    assert env.debugpy.transport.disconnecting
    env.debugpy.protocol.connectionLost(None)
    reply = env.reply(msg)
    assert reply["success"] is False and "ConnectionLost" in reply["message"]
    assert env.reply(env.debug("threads"))["message"] == "the debugger is not started"


def test_debugpy_failing_to_start_fails_initialize(env: Env) -> None:
    msg = env.debug("initialize")
    env.worker.reply({"status": "error", "ename": "RuntimeError", "evalue": "no"})
    reply = env.reply(msg)
    assert reply["success"] is False and "debugpy did not start" in reply["message"]
    assert env.debugpy.connects == []


def test_initializes_sent_together_start_debugpy_once(env: Env) -> None:
    first, second = env.debug("initialize"), env.debug("initialize")
    assert [r["req"] for r in env.worker.sent] == ["debug_listen"]
    env.worker.reply({"status": "ok", "host": "127.0.0.1", "port": 5678, "pid": 4242})
    assert env.debugpy.connects == [("127.0.0.1", 5678)]
    for sent in env.debugpy.received():
        env.debugpy.respond(sent)
    assert env.reply(first)["success"] and env.reply(second)["success"]


def test_a_replaced_interpreter_ends_the_session_with_the_old_one(env: Env) -> None:
    """However late debugpy's closed connection arrives, the session of an interpreter
    that died is over: the panel must initialize again, with the new one."""
    env.start()
    old = env.worker
    old.die()
    assert env.worker is not old
    env.worker.ready()
    assert env.reply(env.debug("debugInfo"))["body"]["isStarted"] is False
    assert env.debugpy.transport.disconnecting
    msg = env.debug("initialize")
    assert env.worker.sent[-1]["req"] == "debug_listen"
    env.worker.reply({"status": "ok", "host": "127.0.0.1", "port": 6000, "pid": env.worker.pid})
    assert env.debugpy.connects[-1] == ("127.0.0.1", 6000)
    (sent,) = [m for m in env.debugpy.received() if m["command"] == "initialize"]
    env.debugpy.respond(sent)
    assert env.reply(msg)["success"]


def test_source_reads_regular_files_up_to_its_bound(env: Env, tmp_path: Any) -> None:
    at_bound, past = tmp_path / "at.py", tmp_path / "past.py"
    at_bound.write_bytes(b"#" * MAX_SOURCE_BYTES)
    past.write_bytes(b"#" * (MAX_SOURCE_BYTES + 1))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer, holding the reactor
    reply = env.reply(env.debug("source", source={"path": str(at_bound)}))
    assert len(reply["body"]["content"]) == MAX_SOURCE_BYTES
    for path in (past, fifo, "/dev/zero", tmp_path / "missing.py"):
        reply = env.reply(env.debug("source", source={"path": str(path)}))
        assert reply["success"] is False and reply["message"] == "source unavailable"


def test_every_debug_reply_has_busy_and_idle_of_its_request(env: Env) -> None:
    """JupyterLab's debugger waits for each request's idle (its future's ``done``): a
    reply without one hangs the panel.  As on ipykernel, busy and idle parented to the
    debug_request come with every reply: one answered through a worker request, and one
    while a breakpoint stops the running cell."""
    env.start()
    msg = env.debug("inspectVariables")
    env.worker.reply({"status": "ok", "variables": []})
    assert env.iopub.of(msg) == [("status", "busy"), ("status", "idle")]
    cell = new_message("execute_request", {"code": "f()"}, "client")
    env.kernel.handle("shell", cell, env.client)
    env.debugpy.event("stopped", reason="breakpoint", threadId=7, allThreadsStopped=True)
    msg = env.debug("stackTrace", threadId=7)
    (sent,) = env.debugpy.received()
    env.debugpy.respond(sent, body={"stackFrames": []})
    assert env.reply(msg)["success"]
    assert env.iopub.of(msg) == [("status", "busy"), ("status", "idle")]
