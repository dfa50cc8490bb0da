"""A byte stream fed to a sans-IO decoder in pieces, cut where a property test says."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def fed_in_pieces(feed: Callable[[bytes], list[T]], data: bytes, cuts: list[int]) -> list[T]:
    """What ``feed`` gives back from ``data`` cut at ``cuts`` (modulo its length)."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    out: list[T] = []
    for a, b in zip(points, points[1:], strict=False):
        out.extend(feed(data[a:b]))
    return out
