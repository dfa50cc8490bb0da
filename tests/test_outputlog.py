"""OutputLog: fan-out, replay, bounded log, Deferreds, encode-once."""

from __future__ import annotations

from typing import Any

from support.fakes import RecordingProducer

from ipytwist.kernel.outputlog import MESSAGE_OVERHEAD, Envelope, Gap, OutputLog, output_bytes
from ipytwist.wire import new_message


class Sub:
    def __init__(self, encode: Any = None) -> None:
        self.got: list[Envelope] = []
        self.encode = encode

    def deliver(self, env: Envelope) -> None:
        self.got.append(env)
        if self.encode is not None:
            env.encoded("fmt", self.encode)


def msg(text: str, parent: dict | None = None, msg_type: str = "stream") -> dict:
    return new_message(msg_type, {"name": "stdout", "text": text}, "s", parent)


def test_every_subscriber_gets_every_message_in_order() -> None:
    """Two subscribers see the same envelopes with increasing sequence numbers."""
    log = OutputLog()
    a, b = Sub(), Sub()
    log.subscribe(a)
    log.subscribe(b)
    envs = [log.publish(msg(str(i))) for i in range(5)]
    assert a.got == envs and b.got == envs
    assert [e.seq for e in envs] == [1, 2, 3, 4, 5]
    assert log.last_seq == 5


def test_unsubscribed_subscriber_gets_nothing_more() -> None:
    """After unsubscribe, deliveries stop; unsubscribing twice is harmless."""
    log = OutputLog()
    a = Sub()
    log.subscribe(a)
    log.publish(msg("1"))
    log.unsubscribe(a)
    log.unsubscribe(a)
    log.publish(msg("2"))
    assert len(a.got) == 1
    assert log.subscriber_count == 0


def test_replay_since_a_sequence_number() -> None:
    """subscribe(since=n) returns what came after n; since=None replays nothing."""
    log = OutputLog()
    for i in range(5):
        log.publish(msg(str(i)))
    assert log.subscribe(Sub()) == []
    backlog = log.subscribe(Sub(), since=2)
    assert [e.seq for e in backlog] == [3, 4, 5]
    assert log.subscribe(Sub(), since=5) == []


def test_log_is_bounded_by_count() -> None:
    """Past max_messages the oldest are dropped; the gap is visible from the seq."""
    log = OutputLog(max_messages=3)
    for i in range(10):
        log.publish(msg(str(i)))
    assert log.first_logged_seq == 8
    backlog = log.subscribe(Sub(), since=0)
    assert [e.seq for e in backlog] == [8, 9, 10]


def test_log_is_bounded_by_bytes() -> None:
    """The log charges each message its strings, a fixed overhead and every encoding
    made of it, and keeps at most max_bytes of that, dropping the oldest."""
    one = len("stdout") + 1 + MESSAGE_OVERHEAD + 100
    log = OutputLog(max_bytes=2 * one + 50)
    log.subscribe(Sub(encode=lambda m: b"x" * 100))
    for i in range(5):
        log.publish(msg(str(i)))
        assert log.logged_bytes <= log.max_bytes
    assert [e.seq for e in log.subscribe(Sub(), since=0)] == [4, 5]
    assert log.logged_bytes == 2 * one


def test_a_later_encoding_counts_towards_the_bound() -> None:
    """An encoding made after publishing (a late reader) is charged too, at once."""
    one = len("stdout") + 1 + MESSAGE_OVERHEAD
    log = OutputLog(max_bytes=3 * one + 10)
    envs = [log.publish(msg(str(i))) for i in range(3)]
    assert log.logged_messages == 3
    envs[2].encoded("late", lambda m: b"y" * 500)
    assert log.logged_bytes <= log.max_bytes
    assert log.first_logged_seq == 2


def test_log_is_bounded_by_bytes_without_encoding_subscribers() -> None:
    """Without subscribers the content size still counts towards the byte bound."""
    log = OutputLog(max_bytes=5000)
    for _ in range(10):
        log.publish(msg("y" * 1000))
    backlog = log.subscribe(Sub(), since=0)
    assert 1 <= len(backlog) <= 5
    assert backlog[-1].seq == 10


