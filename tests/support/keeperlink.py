"""The keeper in front of a real interpreter, driven over its Unix socket by a blocking
stand-in for the service (tests/test_keeper*.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from benchlib.linkclient import LinkClient, event, is_reply  # noqa: F401 - re-exported for the tests

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


class Service(LinkClient):
    """The service's end, blocking, with this module's secret and kernel id."""

    def __init__(self, path: str, inbound: Inbound | None = None, secret: bytes = SECRET) -> None:
        super().__init__(path, secret, KERNEL, inbound)


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
