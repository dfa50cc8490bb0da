"""STAND-IN for the kernel's journal (the persisted output log and transcript), until
the real one is merged: it has the same interface and keeps only what re-adoption
needs, in ``journal-stub.json`` beside ``kernel.json``: the session, the execution
count, the header of the running execute request, and the link position made safe.
It persists no output and no transcript (``Restored.sessions`` is always empty).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from .envelope import Envelope
from .outputlog import OutputLog, Position
from .transcript import Transcript

__all__ = ["KernelJournal", "Restored"]

_NAME = "journal-stub.json"


@dataclass
class Restored:
    """What a journal gives back to a new service."""

    session: str | None = None
    execution_count: int = 0
    #: The execute request that was running (header, content, metadata), if any.
    running: dict[str, Any] | None = None
    #: The keeper's stream id and the last link seq whose output the journal holds.
    link: tuple[str, int] | None = None
    sessions: dict[str, Position] = field(default_factory=dict)


class KernelJournal:
    """One kernel's journal in its directory (see the module's docstring)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, _NAME)
        self.state: dict[str, Any] = {}
        self._log: OutputLog | None = None

    @classmethod
    def open(
        cls, directory: str, transcript_bytes: int, log_messages: int, log_bytes: int
    ) -> KernelJournal:
        """The journal in ``directory`` (bounds as the in-memory log and transcript)."""
        journal = cls(directory)
        try:
            with open(journal.path, encoding="utf-8") as f:
                state = json.load(f)
            journal.state = state if isinstance(state, dict) else {}
        except (OSError, ValueError):
            journal.state = {}
        return journal

    def restore(self, output_log: OutputLog, transcript: Transcript) -> Restored:
        """What was kept (this stand-in restores no output and no transcript)."""
        s = self.state
        link = s.get("link")
        running = s.get("running")
        return Restored(
            session=s.get("session") if isinstance(s.get("session"), str) else None,
            execution_count=int(s.get("execution_count") or 0),
            running=running if isinstance(running, dict) else None,
            link=(str(link[0]), int(link[1]))
            if isinstance(link, list) and len(link) == 2
            else None,
        )

    def follow(self, kernel: Any, output_log: OutputLog, transcript: Transcript) -> None:
        """Keep what the kernel publishes from now on."""
        self.state["session"] = kernel.session
        self._log = output_log
        output_log.subscribe(self)
        self._save()

    def deliver(self, envelope: Envelope) -> None:
        """An iopub message: the count, and which execute request runs."""
        msg = envelope.msg
        msg_type = envelope.msg_type
        parent = msg.get("parent_header") or {}
        if msg_type == "execute_input":
            self.state["execution_count"] = msg["content"].get("execution_count", 0)
            if self.state.get("running"):
                self.state["running"]["content"] = {"code": msg["content"].get("code", "")}
        elif msg_type == "status" and parent.get("msg_type") == "execute_request":
            state = msg["content"].get("execution_state")
            if state == "busy":
                self.state["running"] = {"header": parent, "content": {}, "metadata": {}}
            elif state == "idle":
                self.state["running"] = None
        else:
            return
        self._save()

    def link_safe(self, stream: str, seq: int) -> None:
        """Every link item up to ``seq`` of ``stream`` is in the journal."""
        self.state["link"] = [stream, seq]
        self._save()

    def _save(self) -> None:
        if not os.path.isdir(self.directory):
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.state, f)
        os.replace(tmp, self.path)

    def close(self) -> None:
        """Stop following (the service stops; the journal stays)."""
        if self._log is not None:
            self._log.unsubscribe(self)
            self._log = None

    def remove(self) -> None:
        """The kernel is gone for good."""
        self.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
