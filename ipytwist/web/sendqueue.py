"""A bounded, backpressure-aware send queue for one WebSocket connection.

Sans-IO: the owner calls :meth:`push` with encoded payloads and hands over a
``write`` callable; the transport's producer callbacks call :meth:`pause` and
:meth:`resume`.  A connection that stays over its bound for ``grace`` seconds
is reported through ``on_overflow`` (the owner closes it); the others never
wait for it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# payload, is_binary, iopub seq (0 for replies), the caller's note (returned by close())
Item = tuple[bytes, bool, int, Any]

DEFAULT_MAX_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_MESSAGES = 50_000
DEFAULT_GRACE = 10.0


@dataclass(frozen=True)
class QueueLimits:
    """Bounds of every connection's send queue (``--client-queue-*``, ``--slow-client-grace``)."""

    max_messages: int = DEFAULT_MAX_MESSAGES
    max_bytes: int = DEFAULT_MAX_BYTES
    grace: float = DEFAULT_GRACE


class SendQueue:
    def __init__(
        self,
        clock: Any,
        write: Callable[[bytes, bool, int], None],
        on_overflow: Callable[[str], None],
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        grace: float = DEFAULT_GRACE,
    ) -> None:
        self.clock = clock
        self.write = write
        self.on_overflow = on_overflow
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        self.grace = grace
        self._items: deque[Item] = deque()
        self.queued_bytes = 0
        self.paused = False
        self.closed = False
        self._overflow_call: Any = None

    def __len__(self) -> int:
        return len(self._items)

    def push(self, payload: bytes, is_binary: bool, seq: int = 0, note: Any = None) -> None:
        if self.closed:
            return
        if not self.paused and not self._items:
            self.write(payload, is_binary, seq)
            return
        self._items.append((payload, is_binary, seq, note))
        self.queued_bytes += len(payload)
        self._check_bound()

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self.pump()

    def pump(self) -> None:
        """Write queued items until the transport pushes back or the queue is empty."""
        while self._items and not self.paused and not self.closed:
            payload, is_binary, seq, _ = self._items.popleft()
            self.queued_bytes -= len(payload)
            self.write(payload, is_binary, seq)
        self._check_bound()

    def close(self) -> list[Any]:
        """Stop; return the notes of the items never written, in order."""
        notes = [item[3] for item in self._items if item[3] is not None]
        self.closed = True
        self._items.clear()
        self.queued_bytes = 0
        self._cancel_overflow()
        return notes

    def over_bound(self) -> bool:
        return self.queued_bytes > self.max_bytes or len(self._items) > self.max_messages

    def _check_bound(self) -> None:
        if self.over_bound():
            if self._overflow_call is None:
                self._overflow_call = self.clock.callLater(self.grace, self._overflowed)
        else:
            self._cancel_overflow()

    def _cancel_overflow(self) -> None:
        if self._overflow_call is not None:
            if self._overflow_call.active():
                self._overflow_call.cancel()
            self._overflow_call = None

    def _overflowed(self) -> None:
        self._overflow_call = None
        if self.over_bound() and not self.closed:
            reason = (
                f"send queue over its bound for {self.grace:g}s "
                f"({len(self._items)} messages, {self.queued_bytes} bytes): client too slow"
            )
            self.close()
            self.on_overflow(reason)
