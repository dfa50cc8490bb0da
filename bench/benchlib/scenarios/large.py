"""Large outputs: images of tens of MiB reach every reader that keeps up, byte for byte
(a legacy and a v1 WebSocket and a ZeroMQ subscriber), a reader stalled meanwhile
gets what it was owed and then an exact drop notice, and the service's memory for
one such message is a small multiple of its size."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import zmq
import zmq.asyncio
from jupyter_client.session import Session
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from ..frames import decode_legacy, unpack_v1
from ..messages import execute_content, make_message, parent_id
from ..procs import rss_mib, status_kib
from ..servers import Service

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"
MIB = 1 << 20
#: The images, by the bytes of their base64 (the output bytes of their message): the
#: issue's 30 MiB of random bytes (40 MiB of base64), and a 60 MB message.
IMAGES = {"30 MiB image (40 MiB of base64)": 40 * MIB, "60 MB image": 60_000_000}
#: A cell displaying ``chars`` of base64 of random bytes; its result is their sha256.
IMAGE_CELL = (
    "import base64 as _b, hashlib as _h, os as _o\n"
    "from IPython.display import display as _d\n"
    "_s = _b.b64encode(_o.urandom({chars} * 3 // 4)).decode()\n"
    "_d({{'image/png': _s}}, raw=True)\n"
    "_h.sha256(_s.encode()).hexdigest()"
)
#: Printed after the images, so that what the stalled reader missed leaves the log.
FLOOD_CELL = "for _i in range({n}):\n    print(str(_i).zfill(8) + 'x' * 100_000)"
NOTICE = re.compile(r"\[ipytwist\] (\d+) output messages? \((\d+) bytes\) dropped")


def content_bytes(content: Any) -> int:
    """The UTF-8 length of every string value in ``content``: what a drop notice counts."""
    if isinstance(content, str):
        return len(content.encode("utf-8", "replace"))
    if isinstance(content, dict):
        return sum(content_bytes(v) for v in content.values())
    if isinstance(content, list):
        return sum(content_bytes(v) for v in content)
    return 0


@dataclass
class Seen:
    """An iopub message as a reader saw it, its images reduced to their digests."""

    msg_id: str
    msg_type: str
    parent: str | None
    nbytes: int
    text: str  # a stream's text, an execute_result's text/plain, a status's state
    image: tuple[int, str] | None = None  # (length, sha256) of image/png


def seen(msg: dict[str, Any]) -> Seen:
    content = msg.get("content") or {}
    data = content.get("data") or {}
    text = content.get("text") or data.get("text/plain") or content.get("execution_state")
    s = Seen(
        msg["header"]["msg_id"],
        msg["header"]["msg_type"],
        parent_id(msg),
        content_bytes(content),
        str(text or ""),
    )
    if "image/png" in data:
        png = data["image/png"].encode()
        s.image = (len(png), hashlib.sha256(png).hexdigest())
    return s


class Reader:
    """One client taking every iopub message of a kernel, in order, as a list of Seen."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.got: list[Seen] = []
        self.error: str | None = None
        self.arrived = asyncio.Event()

    def add(self, msg: dict[str, Any]) -> None:
        if msg.get("channel", "iopub") == "iopub":
            self.got.append(seen(msg))
            self.arrived.set()

    def idle(self, msg_id: str) -> bool:
        return any(s.text == "idle" and s.parent == msg_id for s in reversed(self.got[-50:]))

    async def until_idle(self, msg_id: str, timeout: float) -> None:
        """Wait until the idle status of request ``msg_id`` has arrived."""
        deadline = time.monotonic() + timeout
        while not self.idle(msg_id):
            if self.error or time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no idle for {msg_id} ({self.error})")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), 1)
            except TimeoutError:
                pass

    def result_of(self, msg_id: str) -> str:
        """The text/plain of request ``msg_id``'s execute_result."""
        texts = [s.text for s in self.got if s.msg_type == "execute_result" and s.parent == msg_id]
        return texts[0].strip("'") if texts else ""

    def image_of(self, msg_id: str) -> tuple[int, str] | None:
        images = [s.image for s in self.got if s.image is not None and s.parent == msg_id]
        return images[0] if images else None

    def notices(self) -> list[tuple[int, int, int]]:
        """(index in what it got, messages, bytes) of every drop notice it got."""
        found = []
        for i, s in enumerate(self.got):
            m = NOTICE.match(s.text) if s.msg_type == "stream" else None
            if m:
                found.append((i, int(m.group(1)), int(m.group(2))))
        return found


