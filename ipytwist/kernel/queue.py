"""The worker's requests: those waiting their turn, and the one that runs (pure)."""

from __future__ import annotations

from collections import deque

from ..wire import utcnow_iso
from .requests import Request, is_execute

__all__ = ["RequestQueue"]


class RequestQueue:
    """Requests for the worker, run one at a time in the order they came."""

    def __init__(self) -> None:
        self._waiting: deque[Request] = deque()
        #: The request the worker runs now.
        self.current: Request | None = None
        #: When it started (ISO 8601), for its reply's metadata.
        self.started = ""

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, request: Request) -> None:
        """``request`` waits its turn."""
        self._waiting.append(request)

    def start_next(self) -> Request:
        """The oldest waiting request becomes the current one."""
        self.current = self._waiting.popleft()
        self.started = utcnow_iso()
        return self.current

    def finish(self) -> Request | None:
        """The current request is done: it, or None if none ran."""
        request, self.current = self.current, None
        return request

    def take_executes(self) -> list[Request]:
        """The waiting execute requests, taken out (``stop_on_error``); others stay."""
        executes = [r for r in self._waiting if is_execute(r.msg)]
        self._waiting = deque(r for r in self._waiting if not is_execute(r.msg))
        return executes

    def take_all(self) -> list[Request]:
        """Every waiting request, taken out (the kernel shuts down)."""
        waiting, self._waiting = list(self._waiting), deque()
        return waiting
