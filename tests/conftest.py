"""Shared fixtures: the ipytwist kernelspec in a temporary JUPYTER_PATH, kernels of the
module's service (``svc``, see :func:`support.service.service_fixture`), and a kernel
started through jupyter_client."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import support  # noqa: F401 - puts bench/ (its benchlib) on sys.path
from benchlib.servers import Service
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager
from support.jupyter_kernel import forget_arrived, running_kernel
from support.service import ServicePool

from ipytwist.kernelspec import kernel_json

_JUPYTER_DIR = tempfile.mkdtemp(prefix="ipytwist-test-jupyter-")
_IPYTHON_DIR = tempfile.mkdtemp(prefix="ipytwist-test-ipython-")


def _install_specs() -> None:
    """Kernelspecs for ipytwist and, as the reference, ipykernel; found first on JUPYTER_PATH."""
    kernels = os.path.join(_JUPYTER_DIR, "kernels")
    for name, spec in {
        "ipytwist": kernel_json(sys.executable),
        "ipykernel-ref": {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "interrupt_mode": "signal",
        },
    }.items():
        os.makedirs(os.path.join(kernels, name), exist_ok=True)
        with open(os.path.join(kernels, name, "kernel.json"), "w") as f:
            json.dump(spec, f)
    os.environ["JUPYTER_PATH"] = _JUPYTER_DIR + os.pathsep + os.environ.get("JUPYTER_PATH", "")
    os.environ["IPYTHONDIR"] = _IPYTHON_DIR
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")


_install_specs()


def pytest_unconfigure(config: Any) -> None:
    """Leave no ipytwist-test-* directories behind in the temp dir."""
    for path in (_JUPYTER_DIR, _IPYTHON_DIR):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def jupyter_dir() -> str:
    return _JUPYTER_DIR


@pytest.fixture
def clients() -> Iterator[list[Any]]:
    """WebSocket clients a test opens (append them); all closed afterwards."""
    opened: list[Any] = []
    yield opened
    for c in opened:
        c.close()


def _kernel_of(svc: Service) -> Iterator[str]:
    kid = svc.start_kernel()
    try:
        yield kid
    finally:
        svc.delete_kernel(kid)


@pytest.fixture
def kernel_id(svc: Service) -> Iterator[str]:
    """A kernel of the module's service for one test alone, deleted after it."""
    yield from _kernel_of(svc)


@pytest.fixture(scope="module")
def module_kernel_id(svc: Service) -> Iterator[str]:
    """One kernel of the module's service for all its tests that use it."""
    yield from _kernel_of(svc)


@pytest.fixture(scope="session")
def service_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServicePool]:
    """The services modules share (``service_fixture(..., shared=True)``)."""
    pool = ServicePool(tmp_path_factory)
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def ipytwist_kernel() -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    """An ipytwist kernel started from its kernelspec, for the tests of
    test_kernel_integration.py and then test_kernel_recovery.py (one kernel, as when
    they were one module)."""
    with running_kernel("ipytwist") as (km, kc):
        yield km, kc


@pytest.fixture
def kc(ipytwist_kernel: tuple[KernelManager, BlockingKernelClient]) -> BlockingKernelClient:
    """The client of :func:`ipytwist_kernel`, with what earlier tests left unread dropped."""
    client = ipytwist_kernel[1]
    forget_arrived(client)
    return client


@pytest.fixture
def km(ipytwist_kernel: tuple[KernelManager, BlockingKernelClient]) -> KernelManager:
    """The manager of :func:`ipytwist_kernel`."""
    return ipytwist_kernel[0]
