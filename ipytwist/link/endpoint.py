"""A Twisted client endpoint for a keeper's socket, however long its path
(:mod:`ipytwist.link.unixpath`): the service's connect at a kernel's start and at
re-adoption."""

from __future__ import annotations

import errno
import os
from typing import cast

from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.interfaces import IProtocol, IProtocolFactory, IStreamClientEndpoint
from zope.interface import implementer

from .unixpath import SUN_PATH_MAX

__all__ = ["LinkClientEndpoint"]


def _connect(endpoint: UNIXClientEndpoint, factory: IProtocolFactory) -> Deferred[IProtocol]:
    return cast("Deferred[IProtocol]", endpoint.connect(factory))


@implementer(IStreamClientEndpoint)
class LinkClientEndpoint:
    """Connects to the Unix socket at ``path``; a path longer than ``sun_path`` holds is
    reached through a descriptor of its directory, kept open until the connect is done."""

    def __init__(self, reactor: object, path: str, timeout: float = 30) -> None:
        self.reactor = reactor
        self.path = path
        self.timeout = timeout

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """Connect; the protocol, once connected (as ``UNIXClientEndpoint.connect``)."""
        if len(os.fsencode(self.path)) <= SUN_PATH_MAX:
            return _connect(
                UNIXClientEndpoint(self.reactor, self.path, self.timeout), protocolFactory
            )
        directory, name = os.path.split(self.path)
        try:
            fd = os.open(directory or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            return fail(e)
        short = f"/proc/self/fd/{fd}/{name}"
        if len(os.fsencode(short)) > SUN_PATH_MAX:
            os.close(fd)
            return fail(OSError(errno.ENAMETOOLONG, "socket path too long", self.path))
        # The connect happens on a later reactor turn (and again while it is under way):
        # the directory's descriptor stays open until it has succeeded or failed.
        d = _connect(UNIXClientEndpoint(self.reactor, short, self.timeout), protocolFactory)

        def close(result: object) -> object:
            os.close(fd)
            return result

        d.addBoth(close)
        return d
