"""The debugger: ``debug_request`` on the control channel, served by debugpy in the
worker, as ipykernel serves it (the commands JupyterLab's debugger panel sends).

The first ``initialize`` asks the worker to start debugpy's listener (a request of
the worker's queue, as ipykernel runs one on its shell), then connects to it over
TCP.  Most commands are forwarded; the kernel answers ``debugInfo``, ``dumpCell``
(the cell's code written where the worker compiles it), ``source`` and
``configurationDone`` itself, and the variables of a worker not stopped at a
breakpoint are asked of the worker.  debugpy's events go to iopub as
``debug_event``.  A breakpoint stops only the worker: the kernel goes on serving.
"""

from __future__ import annotations

import ast
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..dap import (
    HASH_SEED,
    cell_dir,
    cell_path,
    frame_path,
    make_cell_dir,
    response,
    rich_response,
    shown_variable,
    well_formed,
)
from ..loglimit import LimitedLog
from .dapclient import Connect, DapConnection, tcp_connect
from .publish import Publisher
from .requests import Request

__all__ = ["Connect", "Debugger"]

Dap = dict[str, Any]
#: Runs one of the debugger's worker requests; fires with the worker's reply content.
RunWorker = Callable[[str, dict[str, Any]], "Deferred[dict[str, Any]]"]
#: Frames of ipytwist's own code are hidden from the stack.
#: The largest file ``source`` reads.
MAX_SOURCE_BYTES = 16 << 20
#: Commands that resume a stopped thread.
_RESUMING = ("continue", "next", "stepIn", "stepOut", "stepBack", "reverseContinue", "goto")
_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


