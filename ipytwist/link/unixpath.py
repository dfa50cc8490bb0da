"""Unix socket paths of any length (``sun_path`` holds 107 bytes on Linux).

A state directory may be deep: ``STATE/kernels/<36-character id>/link.sock`` does
not always fit.  A path that does not is reached through a descriptor of its
directory, ``/proc/self/fd/N/link.sock``, open only while the name is used: no
``chdir`` (the service has other threads), nothing left behind.  The keeper's
listening socket and every connect to it (at a kernel's start, at re-adoption) go
through here; :class:`~ipytwist.link.endpoint.LinkClientEndpoint` is the Twisted side.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["SUN_PATH_MAX", "bind_unix", "connect_unix", "reachable"]

#: The bytes of a path that ``sun_path`` holds, its terminating NUL left out.
SUN_PATH_MAX = 107


@contextmanager
def reachable(path: str) -> Iterator[str]:
    """A name for ``path`` that fits ``sun_path``, valid inside the ``with``: ``path``
    itself if it fits, else ``/proc/self/fd/N/<name>`` on a descriptor of its directory
    (Linux); :class:`OSError` (ENAMETOOLONG) if not even that fits."""
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        yield path
        return
    directory, name = os.path.split(path)
    fd = os.open(directory or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        short = f"/proc/self/fd/{fd}/{name}"
        if len(os.fsencode(short)) > SUN_PATH_MAX or not os.path.isdir(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENAMETOOLONG, "socket path too long", path)
        yield short
    finally:
        os.close(fd)


def bind_unix(path: str, backlog: int = 8) -> socket.socket:
    """A stream socket bound to ``path`` (of any length) and listening."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with reachable(path) as name:
            sock.bind(name)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def connect_unix(path: str, timeout: float | None = None) -> socket.socket:
    """A stream socket connected to ``path`` (of any length), blocking with ``timeout``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        with reachable(path) as name:
            sock.connect(name)
    except BaseException:
        sock.close()
        raise
    return sock
