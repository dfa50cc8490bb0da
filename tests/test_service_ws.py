"""Kernel WebSockets of the real service: fan-out, auth, replay, crashes.  (The v1
subprotocol, malformed messages and the transcript: test_service_ws_messages.py.)"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
import requests
import websocket
from benchlib.messages import ids, iopub_of, parent_id, stream_text
from benchlib.servers import WARM_POOL, Service
from benchlib.wsclient import WSClient, WSClosed
from support.service import service_fixture

LOOP = "import time\nfor i in range(20):\n    print(i, flush=True)\n    time.sleep(0.1)\n"
LOOP_TEXT = "".join(f"{i}\n" for i in range(20))

#: A fresh kernel per test (``kernel_id``): replay and crash tests must not see each
#: other's output.
svc = service_fixture("ws", "--allow-origin", "https://*.example.org", *WARM_POOL, shared=True)


def refused(svc: Service, kernel_id: str, **kw: Any) -> int:
    """The HTTP status with which the WebSocket handshake was refused."""
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        WSClient.connect(svc, kernel_id, **kw).close()
    return info.value.status_code


# -- fan-out ------------------------------------------------------------------


def test_two_clients_share_iopub_only_requester_gets_reply(
    svc: Service, kernel_id: str, clients: list[WSClient]
) -> None:
    """Two WebSocket clients with different session_ids on one kernel both receive the same
    iopub messages (same msg_ids, same order) for a request, and only the client that sent
    it receives the execute_reply."""
    a = WSClient.connect(svc, kernel_id, "session-a")
    b = WSClient.connect(svc, kernel_id, "session-b")
    clients += [a, b]
    reply, got_a = a.execute("print('hello')\n6 * 7")
    assert reply["content"]["status"] == "ok"
    assert reply["channel"] == "shell"
    msg_id = parent_id(reply)
    got_b = b.until_idle(msg_id)

    io_a, io_b = iopub_of(got_a, msg_id), iopub_of(got_b, msg_id)
    assert ids(io_a) == ids(io_b)
    types = [m["msg_type"] for m in io_a]
    assert types[0] == "status" and types[-1] == "status"
    assert "execute_input" in types and "execute_result" in types
    assert stream_text(io_b) == "hello\n"
    result = next(m for m in io_b if m["msg_type"] == "execute_result")
    assert result["content"]["data"]["text/plain"] == "42"

    b.kernel_info()  # everything sent to b before this reply has arrived
    assert [m for m in b.received if m["msg_type"] == "execute_reply"] == []
    assert len([m for m in a.received if m["msg_type"] == "execute_reply"]) == 1

    # And the other way round.
    reply_b, got_b2 = b.execute("print('from b')")
    got_a2 = a.until_idle(parent_id(reply_b))
    assert ids(iopub_of(got_a2, parent_id(reply_b))) == ids(iopub_of(got_b2, parent_id(reply_b)))
    a.kernel_info()
    assert len([m for m in a.received if m["msg_type"] == "execute_reply"]) == 1


def test_delete_closes_open_websockets(svc: Service, clients: list[WSClient]) -> None:
    """DELETE /api/kernels/{id} with a WebSocket open answers 204, closes the WebSocket
    cleanly (code 1000) and removes the connection file."""
    kid = svc.start_kernel()
    ws = WSClient.connect(svc, kid)
    clients.append(ws)
    ws.kernel_info()
    assert svc.api("GET", f"/api/kernels/{kid}").json()["connections"] == 1
    r = svc.api("DELETE", f"/api/kernels/{kid}")
    assert r.status_code == 204, r.text
    with pytest.raises(WSClosed) as info:
        ws.until(lambda m: False, timeout=10)
    assert info.value.code == 1000
    assert not os.path.exists(svc.connection_file(kid))
    assert refused(svc, kid) == 404


# -- auth -----------------------------------------------------------------------


def test_websocket_auth_and_origin(svc: Service, kernel_id: str, clients: list[WSClient]) -> None:
    """A WebSocket without a token, or with a wrong one (header or ?token=), is refused 401;
    one from a foreign Origin is refused 403; the same Origin, an Origin matching
    --allow-origin, no Origin (non-browser client) and ?token= are accepted; an unknown
    kernel is 404."""
    assert refused(svc, kernel_id, auth="none") == 401
    assert refused(svc, kernel_id, token="wrong") == 401
    assert refused(svc, kernel_id, auth="param", token="wrong") == 401
    assert refused(svc, kernel_id, origin="http://evil.example.com") == 403
    assert refused(svc, kernel_id, origin="https://example.org.evil.com") == 403
    assert refused(svc, kernel_id, origin="null") == 403
    assert refused(svc, str(uuid.uuid4())) == 404

    for kw in (
        {"origin": svc.origin},
        {"origin": "https://notebooks.example.org"},
        {},
        {"auth": "param"},
    ):
        ws = WSClient.connect(svc, kernel_id, **kw)
        clients.append(ws)
        assert ws.kernel_info()["content"]["status"] == "ok"


def test_websocket_with_login_cookie(svc: Service, kernel_id: str, clients: list[WSClient]) -> None:
    """A browser logged in with the cookie opens a WebSocket from the same Origin, but
    not from a foreign one."""
    r = requests.get(f"{svc.url}/?token={svc.token}", allow_redirects=False, timeout=10)
    cookie = f"ipytwist-login={r.cookies['ipytwist-login']}"
    url = svc.ws_url(kernel_id, session_id="cookie")
    ws = websocket.create_connection(url, cookie=cookie, origin=svc.origin, timeout=10)
    client = WSClient(ws, "cookie", False)
    clients.append(client)
    assert client.kernel_info()["content"]["status"] == "ok"
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(url, cookie=cookie, origin="http://evil.test", timeout=10)
    assert info.value.status_code == 403


# -- replay -----------------------------------------------------------------------


def test_reconnect_replays_missed_output_once(
    svc: Service, kernel_id: str, clients: list[WSClient]
) -> None:
    """Client A disconnects while its cell prints 20 lines over ~2 s and client B stays
    connected.  When A reconnects with the same session_id it receives the messages it
    missed, once and in order, without repeating what it already had, then the live ones and
    its execute_reply; B sees every message once.  A new client with ?since_msg_id= receives
    exactly the messages after that one."""
    b = WSClient.connect(svc, kernel_id, "B")
    a1 = WSClient.connect(svc, kernel_id, "A")
    clients += [a1, b]
    msg_id = a1.execute_request(LOOP)
    a1.until(lambda m: "2\n" in stream_text(iopub_of(a1.received, msg_id)))
    a1.close_draining()
    first_part = iopub_of(a1.received, msg_id)
    assert not [m for m in first_part if m["msg_type"] == "execute_reply"]
    # While A is away the cell goes on (B watches it).
    b.until(lambda m: "8\n" in stream_text(iopub_of(b.received, msg_id)))

    a2 = WSClient.connect(svc, kernel_id, "A")
    clients.append(a2)
    a2.until_idle(msg_id)
    b.until_idle(msg_id)
    second_part = iopub_of(a2.received, msg_id)
    assert second_part, "nothing replayed"
    seen_by_a = ids(first_part) + ids(second_part)
    seen_by_b = ids(iopub_of(b.received, msg_id))
    assert len(set(seen_by_b)) == len(seen_by_b)
    assert seen_by_a == seen_by_b
    assert stream_text(first_part) + stream_text(second_part) == LOOP_TEXT
    assert stream_text(iopub_of(b.received, msg_id)) == LOOP_TEXT
    assert "dropped" not in stream_text(a2.received)  # no dropped-output notice
    a2.kernel_info()
    replies = [m for m in a1.received + a2.received if m["msg_type"] == "execute_reply"]
    assert len(replies) == 1 and parent_id(replies[0]) == msg_id
    assert replies[0]["content"]["status"] == "ok"
    b.kernel_info()
    assert not [m for m in b.received if m["msg_type"] == "execute_reply"]

    # Explicit replay for a new session.
    since = seen_by_b[5]
    c = WSClient.connect(svc, kernel_id, "C", since_msg_id=since)
    clients.append(c)
    c.until_idle(msg_id)
    assert ids(iopub_of(c.received, msg_id)) == seen_by_b[6:]
    assert not [m for m in c.received if m["msg_type"] == "execute_reply"]


def test_reply_sent_while_away_is_delivered_on_reconnect(
    svc: Service, kernel_id: str, clients: list[WSClient]
) -> None:
    """If a request finishes while its client is disconnected, the client reconnecting with
    the same session_id receives the missed output and the execute_reply, placed where it
    was sent (after the output, before the idle status)."""
    b = WSClient.connect(svc, kernel_id, "watcher")
    a1 = WSClient.connect(svc, kernel_id, "away")
    clients += [a1, b]
    msg_id = a1.execute_request("import time\nprint('a', flush=True)\ntime.sleep(0.3)\nprint('b')")
    a1.until(lambda m: stream_text(iopub_of([m], msg_id)) == "a\n")
    a1.close_draining()
    b.until_idle(msg_id)  # the request is finished while A is away

    a2 = WSClient.connect(svc, kernel_id, "away")
    clients.append(a2)
    a2.until_idle(msg_id)
    everything = [m for m in a1.received + a2.received if parent_id(m) == msg_id]
    assert stream_text(everything) == "a\nb\n"
    assert ids(iopub_of(everything, msg_id)) == ids(iopub_of(b.received, msg_id))
    types = [m["msg_type"] for m in everything]
    assert types.count("execute_reply") == 1
    assert types.index("execute_reply") == len(types) - 2  # just before the idle status
    assert everything[-1]["content"]["execution_state"] == "idle"


def test_reconnect_while_old_connection_open_replaces_it(
    svc: Service, kernel_id: str, clients: list[WSClient]
) -> None:
    """A second connection with a session_id still connected takes over: the old one is
    closed with code 4000 and the new one receives the session's replies."""
    old = WSClient.connect(svc, kernel_id, "same")
    clients.append(old)
    old.kernel_info()
    new = WSClient.connect(svc, kernel_id, "same")
    clients.append(new)
    with pytest.raises(WSClosed) as info:
        old.until(lambda m: False, timeout=10)
    assert info.value.code == 4000
    reply, _ = new.execute("1 + 1")
    assert reply["content"]["status"] == "ok"


