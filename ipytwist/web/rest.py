"""The REST API as Jupyter Server's GatewayClient calls it (``/api/...``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET, Request

from .. import __version__
from ..host import (
    HostedKernel,
    KernelHost,
    KernelNotStarted,
    ResourceLimit,
    UnknownKernelSpec,
    iso_time,
)
from ..kernel import ipynb
from ..wire import BadJSON, loads_untrusted
from .chunked import ChunkedResponse, json_chunks, text_chunks

_T = TypeVar("_T")


class ApiError(Exception):
    """An API request refused: HTTP status, reason and message."""

    def __init__(self, code: int, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.code = code
        self.reason = reason
        self.message = message or reason


def json_head(request: Request, code: int) -> None:
    """Status ``code`` and the headers of a JSON answer."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")


def write_json(request: Request, code: int, body: Any) -> bytes:
    """Answer with ``body`` as JSON and status ``code`` (no body for 204)."""
    json_head(request, code)
    if code == 204:
        return b""
    return json.dumps(body).encode()


def error_body(request: Request, err: ApiError) -> bytes:
    """Answer with ``err`` as Jupyter Server writes an error."""
    return write_json(request, err.code, {"reason": err.reason, "message": err.message})


def _json_body(request: Request) -> dict[str, Any]:
    raw = request.content.read() if request.content is not None else b""
    if not raw.strip():
        return {}
    try:
        body = loads_untrusted(raw)
    except BadJSON as e:
        raise ApiError(400, "Bad Request", f"request body is not accepted: {e}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Bad Request", "request body must be a JSON object")
    return body


