"""WebSocket fan-out benchmark: ipytwist and jupyter_server + ipykernel, in one run.

For each server and each client count N: one kernel, N WebSocket clients on
the kernel's ``/api/kernels/{id}/channels`` (legacy JSON protocol, one
``session_id`` each, all in one asyncio event loop), and one of them executes

* ``print``: ``for i in range(20000): print(i)``
* ``display``: ``from IPython.display import display`` + 500 ``display(i)`` calls.

Reported per (N, server, workload):

* time to all idle: execute_request sent -> the last client saw the request's
  ``status: idle`` on iopub;
* delivered msgs/s: iopub messages parented to the request, summed over all
  clients, divided by that time;
* lost: iopub msg_ids the requester saw that a client did not (summed over
  clients), plus, for ``print``, clients whose stdout is not exactly the lines
  0..19999 in order.

jupyter_server runs with the ``python3`` kernelspec from ipykernel, its iopub
rate limits off (ipytwist has none), in temporary Jupyter dirs, with a raised
RLIMIT_NOFILE.  It opens ZeroMQ sockets per WebSocket connection; connections
it refuses or drops are reported as results, not errors.

Prints a markdown table and writes JSON to ``bench/results/``.
``python bench/ws_fanout.py --help`` for options.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.request import Request, urlopen

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(HERE, "results")
REPO = os.path.dirname(HERE)

PRINT_LINES = 20_000
DISPLAY_CALLS = 500
WORKLOADS = {
    "print": f"for i in range({PRINT_LINES}): print(i)",
    "display": (
        f"from IPython.display import display\nfor i in range({DISPLAY_CALLS}): display(i)"
    ),
}
EXPECTED_STDOUT = "".join(f"{i}\n" for i in range(PRINT_LINES))
SERVERS = ("ipytwist", "jupyter_server")


# -- processes ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Server:
    """A server process in its own session (so its kernels go down with it)."""

    def __init__(self, name: str, tmp: str) -> None:
        self.name = name
        self.tmp = tmp
        self.proc: subprocess.Popen | None = None
        self.base = ""
        self.token = ""
        self.log = os.path.join(tmp, f"{name}.log")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def request(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = Request(self.base + path, data=data, method=method, headers=self.headers)
        with urlopen(req, timeout=timeout) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def _spawn(self, argv: list[str], env: dict[str, str]) -> None:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.tmp,
                start_new_session=True,
                preexec_fn=raise_fd_limit,
            )

    def _wait(self, check: Any, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.tail()}")
            try:
                result = check()
            except (OSError, ValueError):
                result = None
            if result:
                return result
            time.sleep(0.1)  # polling interval
        raise RuntimeError(f"{self.name} did not start within {timeout}s: {self.tail()}")

    def tail(self, n: int = 3000) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
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
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def start_kernel(self) -> str:
        raise NotImplementedError


class Ipytwist(Server):
    def start(self) -> None:
        state = os.path.join(self.tmp, "ipytwist-state")
        self.token = secrets.token_hex(16)
        env = dict(os.environ)
        env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
        env["IPYTHONDIR"] = os.path.join(self.tmp, "ipython-ipytwist")
        self._spawn(
            [
                sys.executable,
                "-c",
                "from twisted.scripts.twistd import run; run()",
                "-n",
                "--pidfile=",
                "ipytwist",
                "--listen",
                "tcp:0:interface=127.0.0.1",
                "--state-dir",
                state,
                "--token",
                self.token,
            ],
            env,
        )

        def info() -> Any:
            with open(os.path.join(state, "server.json")) as f:
                return json.load(f)

        self.base = f"http://127.0.0.1:{self._wait(info)['port']}"

    def start_kernel(self) -> str:
        return self.request("POST", "/api/kernels", {"name": "ipytwist"})["id"]


class JupyterServer(Server):
    def start(self) -> None:
        self.token = secrets.token_hex(16)
        port = free_port()
        env = dict(os.environ)
        for var, sub in (
            ("JUPYTER_CONFIG_DIR", "js-config"),
            ("JUPYTER_RUNTIME_DIR", "js-runtime"),
            ("JUPYTER_DATA_DIR", "js-data"),
            ("IPYTHONDIR", "ipython-ipykernel"),
        ):
            env[var] = os.path.join(self.tmp, sub)
            os.makedirs(env[var], exist_ok=True)
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        env.pop("JUPYTER_TOKEN", None)
        root = os.path.join(self.tmp, "js-root")
        os.makedirs(root, exist_ok=True)
        self._spawn(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                f"--IdentityProvider.token={self.token}",
                f"--port={port}",
                "--ServerApp.port_retries=0",
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.root_dir={root}",
                # ipytwist has no iopub rate limit; measure delivery, not dropping.
                # (The ServerApp.* spellings of these are deprecated and do not take effect.)
                "--ZMQChannelsWebsocketConnection.iopub_msg_rate_limit=0",
                "--ZMQChannelsWebsocketConnection.iopub_data_rate_limit=0",
                "--ServerApp.log_level=WARN",
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],
            env,
        )
        self.base = f"http://127.0.0.1:{port}"
        self._wait(lambda: self.request("GET", "/api/status", timeout=5) is not None)

    def start_kernel(self) -> str:
        specs = self.request("GET", "/api/kernelspecs")
        if "python3" not in specs["kernelspecs"]:
            raise RuntimeError("jupyter_server has no python3 (ipykernel) kernelspec")
        return self.request("POST", "/api/kernels", {"name": "python3"})["id"]


# -- clients --------------------------------------------------------------------------


def message(msg_id: str, session: str, channel: str, msg_type: str, content: dict) -> str:
    """A request in the legacy JSON WebSocket protocol."""
    return json.dumps(
        {
            "header": {
                "msg_id": msg_id,
                "msg_type": msg_type,
                "username": "bench",
                "session": session,
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


def execute_content(code: str) -> dict[str, Any]:
    return {
        "code": code,
        "silent": False,
        "store_history": False,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
    }


@dataclass
class Seen:
    """What one client saw of one request."""

    msg_ids: list[str] = field(default_factory=list)
    stdout: list[str] = field(default_factory=list)
    idle_at: float | None = None


class Tracker:
    """Wakes the waiter once every client still connected saw a request's idle."""

    def __init__(self) -> None:
        self.pending: dict[str, set[Client]] = {}
        self.events: dict[str, asyncio.Event] = {}
        #: iopub frame text -> decoded message, shared by all clients (read-only use).
        self.parsed: dict[str, dict[str, Any]] = {}

    def watch(self, msg_id: str, clients: list[Client]) -> asyncio.Event:
        self.pending[msg_id] = {c for c in clients if c.closed_reason is None}
        ev = self.events[msg_id] = asyncio.Event()
        if not self.pending[msg_id]:
            ev.set()
        return ev

    def _done(self, client: Client, msg_id: str) -> None:
        waiting = self.pending.get(msg_id)
        if waiting is not None and client in waiting:
            waiting.discard(client)
            if not waiting:
                self.events[msg_id].set()

    def idle(self, client: Client, msg_id: str) -> None:
        self._done(client, msg_id)

    def closed(self, client: Client) -> None:
        for msg_id in list(self.pending):
            self._done(client, msg_id)


