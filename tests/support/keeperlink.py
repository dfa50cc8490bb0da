"""The keeper in front of a real interpreter, driven over its Unix socket by a blocking
stand-in for the service (tests/test_keeper*.py)."""

from __future__ import annotations

import array
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ipytwist.framing import RecordDecoder, encode_record
from ipytwist.link.end import LinkEnd
from ipytwist.link.unixpath import connect_unix
from ipytwist.link.wire import Frame, Inbound, Kind, parse_output
from ipytwist.worker.keeper import (
    KERNEL_ENV,
    LINK_FD_ENV,
    LINK_PATH_ENV,
    ORPHAN_ENV,
    SECRET_FD_ENV,
    prepare_link,
)

SECRET = os.urandom(32)
KERNEL = "kernel-keeper-test"


Start = Callable[..., tuple[subprocess.Popen[bytes], str]]


@pytest.fixture(name="keeper")
def keeper_fixture(tmp_path: Path) -> Iterator[Start]:
    """``keeper``: start keepers (orphan timeout given) on sockets in ``tmp_path`` (or in
    ``directory``); end them after."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(
        orphan_timeout: float = 60.0, directory: Path | None = None
    ) -> tuple[subprocess.Popen[bytes], str]:
        path = str((directory or tmp_path) / f"link{len(procs)}.sock")
        listen, r = prepare_link(path, SECRET)
        env = {**os.environ, LINK_FD_ENV: str(listen.fileno()), SECRET_FD_ENV: str(r)}
        env.update({KERNEL_ENV: KERNEL, ORPHAN_ENV: str(orphan_timeout), LINK_PATH_ENV: path})
        env["IPYTHONDIR"] = str(tmp_path / "ipython")
        proc = subprocess.Popen(
            [sys.executable, "-m", "ipytwist.worker"], env=env, pass_fds=(listen.fileno(), r)
        )
        os.close(r)
        listen.close()
        procs.append(proc)
        return proc, path

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class Service:
    """The service's end, blocking: connects, sends, takes frames and acks them."""

    def __init__(self, path: str, inbound: Inbound | None = None, secret: bytes = SECRET) -> None:
        self.sock = connect_unix(path, timeout=30)
        self.end = LinkEnd(False, secret, KERNEL, inbound=inbound)
        self.end.connection_made()
        self.frames: list[Frame] = []
        #: Descriptors the keeper sent (its request pipe, with ``PIPE``).
        self.fds: list[int] = []

    def send(self, kind: Kind, body: bytes) -> None:
        self.sock.sendall(b"".join(self.end.send(kind, body)))

    def execute(self, code: str) -> None:
        self.send(Kind.REQUEST, encode_record({"req": "execute", "content": {"code": code}}))

    def _ack(self, seq: int) -> None:
        try:
            if ack := self.end.acknowledge(seq):
                self.sock.sendall(ack)
        except (BrokenPipeError, ConnectionResetError):
            pass  # a keeper that ends does not wait for the ack of its end

    def until(self, done: Callable[[Frame], bool]) -> list[Frame]:
        """Frames taken (and acked) up to the first for which ``done`` holds."""
        got: list[Frame] = []
        while True:
            data, ancillary, _, _ = self.sock.recvmsg(1 << 16, socket.CMSG_SPACE(16))
            for _, _, cdata in ancillary:
                self.fds.extend(array.array("i", cdata))
            assert data, "the keeper closed the link"
            write, frames = self.end.data_received(data)
            if write:
                self.sock.sendall(b"".join(write))
            for frame in frames:
                self._ack(frame.seq)
                got.append(frame)
                if done(frame):
                    return got


def event(frame: Frame) -> dict[str, object]:
    (record,) = RecordDecoder().feed(frame.body) if frame.kind is Kind.EVENT else [{}]
    return record


def is_reply(frame: Frame) -> bool:
    return event(frame).get("ev") == "reply"


def stdout(frames: list[Frame]) -> str:
    out = [parse_output(f) for f in frames if f.kind is Kind.OUTPUT]
    return b"".join(data for fd, data in out if fd == 1).decode()


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
