"""What the worker does for each request: run code, complete, inspect, history."""

from __future__ import annotations

import builtins
import getpass
from collections.abc import Callable
from typing import Any

from IPython.core.completer import provisionalcompleter, rectify_completions
from IPython.core.error import StdinNotImplementedError
from IPython.utils.tokenutil import token_at_cursor

from ..errors import error_content
from .comms import WorkerComms
from .link import Interrupts, WorkerLink
from .shell import WorkerShell

Content = dict[str, Any]
#: A request's handler: the request's content to the reply's.
Handler = Callable[[Content], Content]


def _error_content(exc: BaseException) -> Content:
    name = type(exc).__name__
    return error_content(name, str(exc), [f"{name}: {exc}"])


#: The displays of a cell's last expression only: no user code runs after its result.
_LAST_ONLY = ("last_expr", "last", "last_expr_or_assign")


def may_hold_result(shell: Any, expressions: dict[str, Any]) -> bool:
    """Whether a cell's result may wait for its reply (one write, one wakeup of the
    reader for both): only if no user code can run between them (and print meanwhile):
    its last expression is the only one displayed, no ``post_execute`` or
    ``post_run_cell`` hook is registered, and no user expressions are asked for."""
    callbacks = shell.events.callbacks
    return (
        shell.ast_node_interactivity in _LAST_ONLY
        and not expressions
        and not (callbacks.get("post_execute") or callbacks.get("post_run_cell"))
    )


