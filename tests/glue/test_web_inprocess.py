"""The site in process: REST and the resource tree, over a real HTTP channel of
``make_site`` on a ``StringTransport``, with a KernelHost whose workers are fakes
and whose reactor is a ``MemoryReactorClock`` (no process, no socket, no sleep).
(Authentication, the kernel WebSocket route and static files: test_web_auth_inprocess.py.)"""

from __future__ import annotations

import os
import signal
import stat
import uuid
from typing import Any

import pytest
from glue_fakes import (
    Browser,
    HostEnv,
    Requester,
    Response,
    make_site_env,
    parse_response,
)
from support.json_errors import assert_json_error
from twisted.internet.defer import Deferred

from ipytwist.web.guard import MAX_BODY_BYTES
from ipytwist.wire import new_message

# -- /api/kernels ----------------------------------------------------------------------


def test_create_list_get_and_delete_a_kernel(web: tuple[HostEnv, Browser]) -> None:
    env, browser = web
    created = browser.request("POST", "/api/kernels", body=b"{}")
    assert created.code == 201
    model = created.json()
    kernel_id = model["id"]
    assert uuid.UUID(kernel_id)
    assert created.header("location") == f"/api/kernels/{kernel_id}"
    assert model["name"] == "ipytwist"
    assert model["execution_state"] == "starting"
    assert model["connections"] == 0
    assert len(env.provisioner.workers) == 1
    connection_file = os.path.join(env.state_dir, f"kernel-{kernel_id}.json")
    assert os.path.exists(connection_file)  # written by the ZeroMQ transport
    assert stat.S_IMODE(os.stat(connection_file).st_mode) == 0o600

    env.provisioner.report_ready()
    listed = browser.request("GET", "/api/kernels")
    assert listed.code == 200
    assert [(k["id"], k["execution_state"]) for k in listed.json()] == [(kernel_id, "idle")]
    one = browser.request("GET", f"/api/kernels/{kernel_id}")
    assert one.code == 200 and one.json()["id"] == kernel_id
    assert one.header("cache-control") == "no-store"

    deleted = browser.request("DELETE", f"/api/kernels/{kernel_id}")
    assert deleted.code == 204 and deleted.body == b""
    assert env.provisioner.workers[0].stopped
    assert env.host.get(kernel_id) is None
    assert not os.path.exists(connection_file)
    assert_json_error(browser.request("GET", f"/api/kernels/{kernel_id}"), 404, "Not Found")
    assert browser.request("GET", "/api/kernels").json() == []


def test_delete_answers_once_the_worker_has_stopped(web: tuple[HostEnv, Browser]) -> None:
    env, browser = web
    hk = env.start_kernel()
    worker = env.provisioner.workers[0]
    worker.stop_result = Deferred()
    _, transport = browser.send("DELETE", f"/api/kernels/{hk.id}")
    assert worker.stopped
    assert b"HTTP/1.1" not in transport.value()  # not answered yet
    worker.stop_result.callback("exited with status 0")
    assert transport.value().startswith(b"HTTP/1.1 204 ")


def test_create_by_kernelspec_name(web: tuple[HostEnv, Browser]) -> None:
    env, browser = web
    for name in ("ipytwist", "python3"):
        r = browser.request("POST", "/api/kernels", body=b'{"name": "%s"}' % name.encode())
        assert r.code == 201, (name, r)
    assert_json_error(
        browser.request("POST", "/api/kernels", body=b'{"name": "julia"}'), 404, "Not Found"
    )
    assert len(env.host.kernels) == 2


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"name": 5}',
        b"\xff\xfe{}",
        b"[" * 50_000,  # nesting deep enough for RecursionError in json
    ],
    ids=["garbage", "array", "name-not-str", "not-utf8", "deep-nesting"],
)
def test_a_bad_body_is_a_400_and_starts_nothing(web: tuple[HostEnv, Browser], body: bytes) -> None:
    env, browser = web
    assert_json_error(browser.request("POST", "/api/kernels", body=body), 400, "Bad Request")
    assert env.provisioner.workers == [] and env.host.kernels == {}


