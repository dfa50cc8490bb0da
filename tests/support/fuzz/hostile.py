"""What hypothesis draws, and hostile message content made of it (for both transports)."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

#: In every hostile payload; must never appear in the service's log.
MARKER = "FUZZ-MARKER-5c1d7e"
#: The only code hostile execute_requests carry (besides code that is not a string).
SAFE_EXECUTE_CODE = ("1", repr(MARKER))
#: Code for complete/inspect/is_complete: parsed or looked up, never run.
SAFE_PARSE_CODE = ("1", "", "pri", "print", "x = (", "# " + MARKER, "import o", "a.b.")
#: Shell requests the kernel passes to its worker (they queue behind each other).
WORKER_TYPES = ("execute_request", "complete_request", "inspect_request")
WORKER_TYPES += ("is_complete_request", "history_request")
#: Message types a hostile client sends per channel (shutdown_request is left out: it
#: is an authorised restart, not hostile input).
CHANNEL_TYPES = {
    "shell": WORKER_TYPES
    + ("kernel_info_request", "comm_info_request", "comm_open")
    + ("comm_msg", "comm_close", "input_reply"),
    "control": ("kernel_info_request", "comm_info_request", "interrupt_request")
    + ("execute_request", "usage_request", "debug_request"),
    "stdin": ("input_reply", "input_request", "kernel_info_request", "execute_request"),
}
HUGE_INTS = (2**63, -(2**63) - 1, 2**64, 10**30, 10**300, -(10**200))

# -- what hypothesis draws --------------------------------------------------------

_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=24)
)
JSON = st.recursive(
    _leaves,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)


@dataclass
class Pool:
    """What hypothesis drew for one batch; ``rnd``, seeded by all of it, combines it."""

    seed: int
    values: list[Any]
    blobs: list[bytes]
    texts: list[str]
    size: int
    rnd: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rnd = random.Random(repr((self.seed, self.values, self.blobs, self.texts)))


def pools(min_size: int, max_size: int) -> st.SearchStrategy[Pool]:
    return st.builds(
        Pool,
        seed=st.integers(min_value=0, max_value=2**64),
        values=st.lists(JSON, min_size=8, max_size=8),
        blobs=st.lists(st.binary(max_size=160), min_size=4, max_size=4),
        texts=st.lists(st.text(max_size=40), min_size=4, max_size=4),
        size=st.integers(min_value=min_size, max_value=max_size),
    )


# -- hostile message content, shared by both transports ---------------------------


class Hostile:
    """Wrongly typed, oversized and deeply nested JSON drawn from a :class:`Pool`."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.rnd = pool.rnd

    def value(self) -> Any:
        """A JSON value: drawn, huge, deep, or carrying the marker."""
        r = self.rnd.random()
        if r < 0.6:
            return self.rnd.choice(self.pool.values)
        if r < 0.75:
            return self.rnd.choice(HUGE_INTS)
        if r < 0.85:
            return nested(self.rnd.choice((5, 30, 99)), MARKER)
        return MARKER + self.rnd.choice(self.pool.texts)

    def non_string(self) -> Any:
        v = self.value()
        return 1 if isinstance(v, str) else v

    def not_a_dict(self) -> Any:
        v = self.value()
        return [v] if isinstance(v, dict) else v

    def text(self) -> str:
        return self.rnd.choice(self.pool.texts)

    def header(self, msg_type: Any, session: str = "fuzz") -> dict[str, Any]:
        """A header with the given type; other fields may be of any type."""
        h: dict[str, Any] = {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "session": session,
            "username": "fuzz",
            "date": "2024-01-01T00:00:00Z",
            "version": "5.3",
        }
        for key in self.rnd.sample(("session", "username", "date", "version"), k=2):
            if self.rnd.random() < 0.5:
                h[key] = self.value()
        if self.rnd.random() < 0.3:
            h[MARKER] = self.value()
        return h

    def content(self, msg_type: str) -> dict[str, Any]:
        """Content for ``msg_type``: known fields wrongly typed, unknown fields added."""
        rnd = self.rnd
        c: dict[str, Any] = {MARKER: self.value()}
        for _ in range(rnd.randrange(3)):
            c[self.text()] = self.value()
        if msg_type == "execute_request":
            c["code"] = rnd.choice(SAFE_EXECUTE_CODE) if rnd.random() < 0.5 else self.non_string()
            # a dict is evaluated: only ``1``; anything else is refused before running
            c["user_expressions"] = rnd.choice(({}, {"a": "1"}, None, self.not_a_dict()))
            for key in ("silent", "store_history", "allow_stdin", "stop_on_error"):
                if rnd.random() < 0.5:
                    c[key] = self.value()
        elif msg_type in ("complete_request", "inspect_request", "is_complete_request"):
            c["code"] = rnd.choice(SAFE_PARSE_CODE) if rnd.random() < 0.7 else self.non_string()
            c["cursor_pos"] = rnd.choice((0, 3, -5, "x", None, *HUGE_INTS))
            c["detail_level"] = self.value()
        elif msg_type == "history_request":
            c["hist_access_type"] = rnd.choice(("tail", "range", "search", self.value()))
            for key in ("n", "session", "start", "stop", "raw", "output", "unique"):
                if rnd.random() < 0.6:
                    c[key] = rnd.choice((self.value(), 3, -1, *HUGE_INTS))
            c["pattern"] = rnd.choice(("*", MARKER + "*", self.value()))
        elif msg_type.startswith("comm_"):
            for key in ("comm_id", "target_name", "data"):
                c[key] = self.value()
        elif msg_type in ("input_reply", "input_request"):
            c["value"] = self.value()
        return c


def nested(depth: int, leaf: Any) -> Any:
    for i in range(depth - 1):
        leaf = [leaf] if i % 2 else {"k": leaf}
    return leaf


def hostile_depth(rnd: random.Random) -> int:
    """A nesting depth: shallow, around the service's limit (100), or near what
    ``json.loads`` accepts at all (about 1000, less the caller's stack)."""
    return rnd.choice(
        (rnd.randrange(2, 100), 100, 101, rnd.randrange(101, 850), rnd.randrange(850, 1000), 5000)
    )


def deep_json(depth: int) -> bytes:
    """A JSON object ``depth`` levels deep, written without json.dumps."""
    return (
        b'{"m": "' + MARKER.encode() + b'", "d": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    )


def huge_int_json(digits: int) -> bytes:
    """A JSON object holding an integer of ``digits`` digits (Python refuses over 4300)."""
    return b'{"m": "' + MARKER.encode() + b'", "n": ' + b"7" * digits + b"}"
