"""The worker's SIGINT handling (no signals are sent: the handler is called directly)."""

from __future__ import annotations

import os

import pytest

from ipytwist.framing import encode_record
from ipytwist.worker.link import Interrupts, WorkerLink


def test_interrupt_while_running_user_code_raises() -> None:
    """Inside user code, SIGINT raises KeyboardInterrupt."""
    irq = Interrupts()
    with pytest.raises(KeyboardInterrupt), irq.user_code():
        irq.handler(2, None)
    assert not irq.armed


def test_interrupt_just_before_user_code_is_not_lost() -> None:
    """A SIGINT between receiving a request and starting its code interrupts that code."""
    irq = Interrupts()
    irq.handler(2, None)
    ran = []
    with pytest.raises(KeyboardInterrupt), irq.user_code():
        ran.append(True)
    assert ran == []
    with irq.user_code():  # consumed: the next cell runs normally
        ran.append(True)
    assert ran == [True]


def test_interrupt_held_back_during_a_critical_section() -> None:
    """Inside held(), the interrupt waits until the section ends."""
    irq = Interrupts()
    with pytest.raises(KeyboardInterrupt), irq.user_code():
        with irq.held():
            irq.handler(2, None)
            done = True
    assert done


def test_stale_interrupt_is_discarded_when_the_next_request_is_read() -> None:
    """An interrupt that arrived between requests does not hit the next request."""
    r, w = os.pipe()
    try:
        irq = Interrupts()
        link = WorkerLink(r, -1, irq)
        irq.handler(2, None)  # meant for a request that already finished
        os.write(w, encode_record({"req": "execute"}))
        assert link.read() == {"req": "execute"}
        ran = []
        with irq.user_code():
            ran.append(True)
        assert ran == [True]
    finally:
        os.close(r)
        os.close(w)


def _read_after_signals(irq: Interrupts, signals: int, record: dict) -> bool:
    """Whether the request read after ``signals`` SIGINTs starts interrupted."""
    r, w = os.pipe()
    try:
        link = WorkerLink(r, -1, irq)
        for _ in range(signals):
            irq.handler(2, None)
        os.write(w, encode_record(record))
        assert link.read() == record
        try:
            with irq.user_code():
                return False
        except KeyboardInterrupt:
            return True
    finally:
        os.close(r)
        os.close(w)


def test_an_interrupt_sent_after_the_request_was_sent_is_for_it() -> None:
    """The kernel announces a cell before the worker reads it: a client may interrupt it
    that soon.  The record says the kernel had sent no SIGINT before it: this one is
    for it."""
    assert _read_after_signals(Interrupts(), 1, {"req": "execute", "sigints": 0})


def test_interrupts_the_kernel_sent_before_the_request_are_stale() -> None:
    irq = Interrupts()
    assert not _read_after_signals(irq, 2, {"req": "execute", "sigints": 2})
    assert _read_after_signals(irq, 1, {"req": "execute", "sigints": 2})  # a third: fresh


def test_a_new_kernels_count_starts_over() -> None:
    """An adopted worker: the new kernel counts from 0, what came before is not fresh."""
    irq = Interrupts()
    assert not _read_after_signals(irq, 3, {"req": "execute", "sigints": 3})
    assert not _read_after_signals(irq, 0, {"req": "execute", "sigints": 0})
    assert _read_after_signals(irq, 1, {"req": "execute", "sigints": 0})


def test_the_count_a_reply_reports_follows_the_kernels() -> None:
    """Each reply tells the kernel how many SIGINTs the worker has had (the kernel
    counts from the highest); after an adopting kernel starts over, from there."""
    irq = Interrupts()
    for _ in range(3):
        irq.handler(2, None)
    assert irq.count == 3
    irq.discard(3)
    irq.discard(0)  # a new kernel's first request
    assert irq.count == 0
    irq.handler(2, None)
    assert irq.count == 1
