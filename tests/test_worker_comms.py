"""Comms in a real worker: ipywidgets through the ``comm`` package's hooks, a client's
comm messages handed to their comm, binary buffers both ways, and the notebook
detection libraries test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.worker_proc import execute, run_records

Events = list[dict[str, Any]]
SLIDER = "import ipywidgets; w = ipywidgets.IntSlider(5); display(w)"


def comm_record(
    msg_type: str, content: dict[str, Any], buffers: tuple[bytes, ...] = ()
) -> dict[str, Any]:
    header = {"msg_id": f"m-{msg_type}", "msg_type": msg_type}
    return {
        "req": "comm",
        "header": header,
        "content": {
            "msg_type": msg_type,
            "header": header,
            "content": content,
            "metadata": {},
        },
        "buffers": list(buffers),
    }


def of(events: Events, kind: str) -> Events:
    return [e for e in events if e.get("ev") == kind]


def slider_id(events: Events) -> str:
    for e in of(events, "comm_open"):
        if e["content"]["data"]["state"]["_model_name"] == "IntSliderModel":
            return str(e["content"]["comm_id"])
    raise AssertionError(f"no slider opened: {events}")


def update(value: int) -> Any:
    data = {"method": "update", "state": {"value": value}, "buffer_paths": []}
    return lambda events: comm_record("comm_msg", {"comm_id": slider_id(events), "data": data})


def test_a_widget_opens_its_comm_before_its_view_and_a_clients_update_sets_it(
    tmp_path: Path,
) -> None:
    run = run_records(tmp_path, [execute(SLIDER), update(7), execute("print('value', w.value)")])
    assert [r["status"] for r in run.replies] == ["ok"] * 3, run.replies
    kinds = [e["ev"] for e in run.events]
    assert kinds.index("comm_open") < kinds.index("display_data")
    comm_id = slider_id(run.events)
    opened = next(e for e in of(run.events, "comm_open") if e["content"]["comm_id"] == comm_id)
    assert opened["content"]["target_name"] == "jupyter.widget"
    assert opened["content"]["data"]["state"]["value"] == 5
    view = of(run.events, "display_data")[0]["data"]["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == comm_id
    assert b"value 7" in run.out


def test_comm_info_lists_the_live_comms_of_a_target(tmp_path: Path) -> None:
    run = run_records(
        tmp_path,
        [
            execute(SLIDER),
            {"req": "comm_info", "content": {"target_name": "jupyter.widget"}},
            {"req": "comm_info", "content": {"target_name": "nothing.here"}},
            {"req": "comm_info", "content": {}},
            execute("w.close()"),
            {"req": "comm_info", "content": {}},
        ],
    )
    comm_id = slider_id(run.events)
    _, widgets, none, every, _, after = run.replies
    assert widgets["comms"][comm_id] == {"target_name": "jupyter.widget"}
    assert none == {"status": "ok", "comms": {}}
    assert comm_id in every["comms"]
    assert comm_id not in after["comms"]
    closed = of(run.events, "comm_close")
    assert [e["content"]["comm_id"] for e in closed] == [comm_id]


OPEN_ECHO = """
import comm
got = []
def target(c, msg):
    assert all(type(b) is memoryview for b in msg["buffers"])
    got.append(("open", msg["content"]["data"], [bytes(b) for b in msg["buffers"]]))
    @c.on_msg
    def _(msg):
        got.append(("msg", msg["content"]["data"], [bytes(b) for b in msg["buffers"]]))
        c.send({"echo": msg["content"]["data"]}, buffers=[b"\\x00\\xffback", memoryview(b"two")])
