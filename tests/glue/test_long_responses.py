"""Long responses in process: "Show all" of a carriage-return storm and a transcript of
40,000 outputs are written a slice of work per reactor turn, whole, at the client's pace.
(The same scenarios against the real service, timed: tests/reliability/test_transcript_worst.py.)"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import nbformat
import pytest
from glue_fakes import Browser, HostEnv, Response, parse_response
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.web.test.requesthelper import DummyRequest

from ipytwist.kernel.ipynb import WIDGET_STATE_MIME
from ipytwist.web import chunked
from ipytwist.web.chunked import ChunkedResponse, json_chunks, text_chunks
from ipytwist.wire import new_message

MIB = 1024 * 1024
#: The most one chunk may take (milliseconds here); the rest is room for a loaded machine.
STEP_SECONDS = 0.1


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The wall time of every slice any ChunkedResponse works; each slice is one chunk
    (a slice's time is 0), so the longest is the most work one chunk takes."""
    monkeypatch.setattr(chunked, "SLICE_SECONDS", 0.0)
    taken: list[float] = []
    run = ChunkedResponse._run

    def timed(self: ChunkedResponse) -> None:
        started = time.perf_counter()
        run(self)
        taken.append(time.perf_counter() - started)

    monkeypatch.setattr(ChunkedResponse, "_run", timed)
    return taken


def ran_cell(hk: Any, *texts: str) -> str:
    """A cell in the kernel's transcript whose stream output was ``texts``."""
    request = new_message("execute_request", {"code": "storm()"}, "page")
    hk.transcript.request(request, "page")
    log = hk.kernel.output_log
    log.publish(new_message("execute_input", {"code": "", "execution_count": 1}, "k", request))
    for text in texts:
        log.publish(new_message("stream", {"name": "stdout", "text": text}, "k", request))
    return str(request["header"]["msg_id"])


def answer(env: HostEnv, browser: Browser, path: str) -> Response:
    _, transport = browser.send("GET", path)
    env.clock.advance(0)  # every slice still due (each schedules the next)
    response = parse_response(transport.value())
    assert response is not None and response.complete
    return response


def test_show_all_of_a_carriage_return_storm_is_worked_out_in_slices(
    web: tuple[HostEnv, Browser], steps: list[float]
) -> None:
    """A 1 MB line, then 100,000 ``'\\ry'``: 4.7 s in one reactor turn before."""
    env, browser = web
    hk = env.start_kernel()
    storm = "x" * MIB + "\ry" * 100_000 + "\n" + "z\n" * 400_000
    cell = ran_cell(hk, *[storm[i : i + 65536] for i in range(0, len(storm), 65536)])
    response = answer(env, browser, f"/api/kernels/{hk.id}/transcript/cells/{cell}/output")
    assert response.body.decode() == "y" + "x" * (MIB - 1) + "\n" + "z\n" * 400_000
    assert response.header("content-type") == "text/plain; charset=utf-8"
    assert len(steps) > 1 and max(steps) < STEP_SECONDS, steps


def test_a_transcript_of_40000_outputs_is_written_in_slices_and_whole(
    web: tuple[HostEnv, Browser], steps: list[float]
) -> None:
    env, browser = web
    hk = env.start_kernel()
    log = hk.kernel.output_log
    for c in range(200):
        request = new_message("execute_request", {"code": f"cell {c}"}, "page")
        hk.transcript.request(request, "page")
        for _ in range(200):
            content = {"data": {"text/plain": "<Image>"}, "metadata": {}, "transient": {}}
            log.publish(new_message("display_data", content, "k", request))
    expected = hk.transcript.to_json()
    body = answer(env, browser, f"/api/kernels/{hk.id}/transcript").json()
    assert body.pop("kernel")["id"] == hk.id
    assert body == expected
    assert len(steps) > 1 and max(steps) < STEP_SECONDS, steps
    nb = answer(env, browser, f"/api/kernels/{hk.id}/transcript.ipynb").json()
    nbformat.validate(nbformat.from_dict(nb))
    assert sum(len(c["outputs"]) for c in nb["cells"]) == sum(
        len(c["outputs"]) for c in expected["cells"]
    )


