"""Time in the glue, on a fake clock: culling, the login rate limit window, login
cookie lifetime, grace periods, interrupt nudges and the HTTP header timeout.
Nothing here sleeps or reads the wall clock to decide a result."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
from glue_fakes import TOKEN, Browser, Requester, make_host, make_site_env
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ipytwist.kernel.supervisor import INTERRUPT_NUDGES
from ipytwist.web.auth import COOKIE_MAX_AGE, FAILURE_WINDOW, MAX_FAILURES, FailureLimiter
from ipytwist.web.guard import HEADER_TIMEOUT
from ipytwist.wire import new_message
from ipytwist.worker import NUDGE_SIGNAL

CULL_IDLE = 60.0
#: How often the host looks for idle kernels with cull_idle=60 (cull_idle / 4).
CULL_EVERY = 15.0


# -- culling ------------------------------------------------------------------------------


def test_the_cull_loop_runs_on_the_reactor_clock(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel long idle is culled at the host's next look, not before."""
    env = make_host(tmp_path, monkeypatch, cull_idle=CULL_IDLE)
    hk = env.start_kernel()
    hk.kernel.last_activity -= 10 * CULL_IDLE  # idle for ten minutes, on any clock
    env.clock.advance(CULL_EVERY - 0.5)
    assert env.host.get(hk.id) is hk
    env.clock.advance(0.5)
    assert env.host.get(hk.id) is None
    assert env.provisioner.workers[0].stopped
    assert not os.path.exists(os.path.join(env.state_dir, f"kernel-{hk.id}.json"))


