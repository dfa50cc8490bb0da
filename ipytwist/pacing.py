"""Reading paced across every client: no storm of input holds the reactor for long.

The transports read their clients' input (WebSocket frames, ZeroMQ messages)
through one :class:`ReadPacer` per reactor.  A reader with input waiting asks
the pacer to read it (:meth:`ReadPacer.read`).  While the current reactor turn
has reading time left (:data:`TURN_BUDGET`) and nobody waits in line, it reads
a bounded piece at once (``read_some``: :data:`QUANTUM_MESSAGES` messages or
:data:`QUANTUM_BYTES`).  Otherwise it joins the line and stops reading from its
socket (``hold``), and the pacer serves the line on the next turns, a budget's
worth each, so everything else the reactor does (REST, writing output) runs in
between.  The line is fair between kernels first (a reader's ``group``), then
between the readers of a kernel: a storm of clients on one kernel delays
another kernel's client by one piece of the storm, not by a piece of each of
its clients.  A reader leaves the line when it has read all it had
(``release``).
"""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

__all__ = ["QUANTUM_BYTES", "QUANTUM_MESSAGES", "TURN_BUDGET", "ReadPacer", "Reader", "pacer_for"]

#: Seconds of reading per reactor turn, across every reader.
TURN_BUDGET = 0.01
#: What one reader reads at most before the next one's turn, in messages or in bytes.
QUANTUM_MESSAGES = 1
QUANTUM_BYTES = 256 * 1024


class Reader(Protocol):
    """A client connection whose input is read through the pacer."""

    #: What it shares its turns with (its kernel): the line is fair between groups.
    @property
    def group(self) -> object: ...

    def read_some(self) -> bool:
        """Read a bounded piece of the waiting input; whether more waits."""
        ...

    def hold(self) -> None:
        """Stop reading from the socket: this reader waits in line."""
        ...

    def release(self) -> None:
        """This reader left the line: read from the socket again."""
        ...


class ReadPacer:
    """Shares each reactor turn's reading time between the readers with input."""

    log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        budget: float = TURN_BUDGET,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.reactor = reactor
        self.budget = budget
        self.clock = clock
        #: Seconds spent reading in the current turn.
        self.spent = 0.0
        #: The most one turn spent reading (for tests and figures).
        self.longest = 0.0
        #: The line: groups in their turn order, each with its readers in theirs.
        self._line: OrderedDict[object, deque[Reader]] = OrderedDict()
        self._waiting: set[Reader] = set()
        self._next_turn: IDelayedCall | None = None

    def __len__(self) -> int:
        """Readers waiting in line."""
        return len(self._waiting)

    def read(self, reader: Reader) -> None:
        """``reader`` has input: read a piece now if the turn has time and nobody waits
        in line, else put it in line."""
        if reader in self._waiting:
            return
        if self._line or self.spent >= self.budget or not self._read(reader):
            self._waiting.add(reader)
            self._line.setdefault(reader.group, deque()).append(reader)
            reader.hold()
            self._schedule()

    def forget(self, reader: Reader) -> None:
        """``reader`` is gone (its connection closed): out of the line."""
        if reader in self._waiting:
            self._waiting.discard(reader)
            line = self._line.get(reader.group)
            if line is not None and reader in line:  # (not if it is reading now)
                line.remove(reader)
                if not line:
                    del self._line[reader.group]

    def _read(self, reader: Reader) -> bool:
        """One piece of ``reader``'s input, timed; whether it has read all it had."""
        start = self.clock()
        try:
            more = reader.read_some()
        finally:
            self.spent += self.clock() - start
            self.longest = max(self.longest, self.spent)
            self._schedule()
        return not more

    def _schedule(self) -> None:
        if self._next_turn is None:
            self._next_turn = self.reactor.callLater(0, self._turn)

    def _turn(self) -> None:
        """A new reactor turn: serve the line until the budget is spent."""
        self._next_turn = None
        self.spent = 0.0
        while self._line and self.spent < self.budget:
            group, line = next(iter(self._line.items()))
            reader = line.popleft()
            try:
                done = self._read(reader)
            except Exception:
                self.log.failure("reading from a client failed")
                done = True
            if reader not in self._waiting:
                pass  # forgotten while it read
            elif done:
                self._waiting.discard(reader)
                reader.release()
            else:
                line.append(reader)
            if line:
                self._line.move_to_end(group)
            elif self._line.get(group) is line:
                del self._line[group]
        if self._line:
            self._schedule()


_pacers: weakref.WeakKeyDictionary[IReactorTime, ReadPacer] = weakref.WeakKeyDictionary()


def pacer_for(reactor: IReactorTime) -> ReadPacer:
    """The pacer of ``reactor``, shared by every transport that reads on it."""
    pacer = _pacers.get(reactor)
    if pacer is None:
        pacer = _pacers[reactor] = ReadPacer(reactor)
    return pacer
