"""``input()`` in user code: the question goes to the client whose request runs, and
only that client's answer goes back to the worker.

What the cell shows of it is echoed (to the transcript), as JupyterLab keeps it in the
notebook: a ``stdin`` stream of the prompt, then the answer and a newline; for a
``password`` (``getpass``) the prompt and the newline, never the answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..loglimit import LimitedLog
from ..wire import Message, new_message
from .requests import Request, Requester

__all__ = ["InputRouter"]


class InputRouter:
    """The kernel's stdin channel for the request now running."""

    def __init__(
        self,
        session: str,
        send_to_worker: Callable[[dict[str, Any]], None],
        rejects: LimitedLog,
    ) -> None:
        self.session = session
        self.send_to_worker = send_to_worker
        self.rejects = rejects
        self.asking: Request | None = None  # the request whose input() waits
        self._password = False  # what is asked is a password
        #: Told the text input() adds to a cell, given the cell's request msg_id.
        self.echo: Callable[[str, str], object] = lambda parent, text: None

    def ask(self, current: Request | None, event: dict[str, Any]) -> None:
        """The worker's ``input_request`` event, for the running request's client."""
        if current is None:
            return
        self.asking = current
        prompt = event.get("prompt", "")
        self._password = bool(event.get("password"))
        content = {"prompt": prompt, "password": self._password}
        msg = new_message("input_request", content, self.session, current.msg)
        current.requester.send("stdin", msg)
        self.echo(_msg_id(current), prompt if isinstance(prompt, str) else str(prompt))

    def done(self) -> None:
        """The running request finished: nothing is asked any more."""
        self.asking = None

    def answer(self, msg: Message, requester: Requester) -> None:
        """A client's stdin message: passed to the worker if it answers what was asked
        of that client; otherwise ignored, with a rate-limited line in the log."""
        if msg["header"]["msg_type"] != "input_reply" or self.asking is None:
            self.rejects.warn(
                "stdin: ignored unexpected {t}", "stdin", t=str(msg["header"]["msg_type"])[:64]
            )
            return
        if not self._from_asker(msg, requester):
            self.rejects.warn(
                "stdin: ignored an input_reply from a client that was not asked", "stdin-other"
            )
            return
        asked, self.asking = self.asking, None
        value = msg["content"].get("value", "")
        value = value if isinstance(value, str) else str(value)
        self.send_to_worker({"req": "input_reply", "value": value})
        self.echo(_msg_id(asked), ("" if self._password else value) + "\n")

    def _from_asker(self, msg: Message, requester: Requester) -> bool:
        """The same connection, or the same Jupyter session, as the asking request."""
        assert self.asking is not None
        asked, asker = self.asking.msg, self.asking.requester
        if requester is asker or requester == asker:
            return True
        session = msg["header"].get("session")
        return bool(session) and session == asked["header"].get("session")


def _msg_id(request: Request) -> str:
    return str(request.msg["header"].get("msg_id", ""))
