"""The kernel: one interpreter (a worker process) shared by any number of clients.

Transports hand requests to :meth:`Kernel.handle` together with a
:class:`Requester` to answer; output goes to :attr:`Kernel.stream`, which
every transport subscribes to.  The kernel never sees a socket and never
imports IPython.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from ..loglimit import LimitedLog
from ..wire import Message, new_message, reply_type, utcnow_iso
from ..worker import NUDGE_SIGNAL
from .events import iopub_content
from .flow import OutputGate
from .info import kernel_info
from .output import OutputCoalescer
from .process import WorkerProcess
from .stream import OutputStream

#: Shell requests the worker answers, and the worker request kind for each.
WORKER_REQUESTS = {
    "execute_request": "execute",
    "complete_request": "complete",
    "inspect_request": "inspect",
    "is_complete_request": "is_complete",
    "history_request": "history",
}
#: Consecutive worker deaths before it ever became ready, after which we give up.
MAX_EARLY_DEATHS = 3
#: Seconds after an interrupt at which the worker is nudged (NUDGE_SIGNAL) while the
#: interrupted request still runs.  A SIGINT that lands while the interpreter is on
#: its way into a blocking call (time.sleep handing over the GIL) only sets Python's
#: flag, and the call then blocks; the nudge interrupts the call, and Python runs
#: the SIGINT handler.
INTERRUPT_NUDGES = (0.2, 0.5, 1.0, 2.0, 4.0)


class Requester(Protocol):
    """The client connection a request came from; replies go back through it.
    ``origin`` names its transport ("zmq", "websocket") for the transcript."""

    origin: str

    def send(self, channel: str, msg: Message) -> None: ...


class Provisioner(Protocol):
    def start(self, listener: Any) -> WorkerProcess: ...


class _WorkerLink:
    """One worker's reports, passed on while that worker is the kernel's own.

    A worker being replaced (restart) or stopped (shutdown, cull) may still write
    while it exits; none of that may land in a client's cell, and a late event of
    it must never answer the next worker's request.
    """

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.worker: WorkerProcess | None = None

    def _current(self) -> bool:
        return self.worker is not None and self.kernel.worker is self.worker

    def worker_output(self, name: str, data: bytes) -> None:
        if self._current():
            self.kernel.worker_output(name, data)

    def worker_event(self, event: dict[str, Any]) -> None:
        if self._current():
            self.kernel.worker_event(event)

    def worker_exited(self, worker: WorkerProcess, description: str) -> None:
        self.kernel.worker_exited(worker, description)


class Kernel:
    """Request queue, busy/idle, parent headers, output fan-out, interrupt, restart."""

    log = Logger()

    def __init__(
        self,
        reactor: Any,
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
        self.execution_state = "starting"
        self.execution_count = 0
        self.last_activity = time.time()
        #: Called on a ``shutdown_request`` without restart (the host decides what ends).
        self.on_shutdown_request: Callable[[], Any] = self.shutdown
        kw = {} if flush_interval is None else {"interval": flush_interval}
        self._output = OutputCoalescer(reactor, self._publish_stream, **kw)
        self._queue: deque[tuple[Message, Requester]] = deque()
        self._current: tuple[Message, Requester] | None = None
        self._current_started = ""
        self._last_parent: Message | None = None
        self._awaiting_input = False
        self.worker: WorkerProcess | None = None
        self._worker_ready = False
        self._early_deaths = 0
        self._stopping = False
        self._ready_waiters: list[Deferred[None]] = []
        self._announce_idle_when_ready = False
        #: Callables that read requests already waiting in a transport (see stop_on_error).
        self.request_drains: list[Callable[[], None]] = []
        self._draining = False
        #: Called with (request, origin) for each request queued for the worker (the
        #: transcript records execute requests from every client).
        self.request_listeners: list[Callable[[Message, str], None]] = []
        #: Closed by the stream while its readers lag: the worker's output waits.
        self.output_gate = OutputGate()
        self.stream.registerProducer(self.output_gate)

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> Deferred[None]:
        """Start the worker; the Deferred fires once it can run code."""
        self._publish("status", {"execution_state": "starting"}, None)
        self._spawn()
        return self.when_ready()

    def when_ready(self) -> Deferred[None]:
        if self._worker_ready:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._ready_waiters.append(d)
        return d

    def _spawn(self) -> None:
        self._worker_ready = False
        self._output.reset()
        link = _WorkerLink(self)
        self.worker = link.worker = self.provisioner.start(link)
        self.output_gate.attach(self.worker)

    def interrupt(self) -> None:
        """SIGINT to the worker: stops running user code or a pending ``input()``."""
        if self.worker is not None and self._current is not None:
            # The interrupted code must get to run its except/finally and print its
            # traceback, however far behind the readers are.
            self.output_gate.interrupt()
            self.worker.signal(signal.SIGINT)
            for delay in INTERRUPT_NUDGES:
                self.reactor.callLater(delay, self._nudge, self.worker, self._current)

    def _nudge(self, worker: WorkerProcess, request: tuple[Message, Requester]) -> None:
        if worker is self.worker and request is self._current:
            worker.signal(NUDGE_SIGNAL)

    def restart(self) -> Deferred[None]:
        """Replace the interpreter with a fresh one; clients see ``restarting``."""
        old, self.worker = self.worker, None
        self._publish("status", {"execution_state": "restarting"}, None)
        self._fail_current("KernelRestarted", "the kernel was restarted")
        self.execution_state = "restarting"  # after the failed request's idle
        if old is not None:
            old.stop(self.reactor, grace=1.0)
        self._announce_idle_when_ready = True
        self._spawn()
        return self.when_ready()

    def shutdown(self) -> Deferred[Any]:
        """Stop the worker for good."""
        self._stopping = True
        self._worker_ready = False
        self.execution_state = "dead"
        self._fail_current("KernelShutdown", "the kernel is shutting down")
        for msg, req in list(self._queue):
            self._send_reply(msg, req, self._aborted_content(msg))
        self._queue.clear()
        worker, self.worker = self.worker, None
        if worker is None:
            return succeed(None)
        return worker.stop(self.reactor)

    @property
    def worker_pid(self) -> int | None:
        return self.worker.pid if self.worker is not None else None

    # -- requests from clients ----------------------------------------------

    def handle(self, channel: str, msg: Message, requester: Requester) -> None:
        """Accept one request (already parsed and authenticated) from a client."""
        self.last_activity = time.time()
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
            self._answer_now(msg, requester, self._static_reply(msg_type))
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
            self._answer_now(msg, requester, self._static_reply(msg_type))
        else:
            self._unknown(msg_type, msg, requester)

    def _handle_stdin(self, msg: Message, requester: Requester) -> None:
        if (
            msg["header"]["msg_type"] == "input_reply"
            and self._awaiting_input
            and self.worker
            and not self._from_asker(msg, requester)
        ):
            self.rejects.warn(
                "stdin: ignored an input_reply from a client that was not asked", "stdin-other"
            )
        elif msg["header"]["msg_type"] == "input_reply" and self._awaiting_input and self.worker:
            self._awaiting_input = False
            value = msg["content"].get("value", "")
            self.worker.send(
                {"req": "input_reply", "value": value if isinstance(value, str) else str(value)}
            )
        else:
            self.rejects.warn(
                "stdin: ignored unexpected {t}", "stdin", t=msg["header"]["msg_type"][:64]
            )

    def _from_asker(self, msg: Message, requester: Requester) -> bool:
        """Whether an input reply comes from the client whose request asked for input:
        the same connection, or the same Jupyter session."""
        if self._current is None:
            return False
        asked, asker = self._current
        if requester is asker or requester == asker:
            return True
        session = msg["header"].get("session")
        return bool(session) and session == asked["header"].get("session")

    def _unknown(self, msg_type: str, msg: Message, requester: Requester) -> None:
        self.rejects.warn("ignored unknown message type {t}", "unknown", t=msg_type[:64])
        if msg_type.endswith("_request"):
            self._answer_now(
                msg,
                requester,
                {
                    "status": "error",
                    "ename": "UnknownMessageType",
                    "evalue": f"ipytwist does not handle {msg_type[:64]}",
                    "traceback": [],
                },
            )

    def _static_reply(self, msg_type: str) -> dict[str, Any]:
        if msg_type == "kernel_info_request":
            return kernel_info()
        return {"status": "ok", "comms": {}}

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
            and self._worker_ready
            and self.worker
        ):
            msg, requester = self._queue.popleft()
            self._current = (msg, requester)
            self._last_parent = msg
            self._current_started = utcnow_iso()
            self.execution_state = "busy"
            # The worker starts first, and works while busy is being published:
            # its events can only be read after this reactor turn, so order holds.
            kind = WORKER_REQUESTS[msg["header"]["msg_type"]]
            self.worker.send({"req": kind, "content": msg["content"]})
            self._publish("status", {"execution_state": "busy"}, msg)

    def _finish_current(self, content: dict[str, Any]) -> None:
        assert self._current is not None
        msg, requester = self._current
        self._current = None
        self._awaiting_input = False
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
        self.execution_state = "idle"
        if abort:
            self._abort_queued_executes()
        self._advance()

    def _drain_transports(self) -> None:
        """Take in requests already waiting in the transports, so that requests sent
        before the error reply are aborted too, however the reads were scheduled."""
        self._draining = True
        try:
            for drain in self.request_drains:
                try:
                    drain()
                except Exception as e:
                    self.log.warn("could not drain a transport: {e}", e=type(e).__name__)
        finally:
            self._draining = False

    def _fail_current(self, ename: str, evalue: str) -> None:
        self._output.flush()
        if self._current is None:
            return
        self._finish_current(
            {
                "status": "error",
                "ename": ename,
                "evalue": evalue,
                "traceback": [f"{ename}: {evalue}"],
            }
        )

    def _aborted_content(self, msg: Message) -> dict[str, Any]:
        content: dict[str, Any] = {"status": "aborted"}
        if msg["header"]["msg_type"] == "execute_request":
            content["execution_count"] = self.execution_count
        return content

    def _abort_queued_executes(self) -> None:
        keep: deque[tuple[Message, Requester]] = deque()
        for msg, requester in self._queue:
            if msg["header"]["msg_type"] == "execute_request":
                self._publish("status", {"execution_state": "busy"}, msg)
                self._send_reply(msg, requester, self._aborted_content(msg))
                self._publish("status", {"execution_state": "idle"}, msg)
            else:
                keep.append((msg, requester))
        self._queue = keep

    # -- events from the worker ---------------------------------------------

    def worker_output(self, name: str, data: bytes) -> None:
        self._output.write(name, data)

    def worker_event(self, event: dict[str, Any]) -> None:
        self._output.flush()
        self.last_activity = time.time()
        kind = event.get("ev")
        output = iopub_content(event)
        if output is not None:
            msg_type, content = output
            if msg_type == "execute_input":
                self.execution_count = content["execution_count"]
            parent = self._current[0] if self._current else self._last_parent
            self._publish(msg_type, content, parent)
        elif kind == "input_request":
            self._request_input(event)
        elif kind == "reply" and self._current is not None:
            self._finish_current(dict(event.get("content") or {}))
        elif kind == "ready":
            self._on_worker_ready()
        else:
            self.log.warn("worker sent an unexpected event {k}", k=str(kind)[:64])

    def _request_input(self, event: dict[str, Any]) -> None:
        if self._current is None:
            return
        msg, requester = self._current
        self._awaiting_input = True
        content = {"prompt": event.get("prompt", ""), "password": bool(event.get("password"))}
        requester.send("stdin", new_message("input_request", content, self.session, msg))

    def _on_worker_ready(self) -> None:
        self._worker_ready = True
        self._early_deaths = 0
        if self._current is None:
            self.execution_state = "idle"
        if self._announce_idle_when_ready:
            self._announce_idle_when_ready = False
            self._publish("status", {"execution_state": "idle"}, None)
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            d.callback(None)
        self._advance()

    def worker_exited(self, worker: WorkerProcess, description: str) -> None:
        self._output.flush()
        if worker is not self.worker:
            return  # an old worker replaced by restart()
        was_ready = self._worker_ready
        self.worker = None
        self._worker_ready = False
        if self._stopping:
            return
        text = f"The kernel's interpreter (pid {worker.pid}) {description}."
        self.log.warn("kernel {id}: {text} Starting a new one.", id=self.id, text=text)
        parent = self._current[0] if self._current else None
        self._publish("status", {"execution_state": "restarting"}, parent)
        self.execution_state = "restarting"
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
        self.execution_state = "restarting"  # after the failed request's idle
        self._early_deaths = 0 if was_ready else self._early_deaths + 1
        if self._early_deaths >= MAX_EARLY_DEATHS:
            self.log.error("kernel {id}: interpreter fails to start; giving up", id=self.id)
            self.execution_state = "dead"
            self._publish("status", {"execution_state": "dead"}, None)
            self.shutdown()
            return
        self._announce_idle_when_ready = True
        self._spawn()

    # -- publishing -----------------------------------------------------------

    def _publish(self, msg_type: str, content: dict[str, Any], parent: Message | None) -> None:
        self.stream.publish(new_message(msg_type, content, self.session, parent))

    def _publish_stream(self, name: str, text: str) -> None:
        parent = self._current[0] if self._current else self._last_parent
        self._publish("stream", {"name": name, "text": text}, parent)

    def _send_reply(
        self, msg: Message, requester: Requester, content: dict[str, Any], started: str = ""
    ) -> None:
        metadata: dict[str, Any] = {}
        if msg["header"]["msg_type"] == "execute_request":
            metadata = {
                "started": started or utcnow_iso(),
                "dependencies_met": True,
                "engine": self.session,
                "status": content.get("status", "ok"),
            }
        reply = new_message(
            reply_type(msg["header"]["msg_type"]), content, self.session, msg, metadata=metadata
        )
        channel = "control" if msg.get("channel") == "control" else "shell"
        try:
            requester.send(channel, reply)
        except Exception as e:  # a vanished client must not stop the kernel
            self.log.warn("could not deliver {t}: {e}", t=reply["msg_type"], e=type(e).__name__)
