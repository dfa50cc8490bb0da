"""``--keep-kernels`` and ``--orphan-timeout`` reach the host and its keepers; a timeout
that is not positive is refused before anything is built."""

from __future__ import annotations

from typing import Any

import pytest
from glue_fakes import no_zmq_sockets
from twisted.application.service import IService
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage

from ipytwist.host import KernelHost
from ipytwist.kernel.linkspawn import LINK_ENV, LinkProvisioner
from ipytwist.tap import Options, makeService


def options(state_dir: str, *extra: str) -> Options:
    opts = Options()
    opts.parseOptions(["--state-dir", state_dir, "--listen", "tcp:0:interface=127.0.0.1", *extra])
    return opts


def host_of(opts: Options) -> KernelHost:
    top = makeService(opts, MemoryReactorClock())
    (host,) = [s for s in IService(top) if isinstance(s, KernelHost)]
    return host


def test_the_settings_reach_the_host_and_the_keepers(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_zmq_sockets(monkeypatch)
    monkeypatch.setenv(LINK_ENV, "socket")
    host = host_of(options(str(tmp_path / "s"), "--keep-kernels", "--orphan-timeout", "7"))
    assert host.config.keep_kernels and host.config.orphan_timeout == 7.0
    assert isinstance(host.links, LinkProvisioner) and host.links.orphan_timeout == 7.0


def test_by_default_sigterm_ends_kernels_and_orphans_wait_an_hour(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_zmq_sockets(monkeypatch)
    monkeypatch.setenv(LINK_ENV, "socket")
    host = host_of(options(str(tmp_path / "s")))
    assert not host.config.keep_kernels
    assert host.links is not None and host.links.orphan_timeout == 3600.0


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_an_orphan_timeout_that_is_not_positive_is_refused(tmp_path: Any, value: str) -> None:
    with pytest.raises(usage.UsageError):
        options(str(tmp_path / "s"), "--orphan-timeout", value)
