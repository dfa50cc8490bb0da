"""One kernel's output stream: fan-out to subscribers plus a bounded replay log.

Every published message is wrapped in an :class:`Envelope` that caches its
encodings, so each wire format is produced once however many subscribers
there are.  Subscribing returns the backlog to replay, then live messages
follow through the subscriber's ``deliver``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ..wire import Message

DEFAULT_LOG_MESSAGES = 10_000
DEFAULT_LOG_BYTES = 64 * 1024 * 1024


class Envelope:
    """A published message, its position in the stream, and its cached encodings."""

    __slots__ = ("seq", "msg", "_encoded", "size")

    def __init__(self, seq: int, msg: Message) -> None:
        self.seq = seq
        self.msg = msg
        self._encoded: dict[str, Any] = {}
        self.size = 0

    @property
    def msg_type(self) -> str:
        return self.msg["header"]["msg_type"]

    @property
    def parent_id(self) -> str | None:
        return (self.msg.get("parent_header") or {}).get("msg_id")

    def encoded(self, fmt: str, encode: Callable[[Message], Any]) -> Any:
        """The message in wire format ``fmt``, encoded on first use and shared after."""
        try:
            return self._encoded[fmt]
        except KeyError:
            data = self._encoded[fmt] = encode(self.msg)
            if not self.size:
                self.size = _approx_size(data)
            return data


def _approx_size(data: Any) -> int:
    if isinstance(data, (bytes, str)):
        return len(data)
    if isinstance(data, (list, tuple)):
        return sum(len(x) for x in data if isinstance(x, (bytes, str)))
    return 0


class Subscriber(Protocol):
    def deliver(self, envelope: Envelope) -> None: ...


class OutputStream:
    """Ordered iopub messages of one kernel, pushed to every subscriber."""

    log = Logger()

    def __init__(
        self, max_messages: int = DEFAULT_LOG_MESSAGES, max_bytes: int = DEFAULT_LOG_BYTES
    ) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._log: deque[Envelope] = deque()
        self._log_bytes = 0
        self._next_seq = 1
        self._subscribers: list[Subscriber] = []
        self._waiters: list[tuple[Callable[[Envelope], bool], Deferred[Envelope]]] = []

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    @property
    def first_logged_seq(self) -> int:
        return self._log[0].seq if self._log else self._next_seq

    def publish(self, msg: Message) -> Envelope:
        env = Envelope(self._next_seq, msg)
        self._next_seq += 1
        self._log.append(env)
        for sub in list(self._subscribers):
            try:
                sub.deliver(env)
            except Exception:  # one broken subscriber must not starve the others
                self.log.failure("subscriber {sub!r} failed to take a message", sub=sub)
        if not env.size:
            env.size = len(str(msg.get("content", "")))
        self._log_bytes += env.size
        while self._log and (
            len(self._log) > self.max_messages or self._log_bytes > self.max_bytes
        ):
            self._log_bytes -= self._log.popleft().size
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for match, d in waiters:
                if match(env):
                    d.callback(env)
                else:
                    self._waiters.append((match, d))
        return env

    def subscribe(self, subscriber: Subscriber, since: int | None = None) -> list[Envelope]:
        """Add ``subscriber`` for live messages; return what it missed after ``since``.

        ``since`` is the last sequence number the subscriber saw (``None``: nothing
        to replay).  If the log no longer reaches back that far, the returned
        backlog starts later and the gap is ``backlog[0].seq - since - 1``.
        """
        self._subscribers.append(subscriber)
        if since is None:
            return []
        return [env for env in self._log if env.seq > since]

    def seq_of(self, msg_id: str) -> int | None:
        """The sequence number of the logged message ``msg_id`` (None: not in the log)."""
        for env in self._log:
            if env.msg["header"].get("msg_id") == msg_id:
                return env.seq
        return None

    def unsubscribe(self, subscriber: Subscriber) -> None:
        try:
            self._subscribers.remove(subscriber)
        except ValueError:
            pass

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def next_message(self, match: Callable[[Envelope], bool] = lambda e: True) -> Deferred:
        """A Deferred firing with the next published envelope that ``match``es."""
        d: Deferred[Envelope] = Deferred()
        self._waiters.append((match, d))
        return d

    def idle_of(self, msg_id: str) -> Deferred:
        """A Deferred firing when the request ``msg_id`` is done (its ``idle`` status)."""
        return self.next_message(
            lambda e: (
                e.msg_type == "status"
                and e.parent_id == msg_id
                and e.msg["content"].get("execution_state") == "idle"
            )
        )
