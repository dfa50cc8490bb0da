"""Comms in the worker, through the ``comm`` package's hooks, as ipykernel provides them.

``comm.create_comm`` makes a :class:`WorkerComm`, whose messages leave as worker
events (``comm_open``, ``comm_msg``, ``comm_close``) on the record pipe, in order
with the cell's other output; ``comm.get_comm_manager`` returns the one
:class:`~comm.base_comm.CommManager` that a client's comm messages are handed to.
Binary buffers cross the pipe raw, after the record's JSON (:mod:`ipytwist.framing`).

What the ``comm`` package logs about a client's message (to a comm that does not
exist, for a target nobody registered) goes to the service's log as a ``log`` event of
one line, not to every client's stderr; an exception in a comm handler (user code)
still shows its traceback on stderr.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import comm
from comm.base_comm import BaseComm, BuffersType, CommManager, MaybeDict

__all__ = ["COMM_MESSAGES", "WorkerComm", "WorkerComms"]

#: The comm messages a client may send, and the worker may publish.
COMM_MESSAGES = ("comm_open", "comm_msg", "comm_close")
Emit = Callable[[dict[str, Any]], None]
#: The longest line of the comm package's log passed to the kernel, in characters.
MAX_LOG_CHARS = 200


class WorkerComm(BaseComm):
    """A comm whose messages go to the kernel as worker events."""

    #: Set by :class:`WorkerComms` before any comm is made.
    emit: Emit = staticmethod(lambda event: None)

    def publish_msg(
        self,
        msg_type: str,
        data: MaybeDict = None,
        metadata: MaybeDict = None,
        buffers: BuffersType = None,
        **keys: Any,
    ) -> None:
        """One comm message on iopub, parented to the running request."""
        content = {"data": {} if data is None else data, "comm_id": self.comm_id, **keys}
        event: dict[str, Any] = {"ev": msg_type, "content": content, "metadata": metadata or {}}
        if buffers:
            event["buffers"] = list(buffers)
        type(self).emit(event)


class WorkerComms:
    """The worker's comm manager, installed as the ``comm`` package's hooks."""

    def __init__(self, emit: Emit) -> None:
        WorkerComm.emit = staticmethod(emit)
        self.manager = CommManager()

    def install(self) -> None:
        """``comm.create_comm`` and ``comm.get_comm_manager`` are ours from now on."""
        comm.create_comm = WorkerComm
        comm.get_comm_manager = lambda: self.manager
        logger = logging.getLogger("Comm")
        logger.addHandler(_ToKernel())
        logger.propagate = False

    def handle(self, record: dict[str, Any]) -> dict[str, Any]:
        """A client's comm message (the worker request's content): to its comm."""
        msg_type = record.get("msg_type")
        content = record.get("content")
        if msg_type not in COMM_MESSAGES or not isinstance(content, dict):
            raise ValueError(f"not a comm message: {str(msg_type)[:64]!r}")
        if not isinstance(content.get("comm_id"), str):
            raise ValueError("comm_id must be a string")
        if msg_type == "comm_open" and not isinstance(content.get("target_name"), str):
            raise ValueError("target_name must be a string")
        content = {**content, "data": content.get("data") or {}}  # spec: data is an object
        header = record.get("header")
        metadata = record.get("metadata")
        msg = {
            "header": header if isinstance(header, dict) else {},
            "msg_id": (header or {}).get("msg_id", "") if isinstance(header, dict) else "",
            "msg_type": msg_type,
            "parent_header": {},
            "metadata": metadata if isinstance(metadata, dict) else {},
            "content": content,
            # memoryviews, as ipykernel hands them over (widgets' Bytes traits keep them)
            "buffers": [memoryview(b) for b in _buffers(record.get("buffers"))],
        }
        getattr(self.manager, msg_type)(None, None, msg)
        return {"status": "ok"}

    def info(self, target_name: object = None) -> dict[str, Any]:
        """``comm_info_reply`` content: the live comms, of ``target_name`` if given."""
        comms = {
            comm_id: {"target_name": c.target_name}
            for comm_id, c in list(self.manager.comms.items())
            if not target_name or c.target_name == target_name
        }
        return {"status": "ok", "comms": comms}


def _buffers(buffers: object) -> list[bytes | bytearray | memoryview]:
    """A request's binary buffers (the record's, put in by the serve loop)."""
    if not isinstance(buffers, list):
        return []
    return [b for b in buffers if isinstance(b, bytes | bytearray | memoryview)]


class _ToKernel(logging.Handler):
    """The comm package's warnings and errors about clients' messages, one line each,
    as ``log`` events for the kernel's log."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and logging.lastResort is not None:
            # An exception in user code's comm handler: its traceback on stderr, where
            # it went before (the comm package logs it), for the user to see.
            logging.lastResort.handle(record)
            return
        # The client's id or target name is payload: the log says only how long it was.
        args = record.args if isinstance(record.args, tuple) else ()
        shown = tuple(f"({len(str(a))} characters)" for a in args)
        try:
            line = str(record.msg) % shown
        except (TypeError, ValueError):
            line = str(record.msg)
        WorkerComm.emit({"ev": "log", "text": line.partition("\n")[0][:MAX_LOG_CHARS]})
