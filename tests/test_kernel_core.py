"""Kernel (kernel/core.py) with a fake worker: queueing, busy/idle, aborts, worker death."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from support.fakes import FakeProvisioner, Iopub
from support.fakes import Requester as Client
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from ipytwist.kernel import Kernel, Request
from ipytwist.kernel.supervisor import INTERRUPT_NUDGES
from ipytwist.wire import TERMINAL_METADATA, new_message
from ipytwist.worker import NUDGE_SIGNAL


def started() -> tuple[Kernel, FakeProvisioner, Iopub, Clock]:
    """A kernel whose first (fake) worker is ready, its output log's subscriber, clock."""
    clock = Clock()
    prov = FakeProvisioner(first_pid=1000)
    kernel = Kernel(clock, prov)
    iopub = Iopub()
    kernel.output_log.subscribe(iopub)
    kernel.start()
    prov.workers[0].ready()
    return kernel, prov, iopub, clock


@pytest.fixture
def env() -> tuple[Kernel, FakeProvisioner, Iopub, Clock]:
    return started()


def request(msg_type: str, content: dict | None = None) -> dict:
    return new_message(msg_type, content or {}, "client")


def execute(code: str, **kw: Any) -> dict:
    return request("execute_request", {"code": code, **kw})


def test_start_reports_starting_then_ready() -> None:
    """start() publishes 'starting'; its Deferred fires when the worker says ready."""
    prov = FakeProvisioner()
    kernel = Kernel(Clock(), prov)
    iopub = Iopub()
    kernel.output_log.subscribe(iopub)
    d = kernel.start()
    assert iopub.states() == ["starting"]
    assert not d.called
    prov.workers[0].ready()
    assert d.called
    assert kernel.execution_state == "idle"


def test_requests_before_ready_wait_for_the_worker() -> None:
    """An execute sent while the worker starts is forwarded once it is ready."""
    prov = FakeProvisioner()
    kernel = Kernel(Clock(), prov)
    kernel.start()
    msg = execute("1")
    kernel.handle("shell", msg, Client())
    assert prov.workers[0].sent == []
    prov.workers[0].ready()
    # The request's header goes with it: the worker's get_parent() is that request.
    assert prov.workers[0].sent == [
        {"req": "execute", "content": {"code": "1"}, "header": msg["header"], "sigints": 0}
    ]


def test_requests_run_one_at_a_time_with_busy_and_idle(env: Any) -> None:
    """Only one request is at the worker; each gets busy, its reply, then idle."""
    kernel, prov, iopub, _ = env
    w, client = prov.workers[0], Client()
    a, b = execute("a"), request("complete_request", {"code": "pr", "cursor_pos": 2})
    kernel.handle("shell", a, client)
    kernel.handle("shell", b, client)
    assert [r["req"] for r in w.sent] == ["execute"]
    kernel.worker_event({"ev": "execute_input", "code": "a", "count": 7})
    w.reply({"status": "ok"})
    assert [r["req"] for r in w.sent] == ["execute", "complete"]
    w.reply({"status": "ok", "matches": []})
    assert iopub.of(a) == [("status", "busy"), ("execute_input", None), ("status", "idle")]
    assert iopub.of(b) == [("status", "busy"), ("status", "idle")]
    reply_a = client.reply_to(a)
    assert reply_a["msg_type"] == "execute_reply"
    assert reply_a["content"]["execution_count"] == 7
    assert client.reply_to(b)["msg_type"] == "complete_reply"
    assert kernel.execution_state == "idle"


def test_output_is_parented_to_the_running_request(env: Any) -> None:
    """Raw stdout from the worker becomes stream messages of the current request."""
    kernel, prov, iopub, clock = env
    req = execute("print(1)")
    kernel.handle("shell", req, Client())
    kernel.worker_output("stdout", b"1\n")
    clock.advance(0)
    prov.workers[0].reply({"status": "ok"})
    assert iopub.of(req) == [("status", "busy"), ("stream", "1\n"), ("status", "idle")]


