"""``print('x', end='')`` then a long wait still shows ``x`` promptly: a thread flushes
Python's buffers every :data:`PARTIAL_LINE_FLUSH_SECONDS` while cells run.

The thread is woken only when a cell starts after the kernel was idle for a while:
while cells keep coming it flushes on its own clock, and goes back to sleep once a
whole period has passed with none running.  (Woken at every cell, it cost each round
trip of a short cell two more thread switches and a turn of the GIL: 0.2 ms.)
"""

from __future__ import annotations

import threading

from .stdio import StdFiles

__all__ = ["PARTIAL_LINE_FLUSH_SECONDS", "CellClock", "flush_partial_lines"]

PARTIAL_LINE_FLUSH_SECONDS = 0.05


class CellClock:
    """When cells run, as the flush thread needs to know it (the main thread calls
    :meth:`start` and :meth:`done`, which wake the thread only if it sleeps)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._started = 0
        self._seen = 0
        self._running = False
        self._asleep = False

    def start(self) -> None:
        """A cell starts (the main thread)."""
        self._running = True
        self._started += 1
        if self._asleep:
            with self._cond:
                self._cond.notify()

    def done(self) -> None:
        """The cell is over (the main thread)."""
        self._running = False

    def wait_for_a_cell(self) -> None:
        """Sleep until a cell has started since the last look (the flush thread)."""
        with self._cond:
            self._asleep = True
            while self._started == self._seen:
                self._cond.wait()
            self._asleep = False
            self._seen = self._started

    def went_on(self) -> bool:
        """Whether a cell ran since the last look, or runs now (the flush thread)."""
        went = self._started != self._seen or self._running
        self._seen = self._started
        return went


def flush_partial_lines(std: StdFiles, cells: CellClock) -> None:
    """The flush thread's loop."""
    pause = threading.Event()
    while True:
        cells.wait_for_a_cell()
        while True:
            pause.wait(PARTIAL_LINE_FLUSH_SECONDS)
            try:
                std.flush_python()
            except MemoryError:
                pass  # user code holds all memory: the main thread's flush writes it later
            if not cells.went_on():
                break