class Client:
    def __init__(self, url: str, headers: dict[str, str], tracker: Tracker) -> None:
        self.session = uuid.uuid4().hex
        self.url = f"{url}?session_id={self.session}"
        self.headers = headers
        self.tracker = tracker
        self.ws: ClientConnection | None = None
        self.seen: dict[str, Seen] = {}
        self.replies: dict[str, asyncio.Future] = {}
        self.closed_reason: str | None = None
        self._reader: asyncio.Task | None = None

    async def open(self, timeout: float) -> None:
        self.ws = await asyncio.wait_for(
            connect(
                self.url,
                additional_headers=self.headers,
                compression=None,
                max_size=None,
                max_queue=1024,
                open_timeout=timeout,
                ping_interval=None,
            ),
            timeout,
        )
        self._reader = asyncio.create_task(self._read())

    def track(self, msg_id: str) -> None:
        self.seen[msg_id] = Seen()

    async def _read(self) -> None:
        assert self.ws is not None
        loads = json.loads
        seen = self.seen
        parsed = self.tracker.parsed
        try:
            async for raw in self.ws:
                if not isinstance(raw, str):
                    continue  # binary frames (buffers) are not used by these workloads
                # Every client gets the same text for an iopub message: parse it once, so
                # the bench measures the servers more than its own JSON decoding.
                msg = parsed.get(raw)
                if msg is None:
                    msg = loads(raw)
                    if msg.get("channel") == "iopub":
                        parsed[raw] = msg
                parent = msg["parent_header"].get("msg_id")
                if msg.get("channel") != "iopub":
                    fut = self.replies.pop(parent, None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                    continue
                s = seen.get(parent)
                if s is None:
                    continue
                s.msg_ids.append(msg["header"]["msg_id"])
                msg_type = msg["header"]["msg_type"]
                if msg_type == "stream":
                    if msg["content"].get("name") == "stdout":
                        s.stdout.append(msg["content"]["text"])
                elif (
                    msg_type == "status"
                    and msg["content"].get("execution_state") == "idle"
                    and s.idle_at is None
                ):
                    s.idle_at = time.perf_counter()
                    self.tracker.idle(self, parent)
            self.closed_reason = "closed by server"
        except ConnectionClosed as e:
            self.closed_reason = f"closed by server ({e.rcvd.code if e.rcvd else 'no close frame'})"
        except asyncio.CancelledError:
            self.closed_reason = "closed by client"
            raise
        except Exception as e:  # report, do not crash the whole bench
            self.closed_reason = f"{type(e).__name__}: {e}"
        finally:
            self.tracker.closed(self)

    async def send(self, msg_id: str, channel: str, msg_type: str, content: dict) -> None:
        assert self.ws is not None
        await self.ws.send(message(msg_id, self.session, channel, msg_type, content))

    async def request(self, channel: str, msg_type: str, content: dict, timeout: float) -> Any:
        """Send and wait for the reply (``None`` on timeout or a closed connection)."""
        msg_id = uuid.uuid4().hex
        fut = asyncio.get_running_loop().create_future()
        self.replies[msg_id] = fut
        try:
            await self.send(msg_id, channel, msg_type, content)
            return await asyncio.wait_for(fut, timeout)
        except (TimeoutError, ConnectionClosed):
            self.replies.pop(msg_id, None)
            return None

    async def close(self) -> None:
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 5)
            except Exception:
                self.ws.transport.abort()
        if self._reader is not None:
            self._reader.cancel()


