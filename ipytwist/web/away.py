"""What a kernel's sessions are owed, bounded per kernel: while connected, and away.

While a session has a connection, what it is owed counts in the kernel's
:class:`~ipytwist.web.outbox.OwedTotal`: past its bound, the kernel's connections
whose sessions are owed anything are held back until they are owed nothing.

A session whose connection closed keeps the replies addressed to it (and those
that come while it is away), so a client that reconnects with the same
``session_id`` gets them.  A kernel keeps at most :data:`MAX_AWAY_MESSAGES` of
them, or :data:`MAX_AWAY_BYTES` counted as the output log counts its messages
(output bytes and a fixed overhead each).  Past that, the replies of the
session that has kept some for longest are dropped, and if that client comes
back it is told, in one notice, how many it missed.  So clients that send
requests and leave without reading the replies (a storm of them) leave behind
no more than this bound.
"""

from __future__ import annotations

from collections import OrderedDict

from ..wire import Message, new_message
from .outbox import OwedTotal, Reply, ReplyQueue

__all__ = ["MAX_AWAY_BYTES", "MAX_AWAY_MESSAGES", "AwayReplies"]

#: Replies a kernel keeps for sessions without a connection, counted by cost.
MAX_AWAY_BYTES = 16 * 1024 * 1024
#: ... and by number: as many as one session may be owed.  Every reply kept is a few
#: objects the garbage collector's full passes look at while the reactor waits.
MAX_AWAY_MESSAGES = 1000


class AwayReplies:
    """The reply queues of a kernel's sessions that are away, and what they cost; the
    others count in ``owed``, what the kernel's connected sessions are owed."""

    def __init__(
        self,
        owed: OwedTotal,
        max_bytes: int = MAX_AWAY_BYTES,
        max_messages: int = MAX_AWAY_MESSAGES,
    ) -> None:
        self.owed = owed
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        #: What the away sessions' replies cost in all, and how many they are.
        self.nbytes = 0
        self.messages = 0
        #: The queues holding replies, by when they first did while away, and the
        #: cost and number of each when last counted.
        self._kept: OrderedDict[ReplyQueue, tuple[int, int]] = OrderedDict()

    def left(self, replies: ReplyQueue) -> None:
        """A session went away (its connection closed) with ``replies``."""
        replies.count_out()
        self.grew(replies)

    def grew(self, replies: ReplyQueue) -> None:
        """A reply was added to the queue of a session that is away."""
        cost, count = replies.cost, len(replies)
        was_cost, was_count = self._kept.get(replies, (0, 0))
        self.nbytes += cost - was_cost
        self.messages += count - was_count
        if cost:
            self._kept[replies] = (cost, count)
        while (self.nbytes > self.max_bytes or self.messages > self.max_messages) and self._kept:
            oldest, (counted, number) = self._kept.popitem(last=False)
            self.nbytes -= counted
            self.messages -= number
            oldest.dropped += oldest.drop()

    def back(self, replies: ReplyQueue, kernel_session: str) -> None:
        """A session is back (it has a connection): it counts in the kernel's total again,
        and if some of its replies were dropped, a notice saying how many goes first."""
        self.forget(replies)
        replies.count_in(self.owed)
        if replies.dropped:
            replies.put_back(Reply(-1, "iopub", self.notice(replies.dropped, kernel_session), 0))
            replies.dropped = 0

    def forget(self, replies: ReplyQueue) -> None:
        """A session is back, or forgotten: its replies no longer count here."""
        cost, count = self._kept.pop(replies, (0, 0))
        self.nbytes -= cost
        self.messages -= count

    def notice(self, count: int, kernel_session: str) -> Message:
        """The stderr notice of ``count`` replies dropped, from the kernel's session."""
        text = (
            f"[ipytwist] {count} repl{'y' if count == 1 else 'ies'} dropped: this client was "
            f"away while the kernel kept more than {self.max_messages} replies or "
            f"{self.max_bytes} bytes of them for clients that were away.\n"
        )
        return new_message("stream", {"name": "stderr", "text": text}, kernel_session)
