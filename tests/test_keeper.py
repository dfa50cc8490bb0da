"""The keeper in front of a real interpreter, driven over its Unix socket by a stand-in
for the service (docs/durable-kernels.md): order, resumption, orphans, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from benchlib.procs import wait_for
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
from ipytwist.link.shake import LinkRefused
from ipytwist.link.wire import Inbound, Kind, json_body
from ipytwist.worker.keeper import (
    DIE_WITH_PARENT_ENV,
    KERNEL_ENV,
    LINK_FD_ENV,
    ORPHAN_ENV,
    SECRET_FD_ENV,
    prepare_link,
)


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


def test_the_keeper_hands_its_request_pipe_to_an_authenticated_service_only(keeper) -> None:
    """A request written straight into the pipe it hands over is answered like one
    through the keeper; a peer that fails the handshake gets no descriptor."""
    _, path = keeper()
    stranger = Service(path, secret=b"x" * 32)
    with pytest.raises(LinkRefused):
        stranger.until(lambda f: True)
    assert stranger.fds == []
    service = Service(path)
    service.execute("1")
    service.until(is_reply)  # (the PIPE frame came before the reply)
    assert service.end.pipe_offered and len(service.fds) == 1
    code = "print('straight in')"
    os.write(service.fds[0], encode_record({"req": "execute", "content": {"code": code}}))
    assert stdout(service.until(is_reply)) == "straight in\n"
    os.close(service.fds[0])
