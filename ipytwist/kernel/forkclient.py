"""The service's end of the fork server (docs/fork-server.md): started with the service,
asked to fork a keeper on a socket and secret the service made, started again on the
next request once it has died.  A request it cannot take (dead, or no answer within
:data:`ANSWER_TIMEOUT`: then it is killed, so it never forks that keeper late) is
refused here, and the caller starts the keeper as before (``worker/forkserver.py``)."""

from __future__ import annotations

import array
import json
import os
import resource
import select
import signal
import socket
import sys
from collections.abc import Callable

from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from ..worker.forkserver import FORK_FD_ENV, PID
from .process import ProcessReactor

__all__ = ["ANSWER_TIMEOUT", "ForkServer", "ForkedKeeper", "fork_server_usable"]

#: Seconds the service waits for the server's answer (a fork takes a few ms; a server
#: that takes longer is wedged, and is replaced).
ANSWER_TIMEOUT = 2.0
#: Limits a kernel gets from the service at its start, not from the server's.
RLIMITS: tuple[str, ...] = ("RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE")
RLIMITS += ("RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_STACK", "RLIMIT_MEMLOCK")


#: Not ``-m``: the kernels must find the server's module under its own name.
ENTRY = "import sys; from ipytwist.worker.forkserver import main; sys.exit(main())"


def fork_server_usable() -> bool:
    """This system can fork a process that has imported IPython (POSIX ``fork``)."""
    return hasattr(os, "fork") and hasattr(socket, "SOCK_SEQPACKET")


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

    def fork(self, env: dict[str, str], listen_fd: int, secret_fd: int) -> ForkedKeeper | None:
        """Ask for a keeper on ``listen_fd`` with its secret on ``secret_fd`` (both stay
        the caller's to close): the keeper, or None if the server cannot take it now."""
        request = {"env": env, "cwd": os.getcwd(), "umask": _umask(), "rlimits": _rlimits()}
        fds = array.array("i", [listen_fd, secret_fd])
        try:
            sock = self.sock or self._start()
            sock.sendmsg([json.dumps(request).encode()], [_rights(fds)])
            return ForkedKeeper(self._answer(sock))
        except OSError:
            self.close()
            return None

    def _answer(self, sock: socket.socket) -> int:
        """The keeper's pid, as the server answers (the reactor waits for it: a fork
        takes about as long as ``spawnProcess``'s own)."""
        if not select.select([sock], [], [], ANSWER_TIMEOUT)[0]:
            self._kill()
            raise OSError("the fork server did not answer")
        answer = sock.recv(PID.size)
        if len(answer) != PID.size:
            raise OSError("the fork server ended")
        pid: int = PID.unpack(answer)[0]
        return pid

    def _kill(self) -> None:
        process = self.process
        if process is not None and process.transport is not None:
            try:
                process.transport.signalProcess("KILL")
            except Exception:  # it has just ended: nothing to kill
                pass

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


class ForkedKeeper:
    """A keeper the fork server forked: not this service's child, so its end is not
    reported as a child's; a pidfd (where there is one) tells it instead, and carries
    the signals, so none reaches a later process with its pid."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._pidfd: int | None = None
        try:
            self._pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pass  # no pidfd here (or it has ended already): the pid alone
        #: Whether its end is told (by the pidfd); else the link's end is its.
        self.reports_end = self._pidfd is not None

    @property
    def pid(self) -> int | None:
        """The keeper's pid."""
        return self._pid

    def watch(self, reactor: ProcessReactor, ended: Callable[[], None]) -> None:
        """Call ``ended`` once the keeper has ended (its pidfd turns readable)."""
        if self._pidfd is not None:
            reactor.addReader(_PidfdReader(reactor, self._pidfd, ended))

    def kill(self) -> None:
        """SIGTERM to the keeper: it ends its interpreter's group, then itself."""
        try:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signal.SIGTERM)
            else:
                os.kill(self._pid, signal.SIGTERM)
        except OSError:
            pass  # gone already


@implementer(IReadDescriptor)
class _PidfdReader:
    """A pidfd on the reactor: readable once its process has ended; then closed."""

    def __init__(self, reactor: ProcessReactor, fd: int, ended: Callable[[], None]) -> None:
        self.reactor, self.fd, self.ended = reactor, fd, ended

    def fileno(self) -> int:
        return self.fd

    def doRead(self) -> None:
        self.reactor.removeReader(self)
        os.close(self.fd)
        self.fd = -1
        self.ended()

    def connectionLost(self, reason: Failure) -> None:
        """Twisted: the reactor lets it go (at shutdown)."""

    def logPrefix(self) -> str:
        return "pidfd"
