"""The host's policies on fakes: a client's restart request follows
``--allow-client-shutdown`` as its shutdown does, and a kernel whose connection file
cannot be written (a full or read-only state directory) is neither registered nor left
running."""

from __future__ import annotations

import errno
import os
from typing import Any

import pytest
from glue_fakes import Browser, Requester, make_host, make_site_env
from support.json_errors import assert_json_error

import ipytwist.zmq.transport as zmq_transport
from ipytwist.host import KernelNotStarted
from ipytwist.wire import new_message


def client_asks(hk: Any, restart: bool) -> dict[str, Any]:
    """A client's shutdown_request on control; the reply's content."""
    client = Requester()
    request = new_message("shutdown_request", {"restart": restart}, "s")
    hk.kernel.handle("control", request, client)
    return client.reply_to(request["header"])["content"]


def test_a_clients_restart_leaves_the_shared_kernel_as_it_was(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --allow-client-shutdown, restart: true is answered as shutdown is (ok),
    and the interpreter (with every client's variables) stays."""
    env = make_host(tmp_path, monkeypatch)
    hk = env.start_kernel()
    assert client_asks(hk, restart=True) == {"status": "ok", "restart": True}
    assert len(env.provisioner.workers) == 1 and not env.provisioner.workers[0].stopped
    assert hk.kernel.execution_state == "idle" and env.host.get(hk.id) is hk
    assert client_asks(hk, restart=False) == {"status": "ok", "restart": False}
    assert env.host.get(hk.id) is hk and not env.provisioner.workers[0].stopped


def test_allow_client_shutdown_lets_a_client_restart_it(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_host(tmp_path, monkeypatch, client_shutdown=True)
    hk = env.start_kernel()
    assert client_asks(hk, restart=True) == {"status": "ok", "restart": True}
    assert env.provisioner.workers[0].stopped and len(env.provisioner.workers) == 2
    assert hk.kernel.execution_state == "restarting" and env.host.get(hk.id) is hk


def test_the_rest_restart_stays_allowed(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    env, _, site = make_site_env(tmp_path, monkeypatch)
    hk = env.start_kernel()
    Browser(site).send("POST", f"/api/kernels/{hk.id}/restart")
    assert env.provisioner.workers[0].stopped and len(env.provisioner.workers) == 2


def disk_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing a connection file fails as on a full disk."""

    def full(path: str, data: Any) -> None:
        with open(path, "w"):
            pass  # created, as on a full file system, then the write fails
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(zmq_transport, "write_private_json", full)


def test_a_kernel_whose_connection_file_cannot_be_written_is_not_started(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POST /api/kernels on a full disk: a 500 that says why, one log line; no kernel
    registered, no interpreter started, no sockets or empty file left; then, with room
    again, a POST works."""
    env, _, site = make_site_env(tmp_path, monkeypatch)
    browser = Browser(site)
    os.makedirs(env.state_dir, exist_ok=True)
    room = zmq_transport.write_private_json
    disk_full(monkeypatch)
    for _ in range(3):
        r = browser.request("POST", "/api/kernels")
        assert_json_error(r, 500, "Internal Server Error")
        assert "No space left on device" in r.json()["message"]
    assert env.host.kernels == {} and browser.request("GET", "/api/kernels").json() == []
    assert env.provisioner.workers == []
    assert os.listdir(env.state_dir) == []
    monkeypatch.setattr(zmq_transport, "write_private_json", room)
    assert browser.request("POST", "/api/kernels").code == 201


def test_a_warm_kernel_goes_back_to_the_pool_when_its_file_cannot_be_written(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_host(tmp_path, monkeypatch, prespawn=1)
    env.provisioner.report_ready()
    warm = env.host._spare[0]
    disk_full(monkeypatch)
    with pytest.raises(KernelNotStarted):
        env.host.start_kernel()
    assert env.host.kernels == {} and env.host._spare == [warm]
    assert len(env.provisioner.workers) == 1 and not env.provisioner.workers[0].stopped
    env.clock.advance(0)
    assert len(env.provisioner.workers) == 1  # the pool is full: nothing more started
