"""What one WebSocket connection writes next (sans-IO).

A connection owns no queue of iopub messages: it holds a
:class:`~ipytwist.kernel.outputlog.Cursor` into the kernel's log and takes the
next message only when its transport can take more.  Replies and
``input_request`` addressed to the connection's session wait in the session's
:class:`ReplyQueue`, each after the iopub message that preceded it, and are
merged in at their place.  A message is written ``chunk`` bytes at a time, so
what a connection has in flight is bounded by the transport's buffer plus one
chunk, however large a message is.  A large message is a fragmented WebSocket
message (frames of at most 1 MiB), and the transport's own frames (a ping, a
pong, a close) wait for the end of the current frame, not of the message.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..kernel.outputlog import MESSAGE_OVERHEAD, Cursor, Envelope, Gap, Position, output_bytes
from ..kernel.requests import NO_REPLY
from ..wire import Message
from .wsformat import MESSAGE_END, MID_FRAME, Writes

#: Largest piece of a message handed to the transport at once.
CHUNK_BYTES = 64 * 1024
#: What a session may be owed: its requests not answered yet (each counted, and by its
#: size as received) plus its replies not written yet.  Past either bound the service
#: stops reading from its connection until the session is owed half as much.
MAX_OWED_MESSAGES = 1000
MAX_OWED_BYTES = 16 * 1024 * 1024
#: What the connected sessions of one kernel may be owed in all.  Past either bound,
#: every connection of the kernel whose session is owed anything is not read from
#: until its session is owed nothing, or the kernel half as much.  By number, twice what
#: one session may be owed: every message owed is a few objects that the garbage
#: collector's full passes look at while the reactor waits (10,000 made a storm's
#: passes last 60-90 ms).
MAX_KERNEL_OWED_MESSAGES = 2_000
MAX_KERNEL_OWED_BYTES = 64 * 1024 * 1024


class OwedTotal:
    """What the connected sessions of one kernel are owed in all (each session's
    :class:`ReplyQueue` counts itself in while it has a connection).  ``on_low`` is
    called when the total falls to half the bounds after reaching one."""

    def __init__(
        self,
        on_low: Callable[[], object] = lambda: None,
        max_messages: int = MAX_KERNEL_OWED_MESSAGES,
        max_bytes: int = MAX_KERNEL_OWED_BYTES,
    ) -> None:
        self.on_low = on_low
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.messages = 0
        self.nbytes = 0
        #: A bound was reached, and the total has not fallen to half since.
        self.high = False

    def change(self, messages: int, nbytes: int) -> None:
        """A session is owed ``messages`` and ``nbytes`` more (or, negative, less)."""
        self.messages += messages
        self.nbytes += nbytes
        if not self.high:
            self.high = self.messages >= self.max_messages or self.nbytes >= self.max_bytes
        elif self.messages <= self.max_messages // 2 and self.nbytes <= self.max_bytes // 2:
            self.high = False
            self.on_low()


@dataclass(frozen=True)
class Reply:
    """A reply waiting for its session's connection, and the iopub message it follows."""

    after_seq: int  # the last iopub message published before it
    channel: str
    msg: Message
    nbytes: int


