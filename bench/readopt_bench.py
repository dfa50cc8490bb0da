"""Re-adopting kernels: start N kernels (50) on a service whose kernels outlive it
(``IPYTWIST_WORKER_LINK=socket``), SIGKILL the service, start a new one on the same
state directory and time it until every kernel is back (issue 18; goal: 50 under 2 s).

    python bench/readopt_bench.py               # 50 kernels, about 1-2 minutes
    python bench/readopt_bench.py --kernels 10  # a quick look

Clients are ready before the new service starts: for each kernel a ZeroMQ DEALER on
its old connection file's shell port (reconnecting every 10 ms, so the figure is the
service's, not ZeroMQ's 100 ms back-off) with a ``kernel_info_request`` and then an
``execute_request`` queued.  Printed, from the new process's start: when it listens,
when the REST API lists every kernel (each one's keeper reached and handshaken), when
every kernel answered ``kernel_info`` and when every interpreter answered a cell.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from typing import Any

import zmq
from benchlib.procs import end_keepers, wait_for
from benchlib.servers import Service, checkout_env
from jupyter_client.session import Session


class Client:
    """One kernel's shell channel, as a client made before the restart holds it."""

    def __init__(self, ctx: zmq.Context[Any], connection_file: str) -> None:
        with open(connection_file) as f:
            info = json.load(f)
        self.session = Session(key=info["key"].encode(), signature_scheme=info["signature_scheme"])
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.RECONNECT_IVL, 10)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(f"tcp://{info['ip']}:{info['shell_port']}")
        self.info_id = self.session.send(self.sock, "kernel_info_request", {})["header"]["msg_id"]
        content = {"code": "1", "silent": False}
        self.exec_id = self.session.send(self.sock, "execute_request", content)["header"]["msg_id"]
        self.answered: dict[str, float] = {}

    def read(self, now: float) -> None:
        while True:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            _, msg = self.session.feed_identities(frames)
            parent = self.session.deserialize(msg)["parent_header"].get("msg_id")
            self.answered.setdefault(parent, now)


def start_kernels(svc: Service, n: int) -> list[str]:
    ids = [svc.start_kernel() for _ in range(n)]

    def all_idle() -> bool:
        states = {k["id"]: k["execution_state"] for k in svc.request("GET", "/api/kernels")}
        return all(states.get(i) == "idle" for i in ids)

    wait_for(all_idle, 60 + 3 * n, f"{n} kernels to be ready", 0.2)
    return ids


def readopt(base: str, n: int) -> dict[str, float]:
    env = checkout_env(os.path.join(base, "ipython"))
    env["IPYTWIST_WORKER_LINK"] = "socket"
    first = Service(base, env=env).start()
    second = None
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        ids = start_kernels(first, n)
        first.proc.kill()  # type: ignore[union-attr]  # (started)
        first.proc.wait()  # type: ignore[union-attr]
        os.unlink(os.path.join(first.state_dir, "server.json"))  # the dead one's
        clients = [Client(ctx, first.connection_file(i)) for i in ids]
        second = Service(base, token=first.token, env=env)
        t0 = time.monotonic()
        second.start()
        figures = {"listening": time.monotonic() - t0}
        listed = False
        deadline = t0 + 120
        while time.monotonic() < deadline:
            now = time.monotonic() - t0
            for c in clients:
                c.read(now)
            if not listed and len(second.request("GET", "/api/kernels")) == n:
                listed, figures["listed"] = True, time.monotonic() - t0
            if listed and all(c.exec_id in c.answered for c in clients):
                break
            time.sleep(0.005)
        figures["kernel_info"] = max(c.answered.get(c.info_id, float("inf")) for c in clients)
        figures["execute"] = max(c.answered.get(c.exec_id, float("inf")) for c in clients)
        return figures
    finally:
        ctx.destroy(linger=0)
        for svc in (first, second):
            if svc is not None:
                svc.stop()
        end_keepers(os.path.join(base, "state"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernels", type=int, default=50, help="kernels to re-adopt (50)")
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="rb", dir="/tmp")  # a socket's path holds 107 bytes
    try:
        figures = readopt(base, args.kernels)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"re-adopting {args.kernels} kernels after SIGKILL, from the new process's start:")
    for what, label in (
        ("listening", "listening"),
        ("listed", "every kernel listed (keepers reached)"),
        ("kernel_info", "every kernel answered kernel_info"),
        ("execute", "every interpreter answered a cell"),
    ):
        print(f"  {label}: {figures.get(what, float('nan')):.2f} s")
    after = figures["execute"] - figures["listening"]
    print(f"  after it listened, every interpreter answered a cell in {after:.2f} s")


if __name__ == "__main__":
    main()
