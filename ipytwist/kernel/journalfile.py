"""The journal's file: checked records appended with one ``os.write`` each, read
back up to the first that is torn or corrupt, and replaced whole by rename.

A record is a 9-byte head (payload length and CRC-32 of kind and payload, both
big-endian 32-bit, then the kind byte) and its payload, JSON (orjson).  A record is
written by one ``write(2)`` on a file opened ``O_APPEND``: a SIGKILL of the service
leaves it whole or torn at the end, never interleaved.  Nothing is fsynced per record
(the kernel's page cache outlives the process), nor a rewrite before its rename.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from ..wire import dumps, json_default

__all__ = ["HEAD", "JournalFile", "encode", "read_records"]

_HEAD = struct.Struct(">IIB")
#: Bytes of a record's head.
HEAD = _HEAD.size
NAME = "journal"
_CHUNK = 1 << 20


def encode(kind: bytes, payload: Any, size: int = 0) -> bytes:
    """One record: head and JSON payload (orjson's; what it refuses, lone surrogates,
    as the wire writes it), padded with spaces to ``size`` bytes if shorter."""
    return b"".join(encode_parts(kind, payload, size))


def encode_parts(kind: bytes, payload: Any, size: int = 0) -> tuple[bytes, bytes]:
    """:func:`encode`'s record as its head and its body, never joined (a 40 MiB image's
    record would be copied once more)."""
    try:
        body = orjson.dumps(payload, default=json_default)
    except (TypeError, orjson.JSONEncodeError):
        body = dumps(payload)
    if HEAD + len(body) < size:
        body += b" " * (size - HEAD - len(body))
    return _HEAD.pack(len(body), zlib.crc32(body, zlib.crc32(kind)), kind[0]), body


Record = tuple[bytes, Any, int]  # kind, payload, where it starts in the file


def read_records(path: str, limit: int) -> tuple[list[Record], str | None]:
    """The whole records of the file at ``path``, and why reading stopped early (None:
    it ended at a record's end).  A record longer than ``limit`` is corrupt."""
    records: list[Record] = []
    try:
        with open(path, "rb") as f:
            data = f.read(limit + HEAD + 1)
    except FileNotFoundError:
        return records, None
    except OSError as e:
        return records, f"unreadable ({e.strerror})"
    for at, problem, record in _records(data, limit):
        if problem is not None:
            return records, f"{problem} at byte {at} of {len(data)}"
        assert record is not None
        records.append((*record, at))
    return records, None


def _records(data: bytes, limit: int) -> Iterator[tuple[int, str | None, tuple[bytes, Any] | None]]:
    at = 0
    while at < len(data):
        if len(data) - at < HEAD:
            yield at, "a torn record", None
            return
        size, crc, kind = _HEAD.unpack_from(data, at)
        if size > limit:
            yield at, f"a record of {size} bytes (at most {limit})", None
            return
        body = data[at + HEAD : at + HEAD + size]
        if len(body) < size:
            yield at, "a torn record", None
            return
        if zlib.crc32(body, zlib.crc32(bytes([kind]))) != crc:
            yield at, "a corrupt record", None
            return
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            try:  # NaN, or lone surrogates escaped: as the wire writes them
                payload = json.loads(body)
            except (ValueError, RecursionError):
                yield at, "a record that is not JSON", None
                return
        yield at, None, (bytes([kind]), payload)
        at += HEAD + size


class JournalFile:
    """The append-only file of one kernel's journal, and its size."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, NAME)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.size = os.fstat(self.fd).st_size
        self._rewrite: _Rewrite | None = None

    def append(self, record: bytes | tuple[bytes, bytes]) -> None:
        """One record (or its head and body), at the end."""
        parts = (record,) if isinstance(record, bytes) else record
        want = sum(len(p) for p in parts)
        written = os.writev(self.fd, parts)
        self.size += written
        if written != want:  # a full disk: the rest never lands mid-file
            raise OSError(f"journal: short write ({written} of {want} bytes)")

    def replace(self, records: Iterable[bytes], copy: tuple[int, int] = (0, 0)) -> None:
        """The file becomes ``records`` and then the bytes ``copy`` (start, end) of the
        file as it was: written beside it (a MiB at a time; the copy by the kernel),
        then renamed over it.  Not fsynced: the file is for a service killed, not a
        machine that loses power."""
        new = self.path + ".new"
        fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        size = 0
        try:
            pending = bytearray()
            for record in records:
                pending += record
                if len(pending) >= _CHUNK:
                    size += _write_all(fd, pending)
                    pending = bytearray()
            size += _write_all(fd, pending)
            size += _copy(self.path, fd, *copy)
        finally:
            os.close(fd)
        os.replace(new, self.path)
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self.size = size

    def begin(self, records: list[bytes], copy: tuple[int, int]) -> None:
        """Start rewriting the file in a thread: ``records``, then the bytes ``copy`` of
        the file as it is, into ``journal.new``.  Appends go on here meanwhile;
        :meth:`finish` adds them to the new file and renames it over this one."""
        fd = os.open(self.path + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._rewrite = _Rewrite(fd, copy[1])
        thread = threading.Thread(target=self._rewrite.run, args=(self.path, records, copy))
        self._rewrite.thread = thread
        thread.start()

    @property
    def rewriting(self) -> bool:
        """Whether a rewrite was begun and not finished."""
        return self._rewrite is not None

    @property
    def rewritten(self) -> bool:
        """Whether the rewrite's thread is done (:meth:`finish` then waits for nothing)."""
        return self._rewrite is not None and not self._rewrite.thread.is_alive()

    def finish(self, wait: bool = True) -> bool:
        """Wait for the rewrite; add what was appended since it began; rename.  Unless
        ``wait``, more than a MiB appended meanwhile goes on in the thread first (then
        False: not finished yet)."""
        rewrite = self._rewrite
        assert rewrite is not None
        rewrite.thread.join()
        if not wait and rewrite.error is None and self.size - rewrite.end > _CHUNK:
            copy, rewrite.end = (rewrite.end, self.size), self.size
            rewrite.thread = threading.Thread(target=rewrite.more, args=(self.path, copy))
            rewrite.thread.start()
            return False
        self._rewrite = None
        try:
            if rewrite.error is not None:
                raise rewrite.error
            size = rewrite.size + _copy(self.path, rewrite.fd, rewrite.end, self.size)
        except BaseException:
            os.close(rewrite.fd)
            os.unlink(self.path + ".new")
            raise
        os.close(rewrite.fd)
        os.replace(self.path + ".new", self.path)
        old, self.fd = self.fd, os.open(self.path, os.O_WRONLY | os.O_APPEND)
        # Its last close frees the old file's blocks: tens of ms for a large one.
        threading.Thread(target=os.close, args=(old,)).start()
        self.size = size
        return True

    def close(self) -> None:
        """No more records (a rewrite begun is finished first)."""
        if self._rewrite is not None:
            self.finish()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _Rewrite:
    """A rewrite running in a thread (only system calls: they let the GIL go)."""

    def __init__(self, fd: int, end: int) -> None:
        self.fd = fd
        self.end = end  # where the bytes appended since it began start
        self.size = 0
        self.error: BaseException | None = None
        self.thread: threading.Thread

    def run(self, path: str, records: list[bytes], copy: tuple[int, int]) -> None:
        try:
            self.size = _write_all(self.fd, bytearray(b"".join(records)))
            self.size += _copy(path, self.fd, *copy)
        except BaseException as e:  # told by finish(), in the reactor's thread
            self.error = e

    def more(self, path: str, copy: tuple[int, int]) -> None:
        try:
            self.size += _copy(path, self.fd, *copy)
        except BaseException as e:
            self.error = e


def _write_all(fd: int, data: bytearray) -> int:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return len(data)


def _copy(path: str, fd: int, start: int, end: int) -> int:
    """Bytes ``start`` to ``end`` of the file at ``path`` appended to ``fd``."""
    if end <= start:
        return 0
    src = os.open(path, os.O_RDONLY)
    try:
        at = start
        while at < end:
            try:
                n = os.copy_file_range(src, fd, end - at, at)
            except OSError:  # not across these file systems: through memory
                n = _write_all(fd, bytearray(os.pread(src, min(_CHUNK, end - at), at)))
            if n <= 0:
                raise OSError(f"journal: {path} ended at byte {at} of {end}")
            at += n
    finally:
        os.close(src)
    return end - start
