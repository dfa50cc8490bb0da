"""The servers the benchmarks and tests run: ``twistd -n ipytwist`` (:class:`Service`) and
jupyter_server (:class:`JupyterServer`).

Each runs in a process session of its own (so it can be stopped with everything it
started), with its own directories under ``base_dir``, its own token and a loopback
port, logs to a file there, and is always stopped with SIGTERM, a bounded wait, then
SIGKILL to whatever is left in its process group.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from typing import IO, Any, Self

import requests

from .procs import wait_for

#: How long a server may take to listen.
START_TIMEOUT = 60.0
#: Service options for a fresh kernel per test or sample: one kernel kept started ahead
#: (the service's warm pool), so nobody waits for an interpreter to start; the pool
#: refills meanwhile.
WARM_POOL = ("--prespawn", "1")
#: jupyter_server with its iopub rate limits off: ipytwist has none, so both are asked to
#: deliver everything rather than drop by design.  (The ``ServerApp.*`` spellings of these
#: are deprecated and do not take effect.)
NO_IOPUB_RATE_LIMITS = (
    "--ZMQChannelsWebsocketConnection.iopub_msg_rate_limit=0",
    "--ZMQChannelsWebsocketConnection.iopub_data_rate_limit=0",
)
#: jupyter_server logging warnings only (a benchmark's log stays small).
WARN_ONLY = "--ServerApp.log_level=WARN"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_fd_limit() -> int:
    """RLIMIT_NOFILE up to the hard limit (inherited by the servers started after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def checkout_env(ipython_dir: str) -> dict[str, str]:
    """Variables for a server that imports ipytwist from this checkout (installed or
    not) and keeps its IPython profile in ``ipython_dir`` (no user history touched)."""
    path = REPO + os.pathsep + os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": path, "IPYTHONDIR": ipython_dir}


def twistd_command() -> list[str]:
    """``twistd`` of this Python."""
    script = os.path.join(os.path.dirname(sys.executable), "twistd")
    if not os.path.exists(script):
        script = shutil.which("twistd") or "twistd"
    return [sys.executable, script]


class ServerProcess:
    """A server process in its own session, with its REST API and kernel WebSockets."""

    name = "server"
    #: The kernelspec :meth:`start_kernel` starts.
    kernel_name = ""
    #: How often :meth:`start` looks whether it listens yet.
    poll_step = 0.02

    def __init__(
        self,
        base_dir: str,
        *extra: str,
        token: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.base_dir = base_dir
        self.extra = list(extra)
        self.token = token or secrets.token_hex(16)
        self.env = dict(env or {})
        self.log_path = os.path.join(base_dir, f"{self.name}.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""  # http://127.0.0.1:<port>, once it listens
        self._log_file: IO[bytes] | None = None

    # -- what a subclass says ---------------------------------------------------------

    def argv(self) -> list[str]:
        """The command line."""
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        """The process's environment: this one's, with :attr:`env` over it."""
        return {**os.environ, **self.env}

    def listening(self) -> bool:
        """Whether it serves yet (and :attr:`url` is known)."""
        raise NotImplementedError

    def connection_file(self, kernel_id: str) -> str:
        """Where the server wrote the ZeroMQ connection file of ``kernel_id``."""
        raise NotImplementedError

    # -- process ----------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        os.makedirs(self.base_dir, exist_ok=True)
        argv, env = self.argv(), self.environment()
        self._log_file = open(self.log_path, "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self.base_dir,
            env=env,
            start_new_session=True,
        )

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited early ({self.proc.returncode}):\n{self.log()[-4000:]}"
                )
            return self.listening()

        wait_for(ready, timeout, f"{self.name} to listen", self.poll_step)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> int | None:
        """SIGTERM, bounded wait, then SIGKILL whatever is left in the process group;
        the exit status."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            code = self.proc.returncode
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # -- REST and WebSocket addresses ---------------------------------------------------

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def origin(self) -> str:
        return self.url

    def ws_url(self, kernel_id: str, **params: str | None) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items() if v is not None)
        return f"ws://127.0.0.1:{self.port}/api/kernels/{kernel_id}/channels" + (
            "?" + query if query else ""
        )

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def api(self, method: str, path: str, **kw: Any) -> requests.Response:
        """One request with the token; no redirect followed."""
        headers = {**self.headers(), **kw.pop("headers", {})}
        kw.setdefault("timeout", 30)
        kw.setdefault("allow_redirects", False)
        return requests.request(method, self.url + path, headers=headers, **kw)

    def request(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        """One JSON request: its answer's JSON (None if empty); an error status raises
        :class:`requests.HTTPError`."""
        r = self.api(method, path, **({} if body is None else {"json": body}), timeout=timeout)
        r.raise_for_status()
        return r.json() if r.content else None

    def start_kernel(self) -> str:
        r = self.api("POST", "/api/kernels", json={"name": self.kernel_name})
        assert r.status_code == 201, (r.status_code, r.text)
        return r.json()["id"]

    def delete_kernel(self, kernel_id: str) -> None:
        r = self.api("DELETE", f"/api/kernels/{kernel_id}")
        assert r.status_code in (204, 404), (r.status_code, r.text)


class Service(ServerProcess):
    """``twistd -n ipytwist`` on a port the kernel picks (it reports the port in
    ``server.json``, which is what is waited for)."""

    name = "ipytwist"
    kernel_name = "ipytwist"
    #: ``server.json``, once it listens.
    info: dict[str, Any]

    @property
    def state_dir(self) -> str:
        return os.path.join(self.base_dir, "state")

    def argv(self) -> list[str]:
        return twistd_command() + [
            "-n",
            "--pidfile=",
            "ipytwist",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--state-dir",
            self.state_dir,
            "--token",
            self.token,
            # A run that SIGKILLs a service and starts none after it leaves its kernels
            # behind: they end within a minute, not the default hour (a given one wins).
            "--orphan-timeout",
            "60",
            *self.extra,
        ]

    def listening(self) -> bool:
        try:
            with open(os.path.join(self.state_dir, "server.json")) as f:
                self.info = json.load(f)
        except (FileNotFoundError, ValueError):
            return False
        self.url = f"http://127.0.0.1:{self.info['port']}"
        return True

    def connection_file(self, kernel_id: str) -> str:
        return os.path.join(self.state_dir, f"kernel-{kernel_id}.json")


class JupyterServer(ServerProcess):
    """jupyter_server (or another application on it, ``app``: ``jupyterlab``) with its
    Jupyter and IPython directories and its root under ``base_dir``; ``extra`` are more
    options (:data:`NO_IOPUB_RATE_LIMITS`, ``--gateway-url=...``)."""

    name = "jupyter_server"
    kernel_name = "python3"
    poll_step = 0.1

    def __init__(
        self,
        base_dir: str,
        *extra: str,
        app: str = "jupyter_server",
        token: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(base_dir, *extra, token=token, env=env)
        self.app = app
        self.root_dir = os.path.join(base_dir, "root")
        self.runtime_dir = os.path.join(base_dir, "runtime")

    def environment(self) -> dict[str, str]:
        env = super().environment()
        for var, sub in (
            ("JUPYTER_CONFIG_DIR", "config"),
            ("JUPYTER_RUNTIME_DIR", "runtime"),
            ("JUPYTER_DATA_DIR", "data"),
            ("IPYTHONDIR", "ipython"),
        ):
            env[var] = os.path.join(self.base_dir, sub)
            os.makedirs(env[var], exist_ok=True)
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        env.pop("JUPYTER_TOKEN", None)
        return env

    def argv(self) -> list[str]:
        os.makedirs(self.root_dir, exist_ok=True)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        return [
            sys.executable,
            "-m",
            self.app,
            f"--IdentityProvider.token={self.token}",
            f"--port={port}",
            "--ServerApp.port_retries=0",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.root_dir={self.root_dir}",
            *self.extra,
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ]

    def listening(self) -> bool:
        try:
            return self.api("GET", "/api/status", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def start_kernel(self) -> str:
        specs = self.request("GET", "/api/kernelspecs")
        if self.kernel_name not in specs["kernelspecs"]:
            raise RuntimeError(f"{self.name} has no {self.kernel_name} kernelspec")
        return super().start_kernel()

    def connection_file(self, kernel_id: str) -> str:
        return os.path.join(self.runtime_dir, f"kernel-{kernel_id}.json")


def comparison_server(
    name: str, tmp: str, *extra: str, app: str = "jupyter_server", iopub_limits: bool = False
) -> ServerProcess:
    """One of the servers a benchmark compares, in ``tmp/<name>``: ``ipytwist`` (this
    checkout's, its own IPython profile) or, for any other name, jupyter_server running
    ``app`` with its iopub rate limits off (unless ``iopub_limits``) and warnings only in
    its log; ``extra`` are more options for it."""
    base = os.path.join(tmp, name)
    if name == "ipytwist":
        return Service(base, *extra, env=checkout_env(os.path.join(base, "ipython")))
    limits = () if iopub_limits else NO_IOPUB_RATE_LIMITS
    return JupyterServer(base, *limits, WARN_ONLY, *extra, app=app)
