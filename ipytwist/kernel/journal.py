"""One kernel's journal: its transcript, output log and WebSocket sessions on disk, so
that a new service restores them after a restart or a SIGKILL of the old one.

Written as they come (:meth:`KernelJournal.follow`), one record each
(:mod:`.journalfile`): every execute request accepted, every iopub message published
(with its seq and offset in the output log), every ``input()`` echo, the kernel's
Jupyter session, the link's safe marks (:meth:`KernelJournal.link_safe`) and each
WebSocket session's position (:meth:`KernelJournal.note_position`, written before the
messages it counts leave the process).

Bound: the file never passes :attr:`KernelJournal.limit`, ``JOURNAL_FACTOR`` times the
transcript's ``max_bytes`` plus the output log's ``max_bytes`` (at least
``MIN_JOURNAL_BYTES``).  When a record would pass it, the file is first rewritten
(:meth:`KernelJournal.compact`): a snapshot record (the transcript's state, the
kernel's session, count, pending requests, link mark and session positions) and the
newest messages of the output log that fit in half the bound, then appends go on.
A record that does not fit even then is left out, with a log line (the restored log
then starts after it).
"""

from __future__ import annotations

import os
import weakref
from base64 import b64encode
from collections import deque
from collections.abc import Callable
from functools import partial
from itertools import chain
from typing import Any

from twisted.logger import Logger

from .envelope import Envelope
from .journalfile import JournalFile, encode, encode_parts
from .journalkernel import KernelState, Restored
from .journalrestore import VERSION, Restoring
from .journalsessions import SessionPositions
from .journalstate import dump_transcript
from .outputlog import OutputLog, Position
from .transcript import Transcript

__all__ = [
    "JOURNAL_FACTOR",
    "MIN_JOURNAL_BYTES",
    "KernelJournal",
    "Restored",
    "journal_of",
    "persisted_position",
    "position_noter",
]

JOURNAL_FACTOR = 2
MIN_JOURNAL_BYTES = 1024 * 1024
_HUGE = 1 << 62
_log = Logger()
_journals: weakref.WeakKeyDictionary[object, KernelJournal] = weakref.WeakKeyDictionary()


def journal_of(kernel: object) -> KernelJournal | None:
    """The journal following ``kernel``, if one does."""
    return _journals.get(kernel)


def persisted_position(kernel: object, session_id: str) -> Position | None:
    """Where the journal of ``kernel`` has the WebSocket session ``session_id``."""
    journal = _journals.get(kernel)
    return journal.session_position(session_id) if journal is not None else None


def position_noter(kernel: object, session_id: str) -> Callable[[Position], None] | None:
    """What writes the position of the WebSocket session ``session_id`` in the
    journal of ``kernel`` (None: no journal)."""
    journal = _journals.get(kernel)
    return partial(journal.note_position, session_id) if journal is not None else None


def _message_record(env: Envelope) -> list[Any]:
    """An iopub message as its record keeps it: seq, offset, the message, its buffers
    apart (base64; None: it had no ``buffers`` key)."""
    msg = env.msg
    buffers = msg.get("buffers")
    coded = [b64encode(bytes(b)).decode("ascii") for b in buffers] if buffers is not None else None
    return [env.seq, env.offset, {k: v for k, v in msg.items() if k != "buffers"}, coded]


