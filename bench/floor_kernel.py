"""The client's floor: a kernel that runs nothing (``python bench/floor_kernel.py -f
<connection file>``).  It answers ``kernel_info_request`` and ``execute_request`` at
once with the messages a client waits for (busy, the result ``1``, the reply, idle), so
a round trip to it is what jupyter_client, ZeroMQ and the signing cost on their own;
``instant_bench.py --round-trip`` subtracts it from each kernel's round trip."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import zmq
from jupyter_client.session import Session

KERNEL_INFO = {
    "status": "ok",
    "protocol_version": "5.3",
    "implementation": "floor",
    "implementation_version": "0",
    "language_info": {"name": "python"},
    "banner": "",
}


def serve(conn: dict[str, Any]) -> None:
    """Answer on the ports of ``conn`` until killed."""
    ctx = zmq.Context()
    url = f"{conn['transport']}://{conn['ip']}:"
    shell = ctx.socket(zmq.ROUTER)
    control = ctx.socket(zmq.ROUTER)
    iopub = ctx.socket(zmq.PUB)
    stdin = ctx.socket(zmq.ROUTER)
    hb = ctx.socket(zmq.REP)
    for sock, port in (
        (shell, "shell_port"),
        (control, "control_port"),
        (iopub, "iopub_port"),
        (stdin, "stdin_port"),
        (hb, "hb_port"),
    ):
        sock.bind(url + str(conn[port]))
    session = Session(key=conn["key"].encode(), signature_scheme=conn["signature_scheme"])
    poller = zmq.Poller()
    for sock in (shell, control, hb):
        poller.register(sock, zmq.POLLIN)
    count = 0
    while True:
        for sock, _ in poller.poll():
            if sock is hb:
                hb.send(hb.recv())
                continue
            idents, msg = session.recv(sock, mode=0)
            if msg is None:
                continue
            parent = msg["header"]
            kind = parent["msg_type"].replace("_request", "_reply")
            session.send(iopub, "status", {"execution_state": "busy"}, parent=parent)
            if parent["msg_type"] == "execute_request":
                count += 1
                result = {"execution_count": count, "data": {"text/plain": "1"}, "metadata": {}}
                session.send(iopub, "execute_result", result, parent=parent)
                content: dict[str, Any] = {"status": "ok", "execution_count": count}
            elif parent["msg_type"] == "kernel_info_request":
                content = KERNEL_INFO
            else:
                content = {"status": "ok"}
            session.send(sock, kind, content, parent=parent, ident=idents)
            session.send(iopub, "status", {"execution_state": "idle"}, parent=parent)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-f", dest="connection_file", required=True)
    args = p.parse_args()
    with open(args.connection_file) as f:
        serve(json.load(f))
    return 0


if __name__ == "__main__":
    sys.exit(main())
