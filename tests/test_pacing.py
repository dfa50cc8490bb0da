"""ReadPacer: reading shared out per reactor turn, fair between kernels, then clients."""

from __future__ import annotations

from typing import Any

from support.fakes import RecordingProducer
from twisted.internet.testing import MemoryReactorClock

from ipytwist.pacing import ReadPacer, pacer_for
from ipytwist.web.reading import PacedProducer

#: Seconds one piece of input takes to read, on the test's clock (a power of two, so
#: that five of them add up to BUDGET exactly).
PIECE = 1 / 256
BUDGET = 5 * PIECE


class Clock:
    """Stands for time.perf_counter: moves only when a reader reads."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeReader:
    """A client with ``pieces`` pieces of input waiting; each read takes PIECE."""

    def __init__(self, clock: Clock, log: list[str], name: str, pieces: int, group: Any = "k"):
        self.clock = clock
        self.log = log
        self.name = name
        self.pieces = pieces
        self.group = group
        self.held = False
        self.fail = False

    def read_some(self) -> bool:
        if self.fail:
            raise RuntimeError("boom")
        self.clock.now += PIECE
        self.pieces -= 1
        self.log.append(self.name)
        return self.pieces > 0

    def hold(self) -> None:
        self.held = True

    def release(self) -> None:
        self.held = False


def make(budget: float = BUDGET) -> tuple[MemoryReactorClock, Clock, ReadPacer, list[str]]:
    reactor = MemoryReactorClock()
    clock = Clock()
    return reactor, clock, ReadPacer(reactor, budget, clock), []


def turn(reactor: MemoryReactorClock) -> None:
    """One reactor turn: the timed calls due now, not those they schedule."""
    due = [c for c in reactor.getDelayedCalls() if c.getTime() <= reactor.seconds()]
    for call in due:
        reactor.calls.remove(call)
        call.func(*call.args, **call.kw)


def test_a_reader_alone_reads_at_once_and_is_never_held() -> None:
    reactor, clock, pacer, log = make()
    r = FakeReader(clock, log, "a", 1)
    pacer.read(r)
    assert log == ["a"] and not r.held and len(pacer) == 0


def test_past_the_budget_readers_wait_in_line_held_and_are_served_a_budget_per_turn() -> None:
    """Five readers of 20 pieces arrive in one turn whose budget is five pieces: one piece
    is read at once, the rest waits in line with its sockets held, and each later turn
    reads the budget's worth until all is read."""
    reactor, clock, pacer, log = make()
    readers = [FakeReader(clock, log, f"r{i}", 20) for i in range(5)]
    for r in readers:
        pacer.read(r)
    assert log == ["r0"] and all(r.held for r in readers)
    turns = 0
    while len(pacer):
        before = len(log)
        turn(reactor)
        turns += 1
        assert len(log) - before <= 5
    assert len(log) == 100 and turns == 20
    assert not any(r.held for r in readers)
    assert pacer.longest == BUDGET


def test_the_line_is_fair_between_kernels_first() -> None:
    """A storm of 50 clients on one kernel: a client of another kernel that arrives while
    it waits in line is read after one piece of the storm, not after one of each (the
    first of the storm read its first piece at once)."""
    reactor, clock, pacer, log = make()
    storm = [FakeReader(clock, log, f"s{i}", 10, group="storm") for i in range(50)]
    for r in storm:
        pacer.read(r)
    other = FakeReader(clock, log, "other", 1, group="quiet")
    pacer.read(other)
    assert other.held
    turn(reactor)
    assert log[:3] == ["s0", "s0", "other"], log[:5]
    assert not other.held


def test_within_a_kernel_its_clients_take_turns() -> None:
    reactor, clock, pacer, log = make(budget=1.0)
    pacer.spent = 1.0  # this turn's time is spent: all three wait in line
    readers = [FakeReader(clock, log, name, 3) for name in "abc"]
    for r in readers:
        pacer.read(r)
    turn(reactor)
    assert log == list("abcabcabc")


def test_a_reader_in_line_asking_again_is_not_queued_twice() -> None:
    reactor, clock, pacer, log = make()
    pacer.spent = 1.0
    r = FakeReader(clock, log, "a", 2)
    pacer.read(r)
    pacer.read(r)
    assert len(pacer) == 1
    turn(reactor)
    assert log == ["a", "a"] and not r.held


def test_a_reader_forgotten_leaves_the_line() -> None:
    """A connection that closes while in line is not read again (and not released)."""
    reactor, clock, pacer, log = make()
    pacer.spent = 1.0
    a, b = FakeReader(clock, log, "a", 2), FakeReader(clock, log, "b", 2)
    pacer.read(a)
    pacer.read(b)
    pacer.forget(a)
    pacer.forget(a)  # twice: nothing more
    turn(reactor)
    assert log == ["b", "b"] and a.held


def test_a_reader_that_fails_is_logged_and_released_and_the_others_go_on() -> None:
    reactor, clock, pacer, log = make()
    pacer.spent = 1.0
    bad, good = FakeReader(clock, log, "bad", 2), FakeReader(clock, log, "good", 1)
    pacer.read(bad)
    pacer.read(good)
    bad.fail = True
    turn(reactor)
    assert log == ["good"] and not bad.held and len(pacer) == 0


def test_the_turn_budget_resets_each_reactor_turn() -> None:
    """What was read in a turn counts until the next one: past the budget, a reader
    waits in line; in the next turn it is read, and the turn after that, with the
    line empty, a reader is read at once again."""
    reactor, clock, pacer, log = make(budget=PIECE)
    pacer.read(FakeReader(clock, log, "a", 1))
    late = FakeReader(clock, log, "late", 1)
    pacer.read(late)  # the budget is spent: in line
    assert late.held and log == ["a"]
    turn(reactor)
    assert log == ["a", "late"]
    turn(reactor)  # a turn with nothing in line
    pacer.read(FakeReader(clock, log, "next", 1))
    assert log[-1] == "next"


def test_one_pacer_per_reactor() -> None:
    reactor = MemoryReactorClock()
    assert pacer_for(reactor) is pacer_for(reactor)
    assert pacer_for(MemoryReactorClock()) is not pacer_for(reactor)


def test_writing_resumes_in_its_turn_of_the_pacer() -> None:
    """Hundreds of connections that drain at once do not all write in one turn: a
    producer asked to resume while the turn's time is spent resumes on a later turn,
    and one whose transport went away in line is neither resumed nor kept."""
    reactor, clock, pacer, log = make()
    waiting, gone = RecordingProducer(), RecordingProducer()
    paced, paced_gone = PacedProducer(waiting, pacer, "k"), PacedProducer(gone, pacer, "k")
    paced.resumeProducing()
    assert waiting.calls == ["resume"]  # the turn had time: at once
    pacer.spent = 1.0
    paced.pauseProducing()
    paced.resumeProducing()
    paced_gone.resumeProducing()
    assert waiting.calls == ["resume", "pause"] and len(pacer) == 2
    paced_gone.stopProducing()
    assert len(pacer) == 1
    turn(reactor)
    assert waiting.calls == ["resume", "pause", "resume"] and gone.calls == ["stop"]
    assert len(pacer) == 0
