"""One kernel's output log: bounded, and the only place its output waits.

Every published message is wrapped in an :class:`Envelope` that caches its
encodings, so each wire format is produced once however many readers there
are.  Two kinds of readers take messages from the log:

- *push subscribers* (:meth:`OutputLog.subscribe`, the ZeroMQ iopub socket)
  get every message as it is published and buffer it themselves;
- *cursors* (:meth:`OutputLog.open_cursor`, one per WebSocket connection)
  are positions in the log.  A cursor's reader takes messages when it can
  write them; a reader that falls behind the oldest retained message gets a
  :class:`Gap` saying exactly how many messages and bytes it missed.

A reader *keeps up* when it has taken every message before a new one: that
message is then *owed* to it, and stays in memory until the reader has taken
and written it, however large it is and however much output follows.  The
reader also keeps the message it is writing.  Kept messages count in the
bound: when the oldest message leaves the log while readers still keep it, it
is no longer replayed but stays counted, and newer messages leave earlier.  So
one reader keeps at most two messages (shared with every reader that keeps the
same), and the log holds its bound, or only what readers keep when that alone
is more.

Flow control: a producer registered with :meth:`OutputLog.registerProducer`
(the kernel's output gate) is paused while the log end runs more than the lead
bound ahead of the *leading* cursor, and resumed once that reader has caught
up half way.  With no cursor open nothing is ever paused: the log keeps the
newest messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from twisted.logger import Logger

from ..wire import Message
from .envelope import MESSAGE_OVERHEAD, Envelope, Gap, Producer, Reader, Subscriber, output_bytes

__all__ = ["MESSAGE_OVERHEAD", "Cursor", "Envelope", "Gap", "OutputLog", "Position", "output_bytes"]

DEFAULT_LOG_MESSAGES = 10_000
DEFAULT_LOG_BYTES = 64 * 1024 * 1024
#: How far (messages, output bytes) the log end may run ahead of the leading cursor.
DEFAULT_LEAD_MESSAGES = 1_000
DEFAULT_LEAD_BYTES = 2 * 1024 * 1024
#: A position in the log: (seq of the next message, output bytes before it).
Position = tuple[int, int]


class Cursor:
    """One reader's position in the log: the next message it will take."""

    __slots__ = ("log", "reader", "seq", "offset", "waiting", "closed", "owed", "writing")

    def __init__(self, log: OutputLog, reader: Reader, at: Position) -> None:
        self.log = log
        self.reader = reader
        self.seq, self.offset = at
        self.waiting = False
        self.closed = False
        #: The message at ``seq``, kept for this reader: it had taken every one before.
        self.owed: Envelope | None = None
        #: The message this reader took last and still writes (kept until :meth:`done`).
        self.writing: Envelope | None = None

    @property
    def position(self) -> Position:
        """Where the cursor is: the position of the next message it takes."""
        return (self.seq, self.offset)

    def take(self) -> Envelope | Gap | None:
        """The next message, or the gap before the oldest retained one; None when
        caught up (the reader is woken when more is published)."""
        if self.closed:
            return None
        return self.log._take(self)

    def done(self) -> None:
        """The reader has written the message it took last: it need not be kept for it.
        (Taking the next message says so too.)"""
        if self.writing is not None:
            env, self.writing = self.writing, None
            self.log._release(env)

    def close(self) -> None:
        """Stop reading: the log forgets this cursor."""
        if not self.closed:
            self.closed = True
            self.log._close_cursor(self)


