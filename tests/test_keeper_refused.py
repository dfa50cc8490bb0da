"""A keeper the service cannot serve (no common link version) is told so with a REFUSE:
it ends its interpreter's group and exits (docs/durable-kernels.md, "Orphans")."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from benchlib.procs import pid_alive, wait_for

from ipytwist.link.shake import DialerHandshake, LinkRefused
from ipytwist.link.wire import FrameDecoder, Inbound, Kind, parse_json_body
from ipytwist.worker.keeper import KERNEL_ENV, LINK_FD_ENV, ORPHAN_ENV, SECRET_FD_ENV, prepare_link

SECRET = os.urandom(32)
KERNEL = "kernel-refused"


def test_a_keeper_refused_for_its_version_ends_with_its_interpreter(tmp_path: Path) -> None:
    path = str(tmp_path / "link.sock")
    listen, r = prepare_link(path, SECRET)
    env = {**os.environ, LINK_FD_ENV: str(listen.fileno()), SECRET_FD_ENV: str(r)}
    env.update({KERNEL_ENV: KERNEL, ORPHAN_ENV: "600", "IPYTHONDIR": str(tmp_path / "ipy")})
    proc = subprocess.Popen(
        [sys.executable, "-m", "ipytwist.worker"], env=env, pass_fds=(listen.fileno(), r)
    )
    os.close(r)
    listen.close()
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(30)
        sock.connect(path)
        decoder = FrameDecoder()
        frames = decoder.feed(sock.recv(1 << 16))
        while not frames:
            frames = decoder.feed(sock.recv(1 << 16))
        assert frames[0].kind is Kind.HELLO
        interpreter = parse_json_body(frames[0])["info"]["pid"]
        shake = DialerHandshake(SECRET, KERNEL, "n" * 32, "service", Inbound(), versions=(99,))
        with pytest.raises(LinkRefused) as refused:
            shake.receive(frames[0])
        sock.sendall(refused.value.frame)
        assert proc.wait(30) != 0
        wait_for(lambda: not pid_alive(interpreter), 30, "the interpreter's end")
        assert not os.path.exists(path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
