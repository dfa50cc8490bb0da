"""The notebook as the service knows it: every executed cell, in order, with its outputs.

Pure: :class:`Transcript` is fed the kernel's execute requests (from any client)
and its iopub messages, and keeps what a notebook page shows.  Output is stored
as it is displayed, with ``clear_output(wait=...)``, ``update_display_data`` and
``\\r`` already applied.  Memory is bounded: a cell keeps at most ``max_lines``
lines of stream output (the head and the tail, with an exact count of the lines
hidden between them) and the transcript at most ``max_cells`` cells.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .envelope import output_bytes
from .outputlog import OutputLog
from .streamtext import StreamOutput, apply_carriage_returns

DEFAULT_MAX_CELLS = 500
DEFAULT_MAX_LINES = 2000  # per stream output: the head and the tail halves
DEFAULT_MAX_LINE_CHARS = 10_000
DEFAULT_MAX_OUTPUTS = 200  # outputs per cell
DEFAULT_MAX_BYTES = 16 * 1024 * 1024  # all cells: the oldest go first


@dataclass
class Cell:
    """One executed or queued cell: its code, its client, its state and its outputs."""

    id: str  # the execute_request's msg_id
    code: str
    origin: str  # the kind of client: "page", "gateway", "websocket" or "zmq"
    client: str  # the request's session (and username) as the client gave them
    state: str = "queued"  # then running, done, error, interrupted or aborted
    execution_count: int | None = None
    outputs: list[Any] = field(default_factory=list)  # StreamOutput or dict
    clear_pending: bool = False
    size: int = 0  # characters held by its code and outputs
    dropped_outputs: int = 0
    first_seq: int = 0  # the log seq of its execute_input (0: not known)

    def to_json(self) -> dict[str, Any]:
        """The cell as the transcript's JSON describes it."""
        return {
            "id": self.id,
            "code": self.code,
            "origin": self.origin,
            "client": self.client,
            "state": self.state,
            "execution_count": self.execution_count,
            "outputs": [o.to_json() if isinstance(o, StreamOutput) else o for o in self.outputs],
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
        self.max_line_chars = max_line_chars
        self.cells: OrderedDict[str, Cell] = OrderedDict()
        #: The msg_id of the last iopub message applied: a page that loads the
        #: transcript follows live messages from there (``since_msg_id``).
        self.last_msg_id = ""
        self.dropped_cells = 0
        self.size = 0
        self._seq = 0

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
        client = str(header.get("session", ""))[:64]
        user = str(header.get("username", ""))[:64]
        if user:
            client = f"{user}@{client}" if client else user
        cell = Cell(msg_id, code[: self.max_bytes // 4], origin, client)
        self._resize(cell, len(cell.code))
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
        elif msg_type in ("display_data", "execute_result", "error"):
            self._rich(cell, msg_type, content)

    # -- output -------------------------------------------------------------------

    def _before_output(self, cell: Cell) -> None:
        if cell.clear_pending:
            cell.clear_pending = False
            self._clear_outputs(cell)

    def _clear_outputs(self, cell: Cell) -> None:
        self._resize(cell, -sum(_size_of(o) for o in cell.outputs))
        cell.outputs.clear()

    def _stream(self, cell: Cell, content: dict[str, Any]) -> None:
        name, text = content.get("name"), content.get("text")
        if not isinstance(name, str) or not isinstance(text, str):
            return
        self._before_output(cell)
        last = cell.outputs[-1] if cell.outputs else None
        if not (isinstance(last, StreamOutput) and last.name == name):
            last = StreamOutput(name, self.max_lines, self.max_line_chars)
            self._append(cell, last, 0)
        last.write(text)
        self._resize(cell, last.grew)
        self._enforce()

    def _rich(self, cell: Cell, msg_type: str, content: dict[str, Any]) -> None:
        self._before_output(cell)
        output: dict[str, Any] = {"output_type": msg_type}
        if msg_type == "error":
            output.update(
                ename=str(content.get("ename", "")),
                evalue=str(content.get("evalue", "")),
                traceback=[str(t) for t in content.get("traceback") or []],
            )
            cell.state = "interrupted" if output["ename"] == "KeyboardInterrupt" else "error"
        else:
            output["data"] = dict(content.get("data") or {})
            output["metadata"] = dict(content.get("metadata") or {})
            if msg_type == "execute_result":
                count = content.get("execution_count")
                output["execution_count"] = count if isinstance(count, int) else None
            display_id = (content.get("transient") or {}).get("display_id")
            if isinstance(display_id, str):
                output["transient"] = {"display_id": display_id}
        self._append(cell, output, output_bytes(output))
        self._enforce()

    def _append(self, cell: Cell, output: Any, size: int) -> None:
        cell.outputs.append(output)
        self._resize(cell, size)
        if len(cell.outputs) > self.max_outputs:
            self._drop_first_output(cell)

    def _drop_first_output(self, cell: Cell) -> None:
        first = cell.outputs.pop(0)
        cell.dropped_outputs += 1
        self._resize(cell, -_size_of(first))

    def _resize(self, cell: Cell, delta: int) -> None:
        cell.size += delta
        self.size += delta

    def _enforce(self) -> None:
        """Within max_cells and max_bytes: the oldest cells go first, then the oldest
        outputs of the one cell left."""
        while len(self.cells) > 1 and (
            len(self.cells) > self.max_cells or self.size > self.max_bytes
        ):
            _, old = self.cells.popitem(last=False)
            self.size -= old.size
            self.dropped_cells += 1
        if self.cells and self.size > self.max_bytes:
            cell = next(iter(self.cells.values()))
            while len(cell.outputs) > 1 and self.size > self.max_bytes:
                self._drop_first_output(cell)

    def _update_display(self, content: dict[str, Any]) -> None:
        display_id = (content.get("transient") or {}).get("display_id")
        if not isinstance(display_id, str):
            return
        for cell in self.cells.values():
            for output in cell.outputs:
                if (
                    isinstance(output, dict)
                    and (output.get("transient") or {}).get("display_id") == display_id
                ):
                    before = _size_of(output)
                    output["data"] = dict(content.get("data") or {})
                    output["metadata"] = dict(content.get("metadata") or {})
                    self._resize(cell, _size_of(output) - before)
        self._enforce()

    # -- views ----------------------------------------------------------------------

    def full_output(self, cell_id: str, log: OutputLog) -> str | None:
        """All the stream text of a cell still in the kernel's output log (``log``),
        as shown (``\\r`` applied); None for an unknown cell.  A first line says so
        when the log no longer reaches back to the cell's start."""
        cell = self.cells.get(cell_id)
        if cell is None:
            return None
        parts = [
            env.msg["content"].get("text", "")
            for env in log.retained()
            if env.parent_id == cell_id and env.msg_type == "stream"
        ]
        text = apply_carriage_returns("".join(p for p in parts if isinstance(p, str)))
        if not cell.first_seq or log.first_logged_seq > cell.first_seq:
            text = "[ipytwist: the start of this output is no longer in the kernel's log]\n" + text
        return text

    def clear(self) -> None:
        """Forget every cell (a client cleared the transcript)."""
        self.cells.clear()
        self.size = 0

    def to_json(self) -> dict[str, Any]:
        """The transcript as the notebook page loads it: cells, the last message id, and
        the limits it keeps to (the page applies them to live output too)."""
        return {
            "cells": [c.to_json() for c in self.cells.values()],
            "last_msg_id": self.last_msg_id,
            "dropped_cells": self.dropped_cells,
            "limits": {
                "max_cells": self.max_cells,
                "max_outputs": self.max_outputs,
                "max_lines": self.max_lines,
                "max_line_chars": self.max_line_chars,
                "max_bytes": self.max_bytes,
            },
        }

    def to_notebook(self, kernel_name: str = "ipytwist") -> dict[str, Any]:
        """The transcript as an nbformat 4 notebook."""
        cells = []
        for cell in self.cells.values():
            outputs = []
            for o in cell.to_json()["outputs"]:
                if o["output_type"] == "stream":
                    outputs.append({"output_type": "stream", "name": o["name"], "text": o["text"]})
                elif o["output_type"] == "error":
                    keys = ("output_type", "ename", "evalue", "traceback")
                    outputs.append({k: o[k] for k in keys})
                else:
                    out = {
                        "output_type": o["output_type"],
                        "data": o["data"],
                        "metadata": o["metadata"],
                    }
                    if o["output_type"] == "execute_result":
                        out["execution_count"] = o.get("execution_count")
                    outputs.append(out)
            cells.append(
                {
                    "cell_type": "code",
                    "id": _nb_cell_id(cell.id),
                    "execution_count": cell.execution_count,
                    "metadata": {"ipytwist": {"origin": cell.origin, "client": cell.client}},
                    "source": cell.code,
                    "outputs": outputs,
                }
            )
        return {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {
                "kernelspec": {
                    "name": kernel_name,
                    "display_name": "Python 3 (ipytwist)",
                    "language": "python",
                },
                "language_info": {"name": "python"},
            },
            "cells": cells,
        }


def _size_of(output: Any) -> int:
    return output.size if isinstance(output, StreamOutput) else output_bytes(output)


def _nb_cell_id(msg_id: str) -> str:
    """nbformat cell ids: 1-64 chars of letters, digits, '-' and '_'."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "-", msg_id)[:64]
    return cleaned or "cell"
