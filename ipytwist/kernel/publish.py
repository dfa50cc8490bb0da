"""How the kernel speaks: iopub messages into its output log, replies to one client.

:class:`Publisher` builds every message the kernel sends, with the kernel's
session and the right parent: iopub output is parented to the request that
runs (or, after it, to the last one that ran, so late output still lands in
its cell); replies go to the client that asked, and a client that vanished
never stops the kernel.

It knows the comms open in the interpreter (:class:`.comms.LiveComms`): a
``restarting`` status, which says the interpreter is gone, follows a
``comm_close`` to every client for each of them.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from ..wire import Message, new_message
from .comms import COMM_MESSAGES, LiveComms
from .outputlog import OutputLog
from .replies import reply_message
from .requests import NO_REPLY, Request, tell_handled

__all__ = ["Publisher"]


class Publisher:
    """The kernel's iopub messages and replies."""

    log = Logger()

    def __init__(self, session: str, output_log: OutputLog) -> None:
        self.session = session
        self.output_log = output_log
        #: The request output is parented to: the running one, else the last that ran.
        self.parent: Message | None = None
        #: The comms open in the interpreter (a client's comm message: :meth:`sent`).
        self.comms = LiveComms()

    def publish(
        self,
        msg_type: str,
        content: dict[str, Any],
        parent: Message | None,
        metadata: dict[str, Any] | None = None,
        buffers: list[bytes] | None = None,
    ) -> None:
        """One iopub message, parented to ``parent``."""
        if msg_type in COMM_MESSAGES:
            self.comms.follow(msg_type, content)
        msg = new_message(msg_type, content, self.session, parent, metadata, buffers)
        self.output_log.publish(msg)

    def output(
        self,
        msg_type: str,
        content: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        buffers: list[bytes] | None = None,
    ) -> None:
        """Output of the running request (or of the last one)."""
        self.publish(msg_type, content, self.parent, metadata, buffers)

    def stream(self, name: str, text: str) -> None:
        """Stream text (``stdout``, ``stderr``) of the running request."""
        self.output("stream", {"name": name, "text": text})

    def status(self, state: str, parent: Message | None) -> None:
        """``status`` with ``execution_state`` ``state``; ``restarting`` after a
        ``comm_close`` for each open comm, with the same parent."""
        if state == "restarting":
            self.comms.close_all(lambda content: self.publish("comm_close", content, parent))
        self.publish("status", {"execution_state": state}, parent)

    def sent(self, request: Request) -> None:
        """``request`` goes to the worker: a client's comm_open opens a comm there (the
        worker publishes its ``comm_close`` if it refuses it), its comm_close closes one."""
        if request.msg_type in COMM_MESSAGES:
            self.comms.follow(request.msg_type, request.msg["content"])

    def reply(self, request: Request, content: dict[str, Any], started: str = "") -> None:
        """The reply to ``request``, on its channel, to the client that sent it (none to
        a client's comm message)."""
        if request.msg_type in NO_REPLY:
            tell_handled(request)
            return
        reply = reply_message(request.msg, content, self.session, started)
        channel = "control" if request.channel == "control" else "shell"
        try:
            request.requester.send(channel, reply)
        except Exception as e:  # a vanished client must not stop the kernel
            self.log.warn("could not deliver {t}: {e}", t=reply["msg_type"], e=type(e).__name__)

    def around(self, request: Request, content: dict[str, Any]) -> None:
        """busy, the reply, idle: a request answered at once."""
        self.status("busy", request.msg)
        self.reply(request, content)
        self.status("idle", request.msg)