def test_busy_or_connected_kernels_are_not_culled(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_host(tmp_path, monkeypatch, cull_idle=CULL_IDLE)
    busy, connected, idle = env.start_kernel(), env.start_kernel(), env.start_kernel()
    busy.kernel.handle("shell", new_message("execute_request", {"code": "x"}, "s"), Requester())
    assert busy.kernel.execution_state == "busy"
    connected.attachments["websocket"].connections.add(object())  # an open WebSocket
    for hk in (busy, connected, idle):
        hk.kernel.last_activity -= 10 * CULL_IDLE
    env.clock.advance(CULL_EVERY)
    assert set(env.host.kernels) == {busy.id, connected.id}


def test_a_kernel_used_only_over_zeromq_is_not_culled(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clients on every transport count: `jupyter console --existing` keeps its kernel."""
    env = make_host(tmp_path, monkeypatch, cull_idle=CULL_IDLE)
    hk = env.start_kernel()
    zmq_channels = hk.attachments["zmq"].channels
    zmq_channels.clients = 1
    hk.kernel.last_activity -= 10 * CULL_IDLE
    env.clock.advance(CULL_EVERY)
    assert env.host.get(hk.id) is hk
    assert hk.model()["connections"] == 1
    zmq_channels.clients = 0  # the console has gone
    env.clock.advance(CULL_EVERY)
    assert env.host.get(hk.id) is None
    assert zmq_channels.closed


def test_a_fresh_kernel_outlives_the_cull_period(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_host(tmp_path, monkeypatch, cull_idle=CULL_IDLE)
    hk = env.start_kernel()
    env.clock.pump([CULL_EVERY] * 3)  # 45 s < 60 s
    assert env.host.get(hk.id) is hk


def test_no_culling_without_cull_idle(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_host(tmp_path, monkeypatch)
    hk = env.start_kernel()
    hk.kernel.last_activity -= 1e6
    env.clock.pump([60.0] * 10)
    assert env.host.get(hk.id) is hk
    assert [c for c in env.clock.getDelayedCalls() if c.active()] == []


def test_idleness_is_measured_on_the_reactor_clock(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Idle for cull_idle seconds of the host's clock, with no connection: culled."""
    env = make_host(tmp_path, monkeypatch, cull_idle=CULL_IDLE)
    hk = env.start_kernel()
    env.clock.pump([CULL_EVERY] * 5)  # 75 s
    assert env.host.get(hk.id) is None


# -- the warm pool ----------------------------------------------------------------------------


def test_the_warm_pool_refills_on_the_next_reactor_turn(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_host(tmp_path, monkeypatch, prespawn=1)
    assert len(env.provisioner.workers) == 1 and env.host.warm_count() == 0
    env.provisioner.report_ready()
    assert env.host.warm_count() == 1
    hk = env.host.start_kernel()
    assert hk.kernel.supervisor.pid == env.provisioner.workers[0].pid  # the warm one, ready
    assert hk.kernel.execution_state == "idle"
    assert len(env.provisioner.workers) == 1  # the refill waits for the next turn
    env.clock.advance(0)
    assert len(env.provisioner.workers) == 2
    env.provisioner.report_ready()
    assert env.host.warm_count() == 1


# -- the login rate limit window -----------------------------------------------------------------


def test_the_limiter_forgets_each_failure_after_the_window() -> None:
    clock = Clock()
    limiter = FailureLimiter(clock)
    for _ in range(MAX_FAILURES - 1):
        limiter.fail("a")
        clock.advance(1)
    assert not limiter.blocked("a")
    limiter.fail("a")  # the 10th, at t=9
    assert limiter.blocked("a") and not limiter.blocked("b")
    assert limiter.retry_after("a") == int(FAILURE_WINDOW - 9) + 1
    clock.advance(FAILURE_WINDOW - 9 - 0.001)  # just before the first one leaves
    assert limiter.blocked("a")
    clock.advance(0.001)  # t=60: the failure at t=0 is out of the window
    assert not limiter.blocked("a")
    limiter.fail("a")
    assert limiter.blocked("a")
    clock.advance(FAILURE_WINDOW)
    assert not limiter.blocked("a") and limiter.retry_after("a") == 0


def test_the_limiter_keeps_a_bounded_number_of_addresses() -> None:
    clock = Clock()
    limiter = FailureLimiter(clock, limit=1)
    limiter.fail("first")
    for i in range(10_000):
        limiter.fail(f"10.0.{i // 256}.{i % 256}")
    assert not limiter.blocked("first")  # the oldest address was forgotten
    assert limiter.blocked("10.0.39.15")


def test_the_site_lifts_the_limit_once_the_window_has_passed(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, _, site = make_site_env(tmp_path, monkeypatch)
    browser = Browser(site)
    for _ in range(MAX_FAILURES):
        browser.request("GET", "/api/kernels", token="wrong")
    assert browser.request("GET", "/api/kernels", token=None).code == 429
    env.clock.advance(FAILURE_WINDOW - 1)
    assert browser.request("GET", "/api/kernels", token=None).code == 429
    env.clock.advance(1)
    assert browser.request("GET", "/api/kernels", token=None).code == 401


# -- the login cookie's lifetime --------------------------------------------------------------


def login(browser: Browser) -> str:
    r = browser.request("GET", f"/?token={TOKEN}", token=None)
    (cookie,) = r.headers["set-cookie"]
    assert f"max-age={COOKIE_MAX_AGE}" in cookie.lower()
    return cookie.split(";")[0]


def test_a_login_cookie_works_within_its_lifetime(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, _, site = make_site_env(tmp_path, monkeypatch)
    browser = Browser(site)
    cookie = login(browser)
    env.clock.advance(COOKIE_MAX_AGE - 3600)
    assert (
        browser.request("GET", "/api/kernels", token=None, headers={"Cookie": cookie}).code == 200
    )


def test_a_login_cookie_expires_on_the_reactor_clock(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, _, site = make_site_env(tmp_path, monkeypatch)
    browser = Browser(site)
    cookie = login(browser)
    env.clock.advance(COOKIE_MAX_AGE + 1)
    r = browser.request("GET", "/api/kernels", token=None, headers={"Cookie": cookie})
    assert r.code == 401


# -- grace periods and nudges ------------------------------------------------------------------


def test_interrupt_nudges_follow_on_the_clock_while_the_cell_runs(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POST .../interrupt: SIGINT now, then NUDGE_SIGNAL at each INTERRUPT_NUDGES delay
    while the cell still runs, and none once it has answered."""
    env, _, site = make_site_env(tmp_path, monkeypatch)
    hk = env.start_kernel()
    worker = env.provisioner.workers[0]
    hk.kernel.handle("shell", new_message("execute_request", {"code": "x"}, "s"), Requester())
    assert Browser(site).request("POST", f"/api/kernels/{hk.id}/interrupt").code == 204
    assert worker.signals == [signal.SIGINT]
    env.clock.advance(INTERRUPT_NUDGES[0])
    assert worker.signals == [signal.SIGINT, NUDGE_SIGNAL]
    env.clock.advance(INTERRUPT_NUDGES[1] - INTERRUPT_NUDGES[0])
    assert worker.signals == [signal.SIGINT, NUDGE_SIGNAL, NUDGE_SIGNAL]
    worker.reply({"status": "error", "ename": "KeyboardInterrupt", "evalue": "", "traceback": []})
    env.clock.advance(max(INTERRUPT_NUDGES))
    assert worker.signals == [signal.SIGINT, NUDGE_SIGNAL, NUDGE_SIGNAL]


def test_headers_of_the_real_site_must_arrive_within_the_time_limit(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """make_site's channel cuts a slow client off HEADER_TIMEOUT seconds after it
    connected, on the reactor it was given."""
    env, _, site = make_site_env(tmp_path, monkeypatch)
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /api/kernels HTTP/1.1\r\nHost: localhost\r\n")
    env.clock.advance(HEADER_TIMEOUT - 0.1)
    assert not transport.disconnecting
    env.clock.advance(0.2)
    assert transport.disconnecting
