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

from typing import Any, NamedTuple

from ..framing import decode_buffers

__all__ = ["COMM_MESSAGES", "CommMessage", "comm_message"]

#: The comm messages, from clients and from the worker.
COMM_MESSAGES = ("comm_open", "comm_msg", "comm_close")


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
        decode_buffers(event.get("buffers")),
    )