class KernelJournal(Restoring):
    """The journal of one kernel, in its directory (see the module's docstring)."""

    log = Logger()

    def __init__(self, file: JournalFile, limit: int) -> None:
        self.file = file
        #: The most bytes the file holds, at any moment.
        self.limit = limit
        self.state = KernelState()
        self.sessions = SessionPositions()
        self.closed = False
        self.failed = False
        self.skipped = 0
        self._log: OutputLog | None = None
        self._publishing = False
        self._pending: dict[str, Position] = {}
        #: The log's messages in the file: (seq, offset in the log, where its record starts).
        self._in_file: deque[tuple[int, int, int]] = deque()
        #: A rewrite's cut in the old file and where the copy starts in the new one.
        self._shift = (0, 0)
        self._transcript: Transcript | None = None

    @classmethod
    def open(
        cls, directory: str, transcript_bytes: int, log_messages: int, log_bytes: int
    ) -> KernelJournal:
        """The journal in ``directory`` (made 0700 by the caller), its file 0600.
        ``log_messages`` is taken for the interface: the bound is in bytes."""
        limit = max(MIN_JOURNAL_BYTES, JOURNAL_FACTOR * (transcript_bytes + log_bytes))
        return cls(JournalFile(directory), limit)

    # -- follow -----------------------------------------------------------------------

    def follow(self, kernel: Any, output_log: OutputLog, transcript: Transcript) -> None:
        """Write what ``kernel`` does from now on: the file starts again from a
        snapshot of ``output_log`` and ``transcript`` as they are now."""
        self._log, self._transcript = output_log, transcript
        self.state.session = kernel.session
        on_request = kernel._on_request

        def request(msg: dict[str, Any], origin: str) -> None:
            self.request(msg, origin)
            if on_request is not None:
                on_request(msg, origin)

        kernel._on_request = request
        echo = kernel.stdin.echo

        def stdin(parent: str, text: str) -> object:
            self.echo(parent, text)
            return echo(parent, text)

        kernel.stdin.echo = stdin
        # Before the transcript: a rewrite then holds the state before each message.
        subscribed = output_log.subscriber_count
        output_log.unsubscribe(transcript)
        output_log.subscribe(self)
        if output_log.subscriber_count == subscribed:
            output_log.subscribe(transcript)
        _journals[kernel] = self
        output_log.after_publish = self._published
        try:
            self.compact(output_log.end)
        except Exception as e:
            self.failed = True
            self.log.error("journal {path}: not written: {e}", path=self.file.path, e=e)

    def request(self, msg: dict[str, Any], origin: str) -> None:
        """An execute request the kernel accepted (before the transcript has it)."""
        if msg.get("header", {}).get("msg_type") != "execute_request":
            return
        stored = {k: msg.get(k) for k in ("header", "parent_header", "metadata", "content")}
        content = stored["content"] if isinstance(stored["content"], dict) else {}
        # The kernel's state keeps no code (a storm of 1 MiB requests made each snapshot
        # 100 MiB); the record keeps it for the transcript, which has no silent cells.
        bare = {k: v for k, v in content.items() if k != "code"}
        self.state.request({**stored, "content": bare})
        self._write(b"R", [{**stored, "content": bare} if bare.get("silent") else stored, origin])

    def deliver(self, env: Envelope) -> None:
        """An iopub message published (the output log's Subscriber interface)."""
        self.state.iopub(env.msg)
        self._write(b"M", _message_record(env), (env.seq, env.offset))
        if self._in_file and self._in_file[-1][0] == env.seq:
            first = self._log.first_logged_seq if self._log is not None else 0
            while self._in_file[0][0] < first:  # gone from the log: not copied again
                self._in_file.popleft()
        self._publishing = True  # the readers it wakes next: _published

    def echo(self, parent: str, text: str) -> None:
        """What ``input()`` added to the cell of request ``parent``."""
        self._write(b"I", [parent, text])

    def note_session(self, session: str) -> None:
        """The kernel's Jupyter session id is ``session`` from now on."""
        self.state.session = session
        self._write(b"K", session)

    def link_safe(self, stream: str, seq: int) -> None:
        """Every link item of ``stream`` up to ``seq`` is in the journal."""
        self.state.link = (stream, seq)
        self._write(b"L", [stream, seq])

    def session_position(self, session_id: str) -> Position | None:
        """Where the WebSocket session ``session_id`` was (restored or written since)."""
        return self.sessions.get(session_id)

    def note_position(self, session_id: str, position: Position) -> None:
        """The session ``session_id`` is about to have been written up to ``position``
        (its connection wrote to its transport, which sends once the reactor polls).
        While a message is being published, the positions of every session it wakes are
        written in one record once they all have it, before publish returns."""
        if self._publishing:
            self._pending[session_id] = position
        elif self.sessions.get(session_id) != position:
            self.sessions.set(session_id, position)
            self._write(b"P", self.sessions.record({session_id: position}))

    def _published(self) -> None:
        """The output log handed a message to every reader (its ``after_publish``)."""
        self._publishing = False
        if self._pending:
            pending, self._pending = self._pending, {}
            self.sessions.update(pending)
            self._write(b"P", self.sessions.record(pending))

    # -- the file ---------------------------------------------------------------------

    def _write(self, kind: bytes, payload: Any, before: Position | None = None) -> None:
        """Append one record.  Past three quarters of the bound the file is rewritten
        in a thread (:meth:`compact`), finished once done; a record that would pass
        the bound waits for it, or rewrites the file there and then.  No error stops
        the kernel: a record that cannot be encoded is left out, a file that cannot be
        written is written no more (a log line each)."""
        if self.closed or self.failed or self._log is None:
            return
        try:
            head, body = encode_parts(kind, payload)
            size = len(head) + len(body)
            file = self.file
            over = file.size + size > self.limit
            if file.rewriting and (over or file.rewritten):
                self._finish(wait=over)
            if file.size + size > self.limit:
                self.compact(before or self._log.end)
                if kind == b"P":  # the snapshot has the positions
                    return
                if file.size + size > self.limit:
                    self._left_out(f"{size} bytes, larger than the journal's room")
                    return
            elif not file.rewriting and file.size + size > self.limit * 3 // 4:
                if self.compact(before or self._log.end, wait=False) and kind == b"P":
                    return
            at = file.size
            file.append((head, body))
            if kind == b"M" and before is not None:
                self._in_file.append((before[0], before[1], at))
        except (TypeError, ValueError) as e:  # orjson's errors: something not JSON
            self._left_out(f"not encodable ({type(e).__name__})")
        except Exception as e:
            self.failed = True
            self.log.error("journal {path}: not written any more: {e}", path=self.file.path, e=e)

    def _finish(self, wait: bool = True) -> None:
        """The rewrite in a thread is done: the file is the new one, offsets shifted
        (unless ``wait``, much appended meanwhile is copied by the thread first)."""
        if not self.file.finish(wait):
            return
        cut, start = self._shift
        self._in_file = deque((seq, off, at - cut + start) for seq, off, at in self._in_file)

    def _left_out(self, why: str) -> None:
        self.skipped += 1
        if self.skipped == 1 or self.skipped % 1000 == 0:
            self.log.warn(
                "journal {path}: a record left out ({why}; {k} so far)",
                path=self.file.path,
                why=why,
                k=self.skipped,
            )

    def compact(self, before: Position, wait: bool = True) -> bool:
        """Rewrite the file: a snapshot of the state before the message at ``before``
        (the output log's end when none is being published), the transcript's state,
        and the records of the newest messages before it that fit in half the bound.
        Those already in the file are copied by the kernel (with the records between
        them, which the snapshot makes log-only), in a thread unless ``wait``; the
        others are encoded (then always at once).  Whether it began a rewrite."""
        assert self._log is not None and self._transcript is not None
        head: dict[str, Any] = {"v": VERSION, **self.state.to_json()}
        head["p"] = self.sessions.snapshot()
        head["at"], head["span"] = [_HUGE, _HUGE], _HUGE  # the largest the head can be
        size = len(encode(b"S", head))  # the head is padded to it
        transcript: list[bytes] = []
        try:
            transcript.append(encode(b"T", dump_transcript(self._transcript)))
        except ValueError as e:
            self.log.warn("journal {path}: transcript not kept: {e}", path=self.file.path, e=e)
        room = self.limit // 2 - size
        if transcript and len(transcript[0]) > room:
            self.log.warn("journal {path}: transcript larger than its room", path=self.file.path)
            transcript = []
        room -= sum(map(len, transcript))
        start = size + sum(map(len, transcript))
        in_file = self._in_file
        if in_file and in_file[0][0] <= self._log.first_logged_seq:
            end = self.file.size
            while in_file and end - in_file[0][2] > room:
                in_file.popleft()
            cut = in_file[0][2] if in_file else end
            head["at"] = in_file[0][:2] if in_file else before
            head["span"] = end - cut
            self._shift = (cut, start)
            self.file.begin([encode(b"S", head, size), *transcript], (cut, end))
            if wait:
                self._finish()
            return True
        if not wait:
            return False
        kept: list[Envelope] = []
        for env in reversed(list(self._log.retained())):
            if env.seq >= before[0]:
                continue
            room -= len(encode(b"M", _message_record(env)))
            if room < 0:
                break
            kept.append(env)
        kept.reverse()
        records = [encode(b"M", _message_record(env)) for env in kept]
        head["at"] = (kept[0].seq, kept[0].offset) if kept else before
        head["span"] = sum(map(len, records))
        self._in_file = deque()
        for env, record in zip(kept, records, strict=True):
            self._in_file.append((env.seq, env.offset, start))
            start += len(record)
        self.file.replace(chain([encode(b"S", head, size)], transcript, records))
        return True

    def close(self) -> None:
        """Write no more (the file stays for the next service)."""
        if not self.closed:
            self.closed = True
            if self._log is not None:
                self._log.unsubscribe(self)
                if self._log.after_publish == self._published:
                    self._log.after_publish = None
            try:
                self.file.close()  # a rewrite begun is finished
            except OSError as e:
                self.log.error("journal {path}: not closed: {e}", path=self.file.path, e=e)

    def remove(self) -> None:
        """Close, and delete the file (the kernel ended on purpose)."""
        self.close()
        for path in (self.file.path, self.file.path + ".new"):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