# -- crashes ------------------------------------------------------------------------


def test_worker_death_is_reported_and_kernel_restarts(
    svc: Service, kernel_id: str, clients: list[WSClient]
) -> None:
    """``os._exit(1)`` in a cell kills the interpreter: the execute_reply is an error naming
    the dead worker, clients see ``restarting``, and the next cell runs in a new
    interpreter."""
    ws = WSClient.connect(svc, kernel_id)
    clients.append(ws)
    reply, msgs = ws.execute("import os; print(os.getpid())")
    pid = int(stream_text(msgs))
    reply, msgs = ws.execute("import os; os._exit(1)")
    content = reply["content"]
    assert content["status"] == "error"
    assert content["ename"] == "WorkerDied"
    assert str(pid) in content["evalue"] and "exited with status 1" in content["evalue"]
    states = [m["content"]["execution_state"] for m in msgs if m["msg_type"] == "status"]
    assert "restarting" in states
    errors = [m for m in msgs if m["msg_type"] == "error"]
    assert errors and errors[0]["content"]["ename"] == "WorkerDied"

    reply, msgs = ws.execute("import os; print(os.getpid())")
    assert reply["content"]["status"] == "ok"
    assert int(stream_text(msgs)) != pid
    model = svc.api("GET", f"/api/kernels/{kernel_id}").json()
    assert model["execution_state"] == "idle"
