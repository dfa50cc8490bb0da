"""Kernels a service leaves behind: orphans end after ``--orphan-timeout`` with every
process they started; a dead kernel's directory goes at the next start; a restarted
interpreter is re-adopted; a taken port gives fresh ones.  Real service, real clients."""

from __future__ import annotations

import os
import socket
import time

from benchlib.messages import stream_text
from benchlib.procs import pid_alive, wait_for
from benchlib.wsclient import WSClient
from jupyter_client import BlockingKernelClient
from support.durable import DurableService, durable_base

SLEEPER = "import os, subprocess\np = subprocess.Popen(['sleep', '300'])\nprint(os.getpid(), p.pid)"


def _pids(svc: DurableService, kernel_id: str) -> list[int]:
    """The kernel's keeper, its interpreter and a ``sleep 300`` the interpreter started."""
    ws = WSClient.connect(svc, kernel_id)
    try:
        reply, got = ws.execute(SLEEPER)
    finally:
        ws.close()
    assert reply["content"]["status"] == "ok"
    interpreter, sleeper = map(int, stream_text(got).split())
    return [svc.keeper(kernel_id), interpreter, sleeper]


def test_a_killed_services_workers_and_their_children_end_after_the_orphan_timeout() -> None:
    """SIGKILL the service: its kernels' keepers, interpreters and the ``sleep 300`` of
    user code live on (a new service could come) until the timeout, then are gone, and
    so are their sockets; the next service re-adopts nothing and removes what is left."""
    timeout = 4.0
    with durable_base() as base:
        svc = DurableService(base, "--orphan-timeout", str(timeout)).start()
        try:
            kernels = [svc.start_kernel() for _ in range(2)]
            pids = [pid for kid in kernels for pid in _pids(svc, kid)]
            svc.kill()
            killed = time.monotonic()
            assert all(pid_alive(pid) for pid in pids)  # not ended by the service's death
            wait_for(lambda: not any(map(pid_alive, pids)), timeout + 30, "the orphans' end")
            assert time.monotonic() - killed >= timeout - 0.5
            for kid in kernels:
                assert not os.path.exists(os.path.join(svc.kernel_dir(kid), "link.sock"))
            again = svc.again()
            try:
                assert again.request("GET", "/api/kernels") == []
                for kid in kernels:
                    assert not os.path.exists(svc.kernel_dir(kid))
                    assert not os.path.exists(svc.connection_file(kid))
                assert again.log().count("not re-adopted") == 2
            finally:
                again.stop()
        finally:
            svc.stop()


def test_an_interpreter_restarted_keeps_its_socket_and_is_readopted() -> None:
    """POST restart: the new keeper binds the kernel's socket path; the old one, ending
    after it, must not remove the new one's socket file.  A new service then re-adopts
    the kernel."""
    with durable_base() as base:
        svc = DurableService(base).start()
        again = None
        try:
            kid = svc.start_kernel()
            _pids(svc, kid)  # ready (a restart while starting is that start)
            old_keeper = svc.keeper(kid)
            svc.request("POST", f"/api/kernels/{kid}/restart")
            wait_for(lambda: not pid_alive(old_keeper), 30, "the old keeper's end")
            svc.keeper(kid, other_than=old_keeper)
            assert os.path.exists(os.path.join(svc.kernel_dir(kid), "link.sock"))
            svc.kill()
            again = svc.again()
            again.listed(kid)
            ws = WSClient.connect(again, kid)
            try:
                reply, got = ws.execute("print('still here')")
            finally:
                ws.close()
            assert stream_text(got) == "still here\n"
        finally:
            svc.stop()
            if again is not None:
                again.stop()


def test_a_taken_port_gives_fresh_ports_and_a_rewritten_connection_file() -> None:
    """One log line; clients that read the connection file again reach the kernel."""
    with durable_base() as base:
        svc = DurableService(base).start()
        again = None
        taker = socket.socket()
        try:
            kid = svc.start_kernel()
            old = svc.record(kid)["connection"]
            svc.kill()
            taker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            taker.bind(("127.0.0.1", old["shell_port"]))
            taker.listen(1)
            again = svc.again()
            again.listed(kid)
            new = again.record(kid)["connection"]
            assert new["shell_port"] != old["shell_port"] and new["key"] == old["key"]
            assert again.log().count("its ports are taken") == 1
            kc = BlockingKernelClient()
            kc.load_connection_file(again.connection_file(kid))
            kc.start_channels()
            try:
                reply = kc.execute_interactive("1 + 1", timeout=60)
            finally:
                kc.stop_channels()
            assert reply["content"]["status"] == "ok"
        finally:
            taker.close()
            svc.stop()
            if again is not None:
                again.stop()


def test_an_adopted_kernel_is_interrupted_and_deleted_through_its_link() -> None:
    """The new service is not the keeper's parent: an interrupt and a DELETE go over the
    link (CONTROL frames); the keeper, its interpreter and user code's sleep end, and
    the kernel's directory and connection file go."""
    with durable_base() as base:
        svc = DurableService(base).start()
        again = None
        try:
            kid = svc.start_kernel()
            pids = _pids(svc, kid)
            svc.kill()
            again = svc.again()
            again.listed(kid)
            ws = WSClient.connect(again, kid)
            try:
                msg_id = ws.execute_request("import time\ntime.sleep(60)")
                ws.until(lambda m: m["msg_type"] == "execute_input")
                again.request("POST", f"/api/kernels/{kid}/interrupt")
                reply, _ = ws.finish(msg_id, timeout=30)
            finally:
                ws.close()
            assert reply["content"]["ename"] == "KeyboardInterrupt"
            again.delete_kernel(kid)
            wait_for(lambda: not any(map(pid_alive, pids)), 30, "the kernel's processes to end")
            assert not os.path.exists(again.kernel_dir(kid))
            assert not os.path.exists(again.connection_file(kid))
        finally:
            svc.stop()
            if again is not None:
                again.stop()


def test_a_warm_spare_left_behind_ends_and_is_not_listed() -> None:
    """A kernel of the warm pool is no one's: the next service ends it (a user's kernel
    taken from the pool is re-adopted)."""
    with durable_base() as base:
        svc = DurableService(base, "--prespawn", "1").start()
        again = None
        try:
            kid = svc.start_kernel()  # the spare, made a user's kernel
            top = os.path.join(svc.state_dir, "kernels")
            spare = wait_for(lambda: [d for d in os.listdir(top) if d != kid], 60, "a new spare")
            spare_keeper = wait_for(lambda: svc.record(spare[0]).get("keeper_pid"), 60, "its pid")
            _pids(svc, kid)
            svc.kill()
            again = svc.again("--prespawn", "0")
            again.listed(kid)
            wait_for(lambda: not pid_alive(spare_keeper), 30, "the spare's end")
            assert [m["id"] for m in again.request("GET", "/api/kernels")] == [kid]
            assert not os.path.exists(again.kernel_dir(spare[0]))
        finally:
            svc.stop()
            if again is not None:
                again.stop()
