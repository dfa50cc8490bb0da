"""Length-prefixed JSON records: the link between the kernel and its worker.

A record is a 4-byte big-endian length followed by that many bytes of UTF-8
JSON holding one object.  A record's binary buffers (a comm message's, under its
``"buffers"`` key) travel raw after the JSON, never as text: the length's top bit
says they follow, then their count and each one's length (4 bytes each), then
their bytes.  :class:`RecordDecoder` is sans-IO: feed it bytes in
any chunking, it hands back whole records.  A record is decoded to text straight
from the decoder's buffer, which lets go of it before the text is parsed: a
record of tens of MiB (an image) costs at most twice its size on the way in.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from typing import Any

_LEN = struct.Struct(">I")
MAX_RECORD_BYTES = 1 << 30
#: The length's top bit: binary buffers follow the JSON.
_HAS_BUFFERS = 1 << 31
#: At most this many buffers in one record.
MAX_BUFFERS = 1 << 12
#: Parts gathered into one ``writev`` (the system's limit is 1024 at least).
_IOV_MAX = 1024


class FramingError(ValueError):
    pass


_dumps: Callable[[Any], bytes] | None = None


def dumps(obj: Any) -> bytes:
    """The wire's JSON encoder, imported on first use: the keeper, forked before it
    encodes anything, never pays for :mod:`ipytwist.wire` and orjson."""
    global _dumps
    if _dumps is None:
        from .wire import dumps as wire_dumps

        _dumps = wire_dumps
    return _dumps(obj)


def plain_record(obj: dict[str, Any]) -> bytes:
    """A small record without buffers, encoded by the standard library's JSON."""
    payload = json.dumps(obj, separators=(",", ":")).encode()
    return _LEN.pack(len(payload)) + payload


def encode_record(obj: dict[str, Any]) -> bytes:
    return b"".join(record_parts(obj))


def record_parts(obj: dict[str, Any]) -> list[bytes | memoryview]:
    """A record's parts, to be written one after the other (a large record is not
    copied to put four bytes in front of it): the length prefix, the JSON, and the
    binary buffers' lengths and bytes if ``obj`` has any under ``"buffers"``.  A small
    record without buffers is one part."""
    if "buffers" not in obj:
        payload = dumps(obj)
        if len(payload) < 1 << 16:
            return [_LEN.pack(len(payload)) + payload]  # one write: the reader wakes once
        return [_LEN.pack(len(payload)), payload]
    buffers = [memoryview(b).cast("B") for b in obj["buffers"] or ()]
    payload = dumps({k: v for k, v in obj.items() if k != "buffers"})
    if not buffers:
        return [_LEN.pack(len(payload)), payload]
    if len(buffers) > MAX_BUFFERS:
        raise FramingError(f"{len(buffers)} buffers are too many")
    sizes = struct.pack(f">{len(buffers) + 1}I", len(buffers), *(b.nbytes for b in buffers))
    return [_LEN.pack(len(payload) | _HAS_BUFFERS), payload, sizes, *buffers]


def write_parts(fd: int, parts: list[bytes | memoryview]) -> list[bytes | memoryview]:
    """Write ``parts`` to ``fd`` for as long as it takes them, gathered (``writev``: the
    reader wakes once for what one call puts in); what it did not take (nothing, on a
    blocking fd)."""
    rest = list(parts)
    while rest:
        try:
            n = os.writev(fd, rest[:_IOV_MAX])
        except (BlockingIOError, InterruptedError):
            break
        while rest and n >= len(rest[0]):
            n -= len(rest[0])
            del rest[0]
        if n:
            rest[0] = memoryview(rest[0])[n:]
    return rest


