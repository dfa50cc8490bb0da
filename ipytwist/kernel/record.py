"""A durable kernel's record: ``STATE/kernels/<kernel-id>/kernel.json`` (docs/durable-kernels.md).

The directory (0700) exists while the kernel's interpreter is meant to outlive the
service: it is made when the kernel is, kept across a restart of the interpreter
and a stop with ``--keep-kernels``, and removed when the kernel is shut down on
purpose.  The record (0600, written whole: a new file renamed over the old) holds
what a new service needs to re-adopt the kernel: its id and session, the ZeroMQ
connection (ports, transport, ip, key, signature scheme), the link's secret (hex),
the keeper's pid, and the package and link versions.  Each owner of a part of it
(the host, the kernel's link, the ZeroMQ transport) updates its own fields.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from .. import __version__
from ..link.wire import LINK_VERSIONS

__all__ = [
    "RECORD_NAME",
    "kernel_dir",
    "kernels_dir",
    "make_kernel_dir",
    "new_record",
    "read_record",
    "records",
    "remove_kernel_dir",
    "update_record",
]

RECORD_NAME = "kernel.json"


def kernels_dir(state_dir: str) -> str:
    """Where the durable kernels' directories are."""
    return os.path.join(state_dir, "kernels")


def kernel_dir(state_dir: str, kernel_id: str) -> str:
    """One kernel's directory."""
    return os.path.join(kernels_dir(state_dir), kernel_id)


def new_record(kernel_id: str, session: str, secret: bytes) -> dict[str, Any]:
    """A new durable kernel's first record (its link and ZeroMQ ports are added)."""
    return {
        "kernel_id": kernel_id,
        "session": session,
        "secret": secret.hex(),
        "version": __version__,
        "link_versions": list(LINK_VERSIONS),
    }


def make_kernel_dir(directory: str, record: dict[str, Any]) -> None:
    """Make the kernel's directory (0700) and its first record."""
    os.makedirs(os.path.dirname(directory), mode=0o700, exist_ok=True)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    try:
        _write(directory, record)
    except OSError:
        remove_kernel_dir(directory)  # (the disk is full): nothing half-made stays
        raise


def read_record(directory: str) -> dict[str, Any] | None:
    """The record in ``directory``, or None if there is none (or it is not a record)."""
    try:
        with open(os.path.join(directory, RECORD_NAME), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def update_record(directory: str, **fields: Any) -> None:
    """Set ``fields`` in the record, if the kernel has a directory (else nothing; nor
    when they are set already, as when a kernel is re-adopted on its own ports)."""
    record = read_record(directory)
    if record is None or all(record.get(k) == v for k, v in fields.items()):
        return
    record.update(fields)
    _write(directory, record)


def _write(directory: str, record: dict[str, Any]) -> None:
    path = os.path.join(directory, RECORD_NAME)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def records(state_dir: str) -> list[tuple[str, dict[str, Any] | None]]:
    """Every kernel directory and its record (None: unreadable), sorted by name."""
    top = kernels_dir(state_dir)
    try:
        names = sorted(os.listdir(top))
    except OSError:
        return []
    found = [os.path.join(top, name) for name in names]
    return [(d, read_record(d)) for d in found if os.path.isdir(d)]


def remove_kernel_dir(directory: str) -> None:
    """The kernel is gone for good: its directory goes (its socket, its journal)."""
    shutil.rmtree(directory, ignore_errors=True)
