"""The worker's main loop: read a request, run it in the main thread, reply."""

from __future__ import annotations

import atexit
import ctypes
import io
import os
import signal
import sys
import threading
from typing import Any

from . import EVENT_FD, NUDGE_SIGNAL, REQUEST_FD, SYNC_ENV, sync_marker
from .link import Interrupts, WorkerLink
from .stdio import StdStreams

PARTIAL_LINE_FLUSH_SECONDS = 0.05
HISTORY_BATCH = 10


def _libc_fflush() -> Any:
    try:
        # PyDLL keeps the GIL: fflush of empty buffers takes microseconds, while
        # releasing the GIL before every event lets the history thread in and makes
        # the main thread wait to get it back.
        libc = ctypes.PyDLL(None)
        return lambda: libc.fflush(None)
    except Exception:
        return lambda: None


def serve() -> int:
    std = StdStreams(_libc_fflush())
    sys.stdin = io.TextIOWrapper(io.FileIO(os.open(os.devnull, os.O_RDONLY)), encoding="utf-8")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    os.environ.setdefault("PAGER", "cat")
    os.environ.setdefault("CLICOLOR", "1")
    interrupts = Interrupts()
    token = os.environ.pop(SYNC_ENV, "")
    marker = sync_marker(token) if token.isalnum() else b""
    link = WorkerLink(REQUEST_FD, EVENT_FD, interrupts, before_emit=std.flush, sync_marker=marker)

    from .requests import RequestHandlers
    from .shell import WorkerShell

    # Our helper threads (IPython's history saver, the flush thread) start with SIGINT
    # blocked: the kernel's SIGINT must land in the main thread, where it interrupts a
    # blocking call such as time.sleep; delivered to another thread it would not.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    shell = WorkerShell.instance(emit=link.emit)
    shell.colors = "Linux" if os.environ.get("IPYTWIST_COLORS", "1") != "0" else "NoColor"
    if shell.history_manager is not None:
        # Batch history commits (SQLite fsyncs on each) instead of one per cell; history
        # requests and exit write the cache out first, so queries stay complete.
        shell.history_manager.db_cache_size = HISTORY_BATCH
    handlers = RequestHandlers(shell, link, interrupts).table()

    busy = threading.Event()

    def flush_partial_lines() -> None:
        """``print('x', end='')`` then a long wait still shows ``x`` promptly."""
        while True:
            busy.wait()
            threading.Event().wait(PARTIAL_LINE_FLUSH_SECONDS)
            std.flush_python()

    threading.Thread(target=flush_partial_lines, name="flush", daemon=True).start()
    interrupts.install()
    signal.signal(NUDGE_SIGNAL, lambda signum, frame: None)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    link.emit({"ev": "ready", "pid": os.getpid()})

    while True:
        try:
            rec = link.read()
        except KeyboardInterrupt:
            continue
        if rec is None or rec.get("req") == "shutdown":
            break
        kind = rec.get("req")
        handler = handlers.get(kind) if isinstance(kind, str) else None
        std.restore()
        busy.set()
        try:
            if handler is None:
                content = {
                    "status": "error",
                    "ename": "ValueError",
                    "evalue": f"unknown request {kind!r}",
                    "traceback": [],
                }
            else:
                content = handler(rec.get("content") or {})
        except BaseException as e:  # noqa: BLE001 - the loop must survive anything
            if isinstance(e, SystemExit) and kind != "execute":
                break
            content = {
                "status": "error",
                "ename": type(e).__name__,
                "evalue": str(e),
                "traceback": [],
            }
        finally:
            busy.clear()
        try:
            link.emit({"ev": "reply", "content": content})
        except KeyboardInterrupt:
            link.emit({"ev": "reply", "content": content})
    # IPython registers atexit_operations with atexit too: run it once, here, while
    # the kernel still reads our output, and never again at interpreter exit (a second
    # run fails on the temp files it already removed).
    atexit.unregister(shell.atexit_operations)
    try:
        shell.atexit_operations()
    except Exception:
        pass
    std.flush()
    return 0
