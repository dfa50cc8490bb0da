"""The kernel WebSocket as a transport of the host: each hosted kernel gets its hub
(sessions, connections, replay), which the site's ``/api/kernels/{id}/channels``
route upgrades requests into."""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from ..config import Config
from ..kernel import Kernel
from ..pacing import pacer_for
from .websocket import KernelSockets

__all__ = ["WebSocketTransport"]


class WebSocketTransport:
    """Gives every hosted kernel a :class:`KernelSockets` hub (its attachment)."""

    name = "websocket"

    def __init__(self, reactor: IReactorTime, config: Config) -> None:
        self.reactor = reactor
        self.config = config
        #: Paces reading from every connection (shared with the other transports).
        self.pacer = pacer_for(reactor)
        self._hubs: dict[str, KernelSockets] = {}

    def start(self) -> None:
        """Nothing to set up: hubs are per kernel."""

    def attach(self, kernel: Kernel) -> KernelSockets:
        """A WebSocket hub for one kernel, found by :meth:`hub` until it closes."""
        hub = KernelSockets(
            kernel,
            self.reactor,
            self.config.max_message_bytes,
            on_close=lambda: self._hubs.pop(kernel.id, None),
            pacer=self.pacer,
        )
        self._hubs[kernel.id] = hub
        return hub

    def hub(self, kernel_id: str) -> KernelSockets | None:
        """The hub of the kernel ``kernel_id``, while it is served."""
        return self._hubs.get(kernel_id)

    def stop(self) -> None:
        """Nothing to tear down: each hub closed with its kernel."""
