"""Request records into the worker's pipe, a large one a piece at a time.

Twisted's writers take only ``bytes``, and join everything queued into one string
before writing it: a comm message with a 16 MiB buffer would be copied whole, twice.
:class:`PipeFeeder` queues a record's parts as they are (memoryviews of the client's
frame) and hands the writer one piece of at most :data:`PIECE` bytes each time the
pipe has taken the last (a pull producer), so a record costs a piece on the way out.
Records keep their order: while one is being fed, the next waits behind it.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from twisted.internet.interfaces import IPullProducer
from zope.interface import implementer

from ..framing import write_parts

__all__ = ["PIECE", "PipeFeeder"]

#: The most a request record hands Twisted's writer at a time.
PIECE = 1 << 18


class Writer(Protocol):
    """Twisted's writer of one of a child's pipes (a pull producer's consumer)."""

    def fileno(self) -> int:
        """The pipe's file descriptor."""

    def write(self, data: bytes) -> None:
        """Queue ``data`` (bytes only)."""

    def registerProducer(self, producer: object, streaming: bool) -> None:
        """Ask ``producer`` for more each time the queue is written out."""

    def unregisterProducer(self) -> None:
        """Stop asking."""


@implementer(IPullProducer)
class PipeFeeder:
    """Writes records' parts to ``writer``: at once while the pipe takes them and
    nothing waits, then a piece each time the writer asks for more."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self.parts: deque[memoryview] = deque()
        self._registered = False

    def write(self, parts: list[bytes | memoryview]) -> None:
        """Queue one record's parts (in order after every earlier record's)."""
        if not self.parts and self._idle():
            try:
                parts = write_parts(self.writer.fileno(), parts)
            except OSError:
                return  # the worker closed its end; the process's end follows
        self.parts.extend(memoryview(p).cast("B") for p in parts if len(p))
        if self.parts and not self._registered:
            self._registered = True
            self.writer.registerProducer(self, False)  # asks for the first piece now

    def _idle(self) -> bool:
        """Nothing is queued in Twisted's writer (so a write now keeps the order)."""
        writer = self.writer
        return not getattr(writer, "dataBuffer", True) and not getattr(
            writer, "_tempDataBuffer", True
        )

    def resumeProducing(self) -> None:
        """Twisted: the pipe took what it had; the next piece."""
        if not self.parts:
            self._registered = False
            self.writer.unregisterProducer()
            return
        part = self.parts[0]
        if len(part) > PIECE:
            piece, self.parts[0] = part[:PIECE], part[PIECE:]
        else:
            piece = self.parts.popleft()
        self.writer.write(bytes(piece))

    def stopProducing(self) -> None:
        """Twisted: the pipe is gone."""
        self.parts.clear()