def test_max_kernels_is_a_403_resource_limit(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, _, site = make_site_env(tmp_path, monkeypatch, max_kernels=1)
    browser = Browser(site)
    assert browser.request("POST", "/api/kernels").code == 201
    assert_json_error(browser.request("POST", "/api/kernels"), 403, "Resource Limit")
    assert len(env.host.kernels) == 1


def test_interrupt_signals_the_worker_running_a_cell(web: tuple[HostEnv, Browser]) -> None:
    env, browser = web
    hk = env.start_kernel()
    worker = env.provisioner.workers[0]
    # Nothing running: answered, nothing to signal.
    r = browser.request("POST", f"/api/kernels/{hk.id}/interrupt")
    assert r.code == 204 and worker.signals == []
    hk.kernel.handle("shell", new_message("execute_request", {"code": "1"}, "s"), Requester())
    assert worker.sent[-1]["req"] == "execute"
    r = browser.request("POST", f"/api/kernels/{hk.id}/interrupt")
    assert r.code == 204
    assert worker.signals == [signal.SIGINT]


def restart_and_get_ready(env: HostEnv, browser: Browser) -> tuple[Any, Response | None]:
    hk = env.start_kernel()
    _, transport = browser.send("POST", f"/api/kernels/{hk.id}/restart")
    assert env.provisioner.workers[0].stopped
    assert len(env.provisioner.workers) == 2
    assert b"HTTP/1.1" not in transport.value()  # not before the new interpreter is up
    env.provisioner.report_ready()
    return hk, parse_response(transport.value())


def test_restart_answers_when_the_new_interpreter_is_ready(web: tuple[HostEnv, Browser]) -> None:
    env, browser = web
    hk, r = restart_and_get_ready(env, browser)
    assert r is not None and r.complete and r.code == 200
    assert r.json()["id"] == hk.id
    assert hk.kernel.execution_state == "idle"


def test_the_restart_reply_shows_the_kernel_idle(web: tuple[HostEnv, Browser]) -> None:
    """The reply's model is taken once the kernel is idle again (during the refactor the
    ready waiters once fired before the state changed, and the reply said 'restarting')."""
    env, browser = web
    _, r = restart_and_get_ready(env, browser)
    assert r is not None and r.json()["execution_state"] == "idle"


@pytest.mark.parametrize(
    "method, path, code",
    [
        ("PUT", "/api/kernels", 405),
        ("PATCH", "/api/kernels/{id}", 405),
        ("GET", "/api/kernels/{id}/interrupt", 405),
        ("GET", "/api/kernels/{id}/restart", 405),
        ("POST", "/api/kernelspecs", 405),
        ("GET", "/api/kernelspecs/ipytwist/more", 404),
        ("GET", "/api/kernelspecs/julia", 404),
        ("GET", "/api/kernels/not-a-uuid", 404),
        ("POST", "/api/kernels/not-a-uuid/interrupt", 404),
        ("GET", f"/api/kernels/{uuid.UUID(int=1, version=4)}", 404),  # no such kernel
        ("GET", "/api/kernels/{id}/nothing", 404),
        ("GET", "/api/nothing", 404),
        ("POST", "/api/status", 404),
    ],
)
def test_unknown_routes_and_methods_are_json_errors(
    web: tuple[HostEnv, Browser], method: str, path: str, code: int
) -> None:
    env, browser = web
    hk = env.start_kernel()
    r = browser.request(method, path.format(id=hk.id))
    reason = {404: "Not Found", 405: "Method Not Allowed"}[code]
    assert_json_error(r, code, reason)


def test_kernelspecs_version_and_status(web: tuple[HostEnv, Browser]) -> None:
    env, browser = web
    specs = browser.request("GET", "/api/kernelspecs").json()
    assert specs["default"] == "ipytwist"
    spec = specs["kernelspecs"]["ipytwist"]
    assert spec["spec"]["language"] == "python"
    assert "{connection_file}" in spec["spec"]["argv"]
    assert browser.request("GET", "/api/kernelspecs/ipytwist").json() == spec
    assert isinstance(browser.request("GET", "/api").json()["version"], str)

    status = browser.request("GET", "/api/status").json()
    assert (status["kernels"], status["connections"], status["warm_kernels"]) == (0, 0, 0)
    env.start_kernel()
    env.start_kernel()
    status = browser.request("GET", "/api/status").json()
    assert status["kernels"] == 2
    for key in ("started", "last_activity"):
        assert status[key].endswith("Z") and "T" in status[key]


def test_transcript_endpoints(web: tuple[HostEnv, Browser]) -> None:
    env, browser = web
    hk = env.start_kernel()
    base = f"/api/kernels/{hk.id}/transcript"
    body = browser.request("GET", base).json()
    assert body["kernel"]["id"] == hk.id
    nb = browser.request("GET", base + ".ipynb")
    assert nb.code == 200 and nb.json()["nbformat"] == 4
    assert f"ipytwist-{hk.id[:8]}.ipynb" in (nb.header("content-disposition") or "")
    assert browser.request("DELETE", base).code == 204
    assert_json_error(browser.request("DELETE", base + ".ipynb"), 405, "Method Not Allowed")
    assert_json_error(browser.request("GET", base + "/cells/nope/output"), 404, "Not Found")


# -- bodies refused from their headers ----------------------------------------------------


def test_a_body_over_the_limit_is_refused_before_anything_starts(
    web: tuple[HostEnv, Browser],
) -> None:
    env, browser = web
    _, transport = browser.send("POST", "/api/kernels", content_length=MAX_BODY_BYTES + 1)
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert transport.disconnecting
    assert env.provisioner.workers == []


def test_a_body_without_credentials_is_refused_with_401(web: tuple[HostEnv, Browser]) -> None:
    env, browser = web
    _, transport = browser.send("POST", "/api/kernels", body=b"{}", token=None)
    assert transport.value().startswith(b"HTTP/1.1 401 ")
    assert env.provisioner.workers == []
