"""JupyterLab's back end as the client: jupyter_server with ``--gateway-url`` at ipytwist.

ipytwist runs under ``twistd``; a ``jupyter server`` process is pointed at it as
its kernel gateway.  Everything below talks to *jupyter_server* only (its REST
API and its kernel WebSocket), exactly as JupyterLab in a browser would, so
what is tested is the Kernel Gateway REST + WebSocket surface of ipytwist as
jupyter_server's ``GatewayClient`` uses it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from service_proc import Service, execute_content
from websockets.sync.client import ClientConnection, connect

STARTUP_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(what: str, check: Callable[[], Any], proc: subprocess.Popen, log: str) -> Any:
    """Poll ``check`` until it returns something truthy (bounded; fails fast if proc died)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log, errors="replace") as f:
                tail = f.read()[-4000:]
            pytest.fail(f"{what} exited with {proc.returncode}:\n{tail}")
        try:
            result = check()
        except (OSError, ValueError, requests.RequestException):
            result = None
        if result:
            return result
        time.sleep(0.1)  # polling interval, not synchronisation
    pytest.fail(f"{what} did not come up within {STARTUP_TIMEOUT:.0f}s")


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process started in its own session, with everything it started."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers (kernels) in the same group
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


class Servers:
    def __init__(self, base: str, token: str, gateway_base: str, gateway_token: str) -> None:
        self.base = base
        self.token = token
        self.gateway_base = gateway_base
        self.gateway_token = gateway_token
        self.headers = {"Authorization": f"token {token}"}

    def url(self, path: str) -> str:
        return self.base + path

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url(path), headers=self.headers, timeout=60)

    def post(self, path: str, body: Any = None) -> requests.Response:
        return requests.post(
            self.url(path), headers=self.headers, data=json.dumps(body or {}), timeout=60
        )

    def delete(self, path: str) -> requests.Response:
        return requests.delete(self.url(path), headers=self.headers, timeout=60)


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    tmp = tempfile.mkdtemp(prefix="ipytwist-gateway-test-")
    ipytwist: Service | None = None
    procs: list[subprocess.Popen] = []
    try:
        # -- ipytwist ----------------------------------------------------------------
        ipytwist = Service(os.path.join(tmp, "ipytwist")).start()
        gw_token, gateway_base = ipytwist.token, ipytwist.url

        # -- jupyter_server, its kernels at the gateway ------------------------------
        js_token = secrets.token_hex(16)
        js_port = _free_port()
        env = dict(os.environ)
        for var, sub in (
            ("JUPYTER_CONFIG_DIR", "config"),
            ("JUPYTER_RUNTIME_DIR", "runtime"),
            ("JUPYTER_DATA_DIR", "data"),
            ("IPYTHONDIR", "ipython"),
        ):
            env[var] = os.path.join(tmp, sub)
            os.makedirs(env[var], exist_ok=True)
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        env.pop("JUPYTER_TOKEN", None)
        root = os.path.join(tmp, "root")
        os.makedirs(root)
        js_log = os.path.join(tmp, "jupyter_server.log")
        with open(js_log, "wb") as out:
            js = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "jupyter_server",
                    f"--gateway-url={gateway_base}",
                    f"--GatewayClient.auth_token={gw_token}",
                    f"--IdentityProvider.token={js_token}",
                    f"--port={js_port}",
                    "--ServerApp.port_retries=0",
                    "--no-browser",
                    "--ServerApp.ip=127.0.0.1",
                    f"--ServerApp.root_dir={root}",
                    *(["--allow-root"] if os.geteuid() == 0 else []),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
                cwd=root,
            )
        procs.append(js)
        s = Servers(f"http://127.0.0.1:{js_port}", js_token, gateway_base, gw_token)
        _wait_for("jupyter_server", lambda: s.get("/api/status").status_code == 200, js, js_log)
        yield s
    finally:
        for proc in reversed(procs):
            _stop(proc)
        if ipytwist is not None:
            ipytwist.stop()
        if os.environ.get("IPYTWIST_KEEP_LOGS"):
            print("logs kept in", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


# -- a JupyterLab-like kernel WebSocket client --------------------------------------


class KernelChannel:
    """The legacy JSON kernel protocol over jupyter_server's WebSocket."""

    def __init__(self, servers: Servers, kernel_id: str) -> None:
        self.session = uuid.uuid4().hex
        ws_base = servers.base.replace("http://", "ws://")
        self.ws: ClientConnection = connect(
            f"{ws_base}/api/kernels/{kernel_id}/channels?session_id={self.session}",
            additional_headers=servers.headers,
            open_timeout=30,
            max_size=None,
        )

    def __enter__(self) -> KernelChannel:
        self.ws.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ws.close()

    def send(self, channel: str, msg_type: str, content: dict[str, Any]) -> str:
        msg_id = uuid.uuid4().hex
        self.ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": msg_type,
                        "username": "test",
                        "session": self.session,
                        "date": "2026-01-01T00:00:00.000000Z",
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": content,
                    "buffers": [],
                    "channel": channel,
                }
            )
        )
        return msg_id

    def recv(self, timeout: float) -> dict[str, Any] | None:
        try:
            raw = self.ws.recv(timeout=timeout)
        except TimeoutError:
            return None
        assert isinstance(raw, str), "expected text frames from the legacy protocol"
        return json.loads(raw)

    def kernel_info(self, within: float = 60.0) -> dict[str, Any]:
        """Send kernel_info_request until one is answered, as JupyterLab does."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            msg_id = self.send("shell", "kernel_info_request", {})
            wait_until = min(deadline, time.monotonic() + 2.0)
            while time.monotonic() < wait_until:
                msg = self.recv(timeout=max(0.01, wait_until - time.monotonic()))
                if (
                    msg is not None
                    and msg["msg_type"] == "kernel_info_reply"
                    and msg["parent_header"].get("msg_id") == msg_id
                ):
                    return msg
        pytest.fail("kernel_info_request never answered through jupyter_server")

    def execute(self, code: str, within: float = 60.0) -> tuple[dict[str, Any], list[dict]]:
        """Run ``code``; return its execute_reply and its iopub messages (up to idle)."""
        msg_id = self.send("shell", "execute_request", execute_content(code))
        return self.collect(msg_id, within)

    def collect(self, msg_id: str, within: float) -> tuple[dict[str, Any], list[dict]]:
        deadline = time.monotonic() + within
        reply: dict[str, Any] | None = None
        iopub: list[dict[str, Any]] = []
        idle = False
        while not (reply is not None and idle):
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"request not done within {within}s (reply={reply}, idle={idle})")
            msg = self.recv(timeout=left)
            if msg is None or msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["channel"] == "shell":
                reply = msg
            elif msg["channel"] == "iopub":
                iopub.append(msg)
                if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                    idle = True
        assert reply is not None
        return reply, iopub

    def wait_for_iopub(self, msg_id: str, msg_type: str, within: float) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            msg = self.recv(timeout=left)
            if (
                msg is not None
                and msg["channel"] == "iopub"
                and msg["msg_type"] == msg_type
                and msg["parent_header"].get("msg_id") == msg_id
            ):
                return msg
        pytest.fail(f"no {msg_type} for {msg_id} within {within}s")


def _stdout(iopub: list[dict[str, Any]]) -> str:
    return "".join(
        m["content"]["text"]
        for m in iopub
        if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
    )


@pytest.fixture
def kernel(servers: Servers) -> Iterator[str]:
    r = servers.post("/api/kernels", {"name": "ipytwist"})
    assert r.status_code == 201, r.text
    model = r.json()
    assert model["name"] == "ipytwist"
    uuid.UUID(model["id"])
    try:
        yield model["id"]
    finally:
        servers.delete(f"/api/kernels/{model['id']}")


# -- the tests --------------------------------------------------------------------------


def test_kernelspecs_come_from_the_gateway(servers: Servers) -> None:
    r = servers.get("/api/kernelspecs")
    assert r.status_code == 200, r.text
    specs = r.json()
    assert "ipytwist" in specs["kernelspecs"]
    # jupyter_server reports its own default name (adopting the gateway's lazily).
    assert specs["default"] in ("ipytwist", "python3")
    spec = specs["kernelspecs"]["ipytwist"]["spec"]
    assert spec["language"] == "python"
    r = servers.get("/api/kernelspecs/ipytwist")
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "ipytwist"


def test_kernel_is_listed_by_both_servers(servers: Servers, kernel: str) -> None:
    r = servers.get("/api/kernels")
    assert r.status_code == 200, r.text
    assert kernel in [k["id"] for k in r.json()]
    r = requests.get(
        f"{servers.gateway_base}/api/kernels/{kernel}",
        headers={"Authorization": f"token {servers.gateway_token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.json()["id"] == kernel


def test_execute_through_jupyter_server(servers: Servers, kernel: str) -> None:
    with KernelChannel(servers, kernel) as chan:
        info = chan.kernel_info()
        assert info["content"]["status"] == "ok"
        assert info["content"]["language_info"]["name"] == "python"
        reply, iopub = chan.execute("print(6*7)")
        assert reply["content"]["status"] == "ok", reply["content"]
        assert _stdout(iopub) == "42\n"
        types = [m["msg_type"] for m in iopub]
        assert types[0] == "status" and iopub[0]["content"]["execution_state"] == "busy"
        assert "execute_input" in types
        reply, iopub = chan.execute("6*7")
        results = [m for m in iopub if m["msg_type"] == "execute_result"]
        assert results and results[0]["content"]["data"]["text/plain"] == "42"
    # The service's transcript marks these cells as run through the gateway.
    r = requests.get(
        f"{servers.gateway_base}/api/kernels/{kernel}/transcript",
        headers={"Authorization": f"token {servers.gateway_token}"},
        timeout=30,
    )
    cells = {c["code"]: c for c in r.json()["cells"]}
    assert cells["print(6*7)"]["origin"] == "gateway"
    assert cells["6*7"]["outputs"][0]["data"]["text/plain"] == "42"


def test_interrupt_through_jupyter_server(servers: Servers, kernel: str) -> None:
    with KernelChannel(servers, kernel) as chan:
        chan.kernel_info()
        msg_id = chan.send(
            "shell",
            "execute_request",
            {"code": "import time; time.sleep(60)", "silent": False, "allow_stdin": False},
        )
        # Interrupt only once the cell is really running.
        chan.wait_for_iopub(msg_id, "execute_input", within=30)
        started = time.monotonic()
        r = servers.post(f"/api/kernels/{kernel}/interrupt")
        assert r.status_code == 204, r.text
        reply, iopub = chan.collect(msg_id, within=20)
        assert time.monotonic() - started < 10
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert any(
            m["msg_type"] == "error" and m["content"]["ename"] == "KeyboardInterrupt" for m in iopub
        )
        # The kernel keeps working afterwards.
        reply, iopub = chan.execute("print('still here')")
        assert _stdout(iopub) == "still here\n"


def test_restart_through_jupyter_server(servers: Servers, kernel: str) -> None:
    with KernelChannel(servers, kernel) as chan:
        chan.kernel_info()
        reply, _ = chan.execute("x = 42")
        assert reply["content"]["status"] == "ok"
        reply, iopub = chan.execute("print(x)")
        assert _stdout(iopub) == "42\n"
        r = servers.post(f"/api/kernels/{kernel}/restart")
        assert r.status_code == 200, r.text
        assert r.json()["id"] == kernel
        # The open WebSocket keeps working: JupyterLab asks for kernel_info again.
        chan.kernel_info()
        reply, iopub = chan.execute("print('x' in dir())")
        assert _stdout(iopub) == "False\n"
    # So does a new connection.
    with KernelChannel(servers, kernel) as chan:
        chan.kernel_info()
        reply, iopub = chan.execute("print('x' in dir())")
        assert reply["content"]["status"] == "ok", reply["content"]
        assert _stdout(iopub) == "False\n"
        reply, iopub = chan.execute("x")
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "NameError"
