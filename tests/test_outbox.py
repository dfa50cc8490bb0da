"""Outbox and ReplyQueue: what one WebSocket connection writes next (no I/O)."""

from __future__ import annotations

from typing import Any

from ipytwist.kernel.outputlog import Envelope, Gap, OutputLog
from ipytwist.web.outbox import Outbox, ReplyQueue
from ipytwist.web.wsformat import MESSAGE_END, MID_FRAME, Writes
from ipytwist.wire import new_message


class Transport:
    """Records writes; pauses the outbox once ``limit`` bytes are buffered, as
    Twisted's transports do with a streaming producer."""

    def __init__(self, limit: int = 1 << 30) -> None:
        self.limit = limit
        self.buffered = 0
        self.written: list[bytes] = []
        self.outbox: Outbox | None = None
        self.frames_done = 0

    def write(self, data: bytes) -> None:
        self.written.append(data)
        self.buffered += len(data)
        if self.buffered > self.limit and self.outbox is not None:
            self.outbox.pause()

    def frame_done(self) -> None:
        self.frames_done += 1

    def between_frames(self) -> None:
        self.written.append(b"<between>")

    def drain(self) -> None:
        """The peer read everything: buffer empty, producer resumed."""
        self.buffered = 0
        assert self.outbox is not None
        self.outbox.resume()


def frames(written: list[bytes]) -> list[str]:
    """Frames are ``<label>|`` strings here; join the slices and split them."""
    joined = b"".join(w for w in written if w != b"<between>")
    return [f for f in joined.decode().split("|") if f]


def make(
    log: OutputLog, replies: ReplyQueue | None = None, limit: int = 1 << 30, **kw: Any
) -> tuple[Outbox, Transport]:
    transport = Transport(limit)
    cursor = log.open_cursor(_Wake(), kw.pop("at", None))
    outbox = Outbox(cursor, ReplyQueue() if replies is None else replies, Labels(), transport, **kw)
    cursor.reader = outbox
    transport.outbox = outbox
    return outbox, transport


class Labels:
    """Messages as ``<label>|`` strings (an iopub message's text, a reply's channel and
    n), one frame each, written in slices of at most ``chunk`` bytes."""

    def iopub(self, env: Envelope, chunk: int) -> Writes:
        return _writes(f"{env.msg['content']['text']}|", chunk)

    def reply(self, channel: str, m: dict[str, Any], nbytes: int, chunk: int) -> Writes:
        return _writes(f"{channel}:{m['content']['n']}|", chunk)

    def gap(self, gap: Gap, chunk: int) -> Writes:
        return _writes(f"gap:{gap.messages}:{gap.bytes}|", chunk)


def _writes(label: str, chunk: int) -> Writes:
    data = label.encode()
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    ends = [MID_FRAME] * (len(pieces) - 1) + [MESSAGE_END]
    return iter([((p,), e) for p, e in zip(pieces, ends, strict=True)])


class _Wake:
    def wake(self) -> None:
        pass


def out(log: OutputLog, text: str) -> Envelope:
    return log.publish(new_message("stream", {"name": "stdout", "text": text}, "k"))


def reply(n: int, parent_id: str = "p") -> dict:
    parent = {"header": {"msg_id": parent_id, "msg_type": "execute_request"}}
    return new_message("execute_reply", {"n": n}, "k", parent)


def test_live_messages_are_written_as_they_are_published() -> None:
    log = OutputLog()
    outbox, t = make(log)
    outbox.pump()
    out(log, "a")
    out(log, "b")
    assert frames(t.written) == ["a", "b"]


def test_replies_are_written_in_their_place_among_iopub() -> None:
    """A reply goes after the iopub message published before it, however far behind the
    connection's cursor is."""
    log = OutputLog()
    replies = ReplyQueue()
    outbox, t = make(log, replies, at=log.end)
    out(log, "a")
    replies.add(log.last_seq, "shell", reply(1))
    out(log, "b")
    out(log, "c")
    replies.add(log.last_seq, "shell", reply(2))
    outbox.pump()
    assert frames(t.written) == ["a", "shell:1", "b", "c", "shell:2"]
    assert not replies


def test_nothing_is_written_while_paused_and_everything_after() -> None:
    """The transport pushes back after its buffer fills; the rest waits in the log (not
    in the connection) and follows on resume, in order."""
    log = OutputLog()
    outbox, t = make(log, limit=5)
    outbox.pump()
    for i in range(10):
        out(log, f"m{i}")
    assert frames(t.written) == ["m0", "m1"]  # 6 bytes buffered > 5: paused
    assert outbox.paused
    while outbox.paused:
        t.drain()
    assert frames(t.written) == [f"m{i}" for i in range(10)]


