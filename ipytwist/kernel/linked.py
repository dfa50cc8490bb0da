"""Workers behind a keeper, over the worker link (docs/durable-kernels.md).

:class:`LinkProvisioner` starts ``python -m ipytwist.worker`` (which forks its
keeper) on a Unix socket it binds in its directory, and connects to it;
:class:`LinkedWorker` is the kernel's :class:`~ipytwist.kernel.supervisor.Worker`
on that connection.  The keeper has already put output and events in order, so
they go to the listener as they come.  The service's default;
``IPYTWIST_WORKER_LINK=pipes`` keeps the pipes (the standalone kernel keeps them
unless told ``socket``).  Not yet: re-adoption, the kernel's record file, a kernel
id for the handshake (a fresh id per worker for now), acks only once the log has
made items safe (they are acked as taken).
"""

from __future__ import annotations

import os
import secrets
import sys
from typing import Any, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import connectProtocol
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import ProcessProtocol, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..framing import FramingError, RecordDecoder, record_parts
from ..link.end import LinkEnd
from ..link.endpoint import LinkClientEndpoint
from ..link.wire import (
    LINK_WINDOW,
    Frame,
    Kind,
    LinkError,
    encode_frame,
    json_body,
    parse_json_body,
    parse_output,
)
from ..worker.keeper import (
    DIE_WITH_PARENT_ENV,
    KERNEL_ENV,
    LINK_FD_ENV,
    LINK_PATH_ENV,
    ORPHAN_ENV,
    SECRET_FD_ENV,
    prepare_link,
)
from .pipefeed import PipeFeeder, Writer
from .process import TOKEN_ENV, Clock, LocalProvisioner, ProcessReactor, describe_exit
from .supervisor import Provisioner, WorkerListener

__all__ = ["LINK_ENV", "LinkProvisioner", "LinkedWorker"]

#: ``socket`` starts workers behind keepers (the service's default), ``pipes`` as before.
LINK_ENV = "IPYTWIST_WORKER_LINK"
_NAMES = {1: "stdout", 2: "stderr"}
#: Acks wait this long for a request to ride on, or until this much was read.
ACK_DELAY = 0.02
ACK_BYTES = LINK_WINDOW // 4
#: No service re-adopts a keeper yet, so an orphan has nothing to wait for: it ends soon.
PROTOTYPE_ORPHAN = 5.0


class LinkedWorker(Protocol):
    """The service's end of one keeper's link."""

    log = Logger()

    def __init__(
        self, listener: WorkerListener, secret: bytes, kernel_id: str, clock: Clock
    ) -> None:
        self.listener = listener
        self.clock = clock
        self._unacked = 0
        self._ack_call: IDelayedCall | None = None
        self.end = LinkEnd(False, secret, kernel_id)
        self.ended: Deferred[str] = Deferred()
        self.alive = True
        self.keeper: KeeperProcess | None = None
        self._feeder: PipeFeeder | None = None

    @property
    def pid(self) -> int | None:
        """The interpreter's pid, as its keeper said in the handshake."""
        pid = self.end.peer_info.get("pid")
        return pid if isinstance(pid, int) else None

    def connectionMade(self) -> None:
        """Twisted: connected to the keeper; the handshake starts with its ``HELLO``."""
        self._write(self.end.connection_made())

    def dataReceived(self, data: bytes) -> None:
        """Twisted: bytes from the keeper."""
        try:
            write, frames = self.end.data_received(data)
        except LinkError as e:
            self.log.error("worker link: {why}; ending the worker", why=str(e))
            self.kill()
            return
        self._write(write)
        for frame in frames:
            self._take(frame)
        # Acks ride on the next request, or go out in a while, or at once past a quarter
        # of the window: an ack per read would wake the keeper once per read.
        self.end.acknowledge(self.end.inbound.taken)
        self._unacked += len(data)
        if self._unacked >= ACK_BYTES:
            self._send_ack()
        elif self._ack_call is None:
            self._ack_call = self.clock.callLater(ACK_DELAY, self._send_ack)

    def _send_ack(self) -> None:
        if self._ack_call is not None and self._ack_call.active():
            self._ack_call.cancel()
        self._ack_call = None
        self._unacked = 0
        if self.end.authenticated:
            self._write(encode_frame(Kind.ACK, 0, self.end.safe))

    def _take(self, frame: Frame) -> None:
        if frame.kind is Kind.OUTPUT:
            fd, data = parse_output(frame)
            self.listener.worker_output(_NAMES[fd], data)
        elif frame.kind is Kind.EVENT:
            try:
                records = RecordDecoder().feed(frame.body)
            except FramingError as e:
                self.log.error("worker link: corrupt event ({why})", why=str(e))
                return
            for record in records:
                self.listener.worker_event(record)
        elif frame.kind is Kind.EXITED:
            # Acked first: the keeper may end once it knows (the service may stop now).
            self._write(self.end.acknowledge(frame.seq))
            description = parse_json_body(frame).get("description")
            self._exited(str(description or "ended"))

    def _exited(self, description: str) -> None:
        if not self.alive:
            return
        self.alive = False
        self.listener.worker_exited(self, description)
        self.ended.callback(description)

    def connectionLost(self, reason: Failure | None = None) -> None:
        """Twisted: the link is gone (the keeper ended, or will be found by its end)."""
        self.end.connection_lost()

    def keeper_ended(self, reason: Failure) -> None:
        """The keeper process ended; without an ``EXITED``, so did the interpreter."""
        self._exited(describe_exit(reason))

    def _write(self, data: bytes | list[bytes | memoryview]) -> None:
        """Everything goes through one feeder, in order: a large request is handed to the
        transport a piece at a time, never joined (as on the pipes)."""
        if not data or self.transport is None:
            return
        if self._feeder is None:
            self._feeder = PipeFeeder(cast(Writer, self.transport))
        self._feeder.write([data] if isinstance(data, bytes) else data)

    # -- the Worker interface ---------------------------------------------------

    def send(self, record: dict[str, Any]) -> None:
        """A request record for the interpreter (kept until the keeper acks it)."""
        if self.alive:
            self._write(self.end.send(Kind.REQUEST, tuple(record_parts(record))))

    def _control(self, **control: Any) -> None:
        if self.alive:
            self._write(self.end.send(Kind.CONTROL, json_body(control)))

    def signal(self, signum: int) -> None:
        """Deliver ``signum`` to the interpreter, through its keeper."""
        self._control(do="signal", signal=int(signum))

    def kill(self) -> None:
        """SIGKILL the interpreter's group (through the keeper, which then ends)."""
        self._control(do="kill")
        if self.keeper is not None:
            self.keeper.kill()

    def stop(self, reactor: IReactorTime, grace: float = 2.0) -> Deferred[Any]:
        """Ask the interpreter to finish; kill it after ``grace``."""
        if not self.alive:
            return succeed("not running")
        self._control(do="stop")
        timer = reactor.callLater(grace, self.kill)

        def done(result: object) -> object:
            if timer.active():
                timer.cancel()
            return result

        d: Deferred[Any] = Deferred()
        self.ended.addBoth(done).addBoth(d.callback)
        return d

    def pause_output(self) -> None:
        """Stop reading the link: the keeper's window fills, then print blocks."""
        if IPushProducer.providedBy(self.transport):
            self.transport.pauseProducing()

    def resume_output(self) -> None:
        """Read the link again."""
        if IPushProducer.providedBy(self.transport):
            self.transport.resumeProducing()


