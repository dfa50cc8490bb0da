"""OutputLog: a reader that keeps up gets every message, whatever its size, and what
readers keep counts in the log's bound (no I/O)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ipytwist.kernel.outputlog import MESSAGE_OVERHEAD, Envelope, Gap, OutputLog
from ipytwist.wire import new_message

MIB = 1 << 20


def image(nbytes: int) -> dict[str, Any]:
    return new_message("display_data", {"data": {"image/png": "A" * nbytes}}, "k")


def text(s: str) -> dict[str, Any]:
    return new_message("stream", {"name": "stdout", "text": s}, "k")


class Reader:
    def __init__(self, log: OutputLog, at: Any = None) -> None:
        self.cursor = log.open_cursor(self, at)

    def wake(self) -> None:
        pass

    def take(self) -> Envelope | Gap | None:
        return self.cursor.take()


def cost(env: Envelope) -> int:
    return env.nbytes + MESSAGE_OVERHEAD


def test_a_message_larger_than_the_log_reaches_the_readers_that_keep_up() -> None:
    """Two readers that took everything get a message of 40 MiB from a log of 64 MiB,
    whatever follows it; the log counts it once (the issue: one of them got "1 output
    message (41943040 bytes) dropped", for the other's encoding had pushed it out)."""
    log = OutputLog()
    a, b = Reader(log), Reader(log)
    big = log.publish(image(40 * MIB))
    assert a.take() is big
    for _ in range(30):
        log.publish(text("y" * MIB))
        assert log.logged_bytes <= log.max_bytes
    assert b.take() is big
    assert big.cost == cost(big)


def test_what_a_reader_is_owed_stays_counted_and_older_messages_leave_first() -> None:
    """A reader at the end when a message is published keeps it until it takes it:
    the message stays counted in the bound, so newer messages leave sooner; once the
    reader has taken and written it, it is let go."""
    log = OutputLog(max_bytes=10 * MIB)
    stalled = Reader(log)
    owed = log.publish(image(6 * MIB))
    for i in range(10):
        log.publish(text(str(i) * MIB))
        assert log.logged_bytes <= log.max_bytes
    assert log.first_logged_seq > owed.seq
    retained = [e.seq for e in log.retained()]
    assert len(retained) == 3  # 6 MiB kept for the reader + 3 x 1 MiB
    assert stalled.take() is owed
    gap = stalled.take()
    assert isinstance(gap, Gap) and gap.messages == 10 - 3 and gap.bytes == 7 * (MIB + 6)
    assert log.logged_bytes == sum(cost(e) for e in log.retained())


def test_a_reader_behind_when_a_message_came_is_not_owed_it() -> None:
    """A reader that had not taken everything before a message may miss it: one exact
    gap, counting the messages kept for others too."""
    log = OutputLog(max_bytes=10 * MIB)
    log.publish(text("first"))
    behind, fast = Reader(log, (1, 0)), Reader(log)
    big = log.publish(image(6 * MIB))
    for i in range(10):
        log.publish(text(str(i) * MIB))
    gap = behind.take()
    assert isinstance(gap, Gap) and gap.messages == 1 + 1 + 7
    assert gap.bytes == len("stdout") * 8 + len("first") + big.nbytes + 7 * MIB
    assert fast.take() is big


def test_a_gap_is_followed_by_the_message_after_it_even_once_that_left_the_log() -> None:
    """A reader slower than the log gets a gap, then the message that came after the
    gap, kept for it meanwhile: never two gaps in a row (two notices for one lag)."""
    log = OutputLog(max_messages=3)
    for i in range(5):
        log.publish(text(str(i)))
    slow = Reader(log, (1, 0))
    gap = slow.take()
    assert isinstance(gap, Gap) and gap.messages == 2 and gap.next is not None
    for i in range(5):
        log.publish(text(str(5 + i)))
        assert log.logged_messages <= 3  # what it keeps counts in the bound
    assert gap.next.seq < log.first_logged_seq
    assert slow.take() is gap.next
    assert isinstance(slow.take(), Gap)  # then what it missed since, as one gap


def test_each_reader_keeps_at_most_the_message_it_writes_and_the_next() -> None:
    """A reader writing one message, at the end when the next comes, keeps both; the
    messages after that are not kept for it, and closing it lets everything go."""
    log = OutputLog(max_bytes=4 * MIB)
    r = Reader(log)
    first = log.publish(image(MIB + 1))
    assert r.take() is first  # writing it (no done() yet)
    second = log.publish(image(MIB + 2))
    third = log.publish(image(MIB + 3))
    for _ in range(8):
        log.publish(text("z" * MIB))
    assert (first.keepers, second.keepers, third.keepers) == (1, 1, 0)
    assert log.logged_bytes <= log.max_bytes
    assert r.take() is second and first.keepers == 0
    r.cursor.close()
    assert second.keepers == 0
    assert log.logged_bytes == sum(cost(e) for e in log.retained())


def test_when_kept_messages_alone_pass_the_bound_the_log_holds_just_them() -> None:
    """Readers stalled on messages larger than the log keep them; nothing else is
    retained, and memory does not grow with what follows."""
    log = OutputLog(max_bytes=8 * MIB)
    readers = [Reader(log)]
    kept = [log.publish(image(5 * MIB))]
    readers.append(Reader(log))
    kept.append(log.publish(image(6 * MIB)))
    for _ in range(20):
        log.publish(text("q" * MIB))
        assert log.logged_bytes == sum(cost(e) for e in kept)
    assert log.logged_messages == 2
    for r, env in zip(readers, kept, strict=True):
        assert r.take() is env
        r.cursor.done()
    assert log.logged_bytes == 0 and log.logged_messages == 0


def test_a_message_taken_at_once_is_let_go_when_written() -> None:
    """The usual case: readers take a message when it is published and write it; the
    log then holds it like any other (it leaves when the bound says so)."""
    log = OutputLog(max_bytes=4 * MIB)
    readers = [Reader(log) for _ in range(3)]
    big = log.publish(image(3 * MIB))
    for r in readers:
        assert r.take() is big
    assert big.keepers == 3
    for r in readers:
        r.cursor.done()
    assert big.keepers == 0
    second = log.publish(image(2 * MIB))
    assert log.first_logged_seq == big.seq + 1
    assert log.logged_bytes == cost(second)


#: One step: publish a message of (n KiB), or a reader takes / has written / closes /
#: (re)opens at the end.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.integers(0, 3000)),
        st.tuples(st.sampled_from(["take", "done", "close", "open"]), st.integers(0, 3)),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(steps=steps)
def test_what_readers_keep_stays_counted_and_owed_messages_arrive(steps: list[Any]) -> None:
    """Whatever happens: the log's charge is exactly what it holds and keeps; it is
    within the bound unless only kept messages are left; every message is kept by
    exactly the readers that were owed it or write it; and a reader at the end when
    a message came gets that message, never a gap in its place."""
    log = OutputLog(max_messages=6, max_bytes=4 * MIB)
    readers = [Reader(log) for _ in range(4)]
    owed: dict[int, Envelope] = {}
    for op, arg in steps:
        if op == "publish":
            at_end = [i for i, r in enumerate(readers) if r.cursor.position == log.end]
            env = log.publish(image(arg * 1024))
            owed.update({i: env for i in at_end if not readers[i].cursor.closed})
        elif op == "take":
            got = readers[arg].take()
            if arg in owed:
                assert got is owed.pop(arg)
            if isinstance(got, Gap) and got.next is not None:
                owed[arg] = got.next
        elif op == "done":
            readers[arg].cursor.done()
        elif op == "close":
            readers[arg].cursor.close()
            owed.pop(arg, None)
        else:
            readers[arg].cursor.close()
            owed.pop(arg, None)
            readers[arg] = Reader(log)
        held = list(log.retained()) + list(log._kept.values())
        assert log.logged_bytes == sum(e.cost for e in held)
        assert log.logged_messages == len(held)
        if log.logged_bytes > log.max_bytes or len(held) > log.max_messages:
            assert all(e.keepers for e in held) and not list(log.retained())
        cursors = [r.cursor for r in readers if not r.cursor.closed]
        for env in held:
            assert env.keepers == sum((c.owed is env) + (c.writing is env) for c in cursors)
        kept = [e for c in cursors for e in (c.owed, c.writing) if e is not None]
        assert all(any(e is h for h in held) for e in kept)  # counted while kept
        assert all(c.owed is None or c.owed.seq == c.seq for c in cursors)
