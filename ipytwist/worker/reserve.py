"""The worker's emergency reserve of address space, for when user code exhausts it.

A cell that fills its address space (``RLIMIT_AS``) and keeps the memory leaves
nothing for what must follow its ``MemoryError``: IPython's traceback formatting, the
error event, the reply, the history.  The reserve is a mapping of anonymous memory
that is never touched (it costs address space, not RSS); :meth:`MemoryReserve.release`
unmaps it when a ``MemoryError`` reaches IPython's ``showtraceback`` or the request
loop, and :meth:`MemoryReserve.take` maps it again after the reply, once user code
let go of enough (``del hog``), or a smaller one meanwhile.
"""

from __future__ import annotations

import mmap

#: The reserve's size: IPython's traceback formatting of a MemoryError (stack_data,
#: pygments) takes a few MiB the first time.
RESERVE_BYTES = 32 * 2**20
#: The smallest reserve worth keeping when the full one cannot be had.
MIN_RESERVE_BYTES = 2**20


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
