"""The kernels a service hosts: create, find, cull, shut down, pre-spawn.

Each hosted kernel is a :class:`~ipytwist.kernel.Kernel` with its own worker
and transcript, attached to every transport of the service (see
:mod:`ipytwist.transport`): the host knows ZeroMQ and WebSocket only as such.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from .config import Config
from .kernel import Kernel, OutputLog
from .kernel.adopt import Durable, Record, adopt, open_durable
from .kernel.linkspawn import LinkProvisioner
from .kernel.record import kernels_dir, records, remove_kernel_dir, update_record
from .kernel.startlimit import StartLimit
from .kernel.supervisor import Provisioner
from .kernel.transcript import Transcript
from .kernelspec import KERNEL_NAME, kernel_json
from .transport import Attachments, Transport

__all__ = [
    "HostedKernel",
    "KernelHost",
    "KernelNotStarted",
    "ResourceLimit",
    "UnknownKernelSpec",
    "iso_time",
]


class ResourceLimit(Exception):
    """More kernels were asked for than ``max_kernels`` allows."""


class KernelNotStarted(Exception):
    """A kernel could not be served (its connection file could not be written): it was
    not registered, and no interpreter was started for it."""


class UnknownKernelSpec(KeyError):
    """A kernel was asked for by a kernelspec name this service does not have."""


def iso_time(ts: float) -> str:
    """``ts`` (seconds since the epoch) as the Jupyter REST API writes times."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class HostedKernel:
    """A kernel plus what the service keeps beside it."""

    def __init__(self, kernel: Kernel, transcript: Transcript, attachments: Attachments) -> None:
        self.kernel = kernel
        #: Every executed cell from any client, as a notebook page shows it.
        self.transcript = transcript
        #: The kernel on each transport, by transport name ("zmq", "websocket").
        self.attachments = attachments
        #: A durable kernel's: its directory, its link to its keepers, its journal.
        self.durable: Durable | None = None

    @property
    def id(self) -> str:
        """The hosted kernel's id."""
        return self.kernel.id

    def connections(self) -> int:
        """Clients of this kernel on every transport."""
        return self.attachments.connection_count()

    def model(self) -> dict[str, Any]:
        """The kernel as the REST API describes it."""
        return {
            "id": self.kernel.id,
            "name": self.kernel.name,
            "last_activity": iso_time(self.kernel.last_activity),
            "execution_state": self.kernel.execution_state,
            "connections": self.connections(),
        }


