"""Workers behind a keeper, over the worker link (docs/durable-kernels.md).

:class:`~.linkspawn.LinkProvisioner` starts ``python -m ipytwist.worker`` (which
forks its keeper) on a Unix socket it binds in its directory, and connects to it;
:class:`LinkedWorker` is the kernel's :class:`~ipytwist.kernel.supervisor.Worker`
on that connection.  The keeper has already put output and events in order, so
they go to the listener as they come.  The service's default;
``IPYTWIST_WORKER_LINK=pipes`` keeps the pipes (the standalone kernel keeps them
unless told ``socket``).  A hosted kernel's link is a :class:`KernelLink`: the
kernel's own id, socket and secret (its record, :mod:`.record`), its keeper
started anew at each restart of the interpreter, or re-adopted by a new service.
An item from the keeper is acked only once it is *settled* (the kernel has
published everything it produced) and then told as safe (the journal holds it).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IDelayedCall,
    IFileDescriptorReceiver,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..framing import FramingError, RecordDecoder, record_parts
from ..link.end import LinkEnd
from ..link.shake import LinkRefused
from ..link.wire import (
    LINK_WINDOW,
    Frame,
    Inbound,
    Kind,
    LinkError,
    json_body,
    parse_json_body,
    parse_output,
)
from .directpipe import DirectPipe
from .pipefeed import PipeFeeder, Writer
from .process import Clock, describe_exit
from .supervisor import WorkerListener


class Keeper(typing.Protocol):
    """A keeper this service started: its child (``linkspawn.KeeperProcess``), whose end
    it is told of, or one its fork server forked (``forkclient.ForkedKeeper``)."""

    #: Whether its end is reported (``LinkedWorker.keeper_ended``): a child's is.
    reports_end: bool

    @property
    def pid(self) -> int | None:
        """The keeper's pid (None once it has ended)."""

    def kill(self) -> None:
        """SIGTERM to the keeper."""


__all__ = ["GONE_GRACE", "LinkedWorker"]

#: Seconds between a forked keeper's end and the worker's, if its link has not ended.
GONE_GRACE = 1.0
#: How a worker ended whose forked keeper ended without saying how its interpreter did.
KEEPER_GONE = "ended (its keeper ended)"

_NAMES = {1: "stdout", 2: "stderr"}
#: Acks wait this long for a request to ride on, or until this much was read.
ACK_DELAY = 0.02
ACK_BYTES = LINK_WINDOW // 4


def always() -> bool:
    """Settled, always (a worker whose output no one waits to publish)."""
    return True


def nowhere(stream: str, seq: int) -> None:
    """Safe items told to no one (no journal)."""


def nothing() -> None:
    """Nothing held to publish."""


