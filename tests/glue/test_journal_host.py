"""The host journals every durable kernel (in process, its keepers faked): where, with
which modes, removed when the kernel ends on purpose; a WebSocket session of a SIGKILLed service,
reconnecting to a new service that restored the kernel's journal, gets every message
once, in order, none repeated."""

from __future__ import annotations

import os
import stat
from typing import Any

import pytest
from glue_fakes import Browser, HostEnv, make_site_env
from test_websocket_inprocess import Socket

from ipytwist.kernel.journal import KernelJournal
from ipytwist.wire import new_message


class FakeLinks:
    """The host's link provisioner, its keepers faked: a kernel's worker is the fake
    provisioner's (the socket path and secret are the kernel's record's)."""

    def __init__(self, env: HostEnv) -> None:
        self.provisioner = env.provisioner
        self.reactor = env.clock

    def spawn(
        self, listener: Any, path: str, secret: bytes, kernel_id: str, told: Any = None
    ) -> Any:
        worker = self.provisioner.start(listener)
        worker.keeper = None
        return worker


def durable_env(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[HostEnv, Any]:
    env, _, site = make_site_env(tmp_path, monkeypatch)
    env.host.links = FakeLinks(env)  # type: ignore[assignment]  # (a stand-in)
    return env, site


def kernel_dir(env: HostEnv, kernel_id: str) -> str:
    return os.path.join(env.state_dir, "kernels", kernel_id)


def line(hk: Any, n: int) -> str:
    msg = new_message("stream", {"name": "stdout", "text": f"line {n}\n"}, hk.kernel.session)
    hk.kernel.output_log.publish(msg)
    return str(msg["header"]["msg_id"])


def lines(ws: Socket) -> list[str]:
    return [m["content"]["text"] for m in ws.messages() if m["msg_type"] == "stream"]


def test_a_served_kernel_is_journaled_0600_in_its_0700_directory_and_delete_removes_it(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, site = durable_env(tmp_path, monkeypatch)
    hk = env.start_kernel()
    directory = kernel_dir(env, hk.id)
    path = os.path.join(directory, "journal")
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.dirname(directory)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.join(directory, "kernel.json")).st_mode) == 0o600
    before = os.stat(path).st_size
    line(hk, 1)
    assert os.stat(path).st_size > before  # written as it comes
    assert Browser(site).request("DELETE", f"/api/kernels/{hk.id}").code == 204
    assert not os.path.exists(directory)


def test_a_session_reconnecting_to_the_next_service_gets_each_message_once_in_order(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, site = durable_env(tmp_path, monkeypatch)
    hk = env.start_kernel()
    path = f"/api/kernels/{hk.id}/channels?session_id=tab"
    tab = Socket(Browser(site), path)
    for n in range(1, 4):
        line(hk, n)
    assert lines(tab) == ["line 1\n", "line 2\n", "line 3\n"]
    away = Socket(Browser(site), f"/api/kernels/{hk.id}/channels?session_id=away")
    away.close()
    for n in range(4, 6):
        fifth = line(hk, n)
    tab.protocol.outbox.pause()  # its transport pushes back: what follows waits
    for n in range(6, 8):
        line(hk, n)
    assert lines(tab)[-1] == "line 5\n"
    # SIGKILL: nothing more is written; the next service restores the journal.
    env2, site2 = durable_env(tmp_path / "next", monkeypatch)
    hk2 = env2.start_kernel()
    assert hk2.durable is not None
    hk2.durable.journal.close()
    journal = KernelJournal.open(kernel_dir(env, hk.id), 1 << 20, 10_000, 1 << 20)
    restored = journal.restore(hk2.kernel.output_log, hk2.transcript)
    journal.follow(hk2.kernel, hk2.kernel.output_log, hk2.transcript)
    assert restored.sessions["tab"] == hk.kernel.output_log.position_after(fifth)
    back = Socket(Browser(site2), f"/api/kernels/{hk2.id}/channels?session_id=tab")
    assert lines(back) == ["line 6\n", "line 7\n"]
    other = Socket(Browser(site2), f"/api/kernels/{hk2.id}/channels?session_id=away")
    assert lines(other) == [f"line {n}\n" for n in range(4, 8)]
