"""A published message and its encodings, what a message costs in memory, and what
the output log's readers are (pure)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..wire import Message
from .payload import MessageParts, message_parts

__all__ = [
    "LARGE_MESSAGE_BYTES",
    "MESSAGE_OVERHEAD",
    "Envelope",
    "Gap",
    "Producer",
    "Reader",
    "Subscriber",
    "output_bytes",
]

#: Memory of a message besides its strings (header dicts, ids, dates), for the log bound
#: (measured: 1.3 KiB for a small stream message, plus its envelope).
MESSAGE_OVERHEAD = 1536
#: A message carrying this many output bytes or more is large: no wire format keeps an
#: encoding of it; its frames are made a slice at a time from the message itself
#: (see :mod:`ipytwist.kernel.payload`), so it costs its strings once.
LARGE_MESSAGE_BYTES = 1 << 20


def output_bytes(content: Any) -> int:
    """The UTF-8 length of every string value in ``content`` (dict keys not counted)."""
    total = 0
    stack = [content]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) if item.isascii() else len(item.encode("utf-8", "replace"))
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return total


class _Log(Protocol):
    def _grew(self, size: int) -> None: ...


class Envelope:
    """A published message, its place in the log, and its cached encodings."""

    __slots__ = ("seq", "msg", "nbytes", "offset", "cost", "keepers", "_encoded", "_log")

    def __init__(self, seq: int, msg: Message, nbytes: int = 0, offset: int = 0) -> None:
        self.seq = seq
        self.msg = msg
        #: Output bytes the message carries (see :func:`output_bytes`).
        self.nbytes = nbytes
        #: Output bytes of every message published before this one.
        self.offset = offset
        #: Memory the log charges for it: its strings, overhead and encodings.
        self.cost = nbytes + MESSAGE_OVERHEAD
        #: Readers that keep it in the log: they are owed it, or write it now.
        self.keepers = 0
        self._encoded: dict[str, Any] = {}
        #: The log holding it, told when an encoding adds to its cost.
        self._log: _Log | None = None

    @property
    def large(self) -> bool:
        """Whether it is written from pieces, without an encoding kept per wire format."""
        return self.nbytes >= LARGE_MESSAGE_BYTES

    @property
    def msg_type(self) -> str:
        """The message's ``msg_type``, from its header."""
        msg_type: str = self.msg["header"]["msg_type"]  # a str: the codecs check it
        return msg_type

    @property
    def parent_id(self) -> str | None:
        """The ``msg_id`` of the request it answers, if any."""
        return (self.msg.get("parent_header") or {}).get("msg_id")

    def parts(self) -> MessageParts:
        """A large message's JSON pieces, made once for every wire format."""
        parts: MessageParts = self.encoded("parts", message_parts)
        return parts

    def encoded(self, fmt: str, encode: Callable[[Message], Any]) -> Any:
        """The message in wire format ``fmt``, encoded on first use and shared after."""
        try:
            return self._encoded[fmt]
        except KeyError:
            data = self._encoded[fmt] = encode(self.msg)
            size = _approx_size(data)
            self.cost += size
            if self._log is not None:
                self._log._grew(size)
            return data


def _approx_size(data: Any) -> int:
    glue = getattr(data, "glue_bytes", None)
    if isinstance(glue, int):  # a large message's pieces: their bytes besides its strings
        return glue
    if isinstance(data, (bytes, str)):
        return len(data)
    if isinstance(data, (list, tuple)):
        return sum(len(x) for x in data if isinstance(x, (bytes, str)))
    return 0


@dataclass(frozen=True)
class Gap:
    """Messages a cursor missed: they left the log before its reader took them."""

    messages: int
    bytes: int
    #: The first message after the gap (None: the log is empty).
    next: Envelope | None


class Subscriber(Protocol):
    """Takes every message as it is published (the ZMQ iopub channel, the transcript)."""

    def deliver(self, envelope: Envelope) -> None:
        """One message, just published."""


class Reader(Protocol):
    """Reads the log through a cursor, at its own pace (a WebSocket connection)."""

    def wake(self) -> None:
        """New messages are waiting for this reader's cursor."""


class Producer(Protocol):
    """What the log pauses while it runs ahead of its readers (the output gate)."""

    def pauseProducing(self) -> None:
        """Stop producing messages for now."""

    def resumeProducing(self) -> None:
        """Produce messages again."""
