"""``input()`` in user code: the question goes to the client whose request runs, and
only that client's answer goes back to the worker (pure)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..wire import Message, new_message

if TYPE_CHECKING:
    from .core import Requester

__all__ = ["InputRouter"]


class InputRouter:
    """The kernel's stdin channel for the request now running."""

    def __init__(self, session: str, send_to_worker: Callable[[dict[str, Any]], None]) -> None:
        self.session = session
        self.send_to_worker = send_to_worker
        self.asking: tuple[Message, Requester] | None = None  # the request whose input() waits

    def ask(self, current: tuple[Message, Requester] | None, event: dict[str, Any]) -> None:
        """The worker's ``input_request`` event, for the running request's client."""
        if current is None:
            return
        msg, requester = current
        self.asking = current
        content = {"prompt": event.get("prompt", ""), "password": bool(event.get("password"))}
        requester.send("stdin", new_message("input_request", content, self.session, msg))

    def done(self) -> None:
        """The running request finished: nothing is asked any more."""
        self.asking = None

    def answer(self, msg: Message, requester: Requester) -> str | None:
        """A client's stdin message: None if passed to the worker, else why it was not."""
        if msg["header"]["msg_type"] != "input_reply" or self.asking is None:
            return "unexpected"
        if not self._from_asker(msg, requester):
            return "not asked"
        self.asking = None
        value = msg["content"].get("value", "")
        self.send_to_worker(
            {"req": "input_reply", "value": value if isinstance(value, str) else str(value)}
        )
        return None

    def _from_asker(self, msg: Message, requester: Requester) -> bool:
        """The same connection, or the same Jupyter session, as the asking request."""
        assert self.asking is not None
        asked, asker = self.asking
        if requester is asker or requester == asker:
            return True
        session = msg["header"].get("session")
        return bool(session) and session == asked["header"].get("session")