# -- one measurement ------------------------------------------------------------------


@dataclass
class Result:
    n: int
    server: str
    workload: str
    connected: int
    connect_errors: dict[str, int]
    open_at_start: int
    time_to_all_idle: float | None
    clients_idle: int
    messages: int
    msgs_per_s: float | None
    requester_iopub: int
    lost: int
    clients_missing: int
    bad_stdout: int
    note: str = ""


def add_note(note: str, more: str) -> str:
    return f"{note}; {more}" if note else more


async def run_request(
    clients: list[Client], tracker: Tracker, code: str, timeout: float
) -> tuple[str, list[Client], float, bool]:
    """Execute ``code`` from the first open client; wait until every open client is idle.

    Returns the request id, the clients open when it was sent, the send time and
    whether all of them (that stayed connected) saw its idle within ``timeout``.
    """
    participants = [c for c in clients if c.closed_reason is None]
    tracker.parsed.clear()
    requester = participants[0]
    msg_id = uuid.uuid4().hex
    for c in participants:
        c.track(msg_id)
    done = tracker.watch(msg_id, participants)
    t0 = time.perf_counter()
    await requester.send(msg_id, "shell", "execute_request", execute_content(code))
    try:
        await asyncio.wait_for(done.wait(), timeout)
        finished = True
    except TimeoutError:
        finished = False
    return msg_id, participants, t0, finished


def evaluate(
    n: int,
    server: str,
    workload: str,
    msg_id: str,
    participants: list[Client],
    connect_errors: dict[str, int],
    t0: float,
    finished: bool,
    note: str,
    timeout: float,
) -> Result:
    ref = participants[0].seen[msg_id]
    ref_ids = set(ref.msg_ids)
    messages = lost = missing = bad = 0
    idle_times = []
    for c in participants:
        s = c.seen[msg_id]
        messages += len(s.msg_ids)
        gone = len(ref_ids - set(s.msg_ids))
        lost += gone
        missing += gone > 0 or s.idle_at is None
        if s.idle_at is not None:
            idle_times.append(s.idle_at)
        if workload == "print" and "".join(s.stdout) != EXPECTED_STDOUT:
            bad += 1
    closed = sum(1 for c in participants if c.closed_reason is not None)
    elapsed = max(idle_times) - t0 if finished and idle_times else None
    if closed:
        note = add_note(note, f"{closed} connections closed during the request")
    if not finished:
        note = add_note(note, f"not all idle within {timeout:g}s")
    return Result(
        n=n,
        server=server,
        workload=workload,
        connected=n - sum(connect_errors.values()),
        connect_errors=connect_errors,
        open_at_start=len(participants),
        time_to_all_idle=elapsed,
        clients_idle=len(idle_times),
        messages=messages,
        msgs_per_s=messages / elapsed if elapsed else None,
        requester_iopub=len(ref.msg_ids),
        lost=lost,
        clients_missing=missing,
        bad_stdout=bad,
        note=note,
    )


