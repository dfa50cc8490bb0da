"""The keeper's writers: requests into the interpreter's fd 3 and frames to the service,
each a piece at a time, neither copying what it writes (docs/durable-kernels.md).

A comm message with a 16 MiB buffer arrives as one ``REQUEST`` frame; the keeper
writes it into fd 3 as the pipe takes it, from the frame's own bytes, and takes
(acks) it only once it is all written.  Frames to the service go out from the
link's kept bodies, as the socket takes them, so the window is held once.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
from collections import deque

from ..link.unixpath import bind_unix

__all__ = ["FrameQueue", "RequestFeed", "drain", "exit_phrase", "log", "peer_uid", "prepare_link"]
__all__ += ["inode_of", "remove_socket_file", "wakeup_pipe"]

#: Parts gathered into one ``sendmsg`` (far below IOV_MAX).
_GATHER = 64
_CRED = struct.Struct("3i")


def exit_phrase(code: int) -> str:
    """How the interpreter ended, in the words of the kernel's notice (as
    ``kernel.process.describe_exit`` says it of a worker on pipes)."""
    if code >= 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"was killed by signal {-code} ({name})"


def log(line: str) -> None:
    """One line on the keeper's stderr (the service's log while it started the keeper)."""
    try:
        os.write(2, f"ipytwist keeper {os.getpid()}: {line}\n".encode())
    except OSError:
        pass


def wakeup_pipe() -> int:
    """The read end of a pipe that every signal with a Python handler writes a byte to
    (``signal.set_wakeup_fd``): a selector wakes for it."""
    r, w = os.pipe()
    for fd in (r, w):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    return r


def drain(fd: int) -> None:
    """Read a non-blocking pipe empty."""
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def peer_uid(conn: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket (``SO_PEERCRED``);
    None where the system does not say."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    _, uid, _ = _CRED.unpack(conn.getsockopt(socket.SOL_SOCKET, option, _CRED.size))
    return int(uid)


def _consume(parts: deque[memoryview], n: int) -> None:
    """Drop the first ``n`` bytes of ``parts``."""
    while n:
        head = parts[0]
        if n >= len(head):
            parts.popleft()
            n -= len(head)
        else:
            parts[0] = head[n:]
            n = 0


class FrameQueue:
    """Frames waiting for the service's socket, as views of their parts (a part may carry
    a descriptor, sent with its first byte)."""

    def __init__(self) -> None:
        self.parts: deque[memoryview] = deque()
        #: Descriptors to send, by the ``id`` of the part they go with (while queued).
        self._fds: dict[int, int] = {}

    def __bool__(self) -> bool:
        return bool(self.parts)

    def add(self, parts: list[bytes | memoryview] | bytes) -> None:
        """Queue ``parts`` (or one string of bytes) after what waits."""
        for part in [parts] if isinstance(parts, bytes) else parts:
            if len(part):
                self.parts.append(memoryview(part).cast("B"))

    def add_with_fd(self, data: bytes, fd: int) -> None:
        """Queue ``data`` (not empty), with a copy of descriptor ``fd`` on its first byte."""
        view = memoryview(data).cast("B")
        self.parts.append(view)
        self._fds[id(view)] = fd

    def clear(self) -> None:
        """The connection is gone: what waits goes out again from the link's kept frames."""
        self.parts.clear()
        self._fds.clear()

    def _batch(self) -> tuple[list[memoryview], list[tuple[int, int, bytes]]]:
        """The parts of the next ``sendmsg``: up to the next one with a descriptor, which
        leads a batch of its own (with its ``SCM_RIGHTS``)."""
        parts = self.parts
        fd = self._fds.get(id(parts[0]))
        if fd is not None:
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))]
            return [parts[0]], rights
        batch = []
        for i in range(min(len(parts), _GATHER)):
            if i and self._fds and id(parts[i]) in self._fds:
                break
            batch.append(parts[i])
        return batch, []

    def write(self, conn: socket.socket) -> None:
        """Send what the socket takes now; :class:`OSError` if the connection broke."""
        parts = self.parts
        while parts:
            batch, rights = self._batch()
            try:
                n = conn.sendmsg(batch, rights)
            except (BlockingIOError, InterruptedError):
                return
            if rights:
                self._fds.pop(id(parts[0]), None)  # (it went with the first byte)
            _consume(parts, n)
            if n < sum(len(p) for p in batch):
                return  # the socket is full


class RequestFeed:
    """Request records for fd 3: each kept as a view of its frame's body, with its seq,
    and written as the pipe takes it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._items: deque[tuple[int, memoryview]] = deque()

    def __bool__(self) -> bool:
        return bool(self._items)

    def add(self, seq: int, body: bytes | bytearray) -> None:
        """Queue the request of frame ``seq`` (an empty one is written at once)."""
        if body:
            self._items.append((seq, memoryview(body).cast("B")))

    def written_before(self, taken: int) -> int:
        """The highest seq (of ``taken`` so far) whose request, and every earlier one's, is
        all written: what the keeper may ack."""
        return self._items[0][0] - 1 if self._items else taken

    def write(self) -> None:
        """Write what the pipe takes; the interpreter gone (EPIPE), drop everything."""
        items = self._items
        while items:
            seq, view = items[0]
            try:
                n = os.write(self.fd, view)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                items.clear()  # no reader any more; the interpreter's end follows
                return
            if n < len(view):
                items[0] = (seq, view[n:])
                return
            items.popleft()


def prepare_link(path: str, secret: bytes) -> tuple[socket.socket, int]:
    """What a keeper inherits from whoever starts it: the socket listening at ``path``
    (of any length) and the read end of a pipe that holds ``secret`` (never the
    environment or argv)."""
    listen = bind_unix(path)
    r, w = os.pipe()
    os.write(w, secret)
    os.close(w)
    return listen, r


def inode_of(path: str) -> int | None:
    """The inode of the file at ``path``, if there is one."""
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def remove_socket_file(path: str, inode: int | None) -> None:
    """Remove the socket file at ``path`` if it is still ``inode`` (a later keeper of the
    kernel may have taken the path), then its directory if nothing else is in it."""
    if inode is not None and inode_of(path) == inode:
        try:
            os.unlink(path)
        except OSError:
            pass
    try:
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass
