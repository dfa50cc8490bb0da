"""Small requests straight into the interpreter's request pipe, past its keeper.

From link version 2 the keeper hands the service a copy of the write end of the
interpreter's fd 3 (a ``PIPE`` frame with ``SCM_RIGHTS``).  A request of at most
``PIPE_BUF`` bytes is then one ``write``: atomic (all of it or ``EAGAIN``, never a
torn record, even if the service is killed), and one process wakeup less than
through the keeper.  Order is kept by the caller's rule: straight in only while the
keeper has acked every frame the service sent (so it has written every earlier
request, and delivered every earlier signal); anything else goes through the keeper.
"""

from __future__ import annotations

import os
import select
from collections.abc import Sequence

from twisted.logger import Logger

__all__ = ["ATOMIC_BYTES", "DirectPipe"]

#: A write to a pipe of at most this many bytes is never interleaved or cut.
ATOMIC_BYTES = select.PIPE_BUF


class DirectPipe:
    """The write end of one interpreter's request pipe, once its keeper has sent it."""

    log = Logger()

    def __init__(self) -> None:
        self.fd: int | None = None
        #: Descriptors received on the link and not yet claimed by a ``PIPE`` frame.
        self._received: list[int] = []

    def received(self, fd: int) -> None:
        """A descriptor came on the link (it is never inherited by later children)."""
        os.set_inheritable(fd, False)
        self._received.append(fd)

    def claim(self) -> None:
        """A ``PIPE`` frame came: the descriptor sent with it is the pipe (any other
        received is closed)."""
        if not self._received:
            return
        fd = self._received.pop()
        self._close_received()
        if os.get_blocking(fd):  # (the keeper's is non-blocking: a blocking write could hang)
            os.close(fd)
            return
        self.close()
        self.fd = fd

    def write(self, parts: Sequence[bytes | memoryview]) -> bool:
        """Write a record's ``parts`` whole if it can go straight in now; False (nothing
        written) if it must go through the keeper."""
        if self.fd is None or sum(len(p) for p in parts) > ATOMIC_BYTES:
            return False
        try:
            os.write(self.fd, b"".join(parts))  # (PIPE_BUF at most: all of it, or EAGAIN)
        except BlockingIOError:
            return False  # the interpreter is behind: the keeper queues it
        except OSError as e:
            self.log.info("request pipe closed ({why}): requests go through the keeper", why=e)
            self.close()
            return False
        return True

    def close(self) -> None:
        """The link is gone (or the pipe broke): forget the pipe."""
        self._close_received()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _close_received(self) -> None:
        for fd in self._received:
            os.close(fd)
        self._received.clear()