def test_output_before_an_event_is_published_first(env: Any) -> None:
    """Pending stream text is flushed before the reply and idle, in order."""
    kernel, prov, iopub, _ = env
    req = execute("print(1)")
    kernel.handle("shell", req, Client())
    kernel.worker_output("stdout", b"x")
    prov.workers[0].reply({"status": "ok"})
    assert iopub.of(req) == [("status", "busy"), ("stream", "x"), ("status", "idle")]


def test_error_aborts_queued_executes_but_not_other_requests(env: Any) -> None:
    """With stop_on_error, queued executes are answered 'aborted'; a queued complete runs."""
    kernel, prov, iopub, _ = env
    w, client = prov.workers[0], Client()
    first, second, comp, third = (
        execute("1/0"),
        execute("2"),
        request("complete_request", {"code": ""}),
        execute("3"),
    )
    for r in (first, second, comp, third):
        kernel.handle("shell", r, client)
    w.reply({"status": "error", "ename": "ZeroDivisionError", "evalue": "", "traceback": []})
    for r in (second, third):
        content = client.reply_to(r)["content"]
        assert content["status"] == "aborted"
        assert "execution_count" in content
        assert iopub.of(r) == [("status", "busy"), ("status", "idle")]
    assert [x["req"] for x in w.sent] == ["execute", "complete"]


def test_error_aborts_requests_still_in_flight_in_a_transport() -> None:
    """Before the error reply goes out, the kernel asks its transports for the requests
    they have read but not handed over: executes among them are aborted, others run;
    the transports hand them back, they never call the kernel meanwhile."""
    clock, prov, client = Clock(), FakeProvisioner(), Client()
    first, late, late_complete = execute("1/0"), execute("2"), request("complete_request")
    asked: list[Deferred[list[Request]]] = []

    def in_flight() -> list[Deferred[list[Request]]]:
        asked.append(Deferred())
        assert client.sent == []  # asked before the client can see the error
        return asked

    kernel = Kernel(clock, prov, requests_in_flight=in_flight)
    kernel.start()
    w = prov.workers[0]
    w.ready()
    kernel.handle("shell", first, client)
    w.reply({"status": "error", "ename": "ZeroDivisionError", "evalue": "", "traceback": []})
    assert len(asked) == 1 and client.reply_to(first)["content"]["status"] == "error"
    asked[0].callback([Request("shell", late, client), Request("shell", late_complete, client)])
    assert client.reply_to(late)["content"]["status"] == "aborted"
    assert [x["req"] for x in w.sent] == ["execute", "complete"]


def test_a_request_in_flight_after_shutdown_is_aborted() -> None:
    """Requests a transport hands back once the kernel is dead are answered 'aborted'."""
    prov, client = FakeProvisioner(), Client()
    pending: Deferred[list[Request]] = Deferred()
    kernel = Kernel(Clock(), prov, requests_in_flight=lambda: [pending])
    kernel.start()
    prov.workers[0].ready()
    first, complete = execute("1/0"), request("complete_request")
    kernel.handle("shell", first, client)
    prov.workers[0].reply({"status": "error", "ename": "E", "evalue": "", "traceback": []})
    kernel.shutdown()
    pending.callback([Request("shell", complete, client)])
    assert client.reply_to(complete)["content"]["status"] == "aborted"


def test_without_stop_on_error_queued_executes_run(env: Any) -> None:
    """stop_on_error=False on the failing request keeps the queue."""
    kernel, prov, _, _ = env
    w, client = prov.workers[0], Client()
    kernel.handle("shell", execute("1/0", stop_on_error=False), client)
    kernel.handle("shell", execute("2"), client)
    w.reply({"status": "error", "ename": "E", "evalue": "", "traceback": []})
    assert [x["content"]["code"] for x in w.sent] == ["1/0", "2"]