class KernelsApi:
    """Handlers for ``/api``; each returns bytes or NOT_DONE_YET (an int)."""

    log = Logger()

    def __init__(self, host: KernelHost) -> None:
        self.host = host
        self.started = host.reactor.seconds()

    def dispatch(self, request: Request, parts: list[str]) -> bytes | int:
        """Answer one API request (``parts``: its path below ``/api``)."""
        method = request.method.decode()
        try:
            return self._route(request, method, parts)
        except ApiError as e:
            return error_body(request, e)

    def _route(self, request: Request, method: str, parts: list[str]) -> bytes | int:
        n = len(parts)
        if n == 0 and method == "GET":
            return write_json(request, 200, {"version": __version__})
        if parts[:1] == ["status"] and n == 1 and method == "GET":
            return write_json(request, 200, self._status())
        if parts[:1] == ["kernelspecs"]:
            if method != "GET" or n > 2:
                raise self._not_allowed_or_found(method, n <= 2)
            specs = self.host.specs()
            if n == 1:
                return write_json(request, 200, specs)
            spec = specs["kernelspecs"].get(parts[1])
            if spec is None:
                raise ApiError(404, "Not Found", f"no such kernelspec: {parts[1][:64]}")
            return write_json(request, 200, spec)
        if parts[:1] == ["kernels"]:
            if n == 1:
                if method == "GET":
                    return write_json(request, 200, [hk.model() for hk in self._kernels()])
                if method == "POST":
                    return self._create(request)
                raise ApiError(405, "Method Not Allowed")
            hk = self._kernel(parts[1])
            if n == 2:
                if method == "GET":
                    return write_json(request, 200, hk.model())
                if method == "DELETE":
                    return self._delete(request, hk)
                raise ApiError(405, "Method Not Allowed")
            if n == 3 and parts[2] in ("interrupt", "restart"):
                if method != "POST":
                    raise ApiError(405, "Method Not Allowed")
                if parts[2] == "interrupt":
                    hk.kernel.interrupt()
                    return write_json(request, 204, None)
                return self._restart(request, hk)
            if n == 3 and parts[2] in ("transcript", "transcript.ipynb"):
                return self._transcript(request, method, hk, notebook=parts[2].endswith("ipynb"))
            if n == 6 and parts[2:4] == ["transcript", "cells"] and parts[5] == "output":
                if method != "GET":
                    raise ApiError(405, "Method Not Allowed")
                text = hk.transcript.full_output(parts[4], hk.kernel.output_log)
                if text is None:
                    raise ApiError(404, "Not Found", "no such cell in the transcript")
                request.setHeader(b"content-type", b"text/plain; charset=utf-8")
                request.setHeader(b"cache-control", b"no-store")
                return self._chunked(request, text_chunks(text))
        raise ApiError(404, "Not Found", "no such API endpoint")

    def _transcript(
        self, request: Request, method: str, hk: HostedKernel, notebook: bool
    ) -> bytes | int:
        """The kernel's transcript: JSON for the page (then live from ``last_msg_id``),
        an nbformat 4 download, or DELETE to clear it."""
        transcript = hk.transcript
        if method == "DELETE" and not notebook:
            transcript.clear()
            return write_json(request, 204, None)
        if method != "GET":
            raise ApiError(405, "Method Not Allowed")
        # A snapshot now; its JSON is written a slice per reactor turn.
        body = transcript.to_json()
        widgets: tuple[str, ...] = ("widgets", "state")
        if notebook:
            name = f"ipytwist-{hk.id[:8]}.ipynb"
            request.setHeader(b"content-disposition", f'attachment; filename="{name}"'.encode())
            body = ipynb.notebook(body, hk.kernel.name)
            widgets = ("metadata", "widgets", ipynb.WIDGET_STATE_MIME, "state")
        else:
            body["kernel"] = hk.model()
        json_head(request, 200)
        return self._chunked(request, json_chunks(body, "cells", widgets))

    def _chunked(self, request: Request, chunks: Iterator[bytes]) -> int:
        """Answer with ``chunks``, a slice of work per reactor turn."""
        return ChunkedResponse(self.host.reactor, request, chunks).start()

    @staticmethod
    def _not_allowed_or_found(method: str, exists: bool) -> ApiError:
        return ApiError(405, "Method Not Allowed") if exists else ApiError(404, "Not Found")

    def _kernels(self) -> list[HostedKernel]:
        return list(self.host.kernels.values())

    def _kernel(self, kernel_id: str) -> HostedKernel:
        try:
            uuid.UUID(kernel_id)
        except ValueError:
            raise ApiError(404, "Not Found", "kernel ids are UUIDs") from None
        hk = self.host.get(kernel_id)
        if hk is None:
            raise ApiError(404, "Not Found", f"no such kernel: {kernel_id}")
        return hk

    def _status(self) -> dict[str, Any]:
        kernels = self._kernels()
        last = max([self.started] + [hk.kernel.last_activity for hk in kernels])
        return {
            "started": iso_time(self.started),
            "last_activity": iso_time(last),
            "kernels": len(kernels),
            "connections": sum(hk.connections() for hk in kernels),
            "warm_kernels": self.host.warm_count(),
        }

    def _create(self, request: Request) -> bytes:
        body = _json_body(request)
        name = body.get("name")
        if name is not None and not isinstance(name, str):
            raise ApiError(400, "Bad Request", "name must be a string")
        try:
            hk = self.host.start_kernel(name)
        except UnknownKernelSpec:
            raise ApiError(404, "Not Found", f"no such kernelspec: {str(name)[:64]}") from None
        except ResourceLimit as e:
            raise ApiError(403, "Resource Limit", str(e)) from None
        except KernelNotStarted as e:
            raise ApiError(500, "Internal Server Error", f"kernel not started: {e}") from None
        request.setHeader(b"location", f"{self.host.config.base_url}api/kernels/{hk.id}".encode())
        return write_json(request, 201, hk.model())

    def _delete(self, request: Request, hk: HostedKernel) -> bytes | int:
        d = self.host.shutdown_kernel(hk.id)
        return self._later(request, d, lambda _: write_json(request, 204, None))

    def _restart(self, request: Request, hk: HostedKernel) -> bytes | int:
        d = hk.kernel.restart()
        return self._later(request, d, lambda _: write_json(request, 200, hk.model()))

    def _later(self, request: Request, d: Deferred[_T], make: Callable[[_T], bytes]) -> int:
        finished = []
        request.notifyFinish().addErrback(lambda _: finished.append(True))

        def respond(result: _T) -> None:
            if not finished:
                request.write(make(result))
                request.finish()

        def failed(f: Failure) -> None:
            self.log.warn("API call failed: {e}", e=f.getErrorMessage())
            if not finished:
                request.write(
                    error_body(request, ApiError(500, "Internal Server Error", f.getErrorMessage()))
                )
                request.finish()

        d.addCallbacks(respond, failed)
        return NOT_DONE_YET
