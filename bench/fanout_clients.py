"""The fan-out benchmark's clients: many kernel WebSockets in one asyncio event loop,
each recording what it saw of a request, and a tracker that wakes the benchmark once
every client still connected saw the request's idle."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from benchlib.messages import legacy_text, make_message
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol


@dataclass
class Seen:
    """What one client saw of one request."""

    msg_ids: list[str] = field(default_factory=list)
    stdout: list[str] = field(default_factory=list)
    idle_at: float | None = None


class Tracker:
    """Wakes the waiter once every client still connected saw a request's idle."""

    def __init__(self) -> None:
        self.pending: dict[str, set[Client]] = {}
        self.events: dict[str, asyncio.Event] = {}
        #: iopub frame text -> decoded message, shared by all clients (read-only use).
        self.parsed: dict[str, dict[str, Any]] = {}

    def watch(self, msg_id: str, clients: list[Client]) -> asyncio.Event:
        self.pending[msg_id] = {c for c in clients if c.closed_reason is None}
        ev = self.events[msg_id] = asyncio.Event()
        if not self.pending[msg_id]:
            ev.set()
        return ev

    def _done(self, client: Client, msg_id: str) -> None:
        waiting = self.pending.get(msg_id)
        if waiting is not None and client in waiting:
            waiting.discard(client)
            if not waiting:
                self.events[msg_id].set()

    def idle(self, client: Client, msg_id: str) -> None:
        self._done(client, msg_id)

    def closed(self, client: Client) -> None:
        for msg_id in list(self.pending):
            self._done(client, msg_id)


class Client:
    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        tracker: Tracker,
        subprotocols: list[Subprotocol] | None = None,
    ) -> None:
        self.subprotocols = subprotocols
        self.session = uuid.uuid4().hex
        self.url = f"{url}?session_id={self.session}"
        self.headers = headers
        self.tracker = tracker
        self.ws: ClientConnection | None = None
        self.seen: dict[str, Seen] = {}
        self.replies: dict[str, asyncio.Future] = {}
        self.closed_reason: str | None = None
        self._reader: asyncio.Task | None = None

    async def open(self, timeout: float) -> None:
        self.ws = await asyncio.wait_for(
            connect(
                self.url,
                additional_headers=self.headers,
                subprotocols=self.subprotocols,
                compression=None,
                max_size=None,
                max_queue=1024,
                open_timeout=timeout,
                ping_interval=None,
            ),
            timeout,
        )
        self._reader = asyncio.create_task(self._read())

    def track(self, msg_id: str) -> None:
        self.seen[msg_id] = Seen()

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                self.receive(raw)
            self.closed_reason = "closed by server"
        except ConnectionClosed as e:
            self.closed_reason = f"closed by server ({e.rcvd.code if e.rcvd else 'no close frame'})"
        except asyncio.CancelledError:
            self.closed_reason = "closed by client"
            raise
        except Exception as e:  # report, do not crash the whole bench
            self.closed_reason = f"{type(e).__name__}: {e}"
        finally:
            self.tracker.closed(self)

    def reply(self, msg: dict[str, Any]) -> None:
        """A message on shell or control: the answer to a :meth:`request`, if one waits."""
        fut = self.replies.pop(msg["parent_header"].get("msg_id"), None)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def receive(self, raw: str | bytes) -> None:
        """One frame from the server."""
        if not isinstance(raw, str):
            return  # binary frames (buffers) are not used by these workloads
        # Every client gets the same text for an iopub message: parse it once, so
        # the bench measures the servers more than its own JSON decoding.
        msg = self.tracker.parsed.get(raw)
        if msg is None:
            msg = json.loads(raw)
            if msg.get("channel") == "iopub":
                self.tracker.parsed[raw] = msg
        if msg.get("channel") != "iopub":
            self.reply(msg)
            return
        parent = msg["parent_header"].get("msg_id")
        s = self.seen.get(parent)
        if s is None:
            return
        s.msg_ids.append(msg["header"]["msg_id"])
        msg_type = msg["header"]["msg_type"]
        if msg_type == "stream":
            if msg["content"].get("name") == "stdout":
                s.stdout.append(msg["content"]["text"])
        elif (
            msg_type == "status"
            and msg["content"].get("execution_state") == "idle"
            and s.idle_at is None
        ):
            s.idle_at = time.perf_counter()
            self.tracker.idle(self, parent)

    async def send(self, msg_id: str, channel: str, msg_type: str, content: dict) -> None:
        assert self.ws is not None
        msg = make_message(msg_type, content, self.session, msg_id)
        await self.ws.send(self.frame(msg, channel))

    def frame(self, msg: dict[str, Any], channel: str) -> str | bytes:
        """``msg`` as this client's protocol frames it (the legacy JSON text)."""
        return legacy_text(msg, channel)

    async def request(self, channel: str, msg_type: str, content: dict, timeout: float) -> Any:
        """Send and wait for the reply (``None`` on timeout or a closed connection)."""
        msg_id = uuid.uuid4().hex
        fut = asyncio.get_running_loop().create_future()
        self.replies[msg_id] = fut
        try:
            await self.send(msg_id, channel, msg_type, content)
            return await asyncio.wait_for(fut, timeout)
        except (TimeoutError, ConnectionClosed):
            self.replies.pop(msg_id, None)
            return None

    async def close(self) -> None:
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 5)
            except Exception:
                self.ws.transport.abort()
        if self._reader is not None:
            self._reader.cancel()
