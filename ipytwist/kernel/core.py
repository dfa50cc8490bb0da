"""The kernel: one interpreter (a worker process) shared by any number of clients.

Transports hand requests to :meth:`Kernel.handle` together with a
:class:`Requester` to answer; output goes to :attr:`Kernel.stream`, which
every transport subscribes to.  The kernel never sees a socket and never
imports IPython.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ..errors import error_content
from ..loglimit import LimitedLog
from ..wire import Message, new_message, utcnow_iso
from .events import iopub_content
from .flow import OutputGate
from .output import OutputCoalescer
from .replies import aborted_content, reply_message, static_reply
from .stdin import InputRouter
from .stream import OutputStream
from .supervisor import INTERRUPT_NUDGES, MAX_EARLY_DEATHS, Provisioner, Worker, WorkerSupervisor

#: Shell requests the worker answers, and the worker request kind for each.
WORKER_REQUESTS = {
    "execute_request": "execute",
    "complete_request": "complete",
    "inspect_request": "inspect",
    "is_complete_request": "is_complete",
    "history_request": "history",
}
#: The kernel's execution states, and the changes each may make (see Kernel._set_state).
TRANSITIONS = {
    "starting": {"idle", "restarting", "dead"},
    "idle": {"busy", "restarting", "dead"},
    "busy": {"idle", "restarting", "dead"},
    "restarting": {"idle", "restarting", "dead"},
    "dead": set(),
}
__all__ = ["INTERRUPT_NUDGES", "MAX_EARLY_DEATHS", "TRANSITIONS", "Kernel", "Requester"]


class Requester(Protocol):
    """The client connection a request came from; replies go back through it.
    ``origin`` names its transport ("zmq", "websocket") for the transcript."""

    origin: str

    def send(self, channel: str, msg: Message) -> None:
        """A reply or input request for this client, on ``channel``."""


class Kernel:
    """Request queue, busy/idle, parent headers, output fan-out, interrupt, restart."""

    log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        provisioner: Provisioner,
        *,
        kernel_id: str | None = None,
        name: str = "ipytwist",
        stream: OutputStream | None = None,
        flush_interval: float | None = None,
    ) -> None:
        self.reactor = reactor
        self.provisioner = provisioner
        self.id = kernel_id or str(uuid.uuid4())
        self.name = name
        self.session = uuid.uuid4().hex
        #: Requests ignored for what they are: a few lines at a time, then a summary.
        self.rejects = LimitedLog(self.log, reactor)
        self.stream = stream or OutputStream()
        self.execution_state = "starting"  # changed by _set_state only
        self.execution_count = 0
        self.last_activity = self.reactor.seconds()
        #: Called on a ``shutdown_request`` without restart (the host decides what ends).
        self.on_shutdown_request: Callable[[], Any] = self.shutdown
        kw = {} if flush_interval is None else {"interval": flush_interval}
        self._output = OutputCoalescer(reactor, self._publish_stream, **kw)
        self._queue: deque[tuple[Message, Requester]] = deque()
        self._current: tuple[Message, Requester] | None = None
        self._current_started = ""
        self._last_parent: Message | None = None
        self._announce_idle_when_ready = False
        #: Reads the requests already waiting in the transports (see stop_on_error);
        #: the host sets it to drain every transport the kernel is attached to.
        self.drain_requests: Callable[[], None] = lambda: None
        self._draining = False
        #: Called with (request, origin) for each request queued for the worker (the
        #: transcript records execute requests from every client).
        self.request_listeners: list[Callable[[Message, str], None]] = []
        #: Closed by the stream while its readers lag: the worker's output waits.
        self.output_gate = OutputGate()
        self.stream.registerProducer(self.output_gate)
        #: The interpreter: started, replaced when it dies, restarted, stopped.
        self.supervisor = WorkerSupervisor(reactor, provisioner, self, self.output_gate)
        #: input() in user code: asked of, and answered by, the running request's client.
        self._input = InputRouter(self.session, self.supervisor.send)

    # -- lifecycle ----------------------------------------------------------

    @property
    def worker(self) -> Worker | None:
        """The current worker, or None while none runs."""
        return self.supervisor.worker

    @property
    def worker_pid(self) -> int | None:
        """The current worker's process id, if it has one."""
        return self.supervisor.pid

    def _set_state(self, state: str) -> None:
        """The one place the execution state changes (see TRANSITIONS)."""
        old = self.execution_state
        if state != old and state not in TRANSITIONS[old]:
            self.log.error(
                "kernel {id}: execution state {old} -> {new} is not expected",
                id=self.id,
                old=old,
                new=state,
            )
        self.execution_state = state

    def start(self) -> Deferred[None]:
        """Start the worker; the Deferred fires once it can run code."""
        self._publish("status", {"execution_state": "starting"}, None)
        self._output.reset()
        self.supervisor.spawn()
        return self.when_ready()

    def when_ready(self) -> Deferred[None]:
        """Fires once the current worker can run code."""
        return self.supervisor.when_ready()

    def interrupt(self) -> None:
        """SIGINT to the worker: stops running user code or a pending ``input()``."""
        request = self._current
        if request is not None:
            # The interrupted code must get to run its except/finally and print its
            # traceback, however far behind the readers are.
            self.output_gate.interrupt()
            self.supervisor.interrupt(lambda: self._current is request)

    def restart(self) -> Deferred[None]:
        """Replace the interpreter with a fresh one; clients see ``restarting``."""
        self._publish("status", {"execution_state": "restarting"}, None)
        self._set_state("restarting")
        self._fail_current("KernelRestarted", "the kernel was restarted")
        self._announce_idle_when_ready = True
        self._output.reset()
        return self.supervisor.restart()

    def shutdown(self) -> Deferred[Any]:
        """Stop the worker for good."""
        self._set_state("dead")
        self._fail_current("KernelShutdown", "the kernel is shutting down")
        for msg, req in list(self._queue):
            self._send_reply(msg, req, aborted_content(msg, self.execution_count))
        self._queue.clear()
        return self.supervisor.shutdown()

    # -- requests from clients ----------------------------------------------

    def handle(self, channel: str, msg: Message, requester: Requester) -> None:
        """Accept one request (already parsed and authenticated) from a client."""
        self.last_activity = self.reactor.seconds()
        msg["channel"] = channel
        msg_type = msg["header"]["msg_type"]
        if channel == "stdin":
            self._handle_stdin(msg, requester)
        elif channel == "control":
            self._handle_control(msg_type, msg, requester)
        elif msg_type in WORKER_REQUESTS:
            self._queue.append((msg, requester))
            for listener in self.request_listeners:
                listener(msg, getattr(requester, "origin", ""))
            self._advance()
        elif msg_type in ("kernel_info_request", "comm_info_request"):
            self._answer_now(msg, requester, static_reply(msg_type))
        elif msg_type == "comm_open":
            # No comm targets are registered: tell the frontend the comm is closed.
            comm_id = msg["content"].get("comm_id", "")
            self._publish("comm_close", {"comm_id": comm_id, "data": {}}, msg)
        elif msg_type in ("comm_msg", "comm_close"):
            pass
        else:
            self._unknown(msg_type, msg, requester)

    def _handle_control(self, msg_type: str, msg: Message, requester: Requester) -> None:
        if msg_type == "interrupt_request":
            self.interrupt()
            self._answer_now(msg, requester, {"status": "ok"})
        elif msg_type == "shutdown_request":
            restart = bool(msg["content"].get("restart", False))
            self._answer_now(msg, requester, {"status": "ok", "restart": restart})
            if restart:
                self.restart()
            else:
                self.on_shutdown_request()
        elif msg_type in ("kernel_info_request", "comm_info_request"):
            self._answer_now(msg, requester, static_reply(msg_type))
        else:
            self._unknown(msg_type, msg, requester)

    def _handle_stdin(self, msg: Message, requester: Requester) -> None:
        refused = self._input.answer(msg, requester) if self.worker else "unexpected"
        if refused == "not asked":
            self.rejects.warn(
                "stdin: ignored an input_reply from a client that was not asked", "stdin-other"
            )
        elif refused:
            self.rejects.warn(
                "stdin: ignored unexpected {t}", "stdin", t=msg["header"]["msg_type"][:64]
            )

    def _unknown(self, msg_type: str, msg: Message, requester: Requester) -> None:
        self.rejects.warn("ignored unknown message type {t}", "unknown", t=msg_type[:64])
        if msg_type.endswith("_request"):
            why = f"ipytwist does not handle {msg_type[:64]}"
            self._answer_now(msg, requester, error_content("UnknownMessageType", why))

    def _answer_now(self, msg: Message, requester: Requester, content: dict[str, Any]) -> None:
        """Reply without queueing.  busy/idle surround it only while nothing else runs,
        so a frontend's status indicator never shows idle during a running cell."""
        quiet = self._current is None and self.execution_state != "busy"
        if quiet:
            self._publish("status", {"execution_state": "busy"}, msg)
        self._send_reply(msg, requester, content)
        if quiet:
            self._publish("status", {"execution_state": "idle"}, msg)

    # -- the queue ------------------------------------------------------------

    def _advance(self) -> None:
        while (
            not self._draining
            and self._current is None
            and self._queue
            and self.execution_state == "idle"
            and self.supervisor.ready
        ):
            msg, requester = self._queue.popleft()
            self._current = (msg, requester)
            self._last_parent = msg
            self._current_started = utcnow_iso()
            self._set_state("busy")
            # The worker starts first, and works while busy is being published:
            # its events can only be read after this reactor turn, so order holds.
            kind = WORKER_REQUESTS[msg["header"]["msg_type"]]
            self.supervisor.send({"req": kind, "content": msg["content"]})
            self._publish("status", {"execution_state": "busy"}, msg)

    def _finish_current(self, content: dict[str, Any]) -> None:
        assert self._current is not None
        msg, requester = self._current
        self._current = None
        self._input.done()
        self.output_gate.request_done()
        is_execute = msg["header"]["msg_type"] == "execute_request"
        if is_execute:
            content.setdefault("execution_count", self.execution_count)
        abort = (
            is_execute
            and content.get("status") == "error"
            and msg["content"].get("stop_on_error", True)
        )
        if abort:
            # Before the client can see this reply: whatever it sent until now is aborted.
            self._drain_transports()
        self._send_reply(msg, requester, content, started=self._current_started)
        self._publish("status", {"execution_state": "idle"}, msg)
        if self.execution_state == "busy":  # (restarting or dead: it stays so)
            self._set_state("idle")
        if abort:
            self._abort_queued_executes()
        self._advance()

    def _drain_transports(self) -> None:
        """Take in requests already waiting in the transports, so that requests sent
        before the error reply are aborted too, however the reads were scheduled."""
        self._draining = True
        try:
            self.drain_requests()
        except Exception as e:
            self.log.warn("could not drain the transports: {e}", e=type(e).__name__)
        finally:
            self._draining = False

    def _fail_current(self, ename: str, evalue: str) -> None:
        self._output.flush()
        if self._current is None:
            return
        self._finish_current(error_content(ename, evalue, [f"{ename}: {evalue}"]))

    def _abort_queued_executes(self) -> None:
        keep: deque[tuple[Message, Requester]] = deque()
        for msg, requester in self._queue:
            if msg["header"]["msg_type"] == "execute_request":
                self._publish("status", {"execution_state": "busy"}, msg)
                self._send_reply(msg, requester, aborted_content(msg, self.execution_count))
                self._publish("status", {"execution_state": "idle"}, msg)
            else:
                keep.append((msg, requester))
        self._queue = keep

    # -- events from the worker ---------------------------------------------

    def worker_output(self, name: str, data: bytes) -> None:
        """Bytes the worker wrote to stream ``name``, for the output coalescer."""
        self._output.write(name, data)

    def worker_event(self, event: dict[str, Any]) -> None:
        """One event from the worker: output to publish, an input request or a reply."""
        self._output.flush()
        self.last_activity = self.reactor.seconds()
        kind = event.get("ev")
        output = iopub_content(event)
        if output is not None:
            msg_type, content = output
            if msg_type == "execute_input":
                self.execution_count = content["execution_count"]
            parent = self._current[0] if self._current else self._last_parent
            self._publish(msg_type, content, parent)
        elif kind == "input_request":
            self._input.ask(self._current, event)
        elif kind == "reply" and self._current is not None:
            self._finish_current(dict(event.get("content") or {}))
        else:
            self.log.warn("worker sent an unexpected event {k}", k=str(kind)[:64])

    def worker_ready(self) -> None:
        """The (new) worker can run code: the kernel is idle."""
        if self._current is None and self.execution_state in ("starting", "restarting"):
            self._set_state("idle")
        if self._announce_idle_when_ready:
            self._announce_idle_when_ready = False
            self._publish("status", {"execution_state": "idle"}, None)

    def run_queued(self) -> None:
        """Queued requests start (once those waiting for the worker were told)."""
        self._advance()

    def worker_died(self, text: str, giving_up: bool) -> None:
        """The worker died: its request fails, queued cells are aborted, and a new
        worker starts (unless it keeps dying before it is ever ready)."""
        self._output.flush()
        self.log.warn("kernel {id}: {text} Starting a new one.", id=self.id, text=text)
        parent = self._current[0] if self._current else None
        self._publish("status", {"execution_state": "restarting"}, parent)
        self._set_state("restarting")
        if self._current is not None:
            self._publish(
                "error",
                {
                    "ename": "WorkerDied",
                    "evalue": text,
                    "traceback": [f"WorkerDied: {text} A new interpreter has been started."],
                },
                parent,
            )
            self._fail_current("WorkerDied", text)
        self._abort_queued_executes()
        if giving_up:
            self.log.error("kernel {id}: interpreter fails to start; giving up", id=self.id)
            self._set_state("dead")
            self._publish("status", {"execution_state": "dead"}, None)
            self.shutdown()
            return
        self._announce_idle_when_ready = True
        self._output.reset()

    # -- publishing -----------------------------------------------------------

    def _publish(self, msg_type: str, content: dict[str, Any], parent: Message | None) -> None:
        self.stream.publish(new_message(msg_type, content, self.session, parent))

    def _publish_stream(self, name: str, text: str) -> None:
        parent = self._current[0] if self._current else self._last_parent
        self._publish("stream", {"name": name, "text": text}, parent)

    def _send_reply(
        self, msg: Message, requester: Requester, content: dict[str, Any], started: str = ""
    ) -> None:
        reply = reply_message(msg, content, self.session, started)
        channel = "control" if msg.get("channel") == "control" else "shell"
        try:
            requester.send(channel, reply)
        except Exception as e:  # a vanished client must not stop the kernel
            self.log.warn("could not deliver {t}: {e}", t=reply["msg_type"], e=type(e).__name__)
