"""The debugger end to end: JupyterLab's debugger sequence on the control channel of a
real kernel, through jupyter_client, on ipytwist and on ipykernel (the reference): the
replies have the same shapes, and a breakpoint in a cell stops it with its locals."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from support.dap_session import break_in
from support.jupyter_kernel import forget_arrived, running_kernel

TIMEOUT = 30
CELL = "def f(a):\n    b = a + 1\n    return b\n\nx = f(41)\n"
INITIALIZE = {
    "clientID": "test",
    "clientName": "test",
    "adapterID": "",
    "pathFormat": "path",
    "linesStartAt1": True,
    "columnsStartAt1": True,
    "supportsVariableType": True,
    "supportsVariablePaging": True,
    "supportsRunInTerminalRequest": True,
    "locale": "en",
}


class Debug:
    """debug_request on a client's control channel; debug_event read from iopub."""

    def __init__(self, kc: BlockingKernelClient) -> None:
        self.kc = kc
        self.seq = 0
        #: The text of the stream messages passed over while waiting for events.
        self.streams: list[str] = []

    def __call__(self, command: str, **arguments: Any) -> dict[str, Any]:
        self.seq += 1
        content = {"type": "request", "seq": self.seq, "command": command, "arguments": arguments}
        return self.send(content)

    def send(self, content: Any) -> dict[str, Any]:
        msg = self.kc.session.msg("debug_request", content)
        self.kc.control_channel.send(msg)
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = self.kc.get_control_msg(timeout=max(0.0, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                assert reply["msg_type"] == "debug_reply"
                return dict(reply["content"])

    def event(self, name: str) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(0.0, deadline - time.monotonic()))
            if msg["msg_type"] == "stream":
                self.streams.append(msg["content"]["text"])
            if msg["msg_type"] == "debug_event" and msg["content"].get("event") == name:
                return dict(msg["content"])


def session(kc: BlockingKernelClient, ours: bool = True) -> dict[str, Any]:
    """JupyterLab's sequence, up to a cell stopped at a breakpoint and continued: every
    reply by command, and what it showed."""
    debug = Debug(kc)
    seen: dict[str, Any] = {"initialize": debug("initialize", **INITIALIZE)}
    seen["attach"] = debug("attach")
    seen["debugInfo"] = debug("debugInfo")
    seen["dumpCell"] = dump = debug("dumpCell", code=CELL)
    path = dump["body"]["sourcePath"]
    seen["setBreakpoints"] = debug(
        "setBreakpoints", source={"path": path}, breakpoints=[{"line": 3}], sourceModified=False
    )
    seen["configurationDone"] = debug("configurationDone")
    seen["debugInfo_after"] = debug("debugInfo")
    msg_id = kc.execute(CELL)
    stopped = debug.event("stopped")
    thread = stopped["body"]["threadId"]
    seen["stackTrace"] = stack = debug("stackTrace", threadId=thread)
    frame = stack["body"]["stackFrames"][0]["id"]
    seen["scopes"] = scopes = debug("scopes", frameId=frame)
    ref = scopes["body"]["scopes"][0]["variablesReference"]
    seen["variables"] = debug("variables", variablesReference=ref)
    seen["richInspectVariables"] = debug("richInspectVariables", variableName="b", frameId=frame)
    seen["source"] = debug("source", source={"path": path})
    seen["inspect_stopped"] = debug("inspectVariables")
    if ours:  # (ipykernel's references here are not debugpy's: it never answers)
        groups = {v["name"]: v for v in seen["inspect_stopped"]["body"]["variables"]}
        ref = groups["function variables"]["variablesReference"]  # debugpy groups globals
        seen["functions_stopped"] = debug("variables", variablesReference=ref)
    seen["copyToGlobals"] = debug(
        "copyToGlobals", srcVariableName="b", dstVariableName="b_copy", srcFrameId=frame
    )
    seen["continue"] = debug("continue", threadId=thread)
    reply = kc.get_shell_msg(timeout=TIMEOUT)
    assert reply["parent_header"]["msg_id"] == msg_id
    seen["execute"] = reply["content"]["status"]
    seen["inspectVariables"] = debug("inspectVariables")
    seen["modules"] = debug("modules", startModule=0, moduleCount=100000)
    seen["rich_idle"] = debug("richInspectVariables", variableName="x", frameId=frame)
    seen["disconnect"] = debug("disconnect", restart=False, terminateDebuggee=True)
    return seen


def shape(value: Any) -> Any:
    """The keys of a reply, all the way down (lists by their first item)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items() if k not in ("seq",)}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def _session_on(name: str) -> dict[str, Any]:
    with running_kernel(name) as (km, kc):
        forget_arrived(kc)
        return session(kc, ours=name == "ipytwist")


@pytest.fixture(scope="module")
def sessions() -> Iterator[dict[str, dict[str, Any]]]:
    """The sequence on ipytwist and on ipykernel, both at once (each a kernel process and
    a client of its own: neither sees the other)."""
    names = ("ipytwist", "ipykernel-ref")
    with ThreadPoolExecutor(len(names)) as pool:
        yield dict(zip(names, pool.map(_session_on, names), strict=True))


def test_kernel_info_offers_the_debugger() -> None:
    with running_kernel("ipytwist") as (km, kc):
        kc.kernel_info()
        reply = kc.get_shell_msg(timeout=TIMEOUT)
        assert reply["content"]["debugger"] is True


def test_a_breakpoint_stops_the_cell_and_shows_its_locals(sessions: dict) -> None:
    seen = sessions["ipytwist"]
    for command in ("initialize", "attach", "dumpCell", "setBreakpoints", "configurationDone"):
        assert seen[command]["success"], (command, seen[command])
    path = seen["dumpCell"]["body"]["sourcePath"]
    assert path.startswith(seen["debugInfo"]["body"]["tmpFilePrefix"])
    assert seen["setBreakpoints"]["body"]["breakpoints"][0]["verified"] is True
    assert seen["debugInfo_after"]["body"]["breakpoints"] == [
        {"source": path, "breakpoints": [{"line": 3}]}
    ]
    frames = seen["stackTrace"]["body"]["stackFrames"]
    assert [(f["name"], f["line"], f["source"]["path"]) for f in frames] == [
        ("f", 3, path),
        ("<module>", 5, path),
    ]  # the cell's frames only: IPython's and ipytwist's are hidden, as on ipykernel
    local = {v["name"]: v["value"] for v in seen["variables"]["body"]["variables"]}
    assert local["a"] == "41" and local["b"] == "42"
    assert seen["richInspectVariables"]["body"]["data"] == {"text/plain": "42"}
    assert seen["source"]["body"]["content"] == CELL
    functions = {v["name"] for v in seen["functions_stopped"]["body"]["variables"]}
    assert "f" in functions and "get_ipython" not in functions
    assert seen["continue"]["success"] and seen["execute"] == "ok"
    names = {v["name"] for v in seen["inspectVariables"]["body"]["variables"]}
    assert {"f", "x", "b_copy"} <= names and "In" not in names
    modules = {m["name"]: m["path"] for m in seen["modules"]["body"]["modules"]}
    assert modules["json"].endswith("json/__init__.py")
    assert seen["rich_idle"]["body"]["data"] == {"text/plain": "42"}
    assert seen["disconnect"]["success"]


@pytest.mark.parametrize(
    "command",
    ["initialize", "attach", "debugInfo", "dumpCell", "setBreakpoints", "configurationDone",
     "stackTrace", "scopes", "variables", "richInspectVariables", "source", "continue",
     "inspectVariables", "copyToGlobals", "disconnect"],
)  # fmt: skip
def test_replies_have_ipykernels_shapes(sessions: dict, command: str) -> None:
    ours, theirs = (shape(sessions[k][command]) for k in ("ipytwist", "ipykernel-ref"))
    assert ours == theirs


STEPS = (
    "def g(n):\n    m = n * 2\n    return m\n\ndef h():\n    k = g(3)\n    return k\n\ny = h()\n"
)


def test_stepping_and_control_while_stopped_and_bad_requests() -> None:
    """next and stepIn move the stopped frame; kernel_info on control is answered while
    the cell is stopped; malformed debug_requests get an error and the kernel serves on;
    debugpy's start prints nothing into any cell."""
    with running_kernel("ipytwist") as (km, kc):
        forget_arrived(kc)
        debug = Debug(kc)
        for bad in ({}, {"seq": 1}, {"type": "request", "seq": "x", "command": "attach"}):
            reply = debug.send(bad)
            assert reply["success"] is False and "malformed" in reply["message"]
        break_in(debug, STEPS, 6, **INITIALIZE)
        msg_id = kc.execute(STEPS)
        thread = debug.event("stopped")["body"]["threadId"]

        def top() -> tuple[str, int]:
            frame = debug("stackTrace", threadId=thread)["body"]["stackFrames"][0]
            return frame["name"], frame["line"]

        assert top() == ("h", 6)
        kc.control_channel.send(info := kc.session.msg("kernel_info_request", {}))
        reply = kc.get_control_msg(timeout=TIMEOUT)
        assert reply["parent_header"]["msg_id"] == info["header"]["msg_id"]
        assert debug("stepIn", threadId=thread)["success"]
        debug.event("stopped")
        assert top() == ("g", 2)
        assert debug("next", threadId=thread)["success"]
        debug.event("stopped")
        assert top() == ("g", 3)
        assert debug("continue", threadId=thread)["success"]
        assert kc.get_shell_msg(timeout=TIMEOUT)["content"]["status"] == "ok"
        assert debug("disconnect", restart=False, terminateDebuggee=True)["success"]
        kc.execute("print('after')")
        assert kc.get_shell_msg(timeout=TIMEOUT)["content"]["status"] == "ok"
        streams = debug.streams
        while True:
            try:
                msg = kc.get_iopub_msg(timeout=0.5)
            except Exception:
                break
            if msg["msg_type"] == "stream":
                streams.append(msg["content"]["text"])
        assert "".join(streams) == "after\n", (streams, msg_id)


def test_the_debugger_starts_again_after_disconnect_and_after_a_restart() -> None:
    """The panel toggled off and on (disconnect, initialize), and a restarted kernel (a
    new interpreter with its own debugpy): a breakpoint stops the cell each time."""

    def stop_once(debug: Debug, kc: BlockingKernelClient) -> None:
        break_in(debug, CELL, 3, **INITIALIZE)
        kc.execute(CELL)
        thread = debug.event("stopped")["body"]["threadId"]
        assert debug("continue", threadId=thread)["success"]
        assert kc.get_shell_msg(timeout=TIMEOUT)["content"]["status"] == "ok"

    with running_kernel("ipytwist") as (km, kc):
        forget_arrived(kc)
        debug = Debug(kc)
        stop_once(debug, kc)
        assert debug("disconnect", restart=False, terminateDebuggee=False)["success"]
        assert debug("debugInfo")["body"]["isStarted"] is False
        stop_once(debug, kc)
        km.restart_kernel(now=True)
        kc.wait_for_ready(timeout=TIMEOUT)
        assert debug("debugInfo")["body"]["isStarted"] is False
        stop_once(debug, kc)


def test_the_cell_files_go_with_the_interpreter() -> None:
    with running_kernel("ipytwist") as (km, kc):
        debug = Debug(kc)
        assert debug("initialize", **INITIALIZE)["success"]
        prefix = debug("debugInfo")["body"]["tmpFilePrefix"]
        path = debug("dumpCell", code=CELL)["body"]["sourcePath"]
        assert os.path.isfile(path) and path.startswith(prefix)
        km.shutdown_kernel(now=False)  # a shutdown_request, then the process exits
    assert not os.path.exists(prefix)


def test_an_interrupt_at_a_breakpoint_leaves_the_debugger_working() -> None:
    """Interrupt while a cell is stopped: the kernel resumes the thread first (SIGINT in
    debugpy's wait would leave it unable to stop again), so the cell gets its
    KeyboardInterrupt and the next run stops at the breakpoint again."""
    sleeper = CELL + "import time\ntime.sleep(60)\n"
    with running_kernel("ipytwist") as (km, kc):
        forget_arrived(kc)
        debug = Debug(kc)
        break_in(debug, sleeper, 3, **INITIALIZE)
        for _ in range(2):
            kc.execute(sleeper)
            debug.event("stopped")
            kc.control_channel.send(kc.session.msg("interrupt_request", {}))
            reply = kc.get_shell_msg(timeout=TIMEOUT)["content"]
            assert (reply["status"], reply.get("ename")) == ("error", "KeyboardInterrupt")
