"""A ZeroMQ client's restart of a hosted kernel (``BlockingKernelClient.shutdown(
restart=True)`` on its connection file) follows the policy its shutdown follows: without
``--allow-client-shutdown`` it is answered and the kernel, shared with others, is left
as it was; with it, the kernel restarts."""

from __future__ import annotations

from typing import Any

from benchlib.running import running_service
from benchlib.scenarios.client_restart import zmq_client_restart


def test_a_zmq_clients_restart_leaves_the_shared_kernel_as_it_was(tmp_path_factory: Any) -> None:
    with running_service(tmp_path_factory, "client-restart") as svc:
        r = zmq_client_restart(svc)
        log = svc.log()
    assert r.reply == {"status": "ok", "restart": True}, r
    assert r.variable_kept and r.pid_kept, r
    assert r.interpreters_started == 0, r
    assert "a client's restart request left it as it was" in log


def test_allow_client_shutdown_lets_a_zmq_client_restart_it(tmp_path_factory: Any) -> None:
    with running_service(
        tmp_path_factory, "client-restart-allowed", "--allow-client-shutdown"
    ) as svc:
        r = zmq_client_restart(svc)
    assert r.reply == {"status": "ok", "restart": True}, r
    assert not r.variable_kept and not r.pid_kept, r
    assert r.interpreters_started == 1, r
