"""Services whose kernels outlive them (issue 18): ``twistd ipytwist`` on keepers over the
worker link, with the token kept in the state directory, started again on the same
directory after a SIGKILL or a SIGTERM; and the processes of their kernels."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from benchlib.procs import end_keepers, wait_for
from benchlib.servers import Service, checkout_env


class DurableService(Service):
    """A service on keepers (``IPYTWIST_WORKER_LINK=socket``) whose token is the one
    kept in its state directory (no ``--token``); ``server.json`` counts only once
    this very process wrote it (one killed before leaves its own behind)."""

    def __init__(self, base_dir: str, *extra: str) -> None:
        env = checkout_env(os.path.join(base_dir, "ipython"))
        env["IPYTWIST_WORKER_LINK"] = "socket"
        super().__init__(base_dir, *extra, env=env)

    def argv(self) -> list[str]:
        argv = super().argv()
        at = argv.index("--token")
        return argv[:at] + argv[at + 2 :]

    def listening(self) -> bool:
        if not super().listening() or self.proc is None or self.info["pid"] != self.proc.pid:
            return False
        self.token = self.info["token"]
        return True

    def stop(self) -> int | None:
        """Stopped (if it still runs); its log must show no unhandled error or traceback."""
        code = super().stop()
        for marker in ("Unhandled Error", "Traceback (most recent call last)"):
            assert marker not in self.log(), f"{marker!r} in {self.log_path}"
        return code

    def again(self, *extra: str) -> DurableService:
        """A new service on the same directory (this one has ended)."""
        return DurableService(self.base_dir, *(extra or self.extra)).start()

    def kill(self) -> None:
        """SIGKILL, as the OOM killer does."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self) -> int:
        """SIGTERM, waited for: the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def record(self, kernel_id: str) -> dict[str, Any]:
        """The kernel's ``kernel.json``."""
        with open(os.path.join(self.kernel_dir(kernel_id), "kernel.json")) as f:
            data: dict[str, Any] = json.load(f)
        return data

    def keeper(self, kernel_id: str, other_than: int | None = None) -> int:
        """The keeper the kernel's record names, once it names one (a fork server's
        answer comes a moment after the start, or restart, was asked for)."""

        def named() -> int | None:
            pid = self.record(kernel_id).get("keeper_pid")
            return pid if isinstance(pid, int) and pid != other_than else None

        found: int = wait_for(named, 30, "the kernel's keeper in its record", 0.01)
        return found

    def kernel_dir(self, kernel_id: str) -> str:
        return os.path.join(self.state_dir, "kernels", kernel_id)

    def listed(self, kernel_id: str, timeout: float = 30) -> dict[str, Any]:
        """The kernel's model once the REST API lists it."""

        def find() -> dict[str, Any] | None:
            models = self.request("GET", "/api/kernels")
            return next((m for m in models if m["id"] == kernel_id), None)

        found: dict[str, Any] = wait_for(find, timeout, f"kernel {kernel_id} to be listed", 0.05)
        return found


@contextmanager
def durable_base() -> Iterator[str]:
    """A short directory (a socket's path holds 107 bytes) for services and their
    kernels; after, every keeper still named in it ends (with its interpreter's group)."""
    base = tempfile.mkdtemp(prefix="dk", dir="/tmp")
    try:
        yield base
    finally:
        end_keepers(os.path.join(base, "state"))
        shutil.rmtree(base, ignore_errors=True)


class ForkService(DurableService):
    """A durable service whose keepers its fork server forks (the default; a class of
    its own so that the fork server's tests say what they rely on)."""


F = TypeVar("F", bound=ForkService)


@contextmanager
def fork_service(kind: type[F]) -> Iterator[F]:
    """A service of ``kind`` started on a durable base, stopped after."""
    with durable_base() as base:
        service = kind(base).start()
        try:
            yield service
        finally:
            service.stop()
