"""One stream output of a cell as a terminal shows it, bounded in memory (pure).

``\\r`` returns to the start of the line and what follows overwrites it, also
across messages; a line keeps its first ``max_line_chars`` characters and an
exact count of the rest; a stream keeps its first and last lines, within a
byte budget, and an exact count of those hidden between them.

Carriage returns cost time in proportion to the text: a line is the overlay of
the *layers* written after each ``\\r``, and the overlay is built from the top
layer down, each lower layer adding only what sticks out to the right of those
above it (:func:`overlay`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, islice
from typing import Any

__all__ = [
    "LINE_OVERHEAD",
    "STREAM_OVERHEAD",
    "CarriageReturns",
    "StreamOutput",
    "apply_carriage_returns",
    "overlay",
    "shown_text",
    "text_bytes",
]

#: Memory of a kept line besides its text (the str object and its slot), in the
#: transcript's byte count.
LINE_OVERHEAD = 64
#: Memory of a stream output besides its lines (its object and its deques), likewise
#: (measured: 1.9 KiB).
STREAM_OVERHEAD = 2048


def text_bytes(text: str) -> int:
    """The UTF-8 length of ``text`` (as the output log counts it)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


def overlay(top_first: Iterable[str], limit: int | None = None) -> str:
    """The line shown when each layer was written from the line's start over the ones
    before it (given newest first), up to ``limit`` characters: linear in the layers'
    length, and it stops once ``limit`` characters are covered."""
    pieces = []
    covered = 0
    for layer in top_first:
        if len(layer) > covered:
            pieces.append(layer[covered:limit])
            covered = len(layer)
            if limit is not None and covered >= limit:
                break
    return "".join(pieces)


def apply_carriage_returns(text: str) -> str:
    """What a terminal shows: ``\\r`` returns to the start of the line, which the text
    after it overwrites (``\\r\\n`` is a plain newline)."""
    if "\r" not in text:
        return text
    return "\n".join(
        overlay(reversed(line.split("\r"))) if "\r" in line else line for line in text.split("\n")
    )


class CarriageReturns:
    """Text fed in pieces, given back as a terminal shows it: each line once it ends.

    The layers of the unfinished line are kept as a stack whose lengths fall from the
    bottom up (a layer at least as long as one below it hides that one), so feeding
    and ending lines cost time in proportion to the text fed."""

    def __init__(self) -> None:
        self._layers: list[str] = []
        self._pieces: list[str] = []  # the top layer, still being written

    def feed(self, text: str) -> list[str]:
        """Take ``text``; return the text of the lines it ended (each with its ``\\n``)."""
        first = text.find("\n")
        if first < 0:
            self._write(text)
            return []
        self._write(text[:first])
        shown = self._end_line()
        last = text.rfind("\n")
        shown.append(apply_carriage_returns(text[first : last + 1]))  # "\n", lines, "\n"
        self._write(text[last + 1 :])
        return shown

    def finish(self) -> list[str]:
        """The unfinished last line, as shown."""
        return self._end_line()

    def _write(self, segment: str) -> None:
        """Text with no newline, onto the unfinished line."""
        if "\r" not in segment:
            self._pieces.append(segment)
            return
        parts = segment.split("\r")
        self._pieces.append(parts[0])
        self._close_layer()
        # Of the layers these parts close, those that a later one hides are skipped.
        longest = len(parts[-1])
        shown = []
        for part in reversed(parts[1:-1]):
            if len(part) > longest:
                shown.append(part)
                longest = len(part)
        for part in reversed(shown):
            self._pieces.append(part)
            self._close_layer()
        self._pieces.append(parts[-1])

    def _close_layer(self) -> None:
        layer = "".join(self._pieces)
        self._pieces = []
        if layer:
            while self._layers and len(self._layers[-1]) <= len(layer):
                self._layers.pop()
            self._layers.append(layer)

    def _end_line(self) -> list[str]:
        self._close_layer()
        shown = []
        covered = 0
        for layer in reversed(self._layers):
            shown.append(layer[covered:])
            covered = len(layer)
        self._layers = []
        return shown


