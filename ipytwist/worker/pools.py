"""Python's allocator pools filled in the fork server before it forks (issue 20).

After a fork, the child's small objects go first into the free blocks of pools the
server left partly used: a few hundred KiB scattered over hundreds of pages, each of
which the first allocation copies.  :func:`fill_pools` takes those blocks in the server,
with objects kept for its life (their pages stay shared), so a kernel's own objects go
to fresh pools of its own, packed.  How many blocks each size class has free is read
from ``sys._debugmallocstats()``; if that cannot be read, nothing is filled.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

__all__ = ["fill_pools", "free_blocks"]

_ROW = re.compile(r"^\s*\d+\s+(\d+)\s+\d+\s+\d+\s+(\d+)\s*$", re.MULTILINE)
#: The objects that hold the blocks (for the server's life).
_KEPT: list[object] = []
#: A bytes object of length n takes 33 + n bytes; an int past 2**30 (and under 2**60) 32.
_BYTES_HEADER = 33


def free_blocks() -> dict[int, int]:
    """Free blocks in used pools, by block size (empty if the statistics cannot be read:
    they are written by C to file descriptor 2, redirected here for the call)."""
    stats = getattr(sys, "_debugmallocstats", None)
    if stats is None:
        return {}
    with tempfile.TemporaryFile() as f:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(f.fileno(), 2)
            stats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read().decode("ascii", "replace")
    return {int(size): int(free) for size, free in _ROW.findall(text)}


def fill_pools(rounds: int = 3) -> int:
    """Take every free block of every size class an object can have; how many.  (A
    round's own list and the last pool of each class leave a few: a round more takes
    what the last left in the old pools.)"""
    taken = 0
    for _ in range(rounds):
        for size, free in free_blocks().items():
            if size == 32:
                _KEPT.append([(1 << 40) + i for i in range(free)])
            elif size > _BYTES_HEADER:
                _KEPT.append([bytes(size - _BYTES_HEADER) for _ in range(free)])
            else:
                continue
            taken += free
    return taken
