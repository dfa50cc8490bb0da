"""The kernel: one interpreter (a worker process) shared by any number of clients.

Transports hand requests to :meth:`Kernel.handle` with a ``Requester`` to answer;
output goes to :attr:`Kernel.output_log`, which every transport reads.  The kernel
runs the worker's requests one at a time, answers the rest itself (``debug_request``
through its :class:`.debugger.Debugger`), and turns what the worker reports into
iopub messages.  It never sees a socket and never imports IPython.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ..errors import error_content
from ..loglimit import LimitedLog
from ..wire import Message
from .aborts import InFlight, StopOnError, no_requests_in_flight
from .comms import CONTROL_COMMS, comm_message, comm_refused
from .deaths import WorkerDeaths
from .debugger import Connect, Debugger
from .events import iopub_content
from .flow import OutputGate
from .inputcount import InputAnnouncer
from .output import DEFAULT_FLUSH_INTERVAL, OutputCoalescer
from .outputlog import OutputLog
from .publish import Publisher
from .queue import RequestQueue
from .replies import aborted_content, static_reply
from .requests import WORKER_REQUESTS, Request, Requester, is_execute, worker_record, worker_runner
from .resume import Resumable
from .state import ExecutionState, State
from .stdin import InputRouter
from .supervisor import Provisioner, Worker, WorkerSupervisor

__all__ = ["Kernel"]


class Kernel(Resumable, WorkerDeaths):
    """Request queue, busy/idle, parent headers, output fan-out, interrupt, restart."""

    log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        provisioner: Provisioner,
        *,
        kernel_id: str | None = None,
        name: str = "ipytwist",
        output_log: OutputLog | None = None,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        requests_in_flight: InFlight = no_requests_in_flight,
        on_request: Callable[[Message, str], None] | None = None,
        on_shutdown_request: Callable[[bool], object] | None = None,
        debug_connect: Connect | None = None,
        session: str | None = None,
    ) -> None:
        self.reactor = reactor
        self.id = kernel_id or str(uuid.uuid4())
        self.name = name
        self.session = session or uuid.uuid4().hex
        #: Requests ignored for what they are: a few lines at a time, then a summary.
        self.rejects = LimitedLog(self.log, reactor)
        self.output_log = output_log or OutputLog()
        self.state = ExecutionState(self.id)
        self.execution_count = 0
        self.last_activity = self.reactor.seconds()
        #: Told of each request queued for the worker, with its client's origin.
        self._on_request = on_request
        #: A client's ``shutdown_request``, given its ``restart`` (the host decides).
        self._on_shutdown_request = on_shutdown_request or (
            lambda restart: self.restart() if restart else self.shutdown()
        )
        self._out = Publisher(self.session, self.output_log)
        self._output = OutputCoalescer(reactor, self._out.stream, flush_interval)
        self._queue = RequestQueue()
        self._inputs = InputAnnouncer()
        self._stop = StopOnError(
            self._queue, requests_in_flight, self._abort, lambda r: self.handle(*r), self._record
        )
        #: Closed by the output log while its readers lag: the worker's output waits.
        self.output_gate = OutputGate()
        self.output_log.registerProducer(self.output_gate)
        #: The interpreter: started, replaced when it dies, restarted, stopped.
        self.supervisor = WorkerSupervisor(reactor, provisioner, self, self.output_gate)
        #: input() in user code: asked of, and answered by, the running request's client.
        self.stdin = InputRouter(self.session, self.supervisor.send, self.rejects)
        run = worker_runner(self.session, self._queue.add, self._advance)
        pid = lambda: self.supervisor.pid  # noqa: E731
        self.debugger = Debugger(run, self._out.around, self._out, self.rejects, pid, debug_connect)

    # -- lifecycle ----------------------------------------------------------

    @property
    def execution_state(self) -> State:
        """``starting``, ``idle``, ``busy``, ``restarting`` or ``dead``."""
        return self.state.value

    @property
    def worker(self) -> Worker | None:
        """The current worker, or None while none runs."""
        return self.supervisor.worker

    def start(self) -> Deferred[None]:
        """Start the worker; the Deferred fires once it can run code."""
        self._out.status("starting", None)
        self._output.reset()
        self.supervisor.spawn()
        return self.when_ready()

    def when_ready(self) -> Deferred[None]:
        """Fires once the current worker can run code."""
        return self.supervisor.when_ready()

    def interrupt(self) -> None:
        """SIGINT to the worker: stops running user code or a pending ``input()``."""
        request = self._queue.current
        if request is not None:
            # Its except/finally must run and print, however far behind readers are.
            self.output_gate.interrupt()
            running = lambda: self._queue.current is request  # noqa: E731
            self.debugger.resume(lambda: self.supervisor.interrupt(running))

    def restart(self) -> Deferred[None]:
        """A fresh interpreter (clients see ``restarting``); one for concurrent calls."""
        if self.supervisor.starting:
            return self.when_ready()
        self._out.status("restarting", None)
        self.state.replaced()
        self._fail_current("KernelRestarted", "the kernel was restarted")
        self._output.reset()
        return self.supervisor.restart()

    def shutdown(self) -> Deferred[Any]:
        """Stop the worker for good."""
        self.state.change("dead")
        self._fail_current("KernelShutdown", "the kernel is shutting down")
        for request in self._queue.take_all():
            self._out.reply(request, aborted_content(request.msg, self.execution_count))
        return self.supervisor.shutdown()

    # -- requests from clients ----------------------------------------------

    def handle(self, channel: str, msg: Message, requester: Requester) -> None:
        """Accept one request (already parsed and authenticated) from a client."""
        self.last_activity = self.reactor.seconds()
        msg["channel"] = channel
        request = Request(channel, msg, requester)
        msg_type = request.msg_type
        if channel == "stdin":
            self.stdin.answer(msg, requester)
        elif msg_type in WORKER_REQUESTS and (channel != "control" or msg_type in CONTROL_COMMS):
            if not comm_refused(request, self.rejects):  # comm_info on control too
                self._record(request)
                self._queue.add(request)
                self._advance()
        elif msg_type == "kernel_info_request":
            self._answer_now(request, static_reply(msg_type))
        elif channel == "control":
            self._handle_control(request)
        else:
            self._unknown(request)

    def _handle_control(self, request: Request) -> None:
        msg_type, content = request.msg_type, request.msg["content"]
        if msg_type == "interrupt_request":
            self.interrupt()
            self._answer_now(request, {"status": "ok"})
        elif msg_type == "shutdown_request":
            restart = bool(content.get("restart", False))
            self._answer_now(request, {"status": "ok", "restart": restart})
            self._on_shutdown_request(restart)
        elif msg_type == "debug_request":
            self.debugger.handle(request)
        else:
            self._unknown(request)

    def _unknown(self, request: Request) -> None:
        msg_type = request.msg_type[:64]
        self.rejects.warn("ignored unknown message type {t}", "unknown", t=msg_type)
        if msg_type.endswith("_request"):
            why = f"ipytwist does not handle {msg_type}"
            self._answer_now(request, error_content("UnknownMessageType", why))

    def _answer_now(self, request: Request, content: dict[str, Any]) -> None:
        """Reply without queueing.  busy/idle surround it only while nothing else runs,
        so a frontend's status indicator never shows idle during a running cell."""
        if self._queue.current is None and self.state.value != "busy":
            self._out.around(request, content)
        else:
            self._out.reply(request, content)

    # -- the queue ------------------------------------------------------------

    def _advance(self) -> None:
        while (
            self._queue
            and self._queue.current is None
            and self.state.accepting
            and self.supervisor.ready
        ):
            request = self._queue.start_next()
            self._out.parent = request.msg
            self.state.change("busy")
            record = worker_record(request, self.supervisor.sigints)
            announced = self._inputs.announce(request, record)
            # The worker starts first, and works while busy is being published:
            # its events can only be read after this reactor turn, so order holds.
            self.supervisor.send(record)
            self._out.sent(request)
            self._out.status("busy", request.msg)
            if announced is not None:
                self.execution_count = announced["execution_count"]
                self._out.output("execute_input", announced)

    def _finish_current(self, content: dict[str, Any]) -> None:
        started = self._queue.started
        request = self._queue.finish()
        assert request is not None
        self.stdin.done()
        self.output_gate.request_done()
        if is_execute(request.msg):
            content.setdefault("execution_count", self.execution_count)
        stop = StopOnError.applies(request, content)
        in_flight = self._stop.collect() if stop else None
        self._out.reply(request, content, started)
        self._out.status("idle", request.msg)
        self.state.finished()
        if in_flight is not None:
            self._stop.stop(in_flight, dead=lambda: self.state.value == "dead")
        self._advance()

    def _record(self, request: Request) -> None:
        if self._on_request is not None:
            self._on_request(request.msg, getattr(request.requester, "origin", ""))

    def _abort(self, request: Request) -> None:
        self._out.around(request, aborted_content(request.msg, self.execution_count))

    def _fail_current(self, ename: str, evalue: str) -> None:
        self._output.flush()
        if self._queue.current is not None:
            self._finish_current(error_content(ename, evalue, [f"{ename}: {evalue}"]))

    # -- what the worker reports (the supervisor's listener) ------------------

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
            self._out.output(msg_type, content)
        elif (comm := comm_message(event)) is not None:
            self._out.output(*comm)
        elif kind == "input_request":
            self.stdin.ask(self._queue.current, event)
        elif kind == "log":  # the worker's comm package, about a client's message
            self.rejects.warn("worker: {text}", "worker-log", text=str(event.get("text"))[:200])
        elif kind == "reply" and self._queue.current is not None:
            self._inputs.replied(event)
            self.supervisor.replied(event)
            self._finish_current(dict(event.get("content") or {}))
        else:
            self.log.warn("worker sent an unexpected event {k}", k=str(kind)[:64])

    def worker_ready(self) -> None:
        """The (new) worker can run code: the kernel is idle."""
        self._inputs.forget()
        if self.state.ready(running=self._queue.current is not None):
            self._out.status("idle", None)

    def run_queued(self) -> None:
        """Queued requests start (once those waiting for the worker were told)."""
        self._advance()
