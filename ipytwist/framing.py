"""Length-prefixed JSON records: the link between the kernel and its worker.

A record is a 4-byte big-endian length followed by that many bytes of UTF-8
JSON holding one object.  :class:`RecordDecoder` is sans-IO: feed it bytes in
any chunking, it hands back whole records.
"""

from __future__ import annotations

import struct
from typing import Any

from .wire import BadJSON, dumps, loads_untrusted

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
                out.append(loads_untrusted(bytes(buf[start : start + n]), max_depth=None))
            except BadJSON as e:
                raise FramingError(f"record is not accepted: {e}") from None
            pos = start + n
        if pos:
            del buf[:pos]
        return out