def test_each_format_is_encoded_once_for_all_subscribers() -> None:
    """Envelope.encoded calls the encoder once per format and shares the result."""
    calls: list[str] = []

    def encode(m: dict) -> bytes:
        calls.append(m["header"]["msg_id"])
        return b"encoded"

    log = OutputLog()
    subs = [Sub(encode=encode) for _ in range(4)]
    for s in subs:
        log.subscribe(s)
    env = log.publish(msg("x"))
    assert len(calls) == 1
    assert env.encoded("fmt", encode) == b"encoded"
    assert env.encoded("other", lambda m: "second") == "second"
    assert len(calls) == 1
    assert env.cost == env.nbytes + MESSAGE_OVERHEAD + len(b"encoded") + len("second")


def test_a_failing_subscriber_does_not_stop_the_others() -> None:
    """One subscriber raising in deliver neither hides the message from others nor the log."""

    class Broken:
        def deliver(self, env: Envelope) -> None:
            raise RuntimeError("boom")

    log = OutputLog()
    good = Sub()
    log.subscribe(Broken())
    log.subscribe(good)
    env = log.publish(msg("x"))
    assert good.got == [env]
    assert log.subscribe(Sub(), since=0) == [env]


# -- cursors and flow control ------------------------------------------------------


class Reader:
    """A cursor's reader that takes what it is told to."""

    def __init__(self) -> None:
        self.woken = 0
        self.cursor: Any = None

    def wake(self) -> None:
        self.woken += 1

    def take_all(self) -> list[Any]:
        got = []
        while (item := self.cursor.take()) is not None:
            got.append(item)
        return got


def reader_on(log: OutputLog, at: Any = None) -> Reader:
    r = Reader()
    r.cursor = log.open_cursor(r, at)
    return r


def test_output_bytes_counts_utf8_of_string_values() -> None:
    """Keys, numbers and None count nothing; strings count their UTF-8 length."""
    content = {"name": "stdout", "text": "h\u00e9", "n": 5, "data": {"a": ["xy", None, "z"]}}
    assert output_bytes(content) == len("stdout") + 3 + 2 + 1


def test_a_cursor_at_the_end_gets_live_messages_and_is_woken() -> None:
    """A new cursor starts at the end; once caught up it is woken once per publish."""
    log = OutputLog()
    log.publish(msg("old"))
    r = reader_on(log)
    assert r.take_all() == []
    a = log.publish(msg("a"))
    assert r.woken == 1
    b = log.publish(msg("b"))
    assert r.woken == 1  # not taken since: woken once, not per message
    assert r.take_all() == [a, b]
    assert r.cursor.position == log.end


def test_a_cursor_replays_from_a_position() -> None:
    """position_after(msg_id) starts a cursor right after that message."""
    log = OutputLog()
    envs = [log.publish(msg(str(i))) for i in range(5)]
    at = log.position_after(envs[1].msg["header"]["msg_id"])
    assert at == (3, envs[2].offset)
    assert reader_on(log, at).take_all() == envs[2:]
    assert log.position_after("unknown") is None


def test_a_cursor_behind_the_log_gets_an_exact_gap_then_the_oldest_kept() -> None:
    """Messages that left the log before the reader took them are announced as one gap
    with their count and output bytes, then reading goes on from the oldest retained."""
    log = OutputLog(max_messages=3)
    envs = [log.publish(msg("x" * (i + 1))) for i in range(7)]
    r = reader_on(log, (1, 0))
    got = r.take_all()
    gap = got[0]
    assert isinstance(gap, Gap)
    assert gap.messages == 4
    assert gap.bytes == sum(e.nbytes for e in envs[:4])
    assert gap.next is envs[4]
    assert got[1:] == envs[4:]


