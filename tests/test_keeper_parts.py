"""The keeper's parts beyond the prototype (docs/durable-kernels.md, step 2 and 3):
requests written into fd 3 a piece at a time and taken once written, SO_PEERCRED,
SIGKILL of the interpreter's group 2 s after a stop or a SIGTERM, socket paths longer
than ``sun_path`` holds."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchlib.procs import wait_for
from benchlib.running import running_service
from jupyter_client.blocking.client import BlockingKernelClient
from support.keeperlink import (
    KERNEL,
    SECRET,
    Service,
    alive,
    event,
    is_reply,
    keeper_fixture,  # noqa: F401 - the fixture `keeper`
    stdout,
)

from ipytwist.framing import encode_record
from ipytwist.link.unixpath import SUN_PATH_MAX, bind_unix, connect_unix
from ipytwist.link.wire import LINK_WINDOW, FrameDecoder, Kind, json_body
from ipytwist.worker.keeper import IDLE_WAKE, KILL_AFTER, Keeper

MiB = 1 << 20


def hwm_mib(pid: int) -> float:
    """The peak resident memory of ``pid`` (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def test_a_large_request_costs_the_keeper_its_size_once(keeper) -> None:
    """A comm message with a 16 MiB buffer: the keeper writes it into fd 3 from the
    frame it came in (before: a second copy of it waited for the pipe), and acks it once
    it is all written."""
    proc, path = keeper()
    service = Service(path)
    service.until(lambda f: event(f).get("ev") == "ready")
    before = hwm_mib(proc.pid)
    comm = {"msg_type": "comm_msg", "content": {"comm_id": "none", "data": {}}}
    record = {"req": "comm", "content": comm, "buffers": [bytes(16 * MiB)]}
    service.send(Kind.REQUEST, encode_record(record))
    service.until(is_reply)
    assert service.end.out.acked == service.end.out.sent  # written, then taken
    growth = hwm_mib(proc.pid) - before
    assert growth < 1.5 * 16, growth  # (before: 2 x 16 MiB and more)


def test_a_stop_kills_an_interpreter_that_does_not_end(keeper) -> None:
    """The interpreter runs a cell and never reads its shutdown: SIGKILL to its group
    KILL_AFTER seconds after the stop (before: it ran on, and the keeper with it)."""
    proc, path = keeper()
    service = Service(path)
    service.until(lambda f: event(f).get("ev") == "ready")
    service.execute("import time\nprint('running', flush=True)\ntime.sleep(300)")
    service.until(lambda f: "running" in stdout([f]))
    start = time.monotonic()
    service.send(Kind.CONTROL, json_body({"do": "stop"}))
    (exited,) = service.until(lambda f: f.kind is Kind.EXITED)[-1:]
    assert b"was killed by signal 9" in exited.body
    assert KILL_AFTER - 0.2 < time.monotonic() - start < KILL_AFTER + 10
    assert proc.wait(timeout=30) == 0


#: User code that ends on SIGTERM its own way, saying so.
GRACEFUL = (
    "import os, signal\n"
    "def bye(*_):\n"
    "    os.write(1, b'bye\\n')\n"
    "    os._exit(3)\n"
    "signal.signal(signal.SIGTERM, bye)\n"
)


def test_sigterm_gives_the_interpreter_its_grace(keeper) -> None:
    """SIGTERM to the keeper: SIGTERM to the interpreter's group, whose handler still
    prints and exits, and that end goes to the service (before: SIGKILL at once, no
    word of the end)."""
    proc, path = keeper()
    service = Service(path)
    service.until(lambda f: event(f).get("ev") == "ready")
    service.execute(GRACEFUL)
    service.until(is_reply)
    proc.terminate()
    frames = service.until(lambda f: f.kind is Kind.EXITED)
    assert stdout(frames) == "bye\n"
    assert b"exited with status 3" in frames[-1].body
    assert proc.wait(timeout=30) == 1


def test_an_orphan_that_ignores_sigterm_is_killed_after_the_grace(keeper) -> None:
    """The orphan timeout: SIGTERM, ignored by user code, then SIGKILL KILL_AFTER later;
    the keeper ends with the interpreter."""
    proc, path = keeper(1.0)
    service = Service(path)
    service.until(lambda f: event(f).get("ev") == "ready")
    service.execute("import os, signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)")
    service.until(is_reply)
    service.execute("print(os.getpid())")
    pid = int(stdout(service.until(is_reply)))
    service.sock.close()
    start = time.monotonic()
    assert proc.wait(timeout=30) == 1
    assert time.monotonic() - start > KILL_AFTER  # (1 s of orphan, then the grace)
    assert not alive(pid)


def test_a_connection_from_another_uid_is_refused(tmp_path: Path, capfd: Any) -> None:
    """SO_PEERCRED: a peer of another uid gets REFUSE and a closed socket, one line in
    the log; the keeper keeps waiting for its service.  (In process: the keeper is told
    its owner is another uid, so this test's own connection is a stranger's.)"""
    path = str(tmp_path / "link.sock")
    pipes = [os.pipe() for _ in range(4)]
    readers = {1: pipes[0][0], 2: pipes[1][0], 4: pipes[2][0]}
    keeper = Keeper(bind_unix(path), SECRET, KERNEL, 60, ("00", os.getpid(), readers, pipes[3][1]))
    keeper.uid = os.getuid() + 1
    stranger = connect_unix(path, timeout=10)
    keeper._accept()
    frames = FrameDecoder().feed(stranger.recv(4096))
    assert [f.kind for f in frames] == [Kind.REFUSE]
    assert stranger.recv(1) == b""
    assert keeper.conn is None
    assert capfd.readouterr().err.count("refused a connection from uid") == 1
    keeper.uid = os.getuid()
    owner = connect_unix(path, timeout=10)
    keeper._accept()
    keeper._flush()
    assert [f.kind for f in FrameDecoder().feed(owner.recv(4096))] == [Kind.HELLO]
    for r, w in pipes:
        os.close(r)
        os.close(w)


def long_dir(base: Path, size: int) -> Path:
    """A directory under ``base`` whose path is ``size`` bytes long."""
    room = size - len(os.fsencode(str(base))) - 1
    path = base / ("d" * (room // 2)) / ("e" * (room - room // 2 - 1))
    path.mkdir(parents=True)
    assert len(os.fsencode(str(path))) == size
    return path


def test_a_keeper_on_a_path_longer_than_sun_path(keeper, tmp_path: Path) -> None:
    """A socket path of 210 bytes (sun_path holds 107): bound and reached through a
    descriptor of its directory; the keeper serves on it and removes it at its end."""
    proc, path = keeper(directory=long_dir(tmp_path, 200))
    assert len(os.fsencode(path)) > SUN_PATH_MAX and os.path.exists(path)
    service = Service(path)
    service.until(lambda f: event(f).get("ev") == "ready")
    service.execute("print(6 * 7)")
    assert stdout(service.until(is_reply)) == "42\n"
    service.send(Kind.CONTROL, json_body({"do": "stop"}))
    service.until(lambda f: f.kind is Kind.EXITED)
    assert proc.wait(timeout=30) == 0
    assert not os.path.exists(path)


def test_a_service_on_a_200_byte_state_dir(tmp_path_factory: Any) -> None:
    """The service with a state directory of about 200 bytes: its kernels' sockets
    (STATE/kernels/<id>/link.sock) are longer than sun_path holds, and a cell runs."""
    base = tmp_path_factory.getbasetemp()
    name = "s" * (200 - len(os.fsencode(str(base))) - len("/0/state"))
    with running_service(tmp_path_factory, name, env={"IPYTWIST_WORKER_LINK": "socket"}) as svc:
        assert len(os.fsencode(svc.state_dir)) >= 200
        kernel_id = svc.start_kernel()
        client = BlockingKernelClient(connection_file=svc.connection_file(kernel_id))
        client.load_connection_file()
        client.start_channels()
        try:
            out: list[str] = []
            reply = client.execute_interactive(
                "print(6 * 7)",
                timeout=60,
                output_hook=lambda m: out.append(m["content"].get("text", "")),
            )
        finally:
            client.stop_channels()
        assert reply["content"]["status"] == "ok"
        assert "".join(out) == "42\n"
        sockets = list(Path(svc.state_dir, "kernels").glob("*/link.sock"))
        assert sockets and all(len(os.fsencode(str(s))) > SUN_PATH_MAX for s in sockets)


#: What the keeper imports before it forks its interpreter, and what it must not.
IMPORTS = (
    "import sys, ipytwist.worker.keepstart\n"
    "heavy = {'orjson', 'ipytwist.wire', 'uuid', 'datetime', 'twisted', 'IPython'}\n"
    "print(sorted(heavy & set(sys.modules)))"
)


def test_the_keeper_imports_nothing_heavy_before_the_fork() -> None:
    """Whatever the keeper imports before the fork stays in its memory for good: not the
    wire's JSON (orjson, uuid, datetime), Twisted or IPython (the prototype's keeper
    imported the wire through ``ipytwist.framing``)."""
    out = subprocess.run(
        [sys.executable, "-c", IMPORTS], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def blocked_writing(pid: int) -> bool:
    """Whether ``pid`` waits in a write to a full pipe (print blocked)."""
    with open(f"/proc/{pid}/wchan") as f:
        return "pipe_write" in f.read()  # (anon_pipe_write on newer kernels)


#: 40 MiB of numbered lines.
FLOOD = "for i in range(400_000):\n    print(str(i).zfill(99))"


def test_a_service_that_stops_reading_costs_the_keeper_its_window(keeper) -> None:
    """The service reads nothing while a cell prints 40 MiB: the keeper holds the window
    (4 MiB of unacked frames) and no copy of it, then print blocks; once the service
    reads again, every line comes, in order (before: the frames waiting for the socket
    were a second copy of the window)."""
    proc, path = keeper()
    service = Service(path)
    service.until(lambda f: event(f).get("ev") == "ready")
    interpreter = service.end.peer_info["pid"]
    assert isinstance(interpreter, int)
    before = rss_mib(proc.pid)
    service.execute(FLOOD)
    wait_for(lambda: blocked_writing(interpreter), 60, "print to block")
    grown = rss_mib(proc.pid) - before
    assert grown < LINK_WINDOW / MiB + 2, grown
    frames = service.until(is_reply)
    lines = stdout(frames).splitlines()
    assert lines == [str(i).zfill(99) for i in range(400_000)]


def test_an_idle_keeper_sleeps_until_something_is_due(tmp_path: Path) -> None:
    """No wakeup twice a second per idle kernel (2 % of a core for 200): with nothing
    due it sleeps its longest; an orphan wakes for its timeout."""
    pipes = [os.pipe() for _ in range(4)]
    readers = {1: pipes[0][0], 2: pipes[1][0], 4: pipes[2][0]}
    interpreter = ("00", os.getpid(), readers, pipes[3][1])
    keeper = Keeper(bind_unix(str(tmp_path / "k.sock")), SECRET, KERNEL, 10, interpreter)
    try:
        assert 9 < keeper._register() <= 10  # an orphan: its timeout is what is due
        keeper.orphaned_at = None  # a service is connected
        assert keeper._register() > IDLE_WAKE - 1
    finally:
        for r, w in pipes:
            os.close(r)
            os.close(w)
