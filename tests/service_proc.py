"""Helpers for tests that run the real ``twistd ipytwist`` service as a subprocess.

:class:`Service` starts ``twistd -n ipytwist`` on a free loopback port (port 0:
the kernel picks it, the service reports it in ``server.json``), waits for
``server.json`` with a bounded timeout and always cleans up its process group.
:class:`WSClient` is a small synchronous kernel WebSocket client (legacy JSON
and v1 binary formats) on top of ``websocket-client``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import requests
import websocket

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"
START_TIMEOUT = 30.0
#: Service options for test modules that take a fresh kernel per test: one kernel kept
#: started ahead (the service's warm pool), so a test does not wait for an interpreter
#: to start; the pool refills while the test runs.
WARM_POOL = ("--prespawn", "1")


def twistd_command() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "twistd")
    if not os.path.exists(script):
        script = shutil.which("twistd") or "twistd"
    return [sys.executable, script]


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def rss_mib(pid: int) -> float:
    """The resident memory of process ``pid``, in MiB (its VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def wait_for(check: Callable[[], Any], timeout: float, what: str, step: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


class Service:
    """One ``twistd -n ipytwist`` process with its own state dir and token."""

    def __init__(self, base_dir: str, *extra: str, token: str | None = None) -> None:
        self.base_dir = base_dir
        self.state_dir = os.path.join(base_dir, "state")
        self.log_path = os.path.join(base_dir, "twistd.log")
        self.token = token or uuid.uuid4().hex
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self._log_file: Any = None

    # -- process ------------------------------------------------------------

    def start(self) -> Service:
        os.makedirs(self.base_dir, exist_ok=True)
        info_path = os.path.join(self.state_dir, "server.json")
        argv = twistd_command() + [
            "-n",
            "--pidfile=",
            "ipytwist",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--state-dir",
            self.state_dir,
            "--token",
            self.token,
            *self.extra,
        ]
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self.base_dir,
            env=dict(os.environ),
            start_new_session=True,
        )

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"twistd exited early ({self.proc.returncode}):\n{self.log()}")
            try:
                with open(info_path) as f:
                    self.info = json.load(f)
            except (FileNotFoundError, ValueError):
                return False
            return True

        wait_for(ready, START_TIMEOUT, "server.json")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> int | None:
        """SIGTERM, bounded wait, then SIGKILL whatever is left in the process group."""
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

    # -- addresses ------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self.info["port"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        return self.url

    def ws_url(self, kernel_id: str, **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items() if v is not None)
        return f"ws://127.0.0.1:{self.port}/api/kernels/{kernel_id}/channels" + (
            "?" + query if query else ""
        )

    # -- REST ---------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def api(self, method: str, path: str, **kw: Any) -> requests.Response:
        headers = {**self.headers(), **kw.pop("headers", {})}
        kw.setdefault("timeout", 30)
        kw.setdefault("allow_redirects", False)
        return requests.request(method, self.url + path, headers=headers, **kw)

    def start_kernel(self) -> str:
        r = self.api("POST", "/api/kernels", json={"name": "ipytwist"})
        assert r.status_code == 201, (r.status_code, r.text)
        return r.json()["id"]

    def delete_kernel(self, kernel_id: str) -> None:
        r = self.api("DELETE", f"/api/kernels/{kernel_id}")
        assert r.status_code in (204, 404), (r.status_code, r.text)

    def connection_file(self, kernel_id: str) -> str:
        return os.path.join(self.state_dir, f"kernel-{kernel_id}.json")


@contextmanager
def running_service(tmp_path_factory: Any, name: str, *args: str) -> Iterator[Service]:
    """A started :class:`Service` in a fresh temporary directory, always stopped after."""
    svc = Service(str(tmp_path_factory.mktemp(name)), *args)
    try:
        svc.start()
        yield svc
    finally:
        svc.stop()
    # Bad input and crashes are answered and logged, never an unhandled exception.
    log = svc.log()
    for marker in ("Unhandled Error", "Traceback (most recent call last)"):
        assert marker not in log, f"{marker!r} in {svc.log_path}"


