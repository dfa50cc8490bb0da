"""Fixtures of the glue tests: the site on a host of fake workers (``web``); for the worker
process tests a fake reactor, a worker spawned on it, and ``os.kill``/``os.killpg``
recorded instead of sent."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from glue_fakes import Browser, HostEnv, make_site_env
from support.fake_process import FakeReactor, Listener, Spawned

from ipytwist.kernel.process import LocalProvisioner
from ipytwist.worker import SYNC_ENV, sync_marker


@pytest.fixture
def web(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[HostEnv, Browser]:
    """The site of a host whose workers are fakes, and a browser on it."""
    env, _, site = make_site_env(tmp_path, monkeypatch)
    return env, Browser(site)


@pytest.fixture
def killed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int]]:
    """os.kill and os.killpg, recorded instead of sent."""
    sent: list[tuple[str, int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append(("kill", pid, sig)))
    monkeypatch.setattr(os, "killpg", lambda pid, sig: sent.append(("killpg", pid, sig)))
    return sent


@pytest.fixture
def reactor() -> Iterator[FakeReactor]:
    r = FakeReactor()
    yield r
    r.close()


@pytest.fixture
def spawned(reactor: FakeReactor, killed: list[Any]) -> Spawned:
    """A worker started by the provisioner on the fake reactor: its protocol, process
    transport, listener and sync marker."""
    listener = Listener()
    proto = LocalProvisioner(reactor, python="/opt/py/bin/python3", env={}).start(listener)
    call = reactor.spawned[-1]
    marker = sync_marker(call["env"][SYNC_ENV])
    return proto, proto.transport, listener, marker