class ReplyQueue:
    """Replies and input requests for one session, kept until a connection writes them.

    It also counts the session's requests the kernel has not answered yet, each one
    (a msg_id may repeat) and by its size, so a client that sends requests without
    reading their replies can be held back (:meth:`over_bound`) instead of growing
    the service's memory with its requests or their replies.
    """

    def __init__(
        self, max_messages: int = MAX_OWED_MESSAGES, max_bytes: int = MAX_OWED_BYTES
    ) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        #: The kernel's total this queue counts itself in (while its session has a
        #: connection), or None.
        self.kernel: OwedTotal | None = None
        self._items: deque[Reply] = deque()
        #: Output bytes of the replies queued.
        self.nbytes = 0
        #: The sizes of the requests not answered yet, by msg_id.
        self._unanswered: dict[str | None, list[int]] = {}
        self._requests = 0
        #: Bytes of the requests not answered yet, as received.
        self.request_bytes = 0
        #: Replies dropped while the session was away, not told to it yet.
        self.dropped = 0

    def __bool__(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def request_sent(self, msg: Message, nbytes: int = 0) -> None:
        """The session handed ``msg`` (``nbytes`` as received) to the kernel; a shell or
        control request expects one reply (nothing answers a ``*_request`` on stdin),
        and a comm message is owed until the kernel has handled it (:meth:`handled`)."""
        header = msg["header"]
        msg_type = header["msg_type"]
        owed = msg_type.endswith("_request") or msg_type in NO_REPLY
        if owed and msg.get("channel", "shell") in ("shell", "control"):
            # A reply's parent has the same msg_id.
            self._unanswered.setdefault(header.get("msg_id"), []).append(nbytes)
            self._requests += 1
            self.request_bytes += nbytes
            self._changed(1, nbytes)

    def handled(self, msg: Message) -> None:
        """The kernel is done with ``msg``, which gets no reply (a comm message)."""
        self._answered(msg["header"].get("msg_id"))

    def _answered(self, msg_id: str | None) -> None:
        sizes = self._unanswered.get(msg_id)
        if not sizes:
            return
        # Of requests sharing a msg_id, the smallest is counted as answered: the
        # bound may count too much for a while, never too little.
        smallest = min(range(len(sizes)), key=sizes.__getitem__)
        size = sizes.pop(smallest)
        self.request_bytes -= size
        self._requests -= 1
        if not sizes:
            del self._unanswered[msg_id]
        self._changed(-1, -size)

    def add(self, after_seq: int, channel: str, msg: Message) -> None:
        """Queue a reply or input request to follow iopub message ``after_seq``."""
        if channel in ("shell", "control"):
            self._answered((msg.get("parent_header") or {}).get("msg_id"))
        reply = Reply(after_seq, channel, msg, output_bytes(msg.get("content")))
        self._items.append(reply)
        self.nbytes += reply.nbytes
        self._changed(1, reply.nbytes)

    def peek(self) -> Reply | None:
        """The next reply to write, left in the queue."""
        return self._items[0] if self._items else None

    def pop(self) -> Reply:
        """Take the next reply to write."""
        reply = self._items.popleft()
        self.nbytes -= reply.nbytes
        self._changed(-1, -reply.nbytes)
        return reply

    def put_back(self, reply: Reply) -> None:
        """A popped reply that was never completely written goes first again."""
        self._items.appendleft(reply)
        self.nbytes += reply.nbytes
        self._changed(1, reply.nbytes)

    @property
    def cost(self) -> int:
        """The replies queued, by their output bytes and a fixed overhead each (as the
        output log counts its messages)."""
        return self.nbytes + len(self._items) * MESSAGE_OVERHEAD

    def drop(self) -> int:
        """Drop every reply queued (the session is away, and the kernel keeps too much
        for such sessions); how many went.  Its requests stay counted."""
        dropped, nbytes = len(self._items), self.nbytes
        self._items.clear()
        self.nbytes = 0
        self._changed(-dropped, -nbytes)
        return dropped

    def count_in(self, kernel: OwedTotal) -> None:
        """Count in ``kernel``'s total from now on (the session has a connection)."""
        self.count_out()
        self.kernel = kernel
        self._changed(self.owed, self.owed_bytes)

    def count_out(self) -> None:
        """No longer count in the kernel's total (the session is away)."""
        self._changed(-self.owed, -self.owed_bytes)
        self.kernel = None

    def _changed(self, messages: int, nbytes: int) -> None:
        if self.kernel is not None:
            self.kernel.change(messages, nbytes)

    @property
    def owed(self) -> int:
        """Replies queued plus requests not answered yet."""
        return len(self._items) + self._requests

    @property
    def owed_bytes(self) -> int:
        """Output bytes of the replies queued plus bytes of the requests not answered."""
        return self.nbytes + self.request_bytes

    def over_bound(self) -> bool:
        """Whether the session is owed too much, or is owed anything while its kernel
        is owed too much in all: stop reading its requests."""
        if self.owed >= self.max_messages or self.owed_bytes >= self.max_bytes:
            return True
        return self.kernel is not None and self.kernel.high and self.owed > 0

    def below_low_water(self) -> bool:
        """Whether it is owed little enough again to read its requests."""
        if self.owed > self.max_messages // 2 or self.owed_bytes > self.max_bytes // 2:
            return False
        return self.kernel is None or not self.kernel.high or self.owed == 0


class Framer(Protocol):
    """One wire format's frames (see :class:`~ipytwist.web.wsformat.WireFramer`)."""

    def iopub(self, envelope: Envelope, chunk: int) -> bytes | Writes:
        """An iopub message's frame (the same bytes for every connection), or its
        writes when it takes more than one (see :mod:`~ipytwist.web.wsformat`)."""
        ...

    def reply(self, channel: str, msg: Message, nbytes: int, chunk: int) -> bytes | Writes:
        """A reply's (or input request's) frames, for one connection."""
        ...

    def gap(self, gap: Gap, chunk: int) -> bytes | Writes:
        """The frames of the notice that stands for the messages a reader missed."""
        ...


class FrameSink(Protocol):
    """Where a connection's frames go: its transport."""

    def write(self, data: bytes) -> None:
        """A piece of a frame, in order."""
        ...

    def frame_done(self) -> None:
        """A message was written."""
        ...

    def between_frames(self) -> None:
        """A frame written in pieces is complete: the transport's own frames may go."""
        ...


class Outbox:
    """Merge the session's replies into the cursor's iopub, frame, and write them."""

    def __init__(
        self,
        cursor: Cursor,
        replies: ReplyQueue,
        framer: Framer,
        sink: FrameSink,
        chunk: int = CHUNK_BYTES,
        noted: Callable[[Position], object] | None = None,
    ) -> None:
        self.cursor = cursor
        #: Told where a reconnect would resume after each pump, before what it wrote
        #: leaves the process (the transport sends it once the reactor polls).
        self.noted = noted
        self.replies = replies
        self.framer = framer
        self.sink = sink
        self.chunk = chunk
        self.paused = False
        self.closed = False
        #: The rest of the message being written (None between messages).
        self._writes: Writes | None = None
        #: Whether a frame is partly written (nothing else may go to the transport).
        self.mid_frame = False
        # What is being written, to give it back if the connection closes mid-message.
        self._frame_reply: Reply | None = None
        self._frame_from = cursor.position

    @property
    def mid_message(self) -> bool:
        """Whether a message is partly written."""
        return self._writes is not None

    # -- the transport's producer calls --------------------------------------------

    def pause(self) -> None:
        """The transport pushes back: stop writing."""
        self.paused = True

    def resume(self) -> None:
        """The transport takes data again: write on."""
        self.paused = False
        self.pump()

    def wake(self) -> None:
        """The cursor has new messages (the log's Reader interface)."""
        self.pump()

    # -- writing ---------------------------------------------------------------------

    def pump(self) -> None:
        """Write until the transport pushes back or nothing is left."""
        self._pump()
        if self.noted is not None and not self.closed:
            self.noted(self.position)

    def _pump(self) -> None:
        while not self.paused and not self.closed:
            writes = self._writes
            if writes is None:
                message = self._next_message()
                if message is None:
                    return
                if isinstance(message, bytes):  # one frame, at once: most messages
                    self.sink.write(message)
                    self._ended(MESSAGE_END)
                    continue
                self._writes = writes = message
            self._write(writes)

    def _write(self, writes: Writes) -> None:
        data, ends = next(writes)
        for piece in data:
            self.sink.write(piece)
        self._ended(ends)

    def _ended(self, ends: int) -> None:
        was_mid, self.mid_frame = self.mid_frame, ends == MID_FRAME
        if ends == MESSAGE_END:
            self._writes = None
            self.cursor.done()
            self.sink.frame_done()
        if was_mid and not self.mid_frame:
            self.sink.between_frames()

    def finish_frame(self) -> None:
        """Write the rest of a partly written frame now (the connection goes away, and
        its close frame must not land inside ours)."""
        while self.mid_frame and self._writes is not None:
            self._write(self._writes)

    def _next_message(self) -> bytes | Writes | None:
        reply = self.replies.peek()
        self._frame_from = self.cursor.position
        if reply is not None and reply.after_seq < self.cursor.seq:
            self._frame_reply = self.replies.pop()
            return self.framer.reply(reply.channel, reply.msg, reply.nbytes, self.chunk)
        self._frame_reply = None
        item = self.cursor.take()
        if item is None:
            return None
        if isinstance(item, Gap):
            return self.framer.gap(item, self.chunk)
        return self.framer.iopub(item, self.chunk)

    @property
    def position(self) -> Position:
        """Where a reconnect resumes: an iopub message cut off mid-way counts as not
        written (a reply cut off goes back to its queue: it is not in the log)."""
        if self._writes is None or self._frame_reply is not None:
            return self.cursor.position
        return self._frame_from

    def close(self) -> Position:
        """Stop writing; return where a reconnect resumes (:attr:`position`)."""
        self.closed = True
        self.cursor.close()
        position = self.position
        if self._writes is not None and self._frame_reply is not None:
            self.replies.put_back(self._frame_reply)
        self._writes = None
        return position
