"""What one client saw of a widget's updates (pure): each distinct frame summarised once,
and a tally per client and request of its messages, the widget's values and its idle.

The widget benchmark (``bench/widget_bench.py``) sets one widget's ``value`` N times in a
cell; every client must see the ``comm_msg`` that carries the last value and the cell's
``status: idle``.  A :class:`Tally` says when that happened, how many updates came, and
whether any came out of order or the server said it dropped some.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Summary(NamedTuple):
    """The few facts the benchmark needs of one message."""

    channel: str
    msg_type: str
    parent: str | None
    comm_id: str | None = None
    #: ``state.value`` of a ``comm_msg`` update (None: none in it).
    value: Any = None
    #: ``state._model_name`` of a ``comm_open``.
    model: str | None = None
    idle: bool = False
    #: A server's notice that this client missed messages (ipytwist's gap notice,
    #: jupyter_server's rate limit).
    gap: bool = False


GAP_MARKERS = ("[ipytwist]", "IOPub message rate exceeded", "IOPub data rate exceeded")


def summarize(msg: dict[str, Any]) -> Summary:
    """The :class:`Summary` of a decoded message (``channel`` and ``msg_type`` at its top,
    as :func:`benchlib.frames.unpack_v1` and :func:`benchlib.frames.decode_legacy` give)."""
    msg_type = msg["msg_type"]
    parent = (msg.get("parent_header") or {}).get("msg_id")
    content = msg.get("content") or {}
    s = Summary(msg.get("channel", ""), msg_type, parent)
    if msg_type in ("comm_msg", "comm_open"):
        data = content.get("data") or {}
        state = data.get("state") or {}
        if msg_type == "comm_open":
            return s._replace(comm_id=content.get("comm_id"), model=state.get("_model_name"))
        if data.get("method") in ("update", "echo_update") and "value" in state:
            return s._replace(comm_id=content.get("comm_id"), value=state["value"])
        return s._replace(comm_id=content.get("comm_id"))
    if msg_type == "status":
        return s._replace(idle=content.get("execution_state") == "idle")
    if msg_type == "stream" and content.get("name") == "stderr":
        text = content.get("text", "")
        return s._replace(gap=any(m in text for m in GAP_MARKERS))
    return s


@dataclass
class Tally:
    """One client's view of one request: done once it saw the request's idle and, if a
    ``target`` is given, ``target`` as the value of widget ``comm_id``."""

    request: str
    comm_id: str | None = None
    target: Any = None
    #: Every frame received since the tally began (any channel, any parent).
    frames: int = 0
    #: iopub messages parented to the request.
    iopub: int = 0
    #: Updates of ``comm_id``'s value parented to the request.
    updates: int = 0
    last: Any = None
    #: Updates whose value was not above the one before (the values only grow).
    backwards: int = 0
    gaps: int = 0
    #: comm_id -> model name of the widgets the request opened.
    models: dict[str, str | None] = field(default_factory=dict)
    #: When the last frame (any) came.
    seen_at: float | None = None
    #: When the latest update came, and when the target value came.
    update_at: float | None = None
    last_at: float | None = None
    idle_at: float | None = None
    done_at: float | None = None

    def feed(self, s: Summary, now: float) -> bool:
        """Count one message received at ``now``; True when it makes the tally done."""
        self.frames += 1
        self.seen_at = now
        if s.gap:
            self.gaps += 1
        if s.parent != self.request or s.channel != "iopub":
            return False
        self.iopub += 1
        if s.msg_type == "comm_msg" and s.value is not None and s.comm_id == self.comm_id:
            self.updates += 1
            if self.last is not None and s.value <= self.last:
                self.backwards += 1
            self.last = s.value
            self.update_at = now
            if s.value == self.target:
                self.last_at = now
        elif s.msg_type == "comm_open" and s.comm_id is not None:
            self.models[s.comm_id] = s.model
        elif s.idle and self.idle_at is None:
            self.idle_at = now
        if self.done_at is None and self.idle_at is not None and self.reached:
            self.done_at = now
            return True
        return False

    @property
    def reached(self) -> bool:
        """Whether the widget ends at the target (always, without a target)."""
        return self.target is None or self.last == self.target

    def widget(self, model: str) -> str | None:
        """The comm_id of the first widget of class ``model`` the request opened."""
        return next((cid for cid, name in self.models.items() if name == model), None)