class KeeperProcess(ProcessProtocol):
    """The keeper as the service's child (while the service that started it lives)."""

    def __init__(self, worker: LinkedWorker) -> None:
        self.worker = worker

    def connectionMade(self) -> None:
        """Twisted: started; its stdin is not used."""
        if self.transport is not None:
            self.transport.closeStdin()

    def kill(self) -> None:
        """SIGTERM to the keeper: it SIGKILLs the interpreter's group, then exits."""
        try:
            if self.transport is not None:
                self.transport.signalProcess("TERM")
        except Exception:  # gone already: nothing to kill
            pass

    def processEnded(self, reason: Failure) -> None:
        """Twisted: the keeper is gone."""
        self.worker.keeper_ended(reason)


class LinkProvisioner:
    """Start workers behind keepers, each on a socket in ``directory``."""

    def __init__(
        self,
        reactor: ProcessReactor,
        directory: str,
        orphan_timeout: float = PROTOTYPE_ORPHAN,
        durable: bool = True,
    ) -> None:
        self.reactor = reactor
        self.directory = directory
        self.orphan_timeout = orphan_timeout
        #: False: each keeper ends with this process (PDEATHSIG), no orphan timeout.
        self.durable = durable

    def start(self, listener: WorkerListener) -> LinkedWorker:
        """Bind the socket, start the keeper on it, connect."""
        kernel_id = secrets.token_hex(8)
        secret = secrets.token_bytes(32)
        path = os.path.join(self.directory, kernel_id, "link.sock")
        os.makedirs(os.path.dirname(path), mode=0o700)
        listen, r = prepare_link(path, secret)
        worker = LinkedWorker(listener, secret, kernel_id, self.reactor)
        keeper = worker.keeper = KeeperProcess(worker)
        env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
        env.update(
            {LINK_FD_ENV: str(listen.fileno()), SECRET_FD_ENV: str(r), KERNEL_ENV: kernel_id}
        )
        env[LINK_PATH_ENV] = path
        env.setdefault("PYTHONIOENCODING", "utf-8")
        env[ORPHAN_ENV] = str(self.orphan_timeout)
        if not self.durable:
            env[DIE_WITH_PARENT_ENV] = "1"
        self.reactor.spawnProcess(
            keeper,
            sys.executable,
            [sys.executable, "-m", "ipytwist.worker"],
            env=env,
            childFDs={0: "w", 1: 1, 2: 2, listen.fileno(): listen.fileno(), r: r},
        )
        os.close(r)
        listen.close()
        connectProtocol(LinkClientEndpoint(self.reactor, path), worker)
        return worker


def choose_provisioner(
    reactor: ProcessReactor, state_dir: str, durable: bool = True, default: str = "socket"
) -> Provisioner:
    """Keepers on sockets in ``STATE/kernels`` (``IPYTWIST_WORKER_LINK=socket``) or
    today's pipes (``pipes``, :class:`~ipytwist.kernel.process.LocalProvisioner`); unset,
    ``default``.  Not ``durable``: the keepers end with this process."""
    if os.environ.get(LINK_ENV, default) == "socket":
        return LinkProvisioner(reactor, os.path.join(state_dir, "kernels"), durable=durable)
    return LocalProvisioner(reactor)
