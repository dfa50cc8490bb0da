"""Kernel messages as the terminal shows them (pure: message in, text out).

IPython's terminal look: ``In [n]:`` in green, ``Out[n]:`` in red, tracebacks
with the kernel's colours, rich outputs by their ``text/plain`` and a one-line
note for what a terminal cannot show (images, HTML without a text form).
"""

from __future__ import annotations

from typing import Any

__all__ = ["GREEN", "RED", "DIM", "RESET", "Renderer", "in_prompt"]

GREEN, RED, DIM, RESET = "\x1b[32m", "\x1b[31m", "\x1b[2m", "\x1b[0m"
_BOLD_GREEN, _BOLD_RED = "\x1b[32;1m", "\x1b[31;1m"

#: Media types a terminal cannot show: a one-line note instead.
_NOTED = {
    "image/png": "image",
    "image/jpeg": "image",
    "image/gif": "image",
    "image/svg+xml": "image",
    "application/pdf": "PDF",
    "text/html": "HTML",
}


def in_prompt(count: int, color: bool = True) -> str:
    """``In [n]: `` (the prompt and the header of another client's cell)."""
    if not color:
        return f"In [{count}]: "
    return f"{GREEN}In [{_BOLD_GREEN}{count}{RESET}{GREEN}]:{RESET} "


def _out_prompt(count: object, color: bool) -> str:
    n = count if isinstance(count, int) else " "
    if not color:
        return f"Out[{n}]: "
    return f"{RED}Out[{_BOLD_RED}{n}{RESET}{RED}]:{RESET} "


def _note(data: dict[str, Any]) -> str:
    """``[image/png: 12.3 KiB, not shown in a terminal]`` for each such type."""
    notes = []
    for mime, what in _NOTED.items():
        value = data.get(mime)
        if value is None:
            continue
        size = len(value) if isinstance(value, str) else 0
        if mime in ("image/png", "image/jpeg", "image/gif", "application/pdf"):
            size = size * 3 // 4  # base64
        notes.append(f"[{what} {mime}, {size / 1024:.1f} KiB: not shown in a terminal]")
        if what == "image":
            break
    return "\n".join(notes)


class Renderer:
    """Turns one iopub message into the text to write (``""``: nothing to show)."""

    def __init__(self, session: str, color: bool = True) -> None:
        self.session = session  # ours: other clients' cells get a header line
        self.color = color
        #: The kernel's execution count of the last cell that started (any client's).
        self.execution_count = 0
        self._others: dict[Any, bool] = {}  # other clients' cells shown, not yet ended

    def dim(self, text: str) -> str:
        """``text`` faint (when colours are on): notes, not output."""
        return f"{DIM}{text}{RESET}" if self.color else text

    def is_ours(self, msg: dict[str, Any]) -> bool:
        return (msg.get("parent_header") or {}).get("session") == self.session

    def render(self, msg: dict[str, Any]) -> str:
        msg_type = (msg.get("header") or {}).get("msg_type")
        content = msg.get("content") or {}
        if not isinstance(content, dict):
            return ""
        if msg_type == "stream":
            text = content.get("text")
            return text if isinstance(text, str) else ""
        if msg_type == "execute_input":
            return self._execute_input(msg, content)
        if msg_type == "status" and content.get("execution_state") == "idle":
            # Another client's cell ended: a blank line, as between our own cells.
            parent = (msg.get("parent_header") or {}).get("msg_id")
            return "\n" if self._others.pop(parent, None) else ""
        if msg_type == "execute_result":
            text, note = self._data_text(content.get("data"))
            if "\n" in text:
                text = "\n" + text  # IPython starts a multi-line result on its own line
            out = _out_prompt(content.get("execution_count"), self.color) + text + "\n"
            return out + (note + "\n" if note else "")
        if msg_type in ("display_data", "update_display_data"):
            text, note = self._data_text(content.get("data"))
            return "".join(part + "\n" for part in (text, note) if part)
        if msg_type == "error":
            tb = content.get("traceback")
            if isinstance(tb, list) and tb:
                return "\n".join(str(line) for line in tb) + "\n"
            return f"{content.get('ename', 'Error')}: {content.get('evalue', '')}\n"
        return ""

    def _execute_input(self, msg: dict[str, Any], content: dict[str, Any]) -> str:
        count = content.get("execution_count")
        if isinstance(count, int):
            self.execution_count = count
        if self.is_ours(msg):
            return ""
        parent = msg.get("parent_header") or {}
        self._others[parent.get("msg_id")] = True
        while len(self._others) > 100:  # ended without an idle (a lost kernel): forget
            del self._others[next(iter(self._others))]
        who = str(parent.get("username") or "someone")
        session = str(parent.get("session") or "")[:8]
        origin = self.dim(f"[another client: {who}, session {session}]")
        code = str(content.get("code", ""))
        n = count if isinstance(count, int) else 0
        cont = " " * (len(f"In [{n}]: ") - 5) + "...: "
        body = code.replace("\n", "\n" + cont)
        return f"{origin}\n{in_prompt(n, self.color)}{body}\n"

    def _data_text(self, data: object) -> tuple[str, str]:
        """The text/plain form, and a note for what a terminal cannot show."""
        if not isinstance(data, dict):
            return "", ""
        text = data.get("text/plain")
        note = _note(data)
        return (text if isinstance(text, str) else ""), (self.dim(note) if note else "")

    def page(self, reply_content: dict[str, Any]) -> str:
        """What an execute_reply's pager payload (``obj?``) shows."""
        out = []
        for p in reply_content.get("payload") or []:
            if isinstance(p, dict) and p.get("source") == "page":
                data = p.get("data") or {}
                text = data.get("text/plain") if isinstance(data, dict) else None
                if isinstance(text, str):
                    out.append(text if text.endswith("\n") else text + "\n")
        return "".join(out)
