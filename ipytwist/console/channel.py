"""The kernel's WebSocket for the console: one session, replies awaited, reconnection.

A dropped connection is reopened with the same ``session_id`` and the last
iopub ``msg_id`` seen, so the service replays what was missed (and says
exactly what, if its log no longer holds it); replies owed to the session wait
for it on the service.  Built on autobahn's asyncio client, as prompt_toolkit
runs on asyncio.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

from autobahn.asyncio.websocket import WebSocketClientFactory, WebSocketClientProtocol

from ..wire import new_message
from .server import ConsoleError, Server

__all__ = ["KernelChannel"]

#: Waits between reconnection attempts; the console gives up after GIVE_UP seconds
#: (``--reconnect-timeout``).
BACKOFF = (0.1, 0.25, 0.5, 1.0, 2.0)
GIVE_UP = 30.0
PING_INTERVAL = 10.0


class _Factory(WebSocketClientFactory):
    """Autobahn's client factory, carrying the channel its connection reports to."""

    channel: KernelChannel


class _Protocol(WebSocketClientProtocol):
    factory: _Factory

    def onOpen(self) -> None:
        self.factory.channel._opened(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if not isBinary:
            self.factory.channel._received(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.channel._closed(self, code, reason)


class KernelChannel:
    """Send requests on the kernel's channels; every message received goes to ``on_message``."""

    def __init__(
        self,
        server: Server,
        kernel_id: str,
        on_message: Callable[[dict[str, Any]], None],
        on_state: Callable[[str], None] = lambda state: None,
    ) -> None:
        self.server = server
        self.kernel_id = kernel_id
        self.session = uuid.uuid4().hex
        self.on_message = on_message
        self.on_state = on_state
        self.last_seen = ""  # msg_id of the last iopub message: where a reconnection resumes
        self._proto: _Protocol | None = None
        self._open: asyncio.Future[bool] | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._unsent: list[bytes] = []
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.failure: ConsoleError | None = None
        self.lost = asyncio.Event()  # set when the channel has given up for good
        self.give_up_after = GIVE_UP
        self._reconnecting = False

    # -- connecting ------------------------------------------------------------------------

    async def connect(self) -> None:
        """The first connection: a failure is a ConsoleError."""
        if not await self._connect_once():
            raise ConsoleError(f"cannot open the kernel's WebSocket at {self.server.url}")

    async def _connect_once(self) -> bool:
        loop = asyncio.get_running_loop()
        params = {"session_id": self.session}
        if self.last_seen:
            params["since_msg_id"] = self.last_seen
        url = f"{self.server.ws_url(self.kernel_id)}?{urllib.parse.urlencode(params)}"
        factory = _Factory(url, headers={"Authorization": f"token {self.server.token}"})
        factory.setProtocolOptions(
            autoPingInterval=PING_INTERVAL, autoPingTimeout=PING_INTERVAL, openHandshakeTimeout=10
        )
        factory.protocol = _Protocol
        factory.channel = self
        parts = urllib.parse.urlsplit(self.server.url)
        if parts.hostname is None:  # (normalise_url makes sure there is one)
            return False
        ctx = self.server.ssl_context()
        port = parts.port or (443 if ctx else 80)
        self._open = loop.create_future()
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    factory,
                    parts.hostname,
                    port,
                    ssl=ctx,
                    server_hostname=parts.hostname if ctx else None,
                ),
                10,
            )
        except (TimeoutError, OSError):
            return False
        try:
            return await asyncio.wait_for(self._open, 15)
        except TimeoutError:
            return False

    def _opened(self, proto: _Protocol) -> None:
        self._proto = proto
        for frame in self._unsent:
            proto.sendMessage(frame)
        self._unsent.clear()
        if self._reconnecting:
            self._reconnecting = False
            self.on_state("reconnected")  # before what is replayed
        if self._open and not self._open.done():
            self._open.set_result(True)

    def _closed(self, proto: _Protocol, code: int | None, reason: str | None) -> None:
        if self._open and not self._open.done():
            self._open.set_result(False)
        if self._proto is not proto:
            return
        self._proto = None
        if self._closing:
            return
        if code == 4000:
            self._give_up(ConsoleError("another console took over this session"))
            return
        self._reconnecting = True
        self.on_state("reconnecting")
        self._task = asyncio.ensure_future(self._reconnect())

    async def _reconnect(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.give_up_after
        attempt = 0
        while not self._closing and loop.time() < deadline:
            await asyncio.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
            attempt += 1
            if await self._connect_once():
                return
            try:  # is the kernel (or the token) gone, rather than the network?
                await asyncio.to_thread(self.server.kernel, self.kernel_id)
            except ConsoleError as e:
                if "cannot reach" not in str(e):
                    self._give_up(e)
                    return
        self._give_up(
            ConsoleError(
                f"the server at {self.server.url} is gone (no answer for {self.give_up_after:g} s)"
            )
        )

    def _give_up(self, why: ConsoleError) -> None:
        self.failure = why
        self.lost.set()
        self.on_state("lost")
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(why)
        self._waiting.clear()

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
        if self._proto is not None:
            self._proto.sendClose(1000)

    # -- messages ----------------------------------------------------------------------------

    def _received(self, payload: bytes) -> None:
        try:
            msg = json.loads(payload)
        except ValueError:
            return
        if not isinstance(msg, dict):
            return
        if msg.get("channel") == "iopub":
            self.last_seen = str((msg.get("header") or {}).get("msg_id", "")) or self.last_seen
        parent = (msg.get("parent_header") or {}).get("msg_id")
        reply = msg.get("channel") in ("shell", "control")
        fut = self._waiting.pop(parent, None) if reply and isinstance(parent, str) else None
        if fut is not None and not fut.done():  # (done: cancelled, its waiter gave up)
            fut.set_result(msg)
        self.on_message(msg)

    def send(
        self,
        channel: str,
        msg_type: str,
        content: dict[str, Any],
        parent: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Send one message (queued while reconnecting); return its msg_id.
        ``parent`` is the whole message answered (an input_request)."""
        msg = new_message(msg_type, content, self.session, parent or {}, metadata)
        msg["channel"] = channel
        frame = json.dumps(msg).encode()
        if self._proto is not None:
            self._proto.sendMessage(frame)
        else:
            self._unsent.append(frame)
        msg_id: str = msg["header"]["msg_id"]  # new_message made it
        return msg_id

    def request(
        self,
        channel: str,
        msg_type: str,
        content: dict[str, Any],
        metadata: dict[str, Any] | None = None,
    ) -> tuple[str, asyncio.Future[dict[str, Any]]]:
        """Send a request: its msg_id, and a future for its reply (across reconnections)."""
        if self.failure is not None:
            raise self.failure
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        msg_id = self.send(channel, msg_type, content, metadata=metadata)
        self._waiting[msg_id] = fut
        return msg_id, fut
