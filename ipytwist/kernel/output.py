"""Turning the worker's raw stdout/stderr bytes into few, timely stream messages."""

from __future__ import annotations

import codecs
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

#: After a flush, further output waits at most this long before the next one.
DEFAULT_FLUSH_INTERVAL = 0.01
#: Longest stream message: a flood becomes many small messages, so publishing one is
#: a short piece of reactor work and readers get it in fine steps.
DEFAULT_MAX_CHARS = 64 * 1024


class OutputCoalescer:
    """Collect bytes per stream name; emit ``(name, text)`` in arrival order.

    The first write after a quiet period goes out at the end of the current
    reactor turn (no added latency); writes that follow within
    ``interval`` seconds are merged into one message.
    """

    def __init__(
        self,
        clock: IReactorTime,
        emit: Callable[[str, str], None],
        interval: float = DEFAULT_FLUSH_INTERVAL,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        self.clock = clock
        self.emit = emit
        self.interval = interval
        self.max_chars = max_chars
        self._name: str | None = None
        self._parts: list[str] = []
        self._size = 0
        self._decoders: dict[str, codecs.IncrementalDecoder] = {}
        self._last_flush = -1e9
        self._call: IDelayedCall | None = None

    def write(self, name: str, data: bytes) -> None:
        """Bytes the worker wrote to stream ``name``, emitted soon with their neighbours."""
        decoder = self._decoders.get(name)
        if decoder is None:
            decoder = self._decoders[name] = codecs.getincrementaldecoder("utf-8")("replace")
        text = decoder.decode(data)
        if not text:
            return
        if self._name is not None and self._name != name:
            self.flush()
        self._name = name
        self._parts.append(text)
        self._size += len(text)
        if self._size >= self.max_chars:
            self.flush()
        elif self._call is None:
            delay = max(0.0, self._last_flush + self.interval - self.clock.seconds())
            self._call = self.clock.callLater(delay, self._timed_flush)

    @property
    def pending(self) -> bool:
        """Whether output is collected and not yet emitted."""
        return bool(self._parts)

    def _timed_flush(self) -> None:
        self._call = None
        self.flush()

    def flush(self) -> None:
        """Emit what is collected now (before an event, so output keeps its order)."""
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None
        if not self._parts:
            return
        name, text = self._name, "".join(self._parts)
        self._parts, self._size, self._name = [], 0, None
        self._last_flush = self.clock.seconds()
        assert name is not None
        self.emit(name, text)

    def reset(self) -> None:
        """Forget partial characters (a new worker starts with a clean pipe)."""
        self.flush()
        self._decoders.clear()
