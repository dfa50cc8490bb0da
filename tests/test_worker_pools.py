"""The fork server's fill of Python's allocator pools (worker/pools.py): the free blocks
of used pools are read from the allocator's own statistics and taken."""

from __future__ import annotations

from ipytwist.worker.pools import fill_pools, free_blocks


def test_the_free_blocks_are_read_for_every_size_class() -> None:
    blocks = free_blocks()
    assert set(blocks) >= {16, 32, 64, 512}
    assert all(free >= 0 for free in blocks.values())


def test_filling_takes_the_free_blocks_of_the_classes_objects_can_have() -> None:
    garbage = [bytes(64 - 33) for _ in range(5000)]
    del garbage[::2]  # holes in pools of the 64-byte class
    before = free_blocks()
    assert before[64] >= 2500
    assert fill_pools() >= 2500
    after = free_blocks()
    assert after[64] < before[64] - 2000