def test_large_messages_are_written_in_slices() -> None:
    """A message is handed over ``chunk`` bytes at a time, so a paused connection holds
    at most the transport's buffer plus one slice."""
    log = OutputLog()
    outbox, t = make(log, limit=10, chunk=8)
    outbox.pump()
    out(log, "x" * 40)
    assert [len(w) for w in t.written] == [8, 8]
    assert outbox.mid_message
    t.drain()
    t.drain()
    assert frames(t.written) == ["x" * 40]
    assert max(len(w) for w in t.written if w != b"<between>") == 8


def test_finish_frame_completes_a_partly_written_frame() -> None:
    """When the connection goes away its close frame must not land inside ours: the rest
    of the frame goes out first, and the transport hears that a frame ended."""
    log = OutputLog()
    outbox, t = make(log, limit=10, chunk=8)
    outbox.pump()
    out(log, "y" * 30)
    assert outbox.mid_frame
    outbox.finish_frame()
    assert not outbox.mid_frame and t.frames_done == 1 and t.written[-1] == b"<between>"
    assert frames(t.written) == ["y" * 30]


def test_the_message_being_written_is_kept_until_its_last_fragment() -> None:
    """The log keeps (and counts) a message while a connection writes it, even once newer
    output pushed it out of the log; its last frame lets it go."""
    log = OutputLog(max_bytes=3 * (1536 + 200))
    outbox, t = make(log, limit=10, chunk=8)
    outbox.pump()
    first = out(log, "y" * 30)
    for _ in range(5):
        out(log, "z" * 100)
    assert log.first_logged_seq > first.seq
    assert outbox.mid_message and first.keepers == 1
    assert log.logged_bytes <= log.max_bytes
    kept = log.logged_bytes
    while outbox.mid_message:
        t.drain()
    assert frames(t.written)[0] == "y" * 30
    assert first.keepers == 0 and log.logged_bytes == kept - first.cost


def test_a_gap_is_framed_as_a_notice() -> None:
    log = OutputLog(max_messages=2)
    for i in range(5):
        out(log, f"m{i}")
    outbox, t = make(log, at=(1, 0))
    outbox.pump()
    assert frames(t.written) == ["gap:3:24", "m3", "m4"]  # 3 x len("stdout" "mN")


def test_closing_mid_message_gives_back_what_was_cut() -> None:
    """A message cut off by the close counts as unwritten: an iopub message is where a
    reconnect resumes, a reply goes back to the front of the session's queue."""
    log = OutputLog()
    outbox, t = make(log, limit=4, chunk=4)
    outbox.pump()
    first = out(log, "abcdefgh")
    assert outbox.mid_message
    assert outbox.close() == (first.seq, first.offset)
    assert first.keepers == 0

    replies = ReplyQueue()
    outbox, t = make(log, replies, limit=4, chunk=4)
    replies.add(log.last_seq, "shell", reply(1234567))
    outbox.pump()
    assert outbox.mid_message
    outbox.close()
    assert replies.peek() is not None and replies.peek().msg["content"]["n"] == 1234567


def test_reply_queue_counts_what_a_session_is_owed() -> None:
    """Requests count until answered, replies until written; over the bound the client
    must be held back, and may go on at half."""
    q = ReplyQueue(max_messages=4, max_bytes=1 << 20)
    for i in range(3):
        q.request_sent(
            new_message("execute_request", {}, "c")
            | {"header": {"msg_id": f"r{i}", "msg_type": "execute_request"}}
        )
    q.request_sent({"header": {"msg_id": "i", "msg_type": "input_reply"}})  # no reply owed
    assert q.owed == 3 and not q.over_bound()
    q.add(0, "shell", reply(0, "r0"))
    assert q.owed == 3
    q.request_sent({"header": {"msg_id": "r3", "msg_type": "kernel_info_request"}})
    assert q.owed == 4 and q.over_bound()
    q.pop()
    assert q.owed == 3 and not q.below_low_water()
    q.add(0, "shell", reply(1, "r1"))
    q.pop()
    assert q.owed == 2 and q.below_low_water()


def test_reply_queue_owes_replies_to_shell_and_control_requests_only() -> None:
    """Nothing answers a ``*_request`` sent on stdin: it is not owed (at the bound the
    service would stop reading from the client for good); a request without a msg_id
    is counted, not a KeyError."""
    q = ReplyQueue(max_messages=4, max_bytes=1 << 20)
    for _ in range(10):
        q.request_sent({"channel": "stdin", "header": {"msg_id": "s", "msg_type": "x_request"}})
    assert q.owed == 0
    q.request_sent({"channel": "control", "header": {"msg_type": "kernel_info_request"}})
    assert q.owed == 1
    q.add(0, "control", {"parent_header": {}, "content": {}})
    assert q.owed == 1  # the reply itself, until written


def test_reply_queue_bounds_bytes_too() -> None:
    q = ReplyQueue(max_messages=100, max_bytes=1000)
    q.add(0, "shell", new_message("inspect_reply", {"data": "x" * 1200}, "k"))
    assert q.over_bound()
    q.pop()
    assert q.nbytes == 0 and q.below_low_water()


def test_gap_type_is_reexported_for_framing() -> None:
    assert Gap(1, 2, None).messages == 1
