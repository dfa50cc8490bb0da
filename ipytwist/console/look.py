"""How the console looks and what it tells the kernel of its terminal: the colours of
plain IPython's prompt for the code typed, and the terminal's size for each cell."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

from prompt_toolkit.styles import BaseStyle, DummyStyle

__all__ = ["input_style", "terminal_size"]


def input_style(color: bool = True) -> BaseStyle:
    """The style plain ``ipython`` gives the code typed at its prompt, with IPython's
    default colours ("legacy" highlighting of the "neutral" scheme, which reads on dark
    and light terminals alike), made by IPython's own terminal code."""
    if not color:
        return DummyStyle()
    from IPython.terminal.interactiveshell import TerminalInteractiveShell

    # The method reads only these two of the shell; a whole TerminalInteractiveShell
    # would open IPython's history database and take over the terminal.
    settings = SimpleNamespace(colors="neutral", highlighting_style_overrides={})
    style: BaseStyle = TerminalInteractiveShell._make_style_from_name_or_cls(
        settings,  # type: ignore[arg-type]  # the method reads only these two
        "legacy",
    )
    return style


def terminal_size() -> dict[str, int]:
    """The terminal's size, for the programs a cell runs (see worker/terminal.py)."""
    size = shutil.get_terminal_size()
    return {"columns": size.columns, "lines": size.lines}
