"""A kernel WebSocket client on asyncio (``websockets``): many of them in one event loop,
each routing the messages it receives to its requests in flight."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .frames import decode_legacy
from .messages import execute_content, is_gap_notice, make_message, parent_id
from .servers import ServerProcess

#: Shell requests the kernel queues for its worker: each is surrounded by busy/idle.
QUEUED_REQUESTS = {
    "execute_request",
    "complete_request",
    "inspect_request",
    "is_complete_request",
    "history_request",
}


async def open_ws(
    svc: ServerProcess, kernel_id: str, session_id: str, timeout: float = 15.0
) -> ClientConnection:
    """A kernel WebSocket (legacy JSON frames) with the server's token."""
    return await asyncio.wait_for(
        connect(
            svc.ws_url(kernel_id, session_id=session_id),
            additional_headers=svc.headers(),
            compression=None,
            max_size=None,
            proxy=None,
            ping_interval=None,
            open_timeout=timeout,
            close_timeout=2,
        ),
        timeout,
    )


class Pending:
    """A request on its way: the messages parented to it, its reply, its idle."""

    def __init__(self, msg_id: str, msg_type: str, keep: bool = True) -> None:
        self.msg_id = msg_id
        self.msg_type = msg_type
        self.keep = keep
        self.msgs: list[dict[str, Any]] = []
        self.count = 0
        self.reply: dict[str, Any] | None = None
        self.idle = False
        self.needs_idle = msg_type in QUEUED_REQUESTS
        self.done = asyncio.Event()
        self.running = asyncio.Event()  # execute_input seen: its code runs
        self.output = asyncio.Event()  # a stream message seen
        self.timed_out = False
        self.sent_at = time.monotonic()

    def add(self, msg: dict[str, Any]) -> None:
        self.count += 1
        if self.keep:
            self.msgs.append(msg)
        msg_type = msg["msg_type"]
        if msg.get("channel") in ("shell", "control") and msg_type.endswith("_reply"):
            self.reply = msg
        elif msg_type == "status" and msg["content"].get("execution_state") == "idle":
            self.idle = True
        elif msg_type == "execute_input":
            self.running.set()
        elif msg_type == "stream":
            self.output.set()
        if self.reply is not None and (self.idle or not self.needs_idle):
            self.done.set()

    def of_type(self, msg_type: str) -> list[dict[str, Any]]:
        return [m for m in self.msgs if m["msg_type"] == msg_type]

    def stdout(self) -> str:
        return "".join(
            m["content"]["text"]
            for m in self.msgs
            if m["msg_type"] == "stream" and m["content"].get("name") == "stdout"
        )


class AsyncKernelClient:
    """A kernel WebSocket client on asyncio that routes messages to its pending requests.

    It parses only frames that mention one of its pending msg_ids (iopub is shared by
    every client of a kernel), and counts gap notices ("output dropped")."""

    def __init__(self, svc: ServerProcess, kernel_id: str, session_id: str | None = None) -> None:
        self.svc = svc
        self.kernel_id = kernel_id
        self.session_id = session_id or uuid.uuid4().hex
        self.ws: ClientConnection | None = None
        self.pending: dict[str, Pending] = {}
        self.frames = 0
        self.gaps = 0
        self.closed: str | None = None  # why the connection ended, if it did
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> AsyncKernelClient:
        self.ws = await open_ws(self.svc, self.kernel_id, self.session_id)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                self.frames += 1
                if isinstance(raw, str):
                    if (
                        "[ipytwist]" in raw
                        and "dropped" in raw
                        and is_gap_notice(decode_legacy(raw))
                    ):
                        self.gaps += 1
                    if len(self.pending) < 8 and not any(mid in raw for mid in self.pending):
                        continue  # not ours: no need to parse it
                msg = decode_legacy(raw)
                pending = self.pending.get(parent_id(msg) or "")
                if pending is not None:
                    pending.add(msg)
            self.closed = "closed by the server"
        except ConnectionClosed as e:
            self.closed = f"connection closed ({e})"
        except asyncio.CancelledError:
            self.closed = "closed by the client"
            raise
        except Exception as e:
            self.closed = f"{type(e).__name__}: {e}"
        finally:
            for p in self.pending.values():
                p.done.set()

    async def start(
        self, channel: str, msg_type: str, content: dict[str, Any], keep: bool = True
    ) -> Pending:
        assert self.ws is not None
        msg = make_message(msg_type, content, self.session_id)
        pending = Pending(msg["header"]["msg_id"], msg_type, keep)
        self.pending[pending.msg_id] = pending
        await self.ws.send(json.dumps({**msg, "channel": channel}))
        return pending

    async def finish(self, pending: Pending, timeout: float) -> Pending:
        try:
            await asyncio.wait_for(pending.done.wait(), timeout)
        except TimeoutError:
            pending.timed_out = True
        finally:
            self.pending.pop(pending.msg_id, None)
        return pending

    async def request(
        self, channel: str, msg_type: str, content: dict[str, Any], timeout: float = 30.0
    ) -> Pending:
        return await self.finish(await self.start(channel, msg_type, content), timeout)

    async def execute(self, code: str, timeout: float = 30.0, **extra: Any) -> Pending:
        content = execute_content(code, **extra)
        return await self.request("shell", "execute_request", content, timeout)

    async def close(self) -> None:
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 5)
            except (TimeoutError, ConnectionClosed, OSError):
                self.ws.transport.abort()
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass


async def connections(svc: ServerProcess, kernel_id: str) -> int:
    """``connections`` of GET /api/kernels/{id} (the request runs off the event loop)."""
    r = await asyncio.to_thread(svc.api, "GET", f"/api/kernels/{kernel_id}")
    assert r.status_code == 200, (r.status_code, r.text)
    return int(r.json()["connections"])


async def asettle(check: Callable[[], Awaitable[bool]], timeout: float, step: float = 0.1) -> bool:
    """Await ``check`` until it is true or ``timeout`` passes; whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
