"""The kernel WebSocket in process: the upgrade goes through the real site (auth, origin,
routing) on a ``StringTransport``, then the test speaks WebSocket frames to the
protocol autobahn put on that transport (legacy JSON frames)."""

from __future__ import annotations

import base64
import json
import os
import struct
from typing import Any

import pytest
from benchlib.frames import client_frame
from glue_fakes import Browser, HostEnv, make_site_env, parse_response
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from ipytwist.wire import new_message


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each complete unmasked server frame in ``data``."""
    frames = []
    pos = 0
    while len(data) - pos >= 2:
        opcode, n = data[pos] & 0x0F, data[pos + 1] & 0x7F
        pos += 2
        if n == 126:
            (n,) = struct.unpack_from("!H", data, pos)
            pos += 2
        elif n == 127:
            (n,) = struct.unpack_from("!Q", data, pos)
            pos += 8
        if len(data) - pos < n:
            break
        frames.append((opcode, data[pos : pos + n]))
        pos += n
    return frames


class Socket:
    """One client WebSocket on the site, in memory."""

    def __init__(self, browser: Browser, path: str, headers: dict[str, str] | None = None):
        key = base64.b64encode(os.urandom(16)).decode()
        upgrade = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
        }
        _, self.transport = browser.send("GET", path, headers={**upgrade, **(headers or {})})
        raw = self.transport.value()
        self.response = parse_response(raw)
        self.head_len = raw.find(b"\r\n\r\n") + 4

    @property
    def protocol(self) -> Any:
        return self.transport.protocol

    def send(self, msg: dict[str, Any]) -> None:
        self.protocol.dataReceived(client_frame(json.dumps(msg).encode()))

    def messages(self) -> list[dict[str, Any]]:
        frames = server_frames(self.transport.value()[self.head_len :])
        return [json.loads(p) for op, p in frames if op == 1]

    def close(self) -> None:
        self.protocol.dataReceived(client_frame(struct.pack("!H", 1000), opcode=8))
        self.protocol.connectionLost(Failure(ConnectionDone()))


@pytest.fixture
def web(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[HostEnv, Browser]:
    env, _, site = make_site_env(tmp_path, monkeypatch)
    return env, Browser(site)


def request(msg_type: str, channel: str = "shell", content: Any = None) -> dict[str, Any]:
    msg = new_message(msg_type, content or {}, "client-session")
    msg["channel"] = channel
    return msg


def test_the_upgrade_goes_through_auth_and_counts_the_connection(
    web: tuple[HostEnv, Browser],
) -> None:
    env, browser = web
    hk = env.start_kernel()
    ws = Socket(browser, f"/api/kernels/{hk.id}/channels?session_id=s1")
    assert ws.response is not None and ws.response.code == 101, ws.transport.value()[:300]
    assert hk.connections() == 1
    model = browser.request("GET", f"/api/kernels/{hk.id}").json()
    assert model["connections"] == 1
    assert browser.request("GET", "/api/status").json()["connections"] == 1
    ws.close()
    assert hk.connections() == 0


def test_kernel_info_over_the_socket(web: tuple[HostEnv, Browser]) -> None:
    """A request from the socket reaches the kernel; the reply comes back on the same
    socket, framed between busy and idle on iopub."""
    env, browser = web
    hk = env.start_kernel()
    ws = Socket(browser, f"/api/kernels/{hk.id}/channels?session_id=s1")
    req = request("kernel_info_request")
    ws.send(req)
    mine = [
        (m["channel"], m["msg_type"], m["content"].get("execution_state"))
        for m in ws.messages()
        if m["parent_header"].get("msg_id") == req["header"]["msg_id"]
    ]
    assert mine == [
        ("iopub", "status", "busy"),
        ("shell", "kernel_info_reply", None),
        ("iopub", "status", "idle"),
    ]
    (reply,) = [m for m in ws.messages() if m["msg_type"] == "kernel_info_reply"]
    assert reply["content"]["status"] == "ok"
    assert reply["content"]["language_info"]["name"] == "python"


def test_an_execute_goes_to_the_worker_and_its_reply_to_the_asking_session_only(
    web: tuple[HostEnv, Browser],
) -> None:
    env, browser = web
    hk = env.start_kernel()
    asking = Socket(browser, f"/api/kernels/{hk.id}/channels?session_id=a")
    other = Socket(browser, f"/api/kernels/{hk.id}/channels?session_id=b")
    req = request("execute_request", content={"code": "6*7", "silent": False})
    asking.send(req)
    worker = env.provisioner.workers[0]
    assert worker.sent[-1] == {
        "req": "execute",
        "content": req["content"],
        "header": req["header"],
        "sigints": 0,
    }
    worker.reply({"status": "ok", "user_expressions": {}})
    for ws in (asking, other):
        states = [
            m["content"]["execution_state"]
            for m in ws.messages()
            if m["msg_type"] == "status" and m["parent_header"].get("msg_id") == req["msg_id"]
        ]
        assert states == ["busy", "idle"]
    assert [m["msg_type"] for m in asking.messages() if m["channel"] == "shell"] == [
        "execute_reply"
    ]
    assert [m for m in other.messages() if m["channel"] == "shell"] == []


def test_a_session_that_reconnects_gets_what_it_missed(web: tuple[HostEnv, Browser]) -> None:
    env, browser = web
    hk = env.start_kernel()
    path = f"/api/kernels/{hk.id}/channels?session_id=again"
    first = Socket(browser, path)
    first.close()
    req = request("kernel_info_request")
    helper = Socket(browser, f"/api/kernels/{hk.id}/channels?session_id=helper")
    helper.send(req)  # iopub published while "again" is away
    back = Socket(browser, path)
    assert [
        m["content"]["execution_state"]
        for m in back.messages()
        if m["parent_header"].get("msg_id") == req["msg_id"]
    ] == ["busy", "idle"]


def test_a_malformed_frame_is_dropped_and_the_socket_stays(web: tuple[HostEnv, Browser]) -> None:
    env, browser = web
    hk = env.start_kernel()
    ws = Socket(browser, f"/api/kernels/{hk.id}/channels?session_id=s1")
    ws.protocol.dataReceived(client_frame(b"{not json"))
    ws.protocol.dataReceived(client_frame(b"[" * 10_000))
    assert hk.connections() == 1
    req = request("kernel_info_request")
    ws.send(req)
    assert any(m["msg_type"] == "kernel_info_reply" for m in ws.messages())


def test_a_foreign_origin_gets_no_upgrade(web: tuple[HostEnv, Browser]) -> None:
    env, browser = web
    hk = env.start_kernel()
    ws = Socket(
        browser,
        f"/api/kernels/{hk.id}/channels?session_id=s1",
        headers={"Origin": "http://evil.example"},
    )
    assert ws.response is not None and ws.response.code == 403
    assert hk.connections() == 0
    assert isinstance(ws.transport, StringTransport)
