"""The transcript's rich and error outputs, what each costs, and the displays index (pure).

Every output knows its size in the transcript's unit, bytes: the UTF-8 length of its
strings (dict keys too) plus fixed overheads for the objects that hold them:
:data:`OUTPUT_OVERHEAD` an output, :data:`ITEM_OVERHEAD` for every other value, list
item and dict entry of its data, :data:`~.streamtext.LINE_OVERHEAD` a traceback line.
An output larger than the transcript's share for one output is kept as a placeholder
that says what it was (:func:`omitted`), and an error's text is cut (:func:`cut_error`).

Outputs that show a ``display_id`` are indexed by it (:class:`Displays`), so that an
``update_display_data`` costs time in proportion to its own message, amortised over
the outputs it replaces, however many outputs the transcript holds.
"""

from __future__ import annotations

from typing import Any

from .streamtext import LINE_OVERHEAD, text_bytes

__all__ = [
    "OUTPUT_OVERHEAD",
    "Bundle",
    "Displays",
    "ErrorOutput",
    "RichOutput",
    "cut_error",
    "cut_text",
    "omitted",
]

#: Memory of an output besides its strings (its object, dicts and list slot), in the
#: transcript's byte count (measured: 0.4 KiB for a small display_data).
OUTPUT_OVERHEAD = 512
#: Memory of a number, list item or dict entry of structured data (``application/json``,
#: metadata), likewise.
ITEM_OVERHEAD = 16
#: The longest id kept (a request's msg_id, a display id): a longer one is no id the
#: transcript keeps (its cell, or its display's link, is not kept).
MAX_ID_CHARS = 1024
#: The mime types a placeholder names, at most, and the characters of each.
PLACEHOLDER_MIME_TYPES = 20
PLACEHOLDER_MIME_CHARS = 100

#: A mime bundle: (data, metadata).
Bundle = tuple[dict[str, Any], dict[str, Any]]


