"""Length-prefixed JSON records: the link between the kernel and its worker.

A record is a 4-byte big-endian length followed by that many bytes of UTF-8
JSON holding one object.  :class:`RecordDecoder` is sans-IO: feed it bytes in
any chunking, it hands back whole records.  A record is decoded to text straight
from the decoder's buffer, which lets go of it before the text is parsed: a
record of tens of MiB (an image) costs at most twice its size on the way in.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterable
from typing import Any

from .wire import dumps

_LEN = struct.Struct(">I")
MAX_RECORD_BYTES = 1 << 30


def encode_buffers(buffers: Iterable[Any] | None) -> list[str]:
    """Binary buffers (bytes, memoryviews, arrays) as base64 text, for a JSON record."""
    return [base64.b64encode(memoryview(b).cast("B")).decode("ascii") for b in buffers or ()]


def decode_buffers(encoded: object) -> list[bytes]:
    """The buffers :func:`encode_buffers` made; a record's malformed buffers are none."""
    if not isinstance(encoded, list):
        return []
    try:
        return [base64.b64decode(b, validate=True) for b in encoded if isinstance(b, str)]
    except ValueError:
        return []


class FramingError(ValueError):
    pass


def encode_record(obj: dict[str, Any]) -> bytes:
    head, payload = record_parts(obj)
    return head + payload


def record_parts(obj: dict[str, Any]) -> tuple[bytes, bytes]:
    """A record's length prefix and its JSON, to be written one after the other (a
    large record is not copied to put four bytes in front of it)."""
    payload = dumps(obj)
    return _LEN.pack(len(payload)), payload


class RecordDecoder:
    """Accumulate bytes; :meth:`feed` returns the records completed so far."""

    def __init__(self, max_record_bytes: int = MAX_RECORD_BYTES) -> None:
        self._buf = bytearray()
        self.max_record_bytes = max_record_bytes

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buf += data
        out: list[dict[str, Any]] = []
        buf = self._buf
        while len(buf) >= 4:
            (n,) = _LEN.unpack_from(buf, 0)
            if n > self.max_record_bytes:
                raise FramingError(f"record of {n} bytes is too large")
            if len(buf) - 4 < n:
                break
            with memoryview(buf) as view, view[4 : 4 + n] as record:
                try:
                    text = str(record, "utf-8")
                except UnicodeDecodeError:
                    raise FramingError("record is not accepted: invalid UTF-8") from None
            del buf[: 4 + n]  # (cheap: a bytearray drops its head without moving the rest)
            try:
                out.append(json.loads(text))
            except (ValueError, RecursionError) as e:
                raise FramingError(f"record is not accepted: {type(e).__name__}") from None
        return out
