"""What a transport hands the kernel: a request, and the client it came from (pure)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from twisted.internet.defer import Deferred

from ..wire import TERMINAL_METADATA, Message, new_message
from ..worker import SIGINTS_BEFORE

__all__ = [
    "DEBUG_REQUESTS",
    "NO_REPLY",
    "WORKER_REQUESTS",
    "Request",
    "Requester",
    "WorkerCall",
    "worker_runner",
    "is_execute",
    "worker_record",
]

#: Shell requests the worker answers, and the worker request kind for each.
WORKER_REQUESTS = {
    "execute_request": "execute",
    "complete_request": "complete",
    "inspect_request": "inspect",
    "is_complete_request": "is_complete",
    "history_request": "history",
    "comm_info_request": "comm_info",
    "comm_open": "comm",
    "comm_msg": "comm",
    "comm_close": "comm",
}
#: Requests that run in the worker and get no reply (a client's comm messages).
NO_REPLY = frozenset({"comm_open", "comm_msg", "comm_close"})

#: The debugger's own requests to the worker (never accepted from a client).
DEBUG_REQUESTS = {
    "debug_listen_request": "debug_listen",
    "debug_variables_request": "debug_variables",
    "debug_rich_request": "debug_rich",
    "debug_modules_request": "debug_modules",
}


class Requester(Protocol):
    """The client a request came from; replies go back through it.  ``origin`` names
    the kind of client ("zmq", "websocket", "page", "gateway") for the transcript."""

    origin: str

    def send(self, channel: str, msg: Message) -> None:
        """A reply or input request for this client, on ``channel``."""


class Request(NamedTuple):
    """One request, already parsed and authenticated, on its channel."""

    channel: str
    msg: Message
    requester: Requester

    @property
    def msg_type(self) -> str:
        """The request's message type."""
        return str(self.msg["header"]["msg_type"])


def tell_handled(request: Request) -> None:
    """``request`` gets no reply (a comm message) and is done: a requester that counts
    what it is owed (a WebSocket session, with ``handled``) counts it no more."""
    handled = getattr(request.requester, "handled", None)
    if callable(handled):
        handled(request.msg)


def is_execute(msg: Message) -> bool:
    """An ``execute_request``."""
    return bool(msg["header"]["msg_type"] == "execute_request")


def worker_record(request: Request, sigints: int = 0) -> dict[str, Any]:
    """What the worker is sent for ``request``: its kind and content, the SIGINTs sent
    to the worker before it, and the size of the client's terminal if the client gave
    one (the worker checks it)."""
    msg = request.msg
    record: dict[str, Any] = {
        "req": WORKER_REQUESTS.get(request.msg_type) or DEBUG_REQUESTS[request.msg_type],
        "content": msg["content"],
        "header": msg["header"],
        SIGINTS_BEFORE: sigints,
    }
    if request.msg_type in NO_REPLY:
        # The comm's handler gets the whole message; its binary buffers go raw, after
        # the record's JSON.
        record["content"] = {
            "msg_type": request.msg_type,
            "header": msg["header"],
            "content": msg["content"],
            "metadata": msg.get("metadata") or {},
        }
        record["buffers"] = list(msg.get("buffers") or ())
    metadata = msg.get("metadata")
    terminal = metadata.get(TERMINAL_METADATA) if isinstance(metadata, dict) else None
    if isinstance(terminal, dict):
        record["terminal"] = {k: terminal.get(k) for k in ("columns", "lines")}
    return record


class WorkerCall:
    """The requester of the kernel's own worker requests: :attr:`reply` fires with the
    reply's content (an error's too: the worker died, the kernel shut down)."""

    origin = "kernel"

    def __init__(self) -> None:
        self.reply: Deferred[dict[str, Any]] = Deferred()

    def send(self, channel: str, msg: Message) -> None:
        """The reply: fires :attr:`reply` (once)."""
        if not self.reply.called:
            self.reply.callback(dict(msg["content"]))


def worker_runner(
    session: str, add: Callable[[Request], None], advance: Callable[[], None]
) -> Callable[[str, dict[str, Any]], Deferred[dict[str, Any]]]:
    """Runs one of the kernel's own worker requests (``DEBUG_REQUESTS``), queued by
    ``add`` as a client's would be; fires with the reply's content."""

    def run(msg_type: str, content: dict[str, Any]) -> Deferred[dict[str, Any]]:
        call = WorkerCall()
        add(Request("shell", new_message(msg_type, content, session), call))
        advance()
        return call.reply

    return run
