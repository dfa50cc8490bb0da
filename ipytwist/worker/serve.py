"""The worker's main loop: read a request, run it in the main thread, reply."""

from __future__ import annotations

import atexit
import ctypes
import gc
import io
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import error_content
from . import ANNOUNCED, EVENT_FD, NUDGE_SIGNAL, REQUEST_FD, SIGINTS_BEFORE, SYNC_ENV, sync_marker
from .link import Interrupts, WorkerLink
from .partial import CellClock, flush_partial_lines
from .reserve import MemoryReserve, after_release, history_survives_memory_errors
from .stdio import StdFiles
from .terminal import TerminalSize

if TYPE_CHECKING:  # imported where they are used: IPython loads after the signal mask is set
    from .comms import WorkerComms
    from .requests import Content, Handler
    from .shell import WorkerShell

HISTORY_BATCH = 10


def _libc_fflush() -> Callable[[], object]:
    try:
        # PyDLL keeps the GIL: fflush of empty buffers takes microseconds, while
        # releasing the GIL before every event lets the history thread in and makes
        # the main thread wait to get it back.
        libc = ctypes.PyDLL(None)
        return lambda: libc.fflush(None)
    except Exception:
        return lambda: None


def serve() -> int:
    """Run requests from the kernel until it says shutdown (or the pipe closes)."""
    std = StdFiles(_libc_fflush())
    sys.stdin = io.TextIOWrapper(io.FileIO(os.open(os.devnull, os.O_RDONLY)), encoding="utf-8")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    os.environ.setdefault("PAGER", "cat")
    os.environ.setdefault("CLICOLOR", "1")
    interrupts = Interrupts()
    reserve = MemoryReserve()
    link = _make_link(std, interrupts, reserve)
    cells = CellClock()
    # Our helper threads (IPython's history saver, the flush thread) start with SIGINT
    # blocked: the kernel's SIGINT must land in the main thread, where it interrupts a
    # blocking call such as time.sleep; delivered to another thread it would not.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    shell = _make_shell(link)
    shell.on_memory_error = reserve.release
    terminal = TerminalSize()
    terminal.install()
    threading.Thread(
        target=flush_partial_lines, args=(std, cells), name="flush", daemon=True
    ).start()
    interrupts.install()
    signal.signal(NUDGE_SIGNAL, lambda signum, frame: None)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    link.emit({"ev": "ready", "pid": os.getpid()})
    _history(shell)

    from .debug import DebugHandlers
    from .requests import RequestHandlers

    comms = _notebook(shell, link)
    debug = DebugHandlers(shell)
    requests = RequestHandlers(shell, link, interrupts, comms)
    handlers = {**requests.table(), **debug.table()}
    while True:
        try:
            rec = link.read()
        except KeyboardInterrupt:
            continue
        if rec is None or rec.get("req") == "shutdown":
            break
        after_release(reserve.release, _begin, std, shell, rec)
        requests.announced = rec.get(ANNOUNCED)
        link.catch_up()  # markers missed while a cell had fd 1 or 2 closed or replaced
        cells.start()
        try:
            with terminal.of(rec):
                content = _run(handlers, rec, reserve.release)
        except SystemExit:
            break  # exit() outside a cell
        finally:
            cells.done()
        _reply(link, content, shell.execution_count, interrupts.count)
        del content
        reserve.take()  # again, if user code let go of the memory a MemoryError used
    debug.close()
    _exit(shell, std)
    return 0


def _make_link(std: StdFiles, interrupts: Interrupts, reserve: MemoryReserve) -> WorkerLink:
    token = os.environ.pop(SYNC_ENV, "")
    marker = sync_marker(token) if token.isalnum() else b""
    return WorkerLink(
        REQUEST_FD,
        EVENT_FD,
        interrupts,
        before_emit=std.flush,
        sync_marker=marker,
        on_memory_error=reserve.release,
    )


