"""``input()`` in the transcript (pure): the kernel's stdin router echoes what a cell
shows of it, as JupyterLab keeps it in a notebook: a ``stdin`` stream of the prompt and
the answer; for ``getpass`` the prompt only, the answer nowhere."""

from __future__ import annotations

import json
from typing import Any

import nbformat
from test_transcript import iopub, req

from ipytwist.kernel.requests import Request
from ipytwist.kernel.stdin import InputRouter
from ipytwist.kernel.transcript import MIN_BYTES, Transcript
from ipytwist.loglimit import LimitedLog
from ipytwist.wire import new_message


class Client:
    origin = "websocket"

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    def send(self, channel: str, msg: dict) -> None:
        self.sent.append((channel, msg))


class Rejects(LimitedLog):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def warn(self, fmt: str, key: str, **kw: Any) -> None:
        self.lines.append(key)


class Kernel:
    """A transcript, and the stdin router echoing into it, as the host wires them."""

    def __init__(self, max_bytes: int = 1 << 20) -> None:
        self.t = Transcript(max_bytes=max(MIN_BYTES, max_bytes))
        self.to_worker: list[dict] = []
        self.router = InputRouter("kernel", self.to_worker.append, Rejects())
        self.router.echo = self.t.stdin
        self.client = Client()

    def start(self, code: str) -> dict:
        r = req(code)
        self.t.request(r, "websocket")
        self.t.apply(iopub(r, "status", execution_state="busy"))
        self.t.apply(iopub(r, "execute_input", code=code, execution_count=1))
        self.request = Request("shell", r, self.client)
        return r

    def ask(self, prompt: str, password: bool = False) -> None:
        event = {"ev": "input_request", "prompt": prompt, "password": password}
        self.router.ask(self.request, event)

    def answer(self, value: str, client: Client | None = None) -> None:
        reply = new_message("input_reply", {"value": value}, "other-session")
        self.router.answer(reply, client or self.client)

    def out(self, r: dict, text: str) -> None:
        self.t.apply(iopub(r, "stream", name="stdout", text=text))

    def outputs(self) -> list[tuple[str, str]]:
        (cell,) = self.t.to_json()["cells"]
        return [(o["name"], o["text"]) for o in cell["outputs"]]


def test_the_prompt_and_the_answer_are_a_stdin_stream_between_the_outputs() -> None:
    k = Kernel()
    r = k.start("print('hi'); name = input('name? '); print('hello', name)")
    k.out(r, "hi\n")
    k.ask("name? ")
    assert k.outputs() == [("stdout", "hi\n"), ("stdin", "name? ")]  # asked, not answered
    k.answer("Ada")
    k.out(r, "hello Ada\n")
    k.t.apply(iopub(r, "status", execution_state="idle"))
    assert k.to_worker == [{"req": "input_reply", "value": "Ada"}]
    expected = [("stdout", "hi\n"), ("stdin", "name? Ada\n"), ("stdout", "hello Ada\n")]
    assert k.outputs() == expected
    nb = nbformat.from_dict(k.t.to_notebook())
    nbformat.validate(nb)
    (cell,) = nb.cells
    assert [(o.name, o.text) for o in cell.outputs] == expected


def test_a_password_answer_is_kept_nowhere() -> None:
    k = Kernel()
    r = k.start("import getpass; p = getpass.getpass(); print(len(p))")
    k.ask("Password: ", password=True)
    k.answer("s3cret-answer")
    k.out(r, "13\n")
    assert k.to_worker == [{"req": "input_reply", "value": "s3cret-answer"}]
    assert k.outputs() == [("stdin", "Password: \n"), ("stdout", "13\n")]
    assert "s3cret" not in json.dumps(k.t.to_json())
    assert "s3cret" not in json.dumps(k.t.to_notebook())


def test_answers_to_two_prompts_and_ignored_replies() -> None:
    """Two input()s in a row make one stdin stream; a reply nobody asked for, or from a
    client that was not asked, is not echoed; a later plain input() after a password
    shows its answer."""
    k = Kernel()
    k.start("a = input('a? '); b = getpass(); c = input('c? ')")
    k.answer("early")  # nothing asked yet
    k.ask("a? ")
    k.answer("intruder", Client())  # another connection, another session
    k.answer("1")
    k.ask("b? ", password=True)
    k.answer("2")
    k.ask("c? ")
    k.answer("3")
    assert k.outputs() == [("stdin", "a? 1\nb? \nc? 3\n")]
    assert [m["value"] for m in k.to_worker] == ["1", "2", "3"]


def test_a_huge_answer_is_kept_within_the_bounds() -> None:
    """An answer of 4 MB in one line: the transcript keeps within its bytes."""
    k = Kernel(max_bytes=MIN_BYTES)
    k.start("x = input()")
    k.ask("big? ")
    k.answer("y" * 4_000_000)
    assert k.t.size <= k.t.max_bytes
    ((name, text),) = k.outputs()
    assert name == "stdin" and text.startswith("big? yyy") and len(text) < MIN_BYTES


def test_an_answer_for_a_cell_the_transcript_does_not_hold_is_dropped() -> None:
    k = Kernel()
    k.t.stdin("no-such-cell", "text")
    assert k.t.to_json()["cells"] == [] and k.t.size == 0
