"""The kernel WebSocket as a transport of the host: each hosted kernel gets its hub
(sessions, connections, replay), which the site's ``/api/kernels/{id}/channels``
route upgrades requests into."""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime

from ..config import Config
from .websocket import KernelSockets

__all__ = ["WebSocketTransport"]


class WebSocketTransport:
    """Gives every hosted kernel a :class:`KernelSockets` hub (its attachment)."""

    name = "websocket"

    def __init__(self, reactor: IReactorTime, config: Config) -> None:
        self.reactor = reactor
        self.config = config

    def start(self) -> None:
        """Nothing to set up: hubs are per kernel."""

    def attach(self, hosted: Any) -> KernelSockets:
        """A WebSocket hub for one hosted kernel."""
        return KernelSockets(hosted.kernel, self.reactor, self.config.max_message_bytes)

    def stop(self) -> None:
        """Nothing to tear down: each hub closed with its kernel."""
