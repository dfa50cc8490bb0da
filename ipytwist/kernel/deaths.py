"""What the kernel does when its worker dies: kept apart so that ``core.py`` stays the
request scheduler alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from .output import OutputCoalescer
from .publish import Publisher
from .queue import RequestQueue
from .requests import Request
from .state import ExecutionState

__all__ = ["WorkerDeaths"]


class WorkerDeaths:
    """The :class:`~ipytwist.kernel.Kernel`'s part that answers a worker's death."""

    log: Logger
    id: str
    state: ExecutionState
    _queue: RequestQueue
    _out: Publisher
    _output: OutputCoalescer

    _fail_current: Callable[[str, str], None]
    _abort: Callable[[Request], None]
    shutdown: Callable[[], Any]

    def worker_died(self, text: str, giving_up: bool) -> None:
        """The worker died: its request fails, queued cells are aborted (not if it ran
        none: they wait for the next), and a new one starts (unless it keeps dying)."""
        self._output.flush()
        self.log.warn("kernel {id}: {text} Starting a new one.", id=self.id, text=text)
        current = self._queue.current
        self._out.status("restarting", current.msg if current else None)
        self.state.replaced()
        if current is not None:
            why = f"WorkerDied: {text} A new interpreter has been started."
            self._out.output("error", {"ename": "WorkerDied", "evalue": text, "traceback": [why]})
            self._fail_current("WorkerDied", text)
        for queued in self._queue.take_executes() if current or giving_up else ():
            self._abort(queued)
        if giving_up:
            self.log.error("kernel {id}: interpreter fails to start; giving up", id=self.id)
            self.state.change("dead")
            self._out.status("dead", None)
            self.shutdown()
            return
        self._output.reset()