def test_the_producer_is_paused_while_the_leading_cursor_lags() -> None:
    """Past the lead bound the producer is paused; it resumes once the leading reader has
    caught up half way; a slower cursor does not matter."""
    log = OutputLog(lead_messages=4, lead_bytes=1 << 30)
    gate = RecordingProducer()
    log.registerProducer(gate)
    fast, slow = reader_on(log), reader_on(log)
    for i in range(4):
        log.publish(msg(str(i)))
    assert gate.calls == []
    log.publish(msg("5"))
    assert gate.calls == ["pause"] and log.throttled
    for _ in range(2):
        fast.cursor.take()
    assert gate.calls == ["pause"]  # lead 3 > 4 // 2
    fast.cursor.take()
    assert gate.calls == ["pause", "resume"]
    fast.take_all()
    for i in range(3):
        log.publish(msg(str(i)))
    assert gate.calls == ["pause", "resume"]  # the slow reader is 8 behind: no matter
    assert slow.cursor.seq == 1


def test_the_lead_counts_bytes_too() -> None:
    log = OutputLog(lead_messages=1000, lead_bytes=100)
    gate = RecordingProducer()
    log.registerProducer(gate)
    reader_on(log)
    log.publish(msg("x" * 90))
    assert gate.calls == []
    log.publish(msg("x" * 20))
    assert gate.calls == ["pause"]


def test_without_cursors_output_flows_and_closing_the_leader_resumes() -> None:
    """No cursor: never paused (the log keeps the newest).  Closing the last lagging
    cursor resumes the producer; closing the leader makes the next one lead."""
    log = OutputLog(max_messages=5, lead_messages=2)
    gate = RecordingProducer()
    log.registerProducer(gate)
    for i in range(20):
        log.publish(msg(str(i)))
    assert gate.calls == []
    lead, behind = reader_on(log), reader_on(log, (log.last_seq - 1, 0))
    log.publish(msg("a"))
    log.publish(msg("b"))
    assert gate.calls == []  # the leader is 2 behind: at the bound
    log.publish(msg("c"))
    assert gate.calls == ["pause"]
    lead.cursor.close()
    assert log.lead[0] == 5 and gate.calls == ["pause"]
    behind.take_all()
    assert gate.calls == ["pause", "resume"]
    behind.cursor.close()
    assert log.cursor_count == 0 and log.lead == (0, 0)


def test_the_lead_never_exceeds_what_the_log_keeps() -> None:
    """The lead is clamped below the log bound, so the leading reader never misses."""
    log = OutputLog(max_messages=10, lead_messages=1000)
    assert log.lead_messages == 5
    gate = RecordingProducer()
    log.registerProducer(gate)
    r = reader_on(log)
    envs = []
    for i in range(50):
        if gate.calls[-1:] == ["pause"]:
            envs += r.take_all()  # the producer waits for the reader
        envs.append(log.publish(msg(str(i))))
    got = envs
    assert not [e for e in got if isinstance(e, Gap)]


def test_log_memory_stays_bounded_with_a_stalled_cursor() -> None:
    """A cursor that never reads keeps only the message it was owed (the first one
    published after it caught up): the log stays within its bound, and the reader
    gets that message, then an exact gap."""
    log = OutputLog(max_messages=100, max_bytes=200_000)
    stalled = reader_on(log)
    envs = []
    for _ in range(5000):
        env = log.publish(msg("y" * 1000))
        env.encoded("fmt", lambda m: b"z" * 1100)
        envs.append(env)
        assert log.logged_bytes <= log.max_bytes
    assert stalled.cursor.take() is envs[0]
    gap = stalled.cursor.take()
    assert isinstance(gap, Gap) and gap.messages == 5000 - 1 - log.logged_messages
    assert gap.bytes == sum(e.nbytes for e in envs[1 : gap.messages + 1])


def test_binary_buffers_count_towards_the_bound() -> None:
    """A comm message's buffers (a widget's image) are held by the log: their bytes
    count, with no encoding made (no WebSocket reader)."""
    log = OutputLog(max_bytes=3 * 1024 * 1024)
    for _ in range(5):
        content = {"comm_id": "c", "data": {}}
        big = new_message("comm_msg", content, "s", buffers=[bytes(1024 * 1024)])
        log.publish(big)
        assert log.logged_bytes <= log.max_bytes
    assert log.logged_messages == 2
