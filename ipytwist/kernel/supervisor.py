"""The kernel's interpreter: one worker at a time, started, replaced and stopped.

:class:`WorkerSupervisor` knows workers only through :class:`Worker` and
:class:`Provisioner` (a local process today; a remote worker could implement
them).  It starts a worker, says when it is ready, replaces it when it dies
(giving up after :data:`MAX_EARLY_DEATHS` deaths before ever being ready),
interrupts it, restarts and stops it.  What the worker says goes to a
:class:`SupervisorListener` (the kernel's request scheduler), and only while it
is the current worker: a replaced or stopped worker may still write as it
exits, and none of that may reach a client.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime

from ..worker import NUDGE_SIGNAL, SIGINTS_BEFORE
from .flow import OutputGate

__all__ = [
    "INTERRUPT_NUDGES",
    "MAX_EARLY_DEATHS",
    "Provisioner",
    "SupervisorListener",
    "Worker",
    "WorkerListener",
    "WorkerSupervisor",
]

#: Consecutive worker deaths before it ever became ready, after which we give up.
MAX_EARLY_DEATHS = 3
#: Seconds after an interrupt at which the worker is nudged (NUDGE_SIGNAL) while the
#: interrupted request still runs.  A SIGINT that lands while the interpreter is on
#: its way into a blocking call (time.sleep handing over the GIL) only sets Python's
#: flag, and the call then blocks; the nudge interrupts the call, and Python runs
#: the SIGINT handler.
INTERRUPT_NUDGES = (0.2, 0.5, 1.0, 2.0, 4.0)


class Worker(Protocol):
    """One interpreter that runs the kernel's requests."""

    @property
    def pid(self) -> int | None:
        """Its process id, once it runs."""

    def send(self, record: dict[str, Any]) -> None:
        """A request record for the worker."""

    def signal(self, signum: int) -> None:
        """Deliver a signal (SIGINT interrupts running user code)."""

    def stop(self, reactor: IReactorTime, grace: float = 2.0) -> Deferred[Any]:
        """Ask it to exit, killing it after ``grace`` seconds."""

    def pause_output(self) -> None:
        """Stop reading its output (the output gate is closed)."""

    def resume_output(self) -> None:
        """Read its output again."""


class WorkerListener(Protocol):
    """What a worker reports."""

    def worker_output(self, name: str, data: bytes) -> None:
        """Bytes the worker wrote to stream ``name`` (stdout or stderr)."""

    def worker_event(self, event: dict[str, Any]) -> None:
        """One event record from the worker."""

    def worker_exited(self, worker: Any, description: str) -> None:
        """The worker process is gone; ``description`` says how it ended."""


class Provisioner(Protocol):
    """Starts workers."""

    def start(self, listener: WorkerListener) -> Worker:
        """Start a worker that reports to ``listener``."""


class SupervisorListener(Protocol):
    """What the supervisor reports to the request scheduler."""

    def worker_output(self, name: str, data: bytes) -> None:
        """Bytes the current worker wrote to stream ``name``."""

    def worker_event(self, event: dict[str, Any]) -> None:
        """One event from the current worker (its readiness comes as worker_ready)."""

    def worker_ready(self) -> None:
        """The new worker can run code (before anyone waiting is told)."""

    def run_queued(self) -> None:
        """After those waiting were told: requests may go to the worker."""

    def worker_died(self, description: str, giving_up: bool) -> None:
        """The current worker died; ``giving_up``: no other will be started."""


class _Link:
    """One worker's reports, passed on while it is the supervisor's current worker."""

    def __init__(self, supervisor: WorkerSupervisor) -> None:
        self.supervisor = supervisor
        self.worker: Worker | None = None

    def _current(self) -> bool:
        return self.worker is not None and self.supervisor.worker is self.worker

    def worker_output(self, name: str, data: bytes) -> None:
        if self._current():
            self.supervisor.listener.worker_output(name, data)

    def worker_event(self, event: dict[str, Any]) -> None:
        if not self._current():
            return
        if event.get("ev") == "ready":
            self.supervisor._ready()
        else:
            self.supervisor.listener.worker_event(event)

    def worker_exited(self, worker: Any, description: str) -> None:
        self.supervisor._exited(worker, description)


