"""Starting and talking to a worker process: the provisioner and the pipe protocol."""

from __future__ import annotations

import fcntl
import os
import secrets
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, AnyStr, Protocol, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.interfaces import (
    IDelayedCall,
    IProcessProtocol,
    IProcessTransport,
    IReactorTime,
    IReadDescriptor,
)
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..framing import FramingError, RecordDecoder, record_parts
from ..pipesync import PipeSync
from ..worker import EVENT_FD, REQUEST_FD, SYNC_ENV, sync_marker
from .pipefeed import PipeFeeder, Writer
from .supervisor import WorkerListener

OUTPUT_PIPES = {1: "stdout", 2: "stderr"}
#: After a read of an output pipe, leave that pipe alone this long so the worker's
#: next writes pile up in it and arrive in one read.  Without the pause a loop of
#: ``print`` makes the kernel wake (and the worker pay a wakeup) for every line;
#: the output coalescer merges output within the same window anyway.
PIPE_READ_PAUSE = 0.01
#: Stream pipes are enlarged to this (Linux), so the worker rarely blocks meanwhile.
OUTPUT_PIPE_BYTES = 1 << 20
#: Most bytes read from one output pipe in one reactor turn: a flood on one kernel
#: leaves the reactor free for the others between slices.
READ_SLICE_BYTES = 64 * 1024
#: Most bytes read from one output pipe when an event arrives.  Everything the worker
#: wrote before the event's sync marker is in the pipe, and a pipe holds no more
#: than its capacity, so this always reaches the marker.
EVENT_DRAIN_BYTES = OUTPUT_PIPE_BYTES + (64 << 10)
_F_SETPIPE_SZ = 1031
#: The environment variable that may carry the service's access token.
TOKEN_ENV = "IPYTWIST_TOKEN"


def describe_exit(reason: Failure) -> str:
    """How a worker ended, as a phrase for the kernel's notice (``exited with status 1``)."""
    value = reason.value
    if isinstance(value, ProcessDone):
        return "exited with status 0"
    if isinstance(value, ProcessTerminated):
        if value.signal is not None:
            try:
                name = signal.Signals(value.signal).name
            except ValueError:
                name = f"signal {value.signal}"
            return f"was killed by signal {value.signal} ({name})"
        return f"exited with status {value.exitCode}"
    return f"ended ({reason.getErrorMessage()})"


class Clock(Protocol):
    """What schedules the pauses between reads of the output pipes (IReactorTime)."""

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: object, **kwargs: object
    ) -> IDelayedCall:
        """IReactorTime: call ``callable`` in ``delay`` seconds."""


class _Pipe(Protocol):
    """One of a child process's pipes as Twisted's process transport holds them (its
    ``pipes``, which IProcessTransport does not declare): a reader or a writer."""

    def fileno(self) -> int: ...

    def startReading(self) -> None: ...

    def stopReading(self) -> None: ...


