"""The console's prompt: IPython's terminal look, with the kernel on the service.

prompt_toolkit draws the prompt; the :class:`KernelChannel` brings every
message of the kernel, so output of other clients appears above the prompt
while it waits (``run_in_terminal`` erases the prompt, writes, redraws it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import sys
from collections.abc import AsyncGenerator, Iterable
from typing import Any, TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.application import run_in_terminal
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import ANSI
from prompt_toolkit.history import History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.lexers import PygmentsLexer
from pygments.lexers.python import PythonLexer

from ..wire import TERMINAL_METADATA
from .channel import KernelChannel
from .look import input_style, terminal_size
from .render import Renderer, in_prompt
from .server import ConsoleError, Server

__all__ = ["Console", "TerminalWriter"]

#: How long Enter waits for the kernel's is_complete_reply before deciding locally
#: (the kernel answers after the cell it is running).
IS_COMPLETE_WAIT = 0.5
COMPLETE_WAIT = 3.0


class TerminalWriter:
    """Output in arrival order, above the prompt while one is shown."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._buf: list[str] = []
        self._task: asyncio.Future[None] | None = None
        self.line_open = False  # the last text written did not end with a newline

    def write(self, text: str) -> None:
        if not text:
            return
        self._buf.append(text)
        if self._task is None:
            self._task = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        try:
            while self._buf:
                text = "".join(self._buf)
                self._buf.clear()
                await run_in_terminal(functools.partial(self._put, text))
        finally:
            self._task = None

    def _put(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()
        self.line_open = not text.endswith("\n")

    async def drain(self) -> None:
        """Everything written so far is on the terminal."""
        while self._task is not None:
            await asyncio.shield(self._task)

    def end_line(self) -> None:
        """Before a prompt: finish a line the output left open."""
        if self.line_open:
            self._put("\n")


class KernelCompleter(Completer):
    """TAB: the kernel's complete_reply as a completion menu."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        return []  # only the asynchronous form is used

    async def get_completions_async(
        self, document: Document, complete_event: CompleteEvent
    ) -> AsyncGenerator[Completion, None]:
        if not complete_event.completion_requested:
            return
        content = {"code": document.text, "cursor_pos": document.cursor_position}
        try:
            _, fut = self.console.channel.request("shell", "complete_request", content)
            reply = await asyncio.wait_for(fut, COMPLETE_WAIT)
        except (TimeoutError, ConsoleError):
            return
        c = reply.get("content") or {}
        start = c.get("cursor_start", document.cursor_position)
        if c.get("status") != "ok" or not isinstance(start, int):
            return
        types = (c.get("metadata") or {}).get("_jupyter_types_experimental") or []
        meta = {t.get("text"): t.get("type") for t in types if isinstance(t, dict)}
        for match in c.get("matches") or []:
            if isinstance(match, str):
                yield Completion(
                    match,
                    start_position=start - document.cursor_position,
                    display_meta=meta.get(match) or "",
                )


def local_is_complete(code: str) -> tuple[str, str]:
    """IPython's own decision, when the kernel is too busy to answer in time."""
    from IPython.core.inputtransformer2 import TransformerManager

    status, indent = TransformerManager().check_complete(code)
    return status, " " * (indent or 0)


class Console:
    """One terminal attached to one kernel of a service."""

    def __init__(
        self,
        server: Server,
        kernel_id: str,
        *,
        owned: bool = False,
        history: History | None = None,
        color: bool = True,
        out: TextIO = sys.stdout,
    ) -> None:
        self.server = server
        self.kernel_id = kernel_id
        self.owned = owned
        self.color = color
        self.channel = KernelChannel(server, kernel_id, self._message, self._state)
        self.renderer = Renderer(self.channel.session, color)
        self.writer = TerminalWriter(out)
        self.next_count = 1
        self._running: str | None = None  # msg_id of our execute_request being run
        self.line_editor: PromptSession[str] = PromptSession(
            history=history or InMemoryHistory(),
            lexer=PygmentsLexer(PythonLexer),
            style=input_style(color),
            include_default_pygments_style=False,
            completer=KernelCompleter(self),
            complete_while_typing=False,
            key_bindings=self._bindings(),
            multiline=True,
            prompt_continuation=self._continuation,
            enable_open_in_editor=False,
        )

    # -- the prompt ------------------------------------------------------------------------

    def _prompt(self) -> ANSI:
        self.next_count = max(self.next_count, self.renderer.execution_count + 1)
        return ANSI(in_prompt(self.next_count, self.color))

    def _continuation(self, width: int, line_number: int, wrap_count: int) -> ANSI:
        dots = "...: ".rjust(width)
        return ANSI(f"\x1b[32m{dots}\x1b[0m" if self.color else dots)

    def _bindings(self) -> KeyBindings:
        kb = KeyBindings()

        @kb.add("enter")
        async def _(event: KeyPressEvent) -> None:
            buf = event.current_buffer
            state = buf.complete_state
            if state is not None and state.current_completion is not None:
                buf.apply_completion(state.current_completion)
                return
            text = buf.text
            if not text.strip() or not buf.document.is_cursor_at_the_end:
                if text.strip() and text.strip()[-1:] not in ":\\":
                    buf.validate_and_handle()
                    return
            status, indent = await self._is_complete(text)
            if status == "incomplete":
                buf.insert_text("\n" + indent)
            else:
                buf.validate_and_handle()

        @kb.add("tab", filter=_at_line_start())
        def _(event: KeyPressEvent) -> None:
            event.current_buffer.insert_text("    ")

        return kb

    async def _is_complete(self, code: str) -> tuple[str, str]:
        try:
            _, fut = self.channel.request("shell", "is_complete_request", {"code": code})
            reply = await asyncio.wait_for(fut, IS_COMPLETE_WAIT)
            c = reply.get("content") or {}
            if c.get("status") in ("complete", "incomplete", "invalid"):
                return str(c["status"]), str(c.get("indent") or "")
        except (TimeoutError, ConsoleError):
            pass
        return local_is_complete(code)

    # -- messages ----------------------------------------------------------------------------

    def _message(self, msg: dict[str, Any]) -> None:
        channel = msg.get("channel")
        if channel == "iopub":
            self.writer.write(self.renderer.render(msg))
        elif channel == "stdin" and (msg.get("header") or {}).get("msg_type") == "input_request":
            asyncio.ensure_future(self._input(msg))

    def _state(self, state: str) -> None:
        note = {
            "reconnecting": "[connection lost: reconnecting…]",
            "reconnected": "[reconnected: what ran meanwhile follows]",
        }.get(state)
        if note:
            self.writer.write(self.renderer.dim(note) + "\n")
        if state == "lost" or self.channel.failure is not None:
            app = self.line_editor.app
            if app.is_running and not app.is_done:
                app.exit(exception=self.channel.failure or ConsoleError("connection lost"))

    async def _input(self, msg: dict[str, Any]) -> None:
        content = msg.get("content") or {}
        await self.writer.drain()
        prompt = str(content.get("prompt", ""))
        if self.writer.line_open:  # input("name? ") printed its prompt as output: reuse it
            prompt = ""
            self.writer.line_open = False
        try:
            value = await PromptSession[str]().prompt_async(
                prompt, is_password=bool(content.get("password"))
            )
        except (KeyboardInterrupt, EOFError):
            self._interrupt()
            value = ""
        self.channel.send("stdin", "input_reply", {"value": value}, msg)

    def _interrupt(self) -> None:
        asyncio.ensure_future(asyncio.to_thread(self._post_interrupt))

    def _post_interrupt(self) -> None:
        with contextlib.suppress(ConsoleError):
            self.server.interrupt(self.kernel_id)

    # -- running -------------------------------------------------------------------------------

    async def start(self) -> str:
        """Connect; the banner line."""
        await self.channel.connect()
        _, fut = self.channel.request("shell", "kernel_info_request", {})
        reply = await self._until_reply(fut)
        info = reply.get("content") or {}
        lang = (info.get("language_info") or {}).get("version", "")
        impl = info.get("implementation", "kernel")
        impl = f"{impl} {info.get('implementation_version', '')}".strip()
        # The kernel's count: a silent request answers the last cell's, running nothing
        # (0 on a fresh kernel), as every execute_reply does.
        _, fut = self.channel.request(
            "shell", "execute_request", {"code": "", "silent": True, "store_history": False}
        )
        count = (await self._until_reply(fut)).get("content", {}).get("execution_count")
        if isinstance(count, int):
            self.next_count = count + 1
        return f"Python {lang} · {impl} · kernel {self.kernel_id} at {self.server.url}"

    async def _until_reply(self, fut: asyncio.Future[dict[str, Any]]) -> dict[str, Any]:
        lost = asyncio.ensure_future(self.channel.lost.wait())
        either: set[asyncio.Future[Any]] = {fut, lost}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if not fut.done():
            fut.cancel()
            raise self.channel.failure or ConsoleError("connection lost")
        return fut.result()

    async def execute(self, code: str) -> None:
        msg_id, fut = self.channel.request(
            "shell",
            "execute_request",
            {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": True,
            },
            # The programs of the cell lay out for this terminal (`!ls` in columns).
            metadata={TERMINAL_METADATA: terminal_size()},
        )
        self._running = msg_id
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self._interrupt)
        try:
            reply = await self._until_reply(fut)
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            self._running = None
        content = reply.get("content") or {}
        self.writer.write(self.renderer.page(content))
        count = content.get("execution_count")
        if isinstance(count, int):
            self.next_count = count + 1
        await self.writer.drain()

    async def loop(self) -> int:
        """Prompt, run, repeat; until Ctrl-D. The exit status."""
        first = True
        while True:
            await self.writer.drain()
            self.writer.end_line()
            if not first:
                print()  # IPython's blank line between one cell and the next prompt
            first = False
            try:
                code = await self.line_editor.prompt_async(self._prompt)
            except KeyboardInterrupt:
                continue
            except EOFError:
                break
            if self.channel.failure is not None:
                raise self.channel.failure
            if code.strip():
                await self.execute(code)
        await self.writer.drain()
        await self._leave()
        return 0

    async def _leave(self) -> None:
        await self.channel.close()  # first: the shutdown must not look like a lost connection
        if self.owned:
            try:
                answer = await PromptSession[str]().prompt_async(
                    f"Shut down kernel {self.kernel_id[:8]}? ([y]/n) "
                )
            except (KeyboardInterrupt, EOFError):
                answer = "y"
            if answer.strip().lower() in ("", "y", "yes"):
                await asyncio.to_thread(self.server.shutdown, self.kernel_id)
                print(f"Kernel {self.kernel_id} shut down.")
            else:
                again = f"ipytwist console --kernel {self.kernel_id}"
                print(f"Kernel {self.kernel_id} keeps running: {again}")


def _at_line_start() -> Condition:
    @Condition
    def cond() -> bool:
        from prompt_toolkit.application import get_app

        before = get_app().current_buffer.document.current_line_before_cursor
        return not before.strip()

    return cond
