"""The worker link's handshake, sans-IO: versioned, authenticated by a per-kernel secret.

The *listener* (the keeper) speaks first with ``HELLO``: its protocol versions, a
nonce and its sending stream.  The *dialer* (the service) answers ``AUTH``: the
highest common version, its nonce, its stream, the seq it expects next, and an
HMAC of both nonces under the secret.  The listener checks it and answers
``WELCOME``, with its own HMAC and the seq it expects next.  The secret never
crosses the link.  Whoever cannot go on sends ``REFUSE`` with a reason and
closes; a keeper refused by its service ends its interpreter.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .wire import (
    LINK_VERSIONS,
    PROTO,
    Frame,
    Inbound,
    Kind,
    LinkError,
    encode_frame,
    handshake_mac,
    json_body,
    parse_json_body,
)

__all__ = ["DialerHandshake", "LinkRefused", "ListenerHandshake", "Resumed"]


class LinkRefused(LinkError):
    """The handshake failed: send :attr:`frame` (a ``REFUSE``) if any, then close."""

    def __init__(self, reason: str, frame: bytes = b"") -> None:
        super().__init__(reason)
        self.frame = frame


@dataclass(frozen=True)
class Resumed:
    """A finished handshake: the version, the peer's stream, the seq the peer expects
    from us next (give it to :meth:`Outbound.resume`), and what the peer told of itself."""

    version: int
    peer_stream: str
    peer_next: int
    info: dict[str, Any] = field(default_factory=dict)


def _refuse(reason: str) -> LinkRefused:
    return LinkRefused(reason, encode_frame(Kind.REFUSE, 0, 0, json_body({"reason": reason})))


def _expect(frame: Frame, kind: Kind) -> dict[str, Any]:
    if frame.kind is Kind.REFUSE:
        reason = parse_json_body(frame).get("reason")
        raise LinkRefused(f"refused by the peer: {str(reason)[:200]}")
    if frame.kind is not kind:
        raise _refuse(f"expected {kind.name}, got {frame.kind.name}")
    return parse_json_body(frame)


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= 128:
        raise _refuse(f"handshake field {key!r} is missing or malformed")
    return value


def _seq(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _refuse(f"handshake field {key!r} is missing or malformed")
    return value


class _Side:
    """What either end of a handshake knows: the kernel's secret and id, a fresh random
    nonce, its own sending stream, its :class:`Inbound`, the versions it speaks."""

    def __init__(
        self,
        secret: bytes,
        kernel_id: str,
        nonce: str,
        stream: str,
        inbound: Inbound,
        versions: Sequence[int] = LINK_VERSIONS,
    ) -> None:
        self.secret, self.kernel_id, self.nonce, self.stream = secret, kernel_id, nonce, stream
        self.inbound = inbound
        self.versions = tuple(versions)


class ListenerHandshake(_Side):
    """The keeper's side: :meth:`hello` first, then :meth:`receive` the ``AUTH``.
    :attr:`info` goes in the ``HELLO`` (the interpreter's pid and state)."""

    info: dict[str, Any] = {}

    def hello(self) -> bytes:
        """The first frame on a new connection."""
        body: dict[str, Any] = {"proto": PROTO, "versions": list(self.versions)}
        body.update(nonce=self.nonce)
        body.update(kernel_id=self.kernel_id, stream=self.stream, info=self.info)
        return encode_frame(Kind.HELLO, 0, 0, json_body(body))

    def receive(self, frame: Frame) -> tuple[bytes, Resumed]:
        """The ``WELCOME`` to send and the resumption, or :class:`LinkRefused`."""
        auth = _expect(frame, Kind.AUTH)
        version = auth.get("version")
        if version not in self.versions:
            raise _refuse(f"link version {version!r} is not one of {list(self.versions)}")
        dialer_nonce, stream = _text(auth, "nonce"), _text(auth, "stream")
        expected = handshake_mac(
            self.secret, "dialer", version, self.nonce, dialer_nonce, self.kernel_id
        )
        if not hmac.compare_digest(expected, str(auth.get("mac", ""))):
            raise _refuse("authentication failed")
        peer_next = _seq(auth, "next")
        mac = handshake_mac(
            self.secret, "listener", version, self.nonce, dialer_nonce, self.kernel_id
        )
        welcome = {"mac": mac, "next": self.inbound.next_for(stream)}
        self.inbound.start(stream)
        reply = encode_frame(Kind.WELCOME, 0, 0, json_body(welcome))
        return reply, Resumed(version, stream, peer_next, {})


class DialerHandshake(_Side):
    """The service's side: :meth:`receive` the ``HELLO``, then the ``WELCOME``."""

    _hello: dict[str, Any] | None = None
    _version = 0

    def receive(self, frame: Frame) -> tuple[bytes, Resumed | None]:
        """The frame to send (``AUTH``, or nothing once done) and, at the end, the
        resumption; or :class:`LinkRefused`."""
        if self._hello is None:
            return self._auth(_expect(frame, Kind.HELLO)), None
        welcome = _expect(frame, Kind.WELCOME)
        hello = self._hello
        mac = handshake_mac(
            self.secret, "listener", self._version, hello["nonce"], self.nonce, self.kernel_id
        )
        if not hmac.compare_digest(mac, str(welcome.get("mac", ""))):
            raise _refuse("the keeper did not prove the kernel's secret")
        peer_next = _seq(welcome, "next")
        self.inbound.start(hello["stream"])
        info = hello.get("info")
        return b"", Resumed(
            self._version, hello["stream"], peer_next, info if isinstance(info, dict) else {}
        )

    def _auth(self, hello: dict[str, Any]) -> bytes:
        if hello.get("proto") != PROTO:
            raise _refuse("not an ipytwist link")
        if _text(hello, "kernel_id") != self.kernel_id:
            raise _refuse("this socket belongs to another kernel")
        offered = hello.get("versions")
        common = [v for v in self.versions if isinstance(offered, list) and v in offered]
        if not common:
            raise _refuse(f"no common link version (ours {list(self.versions)})")
        nonce, stream = _text(hello, "nonce"), _text(hello, "stream")
        self._hello = {**hello, "nonce": nonce, "stream": stream}
        self._version = max(common)
        mac = handshake_mac(self.secret, "dialer", self._version, nonce, self.nonce, self.kernel_id)
        body: dict[str, Any] = {"version": self._version, "nonce": self.nonce, "mac": mac}
        body.update(stream=self.stream, next=self.inbound.next_for(stream))
        return encode_frame(Kind.AUTH, 0, 0, json_body(body))
