"""The worker's stdout and stderr: text files straight onto fds 1 and 2, kept working.

Python-level and C-level writes share one pipe per file, so
``print(); os.system()`` keeps its order.  User code may close fd 1, set
``sys.stdout = None`` or close ``sys.stdout``; :meth:`StdFiles.restore`,
called before each request, puts the pipes and the files back, as a user of
ipykernel expects printing to work again in the next cell.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable


def _text_file(fd: int) -> io.TextIOWrapper:
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(
        io.BufferedWriter(raw, 1 << 16),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )


def identity(fd: int) -> tuple[int, int] | None:
    """What file ``fd`` is (device, inode), or None if it is closed."""
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class StdFiles:
    """``sys.stdout``/``sys.stderr`` on fds 1 and 2, with the pipes saved to restore."""

    def __init__(self, c_flush: Callable[[], object] = lambda: None) -> None:
        self.c_flush = c_flush
        self._saved = {fd: os.dup(fd) for fd in (1, 2)}  # not inherited by children
        self._pipes = {fd: identity(fd) for fd in (1, 2)}
        self.out = _text_file(1)
        self.err = _text_file(2)
        self.install()

    def install(self) -> None:
        sys.stdout, sys.stderr = self.out, self.err

    def flush(self) -> None:
        """Python's buffers, then C stdio's (before each event, in the main thread)."""
        self.flush_python()
        self.c_flush()

    def flush_python(self) -> None:
        for file in (self.out, self.err):
            try:
                file.flush()
            except (ValueError, OSError):
                pass

    def restore(self) -> None:
        """Undo what the last cell did to fds 1 and 2 and to sys.stdout/stderr."""
        for fd in (1, 2):
            if identity(fd) != self._pipes[fd]:
                os.dup2(self._saved[fd], fd)
        if self.out.closed:
            self.out = _text_file(1)
        if self.err.closed:
            self.err = _text_file(2)
        if not _writable(sys.stdout):
            sys.stdout = self.out
        if not _writable(sys.stderr):
            sys.stderr = self.err


def _writable(file: object) -> bool:
    """A file user code may have put in place on purpose (a file, a StringIO) stays."""
    return file is not None and hasattr(file, "write") and not getattr(file, "closed", False)
