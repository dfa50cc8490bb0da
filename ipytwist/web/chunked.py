"""Long responses written a time slice per reactor turn, at the pace the client reads.

A transcript's JSON or a cell's whole output can take a long time to work out and
encode.  :class:`ChunkedResponse` takes its chunks from an iterator for at most
:data:`SLICE_SECONDS` at a time, then lets the reactor serve everyone else before it
goes on; it is the request's push producer, so it also stops while the client's
transport is full, and for good once the client has gone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.logger import Logger
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

__all__ = ["CHUNK_BYTES", "SLICE_SECONDS", "ChunkedResponse", "json_chunks", "text_chunks"]

#: Work done per reactor turn, at most (plus one chunk).
SLICE_SECONDS = 0.01
#: About how many bytes each chunk written holds.
CHUNK_BYTES = 64 * 1024


def text_chunks(pieces: Iterable[str], size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """``pieces`` of text as UTF-8, in chunks of about ``size`` characters (a long
    piece is cut, short ones are joined); an empty piece gives an empty chunk, where
    the writer may pause."""
    batch: list[str] = []
    held = 0
    for piece in pieces:
        if not piece:
            yield b""
        for start in range(0, len(piece), size):
            part = piece[start : start + size]
            batch.append(part)
            held += len(part)
            if held >= size:
                yield "".join(batch).encode("utf-8", "replace")
                batch, held = [], 0
    if batch:
        yield "".join(batch).encode("utf-8", "replace")


#: Where a JSON body's container is: a key of the body, or the keys down to it.
JsonPath = str | tuple[str, ...]


def json_chunks(body: dict[str, Any], *paths: JsonPath, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """``body`` as JSON (as ``json.dumps`` writes it), the lists and objects at ``paths``
    (``"cells"``, ``("widgets", "state")``) an item at a time, in chunks of about
    ``size`` bytes."""
    batch: list[str] = []
    held = 0
    keys = [(p,) if isinstance(p, str) else p for p in paths]
    for piece in _json_pieces(body, keys):
        batch.append(piece)
        held += len(piece)
        if held >= size:
            yield "".join(batch).encode()
            batch, held = [], 0
    yield "".join(batch).encode()


def _json_pieces(value: Any, paths: list[tuple[str, ...]]) -> Iterator[str]:
    """``value`` as JSON in pieces: a container at the end of a path an item a piece,
    the objects on the way to one a key a piece, everything else whole."""
    if () in paths and isinstance(value, list):
        yield "[" + ", ".join(json.dumps(item) for item in value[:1])
        for item in value[1:]:
            yield ", " + json.dumps(item)
        yield "]"
    elif paths and isinstance(value, dict):
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            start = (", " if i else "") + json.dumps(key) + ": "
            below = [p[1:] for p in paths if p and p[0] == key]
            if () in paths or not below:
                yield start + json.dumps(item)
            else:
                yield start
                yield from _json_pieces(item, below)
        yield "}"
    else:
        yield json.dumps(value)


@implementer(IPushProducer)
class ChunkedResponse:
    """Writes ``chunks`` to ``request`` and finishes it: a slice of work per turn (an
    empty chunk is a place to pause, and is not written)."""

    log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        request: Request,
        chunks: Iterator[bytes],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reactor = reactor
        self.request = request
        self.chunks = chunks
        self.clock = clock
        self.paused = False
        self.done = False
        self._call: IDelayedCall | None = None

    def start(self) -> int:
        """Begin writing (the first slice now); NOT_DONE_YET for ``render``."""
        self.request.notifyFinish().addErrback(lambda _: self.stopProducing())
        self.request.registerProducer(self, True)
        self._run()
        return NOT_DONE_YET

    def _run(self) -> None:
        self._call = None
        deadline = self.clock() + SLICE_SECONDS
        while not (self.paused or self.done):
            try:
                chunk = next(self.chunks)
            except StopIteration:
                self._finish()
                return
            except Exception as e:  # the response is cut short; the service goes on
                self.log.error("a long response failed: {e}", e=type(e).__name__)
                self._finish()
                return
            if chunk:
                self.request.write(chunk)
            if self.clock() >= deadline:
                break
        self._schedule()

    def _schedule(self) -> None:
        if not (self.paused or self.done) and self._call is None:
            self._call = self.reactor.callLater(0, self._run)

    def _finish(self) -> None:
        self.done = True
        self.request.unregisterProducer()
        self.request.finish()

    def pauseProducing(self) -> None:
        """The client's transport is full: stop writing until it drains."""
        self.paused = True
        if self._call is not None:
            self._call.cancel()
            self._call = None

    def resumeProducing(self) -> None:
        """The client's transport has room again."""
        self.paused = False
        self._schedule()

    def stopProducing(self) -> None:
        """The client has gone: stop for good."""
        if not self.done:
            self.done = True
            self.pauseProducing()