def test_a_transcript_of_widgets_at_their_bound_is_written_in_slices_and_whole(
    web: tuple[HostEnv, Browser], steps: list[float]
) -> None:
    """4 MiB of widget state (the default bound: a quarter of --transcript-bytes) as
    thousands of models, and as one model with a 1.5 MiB buffer among them."""
    env, browser = web
    hk = env.start_kernel()
    log = hk.kernel.output_log
    names = {"_model_name": "M", "_model_module": "m", "_model_module_version": "1"}
    for i in range(4000):
        state = {**names, "points": list(range(100)), "label": "x" * 100}
        content = {"comm_id": f"w{i}", "target_name": "jupyter.widget", "data": {"state": state}}
        log.publish(new_message("comm_open", content, "k"))
    data = {"state": {**names, "png": None}, "buffer_paths": [["png"]]}
    content = {"comm_id": "big", "target_name": "jupyter.widget", "data": data}
    log.publish(new_message("comm_open", content, "k", buffers=[bytes(3 * MIB // 2)]))
    expected = hk.transcript.to_json()
    assert 300 < len(expected["widgets"]["state"]) < 4000 and "big" in expected["widgets"]["state"]
    body = answer(env, browser, f"/api/kernels/{hk.id}/transcript").json()
    assert body.pop("kernel")["id"] == hk.id
    assert body == expected
    assert len(steps) > 3 and max(steps) < STEP_SECONDS, steps
    steps.clear()
    nb = answer(env, browser, f"/api/kernels/{hk.id}/transcript.ipynb").json()
    nbformat.validate(nbformat.from_dict(nb))
    assert nb["metadata"]["widgets"][WIDGET_STATE_MIME] == expected["widgets"]
    assert len(steps) > 3 and max(steps) < STEP_SECONDS, steps


# -- ChunkedResponse itself -------------------------------------------------------------


class PushRequest(DummyRequest):
    """A request that keeps its push producer (DummyRequest pulls from it)."""

    producer: Any = None

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None


def ticking(step: float) -> Iterator[float]:
    now = 0.0
    while True:
        yield now
        now += step


def started(chunks: list[bytes], tick: float = 0.004) -> tuple[Clock, PushRequest, Any]:
    clock, request = Clock(), PushRequest([b""])
    response = ChunkedResponse(clock, request, iter(chunks), ticking(tick).__next__)
    assert response.start() == chunked.NOT_DONE_YET
    return clock, request, response


def test_a_slice_ends_at_its_time_and_the_next_waits_for_the_reactor() -> None:
    clock, request, response = started([b"%d," % i for i in range(10)])
    assert request.written == [b"0,", b"1,", b"2,"]  # 0.004 s of the 0.01 s each
    assert not request.finished and len(clock.getDelayedCalls()) == 1
    clock.advance(0)
    assert b"".join(request.written) == b"".join(b"%d," % i for i in range(10))
    assert request.finished == 1 and request.producer is None


def test_a_full_transport_pauses_it_and_a_client_gone_stops_it() -> None:
    clock, request, response = started([b"a"] * 20)
    response.pauseProducing()
    assert clock.getDelayedCalls() == []
    clock.advance(1)
    assert len(request.written) == 3
    response.resumeProducing()
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(0)
    assert len(request.written) == 20 and request.finished == 1

    clock, request, response = started([b"a"] * 20)
    request.processingFailed(Exception("connection lost"))  # its notifyFinish errback
    assert clock.getDelayedCalls() == []
    response.resumeProducing()
    clock.advance(1)
    assert len(request.written) == 3 and request.finished == 0


def test_a_failing_source_ends_the_response_with_one_log_line() -> None:
    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise ValueError("the secret payload")

    clock, request = Clock(), PushRequest([b""])
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        ChunkedResponse(clock, request, broken()).start()
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert request.written == [b"partial"] and request.finished == 1
    (line,) = [formatEvent(e) for e in events if e.get("log_namespace", "").endswith("Response")]
    assert line == "a long response failed: ValueError"


def test_text_and_json_come_in_chunks_of_about_the_size_asked() -> None:
    assert list(text_chunks(["ab", "c" * 7, "", "d"], size=4)) == [b"abcccc", b"", b"cccd"]
    body = {"a": 1, "cells": [{"n": i} for i in range(5)], "z": [2]}
    parts = list(json_chunks(body, "cells", size=16))
    assert len(parts) > 2 and json.loads(b"".join(parts)) == body
    assert json.loads(b"".join(json_chunks({"cells": []}, "cells"))) == {"cells": []}
    nested = {"a": {"b": {f"k{i}": [i] * 9 for i in range(5)}, "c": 3}, "cells": [], "d": 4}
    parts = list(json_chunks(nested, "cells", ("a", "b"), ("a", "c", "x"), ("z",), size=16))
    assert len(parts) > 3 and b"".join(parts) == json.dumps(nested).encode()