# -- kernel messages over WebSocket -------------------------------------------


def execute_content(code: str, **extra: Any) -> dict[str, Any]:
    """An execute_request's content, as Jupyter frontends send it."""
    return {
        "code": code,
        "silent": False,
        "store_history": True,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
        **extra,
    }


def make_message(msg_type: str, content: dict[str, Any], session: str) -> dict[str, Any]:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "username": "test",
            "session": session,
            "date": datetime.now(UTC).isoformat(),
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": content,
        "buffers": [],
    }


def pack_v1(msg: dict[str, Any], channel: str) -> bytes:
    """The v1 subprotocol frame, built independently of ipytwist's encoder."""
    parts = [
        json.dumps(msg[k]).encode() for k in ("header", "parent_header", "metadata", "content")
    ]
    parts += [bytes(b) for b in msg.get("buffers") or []]
    chan = channel.encode()
    offsets = [8 * (1 + 1 + len(parts) + 1)]
    offsets.append(offsets[-1] + len(chan))
    for p in parts:
        offsets.append(offsets[-1] + len(p))
    head = len(offsets).to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets)
    return head + chan + b"".join(parts)


def unpack_v1(data: bytes) -> dict[str, Any]:
    n = int.from_bytes(data[:8], "little")
    offsets = [int.from_bytes(data[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(n)]
    channel = data[offsets[0] : offsets[1]].decode()
    parts = [data[offsets[i] : offsets[i + 1]] for i in range(1, n - 1)]
    header, parent, metadata, content = (json.loads(p) for p in parts[:4])
    return {
        "channel": channel,
        "header": header,
        "parent_header": parent,
        "metadata": metadata,
        "content": content,
        "buffers": parts[4:],
        "msg_type": header["msg_type"],
    }


def unpack_legacy_binary(data: bytes) -> dict[str, Any]:
    (n,) = struct.unpack_from("!I", data, 0)
    offsets = list(struct.unpack_from(f"!{n}I", data, 4)) + [len(data)]
    parts = [data[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    msg = json.loads(parts[0])
    msg["buffers"] = parts[1:]
    return msg


class WSClosed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"WebSocket closed ({code}): {reason}")
        self.code = code
        self.reason = reason


class WSClient:
    """A kernel WebSocket client that records every message it receives."""

    def __init__(self, ws: websocket.WebSocket, session_id: str, v1: bool) -> None:
        self.ws = ws
        self.session_id = session_id
        self.v1 = v1
        self.received: list[dict[str, Any]] = []

    @classmethod
    def connect(
        cls,
        svc: Service,
        kernel_id: str,
        session_id: str | None = None,
        *,
        since_msg_id: str | None = None,
        auth: str = "header",
        token: str | None = None,
        origin: str | None = None,
        v1: bool = False,
        timeout: float = 10.0,
        **options: Any,
    ) -> WSClient:
        """``options`` go to ``websocket.create_connection`` (``sockopt=``, ...)."""
        session_id = session_id or uuid.uuid4().hex
        token = svc.token if token is None else token
        params: dict[str, Any] = {"session_id": session_id, "since_msg_id": since_msg_id}
        headers = []
        if auth == "header":
            headers.append(f"Authorization: token {token}")
        elif auth == "param":
            params["token"] = token
        kw: dict[str, Any] = {"header": headers, "timeout": timeout}
        kw.update(options)
        if origin is None:
            kw["suppress_origin"] = True
        else:
            kw["origin"] = origin
        if v1:
            kw["subprotocols"] = [V1_PROTOCOL]
        ws = websocket.create_connection(svc.ws_url(kernel_id, **params), **kw)
        return cls(ws, session_id, v1)

    @property
    def subprotocol(self) -> str | None:
        return self.ws.getsubprotocol()

    # -- sending --------------------------------------------------------------

    def send(self, channel: str, msg_type: str, content: dict[str, Any]) -> str:
        msg = make_message(msg_type, content, self.session_id)
        if self.v1:
            self.ws.send_binary(pack_v1(msg, channel))
        else:
            self.ws.send(json.dumps({**msg, "channel": channel}))
        return msg["header"]["msg_id"]

    def execute_request(self, code: str, **extra: Any) -> str:
        return self.send("shell", "execute_request", execute_content(code, **extra))

    # -- receiving ------------------------------------------------------------

    def decode(self, opcode: int, data: bytes) -> dict[str, Any]:
        if opcode == websocket.ABNF.OPCODE_TEXT:
            msg = json.loads(data)
        elif self.v1:
            msg = unpack_v1(data)
        else:
            msg = unpack_legacy_binary(data)
        msg.setdefault("msg_type", msg["header"]["msg_type"])
        return msg

    def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        self.ws.settimeout(timeout)
        opcode, frame = self.ws.recv_data_frame(False)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            data = frame.data or b""
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
            raise WSClosed(code, data[2:].decode("utf-8", "replace"))
        msg = self.decode(opcode, frame.data)
        self.received.append(msg)
        return msg

    def until(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """Messages received up to and including the first one matching ``pred``."""
        deadline = time.monotonic() + timeout
        got = []
        while True:
            left = max(0.01, deadline - time.monotonic())
            try:
                msg = self.recv(left)
            except websocket.WebSocketTimeoutException:
                raise AssertionError(
                    f"timed out after {timeout}s; got {[m['msg_type'] for m in got]}"
                ) from None
            got.append(msg)
            if pred(msg):
                return got

    def until_idle(self, msg_id: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        return self.until(lambda m: is_idle_of(m, msg_id), timeout)

    def execute(self, code: str, timeout: float = 30.0) -> tuple[dict[str, Any], list]:
        """Run ``code``; return its execute_reply and the messages up to its idle status."""
        msg_id = self.execute_request(code)
        got = self.until_idle(msg_id, timeout)
        replies = [m for m in got if m["msg_type"] == "execute_reply" and parent_id(m) == msg_id]
        if not replies:
            got += self.until(
                lambda m: m["msg_type"] == "execute_reply" and parent_id(m) == msg_id, timeout
            )
            replies = [m for m in got if m["msg_type"] == "execute_reply"]
        return replies[0], got

    def close_draining(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Close handshake that keeps the messages sent before the server's close frame."""
        self.ws.send_close()
        got = []
        self.ws.settimeout(timeout)
        try:
            while True:
                frame = self.ws.recv_frame()
                if frame.opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                    msg = self.decode(frame.opcode, frame.data)
                    self.received.append(msg)
                    got.append(msg)
                elif frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            pass
        self.ws.shutdown()
        return got

    def close(self) -> None:
        try:
            self.ws.close(timeout=2)
        except Exception:
            self.ws.shutdown()


def ids(msgs: list[dict[str, Any]]) -> list[str]:
    """The msg_ids of ``msgs``, in order."""
    return [m["header"]["msg_id"] for m in msgs]


def parent_id(msg: dict[str, Any]) -> str | None:
    return (msg.get("parent_header") or {}).get("msg_id")


def is_idle_of(msg: dict[str, Any], msg_id: str) -> bool:
    return (
        msg["msg_type"] == "status"
        and msg["content"].get("execution_state") == "idle"
        and parent_id(msg) == msg_id
    )


def stream_text(msgs: Iterable[dict[str, Any]]) -> str:
    return "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")


def iopub_of(msgs: Iterable[dict[str, Any]], msg_id: str) -> list[dict[str, Any]]:
    return [m for m in msgs if m.get("channel") == "iopub" and parent_id(m) == msg_id]
