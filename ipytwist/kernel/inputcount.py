"""A cell's ``execute_input``, published by the kernel as the cell starts.

The worker used to publish it: one more write of the interpreter, and one more wakeup
of the keeper, of the kernel and of every client, before the cell's result.  The kernel
knows the cell's code, and the count it runs under is the one the worker's last reply
gave (its ``count``: IPython's ``execution_count`` after that request).  The worker is
told the count published (the record's :data:`~ipytwist.worker.ANNOUNCED`); it publishes
its own only if its count has changed since (user code may set it) or the kernel did not
know one (a new interpreter's first cell, a kernel re-adopted from its journal).
"""

from __future__ import annotations

from typing import Any

from ..worker import ANNOUNCED, runs_as_cell
from .requests import Request, is_execute

__all__ = ["InputAnnouncer"]


class InputAnnouncer:
    """The execution count the interpreter's next cell gets, while it is known."""

    def __init__(self) -> None:
        #: IPython's execution count as the worker's last reply gave it (None: unknown).
        self.next: int | None = None

    def replied(self, event: dict[str, Any]) -> None:
        """A reply from the worker: its count is the next cell's."""
        count = event.get("count")
        self.next = count if type(count) is int and count > 0 else None

    def forget(self) -> None:
        """A new interpreter (or none): its count is its to say."""
        self.next = None

    def announce(self, request: Request, record: dict[str, Any]) -> dict[str, Any] | None:
        """The ``execute_input`` content to publish as ``request`` starts, its count
        marked in the worker's ``record``; None if the worker is to publish its own."""
        if self.next is None or not is_execute(request.msg):
            return None
        content = request.msg["content"]
        if not runs_as_cell(content):
            return None
        record[ANNOUNCED] = self.next
        return {"code": content.get("code", ""), "execution_count": self.next}
