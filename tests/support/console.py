"""The environment of ``ipytwist console`` under test, in a pty."""

from __future__ import annotations

import os


def console_env(home: str) -> dict[str, str]:
    """This environment, with the console's tokens and history under ``home``
    (XDG_DATA_HOME) and no cursor position requests (the pty answers none)."""
    return dict(os.environ, XDG_DATA_HOME=home, PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm")
