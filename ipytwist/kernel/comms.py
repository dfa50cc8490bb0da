"""Comms (the messaging spec's ``comm_open``, ``comm_msg``, ``comm_close``) on the kernel.

A client's comm messages are worker requests: they wait their turn in the queue
with executes, as ipykernel handles them in its shell's order (one that arrives
while a cell runs is handled after it), and get no reply.  ``comm_info_request``
is answered by the worker, from its live comms.  A comm message the worker
publishes (user code's comm, such as a widget) becomes an iopub message with its
metadata and binary buffers, parented to the running request, in order with the
cell's other output.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

from ..loglimit import LimitedLog
from ..wire import Message
from .outputs import MAX_ID_CHARS
from .requests import Request, tell_handled

__all__ = [
    "COMM_MESSAGES",
    "CONTROL_COMMS",
    "MAX_LIVE_COMMS",
    "CommMessage",
    "LiveComms",
    "comm_message",
    "comm_refused",
]

#: The comm messages, from clients and from the worker.
COMM_MESSAGES = ("comm_open", "comm_msg", "comm_close")
#: Worker requests a client may also send on control.
CONTROL_COMMS = ("comm_info_request",)
#: Open comms the kernel remembers to close at a restart; past it, the oldest are
#: forgotten (ids of at most MAX_ID_CHARS characters: at most about 11 MiB).
MAX_LIVE_COMMS = 10_000


class CommMessage(NamedTuple):
    """An iopub comm message to publish."""

    msg_type: str
    content: dict[str, Any]
    metadata: dict[str, Any]
    buffers: list[bytes]


def comm_message(event: dict[str, Any]) -> CommMessage | None:
    """The iopub message of a worker's comm event, or None for another event (or a
    malformed one: no comm_id)."""
    kind = event.get("ev")
    content = event.get("content")
    if kind not in COMM_MESSAGES or not isinstance(content, dict):
        return None
    if not isinstance(content.get("comm_id"), str):
        return None
    metadata = event.get("metadata")
    return CommMessage(
        str(kind),
        content,
        metadata if isinstance(metadata, dict) else {},
        [b for b in event.get("buffers") or () if isinstance(b, bytes)],
    )


def comm_problem(msg: Message) -> str | None:
    """What makes a client's comm message one no comm can take, if anything."""
    msg_type = msg["header"]["msg_type"]
    if msg_type not in COMM_MESSAGES:
        return None
    content = msg.get("content")
    if not isinstance(content, dict):
        return "its content is not an object"
    if not isinstance(content.get("comm_id"), str):
        return "its comm_id is not a string"
    if msg_type == "comm_open" and not isinstance(content.get("target_name"), str):
        return "its target_name is not a string"
    if not isinstance(content.get("data", {}), dict):
        return "its data is not an object"
    return None


def comm_refused(request: Request, rejects: LimitedLog) -> bool:
    """A malformed comm message is refused with one log line (never its payload); the
    protocol has no reply to a comm message, so its sender is told nothing, as on
    ipykernel."""
    problem = comm_problem(request.msg)
    if problem is not None:
        t = str(request.msg_type)
        rejects.warn("ignored a {t}: {p}", "comm", t=t, p=problem)
        tell_handled(request)
    return problem is not None


class LiveComms:
    """The ids of the open comms of the current interpreter, oldest first (bounded)."""

    def __init__(self, max_comms: int = MAX_LIVE_COMMS) -> None:
        self.max_comms = max_comms
        self.ids: OrderedDict[str, None] = OrderedDict()
        #: Open comms forgotten to keep within ``max_comms`` (not closed at a restart).
        self.forgotten = 0

    def follow(self, msg_type: str, content: dict[str, Any]) -> None:
        """A comm message, the worker's (published) or a client's (as the worker gets
        it): ``comm_open`` adds its comm, ``comm_close`` removes it; others: nothing."""
        comm_id = content.get("comm_id")
        if not isinstance(comm_id, str):
            return
        if msg_type == "comm_close":
            self.ids.pop(comm_id, None)
        elif msg_type == "comm_open" and 0 < len(comm_id) <= MAX_ID_CHARS:
            self.ids[comm_id] = None
            if len(self.ids) > self.max_comms:
                self.ids.popitem(last=False)
                self.forgotten += 1

    def close_all(self, close: Callable[[dict[str, Any]], None]) -> None:
        """The interpreter is gone: ``close`` is given the ``comm_close`` content of
        every open comm, oldest first, and none is open any more."""
        ids, self.ids = self.ids, OrderedDict()
        for comm_id in ids:
            close({"comm_id": comm_id, "data": {}})
