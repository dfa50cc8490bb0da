"""Fakes of the kernel's collaborators: workers that start without processes, the
clients that send requests, a subscriber that keeps every iopub message, and a push
producer that records what it is asked."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed

from ipytwist.kernel import Envelope


class FakeWorker:
    """A worker as the kernel sees it; the test says what the interpreter reports."""

    def __init__(self, listener: Any, pid: int) -> None:
        self.listener = listener
        self.pid = pid
        self.sent: list[dict[str, Any]] = []
        self.signals: list[int] = []
        self.stopped = False
        self.output_paused = False
        #: When set, stop() answers with this Deferred (a worker slow to exit).
        self.stop_result: Deferred[Any] | None = None

    def send(self, record: dict[str, Any]) -> None:
        self.sent.append(record)

    def signal(self, signum: int) -> None:
        self.signals.append(signum)

    def stop(self, reactor: Any, grace: float = 2.0) -> Deferred[Any]:
        self.stopped = True
        return self.stop_result if self.stop_result is not None else succeed("stopped")

    def pause_output(self) -> None:
        self.output_paused = True

    def resume_output(self) -> None:
        self.output_paused = False

    # -- what a real worker would report --------------------------------------

    def ready(self) -> None:
        self.listener.worker_event({"ev": "ready", "pid": self.pid})

    def reply(self, content: dict[str, Any]) -> None:
        self.listener.worker_event({"ev": "reply", "content": content})

    def die(self, description: str = "was killed by signal 9 (SIGKILL)") -> None:
        self.listener.worker_exited(self, description)


class FakeProvisioner:
    """Starts FakeWorkers; they say they are ready when the test says so."""

    def __init__(self, first_pid: int = 99_000_000) -> None:
        self.first_pid = first_pid
        self.workers: list[FakeWorker] = []
        self._ready: set[int] = set()

    def start(self, listener: Any) -> FakeWorker:
        worker = FakeWorker(listener, self.first_pid + len(self.workers))
        self.workers.append(worker)
        return worker

    def report_ready(self) -> None:
        """Every started worker that has not said so yet says it is ready (not those
        their readiness lets start: a start limit's queue)."""
        for i, w in enumerate(list(self.workers)):
            if i not in self._ready:
                self._ready.add(i)
                w.ready()


class Requester:
    """A client connection that keeps what the kernel sends it."""

    origin = "test"

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, channel: str, msg: dict[str, Any]) -> None:
        self.sent.append((channel, msg))

    def replies(self) -> list[dict[str, Any]]:
        return [m for ch, m in self.sent if ch in ("shell", "control")]

    def reply_to(self, req: dict[str, Any]) -> dict[str, Any]:
        (m,) = [m for m in self.replies() if m["parent_header"]["msg_id"] == req["msg_id"]]
        return m


class Iopub:
    """A subscriber of a kernel's output log that keeps every message."""

    def __init__(self) -> None:
        self.msgs: list[dict[str, Any]] = []

    def deliver(self, env: Envelope) -> None:
        self.msgs.append(env.msg)

    def of(self, req: dict[str, Any]) -> list[tuple[str, Any]]:
        """(msg_type, state or text) of the messages parented to ``req``."""
        out = []
        for m in self.msgs:
            if m["parent_header"].get("msg_id") == req["msg_id"]:
                c = m["content"]
                out.append((m["msg_type"], c.get("execution_state", c.get("text"))))
        return out

    def states(self) -> list[str]:
        return [m["content"]["execution_state"] for m in self.msgs if m["msg_type"] == "status"]


class RecordingProducer:
    """A push producer that records each call its consumer makes ("pause", "resume",
    "stop"), in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")
