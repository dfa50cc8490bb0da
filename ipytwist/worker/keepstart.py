"""How a keeper starts: ``python -m ipytwist.worker`` with the link's fd in its
environment forks the interpreter before anything heavy is imported (the two share
their pages); the parent becomes the keeper (docs/durable-kernels.md).

Imports only the standard library and layer-0 code without the wire (no orjson,
uuid or datetime): whatever is imported here is in both processes' memory.
"""

from __future__ import annotations

import fcntl
import gc
import os
import signal
import socket

from . import EVENT_FD, REQUEST_FD, SYNC_ENV
from .keeper import (
    DEFAULT_ORPHAN_TIMEOUT,
    DIE_WITH_PARENT_ENV,
    KERNEL_ENV,
    LINK_FD_ENV,
    LINK_PATH_ENV,
    ORPHAN_ENV,
    SECRET_FD_ENV,
    Keeper,
)

__all__ = ["enter", "fork_interpreter"]

#: The interpreter's output pipes are enlarged to this, as ``kernel.process`` does.
OUTPUT_PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = 1031


def fork_interpreter(token: str) -> tuple[int, dict[int, int], int]:
    """Fork the interpreter on new pipes (no exec: one Python start for both); its pid, the
    read ends of its fds 1, 2 and 4 and the write end of its fd 3; ``(0, {}, -1)`` in it."""
    req_r, req_w = os.pipe()
    pipes = {fd: os.pipe() for fd in (1, 2, EVENT_FD)}
    for fd in (1, 2):
        try:
            fcntl.fcntl(pipes[fd][0], _F_SETPIPE_SZ, OUTPUT_PIPE_BYTES)
        except OSError:
            pass  # too big for this system: the default size works, a bit slower
    gc.freeze()  # no collection in either process writes to the pages they share
    pid = os.fork()
    if pid == 0:  # the interpreter: its fds as the worker expects them, nothing else
        try:
            # Above every target first, so that no dup2 closes a pipe still to be placed.
            targets = {fd: fcntl.fcntl(w, fcntl.F_DUPFD, 10) for fd, (_, w) in pipes.items()}
            targets[REQUEST_FD] = fcntl.fcntl(req_r, fcntl.F_DUPFD, 10)
            targets[0] = os.open(os.devnull, os.O_RDONLY)
            for fd, source in targets.items():
                os.dup2(source, fd)
            os.closerange(EVENT_FD + 1, os.sysconf("SC_OPEN_MAX"))
            os.environ[SYNC_ENV] = token
            return 0, {}, -1
        except BaseException:
            os._exit(127)
    os.close(req_r)
    readers = {}
    for fd, (r, w) in pipes.items():
        os.close(w)
        os.set_blocking(r, False)
        readers[fd] = r
    os.set_blocking(req_w, False)
    return pid, readers, req_w


def _die_with_parent() -> None:
    """PDEATHSIG: the keeper of a kernel that is not durable ends with its parent."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the keeper's orphan timeout ends it


def enter() -> int | None:
    """``python -m ipytwist.worker`` with :data:`LINK_FD_ENV` set: fork the
    interpreter before anything heavy is imported; the parent is the keeper and
    serves (its exit status), the child returns ``None`` and goes on as the worker.
    The environment says the socket and the secret's pipe."""
    parent = os.getppid()
    os.setsid()  # neither the service's death nor its terminal's Ctrl-C reaches us
    if os.environ.pop(DIE_WITH_PARENT_ENV, "") == "1":
        _die_with_parent()
        if os.getppid() != parent:
            return 1
    listen = socket.socket(fileno=int(os.environ.pop(LINK_FD_ENV)))
    secret_fd = int(os.environ.pop(SECRET_FD_ENV))
    secret = os.read(secret_fd, 64)
    os.close(secret_fd)
    kernel_id = os.environ.pop(KERNEL_ENV)
    timeout = float(os.environ.pop(ORPHAN_ENV, DEFAULT_ORPHAN_TIMEOUT))
    path = os.environ.pop(LINK_PATH_ENV, "")
    token = os.urandom(16).hex()
    pid, readers, req_w = fork_interpreter(token)
    if pid == 0:
        listen.detach()  # (closed with the rest above fd 4)
        return None
    keeper = Keeper(listen, secret, kernel_id, timeout, (token, pid, readers, req_w))
    if path:
        keeper.at(path)
    try:
        return keeper.run()
    finally:
        keeper.remove_socket()