def test_interrupt_signals_only_running_code(env: Any) -> None:
    """interrupt_request SIGINTs the worker while a request runs and is answered ok."""
    kernel, prov, _, _ = env
    w, client = prov.workers[0], Client()
    idle_req = request("interrupt_request")
    kernel.handle("control", idle_req, client)
    assert w.signals == []
    kernel.handle("shell", execute("loop"), client)
    busy_req = request("interrupt_request")
    kernel.handle("control", busy_req, client)
    assert w.signals == [signal.SIGINT]
    assert client.reply_to(busy_req)["content"]["status"] == "ok"
    assert [ch for ch, m in client.sent if m["msg_type"] == "interrupt_reply"] == ["control"] * 2


def test_an_interrupted_request_that_keeps_running_is_nudged(env: Any) -> None:
    """While an interrupted request still runs, the worker gets NUDGE_SIGNAL at the
    INTERRUPT_NUDGES delays (a SIGINT that only tripped Python's flag before a blocking
    call takes effect once a signal breaks that call); none once the request is done."""
    kernel, prov, _, clock = env
    w, client = prov.workers[0], Client()
    kernel.handle("shell", execute("import time; time.sleep(30)"), client)
    kernel.handle("control", request("interrupt_request"), client)
    clock.advance(INTERRUPT_NUDGES[1])
    assert w.signals == [signal.SIGINT, NUDGE_SIGNAL, NUDGE_SIGNAL]
    w.reply({"status": "error", "ename": "KeyboardInterrupt", "evalue": "", "traceback": []})
    kernel.handle("shell", execute("1"), client)
    clock.advance(max(INTERRUPT_NUDGES))
    assert w.signals == [signal.SIGINT, NUDGE_SIGNAL, NUDGE_SIGNAL]


def test_input_request_goes_to_the_requesting_client(env: Any) -> None:
    """input_request is sent on stdin to the requester, parented to its execute;
    only the awaited input_reply is forwarded to the worker."""
    kernel, prov, _, _ = env
    w, client = prov.workers[0], Client()
    req = execute("input()", allow_stdin=True)
    kernel.handle("shell", req, client)
    kernel.handle("stdin", request("input_reply", {"value": "early"}), client)
    assert [r["req"] for r in w.sent] == ["execute"]
    kernel.worker_event({"ev": "input_request", "prompt": "? ", "password": True})
    ((ch, msg),) = client.sent
    assert ch == "stdin"
    assert msg["parent_header"]["msg_id"] == req["msg_id"]
    assert msg["content"] == {"prompt": "? ", "password": True}
    kernel.handle("stdin", request("input_reply", {"value": "v"}), client)
    kernel.handle("stdin", request("input_reply", {"value": "twice"}), client)
    assert w.sent[1:] == [{"req": "input_reply", "value": "v"}]


def test_input_reply_from_another_client_is_ignored(env: Any) -> None:
    """Only the client that ran the cell answers its input(): another connection with
    another Jupyter session is ignored; the asker's own reply is taken."""
    kernel, prov, _, _ = env
    w, asker, other = prov.workers[0], Client(), Client()
    req = execute("input()", allow_stdin=True)
    req["header"]["session"] = "asker-session"
    kernel.handle("shell", req, asker)
    kernel.worker_event({"ev": "input_request", "prompt": "", "password": False})
    intruder = request("input_reply", {"value": "not yours"})
    intruder["header"]["session"] = "other-session"
    kernel.handle("stdin", intruder, other)
    assert w.sent[1:] == []
    same_session = request("input_reply", {"value": "mine"})
    same_session["header"]["session"] = "asker-session"
    kernel.handle("stdin", same_session, other)  # e.g. its stdin socket, not its shell's
    assert w.sent[1:] == [{"req": "input_reply", "value": "mine"}]


