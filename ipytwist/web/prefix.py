"""The URL prefix everything is served under (``--base-url``, e.g. ``/user/alice/``).

A prefix is a plain absolute path that starts and ends with ``/``: no scheme, host,
query, fragment, empty segment or dot segment, so that no request, redirect or
cookie built from it can point anywhere but below it.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, unquote_to_bytes

__all__ = ["normalise_base_url", "prefix_segments", "under_prefix"]

#: The characters of an RFC 3986 path (unreserved, sub-delims, ":", "@", "/", "%").
_PATH_CHARS = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@%/-]*")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def normalise_base_url(text: str) -> str:
    """``text`` as a prefix starting and ending with ``/``; a ValueError saying why it
    is not a plain path otherwise (``""`` and ``"/"`` are the root)."""
    if _SCHEME.match(text) or text.startswith("//"):
        raise ValueError(f"{text!r} is not a path (no scheme or host: e.g. /user/alice/)")
    if "?" in text or "#" in text:
        raise ValueError(f"{text!r} has a query or fragment (a plain path only)")
    if not _PATH_CHARS.fullmatch(text) or _BAD_ESCAPE.search(text):
        raise ValueError(f"{text!r} has characters a URL path cannot carry unescaped")
    base = "/" + text.strip("/") + "/" if text.strip("/") else "/"
    segments = base[1:-1].split("/") if base != "/" else []
    for segment in segments:
        plain = unquote(segment)
        if not segment or plain in (".", "..") or "/" in plain or "\\" in plain:
            raise ValueError(f"{text!r} has an empty, '.', '..' or escaped-slash segment")
    return base


def prefix_segments(base: str) -> list[bytes]:
    """The path segments of ``base`` as twisted.web gives them in ``request.postpath``
    (percent-escapes decoded)."""
    return [unquote_to_bytes(s) for s in base.strip("/").split("/")] if base != "/" else []


def under_prefix(path: str, base: str) -> bool:
    """Whether the absolute path ``path`` stays below ``base`` (no dot segment may
    climb out of it once a browser resolves it)."""
    if not path.startswith(base):
        return False
    return all(unquote(s) not in (".", "..") for s in path.split("?", 1)[0].split("/"))
