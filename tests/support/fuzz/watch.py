"""The service after hostile input: what its log gained, and a round trip that still works."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from benchlib.frames import pack_v1
from benchlib.messages import make_message, parent_id
from benchlib.servers import Service
from benchlib.wsclient import WSClient

from .hostile import MARKER

#: The window of the service's rate limit on logging rejected input.
LOG_WINDOW = 10.0


@contextmanager
def deep_json_readable(limit: int = 5_000) -> Iterator[None]:
    """Let this process read any message the service may send: one whose parent_header
    nests as deep as the service accepted (``json.loads`` needs more stack in a test
    than in the service's reactor)."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def ws_round_trip(client: WSClient, timeout: float = 15.0) -> int:
    """Send a valid kernel_info_request on ``client`` and read up to its reply; how many
    messages were read (whatever came before is dropped)."""
    msg = make_message("kernel_info_request", {}, client.session_id)
    if client.v1:
        client.ws.send_binary(pack_v1(msg, "shell"))
    else:
        client.ws.send(json.dumps({**msg, "channel": "shell"}))
    msg_id = msg["header"]["msg_id"]
    got = client.until(
        lambda m: m["msg_type"] == "kernel_info_reply" and parent_id(m) == msg_id, timeout
    )
    client.received.clear()  # memory: the fuzz reads tens of thousands of messages
    return len(got)


# -- the service's process and log --------------------------------------------------


class LogWatch:
    """The part of the service's log written since this watch was made."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.start = len(svc.log())

    def new(self) -> str:
        return self.svc.log()[self.start :]

    def lines(self) -> list[str]:
        """Log entries (continuation lines of a multi-line entry start with a tab)."""
        return [line for line in self.new().splitlines() if line and not line[0].isspace()]

    def assert_clean(self, *secrets: str) -> None:
        """No traceback, no unhandled error, no payload marker and none of ``secrets``."""
        text = self.new()
        for bad in ("Traceback", "Unhandled", MARKER, *secrets):
            assert bad not in text, f"{bad!r} in the service log:\n{excerpt(text, bad)}"


def excerpt(text: str, needle: str, width: int = 1500) -> str:
    i = text.find(needle)
    return text[max(0, i - width // 3) : i + width]
