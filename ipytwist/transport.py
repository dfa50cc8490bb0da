"""The seam between the host and the ways clients reach kernels (ZeroMQ, WebSocket).

The host knows transports only through :class:`Transport`: it attaches each
kernel it starts to every transport and keeps the :class:`Attachment` each
returns, in the kernel's :class:`Attachments`.  An attachment counts that
transport's clients (culling counts them all), hands back the requests it has
read but not yet given the kernel (``stop_on_error``) and closes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from .kernel import Kernel, Request

__all__ = ["Attachment", "Attachments", "Transport"]


class Attachment(Protocol):
    """One kernel as one transport serves it."""

    def connection_count(self) -> int:
        """Clients of this kernel on this transport now."""
        ...

    def requests_in_flight(self) -> Deferred[list[Request]]:
        """The requests this transport has received for the kernel but not handed to
        it yet, as soon as it has read them.  Until the Deferred fires, they are kept
        from the kernel, which aborts the executes among them (``stop_on_error``)."""
        ...

    def close(self) -> None:
        """Stop serving this kernel."""
        ...


class Transport(Protocol):
    """A way clients reach the hosted kernels."""

    name: str

    def start(self) -> None:
        """Before the first kernel is attached."""
        ...

    def attach(self, kernel: Kernel) -> Attachment:
        """Serve one kernel."""
        ...

    def stop(self) -> None:
        """After every kernel is closed."""
        ...


class Attachments:
    """One kernel's attachment to each transport, by transport name."""

    log = Logger()

    def __init__(self) -> None:
        self._by_name: dict[str, Attachment] = {}

    def __getitem__(self, name: str) -> Attachment:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def add(self, name: str, attachment: Attachment) -> None:
        """The kernel is served by transport ``name`` through ``attachment``."""
        self._by_name[name] = attachment

    def connection_count(self) -> int:
        """Clients of the kernel on every transport."""
        return sum(a.connection_count() for a in self._by_name.values())

    def requests_in_flight(self) -> list[Deferred[list[Request]]]:
        """What each transport has read for the kernel but not handed over, one
        Deferred per transport (see :meth:`Attachment.requests_in_flight`)."""
        return [a.requests_in_flight() for a in self._by_name.values()]

    def close(self, kernel_id: str) -> None:
        """Detach the kernel from every transport (each error is logged, none stops)."""
        for name, attachment in self._by_name.items():
            try:
                attachment.close()
            except Exception:
                self.log.failure("kernel {id}: error closing its {t}", id=kernel_id, t=name)
        self._by_name.clear()
