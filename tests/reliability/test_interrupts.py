"""An interrupt whose SIGINT does not break the blocking call it lands in still stops it.

Found by the soak: about one interrupt in 150 of ``time.sleep(30)`` took 30 s on a
loaded machine.  A SIGINT that arrives while the interpreter is already on its way
into the blocking call (``time.sleep`` handing over the GIL) only sets Python's
"signal tripped" flag; the call then blocks, and Python runs the handler (raising
KeyboardInterrupt) only when the call returns.  The kernel now nudges the worker
with a no-op signal while an interrupted request keeps running, which makes the
call return early.  A cell that makes SIGINT restart system calls (SA_RESTART via
``signal.siginterrupt``) and then blocks in a read puts the worker in that state
every time.
"""

from __future__ import annotations

import time

import pytest
from benchlib.messages import parent_id
from benchlib.servers import Service
from benchlib.wsclient import WSClient
from support.service import service_fixture

#: Interrupt sent -> the interrupted cell's reply.
INTERRUPT_SECONDS = 2.0
BLOCKED_READ_CODE = (
    "import os, signal\n"
    "signal.siginterrupt(signal.SIGINT, False)\n"
    "r, w = os.pipe()\n"
    "print('started', flush=True)\n"
    "os.read(r, 1)\n"
)


svc = service_fixture("interrupts")


@pytest.mark.parametrize("how", ["rest", "interrupt_request"])
def test_an_interrupt_stops_a_call_its_sigint_did_not_break(svc: Service, how: str) -> None:
    """A cell blocked in a read that SIGINT does not interrupt (the signal only trips
    Python's flag) is still stopped with KeyboardInterrupt within 2 s of the interrupt,
    by REST or interrupt_request, and the same interpreter then runs ``1``."""
    kid = svc.start_kernel()
    ws = WSClient.connect(svc, kid)
    try:
        msg_id = ws.execute_request(BLOCKED_READ_CODE)
        ws.until(lambda m: m["msg_type"] == "stream" and parent_id(m) == msg_id)
        t0 = time.monotonic()
        if how == "rest":
            assert svc.api("POST", f"/api/kernels/{kid}/interrupt").status_code == 204
        else:
            ws.send("control", "interrupt_request", {})
        got = ws.until(
            lambda m: m["msg_type"] == "execute_reply" and parent_id(m) == msg_id, timeout=15
        )
        elapsed = time.monotonic() - t0
        assert got[-1]["content"]["ename"] == "KeyboardInterrupt", got[-1]["content"]
        assert elapsed < INTERRUPT_SECONDS, elapsed
        ws.until_idle(msg_id)
        reply, _ = ws.execute("1")
        assert reply["content"]["status"] == "ok"
    finally:
        ws.close()
        svc.delete_kernel(kid)
