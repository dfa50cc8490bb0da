"""OutputCoalescer: timely, few stream messages from raw worker output (fake clock)."""

from __future__ import annotations

from twisted.internet.task import Clock

from ipytwist.kernel.output import OutputCoalescer


def make(interval: float = 0.01, max_chars: int = 1 << 20) -> tuple[Clock, list, OutputCoalescer]:
    clock = Clock()
    out: list[tuple[str, str]] = []
    return (
        clock,
        out,
        OutputCoalescer(
            clock, lambda n, t: out.append((n, t)), interval=interval, max_chars=max_chars
        ),
    )


def test_first_write_after_quiet_goes_out_without_delay() -> None:
    """After a quiet period, output is emitted at the end of the current turn."""
    clock, out, co = make()
    clock.advance(5)
    co.write("stdout", b"hello\n")
    assert out == []  # not synchronously inside write()
    clock.advance(0)
    assert out == [("stdout", "hello\n")]


def test_burst_is_coalesced_into_one_message() -> None:
    """Writes within the interval after a flush are merged and sent once it ends."""
    clock, out, co = make(interval=0.01)
    co.write("stdout", b"a")
    clock.advance(0)
    assert out == [("stdout", "a")]
    for ch in b"bcdef":
        clock.advance(0.001)
        co.write("stdout", bytes([ch]))
    assert out == [("stdout", "a")]
    clock.advance(0.01)
    assert out == [("stdout", "a"), ("stdout", "bcdef")]
    assert not clock.getDelayedCalls()


def test_stdout_and_stderr_keep_their_interleaving() -> None:
    """A change of stream flushes what came before, so the order is preserved."""
    clock, out, co = make()
    co.write("stdout", b"1")
    co.write("stderr", b"2")
    co.write("stdout", b"3")
    co.write("stdout", b"4")
    clock.advance(1)
    assert out == [("stdout", "1"), ("stderr", "2"), ("stdout", "34")]


def test_multibyte_character_split_across_chunks() -> None:
    """A UTF-8 character split between writes arrives whole, never as U+FFFD."""
    clock, out, co = make()
    data = "é€😀".encode()
    for i in range(len(data)):
        co.write("stdout", data[i : i + 1])
    clock.advance(1)
    assert "".join(t for _, t in out) == "é€😀"


def test_split_characters_are_tracked_per_stream() -> None:
    """Half a character on stdout is not completed by bytes on stderr."""
    clock, out, co = make()
    e = "é".encode()
    co.write("stdout", e[:1])
    co.write("stderr", b"x")
    co.write("stdout", e[1:])
    clock.advance(1)
    assert out == [("stderr", "x"), ("stdout", "é")]


def test_large_output_is_flushed_at_the_size_limit() -> None:
    """Reaching max_chars emits at once, without waiting for the timer."""
    clock, out, co = make(max_chars=10)
    co.write("stdout", b"0123456789AB")
    assert out == [("stdout", "0123456789AB")]


def test_explicit_flush_and_reset() -> None:
    """flush() emits pending text and cancels the timer; reset() drops partial characters."""
    clock, out, co = make()
    co.write("stdout", b"x")
    co.flush()
    assert out == [("stdout", "x")]
    assert not clock.getDelayedCalls()
    co.write("stdout", "é".encode()[:1])
    co.reset()
    co.write("stdout", b"y")
    clock.advance(1)
    assert out == [("stdout", "x"), ("stdout", "y")]