class RequestHandlers:
    """One method per request kind; each returns the reply content."""

    def __init__(
        self,
        shell: WorkerShell,
        link: WorkerLink,
        interrupts: Interrupts,
        comms: WorkerComms | None = None,
    ) -> None:
        self.shell = shell
        self.link = link
        self.interrupts = interrupts
        self.comms = comms or WorkerComms(link.emit)
        self._allow_stdin = False
        #: The execution count with which the kernel published the running request's
        #: ``execute_input`` (its record's :data:`ANNOUNCED`), or None.
        self.announced: object = None

    def table(self) -> dict[str, Handler]:
        return {
            "execute": self.execute,
            "complete": self.complete,
            "inspect": self.inspect,
            "is_complete": self.is_complete,
            "history": self.history,
            "comm": self.comm,
            "comm_info": self.comm_info,
        }

    # -- stdin --------------------------------------------------------------

    def _ask(self, prompt: str, password: bool) -> str:
        if not self._allow_stdin:
            raise StdinNotImplementedError(
                "raw_input was called, but this frontend does not support input requests."
            )
        self.link.emit({"ev": "input_request", "prompt": str(prompt), "password": password})
        rec = self.link.read_matching("input_reply")
        if rec is None:
            raise EOFError("the kernel went away while waiting for input")
        value = rec.get("value", "")
        if not isinstance(value, str):
            value = str(value)
        return value

    def raw_input(self, prompt: object = "") -> str:
        return self._ask(str(prompt), password=False)

    def getpass(self, prompt: str = "Password: ", stream: object = None) -> str:
        return self._ask(prompt, password=True)

    # -- requests -----------------------------------------------------------

    def execute(self, c: Content) -> Content:
        shell = self.shell
        code = c.get("code", "")
        expressions = c.get("user_expressions") or {}
        for name, value, kind in (("code", code, str), ("user_expressions", expressions, dict)):
            if not isinstance(value, kind):
                # Refused before anything runs: the cell is not half-executed.
                return {
                    **_error_content(
                        TypeError(f"{name} must be a {kind.__name__} in execute_request")
                    ),
                    "execution_count": shell.execution_count,
                    "user_expressions": {},
                    "payload": [],
                }
        silent = bool(c.get("silent", False))
        store_history = bool(c.get("store_history", not silent))
        self._allow_stdin = bool(c.get("allow_stdin", False))
        if not silent and self.announced != shell.execution_count:
            # (the kernel published it with the count of our last reply, unless that
            # has changed since or it did not know it: then it is ours to say)
            self.link.emit({"ev": "execute_input", "code": code, "count": shell.execution_count})
        shell.last_error = None
        count = shell.execution_count
        saved = builtins.input, getpass.getpass
        builtins.input, getpass.getpass = self.raw_input, self.getpass
        try:
            self.link.hold_result = may_hold_result(shell, expressions)
            with self.interrupts.user_code():
                result = shell.run_cell(code, store_history=store_history, silent=silent)
            error = result.error_before_exec or result.error_in_exec
        except KeyboardInterrupt as e:  # landed in IPython's machinery, not user code
            shell.showtraceback((type(e), e, None))
            error = e
        finally:
            self.link.hold_result = False
            builtins.input, getpass.getpass = saved
            self._allow_stdin = False
        if isinstance(error, KeyboardInterrupt) and store_history and not silent:
            self._use_up_count(count)
        reply: Content = {"execution_count": shell.execution_count - 1}
        if error is None:
            reply["status"] = "ok"
            reply["user_expressions"] = shell.user_expressions(expressions)
        else:
            reply["status"] = "error"
            reply.update(shell.last_error or _error_content(error))
            reply["user_expressions"] = {}
        reply["payload"] = shell.payloads.read_payload()
        shell.payloads.clear_payload()
        return reply

    def _use_up_count(self, count: int) -> None:
        """After an interrupt: if it cut IPython short after it stored the input under
        ``count`` and before it moved past it, move past it now.  (IPython's run_cell
        mostly returns such an interrupt as the cell's error; sometimes it escapes.)
        Otherwise the next cell reuses the number: its history line collides, and
        IPython prints an error into whatever cell writes the history out next."""
        if self.shell.execution_count == count:
            self.shell.execution_count += 1

    def comm(self, c: Content) -> Content:
        """A client's comm message, to its comm; its handlers are user code."""
        with self.interrupts.user_code():
            return self.comms.handle(c)

    def comm_info(self, c: Content) -> Content:
        """The live comms (of ``target_name``, if given)."""
        return self.comms.info(c.get("target_name"))

    def complete(self, c: Content) -> Content:
        code = str(c.get("code", ""))
        cursor_pos = c.get("cursor_pos")
        if not isinstance(cursor_pos, int) or not 0 <= cursor_pos <= len(code):
            cursor_pos = len(code)
        with provisionalcompleter():
            raw = self.shell.Completer.completions(code, cursor_pos)
            completions = list(rectify_completions(code, raw))
        if completions:
            start, end = completions[0].start, completions[0].end
        else:
            start = end = cursor_pos
        types = [
            {
                "start": comp.start,
                "end": comp.end,
                "text": comp.text,
                "type": comp.type,
                "signature": comp.signature,
            }
            for comp in completions
        ]
        return {
            "status": "ok",
            "matches": [comp.text for comp in completions],
            "cursor_start": start,
            "cursor_end": end,
            "metadata": {"_jupyter_types_experimental": types},
        }

    def inspect(self, c: Content) -> Content:
        code = str(c.get("code", ""))
        cursor_pos = c.get("cursor_pos")
        if not isinstance(cursor_pos, int) or not 0 <= cursor_pos <= len(code):
            cursor_pos = len(code)
        detail = 1 if c.get("detail_level") == 1 else 0
        name = token_at_cursor(code, cursor_pos)
        reply: Content = {"status": "ok", "data": {}, "metadata": {}, "found": False}
        try:
            reply["data"].update(self.shell.object_inspect_mime(name, detail_level=detail))
            reply["found"] = True
        except KeyError:
            pass
        return reply

    def is_complete(self, c: Content) -> Content:
        status, indent = self.shell.input_transformer_manager.check_complete(str(c.get("code", "")))
        reply: Content = {"status": status}
        if status == "incomplete":
            reply["indent"] = " " * (indent or 0)
        return reply

    def history(self, c: Content) -> Content:
        hm = self.shell.history_manager
        if hm is None:  # IPython's exit handlers closed it
            return error_content("RuntimeError", "the history is closed", history=[])
        raw = bool(c.get("raw", True))
        output = bool(c.get("output", False))
        kind = c.get("hist_access_type")
        hm.writeout_cache()
        if kind == "tail":
            rows = hm.get_tail(int(c.get("n") or 10), raw=raw, output=output, include_latest=True)
        elif kind == "range":
            rows = hm.get_range(
                int(c.get("session") or 0),
                int(c.get("start") or 1),
                c.get("stop"),
                raw=raw,
                output=output,
            )
        elif kind == "search":
            rows = hm.search(
                str(c.get("pattern") or "*"),
                raw=raw,
                output=output,
                n=c.get("n"),
                unique=bool(c.get("unique", False)),
            )
        else:
            return error_content("ValueError", f"unknown hist_access_type {kind!r}", history=[])
        current = hm.session_number
        # IPython numbers the live session 0 in ranges; use its real number everywhere
        # so a (session, line) from one query finds the same entry in another.
        history = [[s or current, n, list(e) if output else e] for s, n, e in rows]
        return {"status": "ok", "history": history}
