"""``makeService`` from parsed ``twistd ipytwist`` options: its service tree, built and
then started and stopped on a ``MemoryReactorClock`` (the listening "port" is the
fake reactor's record; nothing binds, nothing is spawned)."""

from __future__ import annotations

import json
import os
import stat
from typing import Any

import pytest
from glue_fakes import Browser, no_zmq_sockets
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.python.failure import Failure

from ipytwist.host import KernelHost
from ipytwist.tap import Options, makeService
from ipytwist.web.guard import GuardedSite

TOKEN = "make-service-token"


def options(state_dir: str, *extra: str) -> Options:
    opts = Options()
    opts.parseOptions(
        ["--state-dir", state_dir, "--token", TOKEN, "--listen", "tcp:0:interface=127.0.0.1"]
        + list(extra)
    )
    return opts


def services(top: MultiService) -> list[Any]:
    return list(IService(top))


def test_the_service_tree(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    no_zmq_sockets(monkeypatch)
    reactor = MemoryReactorClock()
    state_dir = str(tmp_path / "state")
    top = makeService(options(state_dir, "--cull-idle", "30", "--max-kernels", "3"), reactor)
    assert isinstance(top, MultiService)
    (host,) = [s for s in services(top) if isinstance(s, KernelHost)]
    (listening,) = [s for s in services(top) if isinstance(s, StreamServerEndpointService)]
    # The host starts before the listener and stops after it.
    order = services(top)
    assert order.index(host) < order.index(listening)
    assert host.reactor is reactor and host.config.state_dir == state_dir
    assert (host.config.cull_idle, host.config.max_kernels) == (30.0, 3)
    # Both transports, with the one configuration.
    assert [t.name for t in host.transports] == ["zmq", "websocket"]
    assert all(t.config is host.config for t in host.transports)
    assert isinstance(listening.factory, GuardedSite)
    # Built, not started: nothing listens, no directory, no kernel.
    assert not top.running and reactor.tcpServers == []
    assert not os.path.exists(state_dir)
    assert host.kernels == {}


def test_starting_listens_and_writes_server_json_then_stopping_removes_it(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_zmq_sockets(monkeypatch)
    reactor = MemoryReactorClock()
    state_dir = str(tmp_path / "state")
    top = makeService(options(state_dir), reactor)
    top.privilegedStartService()
    top.startService()
    ((port, factory, _backlog, interface),) = reactor.tcpServers
    assert (port, interface) == (0, "127.0.0.1")
    assert isinstance(factory, GuardedSite)
    info_path = os.path.join(state_dir, "server.json")
    assert stat.S_IMODE(os.stat(state_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(info_path).st_mode) == 0o600
    with open(info_path) as f:
        info = json.load(f)
    assert info["token"] == TOKEN and info["state_dir"] == state_dir
    assert info["url"].startswith("http://127.0.0.1:") and info["pid"] == os.getpid()

    d = top.stopService()
    results: list[Any] = []
    d.addBoth(results.append)
    assert len(results) == 1 and not isinstance(results[0], Failure)  # stopped, at once
    assert not os.path.exists(info_path)


def test_the_site_in_the_tree_knows_the_token(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The factory makeService listens with answers with the token from the options."""
    no_zmq_sockets(monkeypatch)
    reactor = MemoryReactorClock()
    top = makeService(options(str(tmp_path / "state")), reactor)
    (listening,) = [s for s in services(top) if isinstance(s, StreamServerEndpointService)]
    browser = Browser(listening.factory)
    assert browser.request("GET", "/api/kernelspecs", token=TOKEN).code == 200
    assert browser.request("GET", "/api/kernelspecs", token="other").code == 401


def test_the_settings_reach_the_site_and_both_transports(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_zmq_sockets(monkeypatch)
    argv = ("--header-timeout", "3", "--max-message-bytes", "1000", "--max-starting", "3")
    top = makeService(options(str(tmp_path / "state"), *argv), MemoryReactorClock())
    (listening,) = [s for s in services(top) if isinstance(s, StreamServerEndpointService)]
    (host,) = [s for s in services(top) if isinstance(s, KernelHost)]
    assert listening.factory.protocol().header_timeout == 3.0
    assert host.config.max_message_bytes == 1000
    assert all(t.config.max_message_bytes == 1000 for t in host.transports)
    assert host.starts.limit == 3  # interpreters started at once


def test_max_starting_defaults_to_the_cpus_and_0_is_no_limit(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_zmq_sockets(monkeypatch)
    for argv, limit in (((), len(os.sched_getaffinity(0))), (("--max-starting", "0"), 1 << 30)):
        top = makeService(options(str(tmp_path / "state"), *argv), MemoryReactorClock())
        (host,) = [s for s in services(top) if isinstance(s, KernelHost)]
        assert host.starts.limit == limit


@pytest.mark.parametrize(
    "argv",
    [
        ["--max-kernels", "-1"],
        ["--max-starting", "-1"],
        ["--cull-idle", "-5"],
        ["--replay-messages", "0"],
        ["--header-timeout", "0"],
        ["--max-message-bytes", "0"],
        ["--listen", "nonsense:1"],
        ["--listen", "tcp:70000"],
    ],
)
def test_bad_options_are_refused_before_anything_is_built(tmp_path: Any, argv: list[str]) -> None:
    with pytest.raises(usage.UsageError):
        options(str(tmp_path / "state"), *argv)


def test_an_unsafe_state_dir_is_refused(tmp_path: Any) -> None:
    unsafe = tmp_path / "shared"
    unsafe.mkdir()
    unsafe.chmod(0o777)
    with pytest.raises(usage.UsageError, match="unsafe"):
        options(str(unsafe))
