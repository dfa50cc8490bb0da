"""The bundled web assets (``ipytwist/web/static/``), served from the installed package.

The files are read once, at start. Each is served with an ETag; a URL that names
the file's current version (``?v=``, see :meth:`StaticFiles.url`) may be cached for
good, any other is revalidated. Gzip is offered to clients that accept it.
"""

from __future__ import annotations

import gzip
import hashlib
from importlib import resources
from importlib.resources.abc import Traversable

from twisted.web.server import Request

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
}
COMPRESSIBLE = (".js", ".css", ".txt", ".svg")
FOREVER = b"public, max-age=31536000, immutable"


class Asset:
    """One file: its bytes, type, version tag and (lazily) its gzip encoding."""

    def __init__(self, name: str, body: bytes) -> None:
        self.name = name
        self.body = body
        self.content_type = next(
            (t for ext, t in CONTENT_TYPES.items() if name.endswith(ext)),
            "application/octet-stream",
        )
        self.version = hashlib.sha256(body).hexdigest()[:16]
        self.etag = f'"{self.version}"'.encode()
        self._gzipped: bytes | None = None

    @property
    def gzipped(self) -> bytes | None:
        """The body gzip-compressed, for compressible files of 1 KiB or more; else None."""
        if not self.name.endswith(COMPRESSIBLE) or len(self.body) < 1024:
            return None
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, 6, mtime=0)
        return self._gzipped


def _walk(folder: Traversable, prefix: str = "") -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    for entry in folder.iterdir():
        if entry.name.startswith("."):
            continue
        name = prefix + entry.name
        if entry.is_dir():
            found.update(_walk(entry, name + "/"))
        elif entry.is_file():
            found[name] = Asset(name, entry.read_bytes())
    return found


def package_static() -> Traversable:
    """The installed package's ``static`` directory."""
    return resources.files("ipytwist.web").joinpath("static")


class StaticFiles:
    """``<base>static/<name>``: only the files found at start, nothing else on disk."""

    def __init__(self, folder: Traversable | None = None, base: str = "/") -> None:
        self.base = base
        folder = folder if folder is not None else package_static()
        self.assets = _walk(folder) if folder.is_dir() else {}

    def url(self, name: str) -> str:
        """The address of ``name`` at its current version (cacheable for good)."""
        asset = self.assets.get(name)
        return f"{self.base}static/{name}" + (f"?v={asset.version}" if asset else "")

    def render(self, request: Request, parts: list[str]) -> bytes:
        """Serve ``parts`` (the path below ``/static/``); GET and HEAD only."""
        asset = self.assets.get("/".join(parts))
        if asset is None:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"Not Found"
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            request.setHeader(b"allow", b"GET, HEAD")
            return b""
        request.setHeader(b"etag", asset.etag)
        version = (request.args.get(b"v") or [b""])[0].decode("ascii", "replace")
        request.setHeader(b"cache-control", FOREVER if version == asset.version else b"no-cache")
        request.setHeader(b"vary", b"accept-encoding")
        if request.getHeader(b"if-none-match") == asset.etag:
            request.setResponseCode(304)
            return b""
        request.setHeader(b"content-type", asset.content_type.encode())
        body = asset.body
        zipped = asset.gzipped
        if zipped is not None and b"gzip" in (request.getHeader(b"accept-encoding") or b""):
            request.setHeader(b"content-encoding", b"gzip")
            body = zipped
        return body
