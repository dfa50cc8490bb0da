"""The worker's emergency reserve (in process): address space, not memory, and a
smaller reserve while the full one cannot be had."""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable
from typing import Any

import pytest
from support.worker_proc import run_cells

from ipytwist.framing import RecordDecoder, encode_record
from ipytwist.worker import link as link_module
from ipytwist.worker import reserve as reserve_module
from ipytwist.worker.link import Interrupts, WorkerLink
from ipytwist.worker.reserve import MIN_RESERVE_BYTES, RESERVE_BYTES, MemoryReserve
from ipytwist.worker.shell import out_of_memory


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(field)


def test_the_reserve_is_address_space_not_resident_memory() -> None:
    """Taking it grows VmSize by its size and RSS by (almost) nothing; releasing it
    gives the address space back."""
    vm, rss = _status_kib("VmSize"), _status_kib("VmRSS")
    r = MemoryReserve()
    assert r.held == RESERVE_BYTES
    assert _status_kib("VmSize") - vm >= RESERVE_BYTES // 1024
    assert _status_kib("VmRSS") - rss < 1024
    r.release()
    assert r.held == 0 and r.releases == 1
    assert _status_kib("VmSize") - vm < RESERVE_BYTES // 1024
    r.release()  # twice is nothing
    assert r.releases == 1


def test_a_smaller_reserve_until_the_full_one_can_be_had(monkeypatch: pytest.MonkeyPatch) -> None:
    """While only 3 MiB can be mapped, it holds 2 MiB (halving); below MIN_RESERVE_BYTES
    nothing; the next take once memory is back holds the full reserve again."""
    limit = [3 * 2**20]
    real = mmap.mmap

    def scarce(fileno: int, length: int, **kw: Any) -> mmap.mmap:
        if length > limit[0]:
            raise OSError(12, "Cannot allocate memory")
        return real(fileno, length, **kw)

    monkeypatch.setattr(reserve_module.mmap, "mmap", scarce)
    r = MemoryReserve()
    assert r.held == RESERVE_BYTES // 16 == 2 * 2**20
    limit[0] = MIN_RESERVE_BYTES - 1
    r.release()
    assert r.take() == 0
    limit[0] = RESERVE_BYTES
    assert r.take() == RESERVE_BYTES
    assert r.take() == RESERVE_BYTES  # held: nothing mapped again
    r.release()


def _fails_once(real: Callable[..., Any]) -> Callable[..., Any]:
    calls = []

    def first_fails(*args: Any) -> Any:
        calls.append(args)
        if len(calls) == 1:
            raise MemoryError
        return real(*args)

    return first_fails


def test_an_event_that_runs_out_of_memory_is_sent_whole_after_the_release(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Building the record of an event (the reply) fails with MemoryError once: the
    link calls on_memory_error (the reserve's release) and sends the whole record."""
    released = []
    monkeypatch.setattr(link_module, "record_parts", _fails_once(link_module.record_parts))
    r, w = os.pipe()
    try:
        link = WorkerLink(-1, w, Interrupts(), on_memory_error=lambda: released.append(1))
        link.emit({"ev": "reply", "content": {"status": "ok"}})
        assert released == [1]
        assert RecordDecoder().feed(os.read(r, 1 << 16)) == [
            {"ev": "reply", "content": {"status": "ok"}}
        ]
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("step", ["os.read", "decoding"])
def test_a_request_read_out_of_memory_is_read_after_the_release(
    monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """Reading a request (os.read's buffer; or decoding it, which keeps the record in
    the decoder) fails with MemoryError once: after on_memory_error the request is
    read, not lost, and the worker's loop goes on."""
    released = []
    if step == "os.read":
        monkeypatch.setattr(link_module.os, "read", _fails_once(os.read))
    else:
        monkeypatch.setattr(RecordDecoder, "_next", _fails_once(RecordDecoder._next))
    r, w = os.pipe()
    try:
        link = WorkerLink(r, -1, Interrupts(), on_memory_error=lambda: released.append(1))
        os.write(w, encode_record({"req": "execute", "content": {"code": "del hog"}}))
        assert link.read() == {"req": "execute", "content": {"code": "del hog"}}
        assert released == [1]
    finally:
        os.close(r)
        os.close(w)


#: A history cache whose first write to SQLite runs out of memory.
FLAKY_HISTORY = """
class Flaky(list):
    fails = 1
    def __iter__(self):
        if Flaky.fails:
            Flaky.fails -= 1
            raise MemoryError
        return super().__iter__()
hm = get_ipython().history_manager
hm.db_input_cache = Flaky(hm.db_input_cache)
"""
#: The current session's inputs in the database, once the cache is written out.
HISTORY_CHECK = """
hm.writeout_cache()
rows = hm.db.execute('SELECT source_raw FROM history WHERE session=?', (hm.session_number,))
print(hm.save_thread.is_alive(), Flaky.fails, [r[0] for r in rows])
"""


def test_history_survives_a_memory_error_while_it_writes(tmp_path: Any) -> None:
    """IPython's history thread runs out of memory writing its first batch: it lives
    on, and every cell's input reaches the database with the next batch."""
    cells = [FLAKY_HISTORY] + [f"n = {i}" for i in range(12)] + [HISTORY_CHECK]
    run = run_cells(tmp_path, cells)
    assert run.returncode == 0, run.err
    assert all(r["status"] == "ok" for r in run.replies), run.replies
    assert b"history saving thread" not in run.out, run.out[-500:]
    alive, fails, stored = run.out.decode().strip().splitlines()[-1].split(" ", 2)
    assert (alive, fails) == ("True", "0")
    assert stored == repr([c.rstrip("\n") for c in cells]), stored


def test_an_error_while_handling_a_memory_error_is_out_of_memory() -> None:
    """A MemoryError, or an error raised while handling one (a C function's
    SystemError), releases the reserve; other errors do not."""
    try:
        try:
            raise MemoryError
        except MemoryError:
            raise SystemError("error return without exception set") from None
    except SystemError as e:
        assert out_of_memory(e)
    assert out_of_memory(MemoryError())
    assert not out_of_memory(ValueError()) and not out_of_memory(None)
