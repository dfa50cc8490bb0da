"""Backpressure from the readers to the worker: the output gate, the kernel's use of it,
and the worker process's pipes (all with fakes)."""

from __future__ import annotations

from typing import Any

from support.fake_process import FakePipe, FakeProcess, Listener
from support.fakes import FakeProvisioner
from support.fakes import Requester as Client
from test_kernel_core import execute
from twisted.internet.task import Clock

from ipytwist.kernel import Kernel, OutputLog
from ipytwist.kernel.flow import OutputGate
from ipytwist.kernel.process import READ_SLICE_BYTES, WorkerProcess
from ipytwist.worker import EVENT_FD


class Source:
    def __init__(self) -> None:
        self.paused = False

    def pause_output(self) -> None:
        self.paused = True

    def resume_output(self) -> None:
        self.paused = False


def test_gate_follows_the_stream_unless_an_interrupt_is_delivered() -> None:
    gate, src = OutputGate(), Source()
    gate.attach(src)
    gate.pauseProducing()
    assert src.paused
    gate.interrupt()
    assert not src.paused  # the traceback must get out
    gate.request_done()
    assert src.paused
    gate.resumeProducing()
    assert not src.paused
    gate.pauseProducing()
    fresh = Source()
    gate.attach(fresh)  # a new worker starts in the gate's state
    assert fresh.paused


class Reader:
    def wake(self) -> None:
        pass


def test_kernel_pauses_its_worker_while_the_leading_reader_lags() -> None:
    """A reader that takes nothing makes the kernel stop reading its worker once the
    lead is used up; an interrupt reopens the gate until the request is done; a
    reader that catches up, or goes away, lets output flow again."""
    clock, prov = Clock(), FakeProvisioner()
    kernel = Kernel(clock, prov, output_log=OutputLog(lead_messages=10), flush_interval=0)
    kernel.start()
    worker = prov.workers[0]
    worker.ready()
    cursor = kernel.output_log.open_cursor(Reader())
    client, req = Client(), execute("flood")
    kernel.handle("shell", req, client)
    for i in range(30):
        kernel.worker_output("stdout", f"{i}\n".encode())
        clock.advance(0.02)
        if worker.output_paused:
            break
    assert worker.output_paused
    assert kernel.output_log.lead[0] == 11
    kernel.handle("control", execute("x") | {"header": _hdr("interrupt_request")}, client)
    assert not worker.output_paused
    worker.reply({"status": "error", "ename": "KeyboardInterrupt", "evalue": "", "traceback": []})
    assert worker.output_paused  # the request is done: the readers' pace again
    while cursor.take() is not None:
        pass
    assert not worker.output_paused
    kernel.handle("shell", execute("more"), client)
    for i in range(30):
        kernel.worker_output("stdout", f"{i}\n".encode())
        clock.advance(0.02)
    assert worker.output_paused
    cursor.close()
    assert not worker.output_paused  # nobody to wait for: output flows into the log


def _hdr(msg_type: str) -> dict[str, Any]:
    return {"msg_id": "int-" + msg_type, "msg_type": msg_type, "session": "c"}


def _process_with_pipes(tmp_path: Any) -> tuple[WorkerProcess, Clock, dict[int, Any], Any]:
    import os

    clock = Clock()
    listener = Listener()
    proto = WorkerProcess(listener, clock=clock)
    r1, w1 = os.pipe()
    os.set_blocking(r1, False)
    pipes = {1: FakePipe(r1), 2: FakePipe(os.open(os.devnull, os.O_RDONLY)), EVENT_FD: FakePipe(-1)}
    proto.makeConnection(FakeProcess(proto, pipes))
    return proto, clock, pipes, (r1, w1, listener)


def stdout_bytes(listener: Listener) -> int:
    return sum(len(data) for name, data in listener.log if name == "stdout")


def test_worker_process_gate_stops_every_output_pipe(tmp_path: Any) -> None:
    """pause_output stops reading stdout, stderr and events; a read pause that ends
    while gated reads nothing; resume_output restarts them all."""
    import os

    proto, clock, pipes, (r1, w1, listener) = _process_with_pipes(tmp_path)
    try:
        os.write(w1, b"a" * 100)
        proto.childDataReceived(1, b"first\n")  # read: pauses fd 1 for a moment
        assert not pipes[1].reading
        proto.pause_output()
        assert not any(p.reading for p in pipes.values())
        clock.advance(1)
        assert not pipes[1].reading
        assert listener.log == [("stdout", b"first\n")]  # the waiting 100 bytes stay
        proto.resume_output()
        assert all(p.reading for p in pipes.values())
    finally:
        os.close(r1)
        os.close(w1)


def run_next_call(clock: Clock) -> None:
    """One reactor turn's timed call (Clock.advance would also run what it schedules)."""
    call = min(clock.getDelayedCalls(), key=lambda c: c.getTime())
    clock.calls.remove(call)
    clock.rightNow = call.getTime()
    call.func(*call.args, **call.kw)


def test_worker_process_reads_a_flood_in_slices(tmp_path: Any) -> None:
    """A full pipe is read a slice per reactor turn, not all at once."""
    import os

    proto, clock, pipes, (r1, w1, listener) = _process_with_pipes(tmp_path)
    try:
        os.set_blocking(w1, False)
        total = 0
        try:
            while total < 3 * READ_SLICE_BYTES:
                total += os.write(w1, b"x" * 65536)
        except BlockingIOError:
            pass
        proto.childDataReceived(1, b"")
        turns = 0
        while clock.getDelayedCalls():
            before = stdout_bytes(listener)
            run_next_call(clock)
            turns += 1
            assert stdout_bytes(listener) - before < READ_SLICE_BYTES + 65536
        assert stdout_bytes(listener) == total
        assert turns > total // (READ_SLICE_BYTES + 65536)
    finally:
        os.close(r1)
        os.close(w1)