def _begin(std: StdFiles, shell: WorkerShell, rec: Content) -> None:
    """Before a request: the output files back, and the request as the parent."""
    from .notebook import parent_of

    std.restore()
    shell.history_ready()
    shell.set_parent(parent_of(rec))


def _reply(link: WorkerLink, content: Content, count: int, sigints: int) -> None:
    """The reply, with the execution count the next cell gets (the kernel announces
    that cell's input with it) and the SIGINTs had so far (the kernel counts from it)."""
    event = {"ev": "reply", "content": content, "count": count, SIGINTS_BEFORE: sigints}
    try:
        link.emit(event)
    except KeyboardInterrupt:
        link.emit(event)


def _make_shell(link: WorkerLink) -> WorkerShell:
    from .shell import kernel_shell

    shell = kernel_shell(link.emit)
    if os.environ.get("IPYTWIST_COLORS", "1") == "0":
        import IPython

        shell.colors = "nocolor" if IPython.version_info >= (9,) else "NoColor"
    # Otherwise IPython's default scheme ("Neutral"; "neutral" from IPython 9), as plain
    # IPython uses: it reads on the page's light background and on dark terminals.
    return shell


def _history(shell: WorkerShell) -> None:
    """The kernel's history, once ``ready`` is out: a fork server's shell gets its own
    now (its database work overlaps the service's handshake and the client's first
    requests; a request waits for it in ``_begin``)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # its threads: main's SIGINT
    try:
        shell.own_history()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if shell.history_manager is not None:
        # Batch history commits (SQLite fsyncs on each) instead of one per cell; history
        # requests and exit write the cache out first, so queries stay complete.
        shell.history_manager.db_cache_size = HISTORY_BATCH
        history_survives_memory_errors(shell.history_manager)


def _notebook(shell: WorkerShell, link: WorkerLink) -> WorkerComms:
    """Comms through the ``comm`` package's hooks, and ``get_ipython().kernel``."""
    from .comms import WorkerComm, WorkerComms
    from .notebook import KernelStandIn, load_shell_module

    comms = WorkerComms(link.emit)
    load_shell_module(type(shell), WorkerComm)
    comms.install()
    shell.kernel = KernelStandIn(comms.manager)
    return comms


def _run(
    handlers: dict[str, Handler], rec: Content, on_memory_error: Callable[[], None]
) -> Content:
    """One request's reply content; SystemExit only from a request that is not execute.
    ``on_memory_error`` is called first when the request ran out of memory."""
    kind = rec.get("req")
    handler = handlers.get(kind) if isinstance(kind, str) else None
    try:
        if handler is None:
            return error_content("ValueError", f"unknown request {kind!r}")
        content = rec.get("content") or {}
        if "buffers" in rec:  # a comm message's, raw on the pipe
            content = {**content, "buffers": rec["buffers"]}
        return handler(content)
    except BaseException as e:  # the loop must survive anything
        if isinstance(e, MemoryError):
            on_memory_error()
        if isinstance(e, SystemExit) and kind != "execute":
            raise
        return error_content(type(e).__name__, str(e))


def _exit(shell: WorkerShell, std: StdFiles) -> None:
    # IPython registers atexit_operations with atexit too: run it once, here, while
    # the kernel still reads our output, and never again at interpreter exit (a second
    # run fails on the temp files it already removed).
    atexit.unregister(shell.atexit_operations)
    try:
        shell.history_ready()
        shell.atexit_operations()
    except Exception as e:  # exit goes on; say why on stderr
        print(f"ipytwist worker: exit handlers failed: {type(e).__name__}: {e}", file=sys.stderr)
    std.flush()
    # What is left is the interpreter's own finalization.  Its garbage-collector passes
    # walk every object still alive (after a day of completions: jedi's caches), which
    # took most of a second that every DELETE, restart and service stop waited for.
    # Frozen objects are skipped by them; refcounts, atexit and weakref.finalize still
    # run, and IPython's exit handlers above already cleared the user's namespace.
    gc.freeze()
