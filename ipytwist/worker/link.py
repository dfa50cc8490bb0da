"""The worker's end of the record pipes, and SIGINT that only hits user code."""

from __future__ import annotations

import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from ..framing import RecordDecoder, record_parts, write_parts
from . import SIGINTS_BEFORE
from .reserve import after_release
from .stdio import identity


class Interrupts:
    """SIGINT raises ``KeyboardInterrupt`` only while user code is running.

    Outside user code (idle, writing a record, building a reply) the signal is
    ignored or held back until the critical section ends, so an interrupt can
    never tear a record in half or lose a reply.
    """

    def __init__(self) -> None:
        self.armed = False
        self._held = 0
        self._pending = False
        #: SIGINTs had, less those before the kernel that sends them began counting.
        self.received = 0
        self._base = 0
        self._last_before = 0

    def install(self) -> None:
        signal.signal(signal.SIGINT, self.handler)

    def handler(self, signum: int, frame: FrameType | None) -> None:
        self.received += 1
        if not self.armed:
            # The kernel only interrupts while a request is out: one that arrives
            # just before user code starts is meant for it (cleared by discard()).
            self._pending = True
            return
        if self._held:
            self._pending = True
            return
        raise KeyboardInterrupt

    @contextmanager
    def held(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals are only delivered to the main thread
            return
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            if not self._held and self._pending and self.armed:
                self._pending = False
                raise KeyboardInterrupt

    @property
    def count(self) -> int:
        """The SIGINTs had, counted as the current kernel counts them (each reply tells
        it: one that user code sent itself is then counted by both)."""
        return self.received - self._base

    def discard(self, sent_before: object = None) -> None:
        """A request is read: forget an interrupt that arrived between requests, meant for
        a finished one.  ``sent_before`` is the number of SIGINTs the kernel had sent
        before the request (its record's ``SIGINTS_BEFORE``): an interrupt beyond those
        was sent after it, for it (the kernel announces a cell before the worker reads
        it: a client may interrupt it that soon).  A count lower than the last one is a
        new kernel's (the worker was adopted): counted from here."""
        if not isinstance(sent_before, int):
            self._pending = False
            return
        if sent_before < self._last_before:
            self._base = self.received - sent_before
        self._last_before = sent_before
        if self.count <= sent_before:
            self._pending = False

    @contextmanager
    def user_code(self) -> Iterator[None]:
        self.armed = True
        try:
            if self._pending:
                self._pending = False
                raise KeyboardInterrupt
            yield
        finally:
            self.armed = False
            self._pending = False


class WorkerLink:
    """Blocking reads of request records, atomic writes of event records."""

    def __init__(
        self,
        read_fd: int,
        write_fd: int,
        interrupts: Interrupts,
        before_emit: Callable[[], None] = lambda: None,
        sync_marker: bytes = b"",
        sync_fds: tuple[int, ...] = (1, 2),
        on_memory_error: Callable[[], None] = lambda: None,
    ) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.interrupts = interrupts
        self.before_emit = before_emit
        #: Written to each of ``sync_fds`` before every event (see ``sync_marker``).
        self.sync_marker = sync_marker
        self.sync_fds = sync_fds
        #: Called when reading or building a record ran out of memory, before trying
        #: again once (the worker's emergency reserve is released there).
        self.on_memory_error = on_memory_error
        self._decoder = RecordDecoder()
        self._queue: deque[dict[str, Any]] = deque()
        self._write_lock = threading.Lock()
        #: Keep a cell's result to go out with the next event (set around a cell).
        self.hold_result = False
        self._held: list[bytes | memoryview] = []
        #: The output pipes (what fds 1 and 2 are when the link is made), and the markers
        #: owed on each while user code has them closed or pointing elsewhere.
        self._pipes = {fd: identity(fd) for fd in sync_fds}
        self._owed: dict[int, int] = {}

    def read(self) -> dict[str, Any] | None:
        """The next request record, or None when the kernel has gone away."""
        while not self._queue:
            data = after_release(self.on_memory_error, os.read, self.read_fd, 1 << 16)
            if not data:
                return None
            try:
                self._queue.extend(self._decoder.feed(data))
            except MemoryError:  # a record the decoder keeps until it is decoded
                self.on_memory_error()
                self._queue.extend(self._decoder.feed(b""))
        record = self._queue.popleft()
        if not self.interrupts.armed:  # a new request starts with no stale interrupt
            self.interrupts.discard(record.get(SIGINTS_BEFORE))
        return record

    def read_matching(self, kind: str) -> dict[str, Any] | None:
        """Wait for a record of ``kind``; others wait in the queue for the main loop."""
        kept: list[dict[str, Any]] = []
        try:
            while True:
                rec = self.read()
                if rec is None or rec.get("req") == kind:
                    return rec
                kept.append(rec)
        finally:
            self._queue.extendleft(reversed(kept))

    def emit(self, event: dict[str, Any]) -> None:
        """Send one event, after everything user code already wrote to stdout/stderr.

        While :attr:`hold_result` is set, a cell's ``execute_result`` is kept and goes
        out with the next event (the reply, as a rule) in one write: the reader wakes
        once for both.  The caller sets it only when nothing of user code can run
        between the result and the reply (see ``requests.may_hold_result``)."""
        self.before_emit()
        parts = after_release(self.on_memory_error, record_parts, event)  # nothing written yet
        with self.interrupts.held(), self._write_lock:
            if self.hold_result and not self._held and event.get("ev") == "execute_result":
                self._held = parts
                return
            held, self._held = self._held, []
            self._write_markers(2 if held else 1)
            parts = held + parts  # (one write: the reader finds both at once)
            while parts:
                parts = write_parts(self.write_fd, parts)

    def _write_markers(self, events: int) -> None:
        """One sync marker per event about to be written, on each output fd (at once:
        nothing can come between two events written together).  While user code has
        closed an fd or put another file there, its markers are owed, never written into
        the user's file; :meth:`catch_up` pays them once the pipe is back (the reader
        counts markers against events: one missed would spoil the order for good)."""
        if not self.sync_marker:
            return
        for fd in self.sync_fds:
            self._owed[fd] = self._owed.get(fd, 0) + events
            self._pay(fd)

    def catch_up(self) -> None:
        """Write the markers owed on each output fd that is the pipe again (call after
        the files are restored, before user code writes)."""
        for fd, owed in list(self._owed.items()):
            if owed:
                self._pay(fd)

    def _pay(self, fd: int) -> None:
        if identity(fd) != self._pipes.get(fd):
            return  # closed, or another file: owed until the pipe is back
        try:
            os.write(fd, self.sync_marker * self._owed[fd])
        except OSError:
            return
        self._owed[fd] = 0
