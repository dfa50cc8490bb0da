"""The Jupyter message model and its ZeroMQ wire form.

Pure code: building messages, signing them with HMAC-SHA256, verifying
signatures (constant time, replays rejected) and turning messages into the
multipart frames of the Jupyter wire protocol and back.  Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import uuid
from binascii import b2a_base64
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - a dependency, but the slow path works
    _orjson = None  # type: ignore[assignment]  # None marks the missing module; checked before use

PROTOCOL_VERSION = "5.5"
DELIMITER = b"<IDS|MSG>"

#: Largest total size of one incoming message, in bytes (configurable per codec).
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: Deepest nesting of lists and objects accepted in an incoming message.  Requests are
#: encoded again deeper in the stack than they were decoded (a reply's parent_header is
#: the request's header), so nesting that ``json.loads`` just accepts would fail there
#: with RecursionError, in the middle of publishing.
MAX_JSON_DEPTH = 100

Message = dict[str, Any]


class WireError(ValueError):
    """An incoming message that cannot be accepted.  ``str()`` is one short line."""


class BadSignature(WireError):
    pass


class ReplayedSignature(WireError):
    pass


class MalformedMessage(WireError):
    pass


class MessageTooLarge(WireError):
    pass


def utcnow_iso() -> str:
    """The current time as Jupyter writes it in headers."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def json_default(obj: Any) -> Any:
    """Make the values IPython produces JSON-safe, as Jupyter clients expect."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return b2a_base64(bytes(obj), newline=False).decode("ascii")
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    for conv in (int, float):  # numpy scalars and friends
        try:
            return conv(obj)
        except (TypeError, ValueError):
            pass
    return repr(obj)


def dumps(obj: Any) -> bytes:
    """Compact, UTF-8 JSON (non-finite floats allowed, as IPython may produce them).

    Strings holding lone surrogates (undecodable file names, bytes decoded with
    ``surrogateescape``) are written as ``\\udcXX`` escapes, so the result is
    always valid UTF-8 that reads back to the same strings.
    """
    text = json.dumps(obj, default=json_default, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(
            obj, default=json_default, ensure_ascii=True, separators=(",", ":")
        ).encode("ascii")


def _orjson_dumps(obj: Any) -> bytes | None:
    """orjson's encoding of ``obj``; None without orjson, or for what it refuses (lone
    surrogates, non-string keys, integers past 64 bits, unknown types)."""
    if _orjson is None:
        return None
    try:
        out: bytes = _orjson.dumps(obj)
    except (TypeError, _orjson.JSONEncodeError):
        return None
    return out


def dumps_strings(obj: Any) -> bytes:
    """:func:`dumps` for a message whose values are strings (stream output), 3-4x faster
    when orjson is installed; what orjson refuses goes through :func:`dumps`.  orjson
    would write a non-finite float as null, which is why this is only for messages
    that carry none."""
    out = _orjson_dumps(obj)
    return out if out is not None else dumps(obj)


def dumps_decoded(obj: Any) -> bytes:
    """:func:`dumps` for values made of JSON's types alone (decoded from JSON, or built
    of them: what the kernel sends), 10-20x faster with orjson.  orjson writes a
    non-finite float as ``null``: output holding ``null`` is encoded again by
    :func:`dumps`, as is whatever orjson refuses."""
    out = _orjson_dumps(obj)
    return out if out is not None and b"null" not in out else dumps(obj)


def too_deep(raw: Iterable[bytes], *values: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether any of ``values``, decoded from the JSON texts ``raw``, nests lists and
    objects more than ``limit`` levels deep.  Counting brackets in ``raw`` first makes
    this free for all but messages with many brackets."""
    if sum(r.count(b"[") + r.count(b"{") for r in raw) <= limit:
        return False
    stack = [(v, 1) for v in values if isinstance(v, (dict, list))]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


class BadJSON(ValueError):
    """Untrusted JSON that is refused; ``str()`` says why in a few words."""


def loads_untrusted(data: bytes, max_depth: int | None = MAX_JSON_DEPTH) -> Any:
    """JSON from a client or a worker: bad UTF-8, bad JSON, nesting deep enough to
    exhaust the parser (RecursionError) and nesting past ``max_depth`` are one BadJSON."""
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise BadJSON(f"invalid JSON ({type(e).__name__})") from None
    if max_depth is not None and too_deep([data], value, limit=max_depth):
        raise BadJSON(f"JSON nested more than {max_depth} levels deep")
    return value


class _MessageIds:
    """Message ids as jupyter_client makes them: this process's random prefix and a count
    (a fresh uuid4 per message cost 3 us); a forked child takes a prefix of its own."""

    def __init__(self) -> None:
        self.renew()
        os.register_at_fork(after_in_child=self.renew)

    def renew(self) -> None:
        self.prefix = uuid.uuid4().hex + "_"
        self.count = itertools.count(1)

    def new(self) -> str:
        return self.prefix + str(next(self.count))


new_msg_id = _MessageIds().new


