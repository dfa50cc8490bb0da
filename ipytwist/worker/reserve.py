"""The worker's emergency reserve of address space, for when user code exhausts it.

A cell that fills its address space (``RLIMIT_AS``) and keeps the memory leaves
nothing for what must follow its ``MemoryError``: IPython's traceback formatting, the
error event, the reply, the history.  The reserve is a mapping of anonymous memory
that is never touched (it costs address space, not RSS); :meth:`MemoryReserve.release`
unmaps it when a ``MemoryError`` reaches IPython's ``showtraceback`` or the request
loop, and :meth:`MemoryReserve.take` maps it again after the reply, once user code
let go of enough (``del hog``), or a smaller one meanwhile.  IPython's history thread
is kept alive through a MemoryError too (:func:`history_survives_memory_errors`).
"""

from __future__ import annotations

import mmap
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: The reserve's size: IPython's traceback formatting of a MemoryError (stack_data,
#: pygments) takes a few MiB the first time.
RESERVE_BYTES = 32 * 2**20
#: The smallest reserve worth keeping when the full one cannot be had.
MIN_RESERVE_BYTES = 2**20
#: IPython's HistoryManager: its caches of lines to write, and their locks.
_INPUTS, _INPUT_LOCK = "db_input_cache", "db_input_cache_lock"
_OUTPUTS, _OUTPUT_LOCK = "db_output_cache", "db_output_cache_lock"


class MemoryReserve:
    """Address space held back for a MemoryError's aftermath."""

    def __init__(self, size: int = RESERVE_BYTES) -> None:
        self.size = size
        self._block: mmap.mmap | None = None
        self.releases = 0
        self.take()

    @property
    def held(self) -> int:
        """The bytes held now (0 after a release until the next take)."""
        return len(self._block) if self._block is not None else 0

    def take(self) -> int:
        """Hold the full reserve again if it is not held; otherwise as much as can be
        had, halving down to MIN_RESERVE_BYTES (a smaller reserve is kept until the
        full one can be had).  Returns the bytes held."""
        size = self.size
        while size > self.held and size >= MIN_RESERVE_BYTES:
            try:
                block = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            except (OSError, MemoryError):
                size //= 2
                continue
            self.release()
            self._block = block
            break
        return self.held

    def release(self) -> None:
        """Give the reserve back to the allocator (no allocation needed to do it)."""
        block, self._block = self._block, None
        if block is not None:
            block.close()
            self.releases += 1


def after_release(release: Callable[[], None], fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``; if that runs out of memory, ``release`` (the reserve) and once more."""
    try:
        return fn(*args)
    except MemoryError:
        release()
        return fn(*args)


def history_survives_memory_errors(history: Any) -> None:
    """IPython's HistoryManager ``history``: a MemoryError while it writes a cache to
    SQLite (in its saving thread, while user code holds all memory) would end that
    thread for good and lose the cached lines.  Instead the write is rolled back (as
    IPython's ``with conn:`` does) and the lines go back into the cache, written with
    the next batch."""
    unwritten: dict[str, list[Any]] = {_INPUTS: [], _OUTPUTS: []}

    def guard(name: str, write: Callable[[Any], None]) -> Callable[[Any], None]:
        def guarded(conn: Any) -> None:
            try:
                write(conn)
            except MemoryError:  # IPython empties the cache next, by binding a new list
                unwritten[name] = getattr(history, name)

        return guarded

    history._writeout_input_cache = guard(_INPUTS, history._writeout_input_cache)
    history._writeout_output_cache = guard(_OUTPUTS, history._writeout_output_cache)
    writeout = history.writeout_cache

    def writeout_cache(conn: Any = None) -> None:
        try:
            writeout(conn)
            for name, lock in ((_INPUTS, _INPUT_LOCK), (_OUTPUTS, _OUTPUT_LOCK)):
                lines = unwritten[name]
                if lines:
                    with getattr(history, lock):
                        lines.extend(getattr(history, name))
                        setattr(history, name, lines)
                    unwritten[name] = []
        except MemoryError:
            pass  # what is not back in the cache yet goes back with the next batch

    history.writeout_cache = writeout_cache
