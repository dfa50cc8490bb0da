"""The kernels a service hosts: create, find, cull, shut down, pre-spawn.

Each hosted kernel is a :class:`~ipytwist.kernel.Kernel` with its own worker,
its ZeroMQ channels bound on loopback and a 0600 connection file in the state
directory, so ``jupyter console --existing`` reaches the kernel browsers use.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import zmq
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from txzmq import ZmqFactory

from .channels import ZmqChannels, new_connection_info, write_connection_file
from .kernel import Kernel, LocalProvisioner, OutputStream
from .kernel.transcript import DEFAULT_MAX_BYTES as DEFAULT_TRANSCRIPT_BYTES
from .kernel.transcript import Transcript
from .kernelspec import DISPLAY_NAME, KERNEL_NAME


class ResourceLimit(Exception):
    """More kernels were asked for than ``max_kernels`` allows."""


class UnknownKernelSpec(KeyError):
    pass


def iso_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class HostedKernel:
    """A kernel plus what the service keeps beside it."""

    def __init__(
        self, kernel: Kernel, channels: ZmqChannels, transcript: Transcript | None = None
    ) -> None:
        self.kernel = kernel
        self.channels = channels
        self.connection_file: str | None = None
        #: Every executed cell from any client, as a notebook page shows it.
        self.transcript = transcript or Transcript()
        #: Set by the web room: number of open WebSocket connections.
        self.connections: Callable[[], int] = lambda: 0
        self.extensions: dict[str, Any] = {}

    @property
    def id(self) -> str:
        return self.kernel.id

    def model(self) -> dict[str, Any]:
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
        reactor: Any,
        state_dir: str,
        *,
        max_kernels: int = 0,
        cull_idle: float = 0,
        prespawn: int = 0,
        client_shutdown: bool = False,
        log_messages: int = 10_000,
        log_bytes: int = 64 * 1024 * 1024,
        transcript_bytes: int = DEFAULT_TRANSCRIPT_BYTES,
        provisioner: Any = None,
    ) -> None:
        self.reactor = reactor
        self.state_dir = state_dir
        self.max_kernels = max_kernels
        self.cull_idle = cull_idle
        self.prespawn = prespawn
        #: Whether a client's shutdown_request ends a hosted kernel (else only the
        #: service ends it: REST DELETE, culling, SIGTERM).
        self.client_shutdown = client_shutdown
        self.log_messages = log_messages
        self.log_bytes = log_bytes
        self.transcript_bytes = transcript_bytes
        self.provisioner = provisioner or LocalProvisioner(reactor)
        self.kernels: dict[str, HostedKernel] = {}
        self._spare: list[HostedKernel] = []
        self._zmq: ZmqFactory | None = None
        self._cull_loop: LoopingCall | None = None
        self.on_new_kernel: list[Callable[[HostedKernel], None]] = []

    # -- service ------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        self._zmq = ZmqFactory()
        self._zmq.reactor = self.reactor
        # Five sockets per kernel: the default limit (1023) would stop at ~200 kernels.
        self._zmq.context.set(zmq.MAX_SOCKETS, 65536)
        if self.cull_idle > 0:
            self._cull_loop = LoopingCall(self.cull)
            self._cull_loop.clock = self.reactor
            self._cull_loop.start(max(1.0, min(60.0, self.cull_idle / 4)), now=False)
        self._fill_spares()

    def stopService(self) -> Deferred:
        super().stopService()
        if self._cull_loop is not None and self._cull_loop.running:
            self._cull_loop.stop()
        everything = list(self.kernels.values()) + self._spare
        self._spare = []
        ds = [self._dispose(hk) for hk in everything]
        self.kernels.clear()
        d = DeferredList(ds, consumeErrors=True)

        def term(_: Any) -> None:
            if self._zmq is not None:
                self._zmq.shutdown()
                self._zmq = None

        d.addCallback(term)
        return d

    # -- kernels --------------------------------------------------------------

    def specs(self) -> dict[str, Any]:
        return {
            "default": KERNEL_NAME,
            "kernelspecs": {
                KERNEL_NAME: {
                    "name": KERNEL_NAME,
                    "spec": {
                        "argv": ["python", "-m", "ipytwist.kernel", "-f", "{connection_file}"],
                        "display_name": DISPLAY_NAME,
                        "language": "python",
                        "interrupt_mode": "signal",
                        "env": {},
                        "metadata": {"debugger": False},
                    },
                    "resources": {},
                }
            },
        }

    def start_kernel(self, name: str | None = None) -> HostedKernel:
        """A ready-to-use kernel (from the warm pool when there is one)."""
        if name not in (None, "", KERNEL_NAME, "python3"):
            raise UnknownKernelSpec(name)
        if self.max_kernels and len(self.kernels) >= self.max_kernels:
            raise ResourceLimit(f"at most {self.max_kernels} kernels may run")
        hk = self._spare.pop(0) if self._spare else self._new()
        self.kernels[hk.id] = hk
        path = os.path.join(self.state_dir, f"kernel-{hk.id}.json")
        write_connection_file(path, hk.channels.connection)
        hk.connection_file = path
        for hook in self.on_new_kernel:
            hook(hk)
        self.log.info("started kernel {id}", id=hk.id)
        self.reactor.callLater(0, self._fill_spares)
        return hk

    def warm_count(self) -> int:
        """Pre-spawned kernels whose interpreter is up and waiting."""
        return sum(1 for hk in self._spare if hk.kernel.execution_state == "idle")

    def get(self, kernel_id: str) -> HostedKernel | None:
        return self.kernels.get(kernel_id)

    def shutdown_kernel(self, kernel_id: str) -> Deferred:
        hk = self.kernels.pop(kernel_id, None)
        if hk is None:
            return succeed(None)
        self.log.info("shutting down kernel {id}", id=kernel_id)
        return self._dispose(hk)

    def cull(self) -> None:
        """Shut down kernels idle, with no connections, for ``cull_idle`` seconds."""
        now = time.time()
        for hk in list(self.kernels.values()):
            k = hk.kernel
            if (
                k.execution_state in ("idle", "dead")
                and hk.connections() == 0
                and now - k.last_activity > self.cull_idle
            ):
                self.log.info("culling idle kernel {id}", id=hk.id)
                self.shutdown_kernel(hk.id)

    def _new(self) -> HostedKernel:
        assert self._zmq is not None, "KernelHost is not running"
        stream = OutputStream(self.log_messages, self.log_bytes)
        kernel = Kernel(self.reactor, self.provisioner, stream=stream, name=KERNEL_NAME)
        channels = ZmqChannels(kernel, new_connection_info(), factory=self._zmq)
        hk = HostedKernel(kernel, channels, Transcript(max_bytes=self.transcript_bytes))
        stream.subscribe(hk.transcript)
        kernel.request_listeners.append(hk.transcript.request)
        kernel.on_shutdown_request = lambda: self._client_shutdown(kernel.id)
        kernel.start()
        return hk

    def _client_shutdown(self, kernel_id: str) -> Any:
        """A client asked the kernel to shut down.  The kernel is shared: unless the
        service allows it, one client leaving (``jupyter console --existing`` exiting)
        must not end it for the browsers and scripts still using it."""
        if self.client_shutdown:
            return self.shutdown_kernel(kernel_id)
        self.log.info(
            "kernel {id}: a client's shutdown_request left it running "
            "(--allow-client-shutdown to honour it; DELETE /api/kernels/{id} ends it)",
            id=kernel_id,
        )
        return None

    def _fill_spares(self) -> None:
        if not self.running:
            return
        while len(self._spare) < self.prespawn:
            self._spare.append(self._new())

    def _dispose(self, hk: HostedKernel) -> Deferred:
        d = hk.kernel.shutdown()

        def cleanup(result: Any) -> Any:
            if isinstance(result, Failure):
                self.log.failure("kernel {id}: shutdown failed", result, id=hk.id)
            closers = [hk.channels.close] + [
                ext.close for ext in hk.extensions.values() if hasattr(ext, "close")
            ]
            for close in closers:
                try:
                    close()
                except Exception:
                    self.log.failure("kernel {id}: error while closing", id=hk.id)
            if hk.connection_file:
                try:
                    os.unlink(hk.connection_file)
                except FileNotFoundError:
                    pass
            return None

        d.addBoth(cleanup)
        return d
