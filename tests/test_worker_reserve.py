"""The worker's emergency reserve (in process): address space, not memory, and a
smaller reserve while the full one cannot be had."""

from __future__ import annotations

import mmap
from typing import Any

import pytest

from ipytwist.worker import reserve as reserve_module
from ipytwist.worker.reserve import MIN_RESERVE_BYTES, RESERVE_BYTES, MemoryReserve


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(field)


def test_the_reserve_is_address_space_not_resident_memory() -> None:
    """Taking it grows VmSize by its size and RSS by (almost) nothing; releasing it
    gives the address space back."""
    vm, rss = _status_kib("VmSize"), _status_kib("VmRSS")
    r = MemoryReserve()
    assert r.held == RESERVE_BYTES
    assert _status_kib("VmSize") - vm >= RESERVE_BYTES // 1024
    assert _status_kib("VmRSS") - rss < 1024
    r.release()
    assert r.held == 0 and r.releases == 1
    assert _status_kib("VmSize") - vm < RESERVE_BYTES // 1024
    r.release()  # twice is nothing
    assert r.releases == 1


def test_a_smaller_reserve_until_the_full_one_can_be_had(monkeypatch: pytest.MonkeyPatch) -> None:
    """While only 3 MiB can be mapped, it holds 2 MiB (halving); below MIN_RESERVE_BYTES
    nothing; the next take once memory is back holds the full reserve again."""
    limit = [3 * 2**20]
    real = mmap.mmap

    def scarce(fileno: int, length: int, **kw: Any) -> mmap.mmap:
        if length > limit[0]:
            raise OSError(12, "Cannot allocate memory")
        return real(fileno, length, **kw)

    monkeypatch.setattr(reserve_module.mmap, "mmap", scarce)
    r = MemoryReserve()
    assert r.held == RESERVE_BYTES // 16 == 2 * 2**20
    limit[0] = MIN_RESERVE_BYTES - 1
    r.release()
    assert r.take() == 0
    limit[0] = RESERVE_BYTES
    assert r.take() == RESERVE_BYTES
    assert r.take() == RESERVE_BYTES  # held: nothing mapped again
    r.release()
