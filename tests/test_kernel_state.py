"""The kernel's execution state machine (kernel/state.py) and its request queue
(kernel/queue.py), alone."""

from __future__ import annotations

from typing import Any

from support.fakes import Requester
from twisted.logger import LogLevel, globalLogPublisher

from ipytwist.kernel.queue import RequestQueue
from ipytwist.kernel.requests import Request
from ipytwist.kernel.state import TRANSITIONS, ExecutionState
from ipytwist.wire import new_message


def test_an_unexpected_change_is_logged_and_made() -> None:
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        state = ExecutionState("k1")
        state.change("dead")
        state.change("idle")  # dead is for good: logged, and made (the log says so)
    finally:
        globalLogPublisher.removeObserver(events.append)
    errors = [e for e in events if e.get("log_level") == LogLevel.error]
    assert [(e["old"], e["new"]) for e in errors] == [("dead", "idle")]
    assert state.value == "idle"
    assert TRANSITIONS["dead"] == frozenset()


def test_a_replaced_interpreter_announces_idle_once_it_is_ready() -> None:
    state = ExecutionState("k1")
    assert state.ready(running=False) is False and state.value == "idle"
    state.change("busy")
    state.replaced()
    state.finished()  # the failed request ends: still restarting
    assert state.value == "restarting"
    assert state.ready(running=False) is True and state.value == "idle"
    assert state.ready(running=False) is False  # announced once


def test_the_queue_takes_out_executes_and_keeps_the_rest_in_order() -> None:
    client = Requester()

    def req(msg_type: str) -> Request:
        return Request("shell", new_message(msg_type, {}, "s"), client)

    queue = RequestQueue()
    a, b, c, d = (
        req(t)
        for t in ("execute_request", "complete_request", "execute_request", "inspect_request")
    )
    for r in (a, b, c, d):
        queue.add(r)
    assert queue.start_next() is a and queue.current is a and queue.started
    assert queue.take_executes() == [c]
    assert len(queue) == 2
    assert queue.finish() is a and queue.current is None
    assert queue.take_all() == [b, d] and len(queue) == 0