class WorkerProcess(ProcessProtocol):
    """The kernel's end of one worker: records in, records and raw output out."""

    log = Logger()

    def __init__(
        self, listener: WorkerListener, sync_token: str = "", clock: Clock | None = None
    ) -> None:
        self.listener = listener
        #: Orders stream output against events (the worker was given ``sync_token``).
        self.sync = PipeSync(sync_marker(sync_token) if sync_token else b"", listener.worker_output)
        self.decoder = RecordDecoder()
        self._feeder: PipeFeeder | None = None
        self.pid: int | None = None
        self.ended: Deferred[str] = Deferred()
        self.alive = False
        #: Schedules the pauses between reads; None reads output pipes as data arrives.
        self.clock = clock
        self._paused: set[int] = set()
        self._group_killed = False
        #: The kernel's output gate is closed: leave the output pipes alone.
        self._gated = False

    # -- ProcessProtocol ----------------------------------------------------

    @property
    def child(self) -> IProcessTransport:
        """The worker's process transport, there from ``connectionMade`` on."""
        if self.transport is None:
            raise RuntimeError("the worker process has not started")
        return self.transport

    def connectionMade(self) -> None:
        """Twisted: the worker process started; close its stdin, enlarge its pipes."""
        self.pid = self.child.pid
        self.alive = True
        self.child.closeChildFD(0)  # user code reading sys.stdin sees EOF
        if self.clock is not None and sys.platform.startswith("linux"):
            for pipe in filter(None, map(self._pipe, OUTPUT_PIPES)):
                try:
                    fcntl.fcntl(pipe.fileno(), _F_SETPIPE_SZ, OUTPUT_PIPE_BYTES)
                except OSError:
                    pass  # too big for this system: the default size works, a bit slower

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        """Twisted: bytes from the worker on ``childFD`` (events or output)."""
        if childFD == EVENT_FD:
            try:
                events = self.decoder.feed(data)
            except FramingError as e:
                self.log.error(
                    "worker {pid}: corrupt event pipe ({why}); killing it", pid=self.pid, why=str(e)
                )
                self.kill()
                return
            for event in events:
                # Whatever the worker wrote to fd 1/2 before this event comes first.
                self.drain_output()
                self.listener.worker_event(event)
                self.sync.event_delivered()
        elif childFD in OUTPUT_PIPES:
            self.sync.output(OUTPUT_PIPES[childFD], data)
            self._pause_pipe(childFD)

    def _pipe(self, fd: int) -> _Pipe | None:
        """Twisted's reader or writer for the child's ``fd``; None once it is closed."""
        pipes: dict[int, _Pipe] = getattr(self.transport, "pipes", None) or {}
        return pipes.get(fd)

    def _pause_pipe(self, fd: int) -> None:
        if self.clock is None or fd in self._paused:
            return
        reader = self._pipe(fd)
        if reader is None:
            return
        reader.stopReading()
        self._paused.add(fd)
        self.clock.callLater(PIPE_READ_PAUSE, self._resume_pipe, fd)

    def _resume_pipe(self, fd: int) -> None:
        self._paused.discard(fd)
        reader = self._pipe(fd)
        if reader is None or self._gated:
            return  # the pipe was closed meanwhile, or resume_output() restarts it
        got = self._drain_pipe(fd, OUTPUT_PIPES[fd], READ_SLICE_BYTES)
        if got >= READ_SLICE_BYTES and self.clock is not None:  # (a clock paused it)
            # More is waiting: the next slice on the next reactor turn.
            reader.stopReading()
            self._paused.add(fd)
            self.clock.callLater(0, self._resume_pipe, fd)
        elif got:
            self._pause_pipe(fd)  # still writing: keep collecting
        else:
            reader.startReading()

    # -- the output gate (see ipytwist.kernel.flow) ---------------------------

    def pause_output(self) -> None:
        """Stop reading output and events: the pipes fill and user code blocks."""
        if self._gated:
            return
        self._gated = True
        for fd in (*OUTPUT_PIPES, EVENT_FD):
            reader = self._pipe(fd)
            if reader is not None:
                reader.stopReading()

    def resume_output(self) -> None:
        """Read output and events again (the output gate opened)."""
        if not self._gated:
            return
        self._gated = False
        for fd in (*OUTPUT_PIPES, EVENT_FD):
            reader = self._pipe(fd)
            if reader is not None and fd not in self._paused:
                reader.startReading()

    def processExited(self, reason: Failure) -> None:
        """The worker is gone.  Its death is known now, not when its pipes close: a
        background child of user code may hold them open for as long as it lives."""
        self.alive = False
        self.kill_group()  # user code's children end with their interpreter
        # From now on the group's id may name another process (pid reuse): never again.
        self._group_killed = True
        self._read_events_left()
        self.drain_output()
        for fd in (*OUTPUT_PIPES, EVENT_FD, REQUEST_FD):
            if self._pipe(fd) is not None:
                self.child.closeChildFD(fd)  # processEnded follows

    def _read_events_left(self) -> None:
        """Take in the events the worker wrote before it died (a last reply)."""
        reader = self._pipe(EVENT_FD)
        if reader is None:
            return
        total = 0
        while total < EVENT_DRAIN_BYTES:
            try:
                data = os.read(reader.fileno(), 1 << 16)
            except (BlockingIOError, InterruptedError, OSError):
                return
            if not data:
                return
            total += len(data)
            self.childDataReceived(EVENT_FD, data)

    def processEnded(self, reason: Failure) -> None:
        """Twisted: the worker and its pipes are gone; report how it ended."""
        self.alive = False
        self.drain_output()
        self.sync.flush()
        description = describe_exit(reason)
        self.listener.worker_exited(self, description)
        self.ended.callback(description)

    # -- commands -----------------------------------------------------------

    def send(self, record: dict[str, Any]) -> None:
        """Write a request record to the worker (dropped once it is dead)."""
        if not self.alive:
            return
        parts = record_parts(record)
        writer = self._pipe(REQUEST_FD)
        if writer is None or not hasattr(writer, "registerProducer"):
            self.child.writeToChild(REQUEST_FD, b"".join(parts))
            return
        if self._feeder is None:
            self._feeder = PipeFeeder(cast(Writer, writer))
        self._feeder.write(parts)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the worker while it runs."""
        if self.alive and self.pid:
            try:
                os.kill(self.pid, signum)
            except (ProcessLookupError, PermissionError):
                pass

    def kill(self) -> None:
        """SIGKILL to the worker and every process user code started in its group."""
        self.kill_group()
        try:
            self.child.signalProcess("KILL")
        except (ProcessExitedAlready, RuntimeError, OSError):
            pass  # gone already, or never started

    def kill_group(self) -> None:
        """SIGKILL every process in the worker's process group."""
        # The worker makes itself the leader of a process group named by its pid.
        if self.pid and not self._group_killed:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, OSError):
                pass

    def stop(self, reactor: IReactorTime, grace: float = 2.0) -> Deferred[str]:
        """Ask the worker to finish (EOF on its request pipe); kill it after ``grace``."""
        if not self.alive:
            return succeed("not running")
        self.send({"req": "shutdown"})
        try:
            self.child.closeChildFD(REQUEST_FD)
        except (OSError, KeyError) as e:  # already closed: the worker sees EOF anyway
            self.log.debug("request pipe already closed ({e})", e=type(e).__name__)
        timer = reactor.callLater(grace, self.kill)
        d: Deferred[str] = Deferred()

        def done(result: str | Failure) -> str | Failure:
            if timer.active():
                timer.cancel()
            d.callback(result)
            return result

        self.ended.addBoth(done)
        return d

    def drain_output(self, limit: int | None = EVENT_DRAIN_BYTES) -> None:
        """Read what is already waiting on the worker's stdout/stderr pipes."""
        for fd, name in OUTPUT_PIPES.items():
            self._drain_pipe(fd, name, limit)

    def _drain_pipe(self, fd: int, name: str, limit: int | None = None) -> int:
        """Read what is waiting on one output pipe, up to about ``limit`` bytes;
        return how many bytes that was."""
        reader = self._pipe(fd)
        if reader is None:
            return 0
        try:
            fileno = reader.fileno()
        except Exception:
            return 0
        total = 0
        while fileno >= 0 and (limit is None or total < limit):
            try:
                data = os.read(fileno, 1 << 16)
            except BlockingIOError:
                self.sync.pipe_empty(name)
                break
            except (InterruptedError, OSError):
                break
            if not data:
                break
            total += len(data)
            self.sync.output(name, data)
        return total


