"""Interpreters start a bounded number at a time; the others wait their turn.

An interpreter spends its first few tenths of a second importing IPython, on a
whole core.  Fifty kernels asked for at once would start fifty such processes,
and the service, which answers every client, would wait for a core behind them.
:class:`StartLimit` is a :class:`~ipytwist.kernel.supervisor.Provisioner` in
front of another: it starts at most ``limit`` workers at once, and each one
that is still starting holds its place until it says it is ready or it ends.
A worker asked for meanwhile is a :class:`QueuedWorker` at once: its kernel is
``starting`` and its requests wait, as for any interpreter that starts, and
stopping it before its turn takes it off the queue.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from .supervisor import Provisioner, Worker, WorkerListener

__all__ = ["QueuedWorker", "StartLimit"]


class QueuedWorker:
    """A worker that waits for its turn to start, then stands for the started one.

    It is the started worker's listener: what that worker reports goes on to the
    supervisor's listener as this object's, and its readiness or its end gives
    its place to the next worker in the queue.
    """

    def __init__(
        self, limit: StartLimit, listener: WorkerListener, provisioner: Provisioner | None = None
    ) -> None:
        self.limit = limit
        self.listener = listener
        #: What starts it (None: the limit's own provisioner).
        self.provisioner = provisioner
        #: The started worker, once it is this one's turn.
        self.started: Worker | None = None
        self._output_paused = False

    @property
    def pid(self) -> int | None:
        """The started worker's process id (None while it waits)."""
        return self.started.pid if self.started is not None else None

    def launch(self, provisioner: Provisioner) -> None:
        """Its turn: start the worker (it starts with the output gate's state)."""
        self.started = (self.provisioner or provisioner).start(self)
        if self._output_paused:
            self.started.pause_output()

    # -- Worker ----------------------------------------------------------------------

    def send(self, record: dict[str, Any]) -> None:
        """A request record for the started worker (the supervisor sends none before
        the worker is ready)."""
        if self.started is not None:
            self.started.send(record)

    def signal(self, signum: int) -> None:
        """A signal for the started worker; nothing runs in one still waiting."""
        if self.started is not None:
            self.started.signal(signum)

    def stop(self, reactor: IReactorTime, grace: float = 2.0) -> Deferred[Any]:
        """Stop the started worker, or take this one off the queue."""
        if self.started is not None:
            return self.started.stop(reactor, grace)
        self.limit.leave(self)
        return succeed("stopped before it started")

    def pause_output(self) -> None:
        """The output gate closed: the started worker's output waits."""
        self._output_paused = True
        if self.started is not None:
            self.started.pause_output()

    def resume_output(self) -> None:
        """The output gate opened."""
        self._output_paused = False
        if self.started is not None:
            self.started.resume_output()

    # -- WorkerListener: what the started worker reports -------------------------------

    def worker_output(self, name: str, data: bytes) -> None:
        """Output of the started worker, passed on."""
        self.listener.worker_output(name, data)

    def worker_event(self, event: dict[str, Any]) -> None:
        """An event of the started worker, passed on; once it is ready, the next
        worker's turn comes."""
        try:
            self.listener.worker_event(event)
        finally:
            if event.get("ev") == "ready":
                self.limit.leave(self)

    def worker_exited(self, worker: Any, description: str) -> None:
        """The started worker ended: passed on as this one's end; the next one's turn."""
        try:
            self.listener.worker_exited(self, description)
        finally:
            self.limit.leave(self)


class StartLimit:
    """A provisioner that starts at most ``limit`` workers at once, in the order they
    were asked for."""

    log = Logger()

    def __init__(self, provisioner: Provisioner, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.provisioner = provisioner
        self.limit = limit
        #: Workers started and not yet ready.
        self.starting: list[QueuedWorker] = []
        #: Workers waiting for their turn, first first.
        self.waiting: deque[QueuedWorker] = deque()
        #: Workers started in all (a figure for the operator and the tests).
        self.started = 0

    def via(self, provisioner: Provisioner) -> Provisioner:
        """A provisioner whose workers ``provisioner`` starts, in this limit's turn."""
        return _Via(self, provisioner)

    def start(
        self, listener: WorkerListener, provisioner: Provisioner | None = None
    ) -> QueuedWorker:
        """A worker for ``listener``: started now if fewer than ``limit`` are starting,
        else when its turn comes.  Starting it now may raise, as the provisioner does."""
        worker = QueuedWorker(self, listener, provisioner)
        if len(self.starting) < self.limit and not self.waiting:
            self.starting.append(worker)
            try:
                self._launch(worker)
            except BaseException:
                self.starting.remove(worker)
                raise
        else:
            self.waiting.append(worker)
        return worker

    def leave(self, worker: QueuedWorker) -> None:
        """``worker`` is ready, ended or stopped: its place goes to the next in line."""
        if worker in self.starting:
            self.starting.remove(worker)
        elif worker in self.waiting:
            self.waiting.remove(worker)
        self._next()

    def _next(self) -> None:
        while self.waiting and len(self.starting) < self.limit:
            worker = self.waiting.popleft()
            self.starting.append(worker)
            try:
                self._launch(worker)
            except Exception as e:
                # Reported as the worker's end: the supervisor starts another (and
                # gives up after a few that never got ready).
                self.log.error("could not start an interpreter: {why}", why=str(e)[:200])
                self.starting.remove(worker)
                worker.listener.worker_exited(worker, f"could not be started ({e})")

    def _launch(self, worker: QueuedWorker) -> None:
        self.started += 1
        worker.launch(self.provisioner)


class _Via:
    """:meth:`StartLimit.via`: another provisioner's workers, in the limit's turn."""

    def __init__(self, limit: StartLimit, provisioner: Provisioner) -> None:
        self.limit = limit
        self.provisioner = provisioner

    def start(self, listener: WorkerListener) -> QueuedWorker:
        """A worker for ``listener``, started by the given provisioner in its turn."""
        return self.limit.start(listener, self.provisioner)
