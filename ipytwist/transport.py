"""The seam between the host and the ways clients reach kernels (ZeroMQ, WebSocket).

The host knows transports only through :class:`Transport`: it attaches each
kernel it starts to every transport and keeps the :class:`Attachment` each
returns, which counts that transport's clients (culling counts them all),
drains requests already waiting (``stop_on_error``) and closes.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Attachment", "Transport"]


class Attachment(Protocol):
    """One kernel as one transport serves it."""

    def connection_count(self) -> int:
        """Clients of this kernel on this transport now."""

    def drain_requests(self) -> None:
        """Hand the kernel the requests already waiting in this transport."""

    def close(self) -> None:
        """Stop serving this kernel."""


class Transport(Protocol):
    """A way clients reach the hosted kernels."""

    name: str

    def start(self) -> None:
        """Before the first kernel is attached."""

    def attach(self, hosted: Any) -> Attachment:
        """Serve one hosted kernel (a :class:`~ipytwist.host.HostedKernel`)."""

    def stop(self) -> None:
        """After every kernel is closed."""
