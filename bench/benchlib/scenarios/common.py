"""What the scenarios share: snapshots of the service process, error tallies, figures."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass

from ..procs import fd_count, kernel_children, kernel_descendants, rss_mib

#: RSS is sampled this often (the soak takes its "after warm-up" and "end" figures as
#: medians of the samples of a window before each point).
RSS_INTERVAL = 0.5


@dataclass(frozen=True)
class Snapshot:
    """The service process at one moment."""

    fds: int
    procs: tuple[int, ...]  # every process below it (its fork server aside)
    rss_mib: float
    #: One per kernel: a worker over pipes, a keeper over the link (the service's child,
    #: or its fork server's).
    children: tuple[int, ...] = ()


def snapshot(pid: int) -> Snapshot:
    return Snapshot(
        fd_count(pid),
        tuple(kernel_descendants(pid)),
        rss_mib(pid),
        tuple(sorted(kernel_children(pid))),
    )


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


class Errors:
    """Failures a scenario met: all counted, the first ``keep`` kept verbatim."""

    def __init__(self, keep: int = 50) -> None:
        self.keep = keep
        self.count = 0
        self.first: list[str] = []
        self.kinds: Counter[str] = Counter()

    def add(self, kind: str, text: str) -> None:
        self.count += 1
        self.kinds[kind] += 1
        if len(self.first) < self.keep:
            self.first.append(f"{kind}: {text[:300]}")

    def __bool__(self) -> bool:
        return self.count > 0

    def report(self) -> str:
        return f"{self.count} errors {dict(self.kinds)}:\n" + "\n".join(self.first)


async def sample_rss(pid: int, out: list[tuple[float, float]], seconds: float) -> None:
    """Append (seconds since the start, RSS in MiB) of ``pid`` to ``out`` every
    :data:`RSS_INTERVAL`, for ``seconds``."""
    t0 = time.monotonic()
    while (now := time.monotonic() - t0) < seconds:
        out.append((now, rss_mib(pid)))
        await asyncio.sleep(RSS_INTERVAL)
