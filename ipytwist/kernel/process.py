"""Starting and talking to a worker process: the provisioner and the pipe protocol."""

from __future__ import annotations

import os
import secrets
import signal
import sys
from collections.abc import Mapping
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..framing import FramingError, RecordDecoder, encode_record
from ..worker import EVENT_FD, REQUEST_FD, SYNC_ENV, sync_marker
from .streamsync import StreamSync

STREAM_NAMES = {1: "stdout", 2: "stderr"}


class WorkerListener(Protocol):
    """What a :class:`WorkerProcess` reports to (the kernel)."""

    def worker_output(self, name: str, data: bytes) -> None: ...
    def worker_event(self, event: dict[str, Any]) -> None: ...
    def worker_exited(self, worker: WorkerProcess, description: str) -> None: ...


def describe_exit(reason: Failure) -> str:
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


class WorkerProcess(ProcessProtocol):
    """The kernel's end of one worker: records in, records and raw output out."""

    log = Logger()

    def __init__(self, listener: WorkerListener, sync_token: str = "") -> None:
        self.listener = listener
        #: Orders stream output against events (the worker was given ``sync_token``).
        self.sync = StreamSync(sync_marker(sync_token) if sync_token else b"",
                               listener.worker_output)
        self.decoder = RecordDecoder()
        self.pid: int | None = None
        self.ended: Deferred[str] = Deferred()
        self.alive = False

    # -- ProcessProtocol ----------------------------------------------------

    def connectionMade(self) -> None:
        self.pid = self.transport.pid
        self.alive = True
        self.transport.closeChildFD(0)  # user code reading sys.stdin sees EOF

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == EVENT_FD:
            try:
                events = self.decoder.feed(data)
            except FramingError as e:
                self.log.error("worker {pid}: corrupt event pipe ({why}); killing it",
                               pid=self.pid, why=str(e))
                self.kill()
                return
            for event in events:
                # Whatever the worker wrote to fd 1/2 before this event comes first.
                self.drain_output()
                self.listener.worker_event(event)
                self.sync.event_delivered()
        elif childFD in STREAM_NAMES:
            self.sync.output(STREAM_NAMES[childFD], data)

    def processEnded(self, reason: Failure) -> None:
        self.alive = False
        self.drain_output()
        self.sync.flush()
        description = describe_exit(reason)
        self.listener.worker_exited(self, description)
        self.ended.callback(description)

    # -- commands -----------------------------------------------------------

    def send(self, record: dict[str, Any]) -> None:
        if self.alive:
            self.transport.writeToChild(REQUEST_FD, encode_record(record))

    def signal(self, signum: int) -> None:
        if self.alive and self.pid:
            try:
                os.kill(self.pid, signum)
            except (ProcessLookupError, PermissionError):
                pass

    def kill(self) -> None:
        try:
            self.transport.signalProcess("KILL")
        except (ProcessExitedAlready, AttributeError, OSError):
            pass

    def stop(self, reactor: Any, grace: float = 2.0) -> Deferred:
        """Ask the worker to finish (EOF on its request pipe); kill it after ``grace``."""
        if not self.alive:
            return succeed("not running")
        self.send({"req": "shutdown"})
        try:
            self.transport.closeChildFD(REQUEST_FD)
        except Exception:
            pass
        timer = reactor.callLater(grace, self.kill)
        d: Deferred = Deferred()

        def done(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            d.callback(result)
            return result

        self.ended.addBoth(done)
        return d

    def drain_output(self) -> None:
        """Read whatever is already waiting on the worker's stdout/stderr pipes."""
        pipes = getattr(self.transport, "pipes", None) or {}
        for fd, name in STREAM_NAMES.items():
            reader = pipes.get(fd)
            if reader is None:
                continue
            try:
                fileno = reader.fileno()
            except Exception:
                continue
            while fileno >= 0:
                try:
                    data = os.read(fileno, 1 << 16)
                except BlockingIOError:
                    self.sync.pipe_empty(name)
                    break
                except (InterruptedError, OSError):
                    break
                if not data:
                    break
                self.sync.output(name, data)


class LocalProvisioner:
    """Start workers as child processes of this one (``python -m ipytwist.worker``)."""

    def __init__(
        self,
        reactor: Any,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.reactor = reactor
        self.python = python
        self.env = env
        self.cwd = cwd

    def start(self, listener: WorkerListener) -> WorkerProcess:
        token = secrets.token_hex(16)
        proto = WorkerProcess(listener, sync_token=token)
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONIOENCODING", "utf-8")
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
