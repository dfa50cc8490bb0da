"""How long the service's reactor stalls while something else goes on: a probe process.

:class:`StallProbe` runs ``python -m benchlib.stall`` next to a scenario: a REST
``GET /api/status`` and a ``kernel_info_request`` on a kernel of its own over WebSocket,
every :data:`INTERVAL` seconds.  It runs in a process of its own, so the scenario's
clients (which may flood the service from an event loop) never delay it.

Each round trip is timed on the wall clock, and so is the CPU time the service's main
thread (its reactor) used meanwhile.  A round trip's *stall* is the smaller of the
two: while the reactor works without pause, both grow alike; on a loaded machine where
the service waits for a core, only the wall clock does, and that wait is not the
service's doing.  The longest stall is what a scenario reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: Seconds between two pairs of round trips: the probe costs the service little.
INTERVAL = 0.02
BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main_thread_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid``'s main thread (its reactor, for the service)."""
    with open(f"/proc/{pid}/task/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class Stalls:
    """What the probe measured, per kind of round trip ("rest", "ws")."""

    wall: dict[str, list[float]] = field(default_factory=dict)
    stall: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def longest(self, kind: str | None = None) -> float:
        """The longest stall (of one kind, or of any)."""
        kinds = [kind] if kind else list(self.stall)
        return max((s for k in kinds for s in self.stall.get(k, [])), default=float("nan"))

    def longest_wall(self, kind: str | None = None) -> float:
        kinds = [kind] if kind else list(self.wall)
        return max((s for k in kinds for s in self.wall.get(k, [])), default=float("nan"))

    def count(self) -> int:
        return sum(len(v) for v in self.wall.values())


class StallProbe:
    """The probe process for the length of a ``with`` block."""

    def __init__(self, url: str, token: str, kernel_id: str, pid: int) -> None:
        self.args = [url, token, kernel_id, str(pid)]
        self.proc: subprocess.Popen[str] | None = None
        self.result = Stalls()

    def __enter__(self) -> StallProbe:
        env = {**os.environ, "PYTHONPATH": BENCH + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchlib.stall", *self.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline()  # its first round trips are done
        assert ready.strip() == "ready", ready
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.proc is not None
        out, _ = self.proc.communicate("stop\n", timeout=120)
        data = json.loads(out)
        self.result = Stalls(data["wall"], data["stall"], data["errors"])


def _probe(url: str, token: str, kernel_id: str, pid: int) -> dict[str, Any]:
    import select

    import requests
    import websocket

    headers = {"Authorization": f"token {token}"}
    ws_url = url.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
    ws = websocket.create_connection(
        f"{ws_url}?session_id={uuid.uuid4().hex}", header=[f"Authorization: token {token}"]
    )
    session = requests.Session()
    out: dict[str, Any] = {"wall": {"rest": [], "ws": []}, "stall": {"rest": [], "ws": []}}
    out["errors"] = []

    def rest() -> None:
        r = session.get(url + "/api/status", headers=headers, timeout=60)
        r.raise_for_status()

    def kernel_info() -> None:
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": "kernel_info_request", "session": "probe"}
        ws.send(json.dumps({"header": header, "parent_header": {}, "metadata": {},
                            "content": {}, "channel": "shell"}))  # fmt: skip
        ws.settimeout(60)
        while True:
            reply = json.loads(ws.recv())
            if reply.get("msg_type") == "kernel_info_reply" and (
                reply.get("parent_header", {}).get("msg_id") == msg_id
            ):
                return

    def once(kind: str, call: Any) -> None:
        cpu, t = main_thread_cpu(pid), time.monotonic()
        try:
            call()
        except Exception as e:
            out["errors"].append(f"{kind}: {type(e).__name__}: {e}"[:300])
            return
        wall = time.monotonic() - t
        out["wall"][kind].append(wall)
        out["stall"][kind].append(min(wall, main_thread_cpu(pid) - cpu))

    once("rest", rest)
    once("ws", kernel_info)
    print("ready", flush=True)
    while not select.select([sys.stdin], [], [], INTERVAL)[0]:
        once("rest", rest)
        once("ws", kernel_info)
    ws.close()
    return out


if __name__ == "__main__":
    url, token, kid, pid = sys.argv[1:5]
    print(json.dumps(_probe(url, token, kid, int(pid))), flush=True)