def test_kernel_info_is_answered_while_code_runs(env: Any) -> None:
    """kernel_info does not queue behind a running cell and does not flip the status."""
    kernel, prov, iopub, _ = env
    client = Client()
    kernel.handle("shell", execute("long"), client)
    info = request("kernel_info_request")
    kernel.handle("shell", info, client)
    assert client.reply_to(info)["content"]["implementation"] == "ipytwist"
    assert iopub.of(info) == []
    assert kernel.execution_state == "busy"


def test_unknown_request_gets_an_error_reply(env: Any) -> None:
    """An unknown *_request is answered with status error; other unknown types are ignored."""
    kernel, _, _, _ = env
    client = Client()
    req = request("frob_request")
    kernel.handle("shell", req, client)
    kernel.handle("shell", request("frob"), client)
    (reply,) = client.replies()
    assert reply["msg_type"] == "frob_reply"
    assert reply["content"]["status"] == "error"


def test_shutdown_aborts_what_is_queued(env: Any) -> None:
    """shutdown fails the running request and aborts the queue; the worker is stopped."""
    kernel, prov, _, _ = env
    client = Client()
    running, queued = execute("a"), execute("b")
    kernel.handle("shell", running, client)
    kernel.handle("shell", queued, client)
    kernel.shutdown()
    assert client.reply_to(running)["content"]["status"] == "error"
    assert client.reply_to(queued)["content"]["status"] == "aborted"
    assert prov.workers[0].stopped
    prov.workers[0].die("exited with status 0")
    assert len(prov.workers) == 1


def test_restart_replaces_the_worker(env: Any) -> None:
    """restart() fails the running cell, stops the old worker, starts a new one (state
    'restarting' until it is ready) and ignores the old one's late exit."""
    kernel, prov, iopub, _ = env
    old, client = prov.workers[0], Client()
    running = execute("long")
    kernel.handle("shell", running, client)
    d = kernel.restart()
    assert old.stopped
    assert client.reply_to(running)["content"]["ename"] == "KernelRestarted"
    assert "restarting" in iopub.states()
    assert kernel.execution_state == "restarting"
    old.die("exited with status 0")
    assert len(prov.workers) == 2
    prov.workers[1].ready()
    assert d.called
    assert iopub.states()[-1] == "idle"


def test_a_replaced_or_stopped_worker_reaches_no_client(env: Any) -> None:
    """What an old worker writes or reports while it exits (IPython's exit handlers, a
    late reply) goes nowhere: not into the last cell, not as the new worker's reply."""
    kernel, prov, iopub, clock = env
    old, client = prov.workers[0], Client()
    first = execute("1")
    kernel.handle("shell", first, client)
    old.reply({"status": "ok"})
    kernel.restart()
    new = prov.workers[1]
    new.ready()
    running = execute("long")
    kernel.handle("shell", running, client)
    seen = len(iopub.msgs)
    old.listener.worker_output("stderr", b"Exception ignored in atexit callback\n")
    old.listener.worker_event({"ev": "reply", "content": {"status": "ok"}})
    clock.advance(1)
    assert len(iopub.msgs) == seen
    assert kernel.execution_state == "busy"
    assert running["msg_id"] not in [r["parent_header"]["msg_id"] for r in client.replies()]
    kernel.shutdown()
    prov.workers[1].listener.worker_output("stdout", b"bye\n")
    clock.advance(1)
    assert not [m for m in iopub.msgs[seen:] if m["msg_type"] == "stream"]


def test_a_clients_terminal_size_goes_to_the_worker_with_its_request(env: Any) -> None:
    """The console's terminal size (request metadata) travels with that request only."""
    kernel, prov, _, _ = env
    w, client = prov.workers[0], Client()
    sized = execute("!ls")
    sized["metadata"] = {TERMINAL_METADATA: {"columns": 120, "lines": 40, "other": 1}}
    kernel.handle("shell", sized, client)
    w.reply({"status": "ok"})
    kernel.handle("shell", execute("!ls"), client)
    assert w.sent[0]["terminal"] == {"columns": 120, "lines": 40}
    assert "terminal" not in w.sent[1]