class WsReader(Reader):
    """A kernel WebSocket (legacy JSON or v1) reading into :class:`Reader`."""

    ws: ClientConnection

    def __init__(self, name: str, v1: bool = False) -> None:
        super().__init__(name)
        self.v1 = v1
        self.session = uuid.uuid4().hex

    async def open(self, svc: Service, kid: str) -> WsReader:
        self.ws = await connect(
            svc.ws_url(kid, session_id=self.session),
            additional_headers=svc.headers(),
            subprotocols=[Subprotocol(V1_PROTOCOL)] if self.v1 else None,
            compression=None,
            max_size=None,
            ping_interval=None,
            close_timeout=2,
        )
        self.task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                if self.v1:
                    assert isinstance(raw, bytes)
                    self.add(unpack_v1(raw))
                else:
                    self.add(decode_legacy(raw))
        except Exception as e:
            self.error = f"{type(e).__name__}: {e}"
            self.arrived.set()

    async def execute(self, code: str) -> str:
        msg = make_message("execute_request", execute_content(code), self.session)
        await self.ws.send(json.dumps({**msg, "channel": "shell"}))
        return str(msg["header"]["msg_id"])

    async def close(self) -> None:
        self.task.cancel()
        self.ws.transport.abort()


class ZmqReader(Reader):
    """An iopub subscriber on the kernel's connection file (signatures checked)."""

    welcomed = False

    async def open(self, svc: Service, kid: str) -> ZmqReader:
        with open(svc.connection_file(kid)) as f:
            info = json.load(f)
        self.session = Session(key=info["key"].encode(), signature_scheme=info["signature_scheme"])
        self.ctx = zmq.asyncio.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(f"tcp://{info['ip']}:{info['iopub_port']}")
        self.task = asyncio.create_task(self._read())
        deadline = time.monotonic() + 30
        while not self.welcomed:  # the subscription has reached the service
            assert time.monotonic() < deadline and not self.error, f"no iopub_welcome {self.error}"
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), 1)
            except TimeoutError:
                pass
        return self

    async def _read(self) -> None:
        try:
            while True:
                frames = await self.sock.recv_multipart(copy=True)
                _, parts = self.session.feed_identities(frames)
                msg = self.session.deserialize(parts)
                if msg["header"]["msg_type"] == "iopub_welcome":
                    self.welcomed = True
                    self.arrived.set()
                else:
                    self.add(msg)
        except Exception as e:
            if not isinstance(e, asyncio.CancelledError):
                self.error = f"{type(e).__name__}: {e}"
                self.arrived.set()

    async def close(self) -> None:
        self.task.cancel()
        self.sock.close(linger=0)
        self.ctx.term()


# -- the scenarios ---------------------------------------------------------------------


@dataclass
class ImageResult:
    """One image displayed to every reader."""

    name: str
    chars: int
    seconds: float  # execute -> every reader has its idle
    delivered: dict[str, bool]  # reader -> the image, byte for byte
    notices: dict[str, int]  # reader -> drop notices it got
    rss_before: float  # MiB
    rss_after: float
    peak: float  # the service's VmHWM after it (MiB): its peak so far


@dataclass
class StalledResult:
    """A reader that stops reading before an image and reads again after a flood."""

    image_delivered: bool  # the image it was reading when it stopped, byte for byte
    notices: list[tuple[int, int]]  # (messages, bytes) of each drop notice it got
    expected: list[tuple[int, int]]  # what the active reader saw in their place
    caught_up: bool  # it got the idle of the last request afterwards
    rss_before: float
    rss_stalled: float  # with the reader stalled, after the flood
    rss_after: float


