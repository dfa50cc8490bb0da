"""The notebook as the service knows it: every executed cell, in order, with its outputs.

Pure: :class:`Transcript` is fed the kernel's execute requests (from any client)
and its iopub messages, and keeps what a notebook page shows.  Output is stored
as it is displayed, with ``clear_output(wait=...)``, ``update_display_data`` and
``\\r`` already applied, each in time proportional to its own message.

Memory is bounded, in bytes: the UTF-8 length of the cells' code, ids and outputs plus
a fixed overhead for each cell, output, kept line and item of structured data
(:attr:`Transcript.size`, :mod:`.outputs`), at most ``max_bytes`` at every moment.
One output keeps at most a quarter of that (``max_output_bytes``): a larger rich
output is kept as a placeholder that says what it was, a stream keeps its first and
last lines within it, and an error's traceback its first and last lines.  A cell
keeps at most ``max_lines`` lines of each stream (the head and the tail, with an exact
count of the lines hidden between them) and ``max_outputs`` outputs, and the
transcript at most ``max_cells`` cells.  The kernel's live widget models keep their
latest state (:mod:`.widgets`) within a quarter of ``max_bytes``, counted in the same size.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .ipynb import notebook
from .outputlog import OutputLog
from .outputs import (
    MAX_ID_CHARS,
    OUTPUT_OVERHEAD,
    Bundle,
    Displays,
    ErrorOutput,
    RichOutput,
    bundle_bytes,
    cut_error,
    cut_text,
    omitted,
)
from .streamtext import STREAM_OVERHEAD, StreamOutput, shown_text, text_bytes
from .widgets import WIDGET_MESSAGES, WidgetStore

DEFAULT_MAX_CELLS = 500
DEFAULT_MAX_LINES = 2000  # per stream output: the head and the tail halves
DEFAULT_MAX_LINE_CHARS = 10_000
DEFAULT_MAX_OUTPUTS = 200  # outputs per cell
DEFAULT_MAX_BYTES = 16 * 1024 * 1024  # all cells: the oldest go first
#: The least ``max_bytes`` that holds a cell with an output of every kind.
MIN_BYTES = 64 * 1024
#: Memory of a cell besides its code and outputs, in the transcript's byte count
#: (measured: 0.3 KiB).
CELL_OVERHEAD = 512

Output = StreamOutput | RichOutput | ErrorOutput


@dataclass
class Cell:
    """One executed or queued cell: its code, its client, its state and its outputs."""

    id: str  # the execute_request's msg_id
    code: str
    origin: str  # the kind of client: "page", "gateway", "websocket" or "zmq"
    client: str  # the request's session (and username) as the client gave them
    state: str = "queued"  # then running, done, error, interrupted or aborted
    execution_count: int | None = None
    outputs: list[Output] = field(default_factory=list)
    clear_pending: bool = False
    dropped_outputs: int = 0
    first_seq: int = 0  # the log seq of its execute_input (0: not known)

    def own_size(self) -> int:
        """Bytes it holds besides its outputs: its code, ids and overhead."""
        texts = (self.code, self.id, self.client)
        return CELL_OVERHEAD + sum(map(text_bytes, texts))

    def size(self) -> int:
        """Bytes it holds now, in the transcript's count (time: its outputs)."""
        return self.own_size() + sum(map(_size_of, self.outputs))

    def to_json(self) -> dict[str, Any]:
        """The cell as the transcript's JSON describes it."""
        return {
            "id": self.id,
            "code": self.code,
            "origin": self.origin,
            "client": self.client,
            "state": self.state,
            "execution_count": self.execution_count,
            "outputs": [o.to_json() for o in self.outputs],
            "dropped_outputs": self.dropped_outputs,
        }


