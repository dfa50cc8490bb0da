"""How a kernel's journal is read back into a fresh output log and transcript (see
:mod:`.journal`): the snapshot, the transcript's state, the records that only refill
the log, then every record as it happened."""

from __future__ import annotations

from base64 import b64decode
from typing import Any

from twisted.logger import Logger

from .envelope import Envelope
from .journalfile import JournalFile, read_records
from .journalkernel import KernelState, Restored
from .journalsessions import SessionPositions
from .journalstate import load_transcript
from .outputlog import OutputLog
from .transcript import Transcript

__all__ = ["VERSION", "Restoring"]

VERSION = 1
#: What a record of the wrong shape raises as it is replayed.
_NOT_VALID = (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError)


class Restoring:
    """The journal's reading side (:class:`~.journal.KernelJournal` is one)."""

    log: Logger
    file: JournalFile
    limit: int
    state: KernelState
    sessions: SessionPositions

    # -- restore ----------------------------------------------------------------------

    def restore(self, output_log: OutputLog, transcript: Transcript) -> Restored:
        """Fill ``output_log`` (same seqs and msg_ids; no subscriber or reader is told)
        and ``transcript`` from the file, up to its first torn or corrupt record (one
        log line says where)."""
        records, problem = read_records(self.file.path, self.limit)
        log_only = 0  # bytes after the snapshot of records that only refill the log
        for i, (kind, payload, at) in enumerate(records):
            try:
                if kind == b"S":
                    log_only = self._snapshot(payload, i, output_log)
                elif kind == b"T":
                    self._transcript_state(payload, i, transcript)
                elif i and records[i - 1][0] in (b"S", b"T"):  # where the log-only span starts
                    log_only += at
                if kind in (b"S", b"T"):
                    continue
                if at < log_only:  # the snapshot has the rest of what they did
                    if kind == b"M":
                        self._message(payload, output_log)
                    continue
                self._replay(kind, payload, output_log, transcript)
            except _NOT_VALID as e:
                problem = f"record {i} ({kind!r}) is not valid ({type(e).__name__})"
                break
        if problem is not None:
            self.log.warn(
                "journal {path}: {problem}: restored what came before it",
                path=self.file.path,
                problem=problem,
            )
        s = self.state
        running = s.pending.get(s.running) if s.running is not None else None
        return Restored(s.session, s.count, running, s.link, dict(self.sessions.positions))

    def _snapshot(self, data: dict[str, Any], i: int, output_log: OutputLog) -> int:
        """The snapshot record: the kernel's state, the sessions, where the log starts;
        how many bytes after it (and the transcript's) only refill the log."""
        if i != 0 or data.get("v") != VERSION:
            raise ValueError("a snapshot not first, or of another version")
        self.state.load(data)
        self.sessions.load(data["p"])
        seq, offset = data["at"]
        output_log.resume_at((int(seq), int(offset)))
        return int(data["span"])

    def _transcript_state(self, data: Any, i: int, transcript: Transcript) -> None:
        if i != 1:
            raise ValueError("a transcript's state not after the snapshot")
        load_transcript(transcript, data)

    def _message(self, data: list[Any], output_log: OutputLog) -> Envelope:
        seq, offset, msg, buffers = data
        if not isinstance(msg.get("header"), dict) or not isinstance(msg.get("content"), dict):
            raise ValueError("not a message")
        if buffers is not None:
            msg["buffers"] = [b64decode(b, validate=True) for b in buffers]
        return output_log.load(msg, (int(seq), int(offset)))

    def _replay(
        self, kind: bytes, data: Any, output_log: OutputLog, transcript: Transcript
    ) -> None:
        """One record after the snapshot's log-only span, as it happened."""
        if kind == b"M":
            env = self._message(data, output_log)
            self.state.iopub(env.msg)
            transcript.deliver(env)
        elif kind == b"R":
            msg, origin = data
            self.state.request(msg)
            transcript.request(msg, str(origin))
        elif kind == b"I":
            parent, text = data
            transcript.stdin(str(parent), str(text))
        elif kind == b"K":
            self.state.session = str(data)
        elif kind == b"L":
            self.state.link = (str(data[0]), int(data[1]))
        elif kind == b"P":
            self.sessions.replay(data)
