"""The Debug Adapter Protocol's framing and messages, and where a cell's code is kept
(pure).

A DAP message is ``Content-Length: N`` header lines, a blank line, then N
bytes of UTF-8 JSON holding one object.  :class:`DapDecoder` is sans-IO: feed
it bytes in any chunking, it hands back whole messages.  The debugger finds a
cell's code in a file named by a hash of that code (Murmur2, the seed and the
directory rules JupyterLab's debugger is told of in ``debugInfo``): the worker
compiles each cell under that name, and ``dumpCell`` writes the code there.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from typing import Any

__all__ = [
    "HASH_SEED",
    "DapDecoder",
    "DapError",
    "cell_dir",
    "cell_path",
    "make_cell_dir",
    "encode_dap",
    "frame_path",
    "murmur2",
    "response",
    "rich_response",
    "shown_variable",
    "well_formed",
]

#: The largest message read from debugpy (a variable's repr can be large).
MAX_DAP_BYTES = 64 << 20
#: Header bytes before the blank line, at most.
MAX_HEADER_BYTES = 4096
#: The seed of the cell files' hash, as JupyterLab's debugger expects by default.
HASH_SEED = 0xC70F6907
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


class DapError(ValueError):
    """Bytes that are not a DAP message."""


def response(request: dict[str, Any], success: bool = True, **fields: Any) -> dict[str, Any]:
    """The DAP response to ``request``."""
    return {
        "type": "response",
        "request_seq": request.get("seq", 0),
        "command": request.get("command", ""),
        "success": success,
        **fields,
    }


def well_formed(content: Any) -> bool:
    """A DAP request: ``type`` request, an int ``seq``, a ``command``, dict arguments."""
    return (
        isinstance(content, dict)
        and content.get("type") == "request"
        and isinstance(content.get("seq"), int)
        and isinstance(content.get("command"), str)
        and isinstance(content.get("arguments", {}), dict)
    )


def frame_path(frame: Any) -> str:
    """The source path of a DAP stack frame ("" if it has none)."""
    source = frame.get("source") if isinstance(frame, dict) else None
    path = source.get("path") if isinstance(source, dict) else None
    return path if isinstance(path, str) else ""


def rich_response(message: dict[str, Any], data: Any, metadata: Any) -> dict[str, Any]:
    """``richInspectVariables``' response: a MIME bundle, metadata of its types only."""
    data = data if isinstance(data, dict) else {}
    metadata = metadata if isinstance(metadata, dict) else {}
    meta = {k: v for k, v in metadata.items() if k in data}
    return response(message, body={"data": data, "metadata": meta})


def encode_dap(message: dict[str, Any]) -> bytes:
    """One DAP message, header and body."""
    body = json.dumps(message, separators=(",", ":")).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class DapDecoder:
    """Accumulate bytes; :meth:`feed` returns the messages completed so far."""

    def __init__(self, max_bytes: int = MAX_DAP_BYTES) -> None:
        self._buf = bytearray()
        self._length: int | None = None
        self.max_bytes = max_bytes

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buf += data
        out: list[dict[str, Any]] = []
        while True:
            if self._length is None:
                end = self._buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._buf) > MAX_HEADER_BYTES:
                        raise DapError("DAP header too long")
                    return out
                self._length = self._content_length(bytes(self._buf[:end]))
                del self._buf[: end + 4]
            if len(self._buf) < self._length:
                return out
            body = bytes(self._buf[: self._length])
            del self._buf[: self._length]
            self._length = None
            try:
                message = json.loads(body.decode("utf-8"))
            except (ValueError, RecursionError) as e:
                raise DapError(f"DAP body is not JSON: {type(e).__name__}") from None
            if not isinstance(message, dict):
                raise DapError("DAP body is not an object")
            out.append(message)

    def _content_length(self, header: bytes) -> int:
        length = None
        for line in header.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if not sep:
                raise DapError("DAP header line without a colon")
            if name.strip().lower() == b"content-length":
                text = value.strip()
                if not text.isdigit():
                    raise DapError("DAP Content-Length is not a number")
                length = int(text)
        if length is None:
            raise DapError("DAP header without Content-Length")
        if length > self.max_bytes:
            raise DapError(f"DAP message of {length} bytes is too large")
        return length


def murmur2(data: bytes, seed: int = HASH_SEED) -> int:
    """MurmurHash2 (32 bits, x86) of ``data``."""
    n = len(data)
    h = (seed ^ n) & _MASK
    whole = n - n % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = data[whole:]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def cell_dir(pid: int) -> str:
    """The directory of the cell files of the interpreter with process id ``pid``."""
    return os.path.join(tempfile.gettempdir(), f"ipytwist_{pid}")


def make_cell_dir(pid: int) -> str:
    """Create the cell files' directory of interpreter ``pid`` (mode 0700), or check the
    one there: a directory of another user, or a link, in the shared temporary directory
    would let its owner read and change the cells. ``PermissionError`` if it is not ours."""
    path = cell_dir(pid)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(f"{path} is not a private directory of this user")
    return path


def cell_path(code: str, pid: int) -> str:
    """The file a cell's ``code`` is compiled as, and dumped to, in interpreter ``pid``."""
    return os.path.join(cell_dir(pid), f"{murmur2(code.encode('utf-8'))}.py")


_HIDDEN = {
    "__name__", "__doc__", "__package__", "__loader__", "__spec__", "__annotations__",
    "__builtins__", "__builtin__", "__display__", "get_ipython", "debugpy", "exit", "quit",
    "In", "Out", "_oh", "_dh", "_", "__", "___",
}  # fmt: skip


def shown_variable(name: str) -> bool:
    """A variable the debugger lists: not one of IPython's own (as ipykernel hides them)."""
    return name not in _HIDDEN and not re.match(r"_\d|_i", name)