async def connect_all(
    url: str, headers: dict[str, str], n: int, tracker: Tracker, concurrency: int
) -> tuple[list[Client], dict[str, int]]:
    sem = asyncio.Semaphore(concurrency)
    errors: dict[str, int] = {}

    async def one() -> Client | None:
        c = Client(url, headers, tracker)
        async with sem:
            try:
                await c.open(timeout=60)
                return c
            except Exception as e:
                key = f"{type(e).__name__}: {str(e)[:80]}"
                errors[key] = errors.get(key, 0) + 1
                return None

    opened = await asyncio.gather(*(one() for _ in range(n)))
    return [c for c in opened if c is not None], errors


def failed(n: int, server: str, workloads: list[str], errors: dict[str, int], why: str) -> list:
    return [
        Result(n, server, w, n - sum(errors.values()), errors, 0, None, 0, 0, None, 0, 0, 0, 0, why)
        for w in workloads
    ]


async def bench_server(
    server: Server, kernel_id: str, n: int, workloads: list[str], timeout: float
) -> list[Result]:
    ws_base = server.base.replace("http://", "ws://")
    url = f"{ws_base}/api/kernels/{kernel_id}/channels"
    tracker = Tracker()
    clients, errors = await connect_all(url, server.headers, n, tracker, concurrency=32)
    try:
        if not clients:
            return failed(n, server.name, workloads, errors, "no client connected")
        # As JupyterLab does: kernel_info until answered, then a warm-up cell everyone sees.
        for _ in range(30):
            requester = next((c for c in clients if c.closed_reason is None), None)
            if requester is None:
                break
            if await requester.request("shell", "kernel_info_request", {}, timeout=2):
                break
        if not any(c.closed_reason is None for c in clients):
            return failed(n, server.name, workloads, errors, "all connections closed by server")
        await run_request(clients, tracker, "pass", 60)
        closed = [c for c in clients if c.closed_reason is not None]
        note = ""
        if closed:
            reasons: dict[str, int] = {}
            for c in closed:
                reasons[c.closed_reason or ""] = reasons.get(c.closed_reason or "", 0) + 1
            note = (
                f"{len(closed)}/{len(clients)} connections closed by the server after opening"
                + (" (" + ", ".join(f"{k} x{v}" for k, v in reasons.items()) + ")")
            )
        results = []
        for w in workloads:
            if not any(c.closed_reason is None for c in clients):
                results += failed(n, server.name, [w], errors, add_note(note, "no connection left"))
                continue
            msg_id, participants, t0, finished = await run_request(
                clients, tracker, WORKLOADS[w], timeout
            )
            r = evaluate(
                n, server.name, w, msg_id, participants, errors, t0, finished, note, timeout
            )
            results.append(r)
            print(
                f"  N={n:<5} {server.name:<15} {w:<8} "
                f"time={fmt_time(r.time_to_all_idle)} msgs/s={fmt_rate(r.msgs_per_s)} "
                f"lost={r.lost} open={r.open_at_start}/{n} {r.note}",
                flush=True,
            )
            if not finished:
                # Let the kernel finish before the next workload.
                live = next((c for c in clients if c.closed_reason is None), None)
                if live is not None:
                    await live.request("shell", "execute_request", execute_content("pass"), timeout)
        return results
    finally:
        await asyncio.gather(*(c.close() for c in clients))


# -- report ---------------------------------------------------------------------------


def fmt_time(t: float | None) -> str:
    return f"{t:.3f}s" if t is not None else "n/a"


def fmt_rate(r: float | None) -> str:
    return f"{r:,.0f}" if r is not None else "n/a"


