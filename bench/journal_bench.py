"""The journal's cost per message, in process: an output log with its transcript
subscribed and ``--sessions`` readers that take each message as it comes (as WebSocket
connections that keep up do), publishing stream messages as the kernel does, without
a journal, with one, and with one that also keeps the readers' positions (as the
WebSocket sessions' are kept: one record per message for all of them).

    python bench/journal_bench.py [--messages N] [--text BYTES] [--sessions N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from ipytwist.kernel.journal import KernelJournal
from ipytwist.kernel.outputlog import OutputLog
from ipytwist.kernel.transcript import Transcript
from ipytwist.wire import new_message


class _Stdin:
    echo = staticmethod(lambda parent, text: None)


class _Kernel:
    session = "bench"
    _on_request = None
    stdin = _Stdin()


class _Reader:
    """A session's connection that keeps up: it takes each message when woken."""

    def __init__(self, name: str, log: OutputLog, journal: KernelJournal | None) -> None:
        self.name = name
        self.journal = journal
        self.cursor = log.open_cursor(self)
        self.cursor.take()

    def wake(self) -> None:
        while self.cursor.take() is not None:
            pass
        if self.journal is not None:
            self.journal.note_position(self.name, self.cursor.position)


def run(messages: int, text: int, sessions: int, directory: str | None, positions: bool) -> float:
    """Seconds per message published."""
    log, transcript = OutputLog(), Transcript()
    log.subscribe(transcript)
    journal = None
    if directory is not None:
        journal = KernelJournal.open(directory, transcript.max_bytes, 10_000, log.max_bytes)
        journal.follow(_Kernel(), log, transcript)
    readers = [_Reader(f"s{i}", log, journal if positions else None) for i in range(sessions)]
    request = new_message("execute_request", {"code": "flood()"}, "client")
    transcript.request(request, "websocket")
    line = "x" * (text - 1) + "\n"
    msgs = [
        new_message("stream", {"name": "stdout", "text": line}, "bench", request)
        for _ in range(messages)
    ]
    start = time.process_time()
    for msg in msgs:
        log.publish(msg)
    elapsed = time.process_time() - start
    assert all(r.cursor.position == log.end for r in readers)
    if journal is not None:
        journal.close()
    return elapsed / messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--text", type=int, default=80, help="bytes of each message's text")
    parser.add_argument("--sessions", type=int, default=1, help="readers keeping up")
    parser.add_argument("--dir", default=None, help="where the journal goes (a temp dir)")
    args = parser.parse_args()
    print(f"{args.messages} messages of {args.text} bytes, {args.sessions} sessions")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for label, directory, positions in (
            ("no journal", None, False),
            ("journal", os.path.join(tmp, "a"), False),
            ("journal + the sessions' positions", os.path.join(tmp, "b"), True),
        ):
            if directory is not None:
                os.mkdir(directory, 0o700)
            times = (
                run(args.messages, args.text, args.sessions, directory, positions) for _ in range(3)
            )
            best = min(times)
            print(f"{label:34} {best * 1e6:7.2f} us per message")


if __name__ == "__main__":
    main()
