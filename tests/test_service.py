"""The real service (``twistd -n ipytwist``) over REST and HTTP auth, with ``requests``.
(Kernels under the service, over WebSocket, ZeroMQ and signals: test_service_kernels.py.)
"""

from __future__ import annotations

import os
import stat
import uuid
from datetime import datetime
from typing import Any

import requests
from benchlib.servers import WARM_POOL, Service
from support.service import service_fixture

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
MODEL_KEYS = {"id", "name", "last_activity", "execution_state", "connections"}

svc = service_fixture("svc", *WARM_POOL, shared=True)


def assert_error(r: requests.Response, code: int, reason: str | None = None) -> dict[str, Any]:
    assert r.status_code == code, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"reason", "message"}, body
    assert isinstance(body["message"], str) and body["message"]
    if reason is not None:
        assert body["reason"] == reason
    return body


def assert_model(model: dict[str, Any]) -> None:
    assert set(model) == MODEL_KEYS, model
    assert str(uuid.UUID(model["id"])) == model["id"]
    assert model["name"] == "ipytwist"
    datetime.strptime(model["last_activity"], TIME_FORMAT)
    assert model["execution_state"] in ("starting", "idle", "busy")
    assert isinstance(model["connections"], int)


# -- REST: the happy paths ----------------------------------------------------


def test_kernel_crud(svc: Service) -> None:
    """POST /api/kernels answers 201 with a kernel model (UUID id, name, last_activity in
    %Y-%m-%dT%H:%M:%S.%fZ, execution_state, connections) and a 0600 connection file; the
    kernel is listed and readable; DELETE answers 204 and afterwards the kernel is 404 and
    its connection file is gone."""
    r = svc.api("POST", "/api/kernels", json={"name": "ipytwist"})
    assert r.status_code == 201, r.text
    model = r.json()
    assert_model(model)
    assert model["connections"] == 0
    kid = model["id"]
    assert r.headers["location"] == f"/api/kernels/{kid}"
    path = svc.connection_file(kid)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    r = svc.api("GET", "/api/kernels")
    assert r.status_code == 200
    listed = {m["id"]: m for m in r.json()}
    assert kid in listed
    assert_model(listed[kid])

    r = svc.api("GET", f"/api/kernels/{kid}")
    assert r.status_code == 200
    assert r.json()["id"] == kid
    assert_model(r.json())

    r = svc.api("DELETE", f"/api/kernels/{kid}")
    assert r.status_code == 204
    assert r.content == b""
    assert_error(svc.api("GET", f"/api/kernels/{kid}"), 404, "Not Found")
    assert_error(svc.api("DELETE", f"/api/kernels/{kid}"), 404)
    assert kid not in {m["id"] for m in svc.api("GET", "/api/kernels").json()}
    assert not os.path.exists(path)


def test_create_with_empty_body_uses_default_spec(svc: Service) -> None:
    """POST /api/kernels without a body starts the default (ipytwist) kernel."""
    r = svc.api("POST", "/api/kernels")
    assert r.status_code == 201, r.text
    assert_model(r.json())
    svc.delete_kernel(r.json()["id"])


def test_interrupt_and_restart(svc: Service, module_kernel_id: str) -> None:
    """POST .../interrupt answers 204 with no body; POST .../restart answers 200 with the
    kernel's model (same id) once the new interpreter is up."""
    r = svc.api("POST", f"/api/kernels/{module_kernel_id}/interrupt")
    assert r.status_code == 204
    assert r.content == b""
    r = svc.api("POST", f"/api/kernels/{module_kernel_id}/restart")
    assert r.status_code == 200, r.text
    assert_model(r.json())
    assert r.json()["id"] == module_kernel_id
    assert r.json()["execution_state"] == "idle"


def test_kernelspecs(svc: Service) -> None:
    """GET /api/kernelspecs lists the ipytwist spec as default; GET /api/kernelspecs/ipytwist
    returns that spec."""
    r = svc.api("GET", "/api/kernelspecs")
    assert r.status_code == 200
    specs = r.json()
    assert specs["default"] == "ipytwist"
    spec = specs["kernelspecs"]["ipytwist"]
    assert spec["name"] == "ipytwist"
    assert spec["spec"]["language"] == "python"
    assert spec["spec"]["display_name"]
    r = svc.api("GET", "/api/kernelspecs/ipytwist")
    assert r.status_code == 200
    assert r.json() == spec


def test_api_root_and_status(svc: Service, module_kernel_id: str) -> None:
    """GET /api answers the version; GET /api/status counts kernels and connections and
    reports times in the Jupyter format."""
    r = svc.api("GET", "/api")
    assert r.status_code == 200
    assert isinstance(r.json()["version"], str)
    r = svc.api("GET", "/api/status")
    assert r.status_code == 200
    status = r.json()
    assert status["kernels"] >= 1
    assert isinstance(status["connections"], int)
    datetime.strptime(status["started"], TIME_FORMAT)
    datetime.strptime(status["last_activity"], TIME_FORMAT)


# -- REST: every error --------------------------------------------------------


