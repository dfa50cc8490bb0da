"""Behind a reverse proxy: the client as the proxy describes it, believed only when the
request comes from a trusted proxy (``--trusted-proxy``).

A request whose TCP peer is trusted is rewritten as the client made it, before anything
looks at it: its client address (the login rate limit, the access log), its scheme
(``Secure`` cookies, same-origin checks) and its host (same-origin checks, the page's
policy). The proxy says so in ``X-Forwarded-For`` (walked from the right: the first
address that is not itself a trusted proxy is the client), ``X-Forwarded-Proto`` and
``X-Forwarded-Host``; or, when it sends none of these, in the standard
``Forwarded`` header (``for=``, ``proto=``, ``host=``).  Nothing is trusted by default,
and these headers from anyone else change nothing.  The headers are read from the
nearest proxy outwards, only as far as the walk goes: what the client wrote beyond its
own address is never parsed; a malformed value met before it ends the walk (one line,
rate-limited, never the value).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.usage import UsageError

from ..loglimit import LimitedLog

log = Logger()

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: A host as ``Host`` carries it: a name or address, a bracketed IPv6 address, a port.
HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
_PAIR = re.compile(r'\s*([A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,"\s]*)\s*')


def parse_network(text: str) -> Network:
    """``text`` (an IPv4 or IPv6 address, or a network in CIDR notation) as a network;
    ValueError says why not."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or network (CIDR)") from None


def trusted_proxy_option(text: str) -> str:
    """``--trusted-proxy`` checked: the network it names, or a UsageError."""
    try:
        return str(parse_network(text))
    except ValueError as e:
        raise UsageError(f"--trusted-proxy: {e}") from None


def _address(text: str) -> Address | None:
    """An address as a proxy writes it (``1.2.3.4``, ``1.2.3.4:80``, ``::1``,
    ``[::1]:80``), or None."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        found = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


@dataclass(frozen=True)
class Hop:
    """One proxy's word on whom it heard from: the address (None: not given as an
    address, e.g. ``unknown``), and the scheme and host that client used."""

    address: Address | None
    proto: str | None = None
    host: str | None = None


class Malformed(ValueError):
    """A forwarding header that cannot be read (its value is never kept)."""


def _last(values: list[bytes] | None) -> str | None:
    if not values:
        return None
    return b",".join(values).decode("latin-1").split(",")[-1].strip() or None


def _check(proto: str | None, host: str | None) -> tuple[str | None, str | None]:
    if proto is not None:
        proto = proto.lower()
        if proto not in ("http", "https"):
            raise Malformed("proto")
    if host is not None and not HOST.fullmatch(host):
        raise Malformed("host")
    return proto, host


def x_forwarded(headers: Any) -> Iterator[Hop]:
    """The hops ``X-Forwarded-For/-Proto/-Host`` describe, nearest first (the scheme
    and host: the nearest proxy's word, on its hop); each address read only when the
    walk reaches it."""
    proto, host = _check(
        _last(headers.getRawHeaders(b"x-forwarded-proto")),
        _last(headers.getRawHeaders(b"x-forwarded-host")),
    )
    raw = headers.getRawHeaders(b"x-forwarded-for")
    entries = b",".join(raw).decode("latin-1").split(",") if raw else []
    if not entries:
        yield Hop(None, proto, host)  # (no address: a scheme or host alone)
    for n, entry in enumerate(reversed(entries)):
        address = _address(entry)
        if address is None:
            raise Malformed("for")
        yield Hop(address, proto, host) if n == 0 else Hop(address)


def forwarded(headers: Any) -> Iterator[Hop]:
    """The hops the standard ``Forwarded`` header (RFC 7239) describes, nearest first;
    each element read only when the walk reaches it."""
    elements = b",".join(headers.getRawHeaders(b"forwarded")).decode("latin-1").split(",")
    for element in reversed(elements):
        pairs: dict[str, str] = {}
        for part in element.split(";"):
            match = _PAIR.fullmatch(part)
            if match is None:
                raise Malformed("forwarded")
            value = match.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            pairs[match.group(1).lower()] = value
        proto, host = _check(pairs.get("proto"), pairs.get("host"))
        yield Hop(_address(pairs["for"]) if "for" in pairs else None, proto, host)


class TrustedProxies:
    """The proxies whose forwarding headers are believed, and the rewriting of a
    request from one of them."""

    def __init__(self, networks: Iterable[str], clock: IReactorTime) -> None:
        self.networks = [parse_network(n) for n in networks]
        self.bad = LimitedLog(log, clock)

    def trusts(self, address: Address | None) -> bool:
        """Whether ``address`` is one of the trusted proxies."""
        return address is not None and any(address in net for net in self.networks)

    def hops(self, request: Any) -> Iterator[Hop]:
        """What the request's forwarding headers say, nearest hop first (nothing: no
        such header); a malformed value ends them, with one line (rate-limited)."""
        headers = request.requestHeaders
        if any(headers.hasHeader(b"x-forwarded-" + h) for h in (b"for", b"proto", b"host")):
            walk = x_forwarded(headers)
        elif headers.hasHeader(b"forwarded"):
            walk = forwarded(headers)
        else:
            return
        try:
            yield from walk
        except Malformed as e:
            self.bad.warn(
                "ignored a malformed forwarding header ({what}) from proxy {peer}",
                "forwarded",
                what=str(e),
                peer=getattr(request.getClientAddress(), "host", "?"),
            )

    def apply(self, request: Any) -> None:
        """Make ``request`` the client's, as the trusted proxies in front of it say; a
        request from anyone else is left as it is."""
        if not self.networks:
            return
        peer = _address(getattr(request.getClientAddress(), "host", ""))
        if peer is None or not self.trusts(peer):
            return
        client: Address = peer
        proto, host = None, None
        for hop in self.hops(request):  # walked from the nearest proxy
            proto, host = hop.proto or proto, hop.host or host
            if hop.address is None:
                break  # (none, ``unknown``, or hidden): the last proxy is all we know
            client = hop.address
            if not self.trusts(client):
                break
        if client != peer:
            kind = IPv6Address if client.version == 6 else IPv4Address
            request.client = kind("TCP", str(client), 0)
        if proto is not None or host is not None:
            _set_host(request, proto, host)


def _set_host(request: Any, proto: str | None, host: str | None) -> None:
    """The scheme and host the client used, as Twisted's ``Request.setHost`` records
    them for reverse proxies (``isSecure()``, the ``Host`` header)."""
    secure = proto == "https" if proto is not None else bool(request.isSecure())
    if host is None:
        host = (request.getHeader(b"host") or b"").decode("latin-1")
        if not HOST.fullmatch(host):
            host = ""
    name, port = host, 443 if secure else 80
    if host.rpartition(":")[2].isdigit() and not host.endswith("]"):
        name, _, digits = host.rpartition(":")
        port = int(digits)
    if not name:  # (no usable Host: the address the request came in on)
        name = getattr(request.getHost(), "host", "localhost")
    request.setHost(name.encode("ascii"), port, ssl=secure)