class KernelHost(Service):
    """Registry and supervisor of the hosted kernels (a Twisted service)."""

    log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        config: Config,
        *,
        provisioner: Provisioner,
        transports: Iterable[Transport] = (),
    ) -> None:
        self.reactor = reactor
        self.config = config
        self.transports = list(transports)
        #: Starts the kernels' workers through ``provisioner`` (local processes:
        #: kernel.LocalProvisioner), at most ``max_starting`` at once (0: no limit).
        self.starts = StartLimit(provisioner, config.max_starting or 1 << 30)
        #: Keepers on sockets: kernels are durable (a directory each) and re-adopted.
        self.links = provisioner if isinstance(provisioner, LinkProvisioner) else None
        self.kernels: dict[str, HostedKernel] = {}
        self._spare: list[HostedKernel] = []
        self._cull_loop: LoopingCall | None = None

    # -- service ------------------------------------------------------------

    def startService(self) -> None:
        """Twisted: make the state directory, start the transports, culling and the warm pool."""
        Service.startService(self)
        os.makedirs(self.config.state_dir, mode=0o700, exist_ok=True)
        for transport in self.transports:
            transport.start()
        if self.links is not None:
            self._adopt_all()
        if self.config.cull_idle > 0:
            self._cull_loop = LoopingCall(self.cull)
            self._cull_loop.clock = self.reactor
            self._cull_loop.start(max(1.0, min(60.0, self.config.cull_idle / 4)), now=False)
        self._fill_spares()

    def stopService(self) -> Deferred[None]:
        """Twisted: shut down every kernel, then stop the transports."""
        Service.stopService(self)
        if self._cull_loop is not None and self._cull_loop.running:
            self._cull_loop.stop()
        if self.config.keep_kernels:
            self._leave_kernels()
        everything = list(self.kernels.values()) + self._spare
        self._spare = []
        ds = [self._dispose(hk) for hk in everything]
        self.kernels.clear()
        d: Deferred[Any] = DeferredList(ds, consumeErrors=True)

        def stop_transports(_: object) -> None:
            try:  # empty once every kernel ended (none kept)
                os.rmdir(kernels_dir(self.config.state_dir))
            except OSError:
                pass
            for transport in self.transports:
                try:
                    transport.stop()
                except Exception:
                    self.log.failure("could not stop the {name} transport", name=transport.name)

        return d.addCallback(stop_transports)

    # -- kernels --------------------------------------------------------------

    def specs(self) -> dict[str, Any]:
        """The kernelspecs the REST API lists (one: ipytwist)."""
        spec = kernel_json("python")
        spec["env"] = {}
        return {
            "default": KERNEL_NAME,
            "kernelspecs": {KERNEL_NAME: {"name": KERNEL_NAME, "spec": spec, "resources": {}}},
        }

    def start_kernel(self, name: str | None = None) -> HostedKernel:
        """A ready-to-use kernel (from the warm pool when there is one)."""
        if name not in (None, "", KERNEL_NAME, "python3"):
            raise UnknownKernelSpec(name)
        limit = self.config.max_kernels
        if limit and len(self.kernels) >= limit:
            raise ResourceLimit(f"at most {limit} kernels may run")
        spare = bool(self._spare)
        hk = None
        try:
            hk = self._spare.pop(0) if spare else self._new(start=False)
            if spare and hk.durable is not None:  # a user's kernel from now on
                update_record(hk.durable.directory, spare=False)
            for transport in self.transports:
                hk.attachments.add(transport.name, transport.attach(hk.kernel))
            if not spare:
                hk.kernel.start()
        except Exception as e:
            # Registered only once served everywhere.  A new kernel has not started its
            # interpreter yet (nothing of it stays); a warm one goes back to the pool.
            if hk is not None and spare:
                hk.attachments.close(hk.id)
                self._spare.insert(0, hk)
            elif hk is not None:
                if hk.durable is not None:
                    remove_kernel_dir(hk.durable.directory)
                hk.attachments.close(hk.id)
            self.log.error("kernel not started: {why}", why=str(e)[:300])
            raise KernelNotStarted(str(e)[:300]) from None
        self.kernels[hk.id] = hk
        self.log.info("started kernel {id}", id=hk.id)
        self.reactor.callLater(0, self._fill_spares)
        return hk

    def warm_count(self) -> int:
        """Pre-spawned kernels whose interpreter is up and waiting."""
        return sum(1 for hk in self._spare if hk.kernel.execution_state == "idle")

    def get(self, kernel_id: str) -> HostedKernel | None:
        """The running kernel with this id, if any."""
        return self.kernels.get(kernel_id)

    def shutdown_kernel(self, kernel_id: str) -> Deferred[None]:
        """Stop one kernel and detach it from every transport."""
        hk = self.kernels.pop(kernel_id, None)
        if hk is None:
            return succeed(None)
        self.log.info("shutting down kernel {id}", id=kernel_id)
        return self._dispose(hk)

    def cull(self) -> None:
        """Shut down kernels idle, with no client on any transport, for ``cull_idle``
        seconds (the host's clock)."""
        now = self.reactor.seconds()
        for hk in list(self.kernels.values()):
            k = hk.kernel
            if (
                k.execution_state in ("idle", "dead")
                and hk.connections() == 0
                and now - k.last_activity > self.config.cull_idle
            ):
                self.log.info("culling idle kernel {id}", id=hk.id)
                self.shutdown_kernel(hk.id)

    def _new(self, start: bool = True, record: Record | None = None) -> HostedKernel:
        """A kernel (``record``: one an earlier service left, to re-adopt)."""
        c = self.config
        kernel_id = str(record["kernel_id"]) if record else str(uuid.uuid4())
        output_log = OutputLog(c.replay_messages, c.replay_bytes)
        transcript = Transcript(max_bytes=c.transcript_bytes)
        attachments = Attachments()
        session = str(record["session"]) if record else uuid.uuid4().hex
        durable = self._durable(kernel_id, session, record, start)
        kernel = Kernel(
            self.reactor,
            self.starts.via(durable.link) if durable else self.starts,
            session=session,
            kernel_id=kernel_id,
            name=KERNEL_NAME,
            output_log=output_log,
            requests_in_flight=attachments.requests_in_flight,
            on_request=transcript.request,
            on_shutdown_request=lambda restart: self._client_shutdown(kernel_id, restart),
        )
        transcript.widgets.warn = lambda why: kernel.rejects.warn(
            "kernel {id}: a widget message was ignored: {why}", "widget", id=kernel_id, why=why
        )
        output_log.subscribe(transcript)
        kernel.stdin.echo = transcript.stdin
        hk = HostedKernel(kernel, transcript, attachments)
        if durable is not None:
            hk.durable = durable
            durable.link.settled = lambda: not kernel.output_pending
            durable.link.publish = kernel.flush_output
            durable.link.on_safe = durable.journal.link_safe
            if record is None:
                durable.journal.follow(kernel, output_log, transcript)
                output_log.subscribe(durable.link)  # after the journal
        if start:
            kernel.start()
        return hk

    def _durable(
        self, kernel_id: str, session: str, record: Record | None, spare: bool
    ) -> Durable | None:
        if self.links is None:
            return None  # pipes: the kernel ends with the service
        c = self.config
        bounds = (c.transcript_bytes, c.replay_messages, c.replay_bytes)
        return open_durable(self.links, c.state_dir, (kernel_id, session, spare), record, bounds)

    def _client_shutdown(self, kernel_id: str, restart: bool) -> Any:
        """A client asked the kernel to shut down, or to restart.  The kernel is shared:
        unless the service allows it, one client leaving (``jupyter console --existing``
        exiting) must not end it, nor one client's restart wipe it, for the browsers and
        scripts still using it."""
        hk = self.kernels.get(kernel_id)
        if self.config.client_shutdown and hk is not None:
            return hk.kernel.restart() if restart else self.shutdown_kernel(kernel_id)
        if restart:
            self.log.info(
                "kernel {id}: a client's restart request left it as it was "
                "(--allow-client-shutdown to honour it; POST /api/kernels/{id}/restart "
                "restarts it)",
                id=kernel_id,
            )
        else:
            self.log.info(
                "kernel {id}: a client's shutdown_request left it running "
                "(--allow-client-shutdown to honour it; DELETE /api/kernels/{id} ends it)",
                id=kernel_id,
            )
        return None

    def _fill_spares(self) -> None:
        if not self.running:
            return
        while len(self._spare) < self.config.prespawn:
            self._spare.append(self._new())

    def _dispose(self, hk: HostedKernel) -> Deferred[None]:
        d = hk.kernel.shutdown()

        def cleanup(result: Any) -> Any:
            if isinstance(result, Failure):
                self.log.failure("kernel {id}: shutdown failed", result, id=hk.id)
            if hk.durable is not None:  # ended on purpose: nothing of it stays
                hk.durable.journal.remove()
                remove_kernel_dir(hk.durable.directory)
            hk.attachments.close(hk.id)
            return None

        d.addBoth(cleanup)
        return d

    # -- durable kernels ------------------------------------------------------

    def _leave_kernels(self) -> None:
        """--keep-kernels: the durable kernels go on without this service (their links
        close; their records, journals and connection files stay)."""
        for kernel_id, hk in list(self.kernels.items()):
            if hk.durable is None:
                continue
            del self.kernels[kernel_id]
            hk.kernel.flush_output()  # all published: the link's items are safe
            hk.durable.link.detach()
            hk.durable.journal.close()
            hk.attachments.close(kernel_id)
        self.log.info("leaving the kernels running (--keep-kernels)")

    def _adopt_all(self) -> None:
        """Re-adopt every kernel an earlier service left running (its directory)."""
        for directory, record in records(self.config.state_dir):
            name = os.path.basename(directory)
            try:
                if record is None or record.get("kernel_id") != name:
                    raise ValueError("no readable kernel.json")
                self._adopt(record)
            except Exception as e:
                self.log.warn("kernel {id} not re-adopted: {why}", id=name, why=str(e)[:200])
                remove_kernel_dir(directory)

    def _adopt(self, record: Record) -> None:
        hk = self._new(start=False, record=record)
        assert hk.durable is not None  # (only with links)
        journal = hk.durable.journal
        restored = journal.restore(hk.kernel.output_log, hk.transcript)
        journal.follow(hk.kernel, hk.kernel.output_log, hk.transcript)
        hk.kernel.output_log.subscribe(hk.durable.link)  # after the journal
        try:
            for transport in self.transports:
                hk.attachments.add(transport.name, transport.attach(hk.kernel))
        except Exception:
            hk.attachments.close(hk.id)
            raise
        spare = bool(record.get("spare"))
        d = adopt(hk.kernel, hk.durable.link, restored)
        d.addCallbacks(lambda i: self._adopted(hk, i, spare), lambda f: self._orphan_gone(hk, f))

    def _adopted(self, hk: HostedKernel, info: dict[str, Any], spare: bool) -> None:
        if spare:  # no one's kernel yet: it ends (the pool is filled anew)
            self._dispose(hk)
            return
        self.kernels[hk.id] = hk
        self.log.info(
            "re-adopted kernel {id} (interpreter pid {pid})", id=hk.id, pid=info.get("pid")
        )

    def _orphan_gone(self, hk: HostedKernel, why: Failure) -> None:
        assert hk.durable is not None
        self.log.warn(
            "kernel {id} not re-adopted: {why}", id=hk.id, why=why.getErrorMessage()[:200]
        )
        hk.kernel.shutdown()
        hk.durable.journal.remove()
        remove_kernel_dir(hk.durable.directory)
        hk.attachments.close(hk.id)
