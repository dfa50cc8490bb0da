"""The worker's stdout and stderr: text streams straight onto fds 1 and 2, kept working.

Python-level and C-level writes share one pipe per stream, so
``print(); os.system()`` keeps its order.  User code may close fd 1, set
``sys.stdout = None`` or close ``sys.stdout``; :meth:`StdStreams.restore`,
called before each request, puts the pipes and the streams back, as a user of
ipykernel expects printing to work again in the next cell.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable


def _text_stream(fd: int) -> io.TextIOWrapper:
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(
        io.BufferedWriter(raw, 1 << 16),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class StdStreams:
    """``sys.stdout``/``sys.stderr`` on fds 1 and 2, with the pipes saved to restore."""

    def __init__(self, c_flush: Callable[[], object] = lambda: None) -> None:
        self.c_flush = c_flush
        self._saved = {fd: os.dup(fd) for fd in (1, 2)}  # not inherited by children
        self._pipes = {fd: _identity(fd) for fd in (1, 2)}
        self.out = _text_stream(1)
        self.err = _text_stream(2)
        self.install()

    def install(self) -> None:
        sys.stdout, sys.stderr = self.out, self.err

    def flush(self) -> None:
        """Python's buffers, then C stdio's (before each event, in the main thread)."""
        self.flush_python()
        self.c_flush()

    def flush_python(self) -> None:
        for stream in (self.out, self.err):
            try:
                stream.flush()
            except (ValueError, OSError):
                pass

    def restore(self) -> None:
        """Undo what the last cell did to fds 1 and 2 and to sys.stdout/stderr."""
        for fd in (1, 2):
            if _identity(fd) != self._pipes[fd]:
                os.dup2(self._saved[fd], fd)
        if self.out.closed:
            self.out = _text_stream(1)
        if self.err.closed:
            self.err = _text_stream(2)
        if not _writable(sys.stdout):
            sys.stdout = self.out
        if not _writable(sys.stderr):
            sys.stderr = self.err


def _writable(stream: object) -> bool:
    """A stream user code may have replaced on purpose (a file, a StringIO) stays."""
    return stream is not None and hasattr(stream, "write") and not getattr(stream, "closed", False)
