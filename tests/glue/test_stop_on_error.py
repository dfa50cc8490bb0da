"""stop_on_error across transports, in process: requests a client sent before it could
see the error are aborted, whichever transport they are in flight on; the transports
hand them back to the kernel instead of calling it while it finishes the request."""

from __future__ import annotations

from typing import Any

import pytest
from glue_fakes import Browser, HostEnv, make_site_env
from support.fakes import Requester
from test_websocket_inprocess import Socket, request

from ipytwist.kernel import Request

ERROR = {"status": "error", "ename": "ZeroDivisionError", "evalue": "", "traceback": []}


@pytest.fixture
def web(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[HostEnv, Browser]:
    env, _, site = make_site_env(tmp_path, monkeypatch)
    return env, Browser(site)


def replies(ws: Socket) -> dict[str, dict[str, Any]]:
    """The socket's replies, by the msg_id of the request they answer."""
    return {
        m["parent_header"]["msg_id"]: m
        for m in ws.messages()
        if m["channel"] == "shell" and m["msg_type"].endswith("_reply")
    }


def test_an_execute_read_from_a_websocket_before_the_reply_leaves_is_aborted(
    web: tuple[HostEnv, Browser],
) -> None:
    """The error reply leaves on the reactor's next pass over the sockets, so whatever a
    WebSocket reads until that pass is done was sent before its client saw it."""
    env, browser = web
    hk = env.start_kernel()
    worker = env.provisioner.workers[0]
    ws = Socket(browser, f"/api/kernels/{hk.id}/channels?session_id=s1")
    failing = request("execute_request", content={"code": "1/0"})
    ws.send(failing)
    worker.reply(ERROR)  # the error reply is written now; the socket reads on
    in_flight = request("execute_request", content={"code": "2"})
    complete = request("complete_request", content={"code": "pr", "cursor_pos": 2})
    ws.send(in_flight)
    ws.send(complete)
    assert [r["req"] for r in worker.sent] == ["execute"]  # held from the kernel
    env.clock.advance(0)  # the pass is done: the transport hands them over
    got = replies(ws)
    assert got[failing["msg_id"]]["content"]["status"] == "error"
    assert got[in_flight["msg_id"]]["content"]["status"] == "aborted"
    assert [r["req"] for r in worker.sent] == ["execute", "complete"]  # others run
    worker.reply({"status": "ok", "matches": []})
    later = request("execute_request", content={"code": "3"})
    ws.send(later)  # sent once the client could see the error: it runs
    assert worker.sent[-1] == {
        "req": "execute",
        "content": {"code": "3"},
        "header": later["header"],
        "sigints": 0,
    }
    cell = hk.transcript.cells[in_flight["msg_id"]]
    assert cell.state == "aborted"


def test_executes_waiting_in_the_zeromq_socket_are_aborted_at_once(
    web: tuple[HostEnv, Browser],
) -> None:
    """ZeroMQ holds requests in its socket: they are read and handed back before the
    error reply goes out, and aborted with the queued ones."""
    env, _ = web
    hk = env.start_kernel()
    worker = env.provisioner.workers[0]
    client = Requester()
    failing = request("execute_request", content={"code": "1/0"})
    waiting = request("execute_request", content={"code": "2"})
    hk.attachments["zmq"].channels.in_flight = [Request("shell", waiting, client)]
    hk.kernel.handle("shell", failing, client)
    worker.reply(ERROR)
    assert client.reply_to(waiting)["content"]["status"] == "aborted"
    assert [r["req"] for r in worker.sent] == ["execute"]


def test_the_hold_ends_at_the_reactors_next_timed_calls(web: tuple[HostEnv, Browser]) -> None:
    """The hold lasts until the reactor next runs its timed calls, not one turn more: an
    error reply written from a timed call (a worker's death can be) leaves in the same
    pass over the sockets, and a fast client's next request may be read in the next."""
    env, browser = web
    hk = env.start_kernel()
    worker = env.provisioner.workers[0]
    ws = Socket(browser, f"/api/kernels/{hk.id}/channels?session_id=s1")
    ws.send(request("execute_request", content={"code": "1/0"}))
    worker.reply(ERROR)
    in_flight = request("execute_request", content={"code": "2"})
    ws.send(in_flight)
    now = env.clock.seconds()
    for call in [c for c in env.clock.getDelayedCalls() if c.getTime() <= now]:
        func, args, kw = call.func, call.args, call.kw
        call.cancel()  # run once by hand: what it schedules is not run
        func(*args, **kw)
    assert replies(ws)[in_flight["msg_id"]]["content"]["status"] == "aborted"