class OutputLog:
    """Ordered iopub messages of one kernel, in a bounded log read by many cursors."""

    log = Logger()

    def __init__(
        self,
        max_messages: int = DEFAULT_LOG_MESSAGES,
        max_bytes: int = DEFAULT_LOG_BYTES,
        lead_messages: int = DEFAULT_LEAD_MESSAGES,
        lead_bytes: int = DEFAULT_LEAD_BYTES,
    ) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        # The leading reader must never be pushed out of the log by its own lag.
        self.lead_messages = max(1, min(lead_messages, max_messages // 2))
        self.lead_bytes = max(1, min(lead_bytes, max_bytes // 4))
        self._items: list[Envelope | None] = []
        self._head = 0  # index in _items of the oldest retained envelope
        #: Messages gone from the log that readers still keep (still counted), by seq.
        self._kept: dict[int, Envelope] = {}
        self._log_cost = 0
        self._next_seq = 1
        self._total_bytes = 0
        self._subscribers: list[Subscriber] = []
        self._cursors: set[Cursor] = set()
        #: Cursors at the log end: the next message published is owed to them.
        self._at_end: set[Cursor] = set()
        self._waiting: list[Cursor] = []
        self._leader: Position = (1, 0)
        self._producer: Producer | None = None
        self.throttled = False
        #: Called once every subscriber and reader was handed a message (the journal).
        self.after_publish: Callable[[], object] | None = None

    # -- the log --------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest message (0 before the first)."""
        return self._next_seq - 1

    @property
    def first_logged_seq(self) -> int:
        """The sequence number of the oldest message still in the log."""
        env = self._first()
        return env.seq if env is not None else self._next_seq

    @property
    def end(self) -> Position:
        """The position after the newest message."""
        return (self._next_seq, self._total_bytes)

    @property
    def logged_messages(self) -> int:
        """How many messages the log retains now, those only readers keep included."""
        return len(self._items) - self._head + len(self._kept)

    @property
    def logged_bytes(self) -> int:
        """Memory charged to the retained and kept messages (strings, overhead, encodings)."""
        return self._log_cost

    def _first(self) -> Envelope | None:
        return self._items[self._head] if self._head < len(self._items) else None

    def _get(self, seq: int) -> Envelope:
        first = self._items[self._head]
        assert first is not None
        env = self._items[self._head + seq - first.seq]
        assert env is not None
        return env

    def publish(self, msg: Message) -> Envelope:
        """Append ``msg`` to the log, hand it to the subscribers and wake the readers."""
        # A comm message's binary buffers are held as they are: counted as their bytes.
        env = self._append(msg)
        if self._at_end:
            for cursor in self._at_end:  # they had taken every message before it
                cursor.owed = env
            env.keepers += len(self._at_end)
            self._at_end = set()
        for sub in list(self._subscribers):
            try:
                sub.deliver(env)
            except Exception:  # one broken subscriber must not starve the others
                self.log.failure("subscriber {sub!r} failed to take a message", sub=sub)
        if self._waiting:
            waiting, self._waiting = self._waiting, []
            for cursor in waiting:
                cursor.waiting = False
                try:
                    cursor.reader.wake()
                except Exception:
                    self.log.failure("reader {r!r} failed to take a message", r=cursor.reader)
        self._trim()
        self._check_lead()
        if self.after_publish is not None:
            self.after_publish()
        return env

    def _append(self, msg: Message) -> Envelope:
        buffers = msg.get("buffers") or ()
        nbytes = output_bytes(msg.get("content")) + sum(memoryview(b).nbytes for b in buffers)
        env = Envelope(self._next_seq, msg, nbytes, self._total_bytes)
        self._next_seq += 1
        self._total_bytes += nbytes
        self._items.append(env)
        env._log = self
        self._log_cost += env.cost
        return env

    def load(self, msg: Message, at: Position) -> Envelope:
        """A persisted message back at its place ``at`` (a restored log, before it has
        readers): no subscriber or reader is told.  Not right after the last one, it
        starts the log again there (:meth:`resume_at`)."""
        if at != self.end:
            self.resume_at(at)
        env = self._append(msg)
        self._trim()
        return env

    def resume_at(self, at: Position) -> None:
        """Number on from ``at`` (a restored log): the messages retained go."""
        for env in self.retained():
            if env.keepers:
                self._kept[env.seq] = env  # as _trim does
            else:
                env._log = None
                self._log_cost -= env.cost
        self._items, self._head = [], 0
        self._next_seq, self._total_bytes = at

    def _grew(self, size: int) -> None:
        """An envelope still in the log got one more encoding."""
        self._log_cost += size
        self._trim()

    def _trim(self) -> None:
        items = self._items
        while self._head < len(items) and (
            self.logged_messages > self.max_messages or self._log_cost > self.max_bytes
        ):
            env = items[self._head]
            assert env is not None
            items[self._head] = None  # released now, not at the next compaction
            self._head += 1
            if env.keepers:
                self._kept[env.seq] = env  # still counted, until its readers let go
            else:
                env._log = None
                self._log_cost -= env.cost
        if self._head > 1024 and self._head * 2 > len(items):
            del items[: self._head]
            self._head = 0

    def _release(self, env: Envelope) -> None:
        """A reader no longer keeps ``env``."""
        env.keepers -= 1
        if not env.keepers and self._kept.pop(env.seq, None) is not None:
            env._log = None
            self._log_cost -= env.cost

    def retained(self) -> Iterator[Envelope]:
        """The envelopes still in the log, oldest first."""
        for env in self._items[self._head :]:
            if env is not None:
                yield env

    def seq_of(self, msg_id: str) -> int | None:
        """The sequence number of the logged message ``msg_id`` (None: not in the log)."""
        for env in self._items[self._head :]:
            if env is not None and env.msg["header"].get("msg_id") == msg_id:
                return env.seq
        return None

    def position_after(self, msg_id: str) -> Position | None:
        """The position right after the logged message ``msg_id`` (None: not in the log)."""
        seq = self.seq_of(msg_id)
        if seq is None:
            return None
        env = self._get(seq)
        return (seq + 1, env.offset + env.nbytes)

    # -- push subscribers -----------------------------------------------------

    def subscribe(self, subscriber: Subscriber, since: int | None = None) -> list[Envelope]:
        """Add ``subscriber`` for live messages; return what it missed after ``since``.

        ``since`` is the last sequence number the subscriber saw (``None``: nothing
        to replay).  If the log no longer reaches back that far, the returned
        backlog starts later and the gap is ``backlog[0].seq - since - 1``.
        """
        self._subscribers.append(subscriber)
        if since is None:
            return []
        return [env for env in self._items[self._head :] if env is not None and env.seq > since]

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Stop handing live messages to ``subscriber`` (if it was subscribed)."""
        try:
            self._subscribers.remove(subscriber)
        except ValueError:
            pass

    @property
    def subscriber_count(self) -> int:
        """How many subscribers take live messages."""
        return len(self._subscribers)

    # -- cursors ----------------------------------------------------------------

    def open_cursor(self, reader: Reader, at: Position | None = None) -> Cursor:
        """A cursor for ``reader`` at ``at`` (default: the end, live messages only)."""
        if at is None or at[0] > self._next_seq:
            at = self.end
        cursor = Cursor(self, reader, at)
        if not self._cursors or at[0] > self._leader[0]:
            self._leader = at
        self._cursors.add(cursor)
        if at[0] == self._next_seq:
            self._at_end.add(cursor)
        self._check_lead()
        return cursor

    @property
    def cursor_count(self) -> int:
        """How many cursors are open."""
        return len(self._cursors)

    def _take(self, cursor: Cursor) -> Envelope | Gap | None:
        if cursor.writing is not None:
            cursor.done()  # a reader takes the next message once it wrote the last
        env = cursor.owed
        seq = cursor.seq
        if env is None and seq < self._next_seq:
            first = self.first_logged_seq
            if seq < first:
                nxt = self._get(first) if first < self._next_seq else None
                at = (first, nxt.offset if nxt is not None else self._total_bytes)
                gap = Gap(first - seq, at[1] - cursor.offset, nxt)
                self._move(cursor, at)
                if nxt is not None:  # kept for the reader: a gap is never followed by one
                    nxt.keepers += 1
                    cursor.owed = nxt
                return gap
            env = self._get(seq)
            env.keepers += 1
        if env is not None:  # (what it was owed is kept for it already)
            cursor.owed, cursor.writing = None, env
            self._move(cursor, (seq + 1, env.offset + env.nbytes))
            return env
        if not cursor.waiting:
            cursor.waiting = True
            self._waiting.append(cursor)
        return None

    def _move(self, cursor: Cursor, at: Position) -> None:
        cursor.seq, cursor.offset = at
        if at[0] == self._next_seq:
            self._at_end.add(cursor)
        if at[0] > self._leader[0]:
            self._leader = at
            if self.throttled:
                self._check_lead()

    def _close_cursor(self, cursor: Cursor) -> None:
        self._cursors.discard(cursor)
        self._at_end.discard(cursor)
        cursor.done()
        if cursor.owed is not None:
            env, cursor.owed = cursor.owed, None
            self._release(env)
        if cursor.waiting:
            cursor.waiting = False
            self._waiting.remove(cursor)
        if cursor.seq >= self._leader[0]:
            self._leader = max((c.position for c in self._cursors), default=self.end)
        self._check_lead()

    # -- flow control -------------------------------------------------------------

    def registerProducer(self, producer: Producer, streaming: bool = True) -> None:
        """``producer`` (of the messages published here) is paused while the log runs
        too far ahead of the leading cursor."""
        self._producer = producer
        self.throttled = False
        self._check_lead()

    @property
    def lead(self) -> Position:
        """How far (messages, bytes) the log end is ahead of the leading cursor."""
        if not self._cursors:
            return (0, 0)
        return (self._next_seq - self._leader[0], self._total_bytes - self._leader[1])

    def _check_lead(self) -> None:
        if self._producer is None:
            return
        messages, nbytes = self.lead
        if not self.throttled:
            if messages > self.lead_messages or nbytes > self.lead_bytes:
                self.throttled = True
                self._producer.pauseProducing()
        elif messages <= self.lead_messages // 2 and nbytes <= self.lead_bytes // 2:
            self.throttled = False
            self._producer.resumeProducing()