@dataclass
class LargeResult:
    images: list[ImageResult] = field(default_factory=list)
    stalled: StalledResult | None = None


async def _run(reader: WsReader, code: str, readers: list[Any], timeout: float) -> str:
    msg_id = await reader.execute(code)
    await asyncio.gather(*(r.until_idle(msg_id, timeout) for r in readers))
    return msg_id


async def _images(svc: Service, kid: str, timeout: float) -> list[ImageResult]:
    legacy, v1 = WsReader("legacy"), WsReader("v1", v1=True)
    zmq_reader = ZmqReader("zmq")
    readers: list[Any] = [await legacy.open(svc, kid), await v1.open(svc, kid)]
    readers.append(await zmq_reader.open(svc, kid))
    results = []
    try:
        await _run(legacy, IMAGE_CELL.format(chars=4096), readers, timeout)  # warm
        for name, chars in IMAGES.items():
            before = rss_mib(svc.pid)
            t0 = time.monotonic()
            msg_id = await _run(legacy, IMAGE_CELL.format(chars=chars), readers, timeout)
            seconds = time.monotonic() - t0
            digest = legacy.result_of(msg_id)
            results.append(
                ImageResult(
                    name,
                    chars,
                    seconds,
                    {r.name: r.image_of(msg_id) == (chars, digest) for r in readers},
                    {r.name: len(r.notices()) for r in readers},
                    before,
                    rss_mib(svc.pid),
                    (status_kib(svc.pid, "VmHWM") or 0) / 1024,
                )
            )
    finally:
        for r in readers:
            await r.close()
    return results


def _expected_gaps(stalled: Reader, active: Reader) -> list[tuple[int, int]]:
    """What the active reader got where the stalled one got each notice."""
    order = {s.msg_id: i for i, s in enumerate(active.got)}
    expected = []
    for at, _, _ in stalled.notices():
        before = order[stalled.got[at - 1].msg_id]
        after = order[stalled.got[at + 1].msg_id]
        dropped = active.got[before + 1 : after]
        expected.append((len(dropped), sum(s.nbytes for s in dropped)))
    return expected


async def _stalled(svc: Service, kid: str, flood_lines: int, timeout: float) -> StalledResult:
    active, stalled = WsReader("active"), WsReader("stalled")
    both: list[Any] = [await active.open(svc, kid), await stalled.open(svc, kid)]
    try:
        await _run(active, IMAGE_CELL.format(chars=4096), both, timeout)
        before = rss_mib(svc.pid)
        stalled.ws.transport.pause_reading()
        chars = next(iter(IMAGES.values()))
        image = await _run(active, IMAGE_CELL.format(chars=chars), [active], timeout)
        await _run(active, FLOOD_CELL.format(n=flood_lines), [active], timeout)
        rss_stalled = rss_mib(svc.pid)
        stalled.ws.transport.resume_reading()
        last = await _run(active, "1", both, timeout)
        return StalledResult(
            stalled.image_of(image) == (chars, active.result_of(image)),
            [(n, b) for _, n, b in stalled.notices()],
            _expected_gaps(stalled, active),
            stalled.idle(last),
            before,
            rss_stalled,
            rss_mib(svc.pid),
        )
    finally:
        for r in both:
            await r.close()


def large_outputs(svc: Service, flood_lines: int = 800, timeout: float = 180.0) -> LargeResult:
    """On one kernel, each of :data:`IMAGES` displayed to a legacy and a v1 WebSocket and
    a ZeroMQ subscriber; on another, a reader that stops reading before the first
    image, while ``flood_lines`` lines of 100 KB follow it, and then reads again."""
    result = LargeResult()
    kid = svc.start_kernel()
    try:
        result.images = asyncio.run(_images(svc, kid, timeout))
    finally:
        svc.delete_kernel(kid)
    kid = svc.start_kernel()
    try:
        result.stalled = asyncio.run(_stalled(svc, kid, flood_lines, timeout))
    finally:
        svc.delete_kernel(kid)
    return result
