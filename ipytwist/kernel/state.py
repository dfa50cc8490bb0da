"""The kernel's execution state and the changes it may make (pure).

``starting`` until the first interpreter is ready, then ``idle`` and ``busy``
while requests run one at a time; ``restarting`` while an interpreter is
replaced (a restart, or a death), and ``dead`` for good.  Every change goes
through :meth:`ExecutionState.change`, which logs one that is not expected.
"""

from __future__ import annotations

from typing import Literal

from twisted.logger import Logger

__all__ = ["TRANSITIONS", "ExecutionState", "State"]

State = Literal["starting", "idle", "busy", "restarting", "dead"]

#: The changes each state may make.
TRANSITIONS: dict[State, frozenset[State]] = {
    "starting": frozenset({"idle", "restarting", "dead"}),
    "idle": frozenset({"busy", "restarting", "dead"}),
    "busy": frozenset({"idle", "restarting", "dead"}),
    "restarting": frozenset({"idle", "restarting", "dead"}),
    "dead": frozenset(),
}


class ExecutionState:
    """One kernel's execution state, and whether clients are owed an ``idle``."""

    log = Logger()

    def __init__(self, kernel_id: str) -> None:
        self.kernel_id = kernel_id
        self.value: State = "starting"
        #: A new interpreter replaces one that clients saw go: once it is ready,
        #: they are told ``idle`` (not parented to any request).
        self.announce_when_ready = False

    def change(self, new: State) -> None:
        """The one place the state changes; an unexpected change is logged, and made."""
        old = self.value
        if new != old and new not in TRANSITIONS[old]:
            self.log.error(
                "kernel {id}: execution state {old} -> {new} is not expected",
                id=self.kernel_id,
                old=old,
                new=new,
            )
        self.value = new

    def replaced(self) -> None:
        """The interpreter is being replaced: ``restarting``, and ``idle`` once ready."""
        self.change("restarting")
        self.announce_when_ready = True

    def ready(self, running: bool) -> bool:
        """A new interpreter is ready (``running``: a request is still in hand).
        True if clients must now be told ``idle``."""
        if not running and self.value in ("starting", "restarting"):
            self.change("idle")
        announce, self.announce_when_ready = self.announce_when_ready, False
        return announce

    def finished(self) -> None:
        """The running request is done: ``idle``, unless restarting or dead."""
        if self.value == "busy":
            self.change("idle")

    @property
    def accepting(self) -> bool:
        """No request runs and the interpreter may take one."""
        return self.value == "idle"
