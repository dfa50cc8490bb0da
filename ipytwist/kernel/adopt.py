"""Durable kernels' links, and the re-adoption of a kernel's running worker by a new
service (docs/durable-kernels.md, "Re-adoption").

:class:`KernelLink` is a hosted kernel's provisioner: every keeper the kernel has
(its start, each restart of the interpreter) listens on the same socket in the
kernel's directory, with the same secret.  :func:`adopt` connects a kernel made
anew from its record and journal to the keeper an earlier service left running:
the kernel is busy with the request the journal says was running (its output
keeps its cell; its reply finishes it, with no client to answer), or idle, and
its execution count goes on; the keeper resends what the journal does not hold.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import connectProtocol
from twisted.logger import Logger

from ..link.endpoint import LinkClientEndpoint
from ..link.wire import Inbound
from ..wire import Message
from .core import Kernel
from .envelope import Envelope
from .journal import KernelJournal, Restored
from .linked import Keeper, LinkedWorker, always, nothing, nowhere
from .linkspawn import LinkProvisioner
from .record import kernel_dir, make_kernel_dir, new_record, update_record
from .requests import Request
from .supervisor import WorkerListener

__all__ = ["Durable", "KernelLink", "NoRequester", "Record", "adopt", "open_durable"]

#: A kernel's record (``kernel.json``, :mod:`.record`).
Record = dict[str, Any]


class NoRequester:
    """The client of a request an earlier service took: gone with that service.  Its
    reply is dropped (the kernel publishes ``idle`` all the same)."""

    origin = "adopted"
    log = Logger()

    def send(self, channel: str, msg: Message) -> None:
        """The reply has no one to go to: one debug line."""
        self.log.debug(
            "dropped {t}: its client left with an earlier service", t=msg["msg_type"][:64]
        )


class KernelLink:
    """A hosted kernel's link (its :class:`Provisioner`): the kernel's id, its socket
    ``DIRECTORY/link.sock`` and its secret, for every keeper it ever has; the keeper's
    pid goes into the kernel's record.  :meth:`adopt` connects to a keeper a service
    before this one started."""

    def __init__(
        self, links: LinkProvisioner, directory: str, kernel_id: str, secret: bytes
    ) -> None:
        self.links = links
        self.directory = directory
        self.kernel_id = kernel_id
        self.secret = secret
        self.path = os.path.join(directory, "link.sock")
        self.settled: Callable[[], bool] = always
        self.publish: Callable[[], None] = nothing
        self.on_safe: Callable[[str, int], None] = nowhere
        #: The worker on the link now.
        self.worker: LinkedWorker | None = None

    def start(self, listener: WorkerListener) -> LinkedWorker:
        """A new keeper and interpreter for the kernel (its start, or a restart)."""

        def told(keeper: Keeper) -> None:
            update_record(self.directory, keeper_pid=keeper.pid)

        worker = self.links.spawn(listener, self.path, self.secret, self.kernel_id, told)
        return self._hooked(worker)

    def adopt(self, listener: WorkerListener, inbound: Inbound) -> LinkedWorker:
        """Connect to the kernel's running keeper (nothing is started); ``inbound``:
        where the journal says the keeper's items were made safe."""
        worker = LinkedWorker(listener, self.secret, self.kernel_id, self.links.reactor, inbound)
        worker.linked.addCallback(self._adopted)
        endpoint = LinkClientEndpoint(self.links.reactor, self.path)
        connectProtocol(endpoint, worker).addErrback(worker.unreached)
        return self._hooked(worker)

    def _adopted(self, info: dict[str, object]) -> dict[str, object]:
        update_record(self.directory, keeper_pid=info.get("keeper"))
        return info

    def _hooked(self, worker: LinkedWorker) -> LinkedWorker:
        worker.settled = lambda: self.settled()
        worker.publish = lambda: self.publish()
        worker.on_safe = lambda stream, seq: self._safe(worker, stream, seq)
        self.worker = worker
        return worker

    def _safe(self, worker: LinkedWorker, stream: str, seq: int) -> None:
        """Where the current worker's items are safe (the journal's resume point).  A
        replaced worker's last items (its end) are made safe after its successor's first,
        when that one starts fast: they must not move the point back to its stream."""
        if worker is self.worker:
            self.on_safe(stream, seq)

    def deliver(self, envelope: Envelope) -> None:
        """Subscribed to the kernel's output log after its journal: once a message is
        published (and journaled), what the worker handed over may be safe."""
        if self.worker is not None:
            self.worker.tell_safe()

    def detach(self) -> None:
        """The service leaves: close the link, the keeper and its interpreter go on."""
        if self.worker is not None:
            self.worker.detach()


class Durable:
    """What a durable kernel has beside it: its directory, its link, its journal."""

    def __init__(self, directory: str, link: KernelLink, journal: KernelJournal) -> None:
        self.directory = directory
        self.link = link
        self.journal = journal


def open_durable(
    links: LinkProvisioner,
    state_dir: str,
    kernel: tuple[str, str, bool],
    record: Record | None,
    bounds: tuple[int, int, int],
) -> Durable:
    """A durable kernel's directory, link and journal: an earlier service's ``record``,
    or for a new ``kernel`` (id, session, whether it is a spare of the warm pool) a new
    directory and record.  ``bounds``: the journal's (transcript bytes, log messages,
    log bytes)."""
    kernel_id, session, spare = kernel
    directory = kernel_dir(state_dir, kernel_id)
    secret = bytes.fromhex(record["secret"]) if record else secrets.token_bytes(32)
    if record is None:
        make_kernel_dir(directory, {**new_record(kernel_id, session, secret), "spare": spare})
    journal = KernelJournal.open(directory, *bounds)
    return Durable(directory, KernelLink(links, directory, kernel_id, secret), journal)


def running_request(restored: Restored) -> Request | None:
    """The execute request the journal says was running, as the kernel holds one."""
    if restored.running is None:
        return None
    header = restored.running.get("header")
    if not isinstance(header, dict) or header.get("msg_type") != "execute_request":
        return None
    msg: Message = {
        "header": header,
        "parent_header": {},
        "metadata": dict(restored.running.get("metadata") or {}),
        "content": dict(restored.running.get("content") or {}),
        "buffers": [],
        "channel": "shell",
        "msg_id": header.get("msg_id", ""),
        "msg_type": "execute_request",
    }
    return Request("shell", msg, NoRequester())


def adopt(kernel: Kernel, link: KernelLink, restored: Restored) -> Deferred[dict[str, Any]]:
    """Connect ``kernel`` (made anew, not started) to its running keeper; fires with
    what the keeper said of itself once it is reached, or fails (nothing answers)."""
    kernel.resume(running_request(restored), restored.execution_count)
    inbound = Inbound(*restored.link) if restored.link is not None else Inbound()
    kernel.supervisor.adopt(lambda listener: link.adopt(listener, inbound))
    assert link.worker is not None  # (made just now)

    def reached(info: dict[str, Any]) -> dict[str, Any]:
        kernel.supervisor.adopted()
        return info

    return link.worker.linked.addCallback(reached)