class ProcessReactor(Clock, Protocol):
    """The reactor as local workers need it: IReactorProcess and IReactorTime in one."""

    def spawnProcess(
        self,
        processProtocol: IProcessProtocol,
        executable: bytes | str,
        args: Sequence[bytes | str],
        env: Mapping[AnyStr, AnyStr] | None = None,
        path: None | bytes | str = None,
        uid: int | None = None,
        gid: int | None = None,
        usePTY: bool = False,
        childFDs: Mapping[int, int | str] | None = None,
    ) -> IProcessTransport:
        """IReactorProcess: start a child process that talks to ``processProtocol``."""

    def seconds(self) -> float:
        """IReactorTime: the current time in seconds."""

    def callWhenRunning(self, callable: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """IReactorCore: call once the reactor runs (now, if it does)."""

    def addReader(self, reader: IReadDescriptor) -> None:
        """IReactorFDSet: call ``reader.doRead`` whenever its descriptor is readable."""

    def removeReader(self, reader: IReadDescriptor) -> None:
        """IReactorFDSet: stop watching ``reader``."""


class LocalProvisioner:
    """Start workers as child processes of this one (``python -m ipytwist.worker``)."""

    def __init__(
        self,
        reactor: ProcessReactor,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.reactor = reactor
        self.python = python
        self.env = env
        self.cwd = cwd

    def start(self, listener: WorkerListener) -> WorkerProcess:
        """Spawn a worker process that reports to ``listener``."""
        token = secrets.token_hex(16)
        proto = WorkerProcess(listener, sync_token=token, clock=self.reactor)
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONIOENCODING", "utf-8")
        env.pop(TOKEN_ENV, None)  # the service's token is not user code's business
        env[SYNC_ENV] = token
        self.reactor.spawnProcess(
            proto,
            self.python,
            [self.python, "-m", "ipytwist.worker"],
            env=env,
            path=self.cwd,
            childFDs={0: "w", 1: "r", 2: "r", REQUEST_FD: "w", EVENT_FD: "r"},
        )
        return proto
