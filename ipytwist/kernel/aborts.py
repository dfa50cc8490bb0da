"""``stop_on_error``: after a cell fails, the cells queued behind it are aborted.

Jupyter's rule: when an ``execute_request`` with ``stop_on_error`` (the
default) ends in an error, every execute request its clients sent before they
could see that error is answered ``status: aborted`` instead of being run.
Those are the executes waiting in the kernel's queue, and those still in
flight: read by a transport but not yet handed to the kernel.  The kernel asks
every transport for the latter *before* the error reply goes out
(:meth:`~ipytwist.transport.Attachment.requests_in_flight`); a transport hands
them back instead of calling the kernel, so nothing re-enters the scheduler
while it finishes a request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from .queue import RequestQueue
from .requests import Request, is_execute

__all__ = ["InFlight", "StopOnError", "no_requests_in_flight"]

#: Requests that had reached the transports but not the kernel: one Deferred per
#: transport, each firing once that transport has read them.
InFlight = Callable[[], list[Deferred[list[Request]]]]


def no_requests_in_flight() -> list[Deferred[list[Request]]]:
    """A kernel without transports has none."""
    return []


class StopOnError:
    """Aborts what a failed cell's clients sent before they could see it fail."""

    log = Logger()

    def __init__(
        self,
        queue: RequestQueue,
        in_flight: InFlight,
        abort: Callable[[Request], None],
        accept: Callable[[Request], None],
        record: Callable[[Request], None],
    ) -> None:
        self.queue = queue
        self.in_flight = in_flight
        #: Answer one request ``aborted`` (with busy and idle around the reply).
        self.abort = abort
        #: Hand one request to the kernel as if it had just arrived.
        self.accept = accept
        #: Tell the kernel's listeners of a request it takes in (the transcript).
        self.record = record

    @staticmethod
    def applies(request: Request, content: dict[str, Any]) -> bool:
        """Whether ``request`` ending with ``content`` stops what is queued behind it."""
        return (
            is_execute(request.msg)
            and content.get("status") == "error"
            and bool(request.msg["content"].get("stop_on_error", True))
        )

    def collect(self) -> list[Deferred[list[Request]]]:
        """Ask the transports for what is in flight: call before the error reply goes out."""
        try:
            return self.in_flight()
        except Exception:
            self.log.failure("could not ask the transports for their requests")
            return []

    def stop(self, in_flight: list[Deferred[list[Request]]], dead: Callable[[], bool]) -> None:
        """After the error reply: abort the queued executes, then, once the transports
        hand them over, those in flight (other requests in flight are accepted, unless
        the kernel is ``dead()`` by then)."""
        for queued in self.queue.take_executes():
            self.abort(queued)

        def take(requests: list[Request]) -> None:
            for request in requests:
                if is_execute(request.msg) or dead():
                    self.record(request)
                    self.abort(request)
                else:
                    self.accept(request)

        for d in in_flight:  # each as soon as its transport has them, in its order
            d.addCallback(take).addErrback(self._failed)

    def _failed(self, failure: Failure) -> None:
        self.log.failure("requests in flight could not be aborted", failure)