class RecordDecoder:
    """Accumulate bytes; :meth:`feed` returns the records completed so far."""

    def __init__(self, max_record_bytes: int = MAX_RECORD_BYTES) -> None:
        self._buf = bytearray()
        self.max_record_bytes = max_record_bytes

    def feed(self, data: bytes | bytearray) -> list[dict[str, Any]]:
        """The records completed by ``data``.  A bytearray given while nothing is held
        becomes the buffer itself, uncopied, and shrinks as records leave it (so a large
        record is let go of before its text is parsed)."""
        if isinstance(data, bytearray) and not self._buf:
            self._buf = data
        else:
            self._buf += data
        out: list[dict[str, Any]] = []
        while True:
            record = self._next()
            if record is None:
                return out
            out.append(record)

    def _next(self) -> Any:
        """The first whole record in the buffer, taken out of it; None if none is whole."""
        buf = self._buf
        extent = self.first_extent()
        if extent is None:
            return None
        n, sizes, has_buffers = extent
        start = 4 + n + (4 + 4 * len(sizes) if has_buffers else 0)
        end = start + sum(sizes)
        with memoryview(buf) as view:
            with view[4 : 4 + n] as record:
                try:
                    text = str(record, "utf-8")
                except UnicodeDecodeError:
                    raise FramingError("record is not accepted: invalid UTF-8") from None
            buffers = []
            for size in sizes:
                buffers.append(bytes(view[start : start + size]))
                start += size
        del buf[:end]  # (cheap: a bytearray drops its head without moving the rest)
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise FramingError(f"record is not accepted: {type(e).__name__}") from None
        if has_buffers:
            if not isinstance(obj, dict):
                raise FramingError("record is not accepted: buffers without an object")
            obj["buffers"] = buffers
        return obj

    def first_extent(self) -> tuple[int, list[int], bool] | None:
        """The first record's JSON length, its buffers' sizes and whether it has any,
        once it is whole in the buffer."""
        buf = self._buf
        if len(buf) < 4:
            return None
        (n,) = _LEN.unpack_from(buf, 0)
        has_buffers, n = bool(n & _HAS_BUFFERS), n & ~_HAS_BUFFERS
        if n > self.max_record_bytes:
            raise FramingError(f"record of {n} bytes is too large")
        sizes = self._buffer_sizes(4 + n) if has_buffers else []
        if sizes is None:
            return None
        end = 4 + n + (4 + 4 * len(sizes) if has_buffers else 0) + sum(sizes)
        return (n, sizes, has_buffers) if len(buf) >= end else None

    def _buffer_sizes(self, at: int) -> list[int] | None:
        """The sizes of the buffers whose count starts at ``at``, once they are in."""
        buf = self._buf
        if len(buf) < at + 4:
            return None
        (count,) = _LEN.unpack_from(buf, at)
        if count > MAX_BUFFERS:
            raise FramingError(f"record of {count} buffers has too many")
        if len(buf) < at + 4 + 4 * count:
            return None
        sizes = list(struct.unpack_from(f">{count}I", buf, at + 4))
        if sum(sizes) > self.max_record_bytes:
            raise FramingError(f"record of {sum(sizes)} bytes of buffers is too large")
        return sizes


class RecordSplitter:
    """Accumulate bytes; :meth:`feed` returns the whole records completed so far as the
    bytes they were written as, unparsed (the keeper forwards them as they are)."""

    def __init__(self, max_record_bytes: int = MAX_RECORD_BYTES) -> None:
        self._decoder = RecordDecoder(max_record_bytes)

    def feed(self, data: bytes) -> list[bytes]:
        """The records ``data`` completes, each one's bytes from its length prefix on."""
        self._decoder._buf += data
        out: list[bytes] = []
        while (end := self._end()) is not None:
            out.append(bytes(self._decoder._buf[:end]))
            del self._decoder._buf[:end]
        return out

    def _end(self) -> int | None:
        """Where the first record ends, once it is whole."""
        extent = self._decoder.first_extent()
        if extent is None:
            return None
        n, sizes, has_buffers = extent
        return 4 + n + (4 + 4 * len(sizes) if has_buffers else 0) + sum(sizes)
