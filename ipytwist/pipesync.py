"""Putting a worker's stdout/stderr bytes and its events back in the order they happened.

Stream output and events travel on different pipes, so reading them says
nothing about which came first.  Before each event the worker writes a sync
marker to both output pipes (:func:`ipytwist.worker.sync_marker`).  Bytes
after the n-th marker were written after the n-th event: they are held back
until that event has been delivered.  A worker that writes no markers (or
user code that replaced fd 1) degrades to delivering bytes as they arrive.
"""

from __future__ import annotations

from collections.abc import Callable

Piece = tuple[int, bytes]  # (markers seen before these bytes, bytes)


class MarkerSplitter:
    """Split the bytes of one pipe at ``marker``, in any chunking."""

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self.seen = 0
        self._tail = b""

    def feed(self, data: bytes) -> list[Piece]:
        """``data`` split at markers, each piece with the markers seen before it."""
        if not self.marker:
            return [(0, data)] if data else []
        buf = self._tail + data if self._tail else data
        pieces: list[Piece] = []
        start = 0
        while True:
            i = buf.find(self.marker, start)
            if i < 0:
                break
            if i > start:
                pieces.append((self.seen, buf[start:i]))
            self.seen += 1
            start = i + len(self.marker)
        keep = self._partial_marker_len(buf, start)
        end = len(buf) - keep
        if end > start:
            pieces.append((self.seen, buf[start:end]))
        self._tail = buf[end:]
        return pieces

    def _partial_marker_len(self, buf: bytes, start: int) -> int:
        """Length of the longest end of ``buf[start:]`` that begins the marker."""
        first = self.marker[:1]
        i = max(start, len(buf) - len(self.marker) + 1)
        while True:
            i = buf.find(first, i)
            if i < 0:
                return 0
            if self.marker.startswith(buf[i:]):
                return len(buf) - i
            i += 1

    def release_tail(self) -> list[Piece]:
        """The pipe is empty, so a kept partial marker was ordinary output after all."""
        tail, self._tail = self._tail, b""
        return [(self.seen, tail)] if tail else []


class PipeSync:
    """Deliver ``(name, bytes)`` no earlier than the events that preceded them."""

    def __init__(self, marker: bytes, deliver: Callable[[str, bytes], None]) -> None:
        self.deliver = deliver
        self.events = 0
        self._marker = marker
        self._splitters: dict[str, MarkerSplitter] = {}
        self._held: list[tuple[int, str, bytes]] = []

    def _splitter(self, name: str) -> MarkerSplitter:
        splitter = self._splitters.get(name)
        if splitter is None:
            splitter = self._splitters[name] = MarkerSplitter(self._marker)
        return splitter

    def output(self, name: str, data: bytes) -> None:
        """Bytes read from the output pipe ``name``, delivered once the events before them are."""
        self._route(name, self._splitter(name).feed(data))

    def pipe_empty(self, name: str) -> None:
        """Stream ``name``'s pipe is empty: a partial marker held back was output."""
        self._route(name, self._splitter(name).release_tail())

    def before_next_event(self, name: str) -> bool:
        """Whether pipe ``name`` may still hold bytes written before the next event: its
        marker has not been read yet (or there are no markers to tell)."""
        splitter = self._splitters.get(name)
        return splitter is None or not self._marker or splitter.seen <= self.events

    def event_delivered(self) -> None:
        """One more event is out: release the output written after it."""
        self.events += 1
        if self._held:
            ready = [h for h in self._held if h[0] <= self.events]
            self._held = [h for h in self._held if h[0] > self.events]
            for _, name, data in ready:
                self.deliver(name, data)

    def flush(self) -> None:
        """The worker is gone: deliver everything still held, in arrival order."""
        for name in list(self._splitters):
            self.pipe_empty(name)
        held, self._held = self._held, []
        for _, name, data in held:
            self.deliver(name, data)

    def _route(self, name: str, pieces: list[Piece]) -> None:
        for epoch, data in pieces:
            if epoch <= self.events:
                self.deliver(name, data)
            else:
                self._held.append((epoch, name, data))
