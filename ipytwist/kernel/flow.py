"""The kernel's output gate: backpressure from the readers to user code's ``print``.

The kernel's :class:`~ipytwist.kernel.outputlog.OutputLog` pauses the gate
while its log runs too far ahead of the leading reader.  A paused gate stops
reading the worker's output pipes, so they fill and user code blocks in its
next write, as a program writing to a slow terminal does.  An interrupt opens
the gate until the running request is done: the ``KeyboardInterrupt`` must
reach user code and its traceback must get out, however slow the readers.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer


class OutputSource(Protocol):
    """What the gate opens and closes: a worker's output pipes."""

    def pause_output(self) -> None:
        """Stop reading the worker's output pipes."""

    def resume_output(self) -> None:
        """Read the worker's output pipes again."""


@implementer(IPushProducer)
class OutputGate:
    """Paused by the log's readers, forced open while an interrupt is delivered."""

    def __init__(self) -> None:
        self.source: OutputSource | None = None
        #: The log wants the worker's output to wait.
        self.throttled = False
        #: An interrupt is being delivered: read the worker's output whatever the readers do.
        self.interrupting = False

    @property
    def closed(self) -> bool:
        """Whether the worker's output waits now (throttled, and no interrupt under way)."""
        return self.throttled and not self.interrupting

    def attach(self, source: OutputSource | None) -> None:
        """A new worker: it starts in the gate's current state."""
        self.source = source
        self._apply()

    def pauseProducing(self) -> None:
        """IPushProducer: the log's readers lag, so the worker's output waits."""
        self.throttled = True
        self._apply()

    def resumeProducing(self) -> None:
        """IPushProducer: the readers caught up; read the worker's output again."""
        self.throttled = False
        self._apply()

    def stopProducing(self) -> None:
        """IPushProducer: the log lets go of the gate, which opens."""
        self.resumeProducing()

    def interrupt(self) -> None:
        """An interrupt is being delivered: the gate is open until the request is done."""
        self.interrupting = True
        self._apply()

    def request_done(self) -> None:
        """The running request finished: the readers alone decide again."""
        self.interrupting = False
        self._apply()

    def _apply(self) -> None:
        if self.source is None:
            return
        if self.closed:
            self.source.pause_output()
        else:
            self.source.resume_output()
