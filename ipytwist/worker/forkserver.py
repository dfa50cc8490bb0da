"""The fork server (docs/fork-server.md): :func:`main`, started by the service, imports
IPython and the worker's modules once, freezes them for the collector, then forks a
keeper for each request the service sends; the keeper forks the interpreter as
``python -m ipytwist.worker`` does (``keepstart.enter``), so the pages of IPython are
shared copy-on-write by every kernel started from this server.

A request is one datagram on a ``SOCK_SEQPACKET`` socket (fd in :data:`FORK_FD_ENV`): a
JSON object ``{"env", "cwd", "umask", "rlimits"}`` with the keeper's listening socket
and the read end of its secret's pipe passed by ``SCM_RIGHTS``.  The answer is the
keeper's pid (:data:`PID`, once forked); the service connects to the socket at once, as
it does to a keeper it started itself.

Made fresh in each child (what a fork would otherwise share with the server and with
every other kernel): the environment and working directory (the service's at the
request, not the server's at its start), the umask, resource limits, signal dispositions
and mask, the session and process group (``enter`` calls ``setsid``; the interpreter
its own group), the sync marker's token and the link (``enter``), the ``random`` state
(and numpy's, if imported).  IPython's shell is made here once, without a history
database or thread (``shell.premake``); each interpreter makes it its own after the
fork (``shell.kernel_shell``: its output, a new history session, ``In``/``Out``).
Python's string hash seed is the server's.
"""

from __future__ import annotations

import array
import atexit
import gc
import json
import os
import resource
import signal
import socket
import struct
import sys
from typing import Any

from .pools import fill_pools

__all__ = ["FORK_FD_ENV", "PID", "forked", "main"]

#: The fd of the server's end of its socket with the service.
FORK_FD_ENV = "IPYTWIST_FORK_FD"
#: The answer to a request: the keeper's pid.
PID = struct.Struct("=i")
#: Largest request (the environment dominates).
MAX_REQUEST = 1 << 20
_FORKED = False
#: Signal dispositions a new Python starts with (all others are the default): without
#: SIGPIPE ignored a keeper whose service died before the handshake died writing HELLO.
FRESH_PYTHON: dict[int, Any] = {
    signal.SIGINT: signal.default_int_handler,
    signal.SIGPIPE: signal.SIG_IGN,
    signal.SIGXFSZ: signal.SIG_IGN,
}


def forked() -> bool:
    """True in a keeper or interpreter forked by a fork server."""
    return _FORKED


def preload() -> None:
    """What every interpreter imports before it is ready, imported once here, and the
    IPython shell it makes (``shell.premake``: no history database, no thread)."""
    import pwd  # noqa: F401  (getpass.getuser, for the kernel's session)
    import sqlite3

    import IPython  # noqa: F401

    from .. import framing
    from . import comms, debug, keeper, keepstart, notebook, requests, serve, shell  # noqa: F401

    framing.dumps({})  # the wire's encoder (orjson), which a keeper started alone never loads
    # SQLite's one-time set-up (the history's connections): done once here, not by each kernel.
    sqlite3.connect(":memory:").close()
    shell.premake()


def _receive(sock: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """One request and its two fds; None once the service has gone."""
    fds = array.array("i")
    data, ancdata, _flags, _addr = sock.recvmsg(MAX_REQUEST, socket.CMSG_SPACE(2 * fds.itemsize))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    if not data:
        for fd in fds:
            os.close(fd)
        return None
    return json.loads(data), list(fds)


def _fresh(request: dict[str, Any], fds: list[int]) -> None:
    """In the child: nothing of the server's own state that a kernel must not share."""
    global _FORKED
    _FORKED = True
    _fresh_signals()
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    for name, (soft, hard) in request["rlimits"].items():
        try:
            resource.setrlimit(getattr(resource, name), (soft, hard))
        except (ValueError, OSError, AttributeError):
            pass  # a hard limit the service could raise and we cannot: the server's stays
    os.umask(request["umask"])
    os.chdir(request["cwd"])
    _environment(request["env"])
    from .keeper import LINK_FD_ENV, SECRET_FD_ENV

    os.environ[LINK_FD_ENV] = str(fds[0])
    os.environ[SECRET_FD_ENV] = str(fds[1])


def _fresh_signals() -> None:
    """Each signal's disposition as a new Python's; only those that differ are set (each
    set writes to pages the child shares with the server and every other kernel)."""
    for signum in signal.valid_signals():
        fresh = FRESH_PYTHON.get(signum, signal.SIG_DFL)
        try:
            if signal.getsignal(signum) is not fresh:
                signal.signal(signum, fresh)
        except (OSError, ValueError):
            pass  # SIGKILL, SIGSTOP


def _environment(env: dict[str, str]) -> None:
    """``os.environ`` made ``env``, changing only what differs: each variable set copies
    pages of the C environment and of the heap that the server's children share."""
    for name in [name for name in os.environ if name not in env]:
        del os.environ[name]
    for name, value in env.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def _reseed() -> None:
    """The interpreter's own random state (``random`` reseeds at fork by itself)."""
    import random

    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def _child(sock: socket.socket, request: dict[str, Any], fds: list[int]) -> int:
    """The keeper (its exit status), or the interpreter (``serve``'s)."""
    sock.close()
    _fresh(request, fds)
    from . import detach
    from .keepstart import enter

    status = enter()
    if status is not None:  # the keeper, at its end: not the exit handlers of the
        atexit._clear()  # server's imports and of its IPython shell (the interpreter's)
        return status
    detach()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # until the shell is ready
    _reseed()
    from .serve import serve

    return serve()


def main() -> int:
    """Serve fork requests until the service closes its end."""
    # No PDEATHSIG: a service that dies leaves EOF behind the requests it sent, and
    # each of those still gets its keeper (a kernel start never fails because of us).
    sock = socket.socket(fileno=int(os.environ.pop(FORK_FD_ENV)))
    os.chdir("/")  # a kernel's directory is the request's, never the server's
    preload()
    gc.collect()
    fill_pools()
    gc.freeze()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # keepers are reaped by the kernel
    while True:
        try:
            got = _receive(sock)
        except (OSError, ValueError) as e:
            print(f"ipytwist fork server: bad request ({type(e).__name__})", file=sys.stderr)
            if isinstance(e, OSError):
                return 1
            continue
        if got is None:
            return 0
        request, fds = got
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:
            try:
                return _child(sock, request, fds)
            except BaseException as e:
                print(f"ipytwist fork server: a child failed ({e!r})", file=sys.stderr)
                os._exit(127)
        for fd in fds:
            os.close(fd)
        _answer(sock, pid)


def _answer(sock: socket.socket, pid: int) -> None:
    """Tell the service the keeper's pid; a service that has gone is not told (the
    requests it sent before it went still get their keepers)."""
    try:
        sock.send(PID.pack(pid))
    except OSError:
        pass