def data_bytes(data: Any, stop: int) -> tuple[int, bool]:
    """The bytes ``data`` (JSON-like) holds: its strings' UTF-8 length, dict keys
    included, bytes as their base64 length, and :data:`ITEM_OVERHEAD` for every other
    value, item and entry; and
    whether that is all of it.  Once past ``stop`` it stops looking (time: at most
    ``stop`` / ITEM_OVERHEAD values), with the bytes seen so far."""
    total = 0
    stack = [data]
    while stack and total <= stop:
        item = stack.pop()
        if isinstance(item, str):
            total += text_bytes(item)
        elif isinstance(item, dict):
            total += ITEM_OVERHEAD * len(item)
            for key, value in item.items():
                total += text_bytes(key) if isinstance(key, str) else ITEM_OVERHEAD
                stack.append(value)
        elif isinstance(item, (list, tuple)):
            total += ITEM_OVERHEAD * len(item)
            stack.extend(item)
        elif isinstance(item, bytes):  # a widget's buffer, kept as base64 in JSON
            total += ITEM_OVERHEAD + 4 * ((len(item) + 2) // 3)
        else:
            total += ITEM_OVERHEAD
    return total, not stack


def bundle_bytes(bundle: Bundle, stop: int) -> tuple[int, bool]:
    """The bytes a mime bundle holds, with :data:`OUTPUT_OVERHEAD`, and whether that is
    all of it (see :func:`data_bytes`)."""
    size, whole = data_bytes(bundle, stop)
    return size + OUTPUT_OVERHEAD, whole


def omitted(bundle: Bundle, nbytes: int, whole: bool, limit: int) -> Bundle:
    """What the transcript keeps of a bundle of ``nbytes`` (at least, if not
    ``whole``) over its ``limit``: a note of what it was, as ``text/plain`` (every
    client can show it) and in the metadata."""
    mime_types = [str(m)[:PLACEHOLDER_MIME_CHARS] for m in bundle[0]][:PLACEHOLDER_MIME_TYPES]
    kinds = ", ".join(mime_types) or "no data"
    size = f"{nbytes:,} bytes" if whole else f"more than {nbytes:,} bytes"
    text = (
        f"[ipytwist] This output is not kept in the transcript: {size} "
        f"({kinds}), more than the {limit:,} bytes it keeps an output. The clients "
        "connected when it ran got it, the kernel's output log keeps it while it has "
        "room, and running the cell again shows it again."
    )
    note = {"mime_types": mime_types, "bytes": nbytes, "whole": whole, "max_output_bytes": limit}
    return {"text/plain": text}, {"ipytwist": {"omitted": note}}


def cut_text(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes (at a character boundary)."""
    if len(text) <= limit and text_bytes(text) <= limit:
        return text
    text = text[:limit]
    if text_bytes(text) <= limit:
        return text
    return text.encode("utf-8", "replace")[:limit].decode("utf-8", "ignore")


def _cut_line(line: str, chars: int) -> str:
    if len(line) <= chars:
        return line
    return f"{line[:chars]} ... [{len(line) - chars} characters hidden]"


def _cut_traceback(lines: list[str], chars: int, limit: int) -> list[str]:
    """Lines cut to ``chars`` characters, then the first and last that fit in
    ``limit`` bytes, with an exact count of those between."""
    lines = [_cut_line(line, chars) for line in lines]
    sizes = [text_bytes(line) + LINE_OVERHEAD for line in lines]
    if sum(sizes) <= limit:
        return lines
    head, used = 0, 0
    while head < len(lines) and 2 * (used + sizes[head]) <= limit:
        used += sizes[head]
        head += 1
    tail, used = len(lines), 0
    while tail > head and 2 * (used + sizes[tail - 1]) <= limit:
        used += sizes[tail - 1]
        tail -= 1
    return [*lines[:head], f"... [{tail - head} lines hidden] ...", *lines[tail:]]


class ErrorOutput:
    """An ``error`` output: its name, value and traceback as the transcript keeps them."""

    __slots__ = ("ename", "evalue", "traceback", "size")

    def __init__(self, ename: str, evalue: str, traceback: list[str]) -> None:
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback
        texts = [ename, evalue, *traceback]
        lines = LINE_OVERHEAD * len(traceback)
        self.size = sum(map(text_bytes, texts)) + lines + OUTPUT_OVERHEAD

    def to_json(self) -> dict[str, Any]:
        """The output as the transcript's JSON describes it (nbformat's ``error``)."""
        return {
            "output_type": "error",
            "ename": self.ename,
            "evalue": self.evalue,
            "traceback": list(self.traceback),
        }


def cut_error(content: dict[str, Any], chars: int, limit: int) -> ErrorOutput:
    """The error output of an ``error`` message, within ``limit`` bytes: each line of
    it cut to ``chars`` characters, and a long traceback to its first and last lines."""
    ename = str(content.get("ename", ""))
    evalue = str(content.get("evalue", ""))
    traceback = content.get("traceback")
    lines = [str(t) for t in traceback] if isinstance(traceback, list) else []
    whole = ErrorOutput(ename, evalue, lines)
    if whole.size <= limit:
        return whole
    ename = _cut_line(ename, min(chars, 1000))
    evalue = _cut_line(evalue, chars)
    room = limit - text_bytes(ename) - text_bytes(evalue) - OUTPUT_OVERHEAD - 2 * LINE_OVERHEAD
    return ErrorOutput(ename, evalue, _cut_traceback(lines, chars, max(0, room)))


class Display:
    """The outputs that show one ``display_id``: how many, the bytes they show, those
    that still show their own bundle (``fresh``), and the latest update's bundle."""

    __slots__ = ("bundle", "size", "count", "shown", "fresh")

    def __init__(self) -> None:
        self.bundle: Bundle = ({}, {})
        self.size = 0
        self.count = 0
        self.shown = 0
        self.fresh: set[RichOutput] = set()


class RichOutput:
    """A ``display_data`` or ``execute_result`` output: its bundle (None once an update
    of its display replaced it: then it shows its display's), size and display id."""

    __slots__ = ("output_type", "bundle", "size", "execution_count", "display_id", "display")

    def __init__(
        self,
        output_type: str,
        bundle: Bundle,
        size: int,
        execution_count: int | None = None,
        display_id: str | None = None,
    ) -> None:
        self.output_type = output_type
        self.bundle: Bundle | None = bundle
        self.size = size
        self.execution_count = execution_count
        self.display_id = display_id
        self.display: Display | None = None

    def shown(self) -> tuple[Bundle, int]:
        """The bundle it shows, and its size."""
        if self.bundle is None and self.display is not None:
            return self.display.bundle, self.display.size
        return self.bundle or ({}, {}), self.size

    def to_json(self) -> dict[str, Any]:
        """The output as the transcript's JSON describes it."""
        (data, metadata), _ = self.shown()
        out: dict[str, Any] = {"output_type": self.output_type, "data": data}
        out["metadata"] = metadata
        if self.output_type == "execute_result":
            out["execution_count"] = self.execution_count
        if self.display_id is not None:
            out["transient"] = {"display_id": self.display_id}
        return out


class Displays:
    """The transcript's outputs by ``display_id``."""

    def __init__(self) -> None:
        self._by_id: dict[str, Display] = {}

    def add(self, output: RichOutput) -> None:
        """Index an output that shows a display id."""
        if output.display_id is None:
            return
        display = self._by_id.get(output.display_id)
        if display is None:
            display = self._by_id[output.display_id] = Display()
        output.display = display
        display.count += 1
        display.shown += output.size
        display.fresh.add(output)

    def remove(self, output: RichOutput) -> None:
        """Forget an output that leaves the transcript."""
        display = output.display
        if display is None or output.display_id is None:
            return
        display.count -= 1
        display.shown -= output.shown()[1]
        display.fresh.discard(output)
        if display.count == 0:
            del self._by_id[output.display_id]

    def update(self, display_id: str, bundle: Bundle, size: int) -> int:
        """Every output of ``display_id`` shows ``bundle`` now: how many bytes that
        adds to the transcript (negative if fewer)."""
        display = self._by_id.get(display_id)
        if display is None:
            return 0
        for output in display.fresh:
            output.bundle = None  # released: it shows the display's bundle from now on
        display.fresh.clear()
        display.bundle, display.size = bundle, size
        delta = display.count * size - display.shown
        display.shown = display.count * size
        return delta

    def clear(self) -> None:
        """Forget every output."""
        self._by_id.clear()

    def __contains__(self, display_id: str) -> bool:
        return display_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)
