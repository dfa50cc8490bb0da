"""What a kernel's journal tells of the kernel besides its log and transcript (pure):
its Jupyter session, execution count, the requests accepted and not finished, the one
that runs, the link's last safe mark."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .outputlog import Position

__all__ = ["MAX_PENDING", "KernelState", "Restored"]

#: Requests accepted and not finished, kept to say which one runs (the oldest go).
MAX_PENDING = 100


@dataclass
class Restored:
    """What a journal held besides the log and transcript it restored."""

    session: str | None = None  # the kernel's Jupyter session id
    execution_count: int = 0
    #: The execute_request (header, content, metadata) that was running: busy, no idle.
    running: dict[str, Any] | None = None
    link: tuple[str, int] | None = None  # the last link_safe mark
    sessions: dict[str, Position] = field(default_factory=dict)


class KernelState:
    """The kernel's state the records tell (count, requests pending, the running one)."""

    def __init__(self) -> None:
        self.session: str | None = None
        self.count = 0
        self.pending: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.running: str | None = None
        self.link: tuple[str, int] | None = None

    def request(self, msg: dict[str, Any]) -> None:
        """An execute request accepted (the message as the journal keeps it)."""
        self.pending[str(msg["header"].get("msg_id", ""))] = msg
        while len(self.pending) > MAX_PENDING:
            self.pending.popitem(last=False)

    def iopub(self, msg: dict[str, Any]) -> None:
        """An iopub message published: the count, the request that runs."""
        msg_type = msg["header"].get("msg_type")
        content = msg.get("content") or {}
        if msg_type == "execute_input" and isinstance(content.get("execution_count"), int):
            self.count = content["execution_count"]
        elif msg_type == "status":
            parent = (msg.get("parent_header") or {}).get("msg_id")
            state = content.get("execution_state")
            if state == "busy" and parent in self.pending:
                self.running = parent
            elif state == "idle" and isinstance(parent, str):
                self.pending.pop(parent, None)
                if self.running == parent:
                    self.running = None

    def to_json(self) -> dict[str, Any]:
        """The state, for a snapshot record."""
        return {
            "k": self.session,
            "n": self.count,
            "q": list(self.pending.items()),
            "r": self.running,
            "l": self.link,
        }

    def load(self, data: dict[str, Any]) -> None:
        """The state of a snapshot record (raises on one that is not)."""
        session, count, running, link = data["k"], data["n"], data["r"], data["l"]
        self.session = session if isinstance(session, str) else None
        self.count = count if isinstance(count, int) else 0
        self.pending = OrderedDict((str(k), dict(m)) for k, m in data["q"])
        self.running = running if isinstance(running, str) else None
        self.link = (str(link[0]), int(link[1])) if link else None