comm.get_comm_manager().register_target("echo", target)
"""


def test_a_clients_comm_gets_its_buffers_and_sends_some_back(tmp_path: Path) -> None:
    run = run_records(
        tmp_path,
        [
            execute(OPEN_ECHO),
            comm_record(
                "comm_open", {"comm_id": "c1", "target_name": "echo", "data": {"a": 1}}, [b"\x01"]
            ),
            comm_record("comm_msg", {"comm_id": "c1", "data": {"b": 2}}, (b"\x00\x80", b"")),
            comm_record("comm_open", {"comm_id": "c2", "target_name": "no.such", "data": {}}),
            comm_record("comm_close", {"comm_id": "c1", "data": {}}),
            execute("print(got)"),
        ],
    )
    assert b"[('open', {'a': 1}, [b'\\x01']), ('msg', {'b': 2}, [b'\\x00\\x80', b''])]" in run.out
    (sent,) = of(run.events, "comm_msg")
    assert sent["content"] == {"comm_id": "c1", "data": {"echo": {"b": 2}}}
    assert sent["buffers"] == [b"\x00\xffback", b"two"]
    # An unknown target's comm is closed at once, as ipykernel does.
    assert [e["content"]["comm_id"] for e in of(run.events, "comm_close")] == ["c2"]


DETECT = """
import IPython
ip = IPython.get_ipython()
print(type(ip).__name__, 'IPKernelApp' in ip.config)
print(ip.kernel.get_parent()['header']['msg_id'], ip.kernel._parent_header['msg_type'])
print(bool(ip.kernel.session.session), ip.get_parent()['header']['msg_id'])
import plotly.io
print(type(ip).__module__, plotly.io.renderers.default)
"""


def test_the_shell_answers_notebook_detection_as_ipykernel_does(tmp_path: Path) -> None:
    record = {**execute(DETECT), "header": {"msg_id": "abc", "msg_type": "execute_request"}}
    run = run_records(tmp_path, [record])
    assert run.replies[0]["status"] == "ok", run.replies
    assert run.out.decode().split("\n")[:4] == [
        "ZMQInteractiveShell True",
        "abc execute_request",
        "True abc",
        "ipykernel.zmqshell plotly_mimetype",  # (ipykernel's renderer: no extra text/html)
    ]


AUTO = """
import sys
print('ipykernel.zmqshell' in sys.modules)
from tqdm.auto import tqdm
from tqdm.notebook import tqdm as notebook_tqdm
print(issubclass(tqdm, notebook_tqdm))
bar = tqdm(range(3))
for _ in bar: pass
"""


def test_tqdm_auto_takes_its_notebook_path_and_draws_a_widget(tmp_path: Path) -> None:
    run = run_records(tmp_path, [execute(AUTO)])
    assert run.replies[0]["status"] == "ok", run.replies
    assert run.out.decode().split("\n")[:2] == ["True", "True"]
    models = {e["content"]["data"]["state"]["_model_name"] for e in of(run.events, "comm_open")}
    assert {"HBoxModel", "FloatProgressModel", "HTMLModel"} <= models


IPYMPL = "%matplotlib widget\nimport matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()"


def test_matplotlib_widget_draws_ipympls_canvas_through_comms(tmp_path: Path) -> None:
    """`%matplotlib widget` needs no event loop (as on ipykernel), and ipympl's canvas
    is a widget: its model opens and its view is displayed."""
    run = run_records(tmp_path, [execute(IPYMPL)])
    assert run.replies[0]["status"] == "ok", run.replies[0].get("evalue")
    canvas = [
        e["content"]["comm_id"]
        for e in of(run.events, "comm_open")
        if e["content"]["data"]["state"]["_model_name"] == "MPLCanvasModel"
    ]
    views = [
        e["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
        for e in of(run.events, "display_data")
        if "application/vnd.jupyter.widget-view+json" in e["data"]
    ]
    assert len(canvas) == 1 and views == canvas


BOKEH_COMM = """
import sys
print('zmq' in sys.modules, 'ipykernel' in sys.modules)
from ipykernel.comm import Comm
c = Comm(target_name='bokeh-like', data={'a': 1})
c.send({'b': 2})
"""


def test_ipykernels_modules_are_stand_ins_that_cost_no_start_up(tmp_path: Path) -> None:
    """The worker imports neither ZeroMQ nor ipykernel (50 ms of every start), yet
    ``from ipykernel.comm import Comm`` (bokeh's ``push_notebook``) makes our comm."""
    run = run_records(tmp_path, [execute(BOKEH_COMM)])
    assert run.replies[0]["status"] == "ok", run.replies
    assert run.out.decode().split("\n")[0] == "False False"
    (opened,) = of(run.events, "comm_open")
    assert opened["content"]["target_name"] == "bokeh-like"
    assert opened["content"]["data"] == {"a": 1}
    (sent,) = of(run.events, "comm_msg")
    assert sent["content"]["data"] == {"b": 2}


def test_what_the_comm_package_logs_is_a_log_event_not_the_cells_stderr(tmp_path: Path) -> None:
    """A client's message to a comm that does not exist, or a comm_open of a target
    nobody registered: one ``log`` event each for the service's log (it went to the
    stderr of every client before), without the client's id or target, and the worker
    serves on."""
    unknown = {"comm_id": "nope" + "x" * 300, "data": {"method": "update", "state": {}}}
    opening = {"comm_id": "c1", "target_name": "no.such.target", "data": {}}
    run = run_records(
        tmp_path,
        [
            comm_record("comm_msg", unknown),
            comm_record("comm_open", opening),
            execute("print('after')"),
        ],
    )
    assert [r["status"] for r in run.replies] == ["ok"] * 3, run.replies
    logs = [e["text"] for e in of(run.events, "log")]
    assert logs == [  # the client's id and target are payload: only their lengths
        "No such comm: (304 characters)",
        "No such comm target registered: (14 characters)",
    ]
    assert [e["content"]["comm_id"] for e in of(run.events, "comm_close")] == ["c1"]
    assert b"after" in run.out
    assert b"No such comm" not in run.out + run.err


RAISING = """
import comm
def target(c, msg):
    @c.on_msg
    def _(msg):
        raise ValueError("boom-in-handler")
comm.get_comm_manager().register_target("boom", target)
"""


def test_an_exception_in_a_comm_handler_still_shows_its_traceback(tmp_path: Path) -> None:
    opening = {"comm_id": "b1", "target_name": "boom", "data": {}}
    run = run_records(
        tmp_path,
        [
            execute(RAISING),
            comm_record("comm_open", opening),
            comm_record("comm_msg", {"comm_id": "b1", "data": {}}),
        ],
    )
    assert [r["status"] for r in run.replies] == ["ok"] * 3, run.replies
    assert b"ValueError: boom-in-handler" in run.out + run.err
    assert of(run.events, "log") == []
