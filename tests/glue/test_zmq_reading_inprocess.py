"""Reading from ZeroMQ sockets in process: a storm on one kernel's shell socket is read
through the reactor's pacer, a budget per turn, and another kernel's socket is read
after one piece of it (real ZeroMQ sockets over inproc, a fake reactor and clock)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from twisted.internet.testing import MemoryReactorClock
from txzmq import ZmqFactory

from ipytwist.pacing import QUANTUM_MESSAGES, ReadPacer, pacer_for
from ipytwist.zmq.socket import PacedSocket

STEP = 0.0005  # seconds per message read, on the pacer's clock
BUDGET = 0.02


class Env:
    def __init__(self) -> None:
        self.reactor = MemoryReactorClock()
        self.now = 0.0
        self.factory = ZmqFactory()
        self.factory.reactor = self.reactor
        self.pacer = pacer_for(self.reactor)
        self.pacer.budget, self.pacer.clock = BUDGET, lambda: self.now
        self.read: list[str] = []

    def router(self, name: str) -> tuple[PacedSocket, zmq.Socket[bytes]]:
        """A kernel's ROUTER socket (its own group) and a client's DEALER on it."""

        def on_message(frames: Any) -> None:
            self.now += STEP
            self.read.append(name)

        sock = PacedSocket(self.factory, zmq.ROUTER, on_message, group=name)
        sock.zmq.bind(f"inproc://{name}")
        client: zmq.Socket[bytes] = self.factory.context.socket(zmq.DEALER)
        client.linger = 0
        client.connect(f"inproc://{name}")
        return sock, client

    def turn(self) -> None:
        due = [c for c in self.reactor.getDelayedCalls() if c.getTime() <= self.reactor.seconds()]
        for call in due:
            self.reactor.calls.remove(call)
            call.func(*call.args, **call.kw)


@pytest.fixture
def env() -> Iterator[Env]:
    e = Env()
    yield e
    e.factory.shutdown()


def test_a_zmq_storm_is_read_a_budget_per_turn_and_another_kernel_goes_first(env: Env) -> None:
    """600 messages waiting on one kernel's shell socket: the reactor's signal reads one
    piece, every turn after reads at most the budget (plus one piece); a message to
    another kernel's socket meanwhile is read in the next turn."""
    assert isinstance(env.pacer, ReadPacer)
    storm, storm_client = env.router("storm")
    quiet, quiet_client = env.router("quiet")
    for i in range(600):
        storm_client.send_multipart([b"request", str(i).encode()])
    storm.doRead()  # what the reactor calls when the socket signals
    assert env.read == ["storm"] * QUANTUM_MESSAGES
    quiet_client.send_multipart([b"request"])
    quiet.doRead()
    assert "quiet" not in env.read  # in line, behind the storm
    per_turn = round(BUDGET / STEP) + QUANTUM_MESSAGES
    turns = 0
    while len(env.pacer):
        before = len(env.read)
        env.turn()
        turns += 1
        assert len(env.read) - before <= per_turn
        if turns == 1:
            assert env.read.index("quiet") == 2 * QUANTUM_MESSAGES
    assert env.read.count("storm") == 600
    assert turns >= 600 // per_turn