@implementer(IFileDescriptorReceiver)
class LinkedWorker(Protocol):
    """The service's end of one keeper's link."""

    log = Logger()

    def __init__(
        self,
        listener: WorkerListener,
        secret: bytes,
        kernel_id: str,
        clock: Clock,
        inbound: Inbound | None = None,
    ) -> None:
        self.listener = listener
        self.clock = clock
        self._unacked = 0
        self._ack_call: IDelayedCall | None = None
        self.end = LinkEnd(False, secret, kernel_id, inbound=inbound)
        self.ended: Deferred[str] = Deferred()
        #: Fires with what the keeper said of itself once the handshake is done; fails
        #: if the link never gets that far.
        self.linked: Deferred[dict[str, object]] = Deferred()
        self.alive = True
        #: The service leaves this keeper running (--keep-kernels): its link just closes.
        self.detached = False
        self.keeper: Keeper | None = None
        #: A forked keeper's pidfd has said it ended.
        self._keeper_gone = False
        self._feeder: PipeFeeder | None = None
        #: The interpreter's request pipe, once the keeper has handed it over.
        self.direct = DirectPipe()
        #: Whether everything taken so far has been published (none pending in the kernel).
        self.settled: Callable[[], bool] = always
        #: Publishes what the kernel holds now (before an ack: under a steady flood the
        #: coalescer is seldom empty when looked at, and acks must not wait for that).
        self.publish: Callable[[], None] = nothing
        #: Told ``(keeper's stream, seq)`` once every item up to seq is published.
        self.on_safe: Callable[[str, int], None] = nowhere
        self._told = self.end.inbound.taken  # (a journal's position is safe already)
        #: The last item handed to the kernel (a batch is taken whole, then handed over).
        self._handed = self.end.inbound.taken

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
            self._refused(e)
            return
        self._write(write)
        if self.end.pipe_offered and self.direct.fd is None:
            self.direct.claim()
        if self.end.authenticated and not self.linked.called:
            self._told = min(self._told, self.end.inbound.taken)  # (another stream: 0)
            self._handed = min(self._handed, self.end.inbound.taken)
            self.linked.callback(dict(self.end.peer_info))
        for frame in frames:
            self._take(frame)
            self._handed = frame.seq
        self.tell_safe()
        # Acks ride on the next request, or go out in a while, or at once past a quarter
        # of the window: an ack per read would wake the keeper once per read.
        self._unacked += len(data)
        if self._unacked >= ACK_BYTES:
            self._send_ack()
        elif self._ack_call is None and self.end.inbound.taken > self.end.safe:
            self._ack_call = self.clock.callLater(ACK_DELAY, self._send_ack)

    def _refused(self, e: LinkError) -> None:
        """A failed handshake or a broken link: one line; a keeper that cannot be
        served (another version) gets a ``REFUSE``, which ends it and its group."""
        self.log.error("worker link of kernel {id}: {why}", id=self.end.kernel_id, why=str(e))
        if isinstance(e, LinkRefused) and e.frame:
            self._write(e.frame)
        self.unreached(Failure(e))
        if self.transport is not None:
            self.transport.loseConnection()
        if self.keeper is not None:
            self.keeper.kill()

    def tell_safe(self) -> None:
        """What was handed to the kernel is safe once it is all published (called as
        the kernel publishes, and after each read): the journal is told at once, so a
        new service resumes right after it, with no repeat."""
        handed = self._handed
        if handed > self._told and self.settled():
            self.on_safe(self.end.inbound.stream, handed)
            self._told = handed

    def _settle(self) -> bytes:
        """The ``ACK`` to write for what is safe: never beyond what the journal was told
        (the keeper forgets what is acked)."""
        self.tell_safe()
        return self.end.acknowledge(self._told) if self._told > self.end.safe else b""

    def _send_ack(self) -> None:
        if self._ack_call is not None and self._ack_call.active():
            self._ack_call.cancel()
        self._ack_call = None
        self._unacked = 0
        self.publish()
        self._write(self._settle())
        if self.end.inbound.taken > self._told:  # not settled yet: look again soon
            self._ack_call = self.clock.callLater(ACK_DELAY, self._send_ack)

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
        """Twisted: the link is gone.  A keeper this service started is then found by
        its end; one it adopted ended with its interpreter (it never drops a service)."""
        self.end.connection_lost()
        self.direct.close()
        if self._ack_call is not None and self._ack_call.active():
            self._ack_call.cancel()
        self._ack_call = None
        if not self.linked.called:
            self.unreached(reason or Failure(LinkError("the link closed")))
        elif not self._end_reported() and not self.detached:
            self._exited("ended (its keeper closed the link)")
        elif self._keeper_gone:
            self._exited(KEEPER_GONE)

    def unreached(self, why: Failure) -> None:
        """The keeper was never reached (its socket is gone, refused, or it hung up).
        One this service started is then found by its end; an adopted one is not there."""
        if not self.linked.called:
            self.alive = self.alive and self._end_reported()
            self.linked.errback(why)

    def _end_reported(self) -> bool:
        """Whether the keeper's end will be told (a child's), else the link's end is its."""
        return self.keeper is not None and self.keeper.reports_end

    def detach(self) -> None:
        """Close the link, leaving the keeper and its interpreter running."""
        self.detached = True
        self._write(self._settle())
        if self.transport is not None:
            self.transport.loseConnection()

    def keeper_gone(self) -> None:
        """A keeper not our child has ended (its pidfd says): what it sent last, its
        ``EXITED`` and end included, is read even while output is paused; the worker has
        ended once the link has too, or ``GONE_GRACE`` later at most."""
        self._keeper_gone = True
        if not self.end.connected:
            self._exited(KEEPER_GONE)
            return
        self.resume_output()
        self.clock.callLater(GONE_GRACE, self._exited, KEEPER_GONE)

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

    def fileDescriptorReceived(self, descriptor: int) -> None:
        """Twisted: a descriptor came on the link (the request pipe, with ``PIPE``)."""
        self.direct.received(descriptor)

    def send(self, record: dict[str, Any]) -> None:
        """A request record for the interpreter: a small one straight into its pipe while
        the keeper has written every request before it (and taken every control); else
        through the keeper, kept until it acks it."""
        if not self.alive:
            return
        parts = tuple(record_parts(record))
        out = self.end.out
        if self.end.authenticated and out.acked == out.sent and self.direct.write(parts):
            return
        self._settle()  # the ack rides on the request (its frame is not needed)
        self._write(self.end.send(Kind.REQUEST, parts))

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
