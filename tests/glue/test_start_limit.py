"""Spawn storms on fakes: at most ``max_starting`` interpreters start at once and the
rest wait their turn (kernel/startlimit.py), and concurrent restarts of one kernel are
one restart (kernel/core.py), through the host and its REST API."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from glue_fakes import Browser, HostEnv, make_site_env, parse_response
from support.fakes import FakeProvisioner, FakeWorker
from twisted.internet.task import Clock

from ipytwist.kernel import Kernel
from ipytwist.kernel.startlimit import StartLimit

STORM = 50


class Listener:
    """What a supervisor would be told."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.exits: list[tuple[Any, str]] = []

    def worker_output(self, name: str, data: bytes) -> None:
        pass

    def worker_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def worker_exited(self, worker: Any, description: str) -> None:
        self.exits.append((worker, description))


def test_at_most_the_limit_start_and_the_next_one_starts_when_one_is_ready() -> None:
    prov = FakeProvisioner()
    limit = StartLimit(prov, 2)
    queued = [limit.start(Listener()) for _ in range(5)]
    assert len(prov.workers) == 2
    assert [q.pid for q in queued] == [prov.workers[0].pid, prov.workers[1].pid, None, None, None]
    prov.workers[0].ready()
    assert len(prov.workers) == 3 and queued[2].pid == prov.workers[2].pid
    prov.workers[1].die()  # an end before ready frees the place too
    assert len(prov.workers) == 4
    assert queued[1].listener.exits == [(queued[1], "was killed by signal 9 (SIGKILL)")]
    assert queued[0].listener.events == [{"ev": "ready", "pid": prov.workers[0].pid}]
    assert limit.started == 4


def test_a_worker_stopped_while_it_waits_never_starts() -> None:
    prov = FakeProvisioner()
    limit = StartLimit(prov, 1)
    first, second, third = (limit.start(Listener()) for _ in range(3))
    assert second.stop(Clock()).called
    prov.workers[0].ready()
    assert len(prov.workers) == 2 and third.pid == prov.workers[1].pid
    second.send({"req": "execute"})
    second.signal(signal.SIGINT)  # nothing to deliver to, nothing raised


def test_a_waiting_worker_starts_with_the_output_gate_as_it_is() -> None:
    prov = FakeProvisioner()
    limit = StartLimit(prov, 1)
    limit.start(Listener())
    waiting = limit.start(Listener())
    waiting.pause_output()
    prov.workers[0].ready()
    assert prov.workers[1].output_paused
    waiting.resume_output()
    assert not prov.workers[1].output_paused


def test_a_queued_worker_that_cannot_start_is_reported_as_ended() -> None:
    class Failing(FakeProvisioner):
        def start(self, listener: Any) -> FakeWorker:
            if len(self.workers) == 1:
                raise OSError(11, "Resource temporarily unavailable")
            return super().start(listener)

    prov = Failing()
    limit = StartLimit(prov, 1)
    limit.start(Listener())
    listener = Listener()
    waiting = limit.start(listener)
    prov.workers[0].ready()
    assert listener.exits and listener.exits[0][0] is waiting
    assert "could not be started" in listener.exits[0][1]
    assert limit.starting == [] and not limit.waiting


def storm_site(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[HostEnv, Browser]:
    env, _, site = make_site_env(tmp_path, monkeypatch, max_starting=2)
    return env, Browser(site)


def test_a_storm_of_posts_starts_two_interpreters_and_queues_the_rest(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """50 POST /api/kernels: each answered 201 at once, 'starting'; two interpreters
    start, and each one ready lets the next start, until all 50 are idle."""
    env, browser = storm_site(tmp_path, monkeypatch)
    answers = [browser.request("POST", "/api/kernels") for _ in range(STORM)]
    assert [r.code for r in answers] == [201] * STORM
    assert {r.json()["execution_state"] for r in answers} == {"starting"}
    assert len(env.provisioner.workers) == 2
    listed = browser.request("GET", "/api/kernels").json()
    assert len(listed) == STORM and {k["execution_state"] for k in listed} == {"starting"}
    while len(env.provisioner.workers) < STORM:
        before = len(env.provisioner.workers)
        env.provisioner.report_ready()
        assert len(env.provisioner.workers) - before <= 2
    env.provisioner.report_ready()
    states = {k["execution_state"] for k in browser.request("GET", "/api/kernels").json()}
    assert states == {"idle"}


def test_deleting_a_kernel_that_waits_its_turn_starts_nothing_for_it(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, browser = storm_site(tmp_path, monkeypatch)
    ids = [browser.request("POST", "/api/kernels").json()["id"] for _ in range(4)]
    assert browser.request("DELETE", f"/api/kernels/{ids[3]}").code == 204
    env.provisioner.report_ready()
    env.provisioner.report_ready()
    assert len(env.provisioner.workers) == 3


def test_concurrent_restarts_are_one_restart(web: tuple[HostEnv, Browser]) -> None:
    """50 POST .../restart of one kernel at once: one new interpreter; every request is
    answered 200, once it is ready, and not before."""
    env, browser = web
    hk = env.start_kernel()
    pending = [browser.send("POST", f"/api/kernels/{hk.id}/restart")[1] for _ in range(STORM)]
    assert len(env.provisioner.workers) == 2
    assert all(t.value() == b"" for t in pending)
    env.provisioner.report_ready()
    answers = [parse_response(t.value()) for t in pending]
    assert all(r is not None and r.complete and r.code == 200 for r in answers)
    assert {r.json()["execution_state"] for r in answers if r is not None} == {"idle"}
    # Once it is ready, the next restart is a restart again.
    browser.send("POST", f"/api/kernels/{hk.id}/restart")
    assert len(env.provisioner.workers) == 3


def test_a_restart_while_the_kernel_first_starts_waits_for_that_start() -> None:
    prov = FakeProvisioner()
    kernel = Kernel(Clock(), prov)
    started = kernel.start()
    restarted = kernel.restart()
    assert len(prov.workers) == 1 and not restarted.called
    prov.report_ready()
    assert started.called and restarted.called
    assert kernel.execution_state == "idle"
