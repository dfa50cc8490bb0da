"""Twisted's side of a worker process, faked: a reactor whose ``spawnProcess`` records the
call and connects a fake process transport, whose pipes are real ``os.pipe`` ends where
the protocol reads them itself; and a listener that records what the worker reports."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.error import ProcessExitedAlready
from twisted.internet.testing import MemoryReactorClock

from ipytwist.kernel.process import WorkerProcess
from ipytwist.worker import EVENT_FD, REQUEST_FD

PID = 99_999_001  # above any pid_max: even a stray signal could reach no process


class Listener:
    """The kernel's side: everything the worker reports, in order."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []

    def worker_output(self, name: str, data: bytes) -> None:
        if self.log and self.log[-1][0] == name:  # chunking is not part of the contract
            self.log[-1] = (name, self.log[-1][1] + data)
        else:
            self.log.append((name, data))

    def worker_event(self, event: dict[str, Any]) -> None:
        self.log.append(("event", event))

    def worker_exited(self, worker: Any, description: str) -> None:
        self.log.append(("exited", description))


class FakePipe:
    """Twisted's reader/writer of one child fd, over a real pipe end (or none)."""

    def __init__(self, fd: int = -1) -> None:
        self.fd = fd
        self.reading = True

    def fileno(self) -> int:
        return self.fd

    def stopReading(self) -> None:
        self.reading = False

    def startReading(self) -> None:
        self.reading = True


class FakePipeWriter(FakePipe):
    """Twisted's writer of a child's pipe, over a real pipe end: what was queued with
    ``write`` (Twisted's ``_tempDataBuffer``) until :meth:`drain`, and its producer."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd)
        self.dataBuffer = b""
        self._tempDataBuffer: list[bytes] = []
        self.producer: Any = None
        self.queued: list[bytes] = []

    def write(self, data: bytes) -> None:
        assert type(data) is bytes  # Twisted takes nothing else
        self._tempDataBuffer.append(data)
        self.queued.append(data)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        assert self.producer is None and not streaming
        self.producer = producer
        producer.resumeProducing()  # as Twisted does for a pull producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def drain(self) -> None:
        """The pipe took everything queued; Twisted asks the producer for more."""
        self._tempDataBuffer.clear()
        if self.producer is not None:
            self.producer.resumeProducing()


class FakeProcess:
    """What ``spawnProcess`` returns: records what the protocol does to the process."""

    def __init__(self, proto: Any, pipes: dict[int, FakePipe]) -> None:
        self.proto = proto
        self.pid = PID
        self.pipes = pipes
        self.closed: list[int] = []
        self.written: list[tuple[int, bytes]] = []
        self.signals: list[str] = []
        self.exited = False

    def closeChildFD(self, fd: int) -> None:
        self.closed.append(fd)
        self.pipes.pop(fd, None)

    def writeToChild(self, fd: int, data: bytes) -> None:
        self.written.append((fd, data))

    def signalProcess(self, sig: str) -> None:
        if self.exited:
            raise ProcessExitedAlready()
        self.signals.append(sig)


class FakeReactor(MemoryReactorClock):
    """A clock whose spawnProcess records the call and connects a FakeProcess."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[dict[str, Any]] = []
        self.fds: list[int] = []
        #: child fd -> our (read end, write end) of a real pipe behind it
        self.ends: dict[int, tuple[int, int]] = {}

    def _pipe(self) -> tuple[int, int]:
        r, w = os.pipe()
        os.set_blocking(r, False)
        self.fds += [r, w]
        return r, w

    def spawnProcess(  # type: ignore[override]
        self,
        processProtocol: Any,
        executable: Any,
        args: Any = (),
        env: Any = None,
        path: Any = None,
        uid: Any = None,
        gid: Any = None,
        usePTY: Any = False,
        childFDs: Any = None,
    ) -> FakeProcess:
        self.spawned.append(
            {"proto": processProtocol, "executable": executable, "args": list(args), "env": env}
            | {"path": path, "childFDs": dict(childFDs or {})}
        )
        pipes = {0: FakePipe(), REQUEST_FD: FakePipe()}
        for fd in (1, 2, EVENT_FD):
            self.ends[fd] = self._pipe()
            pipes[fd] = FakePipe(self.ends[fd][0])
        process = FakeProcess(processProtocol, pipes)
        processProtocol.makeConnection(process)
        return process

    def child_writes(self, fd: int, data: bytes) -> None:
        """The worker writes ``data`` to its fd (it waits in the pipe, unread)."""
        os.write(self.ends[fd][1], data)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)


#: What the ``spawned`` fixture gives: the protocol, its process, the listener, the sync
#: marker.
Spawned = tuple[WorkerProcess, FakeProcess, Listener, bytes]
