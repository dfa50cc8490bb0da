"""The keeper in front of a real interpreter, driven over its Unix socket by a stand-in
for the service (docs/durable-kernels.md): order, resumption, orphans, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from benchlib.procs import wait_for

from ipytwist.framing import RecordDecoder, encode_record
from ipytwist.link.end import LinkEnd
from ipytwist.link.wire import Frame, Inbound, Kind, json_body, parse_output
from ipytwist.worker.keeper import (
    DIE_WITH_PARENT_ENV,
    KERNEL_ENV,
    LINK_FD_ENV,
    ORPHAN_ENV,
    SECRET_FD_ENV,
    prepare_link,
)

SECRET = os.urandom(32)
KERNEL = "kernel-keeper-test"


@pytest.fixture
def keeper(tmp_path: Path) -> Iterator[Callable[[float], tuple[subprocess.Popen[bytes], str]]]:
    """Start keepers (orphan timeout given) on sockets in ``tmp_path``; end them after."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(orphan_timeout: float = 60.0) -> tuple[subprocess.Popen[bytes], str]:
        path = str(tmp_path / f"link{len(procs)}.sock")
        listen, r = prepare_link(path, SECRET)
        env = {**os.environ, LINK_FD_ENV: str(listen.fileno()), SECRET_FD_ENV: str(r)}
        env.update({KERNEL_ENV: KERNEL, ORPHAN_ENV: str(orphan_timeout)})
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

    def __init__(self, path: str, inbound: Inbound | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(30)
        self.sock.connect(path)
        self.end = LinkEnd(False, SECRET, KERNEL, inbound=inbound)
        self.end.connection_made()
        self.frames: list[Frame] = []

    def send(self, kind: Kind, body: bytes) -> None:
        self.sock.sendall(b"".join(self.end.send(kind, body)))

    def execute(self, code: str) -> None:
        self.send(Kind.REQUEST, encode_record({"req": "execute", "content": {"code": code}}))

    def until(self, done: Callable[[Frame], bool]) -> list[Frame]:
        """Frames taken (and acked) up to the first for which ``done`` holds."""
        got: list[Frame] = []
        while True:
            data = self.sock.recv(1 << 16)
            assert data, "the keeper closed the link"
            write, frames = self.end.data_received(data)
            self.sock.sendall(b"".join(write))
            for frame in frames:
                self.sock.sendall(self.end.acknowledge(frame.seq))
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


def test_output_of_every_kind_comes_in_order_with_the_reply_last(keeper) -> None:
    """print, a subprocess's output on fd 1 and a C-level write keep their order, and
    everything a cell printed is taken before its reply."""
    _, path = keeper()
    service = Service(path)
    service.until(lambda f: event(f).get("ev") == "ready")
    service.execute("import os\nprint('a')\nos.system('echo b')\nos.write(1, b'c\\n')\nprint('d')")
    frames = service.until(is_reply)
    assert stdout(frames) == "a\nb\nc\nd\n"
    assert event(frames[-1])["content"]["status"] == "ok"  # type: ignore[index]  # (a reply)


def test_a_new_service_gets_what_was_printed_while_none_was_there(keeper) -> None:
    """The service dies mid-cell; the cell goes on printing; the next service, resuming
    from what the first had taken, gets every line once and in order."""
    _, path = keeper()
    first = Service(path)
    first.until(lambda f: event(f).get("ev") == "ready")
    first.execute(
        "import time\nfor i in range(20):\n    print(i, flush=True)\n    time.sleep(0.05)"
    )
    before = first.until(lambda f: "3\n" in stdout([f]))
    taken = first.end.inbound
    first.sock.close()  # the service is gone; what it took is "persisted"
    second = Service(path, inbound=Inbound(taken.stream, taken.taken))
    after = second.until(is_reply)
    assert stdout(before) + stdout(after) == "".join(f"{i}\n" for i in range(20))


def test_a_stop_ends_the_interpreter_and_the_keeper(keeper) -> None:
    proc, path = keeper()
    service = Service(path)
    service.until(lambda f: event(f).get("ev") == "ready")
    service.send(Kind.CONTROL, json_body({"do": "stop"}))
    (exited,) = service.until(lambda f: f.kind is Kind.EXITED)[-1:]
    assert b"exited with status 0" in exited.body
    assert proc.wait(timeout=30) == 0


def test_an_orphan_ends_its_group_after_the_timeout(keeper) -> None:
    """No service for the orphan timeout: the keeper ends, and with it the interpreter's
    group, a `sleep 300` from user code included."""
    proc, path = keeper(1.0)
    service = Service(path)
    service.until(lambda f: event(f).get("ev") == "ready")
    service.execute("import subprocess\nprint(subprocess.Popen(['sleep', '300']).pid)")
    sleep_pid = int(stdout(service.until(is_reply)))
    service.sock.close()
    assert proc.wait(timeout=30) == 1
    assert not alive(sleep_pid)
    assert not os.path.exists(path)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_stopped_keeper_ends_when_its_service_leaves_without_the_last_ack(keeper) -> None:
    """The service asked for the stop and went: it will not come back for the end."""
    proc, path = keeper()
    service = Service(path)
    service.until(lambda f: event(f).get("ev") == "ready")
    service.send(Kind.CONTROL, json_body({"do": "stop"}))
    service.sock.close()
    assert proc.wait(timeout=30) == 0


def test_sigterm_to_the_keeper_ends_the_interpreters_group(keeper) -> None:
    """A plain SIGTERM still ends a kernel and its children (a `sleep 300`)."""
    proc, path = keeper()
    service = Service(path)
    service.until(lambda f: event(f).get("ev") == "ready")
    service.execute("import subprocess\nprint(subprocess.Popen(['sleep', '300']).pid)")
    sleep_pid = int(stdout(service.until(is_reply)))
    proc.terminate()
    assert proc.wait(timeout=30) == 1
    assert not alive(sleep_pid)
    assert not os.path.exists(path)


#: The process that starts a standalone kernel's keeper, then waits to be killed.
PARENT = (
    "import subprocess, sys\n"
    "fds = (int(sys.argv[1]), int(sys.argv[2]))\n"
    "p = subprocess.Popen([sys.executable, '-m', 'ipytwist.worker'], pass_fds=fds)\n"
    "print(p.pid, flush=True)\n"
    "sys.stdin.read()\n"
)


def test_a_standalone_kernels_keeper_ends_with_its_parent(tmp_path: Path) -> None:
    """A kernel that is not durable: the process that started its keeper is SIGKILLed;
    the keeper, the interpreter and user code's `sleep 300` end (no orphan timeout
    to wait for), and the socket file goes."""
    path = str(tmp_path / "link.sock")
    listen, r = prepare_link(path, SECRET)
    env = {**os.environ, LINK_FD_ENV: str(listen.fileno()), SECRET_FD_ENV: str(r)}
    env.update({KERNEL_ENV: KERNEL, ORPHAN_ENV: "600", DIE_WITH_PARENT_ENV: "1"})
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    fds = (listen.fileno(), r)
    argv = [sys.executable, "-c", PARENT, *map(str, fds)]
    parent = subprocess.Popen(
        argv, env=env, pass_fds=fds, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    os.close(r)
    listen.close()
    assert parent.stdout is not None
    pids = [int(parent.stdout.readline())]
    try:
        service = Service(path)
        service.until(lambda f: event(f).get("ev") == "ready")
        service.execute("SLEEP = ['sleep', '300']")
        service.until(is_reply)
        service.execute("import os, subprocess as s\nprint(os.getpid(), s.Popen(SLEEP).pid)")
        pids += [int(pid) for pid in stdout(service.until(is_reply)).split()]
        parent.kill()
        wait_for(lambda: not any(map(alive, pids)), 30, "the keeper's end")
        assert not os.path.exists(path)
    finally:
        parent.kill()
        parent.wait()
        if alive(pids[0]):
            os.kill(pids[0], signal.SIGTERM)  # (it ends the interpreter's group)
