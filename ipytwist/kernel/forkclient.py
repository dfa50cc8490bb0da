"""The service's end of the fork server (docs/fork-server.md): started with the service,
asked to fork a keeper on a socket and secret the service made, started again on the
next request once it has died.  A request it does not take (it died, or gave no answer
within :data:`ANSWER_TIMEOUT`: then it is killed, so it never forks that keeper late) is
refused, and the caller starts the keeper as before (``worker/forkserver.py``)."""

from __future__ import annotations

import array
import json
import os
import resource
import signal
import socket
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.interfaces import IDelayedCall, IReadDescriptor
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..worker.forkserver import FORK_FD_ENV, PID
from .process import ProcessReactor

__all__ = ["ANSWER_TIMEOUT", "START_TIMEOUT", "ForkServer", "ForkedKeeper", "fork_server_usable"]

#: Seconds the service waits for the server's answer (a fork takes a few ms; a server
#: that takes longer is wedged, and is replaced) ...
ANSWER_TIMEOUT = 2.0
#: ... and for its first answer (it imports IPython first: a second, more when loaded).
START_TIMEOUT = 30.0
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


@dataclass
class _Asked:
    """A request sent and not answered yet, with copies of its descriptors (the keeper
    is started with them as before if the server never answers)."""

    listen: int
    secret: int
    forked: Callable[[ForkedKeeper], None]
    refused: Callable[[int, int], None]

    def close(self) -> None:
        os.close(self.listen)
        os.close(self.secret)


class ForkServer:
    """One fork server for this service, (re)started when a request needs it.  Its
    answers are read by the reactor, never waited for: a server still importing IPython
    (at the service's start) delays the kernels asked for meanwhile, not the service."""

    log = Logger()

    def __init__(self, reactor: ProcessReactor) -> None:
        self.reactor = reactor
        self.sock: socket.socket | None = None
        self.process: _ServerProcess | None = None
        #: How many times a server was started (a test counts restarts).
        self.starts = 0
        #: Whether this server has answered yet (it has imported what it preloads).
        self.answered = False
        self._asked: deque[_Asked] = deque()
        self._reader: _OnRead | None = None
        self._timer: IDelayedCall | None = None

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
        self.sock, self.answered = ours, False
        self._reader = _OnRead(ours.fileno(), self._readable)
        self.reactor.addReader(self._reader)
        self.starts += 1
        return ours

    def fork(
        self,
        env: dict[str, str],
        fds: tuple[int, int],
        forked: Callable[[ForkedKeeper], None],
        refused: Callable[[int, int], None],
    ) -> bool:
        """Ask for a keeper on the listening socket and secret ``fds`` (they stay the
        caller's to close): ``forked(keeper)`` once the server answers; if it never does
        (it dies, or is silent too long), ``refused(listen, secret)`` with copies of them.
        False if the request could not even be sent (nothing will be called)."""
        request = {"env": env, "cwd": os.getcwd(), "umask": _umask(), "rlimits": _rlimits()}
        try:
            sock = self.sock or self._start()
            sock.sendmsg([json.dumps(request).encode()], [_rights(array.array("i", fds))])
        except OSError:
            self._done_with()
            return False
        self._asked.append(_Asked(os.dup(fds[0]), os.dup(fds[1]), forked, refused))
        self._arm()
        return True

    def _arm(self) -> None:
        if self._timer is None and self._asked:
            timeout = ANSWER_TIMEOUT if self.answered else START_TIMEOUT
            self._timer = self.reactor.callLater(timeout, self._silent)

    def _disarm(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _silent(self) -> None:
        self._timer = None
        self.log.warn("fork server: no answer in time; it is replaced")
        self._kill()
        self._done_with()

    def _readable(self) -> None:
        """Answers, each the pid of the keeper forked for the oldest request."""
        while self.sock is not None:
            try:
                answer = self.sock.recv(PID.size)
            except BlockingIOError:
                return
            except OSError:
                answer = b""
            if len(answer) != PID.size or not self._asked:
                self._done_with()  # it ended (or said what it was not asked)
                return
            self.answered = True
            self._disarm()
            asked = self._asked.popleft()
            asked.close()
            asked.forked(ForkedKeeper(PID.unpack(answer)[0]))
            self._arm()

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
            self._done_with()

    def _done_with(self) -> None:
        """This server is let go; what it was asked and has not answered is refused (so
        the caller starts those keepers as before)."""
        self._disarm()
        self.close()
        asked, self._asked = self._asked, deque()
        for each in asked:
            try:
                each.refused(each.listen, each.secret)
            finally:
                each.close()

    def close(self) -> None:
        """Let this server go (it ends on the socket's EOF)."""
        if self._reader is not None:
            self.reactor.removeReader(self._reader)
        if self.sock is not None:
            self.sock.close()
        self.sock, self._reader, self.process = None, None, None


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
        pidfd = self._pidfd
        if pidfd is None:
            return

        def readable() -> None:
            reactor.removeReader(reader)
            os.close(pidfd)
            ended()

        reader = _OnRead(pidfd, readable)
        reactor.addReader(reader)

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
class _OnRead:
    """A descriptor on the reactor: ``on_read()`` whenever it is readable."""

    def __init__(self, fd: int, on_read: Callable[[], None]) -> None:
        self.fd, self.on_read = fd, on_read

    def fileno(self) -> int:
        return self.fd

    def doRead(self) -> None:
        self.on_read()

    def connectionLost(self, reason: Failure) -> None:
        """Twisted: the reactor lets it go (at shutdown)."""

    def logPrefix(self) -> str:
        return "fork server"