def test_bad_body_is_400(svc: Service) -> None:
    """A POST /api/kernels body that is not JSON, a JSON array, or has a non-string name
    is answered 400 with a JSON {"reason", "message"}, one over 64 KiB 413, and none
    starts a kernel."""
    before = len(svc.api("GET", "/api/kernels").json())
    headers = {"content-type": "application/json"}
    for body in (b"{not json", b"[1, 2]", b'{"name": 5}', b"\xff\xfe", b"[" * 60_000):
        r = svc.api("POST", "/api/kernels", data=body, headers=headers)
        assert_error(r, 400, "Bad Request")
    r = svc.api("POST", "/api/kernels", data=b" " * 70_000, headers=headers)
    assert_error(r, 413, "Payload Too Large")  # refused from its headers, never read
    assert len(svc.api("GET", "/api/kernels").json()) == before


def test_missing_or_wrong_token_is_401(svc: Service) -> None:
    """/api without a token, or with a wrong token in the header or in ?token=, is 401."""
    assert_error(requests.get(svc.url + "/api/kernels", timeout=10), 401, "Unauthorized")
    r = requests.get(svc.url + "/api/kernels", headers={"Authorization": "token nope"}, timeout=10)
    assert_error(r, 401, "Unauthorized")
    r = requests.get(svc.url + "/api/kernels?token=nope", timeout=10)
    assert_error(r, 401, "Unauthorized")


def test_unknown_kernel_is_404(svc: Service) -> None:
    """Unknown kernel ids, UUID or not, are 404 for GET, DELETE, interrupt and restart."""
    for kid in (str(uuid.uuid4()), "not-a-uuid"):
        assert_error(svc.api("GET", f"/api/kernels/{kid}"), 404, "Not Found")
        assert_error(svc.api("DELETE", f"/api/kernels/{kid}"), 404, "Not Found")
        assert_error(svc.api("POST", f"/api/kernels/{kid}/interrupt"), 404, "Not Found")
        assert_error(svc.api("POST", f"/api/kernels/{kid}/restart"), 404, "Not Found")
    assert_error(svc.api("GET", "/api/nothing-here"), 404, "Not Found")


def test_unknown_kernelspec_is_404(svc: Service) -> None:
    """GET /api/kernelspecs/<unknown> and POST /api/kernels with an unknown name are 404."""
    assert_error(svc.api("GET", "/api/kernelspecs/no-such-spec"), 404, "Not Found")
    r = svc.api("POST", "/api/kernels", json={"name": "no-such-spec"})
    assert_error(r, 404, "Not Found")


def test_wrong_method_is_405(svc: Service, module_kernel_id: str) -> None:
    """Known endpoints called with the wrong method answer 405."""
    assert_error(svc.api("PUT", "/api/kernels"), 405, "Method Not Allowed")
    assert_error(svc.api("PATCH", f"/api/kernels/{module_kernel_id}"), 405, "Method Not Allowed")
    assert_error(svc.api("GET", f"/api/kernels/{module_kernel_id}/interrupt"), 405)
    assert_error(svc.api("DELETE", f"/api/kernels/{module_kernel_id}/restart"), 405)
    assert_error(svc.api("POST", "/api/kernelspecs"), 405)
    assert_error(svc.api("DELETE", "/api/kernelspecs/ipytwist"), 405)


# -- HTTP auth: cookie, origin, rate limit --------------------------------------


def test_token_param_sets_cookie_that_authorises(svc: Service) -> None:
    """GET /?token= sets an HttpOnly SameSite=Strict login cookie and redirects to drop the
    token from the address; the cookie then authorises GET /api/kernels; a cookie-only POST
    without a same Origin is 403, with the same Origin it is allowed."""
    r = requests.get(f"{svc.url}/?token={svc.token}", allow_redirects=False, timeout=10)
    assert r.status_code in (301, 302, 303, 307), r.status_code
    assert r.headers["location"] == "/"
    set_cookie = r.headers["set-cookie"]
    assert set_cookie.startswith("ipytwist-login=")
    lowered = set_cookie.lower()
    assert "httponly" in lowered
    assert "samesite=strict" in lowered
    cookies = {"ipytwist-login": r.cookies["ipytwist-login"]}

    r = requests.get(svc.url + "/api/kernels", cookies=cookies, timeout=10)
    assert r.status_code == 200
    assert isinstance(r.json(), list)
    r = requests.get(svc.url + "/", cookies=cookies, timeout=10, allow_redirects=False)
    assert r.status_code == 200

    r = requests.post(svc.url + "/api/kernels", cookies=cookies, json={}, timeout=10)
    assert_error(r, 403, "Forbidden")
    r = requests.post(
        svc.url + "/api/kernels",
        cookies=cookies,
        json={},
        headers={"Origin": "http://evil.example.com"},
        timeout=10,
    )
    assert_error(r, 403, "Forbidden")
    r = requests.post(
        svc.url + "/api/kernels",
        cookies=cookies,
        json={},
        headers={"Origin": svc.origin},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    svc.delete_kernel(r.json()["id"])

    bogus = {"ipytwist-login": "forged-" + uuid.uuid4().hex}
    assert_error(requests.get(svc.url + "/api/kernels", cookies=bogus, timeout=10), 401)


def test_login_form_with_right_token_sets_cookie(svc: Service) -> None:
    """POST /login with the right token sets the login cookie and redirects to ``next``
    (only local paths)."""
    r = requests.post(
        svc.url + "/login",
        data={"token": svc.token, "next": "//evil.example.com/"},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code in (301, 302, 303), r.status_code
    assert r.headers["location"] == "/"
    cookies = {"ipytwist-login": r.cookies["ipytwist-login"]}
    assert requests.get(svc.url + "/api/kernels", cookies=cookies, timeout=10).status_code == 200
