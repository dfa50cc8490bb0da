"""A blocking kernel WebSocket client (``websocket-client``), legacy JSON or the v1
subprotocol, that records every message it receives."""

from __future__ import annotations

import json
import struct
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import websocket

from .frames import pack_v1, unpack_legacy_binary, unpack_v1
from .messages import execute_content, is_idle_of, is_reply_to, make_message
from .servers import ServerProcess

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"


class WSClosed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"WebSocket closed ({code}): {reason}")
        self.code = code
        self.reason = reason


class WSClient:
    """A kernel WebSocket client that records every message it receives."""

    def __init__(self, ws: websocket.WebSocket, session_id: str, v1: bool) -> None:
        self.ws = ws
        self.session_id = session_id
        self.v1 = v1
        self.received: list[dict[str, Any]] = []

    @classmethod
    def connect(
        cls,
        svc: ServerProcess,
        kernel_id: str,
        session_id: str | None = None,
        *,
        since_msg_id: str | None = None,
        auth: str = "header",
        token: str | None = None,
        origin: str | None = None,
        v1: bool = False,
        timeout: float = 10.0,
        **options: Any,
    ) -> WSClient:
        """``options`` go to ``websocket.create_connection`` (``sockopt=``, ...).  The
        UTF-8 of text frames and close reasons is checked by :meth:`decode` and
        :meth:`recv` with Python's codec, not by websocket-client's validator in pure
        Python (a fifth of the CPU of a widget flood's three readers)."""
        session_id = session_id or uuid.uuid4().hex
        token = svc.token if token is None else token
        params: dict[str, Any] = {"session_id": session_id, "since_msg_id": since_msg_id}
        headers = []
        if auth == "header":
            headers.append(f"Authorization: token {token}")
        elif auth == "param":
            params["token"] = token
        kw: dict[str, Any] = {"header": headers, "timeout": timeout}
        kw["skip_utf8_validation"] = True  # checked in decode(), strictly and in C
        kw.update(options)
        if origin is None:
            kw["suppress_origin"] = True
        else:
            kw["origin"] = origin
        if v1:
            kw["subprotocols"] = [V1_PROTOCOL]
        ws = websocket.create_connection(svc.ws_url(kernel_id, **params), **kw)
        return cls(ws, session_id, v1)

    @property
    def subprotocol(self) -> str | None:
        return self.ws.getsubprotocol()

    # -- sending --------------------------------------------------------------

    def send(self, channel: str, msg_type: str, content: dict[str, Any]) -> str:
        msg = make_message(msg_type, content, self.session_id)
        if self.v1:
            self.ws.send_binary(pack_v1(msg, channel))
        else:
            self.ws.send(json.dumps({**msg, "channel": channel}))
        return msg["header"]["msg_id"]

    def execute_request(self, code: str, **extra: Any) -> str:
        return self.send("shell", "execute_request", execute_content(code, **extra))

    # -- receiving ------------------------------------------------------------

    def decode(self, opcode: int, data: bytes) -> dict[str, Any]:
        if opcode == websocket.ABNF.OPCODE_TEXT:
            msg = json.loads(data.decode("utf-8"))  # strict: invalid UTF-8 raises
        elif self.v1:
            msg = unpack_v1(data)
        else:
            msg = unpack_legacy_binary(data)
        msg.setdefault("msg_type", msg["header"]["msg_type"])
        return msg

    def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        self.ws.settimeout(timeout)
        opcode, frame = self.ws.recv_data_frame(False)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            data = frame.data or b""
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
            raise WSClosed(code, data[2:].decode("utf-8"))  # strict, as for text
        msg = self.decode(opcode, frame.data)
        self.received.append(msg)
        return msg

    def until(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """Messages received up to and including the first one matching ``pred``."""
        deadline = time.monotonic() + timeout
        got: list[dict[str, Any]] = []
        while True:
            left = max(0.01, deadline - time.monotonic())
            try:
                msg = self.recv(left)
            except websocket.WebSocketTimeoutException:
                raise AssertionError(
                    f"timed out after {timeout}s; got {[m['msg_type'] for m in got]}"
                ) from None
            got.append(msg)
            if pred(msg):
                return got

    def until_idle(self, msg_id: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        return self.until(lambda m: is_idle_of(m, msg_id), timeout)

    def execute(
        self, code: str, timeout: float = 30.0
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Run ``code``; return its execute_reply and the messages up to its idle."""
        msg_id = self.execute_request(code)
        return self.finish(msg_id, timeout)

    def finish(
        self, msg_id: str, timeout: float = 30.0
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The execute_reply to ``msg_id`` and the messages up to its idle (and to the
        reply, if that comes after the idle)."""
        got = self.until_idle(msg_id, timeout)
        replies = [m for m in got if is_reply_to(m, msg_id)]
        if not replies:
            got += self.until(lambda m: is_reply_to(m, msg_id), timeout)
            replies = [m for m in got if m["msg_type"] == "execute_reply"]
        return replies[0], got

    def kernel_info(self, within: float = 60.0) -> dict[str, Any]:
        """Send kernel_info_request until one is answered, as JupyterLab does (a kernel
        behind a gateway may take the first ones before it is ready)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            asked = self.send("shell", "kernel_info_request", {})
            wait = max(0.01, min(2.0, deadline - time.monotonic()))
            try:
                got = self.until(
                    partial(is_reply_to, msg_id=asked, msg_type="kernel_info_reply"), wait
                )
            except AssertionError:
                continue
            return got[-1]
        raise AssertionError(f"kernel_info_request not answered within {within}s")

    def close_draining(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Close handshake that keeps the messages sent before the server's close frame."""
        self.ws.send_close()
        got = []
        self.ws.settimeout(timeout)
        try:
            while True:
                frame = self.ws.recv_frame()
                if frame.opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                    msg = self.decode(frame.opcode, frame.data)
                    self.received.append(msg)
                    got.append(msg)
                elif frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            pass
        self.ws.shutdown()
        return got

    def close(self) -> None:
        try:
            self.ws.close(timeout=2)
        except Exception:
            self.ws.shutdown()