class Debugger:
    """One kernel's debugger: its debugpy session and what the panel was told.

    ``answer`` publishes each debug_reply between busy and idle parented to its request,
    even while a cell runs (as ipykernel does): JupyterLab's debugger waits for each
    request's idle, and its status indicator ignores these."""

    log = Logger()

    def __init__(
        self,
        run_worker: RunWorker,
        answer: Callable[[Request, Dap], None],
        out: Publisher,
        rejects: LimitedLog,
        worker_pid: Callable[[], int | None],
        connect: Connect | None = None,
    ) -> None:
        self._run_worker = run_worker
        self._answer = answer
        self._out = out
        self._connect = connect or tcp_connect()
        self._rejects = rejects
        self._client: DapConnection | None = None
        self._starting: list[Deferred[None]] | None = None
        self._client_pid: int | None = None
        self._internal: list[str] = []
        self._endpoint: tuple[str, int] = ("127.0.0.1", 0)
        self._worker_pid = worker_pid
        self.breakpoints: dict[str, list[Dap]] = {}
        self.stopped_threads: set[int] = set()
        self._local: dict[str, Callable[[Dap], Dap]] = {
            "debugInfo": self._debug_info,
            "dumpCell": self._dump_cell,
            "source": self._source,
            "configurationDone": lambda m: response(m),
        }
        self._started_only: dict[str, Callable[[Dap], Dap | Deferred[Dap]]] = {
            "attach": self._attach,
            "setBreakpoints": self._set_breakpoints,
            "variables": self._variables,
            "inspectVariables": self._inspect_variables,
            "richInspectVariables": self._rich_inspect,
            "copyToGlobals": self._copy_to_globals,
            "modules": self._modules,
        }

    @property
    def started(self) -> bool:
        """Connected to the debugpy of the current interpreter."""
        if self._client is not None and self._client_pid != self._worker_pid():
            self._disconnected(None)  # a session with an interpreter since replaced
        return self._client is not None

    def handle(self, request: Request) -> None:
        """Answer one ``debug_request`` with a ``debug_reply``."""
        content = request.msg.get("content")
        if not well_formed(content):
            self._rejects.warn("malformed debug_request", "debug_request")
            reply = {"type": "response", "request_seq": 0, "command": "", "success": False}
            reply["message"] = "malformed debug_request: not a DAP request"
            self._answer(request, reply)
            return
        message = cast(Dap, content)
        d: Deferred[Dap] = maybeDeferred(self._dispatch, message)  # type: ignore[call-overload] # a Dap or a Deferred of one
        d.addErrback(self._failed, message)
        d.addCallback(lambda reply: self._answer(request, reply))

    def _failed(self, failure: Failure, message: Dap) -> Dap:
        why = f"{failure.value.__class__.__name__}: {failure.getErrorMessage()}"[:200]
        self.log.warn("debug_request {c} failed: {why}", c=message["command"][:64], why=why)
        return response(message, False, message=why)

    def _dispatch(self, message: Dap) -> Dap | Deferred[Dap]:
        command = message["command"]
        local = self._local.get(command)
        if local is not None:
            return local(message)
        if command == "initialize":
            return self._start().addCallback(lambda _: self._forward(message))
        if not self.started:
            return response(message, False, message="the debugger is not started")
        handler = self._started_only.get(command)
        if command == "disconnect":
            return self._forward(message).addBoth(self._disconnected)
        if command in _RESUMING:
            return self._forward(message).addCallback(self._resumed, message)
        if handler is None:
            return self._forward(message)
        return handler(message)

    def resume(self, then: Callable[[], object]) -> None:
        """Call ``then`` (the interrupt) once no thread is stopped: SIGINT landing in
        debugpy's wait at a breakpoint would leave it unable to stop there again."""
        if not self.stopped_threads or self._client is None:
            then()
            return
        arguments = {"threadId": min(self.stopped_threads)}
        request = {"type": "request", "seq": 0, "command": "continue", "arguments": arguments}
        d = self._forward(request).addCallback(self._resumed, request)
        d.addBoth(lambda _: then())

    # -- the session with debugpy ---------------------------------------------

    def _start(self) -> Deferred[None]:
        if self.started:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        if self._starting is not None:  # one start for initializes sent together
            self._starting.append(waiter)
            return waiter
        self._starting = [waiter]
        d = self._run_worker("debug_listen_request", {}).addCallback(self._listening)
        d.addBoth(self._started)
        return waiter

    def _started(self, result: None | Failure) -> None:
        waiters, self._starting = self._starting or [], None
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(None)

    def _listening(self, reply: dict[str, Any]) -> Deferred[None]:
        if reply.get("status") != "ok":
            raise RuntimeError(f"debugpy did not start: {reply.get('evalue', '')}"[:200])
        self._endpoint = (str(reply["host"]), int(reply["port"]))
        self._client_pid = reply.get("pid")
        internal = reply.get("internal")
        self._internal = (
            [p for p in internal if isinstance(p, str)] if isinstance(internal, list) else []
        )
        client = DapConnection(self._event, self._lost)
        d = self._connect(self._endpoint[0], self._endpoint[1], client)
        return d.addCallback(lambda c: setattr(self, "_client", c))

    def _forward(self, message: Dap) -> Deferred[Dap]:
        if self._client is None:
            return succeed(response(message, False, message="the debugger is not started"))

        def restore(reply: Dap) -> Dap:
            reply["request_seq"] = message["seq"]
            return reply

        return self._client.request(message).addCallback(restore)

    def _event(self, event: Dap) -> None:
        body = event.get("body") if isinstance(event.get("body"), dict) else {}
        assert isinstance(body, dict)
        if event.get("event") == "initialized" and self._client is not None:
            # debugpy answers attach once configured; the panel's configurationDone
            # is answered by the kernel (as on ipykernel), so the kernel sends its own.
            self._client.request({"type": "request", "command": "configurationDone"})
        elif event.get("event") == "stopped" and isinstance(body.get("threadId"), int):
            self.stopped_threads.add(body["threadId"])
        elif event.get("event") == "continued":
            if body.get("allThreadsContinued", True):
                self.stopped_threads.clear()
            else:
                self.stopped_threads.discard(body.get("threadId"))
        self._out.publish("debug_event", event, None)

    def _resumed(self, reply: Dap, message: Dap) -> Dap:
        # debugpy sends no ``continued`` event for a thread the client resumed.
        if reply.get("success"):
            body = reply.get("body") if isinstance(reply.get("body"), dict) else {}
            if message["command"] == "continue" and (body or {}).get("allThreadsContinued", True):
                self.stopped_threads.clear()
            else:
                self.stopped_threads.discard(message["arguments"].get("threadId"))
        return reply

    def _lost(self) -> None:
        self._client = None
        self.stopped_threads.clear()

    def _disconnected(self, result: Any) -> Any:
        client, self._client = self._client, None
        if client is not None:
            client.close()
        self.breakpoints.clear()
        self.stopped_threads.clear()
        return result

    # -- commands the kernel shapes -------------------------------------------

    def _attach(self, message: Dap) -> Deferred[Dap]:
        arguments = dict(message.get("arguments") or {})
        host, port = self._endpoint
        arguments["connect"] = {"host": host, "port": port}
        arguments["debugOptions"] = ["DebugStdLib"]
        hidden = [_PACKAGE_DIR, *self._internal]  # IPython's frames and ours, as ipykernel
        arguments["rules"] = [{"path": path, "include": False} for path in hidden]
        return self._forward({**message, "arguments": arguments})

    def _set_breakpoints(self, message: Dap) -> Deferred[Dap]:
        source = (message["arguments"].get("source") or {}).get("path")

        def record(reply: Dap) -> Dap:
            if reply.get("success") and isinstance(source, str):
                found = reply.get("body", {}).get("breakpoints", [])
                self.breakpoints[source] = [{"line": b.get("line")} for b in found]
            return reply

        return self._forward(message).addCallback(record)

    def _variables(self, message: Dap) -> Dap | Deferred[Dap]:
        if not self.stopped_threads:
            return response(message, body={"variables": []})

        def hide(reply: Dap) -> Dap:
            found = reply.get("body", {}).get("variables", [])
            reply.setdefault("body", {})["variables"] = [
                v for v in found if shown_variable(str(v.get("name", "")))
            ]
            return reply

        return self._forward(message).addCallback(hide)

    def _inspect_variables(self, message: Dap) -> Deferred[Dap]:
        if self.stopped_threads:  # the worker's main thread cannot answer: debugpy does
            return Deferred.fromCoroutine(self._stopped_globals(message))
        d = self._run_worker("debug_variables_request", {})
        return d.addCallback(lambda r: response(message, body={"variables": r["variables"]}))

    async def _stopped_globals(self, message: Dap) -> Dap:
        """The user's globals while a thread is stopped: those of the outermost frame
        of a cell (the first frame's if no cell is on the stack)."""
        stack = await self._ask("stackTrace", threadId=min(self.stopped_threads))
        frames = stack.get("body", {}).get("stackFrames") or []
        cells = [f for f in frames if frame_path(f).startswith(cell_dir(self._pid) + os.sep)]
        variables: list[Dap] = []
        if frames:
            scopes = await self._ask("scopes", frameId=(cells or frames[:1])[-1]["id"])
            found = scopes.get("body", {}).get("scopes") or []
            refs = [s["variablesReference"] for s in found if s.get("name") == "Globals"]
            if refs:
                reply = await self._ask("variables", variablesReference=refs[0])
                variables = reply.get("body", {}).get("variables") or []
        shown = [v for v in variables if shown_variable(str(v.get("name", "")))]
        return response(message, body={"variables": shown})

    def _ask(self, command: str, **arguments: Any) -> Deferred[Dap]:
        """A request of the kernel's own to debugpy."""
        request = {"type": "request", "seq": 0, "command": command, "arguments": arguments}
        return self._forward(request)

    def _rich_inspect(self, message: Dap) -> Dap | Deferred[Dap]:
        name = message["arguments"].get("variableName")
        if not isinstance(name, str) or not name.isidentifier():
            ok = name in ("special variables", "function variables")
            return response(message, ok, body={"data": {}, "metadata": {}})
        if not self.stopped_threads:
            d = self._run_worker("debug_rich_request", {"name": name})
            return d.addCallback(lambda r: rich_response(message, r.get("data"), r.get("metadata")))
        evaluate = {
            "type": "request",
            "command": "evaluate",
            "seq": message["seq"],
            "arguments": {
                "expression": f"get_ipython().display_formatter.format({name})",
                "frameId": message["arguments"].get("frameId"),
                "context": "clipboard",
            },
        }

        def shaped(reply: Dap) -> Dap:
            if not reply.get("success"):
                return rich_response(message, {}, {})
            data, metadata = ast.literal_eval(reply["body"]["result"])
            return rich_response(message, data, metadata)

        return self._forward(evaluate).addCallback(shaped)

    @property
    def _pid(self) -> int:
        """The interpreter's process id: its cell files are named after it."""
        return self._worker_pid() or 0

    def _copy_to_globals(self, message: Dap) -> Dap | Deferred[Dap]:
        arguments = message["arguments"]
        src, dst = arguments.get("srcVariableName"), arguments.get("dstVariableName")
        if not (isinstance(src, str) and isinstance(dst, str)):
            return response(message, False, message="variable names must be strings")
        if not (src.isidentifier() and dst.isidentifier()):
            return response(message, False, message="variable names must be identifiers")
        expression = {"expression": f"globals()['{dst}']", "value": src}
        arguments = {**expression, "frameId": arguments.get("srcFrameId")}
        return self._forward(
            {
                "type": "request",
                "command": "setExpression",
                "seq": message["seq"],
                "arguments": arguments,
            }
        )

    def _modules(self, message: Dap) -> Deferred[Dap]:
        arguments = message["arguments"]
        paging = {k: arguments.get(k) for k in ("startModule", "moduleCount")}
        d = self._run_worker("debug_modules_request", paging)
        return d.addCallback(
            lambda r: response(message, body={k: r.get(k) for k in ("modules", "totalModules")})
        )

    def _debug_info(self, message: Dap) -> Dap:
        return response(
            message,
            body={
                "isStarted": self.started,
                "hashMethod": "Murmur2",
                "hashSeed": HASH_SEED,
                "tmpFilePrefix": cell_dir(self._pid) + os.sep,
                "tmpFileSuffix": ".py",
                "breakpoints": [
                    {"source": k, "breakpoints": v} for k, v in self.breakpoints.items()
                ],
                "stoppedThreads": sorted(self.stopped_threads),
                "richRendering": True,
                "exceptionPaths": ["Python Exceptions"],
                "copyToGlobals": True,
            },
        )

    def _dump_cell(self, message: Dap) -> Dap:
        code = message["arguments"].get("code")
        if not isinstance(code, str):
            return response(message, False, message="dumpCell needs the cell's code")
        path = cell_path(code, self._pid)
        make_cell_dir(self._pid)
        with open(path, "w", encoding="utf-8") as f:
            f.write(code)
        return response(message, body={"sourcePath": path})

    def _source(self, message: Dap) -> Dap:
        path = (message["arguments"].get("source") or {}).get("path")
        if isinstance(path, str):  # any file, as on ipykernel: clients here run code anyway
            try:  # but not a FIFO or a device, which would hold the reactor, nor a huge one
                with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), encoding="utf-8") as f:
                    st = os.fstat(f.fileno())
                    if stat.S_ISREG(st.st_mode) and st.st_size <= MAX_SOURCE_BYTES:
                        return response(message, body={"content": f.read(MAX_SOURCE_BYTES)})
            except OSError:
                pass
        return response(message, False, message="source unavailable", body={})
