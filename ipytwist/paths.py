"""Where ipytwist keeps its files (imports nothing: the service and the console share it)."""

from __future__ import annotations

import os

__all__ = ["data_dir", "default_state_dir"]


def data_dir() -> str:
    """``$XDG_DATA_HOME/ipytwist`` (``~/.local/share/ipytwist``)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "ipytwist")


def default_state_dir() -> str:
    """The service's state directory unless ``--state-dir`` says otherwise."""
    return data_dir()
