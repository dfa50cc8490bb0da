"""The state directory, held by one service at a time and known to be writable.

A service keeps its token in ``server.json`` and each kernel's connection file in
the state directory, and removes them when it stops (a token it made stays in
``token``, :mod:`.tokenfile`, read once the directory is held).  Two services on one
directory would overwrite each other's ``server.json`` and remove it under each
other, so a service holds an exclusive ``flock`` on ``ipytwist.lock`` there for
as long as it runs.  The kernel drops such a lock with the last descriptor of
the process that took it, so a service killed outright (SIGKILL) leaves none
behind.  (The lock file itself stays: removing it would let a third service
lock a new file while a second still waits on the old one.)

Holding it also proves the directory writable: the service writes its pid into
the lock file and a page into a file it then removes, so a read-only or full
directory stops the service at once, with one line, rather than half-starting.
:class:`ExitStatus`, the exit code of the service tree a refusal stops, lives here too.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorCore

__all__ = ["LOCK_NAME", "ExitStatus", "StateDirError", "StateDirLock", "StateDirTree"]

#: The lock file in the state directory.
LOCK_NAME = "ipytwist.lock"
#: The bytes written to prove the directory writable: what a connection file or
#: ``server.json`` takes, rounded up to a page.
PROBE_BYTES = 4096


class StateDirError(Exception):
    """The state directory cannot be held: its message is one line for the operator."""


class StateDirLock:
    """The exclusive hold of one state directory (see the module's docstring)."""

    def __init__(self, path: str, then: Callable[[], object] | None = None) -> None:
        self.path = path
        self.lock_path = os.path.join(path, LOCK_NAME)
        #: Called once the directory is held (to read what the service keeps there);
        #: a :class:`StateDirError` it raises lets the directory go and refuses.
        self.then = then
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this process holds the directory."""
        return self._fd is not None

    def acquire(self) -> None:
        """Make the directory (0700) if need be, lock it, and prove it writable; raise
        :class:`StateDirError` if another service holds it or it cannot be written."""
        if self._fd is not None:
            return
        try:
            os.makedirs(self.path, mode=0o700, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as e:
            raise self._unwritable(e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_pid(fd)
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise self._unwritable(e) from None
            raise StateDirError(
                f"the state directory {self.path} is in use by another ipytwist service"
                f"{f' (pid {holder})' if holder else ''}; give each service its own "
                "--state-dir"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            self._probe()
        except OSError as e:
            os.close(fd)
            raise self._unwritable(e) from None
        self._fd = fd
        if self.then is not None:
            try:
                self.then()
            except StateDirError:
                self.release()
                raise

    def release(self) -> None:
        """Let go of the directory (the lock file stays, see the module's docstring)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _probe(self) -> None:
        probe = os.path.join(self.path, f".probe-{os.getpid()}")
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            if os.write(fd, b"\n" * PROBE_BYTES) < PROBE_BYTES:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)

    def _unwritable(self, e: OSError) -> StateDirError:
        why = e.strerror or str(e)
        return StateDirError(f"the state directory {self.path} cannot be written: {why}")


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except (OSError, ValueError):
        return None


class StateDirTree(MultiService):
    """A service tree whose services start only once it holds its state directory.

    If it cannot (another service holds it, or it cannot be written), ``refused`` is
    called with the one-line reason, and of its services only ``always`` (the one
    that gives the process its exit status) starts and stops: nothing listens, no
    interpreter starts, and the other service's files are left alone.  Once every
    service has stopped, the directory is let go.
    """

    def __init__(
        self, lock: StateDirLock, refused: Callable[[str], object], always: IService
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # MultiService is not annotated
        self.lock = lock
        self.refused = refused
        self.always = always
        #: Why the directory could not be held (None: it is held).
        self.refusal: str | None = None

    def privilegedStartService(self) -> None:
        """Twisted: hold the state directory, then start as a MultiService does."""
        if self._hold():
            super().privilegedStartService()  # type: ignore[no-untyped-call]  # MultiService is not annotated

    def startService(self) -> None:
        """Twisted: start every service, or only ``always`` if refused."""
        if self._hold():
            super().startService()  # type: ignore[no-untyped-call]  # MultiService is not annotated
            return
        Service.startService(self)
        self.always.startService()

    def _hold(self) -> bool:
        """Whether the directory is held (taken now if need be); once refused, never."""
        if self.refusal is None and not self.lock.held:
            try:
                self.lock.acquire()
            except StateDirError as e:
                self.refusal = str(e)
                self.refused(self.refusal)
        return self.refusal is None

    def stopService(self) -> Deferred[Any]:
        """Twisted: stop the services that started, then let go of the directory."""
        if self.refusal is not None:
            Service.stopService(self)
            return maybeDeferred(self.always.stopService)
        d: Deferred[Any] = super().stopService()  # type: ignore[no-untyped-call]  # MultiService is not annotated

        def release(result: object) -> object:
            self.lock.release()
            return result

        return d.addBoth(release)


class ExitStatus(Service):
    """A clean shutdown on SIGTERM exits 0, as supervisors expect of a stopped service.

    twistd re-raises the signal that stopped the reactor (the process would end
    "killed by SIGTERM"); once every service has stopped, forget it.
    """

    def __init__(self, reactor: IReactorCore) -> None:
        self.reactor = reactor
        self.code = 0

    def startService(self) -> None:
        Service.startService(self)
        self.reactor.addSystemEventTrigger("after", "shutdown", self._clear)

    def fail(self, code: int) -> None:
        """Stop the service; the process exits with ``code`` once everything has stopped."""
        self.code = code
        self.reactor.callWhenRunning(self.reactor.stop)

    def _clear(self) -> None:
        if getattr(self.reactor, "_exitSignal", None) == signal.SIGTERM:
            # twistd re-raises the signal kept in this private attribute of the reactor.
            self.reactor._exitSignal = None  # type: ignore[attr-defined]  # no public API
        if self.code:
            # twistd has no exit status of its own to give: leave with ours.
            for file in (sys.stdout, sys.stderr):
                file.flush()
            os._exit(self.code)