def table(results: list[Result]) -> str:
    rows = [
        "| N | server | workload | clients served | iopub msgs/client | time to all idle "
        "| msgs/s | lost | ipytwist/jupyter_server msgs/s | jupyter_server/ipytwist time | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_key = {(r.n, r.server, r.workload): r for r in results}
    for r in results:
        ratio = time_ratio = ""
        if r.server == "ipytwist":
            peer = by_key.get((r.n, "jupyter_server", r.workload))
            if peer and peer.msgs_per_s and r.msgs_per_s:
                ratio = f"{r.msgs_per_s / peer.msgs_per_s:.1f}x"
                if peer.open_at_start < r.open_at_start:
                    ratio += f" (peer served {peer.open_at_start})"
            elif peer and r.msgs_per_s and not peer.msgs_per_s:
                ratio = "peer failed"
            if peer and peer.time_to_all_idle and r.time_to_all_idle:
                time_ratio = f"{peer.time_to_all_idle / r.time_to_all_idle:.1f}x"
                if peer.open_at_start < r.open_at_start:
                    time_ratio += f" (peer served {peer.open_at_start})"
        lost = str(r.lost)
        if r.open_at_start < r.n:
            lost += f" + {r.n - r.open_at_start} clients refused or dropped"
        if r.bad_stdout:
            lost += f" ({r.bad_stdout} bad stdout)"
        errors = sum(r.connect_errors.values())
        note = r.note
        if errors:
            note = (
                (note + "; " if note else "")
                + f"{errors} connect errors: "
                + "; ".join(f"{k} x{v}" for k, v in r.connect_errors.items())
            )
        rows.append(
            f"| {r.n} | {r.server} | {r.workload} | {r.open_at_start}/{r.n} "
            f"| {r.requester_iopub} | {fmt_time(r.time_to_all_idle)} | {fmt_rate(r.msgs_per_s)} "
            f"| {lost} | {ratio} | {time_ratio} | {note} |"
        )
    return "\n".join(rows)


# -- main -------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace, servers: dict[str, Server]) -> list[Result]:
    kernels = {name: s.start_kernel() for name, s in servers.items()}
    results: list[Result] = []
    for n in args.clients:
        for name, server in servers.items():
            try:
                results.extend(
                    await bench_server(server, kernels[name], n, args.workloads, args.timeout)
                )
            except Exception as e:  # one server's failure is a result, not a crash
                print(f"  N={n} {name}: failed: {type(e).__name__}: {e}", flush=True)
                for w in args.workloads:
                    results.extend(
                        failed(n, name, [w], {}, f"bench failed: {type(e).__name__}: {e}"[:160])
                    )
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "-n",
        "--clients",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[10, 100, 1000],
        help="comma-separated client counts (default: 10,100,1000)",
    )
    p.add_argument(
        "--servers",
        type=lambda s: s.split(","),
        default=list(SERVERS),
        help="comma-separated: ipytwist,jupyter_server",
    )
    p.add_argument(
        "--workloads",
        type=lambda s: s.split(","),
        default=list(WORKLOADS),
        help="comma-separated: print,display",
    )
    p.add_argument("--timeout", type=float, default=90.0, help="per workload (seconds)")
    p.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    p.add_argument("--keep-logs", action="store_true", help="keep server logs (temp dir)")
    args = p.parse_args(argv)
    for s in args.servers:
        if s not in SERVERS:
            p.error(f"unknown server {s!r}")
    for w in args.workloads:
        if w not in WORKLOADS:
            p.error(f"unknown workload {w!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fd_limit = raise_fd_limit()
    tmp = tempfile.mkdtemp(prefix="ipytwist-fanout-")
    classes = {"ipytwist": Ipytwist, "jupyter_server": JupyterServer}
    servers = {name: classes[name](name, tmp) for name in args.servers}
    results: list[Result] = []
    started = time.time()
    try:
        for s in servers.values():
            s.start()
        results = asyncio.run(main_async(args, servers))
    finally:
        for s in servers.values():
            s.stop()
        if args.keep_logs:
            print("logs kept in", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(table(results))
    if not args.no_save:
        os.makedirs(RESULTS_DIR, exist_ok=True)
        path = os.path.join(RESULTS_DIR, time.strftime("ws-fanout-%Y%m%d-%H%M%S.json"))
        with open(path, "w") as f:
            json.dump(
                {
                    "bench": "ws_fanout",
                    "started": started,
                    "duration": time.time() - started,
                    "args": vars(args),
                    "fd_limit": fd_limit,
                    "machine": {
                        "python": sys.version.split()[0],
                        "platform": platform.platform(),
                        "cpus": os.cpu_count(),
                    },
                    "results": [asdict(r) for r in results],
                },
                f,
                indent=2,
            )
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
