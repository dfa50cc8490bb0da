"""One real JupyterHub for every test of this package (started once: a hub and a first
server take a few seconds), with alice's server spawned ahead."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest
from support.hub import JupyterHubProcess, UserServer


@pytest.fixture(scope="package")
def hub() -> Iterator[JupyterHubProcess]:
    with tempfile.TemporaryDirectory(prefix="ipytwist-hub-") as base:
        process = JupyterHubProcess(base)
        process.start()
        try:
            yield process
        finally:
            process.stop()


@pytest.fixture(scope="package")
def alice(hub: JupyterHubProcess) -> UserServer:
    """alice's server, spawned by the hub and ready, with a token of alice's."""
    hub.spawn("alice")
    return UserServer(hub, "alice", hub.user_token("alice"))
