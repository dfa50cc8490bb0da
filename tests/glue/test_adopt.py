"""Re-adoption in process: the service's end of a keeper's link (acks only once what was
taken is published, the journal told first; a keeper of another version refused), and
a kernel made anew around a running worker (kernel/adopt.py)."""

from __future__ import annotations

from typing import Any

import pytest
from support.fakes import FakeProvisioner, FakeWorker, Iopub
from support.fakes import Requester as Client
from support.linkglue import KID, SECRET, Listener, Recording, Taking, acked, shake
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs

from ipytwist.framing import encode_record
from ipytwist.kernel import Kernel
from ipytwist.kernel.adopt import adopt
from ipytwist.kernel.journal import Restored
from ipytwist.kernel.linked import ACK_DELAY, LinkedWorker
from ipytwist.link.end import LinkEnd
from ipytwist.link.wire import (
    PROTO,
    FrameDecoder,
    Inbound,
    Kind,
    Outbound,
    encode_frame,
    json_body,
    output_body,
)
from ipytwist.wire import new_message


def test_an_item_is_acked_only_once_published_and_the_journal_was_told_first() -> None:
    clock, events, listener = Clock(), [], Listener()
    worker = LinkedWorker(listener, SECRET, KID, clock)
    published = [False]
    worker.settled = lambda: published[0]
    worker.on_safe = lambda stream, seq: events.append(("safe", stream, seq))
    transport = Recording(events)
    worker.makeConnection(transport)
    keeper = LinkEnd(True, SECRET, KID)
    shake(worker, keeper, transport)
    assert worker.linked.called
    worker.dataReceived(b"".join(keeper.send(Kind.OUTPUT, b"".join(output_body(1, b"hi")))))
    assert listener.output == [b"hi"]
    clock.advance(ACK_DELAY * 10)  # the coalescer still holds it: no ack, the journal not told
    assert acked(keeper, transport) == 0
    assert not [e for e in events if e[0] == "safe"]
    published[0] = True
    events.clear()
    clock.advance(ACK_DELAY)
    assert events[0] == ("safe", keeper.stream, 1)
    assert events[1][0] == "write"
    assert acked(keeper, transport) == 1


def test_a_steady_flood_is_acked_although_output_is_always_pending_when_read() -> None:
    """Each read leaves output in the coalescer; the ack timer publishes it, then acks
    (waiting for an empty coalescer would starve the acks: the window fills, print
    blocks)."""
    clock, pending = Clock(), [False]
    worker = LinkedWorker(Listener(), SECRET, KID, clock)
    worker.settled = lambda: not pending[0]
    worker.publish = lambda: pending.__setitem__(0, False)
    transport = Taking()
    worker.makeConnection(transport)
    keeper = LinkEnd(True, SECRET, KID)
    shake(worker, keeper, transport)
    for _ in range(10):
        worker.dataReceived(b"".join(keeper.send(Kind.OUTPUT, b"".join(output_body(1, b"x")))))
        pending[0] = True  # (the coalescer holds what was just read)
        clock.advance(ACK_DELAY / 2)
    assert acked(keeper, transport) >= 8


def test_the_journal_is_told_as_soon_as_the_kernel_publishes_not_at_the_next_ack() -> None:
    """A line printed, then the service killed before its ack timer: the journal must
    already know the line is published (else the next service gets it again)."""
    clock, told = Clock(), []
    transport = Taking()
    keeper = LinkEnd(True, SECRET, KID)
    workers: list[LinkedWorker] = []

    class Links:
        def start(self, listener: Any) -> LinkedWorker:
            worker = LinkedWorker(listener, SECRET, KID, clock)
            worker.settled = lambda: not kernel.output_pending
            worker.on_safe = lambda stream, seq: told.append(seq)
            workers.append(worker)
            return worker

    class Teller:
        def deliver(self, envelope: Any) -> None:
            workers[0].tell_safe()

    kernel = Kernel(clock, Links(), kernel_id="k")
    kernel.output_log.subscribe(Teller())
    kernel.start()
    (worker,) = workers
    worker.makeConnection(transport)
    shake(worker, keeper, transport)
    worker.dataReceived(b"".join(keeper.send(Kind.EVENT, encode_record({"ev": "ready"}))))
    assert told == [1]
    worker.dataReceived(b"".join(keeper.send(Kind.OUTPUT, b"".join(output_body(1, b"hi\n")))))
    assert told == [1]  # in the coalescer: not published yet
    clock.advance(0)  # the coalescer publishes at the end of the reactor's turn
    assert told == [1, 2]
    assert acked(keeper, transport) < 2  # the ack itself waits for its timer


