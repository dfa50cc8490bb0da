"""The WebSocket sessions' positions as a kernel's journal keeps them (pure).

A session is named once per file by a small number (its ids are 32 characters or
more), and a record groups the sessions by position: when a message wakes a hundred
sessions that keep up, its record is their numbers and one position, not a hundred
ids and positions.  At most :data:`MAX_SESSIONS` are kept (the least recent go), as the
WebSocket hub keeps at most that many sessions."""

from __future__ import annotations

from typing import Any

from .outputlog import Position

__all__ = ["MAX_SESSIONS", "SessionPositions"]

MAX_SESSIONS = 1000


class SessionPositions:
    """Positions by session id, and the numbers this file gave the ids."""

    def __init__(self) -> None:
        self.positions: dict[str, Position] = {}
        self._numbers: dict[str, int] = {}
        self._names: dict[int, str] = {}
        self._next = 0

    def get(self, session_id: str) -> Position | None:
        """Where the session is (None: not known)."""
        return self.positions.get(session_id)

    def set(self, session_id: str, position: Position) -> None:
        """The session is at ``position`` now (the most recent)."""
        self.positions.pop(session_id, None)
        self.update({session_id: position})

    def update(self, changed: dict[str, Position]) -> None:
        """Several sessions moved (in time: those new to it go last; the others keep
        their place, the place they had when first seen: for a message that wakes
        every session, no reordering)."""
        positions = self.positions
        known = len(positions)
        positions.update(changed)
        if len(positions) > known:
            while len(positions) > MAX_SESSIONS:
                gone = next(iter(positions))
                del positions[gone]
                self._names.pop(self._numbers.pop(gone, -1), None)

    def record(self, changed: dict[str, Position]) -> list[Any]:
        """A record of ``changed``: ``[[number, id] for ids new to the file], [[seq,
        offset, [numbers]] by position]``."""
        numbers = self._numbers
        new = []
        for sid in changed:
            if sid not in numbers:
                numbers[sid], self._names[self._next] = self._next, sid
                new.append([self._next, sid])
                self._next += 1
        if len(changed) == 1 or len(set(changed.values())) == 1:  # they all keep up
            (seq, offset) = next(iter(changed.values()))
            return [new, [[seq, offset, [numbers[sid] for sid in changed]]]]
        groups: dict[Position, list[int]] = {}
        for sid, position in changed.items():
            groups.setdefault(position, []).append(numbers[sid])
        return [new, [[seq, offset, group] for (seq, offset), group in groups.items()]]

    def replay(self, data: list[Any]) -> None:
        """A record written by :meth:`record`."""
        new, groups = data
        for number, sid in new:
            self._names[int(number)] = str(sid)
        for seq, offset, numbers in groups:
            for number in numbers:
                self.set(self._names[int(number)], (int(seq), int(offset)))

    def snapshot(self) -> dict[str, Any]:
        """Every position and the numbers given so far, for a snapshot record (the
        numbering goes on: records written while the file is rewritten are good in
        the old file and in the new)."""
        return {"at": self.positions, "num": self._numbers, "next": self._next}

    def load(self, data: dict[str, Any]) -> None:
        """A snapshot record's positions and numbers."""
        self.positions, self._numbers, self._names = {}, {}, {}
        for sid, (seq, offset) in data["at"].items():
            self.positions[str(sid)] = (int(seq), int(offset))
        for sid, number in data["num"].items():
            self._numbers[str(sid)] = int(number)
            self._names[int(number)] = str(sid)
        self._next = int(data["next"])
