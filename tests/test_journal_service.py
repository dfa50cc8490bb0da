"""A kernel's journal, end to end: cells run on the real service (prints, a display
and its update, ``input()`` answered, a widget) are read back from the service's state
directory into a fresh output log and transcript: the transcript is the one the
service serves, and the log holds every iopub message a WebSocket client got, with
the same msg_ids, in the same order."""

from __future__ import annotations

import json
import os
from typing import Any

from benchlib.servers import Service
from benchlib.wsclient import WSClient
from support.service import service_fixture

from ipytwist.kernel.journal import KernelJournal
from ipytwist.kernel.outputlog import DEFAULT_LOG_BYTES, DEFAULT_LOG_MESSAGES, OutputLog
from ipytwist.kernel.transcript import DEFAULT_MAX_BYTES, Transcript
from ipytwist.wire import json_default

svc = service_fixture("journal")

CELLS = [
    "x = 6 * 7\nprint('x is', x)\nprint('done', end='\\r')",
    "h = display({'text/plain': 'first'}, raw=True, display_id=True)\n"
    "h.update({'text/plain': 'second'}, raw=True)",
    "import ipywidgets\ns = ipywidgets.IntSlider()\ndisplay(s)\ns.value = 7",
]


def iopub(msgs: list[dict[str, Any]]) -> list[str]:
    return [m["header"]["msg_id"] for m in msgs if m.get("channel", "iopub") == "iopub"]


def test_the_journal_read_back_is_the_live_transcript_and_log(svc: Service) -> None:
    kid = svc.start_kernel()
    ws = WSClient.connect(svc, kid)
    try:
        ws.kernel_info()
        for code in CELLS:
            reply, _ = ws.execute(code, timeout=60)
            assert reply["content"]["status"] == "ok", reply
        asked = ws.execute_request("name = input('name? ')\nprint('hello', name)", allow_stdin=True)
        ws.until(lambda m: m["msg_type"] == "input_request")
        ws.send("stdin", "input_reply", {"value": "Ada"})
        reply, _ = ws.finish(asked, timeout=60)
        assert reply["content"]["status"] == "ok", reply
        live = svc.request("GET", f"/api/kernels/{kid}/transcript")
        live.pop("kernel")  # the REST answer adds the kernel's model
    finally:
        ws.close()
    got = [m for m in ws.received if m.get("channel") == "iopub"]

    log = OutputLog(DEFAULT_LOG_MESSAGES, DEFAULT_LOG_BYTES)
    transcript = Transcript(max_bytes=DEFAULT_MAX_BYTES)
    directory = os.path.join(svc.state_dir, "kernels", kid)
    journal = KernelJournal.open(
        directory, DEFAULT_MAX_BYTES, DEFAULT_LOG_MESSAGES, DEFAULT_LOG_BYTES
    )
    try:
        restored = journal.restore(log, transcript)
    finally:
        journal.close()
    ids = [env.msg["header"]["msg_id"] for env in log.retained()]
    first = ids.index(got[0]["header"]["msg_id"])
    assert ids[first : first + len(got)] == [m["header"]["msg_id"] for m in got]
    assert json.loads(json.dumps(transcript.to_json(), default=json_default)) == live
    cells = live["cells"]
    assert [c["code"] for c in cells[-4:]] == [
        *CELLS,
        "name = input('name? ')\nprint('hello', name)",
    ]
    texts = [o.get("text") for o in cells[-1]["outputs"]]
    assert texts == ["name? Ada\n", "hello Ada\n"]
    assert live["widgets"]["state"]  # the slider and its layout and style
    assert restored.execution_count == 4 and restored.running is None
    assert restored.session is not None
    assert restored.sessions[ws.session_id][0] == log.end[0]
