"""LogLimiter / LimitedLog: a flood of rejected input is a few log lines (fake clock)."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock

from ipytwist.loglimit import LimitedLog


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def warn(self, fmt: str, **kw: Any) -> None:
        self.lines.append(fmt.format(**kw))


def test_a_flood_is_a_burst_and_one_summary() -> None:
    """20,000 rejections in a second give `burst` lines, then one summary line with the
    exact count once the window has passed."""
    clock, out = Clock(), Lines()
    log = LimitedLog(out, clock, burst=10, window=10.0)
    for i in range(20_000):
        log.warn("dropped message {i}", i=i)
        clock.advance(1 / 20_000)
    assert len(out.lines) == 10
    clock.advance(10)
    assert len(out.lines) == 11
    assert out.lines[-1].startswith("19990 more similar line(s) suppressed")
    log.warn("later")
    assert out.lines[-1] == "later"


def test_suppressed_count_is_reported_before_the_next_allowed_line() -> None:
    clock, out = Clock(), Lines()
    log = LimitedLog(out, clock, burst=2, window=5.0)
    for _ in range(5):
        log.warn("x")
    clock.advance(5)  # window over: the timed summary reports the 3
    assert out.lines == ["x", "x", "3 more similar line(s) suppressed (at most 2 per 5s)"]
    for _ in range(3):
        log.warn("y")
    assert out.lines[-2:] == ["y", "y"]


def test_each_kind_has_its_own_allowance() -> None:
    """A flood of one kind of rejection does not hide the first line of another kind."""
    clock, out = Clock(), Lines()
    log = LimitedLog(out, clock, burst=3, window=10.0)
    for _ in range(100):
        log.warn("bad signature", "shell:sig")
    log.warn("too large", "shell:size")
    assert out.lines == ["bad signature"] * 3 + ["too large"]
