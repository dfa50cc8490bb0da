"""What the kernel offers a worker adopted from an earlier service (:mod:`.adopt`): kept
apart so that ``core.py`` stays the request scheduler alone."""

from __future__ import annotations

from .output import OutputCoalescer
from .publish import Publisher
from .queue import RequestQueue
from .requests import Request
from .state import ExecutionState

__all__ = ["Resumable"]


class Resumable:
    """The :class:`~ipytwist.kernel.Kernel`'s part that resumes an adopted worker."""

    execution_count: int
    state: ExecutionState
    _queue: RequestQueue
    _out: Publisher
    _output: OutputCoalescer

    def resume(self, running: Request | None, execution_count: int) -> None:
        """Before an adopted worker is ready: the execution count, and the request it is
        running (busy with it; its reply then finishes it, as any reply does)."""
        self.execution_count = execution_count
        if running is not None:
            self._queue.add(running)
            self._out.parent = self._queue.start_next().msg
            self.state.value = "busy"

    @property
    def output_pending(self) -> bool:
        """Output of the worker not yet published (the coalescer holds it)."""
        return self._output.pending

    def flush_output(self) -> None:
        """Publish what the coalescer holds now (the service leaves the kernel)."""
        self._output.flush()