class Transcript:
    """Cells of one kernel, fed by :meth:`request` and :meth:`deliver` (a stream
    subscriber)."""

    def __init__(
        self,
        max_cells: int = DEFAULT_MAX_CELLS,
        max_lines: int = DEFAULT_MAX_LINES,
        max_outputs: int = DEFAULT_MAX_OUTPUTS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_line_chars: int = DEFAULT_MAX_LINE_CHARS,
    ) -> None:
        self.max_cells = max_cells
        self.max_lines = max_lines
        self.max_outputs = max_outputs
        self.max_bytes = max_bytes
        #: What one output (or a cell's code) may hold.
        self.max_output_bytes = max(1, max_bytes // 4)
        #: A line must fit in half an output: 4 bytes a character, and its cut marker.
        self.max_line_chars = max(1, min(max_line_chars, self.max_output_bytes // 8 - 16))
        self.cells: OrderedDict[str, Cell] = OrderedDict()
        #: The msg_id of the last iopub message applied: a page that loads the
        #: transcript follows live messages from there (``since_msg_id``).
        self.last_msg_id = ""
        self.dropped_cells = 0
        #: Bytes held now (see the module's docstring).
        self.size = 0
        self._displays = Displays()
        self._seq = 0
        #: The kernel's live widget models (their bytes count in :attr:`size`).
        self.widgets = WidgetStore(max(1, max_bytes // 4))

    # -- input --------------------------------------------------------------------

    def request(self, msg: dict[str, Any], origin: str) -> None:
        """An execute request was accepted by the kernel (queued until it runs)."""
        header = msg.get("header") or {}
        content = msg.get("content") or {}
        if header.get("msg_type") != "execute_request" or content.get("silent"):
            return
        code = content.get("code")
        if not isinstance(code, str):
            return
        msg_id = str(header.get("msg_id", ""))
        if len(msg_id) > MAX_ID_CHARS:
            return
        client = str(header.get("session", ""))[:64]
        user = str(header.get("username", ""))[:64]
        if user:
            client = f"{user}@{client}" if client else user
        old = self.cells.pop(msg_id, None)
        if old is not None:  # a msg_id used again: the new cell replaces the old
            self._forget(old)
        cell = Cell(msg_id, cut_text(code, self.max_output_bytes), origin, client)
        self.size += cell.own_size()
        self.cells[msg_id] = cell
        self._enforce()

    def deliver(self, envelope: Any) -> None:
        """One iopub message (the OutputLog's Subscriber interface)."""
        self._seq = envelope.seq
        self.apply(envelope.msg)
        self._seq = 0

    def apply(self, msg: dict[str, Any]) -> None:
        """Update the cells from one iopub message (state, count, outputs)."""
        header = msg.get("header") or {}
        self.last_msg_id = str(header.get("msg_id", ""))
        parent = (msg.get("parent_header") or {}).get("msg_id")
        msg_type = header.get("msg_type")
        content = msg.get("content") or {}
        if msg_type == "update_display_data":
            self._update_display(content)
            return
        if msg_type in WIDGET_MESSAGES:
            self._widgets(self.widgets.apply, msg_type, content, msg.get("buffers") or [])
        if isinstance(parent, str) and self.widgets.captures(parent, msg_type):
            self._widgets(self.widgets.capture, parent, msg_type, content)
            return  # an Output widget's, not the cell's (as in the frontend)
        cell = self.cells.get(parent) if isinstance(parent, str) else None
        if cell is None:
            return
        if msg_type == "status":
            state = content.get("execution_state")
            if state == "busy" and cell.state == "queued":
                cell.state = "running"
            elif state == "idle" and cell.state in ("queued", "running"):
                # Never started (no execute_input): aborted after an error, or its
                # interpreter died first.
                cell.state = "done" if cell.execution_count is not None else "aborted"
        elif msg_type == "execute_input":
            cell.state = "running"
            cell.first_seq = self._seq
            count = content.get("execution_count")
            cell.execution_count = count if isinstance(count, int) else None
        elif msg_type == "clear_output":
            if content.get("wait"):
                cell.clear_pending = True
            else:
                self._clear_outputs(cell)
        elif msg_type == "stream":
            self._stream(cell, content)
        elif msg_type == "error":
            self._before_output(cell)
            error = cut_error(content, self.max_line_chars, self.max_output_bytes)
            cell.state = "interrupted" if error.ename == "KeyboardInterrupt" else "error"
            self._append(cell, error)
        elif msg_type in ("display_data", "execute_result"):
            self._rich(cell, msg_type, content)

    def stdin(self, parent: str, text: str) -> None:
        """What ``input()`` shows in the cell of request ``parent`` (:mod:`.stdin`)."""
        cell = self.cells.get(parent)
        if cell is not None:
            self._stream(cell, {"name": "stdin", "text": text})

    # -- output -------------------------------------------------------------------

    def _before_output(self, cell: Cell) -> None:
        if cell.clear_pending:
            cell.clear_pending = False
            self._clear_outputs(cell)

    def _clear_outputs(self, cell: Cell) -> None:
        """Time: the outputs cleared (each was added by a message of its own)."""
        for output in cell.outputs:
            self._forget_output(output)
        cell.outputs.clear()

    def _stream(self, cell: Cell, content: dict[str, Any]) -> None:
        name, text = content.get("name"), content.get("text")
        if not isinstance(name, str) or not isinstance(text, str):
            return
        self._before_output(cell)
        last = cell.outputs[-1] if cell.outputs else None
        if not (isinstance(last, StreamOutput) and last.name == name):
            last = StreamOutput(name, self.max_lines, self.max_line_chars, self._stream_bytes)
            last.write(text)
            self._append(cell, last)
            return
        last.write(text)
        self.size += last.grew
        self._enforce()

    @property
    def _stream_bytes(self) -> int:
        return max(0, self.max_output_bytes - STREAM_OVERHEAD)

    def _bundle(self, content: dict[str, Any]) -> tuple[Bundle, int]:
        """A message's mime bundle as kept (a placeholder if too large), and its size."""
        data, metadata = content.get("data"), content.get("metadata")
        bundle = (
            dict(data) if isinstance(data, dict) else {},
            dict(metadata) if isinstance(metadata, dict) else {},
        )
        limit = self.max_output_bytes
        size, whole = bundle_bytes(bundle, limit)
        if size > limit:
            bundle = omitted(bundle, size - OUTPUT_OVERHEAD, whole, limit)
            size, _ = bundle_bytes(bundle, limit)
        return bundle, size

    def _rich(self, cell: Cell, msg_type: str, content: dict[str, Any]) -> None:
        self._before_output(cell)
        bundle, size = self._bundle(content)
        count = content.get("execution_count") if msg_type == "execute_result" else None
        display_id = _display_id(content)
        if display_id is not None:
            size += text_bytes(display_id)
        output = RichOutput(
            msg_type, bundle, size, count if isinstance(count, int) else None, display_id
        )
        self._displays.add(output)
        self._append(cell, output)

    def _append(self, cell: Cell, output: Output) -> None:
        cell.outputs.append(output)
        self.size += _size_of(output)
        if len(cell.outputs) > self.max_outputs:
            self._drop_first_output(cell)
        self._enforce()

    def _drop_first_output(self, cell: Cell) -> None:
        self._forget_output(cell.outputs.pop(0))
        cell.dropped_outputs += 1

    def _forget_output(self, output: Output) -> None:
        self.size -= _size_of(output)
        if isinstance(output, RichOutput):
            self._displays.remove(output)

    def _forget(self, cell: Cell) -> None:
        """A cell leaves: its bytes and its displays go (time: its outputs)."""
        self._clear_outputs(cell)
        self.size -= cell.own_size()

    def _enforce(self) -> None:
        """Within max_cells and max_bytes: the oldest cells go first, then the oldest
        outputs of the one cell left (time: what goes, each added by a message)."""
        while len(self.cells) > 1 and (
            len(self.cells) > self.max_cells or self.size > self.max_bytes
        ):
            _, old = self.cells.popitem(last=False)
            self._forget(old)
            self.dropped_cells += 1
        if self.cells and self.size > self.max_bytes:
            cell = next(iter(self.cells.values()))
            while len(cell.outputs) > 1 and self.size > self.max_bytes:
                self._drop_first_output(cell)

    def _update_display(self, content: dict[str, Any]) -> None:
        """Through the displays index: no output is looked at that does not show it."""
        display_id = _display_id(content)
        if display_id is None or display_id not in self._displays:
            return
        bundle, size = self._bundle(content)
        self.size += self._displays.update(display_id, bundle, size + text_bytes(display_id))
        self._enforce()

    def _widgets(self, change: Callable[..., None], *args: Any) -> None:
        """A change to the widgets: a comm message, a status (a restart clears them),
        an output an Output widget captures."""
        before = self.widgets.size
        change(*args)
        self.size += self.widgets.size - before
        self._enforce()

    # -- views ----------------------------------------------------------------------

    def full_output(self, cell_id: str, log: OutputLog) -> Iterator[str] | None:
        """All the stream text of a cell still in the kernel's output log (``log``),
        as shown (``\\r`` applied), in pieces; None for an unknown cell.  A first line
        says so when the log no longer reaches back to the cell's start.

        The log's messages are taken now; the text is worked out as the pieces are
        read, a slice of :data:`FULL_OUTPUT_SLICE` characters at a time, in time linear
        in the text, so that a reader can yield between pieces."""
        cell = self.cells.get(cell_id)
        if cell is None:
            return None
        texts = [
            text
            for env in log.retained()
            if env.parent_id == cell_id
            and env.msg_type == "stream"
            and isinstance(text := env.msg["content"].get("text"), str)
        ]
        whole = bool(cell.first_seq) and log.first_logged_seq <= cell.first_seq
        return shown_text(texts, whole)

    def clear(self) -> None:
        """Forget every cell (a client cleared the transcript)."""
        self.cells.clear()
        self._displays.clear()
        self.size = self.widgets.size  # live widgets stay: they are the kernel's

    def to_json(self) -> dict[str, Any]:
        """The transcript as the notebook page loads it: cells, the last message id, the
        bytes it holds, and the limits it keeps to (the page applies them to live output
        too), and the widgets' state.  Nothing in it changes afterwards: a snapshot."""
        return {
            "cells": [c.to_json() for c in self.cells.values()],
            "last_msg_id": self.last_msg_id,
            "dropped_cells": self.dropped_cells,
            "widgets": self.widgets.to_json(),
            "dropped_widgets": self.widgets.dropped,
            "bytes": self.size,
            "limits": {
                "max_cells": self.max_cells,
                "max_outputs": self.max_outputs,
                "max_lines": self.max_lines,
                "max_line_chars": self.max_line_chars,
                "max_bytes": self.max_bytes,
                "max_output_bytes": self.max_output_bytes,
                "max_widget_bytes": self.widgets.max_bytes,
            },
        }

    def to_notebook(self, kernel_name: str = "ipytwist") -> dict[str, Any]:
        """The transcript as an nbformat 4 notebook."""
        return notebook(self.to_json(), kernel_name)


def _size_of(output: Output) -> int:
    if isinstance(output, RichOutput):
        return output.shown()[1]
    if isinstance(output, StreamOutput):
        return output.size + STREAM_OVERHEAD
    return output.size


def _display_id(content: dict[str, Any]) -> str | None:
    transient = content.get("transient")
    display_id = transient.get("display_id") if isinstance(transient, dict) else None
    if isinstance(display_id, str) and len(display_id) <= MAX_ID_CHARS:
        return display_id
    return None
