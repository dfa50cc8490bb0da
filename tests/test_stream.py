"""OutputStream: fan-out, replay, bounded log, Deferreds, encode-once."""

from __future__ import annotations

from typing import Any

from ipytwist.kernel.stream import MESSAGE_OVERHEAD, Envelope, OutputStream
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
    stream = OutputStream()
    a, b = Sub(), Sub()
    stream.subscribe(a)
    stream.subscribe(b)
    envs = [stream.publish(msg(str(i))) for i in range(5)]
    assert a.got == envs and b.got == envs
    assert [e.seq for e in envs] == [1, 2, 3, 4, 5]
    assert stream.last_seq == 5


def test_unsubscribed_subscriber_gets_nothing_more() -> None:
    """After unsubscribe, deliveries stop; unsubscribing twice is harmless."""
    stream = OutputStream()
    a = Sub()
    stream.subscribe(a)
    stream.publish(msg("1"))
    stream.unsubscribe(a)
    stream.unsubscribe(a)
    stream.publish(msg("2"))
    assert len(a.got) == 1
    assert stream.subscriber_count == 0


def test_replay_since_a_sequence_number() -> None:
    """subscribe(since=n) returns what came after n; since=None replays nothing."""
    stream = OutputStream()
    for i in range(5):
        stream.publish(msg(str(i)))
    assert stream.subscribe(Sub()) == []
    backlog = stream.subscribe(Sub(), since=2)
    assert [e.seq for e in backlog] == [3, 4, 5]
    assert stream.subscribe(Sub(), since=5) == []


def test_log_is_bounded_by_count() -> None:
    """Past max_messages the oldest are dropped; the gap is visible from the seq."""
    stream = OutputStream(max_messages=3)
    for i in range(10):
        stream.publish(msg(str(i)))
    assert stream.first_logged_seq == 8
    backlog = stream.subscribe(Sub(), since=0)
    assert [e.seq for e in backlog] == [8, 9, 10]


def test_log_is_bounded_by_bytes() -> None:
    """The log charges each message its strings, a fixed overhead and every encoding
    made of it, and keeps at most max_bytes of that, dropping the oldest."""
    one = len("stdout") + 1 + MESSAGE_OVERHEAD + 100
    stream = OutputStream(max_bytes=2 * one + 50)
    stream.subscribe(Sub(encode=lambda m: b"x" * 100))
    for i in range(5):
        stream.publish(msg(str(i)))
        assert stream.logged_bytes <= stream.max_bytes
    assert [e.seq for e in stream.subscribe(Sub(), since=0)] == [4, 5]
    assert stream.logged_bytes == 2 * one


def test_a_later_encoding_counts_towards_the_bound() -> None:
    """An encoding made after publishing (a late reader) is charged too, at once."""
    one = len("stdout") + 1 + MESSAGE_OVERHEAD
    stream = OutputStream(max_bytes=3 * one + 10)
    envs = [stream.publish(msg(str(i))) for i in range(3)]
    assert stream.logged_messages == 3
    envs[2].encoded("late", lambda m: b"y" * 500)
    assert stream.logged_bytes <= stream.max_bytes
    assert stream.first_logged_seq == 2


def test_log_is_bounded_by_bytes_without_encoding_subscribers() -> None:
    """Without subscribers the content size still counts towards the byte bound."""
    stream = OutputStream(max_bytes=5000)
    for _ in range(10):
        stream.publish(msg("y" * 1000))
    backlog = stream.subscribe(Sub(), since=0)
    assert 1 <= len(backlog) <= 5
    assert backlog[-1].seq == 10


def test_next_message_fires_on_the_first_match_only() -> None:
    """next_message Deferreds fire with the next matching envelope, once."""
    stream = OutputStream()
    any_d = stream.next_message()
    err_d = stream.next_message(lambda e: e.msg_type == "error")
    first = stream.publish(msg("a"))
    got: list[Envelope] = []
    any_d.addCallback(got.append)
    assert got == [first]
    assert not err_d.called
    err = stream.publish(new_message("error", {"ename": "E"}, "s"))
    stream.publish(new_message("error", {"ename": "F"}, "s"))
    err_d.addCallback(got.append)
    assert got == [first, err]


def test_idle_of_fires_on_the_requests_idle() -> None:
    """idle_of waits for status idle parented to that request, ignoring others."""
    stream = OutputStream()
    req = new_message("execute_request", {}, "c")
    other = new_message("execute_request", {}, "c")
    d = stream.idle_of(req["header"]["msg_id"])
    stream.publish(new_message("status", {"execution_state": "busy"}, "s", req))
    stream.publish(new_message("status", {"execution_state": "idle"}, "s", other))
    assert not d.called
    idle = stream.publish(new_message("status", {"execution_state": "idle"}, "s", req))
    got: list[Envelope] = []
    d.addCallback(got.append)
    assert got == [idle]


def test_each_format_is_encoded_once_for_all_subscribers() -> None:
    """Envelope.encoded calls the encoder once per format and shares the result."""
    calls: list[str] = []

    def encode(m: dict) -> bytes:
        calls.append(m["header"]["msg_id"])
        return b"encoded"

    stream = OutputStream()
    subs = [Sub(encode=encode) for _ in range(4)]
    for s in subs:
        stream.subscribe(s)
    env = stream.publish(msg("x"))
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

    stream = OutputStream()
    good = Sub()
    stream.subscribe(Broken())
    stream.subscribe(good)
    d = stream.next_message()
    env = stream.publish(msg("x"))
    assert good.got == [env]
    assert d.called
    assert stream.subscribe(Sub(), since=0) == [env]
