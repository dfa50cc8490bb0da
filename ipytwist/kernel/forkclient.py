"""The service's end of the fork server (prototype, issue 20; off unless
``IPYTWIST_FORK_SERVER=1``): started on first use, asked to fork a keeper on a socket
and secret the service made, started again on the next request once it has died.  A
request it cannot take is refused here at once, and the caller starts the keeper as
before (``worker/forkserver.py``)."""

from __future__ import annotations

import array
import json
import os
import resource
import socket
import sys

from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from ..worker.forkserver import FORK_FD_ENV
from .process import ProcessReactor

__all__ = ["FORK_ENV", "ForkServer", "fork_server_wanted"]

#: ``1`` starts keepers through a fork server.
FORK_ENV = "IPYTWIST_FORK_SERVER"
#: Limits a kernel gets from the service at its start, not from the server's.
RLIMITS: tuple[str, ...] = ("RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE")
RLIMITS += ("RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_STACK", "RLIMIT_MEMLOCK")


#: Not ``-m``: the kernels must find the server's module under its own name.
ENTRY = "import sys; from ipytwist.worker.forkserver import main; sys.exit(main())"


def fork_server_wanted() -> bool:
    """The environment asks for a fork server, and this system can fork safely."""
    return os.environ.get(FORK_ENV, "0") == "1" and hasattr(os, "fork")


class _ServerProcess(ProcessProtocol):
    def __init__(self, owner: ForkServer) -> None:
        self.owner = owner

    def connectionMade(self) -> None:
        if self.transport is not None:
            self.transport.closeStdin()

    def processEnded(self, reason: Failure) -> None:
        self.owner.ended(self)


class ForkServer:
    """One fork server for this service, (re)started when a request needs it."""

    def __init__(self, reactor: ProcessReactor) -> None:
        self.reactor = reactor
        self.sock: socket.socket | None = None
        self.process: _ServerProcess | None = None
        #: How many times a server was started (a test counts restarts).
        self.starts = 0

    def prestart(self) -> None:
        """Start the server now, so that the first kernel does not wait for its imports."""
        if self.sock is None:
            self._start()

    def _start(self) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.set_inheritable(False)
        env = dict(os.environ)
        env[FORK_FD_ENV] = str(theirs.fileno())
        env.pop("PYTHONHASHSEED", None)  # each server start draws its own
        self.process = _ServerProcess(self)
        self.reactor.spawnProcess(
            self.process,
            sys.executable,
            [sys.executable, "-c", ENTRY],
            env=env,
            childFDs={0: "w", 1: 1, 2: 2, theirs.fileno(): theirs.fileno()},
        )
        theirs.close()
        ours.setblocking(False)
        self.sock = ours
        self.starts += 1
        return ours

    def fork(self, env: dict[str, str], listen_fd: int, secret_fd: int) -> bool:
        """Ask for a keeper on ``listen_fd`` with its secret on ``secret_fd`` (both stay
        the caller's to close); False if the server cannot take it now."""
        request = {"env": env, "cwd": os.getcwd(), "umask": _umask(), "rlimits": _rlimits()}
        fds = array.array("i", [listen_fd, secret_fd])
        try:
            sock = self.sock or self._start()
            sock.sendmsg([json.dumps(request).encode()], [_rights(fds)])
        except OSError:
            self.close()
            return False
        return True

    def ended(self, process: _ServerProcess) -> None:
        """The server died: the next request starts another."""
        if process is self.process:
            self.close()

    def close(self) -> None:
        """Let this server go (it ends on the socket's EOF)."""
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.process = None


def _rights(fds: array.array[int]) -> tuple[int, int, bytes]:
    return (socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())


def _umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _rlimits() -> dict[str, tuple[int, int]]:
    return {
        name: resource.getrlimit(getattr(resource, name))
        for name in RLIMITS
        if hasattr(resource, name)
    }
