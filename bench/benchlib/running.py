"""A service for the length of a ``with`` block, in a fresh temporary directory."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from .servers import Service


class TempFactory(Protocol):
    """Makes fresh directories: pytest's ``tmp_path_factory``, or :class:`TempDirs`."""

    def mktemp(self, name: str) -> Any: ...


class TempDirs:
    """``tmp_path_factory.mktemp`` for scripts (the bench): directories under one root."""

    def __init__(self, root: str) -> None:
        self.root = root

    def mktemp(self, name: str) -> str:
        path = os.path.join(self.root, f"{name}-{uuid.uuid4().hex[:8]}")
        os.makedirs(path)
        return path


@contextmanager
def running_service(
    tmp: TempFactory, name: str, *args: str, env: Mapping[str, str] | None = None
) -> Iterator[Service]:
    """A started :class:`Service` (options ``args``, ``env`` over this environment) in a
    fresh directory, always stopped after; then its log must show no unhandled error
    and no traceback (bad input and crashes are answered and logged, never an
    unhandled exception)."""
    svc = Service(str(tmp.mktemp(name)), *args, env=env)
    try:
        svc.start()
        yield svc
    finally:
        svc.stop()
    log = svc.log()
    for marker in ("Unhandled Error", "Traceback (most recent call last)"):
        assert marker not in log, f"{marker!r} in {svc.log_path}"
