"""A large message's JSON as pieces: the small bytes around its large strings, and
the large strings themselves, encoded a slice at a time when they are written (pure).

An output of tens of MiB is one string in a message (an image's base64).  Encoding
the whole message for each wire format would copy that string once per format, and
once more to put a frame header in front of it.  Here the JSON of each part of the
message is made once as :class:`Pieces`, shared by every wire format: the large
strings stay where they are, in the message, and each slice of one is encoded when
a reader writes it (a copy of one slice at a time).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any

from ..wire import Message, dumps

__all__ = ["LARGE_STRING", "BigText", "MessageParts", "Pieces", "json_pieces", "message_parts"]

#: Strings at least this long (characters) are kept by reference, not encoded ahead.
LARGE_STRING = 64 * 1024
#: How deep in a message large strings are looked for (``content.data.<mime>`` is 3).
SEARCH_DEPTH = 6
#: Characters that JSON escapes in an ASCII string.
_ESCAPED = bytes(range(32)) + b'"\\'
#: What stands for a large string in the JSON made around it: nothing a message holds
#: can contain it, for it is random per process.
_MARK = uuid.uuid4().hex
#: Slices checked at once when a large string is first looked at.
_CHECK_SLICE = 1 << 18


class BigText:
    """A large string of a message, and the length of its JSON encoding (no quotes).

    ``mode`` says how it is encoded: 0, ASCII with nothing to escape (base64, the
    usual large output), sliced as it is; 1, escaped as JSON and UTF-8; 2, escaped
    as ASCII-only JSON (it holds lone surrogates, which UTF-8 cannot carry).
    """

    __slots__ = ("text", "mode", "size")

    def __init__(self, text: str) -> None:
        self.text = text
        self.mode = 0 if _plain_ascii(text) else 1
        if self.mode == 0:
            self.size = len(text)
            return
        try:
            self.size = sum(len(s) for s in self.slices(LARGE_STRING))
        except UnicodeEncodeError:
            self.mode = 2
            self.size = sum(len(s) for s in self.slices(LARGE_STRING))

    def slices(self, chunk: int) -> Iterator[bytes]:
        """The encoding, in slices of at most ``chunk`` bytes."""
        text, mode = self.text, self.mode
        # An escaped character takes at most 6 bytes (\u001f), or 12 as ASCII (a pair).
        step = chunk if mode == 0 else max(1, chunk // (6 if mode == 1 else 12))
        for i in range(0, len(text), step):
            part = text[i : i + step]
            if mode == 0:
                yield part.encode("ascii")
            elif mode == 1:
                yield encode_basestring(part)[1:-1].encode("utf-8")
            else:
                yield encode_basestring_ascii(part)[1:-1].encode("ascii")


def _plain_ascii(text: str) -> bool:
    """Whether ``text`` is ASCII with nothing JSON escapes (checked a slice at a time)."""
    if not text.isascii():
        return False
    for i in range(0, len(text), _CHECK_SLICE):
        part = text[i : i + _CHECK_SLICE].encode("ascii")
        if len(part.translate(None, _ESCAPED)) != len(part):
            return False
    return True


def _small(*pieces: bytes) -> bool:
    return all(len(p) < LARGE_STRING for p in pieces)


class Pieces:
    """A JSON document (or a frame's payload) as bytes and :class:`BigText` pieces."""

    __slots__ = ("items", "size")
    items: list[bytes | BigText]
    size: int

    def __init__(self, items: list[bytes | BigText | Pieces]) -> None:
        flat: list[bytes | BigText] = []
        for item in items:
            for piece in item.items if isinstance(item, Pieces) else (item,):
                last = flat[-1] if flat else None
                if isinstance(piece, bytes) and isinstance(last, bytes) and _small(last, piece):
                    flat[-1] = last + piece  # small glue between large strings: merged
                elif not isinstance(piece, bytes) or piece:
                    flat.append(piece)
        self.items = flat
        self.size = sum(len(p) if isinstance(p, bytes) else p.size for p in flat)

    @property
    def glue_bytes(self) -> int:
        """Memory of the pieces besides the large strings they refer to."""
        return sum(len(p) for p in self.items if isinstance(p, bytes))

    def chunks(self, chunk: int) -> Iterator[bytes]:
        """The bytes, in slices of at most ``chunk`` bytes (one copy of a slice each)."""
        for piece in self.items:
            if isinstance(piece, BigText):
                yield from piece.slices(chunk)
            elif len(piece) <= chunk:
                yield piece
            else:
                with memoryview(piece) as view:
                    for i in range(0, len(piece), chunk):
                        yield bytes(view[i : i + chunk])

    def join(self) -> bytes:
        """The bytes in one piece (a small payload: no large strings are copied here)."""
        if len(self.items) == 1 and isinstance(self.items[0], bytes):
            return self.items[0]
        return b"".join(self.chunks(1 << 20))

    def fill(self) -> bytes | bytearray:
        """The bytes in one buffer, the large strings copied once (for a transport
        that needs a frame whole: ZeroMQ)."""
        if len(self.items) == 1 and isinstance(self.items[0], bytes):
            return self.items[0]
        out = bytearray(self.size)
        pos = 0
        for part in self.chunks(1 << 20):
            out[pos : pos + len(part)] = part
            pos += len(part)
        return out


def json_pieces(obj: Any) -> Pieces:
    """``dumps(obj)`` as pieces, its strings of :data:`LARGE_STRING` characters or more
    (up to :data:`SEARCH_DEPTH` levels deep) by reference."""
    found: list[str] = []
    skeleton = _stand_in(obj, found, SEARCH_DEPTH)
    text = dumps(skeleton)
    if not found:
        return Pieces([text])
    items: list[bytes | BigText | Pieces] = []
    pos = 0
    for i, big in enumerate(found):
        mark = f'"{_MARK}{i}"'.encode()
        at = text.index(mark, pos)  # in order: dumps walks as _stand_in did
        items += [text[pos:at] + b'"', BigText(big), b'"']
        pos = at + len(mark)
    items.append(text[pos:])
    return Pieces(items)


def _stand_in(value: Any, found: list[str], depth: int) -> Any:
    """``value`` with each large string replaced by a mark naming its index in ``found``
    (containers on the way are copied, the rest is shared)."""
    if isinstance(value, str):
        if len(value) < LARGE_STRING:
            return value
        found.append(value)
        return f"{_MARK}{len(found) - 1}"
    if depth == 0 or not isinstance(value, (dict, list, tuple)):
        return value
    if isinstance(value, dict):
        swapped = {k: _stand_in(v, found, depth - 1) for k, v in value.items()}
        same = all(swapped[k] is v for k, v in value.items())
        return value if same else swapped
    items = [_stand_in(v, found, depth - 1) for v in value]
    return value if all(a is b for a, b in zip(items, value, strict=True)) else items


@dataclass(frozen=True)
class MessageParts:
    """The JSON of a message's four parts, made once and shared by every wire format."""

    header: bytes
    parent_header: bytes
    metadata: Pieces
    content: Pieces
    buffers: list[bytes]

    @property
    def glue_bytes(self) -> int:
        """Memory besides the message's large strings (what a log charges for it)."""
        small = len(self.header) + len(self.parent_header) + sum(map(len, self.buffers))
        return small + self.metadata.glue_bytes + self.content.glue_bytes


def message_parts(msg: Message, large: bool = True) -> MessageParts:
    """The parts of ``msg`` as JSON pieces, its large strings by reference (unless
    ``large`` is false: a small message is encoded whole, with no search)."""
    pieces = json_pieces if large else _whole
    return MessageParts(
        dumps(msg["header"]),
        dumps(msg.get("parent_header") or {}),
        pieces(msg.get("metadata") or {}),
        pieces(msg.get("content") or {}),
        [bytes(b) for b in msg.get("buffers") or ()],
    )


def _whole(obj: Any) -> Pieces:
    return Pieces([dumps(obj)])
