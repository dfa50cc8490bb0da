"""Length-prefixed JSON records: the link between the kernel and its worker.

A record is a 4-byte big-endian length followed by that many bytes of UTF-8
JSON holding one object.  :class:`RecordDecoder` is sans-IO: feed it bytes in
any chunking, it hands back whole records.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from .wire import dumps

_LEN = struct.Struct(">I")
MAX_RECORD_BYTES = 1 << 30


class FramingError(ValueError):
    pass


def encode_record(obj: dict[str, Any]) -> bytes:
    payload = dumps(obj)
    return _LEN.pack(len(payload)) + payload


class RecordDecoder:
    """Accumulate bytes; :meth:`feed` returns the records completed so far."""

    def __init__(self, max_record_bytes: int = MAX_RECORD_BYTES) -> None:
        self._buf = bytearray()
        self.max_record_bytes = max_record_bytes

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buf += data
        out: list[dict[str, Any]] = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= 4:
            (n,) = _LEN.unpack_from(buf, pos)
            if n > self.max_record_bytes:
                raise FramingError(f"record of {n} bytes is too large")
            if len(buf) - pos - 4 < n:
                break
            start = pos + 4
            try:
                out.append(json.loads(bytes(buf[start : start + n])))
            except (ValueError, RecursionError) as e:  # nested too deep is not JSON to us
                raise FramingError(f"record is not JSON ({e.__class__.__name__})") from None
            pos = start + n
        if pos:
            del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a record."""
        return len(self._buf)