def test_a_keeper_of_another_version_is_refused_and_told_so() -> None:
    """One log line; the keeper gets a REFUSE (it then ends with its group); no handshake."""
    worker = LinkedWorker(Listener(), SECRET, KID, Clock())
    failures: list[Any] = []
    worker.linked.addErrback(failures.append)
    transport = Taking()
    worker.makeConnection(transport)
    hello = {"proto": PROTO, "versions": [99], "nonce": "n" * 32, "kernel_id": KID}
    hello.update(stream="keeper-stream", info={})
    with capturedLogs() as logs:
        worker.dataReceived(encode_frame(Kind.HELLO, 0, 0, json_body(hello)))
    assert len(logs) == 1 and "no common link version" in str(logs[0]["why"])
    (frame,) = FrameDecoder().feed(transport.value())
    assert frame.kind is Kind.REFUSE
    assert transport.disconnecting
    assert failures and not worker.alive


def test_a_new_service_resumes_right_after_what_the_journal_holds() -> None:
    """The dead service had acked items 1-2 and its journal held 1-3: items 4 and 5 come
    again, 1-3 do not."""
    out = Outbound()
    for i in range(1, 6):
        out.add(Kind.OUTPUT, b"".join(output_body(1, f"{i}\n".encode())))
    out.ack(2)
    keeper = LinkEnd(True, SECRET, KID, outbound=out, stream="keeper-stream")
    listener = Listener()
    worker = LinkedWorker(listener, SECRET, KID, Clock(), Inbound("keeper-stream", 3))
    transport = Taking()
    worker.makeConnection(transport)
    shake(worker, keeper, transport)
    assert listener.output == [b"4\n", b"5\n"]


class FakeLink:
    """A kernel's link to its keeper, reached when the test says so."""

    def __init__(self) -> None:
        self.worker: Any = None
        self.inbound: Inbound | None = None

    def adopt(self, listener: Any, inbound: Inbound) -> FakeWorker:
        self.inbound = inbound
        self.worker = FakeWorker(listener, 4242)
        self.worker.linked = Deferred()
        return self.worker


def execute(code: str) -> dict[str, Any]:
    return new_message("execute_request", {"code": code}, "client")


@pytest.fixture
def running() -> dict[str, Any]:
    return execute("for i in range(60): print(i)")


def test_an_adopted_kernel_is_busy_with_the_running_cell_then_goes_on(running) -> None:
    """Its output keeps its cell, its reply has no one to go to (idle all the same), the
    count goes on, and a cell sent meanwhile runs after it."""
    clock = Clock()
    kernel = Kernel(clock, FakeProvisioner(), kernel_id="k", session="old-session")
    iopub = Iopub()
    kernel.output_log.subscribe(iopub)
    link = FakeLink()
    restored = Restored(
        session="old-session",
        execution_count=7,
        running=running,
        link=("keeper-stream", 3),
        sessions={},
    )
    d = adopt(kernel, link, restored)  # type: ignore[arg-type]  # (a fake link)
    assert link.inbound is not None and link.inbound.taken == 3
    assert kernel.execution_state == "busy" and kernel.session == "old-session"
    client = Client()
    later = execute("print('later')")
    kernel.handle("shell", later, client)
    link.worker.linked.callback({"pid": 4242})
    assert d.called and link.worker.sent == []  # it waits behind the running cell
    kernel.worker_output("stdout", b"59\n")
    clock.advance(1)
    link.worker.reply({"status": "ok", "execution_count": 7})
    assert iopub.of(running) == [("stream", "59\n"), ("status", "idle")]
    assert kernel.execution_count == 7
    assert [r["req"] for r in link.worker.sent] == ["execute"]
    assert link.worker.sent[0]["header"]["msg_id"] == later["msg_id"]
    assert not client.replies()


def test_an_adopted_kernel_with_nothing_running_is_idle_once_reached() -> None:
    kernel = Kernel(Clock(), FakeProvisioner(), kernel_id="k", session="s")
    link = FakeLink()
    restored = Restored(session="s", execution_count=3, running=None, link=None, sessions={})
    adopt(kernel, link, restored)  # type: ignore[arg-type]  # (a fake link)
    assert kernel.execution_state == "starting"
    link.worker.linked.callback({"pid": 4242})
    assert kernel.execution_state == "idle" and kernel.execution_count == 3
    kernel.handle("shell", execute("1"), Client())
    assert [r["req"] for r in link.worker.sent] == ["execute"]


def test_a_replaced_workers_last_items_do_not_move_the_journals_resume_point(
    tmp_path: Any,
) -> None:
    """After a restart through the fork server the new keeper's first item was made
    safe before the old keeper's end: the journal's last point was the old stream's,
    and a new service asked the new keeper for the wrong stream (it refused)."""
    from ipytwist.kernel.adopt import KernelLink

    link = KernelLink(None, str(tmp_path), KID, SECRET)  # type: ignore[arg-type]  # unused
    told: list[tuple[str, int]] = []
    link.on_safe = lambda stream, seq: told.append((stream, seq))
    clock = Clock()
    old = link._hooked(LinkedWorker(Listener(), SECRET, KID, clock))
    new = link._hooked(LinkedWorker(Listener(), SECRET, KID, clock))
    new.on_safe("new-stream", 1)
    old.on_safe("old-stream", 5)
    assert told == [("new-stream", 1)]
