"""Helpers for tests that drive a real kernel through jupyter_client."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager


@contextlib.contextmanager
def running_kernel(name: str = "ipytwist") -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    """Start a kernel from its kernelspec; always shut it down afterwards."""
    km = KernelManager(kernel_name=name)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=30)
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