def new_header(msg_type: str, session: str, username: str = "kernel") -> dict[str, str]:
    return {
        "msg_id": new_msg_id(),
        "msg_type": msg_type,
        "username": username,
        "session": session,
        "date": utcnow_iso(),
        "version": PROTOCOL_VERSION,
    }


#: The request metadata key under which a client gives its terminal's size
#: (``{"columns": int, "lines": int}``), for the programs the cell runs (ipytwist's own).
TERMINAL_METADATA = "ipytwist.terminal"


def new_message(
    msg_type: str,
    content: dict[str, Any],
    session: str,
    parent: Message | None = None,
    metadata: dict[str, Any] | None = None,
    buffers: list[bytes] | None = None,
) -> Message:
    """A message dict in the shape jupyter_client uses (``msg_type`` copied to the top)."""
    header = new_header(msg_type, session)
    return {
        "header": header,
        "msg_id": header["msg_id"],
        "msg_type": msg_type,
        "parent_header": dict(parent["header"]) if parent else {},
        "metadata": metadata or {},
        "content": content,
        "buffers": buffers or [],
    }


def reply_type(request_type: str) -> str:
    """``execute_request`` -> ``execute_reply``; anything else gets ``_reply`` appended."""
    base = request_type[: -len("_request")] if request_type.endswith("_request") else request_type
    return base + "_reply"


class Signer:
    """HMAC-SHA256 signatures over the four JSON frames; an empty key disables signing."""

    def __init__(self, key: bytes, scheme: str = "hmac-sha256") -> None:
        if scheme != "hmac-sha256":
            raise ValueError(f"unsupported signature scheme {scheme!r}")
        self.key = key
        self._proto = hmac.new(key, digestmod=hashlib.sha256) if key else None

    def sign(self, parts: Sequence[bytes | bytearray]) -> bytes:
        if self._proto is None:
            return b""
        h = self._proto.copy()
        for p in parts:
            h.update(p)
        return h.hexdigest().encode("ascii")

    def verify(self, signature: bytes, parts: list[bytes]) -> bool:
        if self._proto is None:
            return True
        return hmac.compare_digest(signature, self.sign(parts))


class SeenSignatures:
    """A bounded memory of signatures already accepted, to refuse replays."""

    def __init__(self, limit: int = 1 << 16) -> None:
        self.limit = limit
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def add(self, signature: bytes) -> bool:
        """Remember ``signature``; return False if it was already known."""
        if signature in self._seen:
            return False
        self._seen[signature] = None
        if len(self._seen) > self.limit:
            self._seen.popitem(last=False)
        return True


class WireCodec:
    """Serialise messages to ZMQ frames and parse incoming frames for one kernel."""

    def __init__(
        self,
        key: bytes,
        scheme: str = "hmac-sha256",
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.signer = Signer(key, scheme)
        self.seen = SeenSignatures()
        self.max_message_bytes = max_message_bytes

    def serialize(self, msg: Message, idents: list[bytes] | tuple[bytes, ...] = ()) -> list[bytes]:
        parts = [
            dumps_decoded(msg["header"]),
            dumps_decoded(msg.get("parent_header") or {}),
            dumps_decoded(msg.get("metadata") or {}),
            dumps_decoded(msg.get("content") or {}),
        ]
        frames = [*idents, DELIMITER, self.signer.sign(parts), *parts]
        frames.extend(bytes(b) for b in msg.get("buffers") or ())
        return frames

    def deserialize(self, frames: list[bytes]) -> tuple[list[bytes], Message]:
        """Return ``(routing identities, message)`` or raise a :class:`WireError`."""
        total = sum(len(f) for f in frames)
        if total > self.max_message_bytes:
            raise MessageTooLarge(f"message of {total} bytes exceeds {self.max_message_bytes}")
        try:
            i = frames.index(DELIMITER)
        except ValueError:
            raise MalformedMessage("no <IDS|MSG> delimiter") from None
        idents, rest = frames[:i], frames[i + 1 :]
        if len(rest) < 5:
            raise MalformedMessage(f"{len(rest)} frames after the delimiter, need at least 5")
        signature, parts, buffers = rest[0], rest[1:5], rest[5:]
        if self.signer.key:
            if not signature:
                raise BadSignature("missing signature")
            if not self.signer.verify(signature, parts):
                raise BadSignature("invalid signature")
            if not self.seen.add(signature):
                raise ReplayedSignature("duplicate signature")
        try:
            header, parent, metadata, content = (loads_untrusted(p) for p in parts)
        except BadJSON as e:
            raise MalformedMessage(str(e)) from None
        if not isinstance(header, dict) or not isinstance(header.get("msg_type"), str):
            raise MalformedMessage("header is not an object with a msg_type")
        if not all(isinstance(x, dict) for x in (parent, metadata, content)):
            raise MalformedMessage("parent_header, metadata and content must be objects")
        msg: Message = {
            "header": header,
            "msg_id": header.get("msg_id", ""),
            "msg_type": header["msg_type"],
            "parent_header": parent,
            "metadata": metadata,
            "content": content,
            "buffers": buffers,
        }
        return idents, msg