class WorkerSupervisor:
    """Starts the kernel's worker, replaces it when it dies, restarts and stops it."""

    def __init__(
        self,
        reactor: IReactorTime,
        provisioner: Provisioner,
        listener: SupervisorListener,
        gate: OutputGate,
    ) -> None:
        self.reactor = reactor
        self.provisioner = provisioner
        self.listener = listener
        self.gate = gate
        self.worker: Worker | None = None
        #: The current worker said it can run code.
        self.ready = False
        self.stopping = False
        self.early_deaths = 0
        self._ready_waiters: list[Deferred[None]] = []
        #: SIGINTs sent to the current worker (each request says how many came before it).
        self.sigints = 0

    @property
    def pid(self) -> int | None:
        """The current worker's process id, if any."""
        return self.worker.pid if self.worker is not None else None

    @property
    def starting(self) -> bool:
        """A worker is on its way (started or waiting its turn) and not yet ready."""
        return self.worker is not None and not self.ready and not self.stopping

    def spawn(self) -> None:
        """Start a (new) worker."""
        self.ready = False
        self.sigints = 0
        link = _Link(self)
        self.worker = link.worker = self.provisioner.start(link)
        self.gate.attach(self.worker)

    def adopt(self, make: Callable[[WorkerListener], Worker]) -> Worker:
        """Take on a worker that runs already (``make`` connects to it, given the
        listener); it is ready once :meth:`adopted` is called."""
        self.ready = False
        self.sigints = 0
        link = _Link(self)
        self.worker = link.worker = make(link)
        self.gate.attach(self.worker)
        return self.worker

    def adopted(self) -> None:
        """The adopted worker is reached: it can run code."""
        if self.worker is not None and not self.ready:
            self._ready()

    def when_ready(self) -> Deferred[None]:
        """Fires once the current worker can run code."""
        if self.ready:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._ready_waiters.append(d)
        return d

    def send(self, record: dict[str, Any]) -> None:
        """A request record for the current worker (dropped while there is none)."""
        if self.worker is not None:
            self.worker.send(record)

    def replied(self, event: dict[str, Any]) -> None:
        """The worker's reply says how many SIGINTs it has had: more than were sent
        (user code sent itself one) are counted as sent, so that one sent later is
        still told apart from those before the next request."""
        had = event.get(SIGINTS_BEFORE)
        if type(had) is int and had > self.sigints:
            self.sigints = had

    def interrupt(self, still_running: Callable[[], bool]) -> None:
        """SIGINT now, and nudges later for as long as ``still_running()``."""
        worker = self.worker
        if worker is None:
            return
        worker.signal(signal.SIGINT)
        self.sigints += 1
        for delay in INTERRUPT_NUDGES:
            self.reactor.callLater(delay, self._nudge, worker, still_running)

    def _nudge(self, worker: Worker, still_running: Callable[[], bool]) -> None:
        if worker is self.worker and still_running():
            worker.signal(NUDGE_SIGNAL)

    def restart(self) -> Deferred[None]:
        """Stop the current worker (its reports are ignored from now on), start another."""
        old, self.worker = self.worker, None
        if old is not None:
            old.stop(self.reactor, grace=1.0)
        self.spawn()
        return self.when_ready()

    def shutdown(self) -> Deferred[Any]:
        """Stop the worker for good."""
        self.stopping = True
        self.ready = False
        worker, self.worker = self.worker, None
        if worker is None:
            return succeed(None)
        return worker.stop(self.reactor)

    # -- reports of the current worker --------------------------------------------------------

    def _ready(self) -> None:
        self.ready = True
        self.early_deaths = 0
        self.listener.worker_ready()
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            d.callback(None)
        self.listener.run_queued()

    def _exited(self, worker: Worker, description: str) -> None:
        if worker is not self.worker:
            return  # an old worker replaced by restart(), or one stopped
        was_ready = self.ready
        self.worker = None
        self.ready = False
        if self.stopping:
            return
        self.early_deaths = 0 if was_ready else self.early_deaths + 1
        giving_up = self.early_deaths >= MAX_EARLY_DEATHS
        text = f"The kernel's interpreter (pid {worker.pid}) {description}."
        self.listener.worker_died(text, giving_up)  # giving up: the listener shuts down
        if not giving_up and not self.stopping:
            self.spawn()
