"""SendQueue (one WebSocket's bounded, backpressure-aware queue) with a fake clock."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock

from ipytwist.web.sendqueue import SendQueue


class Harness:
    def __init__(self, **kw: Any) -> None:
        self.clock = Clock()
        self.written: list[tuple[bytes, bool, int]] = []
        self.overflows: list[str] = []
        self.on_write: Any = None
        self.q = SendQueue(self.clock, self._write, self.overflows.append, **kw)

    def _write(self, payload: bytes, is_binary: bool, seq: int) -> None:
        self.written.append((payload, is_binary, seq))
        if self.on_write is not None:
            self.on_write(payload)


def test_passes_through_when_not_paused() -> None:
    """Without backpressure every push is written at once, nothing is queued and no timer
    is armed."""
    h = Harness()
    h.q.push(b"a", False, 1)
    h.q.push(b"b", True)
    assert h.written == [(b"a", False, 1), (b"b", True, 0)]
    assert len(h.q) == 0 and h.q.queued_bytes == 0
    assert h.clock.getDelayedCalls() == []


def test_queues_when_paused_and_resume_drains_in_order() -> None:
    """While paused, pushes are queued (counted in messages and bytes); resume writes them
    in push order, and later pushes go straight through again."""
    h = Harness()
    h.q.pause()
    for i in range(5):
        h.q.push(b"x" * (i + 1), i % 2 == 0, i + 1)
    assert h.written == []
    assert len(h.q) == 5 and h.q.queued_bytes == 15
    h.q.resume()
    assert h.written == [(b"x" * (i + 1), i % 2 == 0, i + 1) for i in range(5)]
    assert len(h.q) == 0 and h.q.queued_bytes == 0
    h.q.push(b"live", False, 6)
    assert h.written[-1] == (b"live", False, 6)


def test_pause_during_drain_stops_and_keeps_order() -> None:
    """If the transport pushes back in the middle of a drain, the rest stays queued, and a
    push meanwhile goes behind it, not ahead of it."""
    h = Harness()
    h.q.pause()
    for p in (b"1", b"2", b"3"):
        h.q.push(p, False)
    h.on_write = lambda payload: h.q.pause() if payload == b"1" else None
    h.q.resume()
    assert [w[0] for w in h.written] == [b"1"]
    assert len(h.q) == 2
    h.q.push(b"4", False)
    assert [w[0] for w in h.written] == [b"1"]
    h.on_write = None
    h.q.resume()
    assert [w[0] for w in h.written] == [b"1", b"2", b"3", b"4"]


def test_over_bound_for_grace_overflows_with_reason() -> None:
    """A queue over its byte bound for the whole grace period reports on_overflow once with
    a reason naming the grace, the backlog and a too-slow client; it is then closed and
    ignores further pushes."""
    h = Harness(max_bytes=10, grace=5.0)
    h.q.pause()
    h.q.push(b"x" * 8, False)
    assert h.clock.getDelayedCalls() == []  # within bound: no timer
    h.q.push(b"y" * 8, False)
    assert len(h.clock.getDelayedCalls()) == 1
    h.clock.advance(4.9)
    assert h.overflows == []
    h.clock.advance(0.2)
    assert len(h.overflows) == 1
    reason = h.overflows[0]
    assert "5s" in reason and "2 messages" in reason and "16 bytes" in reason
    assert "too slow" in reason
    assert h.q.closed and len(h.q) == 0 and h.q.queued_bytes == 0
    h.q.push(b"z", False)
    h.q.resume()
    assert h.written == []
    h.clock.advance(100)
    assert len(h.overflows) == 1


def test_message_count_bound_also_overflows() -> None:
    """The message-count bound counts like the byte bound."""
    h = Harness(max_messages=3, grace=1.0)
    h.q.pause()
    for _ in range(4):
        h.q.push(b"", False)
    h.clock.advance(1.0)
    assert len(h.overflows) == 1 and "4 messages" in h.overflows[0]


def test_dropping_below_bound_cancels_overflow() -> None:
    """Draining below the bound before the grace ends cancels the pending overflow; a later
    excursion over the bound gets a fresh, full grace period."""
    h = Harness(max_bytes=10, grace=5.0)
    h.q.pause()
    h.q.push(b"x" * 20, False)
    h.clock.advance(4.0)
    h.q.resume()
    assert h.clock.getDelayedCalls() == []
    h.clock.advance(10.0)
    assert h.overflows == []
    assert h.written == [(b"x" * 20, False, 0)]

    h.q.pause()
    h.q.push(b"y" * 20, False)
    h.clock.advance(4.9)
    assert h.overflows == []
    h.clock.advance(0.1)
    assert len(h.overflows) == 1


def test_close_discards_and_cancels() -> None:
    """close() drops the backlog and the overflow timer; nothing is written afterwards."""
    h = Harness(max_bytes=1, grace=1.0)
    h.q.pause()
    h.q.push(b"abc", False)
    h.q.close()
    assert h.clock.getDelayedCalls() == []
    h.q.resume()
    h.clock.advance(5)
    assert h.written == [] and h.overflows == []


def test_close_returns_the_notes_of_unwritten_items() -> None:
    """close() hands back, in order, the notes pushed with items that were never written
    (how replies queued for a closed connection reach the client's next connection)."""
    h = Harness()
    h.q.push(b"sent", False, note="r0")
    h.q.pause()
    h.q.push(b"iopub", False, 7)
    h.q.push(b"reply1", False, note="r1")
    h.q.push(b"reply2", False, note="r2")
    assert h.q.close() == ["r1", "r2"]
    assert h.q.close() == []
