"""A kernel's ZeroMQ side, driven by hand: sockets on its ports and messages signed (or
not) with its key, so a test can send what no real client would."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import zmq

DELIM = b"<IDS|MSG>"


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


class ZmqClient:
    """Sockets on a kernel's ports and its signing key, from its connection info."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.ctx = zmq.Context()

    @classmethod
    def from_file(cls, path: str) -> ZmqClient:
        with open(path) as f:
            return cls(json.load(f))

    @property
    def key(self) -> bytes:
        key = self.info["key"]
        return key if isinstance(key, bytes) else str(key).encode()

    def socket(self, channel: str, kind: int = zmq.DEALER) -> zmq.Socket:
        sock = self.ctx.socket(kind)
        sock.linger = 0
        sock.sndtimeo = 10_000  # a kernel that stops reading fails the test, no hang
        ip = self.info.get("ip", "127.0.0.1")
        sock.connect(f"tcp://{ip}:{self.info[channel + '_port']}")
        return sock

    def sign(self, parts: list[bytes], key: bytes | None = None) -> bytes:
        h = hmac.new(self.key if key is None else key, digestmod=hashlib.sha256)
        for p in parts:
            h.update(p)
        return h.hexdigest().encode()

    def signed(self, parts: list[bytes], key: bytes | None = None) -> list[bytes]:
        """``parts`` after the delimiter and their signature (with ``key``, if given)."""
        return [DELIM, self.sign(parts, key), *parts]

    def parts(self, msg_type: Any, content: Any = None, **header: Any) -> list[bytes]:
        """Header (``header`` over a valid one), parent, metadata and content, unsigned."""
        hdr = {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "session": "zmq-test",
            "username": "test",
            "date": "2024-01-01T00:00:00Z",
            "version": "5.3",
            **header,
        }
        return [dumps(hdr), b"{}", b"{}", dumps({} if content is None else content)]

    def request(self, msg_type: str, content: Any = None) -> tuple[str, list[bytes]]:
        """``(msg_id, frames)`` of a correctly signed request."""
        parts = self.parts(msg_type, content)
        return json.loads(parts[0])["msg_id"], self.signed(parts)

    def close(self) -> None:
        self.ctx.destroy(linger=0)


def zmq_reply_to(sock: zmq.Socket, msg_id: str, timeout: float = 10.0) -> dict[str, Any] | None:
    """Read ``sock`` until the reply whose parent is ``msg_id`` (others are dropped)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not sock.poll(int(left * 1000) + 1):
            break
        frames = sock.recv_multipart()
        if DELIM not in frames:
            continue
        i = frames.index(DELIM)
        if msg_id.encode() not in frames[i + 3]:
            continue  # a reply to a hostile request (its parent may be too deep to load)
        header, parent = (json.loads(f) for f in frames[i + 2 : i + 4])
        if parent.get("msg_id") == msg_id:
            return {"header": header, "parent_header": parent}
    return None


def drain(*socks: zmq.Socket) -> int:
    """Read whatever is waiting on ``socks`` without blocking; how many messages."""
    n = 0
    for sock in socks:
        while sock.poll(0):
            sock.recv_multipart()
            n += 1
    return n


def zmq_kernel_info(zk: ZmqClient, sock: zmq.Socket, timeout: float = 10.0) -> bool:
    """A signed kernel_info_request on ``sock`` is answered."""
    msg_id, frames = zk.request("kernel_info_request")
    sock.send_multipart(frames)
    reply = zmq_reply_to(sock, msg_id, timeout)
    return reply is not None and reply["header"]["msg_type"] == "kernel_info_reply"


def heartbeat(zk: ZmqClient, timeout: float = 10.0) -> bool:
    """A REQ on the heartbeat port gets its own bytes back."""
    sock = zk.socket("hb", zmq.REQ)
    try:
        ping = b"ping-" + uuid.uuid4().hex.encode()
        sock.send(ping)
        return bool(sock.poll(int(timeout * 1000))) and sock.recv() == ping
    finally:
        sock.close()
