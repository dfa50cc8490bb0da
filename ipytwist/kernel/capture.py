"""What an ``Output`` widget captured, kept for its state (pure).

While an Output widget's ``msg_id`` names a request, the frontend's Output model takes
that request's outputs instead of the cell.  The transcript does the same for a page
opened later: :class:`Captured` holds them as nbformat's JSON outputs, consecutive
stream text of one name in one output, within a byte bound (the oldest go first, a
stream's text from its start).  Each output costs time in proportion to its own size.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from .outputs import data_bytes
from .streamtext import text_bytes

__all__ = ["CAPTURED", "Captured"]

#: The iopub messages an Output widget captures.
CAPTURED = frozenset({"stream", "display_data", "execute_result", "error", "clear_output"})
#: Memory of a captured output besides its content, in the transcript's byte count.
OUTPUT_OVERHEAD = 256


class _Stream:
    __slots__ = ("name", "pieces")

    def __init__(self, name: str) -> None:
        self.name = name
        self.pieces: deque[str] = deque()


class Captured:
    """One Output widget's captured outputs, within ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.outputs: deque[tuple[_Stream | dict[str, Any], int]] = deque()  # (output, size)
        #: Bytes held now.
        self.size = 0
        self._clear_next = False

    def add(self, msg_type: str, content: dict[str, Any]) -> None:
        """One captured iopub message (``clear_output`` too)."""
        if msg_type == "clear_output":
            if content.get("wait"):
                self._clear_next = True
            else:
                self.clear()
            return
        if self._clear_next:
            self._clear_next = False
            self.clear()
        if msg_type == "stream":
            self._stream(content)
        else:
            output = _rich(msg_type, content)
            self._push(output, OUTPUT_OVERHEAD + data_bytes(output, self.max_bytes)[0])
        self._enforce()

    def clear(self) -> None:
        """Every output goes."""
        self.outputs.clear()
        self.size = 0

    def _stream(self, content: dict[str, Any]) -> None:
        name, text = content.get("name"), content.get("text")
        if not isinstance(name, str) or not isinstance(text, str):
            return
        last = self.outputs[-1][0] if self.outputs else None
        if not (isinstance(last, _Stream) and last.name == name):
            self._push(_Stream(name), OUTPUT_OVERHEAD)
        stream, size = self.outputs[-1]
        assert isinstance(stream, _Stream)
        stream.pieces.append(text)
        self.outputs[-1] = (stream, size + text_bytes(text))
        self.size += text_bytes(text)

    def _push(self, output: _Stream | dict[str, Any], size: int) -> None:
        self.outputs.append((output, size))
        self.size += size

    def _enforce(self) -> None:
        """Within ``max_bytes``: the oldest outputs go, then the last one's oldest text."""
        while self.size > self.max_bytes and len(self.outputs) > 1:
            self.size -= self.outputs.popleft()[1]
        if self.size > self.max_bytes and self.outputs:
            output, size = self.outputs[0]
            if isinstance(output, _Stream):
                while self.size > self.max_bytes and len(output.pieces) > 1:
                    cut = text_bytes(output.pieces.popleft())
                    size -= cut
                    self.size -= cut
                self.outputs[0] = (output, size)

    def to_json(self) -> list[dict[str, Any]]:
        """The outputs as nbformat's JSON (stream text joined)."""
        return [
            {"output_type": "stream", "name": o.name, "text": "".join(o.pieces)}
            if isinstance(o, _Stream)
            else o
            for o, _ in self.outputs
        ]


def _rich(msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    if msg_type == "error":
        keys = ("ename", "evalue", "traceback")
        return {"output_type": "error", **{k: content.get(k) for k in keys}}
    output = {"output_type": msg_type, "data": content.get("data") or {}}
    output["metadata"] = content.get("metadata") or {}
    if msg_type == "execute_result":
        output["execution_count"] = content.get("execution_count")
    return output
