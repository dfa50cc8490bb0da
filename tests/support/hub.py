"""A real JupyterHub for the tests: the DummyAuthenticator, the ``simple`` spawner
running ``ipytwist singleuser``, the Python configurable-http-proxy, all on loopback
ports of their own, with a config written into a temporary directory.  An admin token
of a service (``tester``) drives the hub's REST API."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from dataclasses import dataclass
from typing import Any

import requests
from benchlib.procs import end_keepers, pid_alive, wait_for
from benchlib.servers import ServerProcess, free_port
from benchlib.wsclient import WSClient

BIN = os.path.dirname(sys.executable)
#: Seconds between the server's activity reports in the tests (the hub's default is 300).
ACTIVITY_INTERVAL = 1
USERS = ("alice", "bob")
PASSWORD = "hub-test-password"

CONFIG = """\
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.ConfigurableHTTPProxy.pid_file = {base!r} + "/proxy.pid"
c.JupyterHub.db_url = "sqlite:///" + {base!r} + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = {base!r} + "/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allowed_users = {users!r}
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {base!r} + "/home/{{username}}"
c.Spawner.cmd = [{ipytwist!r}, "singleuser"]
c.Spawner.args = ["--max-kernels", "4"]
c.Spawner.environment = {{"JUPYTERHUB_ACTIVITY_INTERVAL": "{activity}"}}
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
c.JupyterHub.services = [{{"name": "tester", "api_token": {admin!r}}}]
c.JupyterHub.load_roles = [
    {{
        "name": "tester",
        "scopes": ["admin:users", "admin:servers", "access:servers", "tokens", "read:users"],
        "services": ["tester"],
    }}
]
"""


def _command(name: str) -> str:
    """The console script ``name`` of this Python's environment (else from PATH)."""
    here = os.path.join(BIN, name)
    found = here if os.access(here, os.X_OK) else shutil.which(name)
    assert found, f"{name} is not installed (pip install '.[test]')"
    return found


class JupyterHubProcess(ServerProcess):
    """``jupyterhub -f CONFIG``, in a session of its own, logging to ``hub.log``."""

    name = "hub"
    poll_step = 0.1

    def __init__(self, base_dir: str) -> None:
        super().__init__(base_dir)
        self.admin_token = secrets.token_hex(24)
        self.public_port = free_port()
        self.config_path = os.path.join(base_dir, "jupyterhub_config.py")
        os.makedirs(base_dir, exist_ok=True)
        with open(self.config_path, "w") as f:
            f.write(
                CONFIG.format(
                    port=self.public_port,
                    hub_port=free_port(),
                    proxy_api_port=free_port(),
                    proxy=_command("configurable-http-proxy"),
                    ipytwist=_command("ipytwist"),
                    base=base_dir,
                    password=PASSWORD,
                    users=set(USERS),
                    activity=ACTIVITY_INTERVAL,
                    admin=self.admin_token,
                )
            )

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "jupyterhub", "-f", self.config_path]

    def listening(self) -> bool:
        try:
            ok = requests.get(f"http://127.0.0.1:{self.public_port}/hub/api", timeout=2).ok
        except requests.ConnectionError:
            return False
        if ok:
            self.url = f"http://127.0.0.1:{self.public_port}"
        return ok

    def hub_api(self, method: str, path: str, **kw: Any) -> requests.Response:
        """A call to the hub's REST API with the admin token."""
        headers = {"Authorization": f"token {self.admin_token}", **kw.pop("headers", {})}
        return requests.request(
            method, f"{self.url}/hub/api{path}", headers=headers, timeout=30, **kw
        )

    def user_token(self, user: str) -> str:
        """A new API token of ``user`` (the hub's default scopes: the user's own)."""
        r = self.hub_api("POST", f"/users/{user}/tokens", json={"note": "test"})
        assert r.status_code == 201, r.text
        token: str = r.json()["token"]
        return token

    def server(self, user: str) -> dict[str, Any]:
        """The hub's model of ``user``'s default server ({} when it has none)."""
        r = self.hub_api("GET", f"/users/{user}")
        assert r.ok, r.text
        model: dict[str, Any] = r.json()["servers"].get("", {})
        return model

    def spawn(self, user: str) -> dict[str, Any]:
        """Start ``user``'s server and wait until the hub says it is ready."""
        r = self.hub_api("POST", f"/users/{user}/server")
        assert r.status_code in (201, 202), r.text
        return wait_for(lambda: (s := self.server(user)).get("ready") and s, 90, "ready")

    def state_dir(self, user: str) -> str:
        """The state directory of ``user``'s ipytwist (its default, under its home)."""
        return os.path.join(self.base_dir, "home", user, ".local", "share", "ipytwist")

    def stop(self) -> int | None:
        """Stop the hub (it stops the servers and its proxy), then end what is left."""
        pids = []
        for user in USERS:
            try:
                pids.append(self.server(user).get("state", {}).get("pid"))
            except (AssertionError, requests.RequestException, ValueError):
                pass
        code = super().stop()
        for pid in pids:
            if isinstance(pid, int) and pid_alive(pid):
                os.kill(pid, 9)
        for user in USERS:
            end_keepers(self.state_dir(user))
        return code


@dataclass
class UserServer:
    """A user's server through the hub's proxy, as the WebSocket client wants one."""

    hub: JupyterHubProcess
    user: str
    token: str

    @property
    def base(self) -> str:
        return f"{self.hub.url}/user/{self.user}/"

    def ws_url(self, kernel_id: str, **params: str | None) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items() if v is not None)
        ws = self.base.replace("http://", "ws://", 1)
        return f"{ws}api/kernels/{kernel_id}/channels" + ("?" + query if query else "")

    def connect(self, kernel_id: str) -> WSClient:
        """A kernel WebSocket through the hub's proxy, with the user's token, once the
        kernel answers."""
        ws = WSClient.connect(self, kernel_id)  # type: ignore[arg-type]  # token and ws_url
        ws.kernel_info()
        return ws

    def run_cell(self, kernel_id: str, code: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Run ``code`` over a kernel WebSocket: its execute_reply and messages."""
        ws = self.connect(kernel_id)
        try:
            return ws.execute(code)
        finally:
            ws.ws.close()

    def api(self, method: str, path: str, token: str | None = None, **kw: Any) -> requests.Response:
        """A REST call through the proxy with ``token`` (default: the user's)."""
        headers = {"Authorization": f"token {token or self.token}", **kw.pop("headers", {})}
        kw.setdefault("allow_redirects", False)
        return requests.request(method, self.base + path, headers=headers, timeout=30, **kw)


def dumps(value: Any) -> str:
    return json.dumps(value, indent=1)[:2000]
