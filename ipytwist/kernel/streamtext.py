"""One stream output of a cell as a terminal shows it, bounded in memory (pure).

``\\r`` returns to the start of the line and what follows overwrites it, also
across messages; a line keeps its first ``max_line_chars`` characters and an
exact count of the rest; a stream keeps its first and last lines and an exact
count of those hidden between them.
"""

from __future__ import annotations

from collections import deque
from itertools import islice
from typing import Any

__all__ = ["StreamOutput", "apply_carriage_returns"]


def apply_carriage_returns(text: str) -> str:
    """What a terminal shows: ``\\r`` returns to the start of the line, which the text
    after it overwrites (``\\r\\n`` is a plain newline)."""
    if "\r" not in text:
        return text
    text = text.replace("\r\n", "\n")
    out = []
    for line in text.split("\n"):
        if "\r" in line:
            parts = line.split("\r")
            shown = parts[0]
            for part in parts[1:]:
                shown = part + shown[len(part) :]
            line = shown
        out.append(line)
    return "\n".join(out)


class StreamOutput:
    """One stream's text in a cell: its first and last lines, and how many are hidden."""

    def __init__(self, name: str, max_lines: int, max_line_chars: int) -> None:
        self.name = name
        self.max_line_chars = max_line_chars
        self.head: list[str] = []  # the first complete lines
        self.head_limit = max_lines // 2
        self.tail: deque[str] = deque(maxlen=max_lines - self.head_limit)
        self.hidden = 0  # complete lines dropped between head and tail
        self._lines_size = 0  # characters in head and tail
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
        """Characters held."""
        return self._lines_size + len(self._over) + max(0, len(self._under) - len(self._over))

    def write(self, text: str) -> None:
        """Add text the stream wrote, keeping only its first and last lines."""
        before = self.size
        pieces = text.split("\n")
        self._feed(pieces[0])
        if len(pieces) > 1:
            lines = [self._line_shown()]
            rest = pieces[1:-1]
            if rest:
                if "\r" in text:
                    rest = [apply_carriage_returns(line) for line in rest]
                if max(map(len, rest)) > self.max_line_chars:
                    rest = [self._cut(line, len(line)) for line in rest]
                lines.extend(rest)
            self._over, self._over_len, self._under, self._under_len = "", 0, "", 0
            self._feed(pieces[-1])
            self._add(lines)
        self.grew = self.size - before

    def _feed(self, segment: str) -> None:
        """Text with no newline, onto the unfinished line."""
        parts = segment.split("\r") if "\r" in segment else (segment,)
        self._write_over(parts[0])
        for part in parts[1:]:
            shown = self._over + self._under[len(self._over) :]
            self._under = shown[: self.max_line_chars]
            self._under_len = max(self._over_len, self._under_len)
            self._over, self._over_len = "", 0
            self._write_over(part)

    def _write_over(self, text: str) -> None:
        self._over_len += len(text)
        if len(self._over) < self.max_line_chars:
            self._over = (self._over + text)[: self.max_line_chars]

    def _line_shown(self) -> str:
        shown = self._over + self._under[len(self._over) :]
        return self._cut(shown, max(self._over_len, self._under_len))

    def _cut(self, line: str, length: int) -> str:
        """``line`` (the start of a line ``length`` characters long) as kept."""
        limit = self.max_line_chars
        if length <= limit:
            return line
        return line[:limit] + f" ... [{length - limit} characters hidden]"

    def _add(self, lines: list[str]) -> None:
        """Complete lines, in bulk (a flood brings thousands per message)."""
        room = self.head_limit - len(self.head)
        if room > 0:
            first, lines = lines[:room], lines[room:]
            self.head.extend(first)
            self._lines_size += sum(map(len, first))
            if not lines:
                return
        tail = self.tail
        keep = tail.maxlen or 0
        if len(lines) >= keep:
            # The whole tail is replaced by the newest of these lines.
            self.hidden += len(tail) + len(lines) - keep
            self._lines_size -= sum(map(len, tail))
            tail.clear()
            lines = lines[len(lines) - keep :]
        else:
            going = len(tail) + len(lines) - keep
            if going > 0:
                self.hidden += going
                self._lines_size -= sum(map(len, islice(tail, going)))
        tail.extend(lines)  # the deque's maxlen drops the oldest
        self._lines_size += sum(map(len, lines))

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
