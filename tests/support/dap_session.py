"""Steps of JupyterLab's debugger sequence, for any client whose ``debug(command,
**arguments)`` sends a ``debug_request`` and returns its reply's content (over
jupyter_client, the service's WebSocket, or jupyter_server's gateway)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

DebugRequest = Callable[..., dict[str, Any]]


def break_in(debug: DebugRequest, code: str, line: int, **initialize: Any) -> str:
    """initialize, attach, the cell dumped, a breakpoint at its ``line``, then
    configurationDone, as the panel does before a cell runs; the cell's source path."""
    assert debug("initialize", **initialize)["success"]
    assert debug("attach")["success"]
    path = str(debug("dumpCell", code=code)["body"]["sourcePath"])
    debug("setBreakpoints", source={"path": path}, breakpoints=[{"line": line}])
    debug("configurationDone")
    return path


def top_frame_locals(debug: DebugRequest, thread: int) -> tuple[dict[str, Any], dict[str, str]]:
    """The stopped thread's top frame and its local variables, by name."""
    frame = debug("stackTrace", threadId=thread)["body"]["stackFrames"][0]
    scopes = debug("scopes", frameId=frame["id"])["body"]["scopes"]
    local = debug("variables", variablesReference=scopes[0]["variablesReference"])
    return frame, {v["name"]: v["value"] for v in local["body"]["variables"]}