class StreamOutput:
    """One stream's text in a cell: its first and last lines, and how many are hidden.

    With ``max_bytes``, the lines kept and the unfinished one hold at most that many
    bytes (see :attr:`size`): the head takes lines while they fit in half of it, and the
    oldest lines of the tail go first.  One line must fit in the other half."""

    def __init__(
        self, name: str, max_lines: int, max_line_chars: int, max_bytes: int | None = None
    ) -> None:
        self.name = name
        self.max_line_chars = max_line_chars
        self.max_bytes = max_bytes
        self.head: list[str] = []  # the first complete lines
        self.head_limit = max_lines // 2
        self.tail_limit = max_lines - self.head_limit
        self.tail: deque[str] = deque(maxlen=self.tail_limit)
        self._ascii = True  # every line so far: a line's bytes are its length
        self._head_open = True
        self.hidden = 0  # complete lines dropped between head and tail
        self._head_bytes = 0
        self._tail_bytes = 0
        self._partial_bytes = 0
        self.grew = 0  # by the last write
        # The unfinished last line: the text written since its last \r (``over``),
        # on top of what was shown before that \r (``under``); each keeps at most
        # max_line_chars characters and the length it really has.
        self._over, self._over_len = "", 0
        self._under, self._under_len = "", 0

    @property
    def partial(self) -> str:
        """The last line, not yet ended by a newline, as shown."""
        return self._line_shown()

    @property
    def size(self) -> int:
        """Bytes held: the lines' UTF-8 text and :data:`LINE_OVERHEAD` each (the
        output's own :data:`STREAM_OVERHEAD` is not in it)."""
        return self._head_bytes + self._tail_bytes + self._partial_bytes

    def write(self, text: str) -> None:
        """Add text the stream wrote, keeping only its first and last lines."""
        before = self.size
        pieces = text.split("\n")
        self._feed(pieces[0])
        if len(pieces) > 1:
            first = self._line_shown()
            rest = pieces[1:-1]
            if rest:
                if "\r" in text:
                    rest = [apply_carriage_returns(line) for line in rest]
                if max(map(len, rest)) > self.max_line_chars:
                    rest = [self._cut(line, len(line)) for line in rest]
            self._over, self._over_len, self._under, self._under_len = "", 0, "", 0
            self._feed(pieces[-1])
            self._add([first, *rest], text.isascii() and first.isascii())
        self._partial_bytes = self._shown_bytes()
        self._trim_tail()
        self.grew = self.size - before

    def _feed(self, segment: str) -> None:
        """Text with no newline, onto the unfinished line: in time linear in the
        segment (plus the line kept, once)."""
        if "\r" not in segment:
            self._write_over(segment)
            return
        parts = segment.split("\r")
        self._write_over(parts[0])
        middle = parts[1:-1]
        layers = chain(reversed(middle), (self._over, self._under))
        self._under = overlay(layers, self.max_line_chars)
        self._under_len = max(self._under_len, self._over_len, max(map(len, middle), default=0))
        self._over, self._over_len = "", 0
        self._write_over(parts[-1])

    def _write_over(self, text: str) -> None:
        self._over_len += len(text)
        if len(self._over) < self.max_line_chars:
            self._over = (self._over + text[: self.max_line_chars])[: self.max_line_chars]

    def _line_shown(self) -> str:
        shown = self._over + self._under[len(self._over) :]
        return self._cut(shown, max(self._over_len, self._under_len))

    def _shown_bytes(self) -> int:
        over, under = self._over, self._under
        if over.isascii() and under.isascii():
            return max(len(over), len(under))
        return text_bytes(over) + text_bytes(under[len(over) :])

    def _cut(self, line: str, length: int) -> str:
        """``line`` (the start of a line ``length`` characters long) as kept."""
        limit = self.max_line_chars
        if length <= limit:
            return line
        return line[:limit] + f" ... [{length - limit} characters hidden]"

    def _add(self, lines: list[str], ascii: bool) -> None:
        """Complete lines, in bulk (a flood brings thousands per message): only those
        kept are measured, in C while every line so far was ASCII."""
        self._ascii = self._ascii and ascii
        measure = len if self._ascii else text_bytes
        taken = self._add_head(lines, measure) if self._head_open else 0
        tail, keep = self.tail, self.tail_limit
        if len(lines) - taken >= keep:
            # The whole tail is replaced by the newest of these lines.
            self.hidden += len(tail) + len(lines) - taken - keep
            tail.clear()
            self._tail_bytes = 0
            taken = len(lines) - keep
        new = lines[taken:] if taken else lines
        going = len(tail) + len(new) - keep
        if going > 0:  # the deque's maxlen drops them
            self.hidden += going
            dropped = islice(tail, going)
            self._tail_bytes -= sum(map(measure, dropped)) + going * LINE_OVERHEAD
        tail.extend(new)
        self._tail_bytes += sum(map(measure, new)) + len(new) * LINE_OVERHEAD

    def _add_head(self, lines: list[str], measure: Callable[[str], int]) -> int:
        """Take the first of ``lines`` into the head while they fit; how many."""
        budget = self.max_bytes
        taken = 0
        while taken < len(lines):
            size = measure(lines[taken]) + LINE_OVERHEAD
            if len(self.head) >= self.head_limit or (
                budget is not None and 2 * (self._head_bytes + size) > budget
            ):
                self._head_open = False
                break
            self.head.append(lines[taken])
            self._head_bytes += size
            taken += 1
        return taken

    def _trim_tail(self) -> None:
        if self.max_bytes is not None:
            while self.tail and self.size > self.max_bytes:
                self._drop_oldest_tail_line()

    def _drop_oldest_tail_line(self) -> None:
        self._tail_bytes -= text_bytes(self.tail.popleft()) + LINE_OVERHEAD
        self.hidden += 1

    def text(self) -> str:
        """The text as shown: head, a count of hidden lines, tail, unfinished line."""
        parts = list(self.head)
        if self.hidden:
            parts.append(f"... [{self.hidden} lines hidden] ...")
        parts.extend(self.tail)
        body = "\n".join(parts)
        if parts:
            body += "\n"
        return body + self.partial

    def to_json(self) -> dict[str, Any]:
        """The output as the transcript's JSON describes it."""
        return {
            "output_type": "stream",
            "name": self.name,
            "text": self.text(),
            "hidden_lines": self.hidden,
        }


#: "Show all" reads the kernel's output log in slices of this many characters.
FULL_OUTPUT_SLICE = 64 * 1024


def shown_text(texts: list[str], whole: bool) -> Iterator[str]:
    """A stream's texts as shown (carriage returns applied), a slice at a time; a note
    first if its start is gone (not ``whole``)."""
    if not whole:
        yield "[ipytwist: the start of this output is no longer in the kernel's log]\n"
    shown = CarriageReturns()
    for text in texts:
        for start in range(0, len(text), FULL_OUTPUT_SLICE):
            yield from shown.feed(text[start : start + FULL_OUTPUT_SLICE])
            yield ""  # a slice worked out: the reader may pause here
    yield from shown.finish()
