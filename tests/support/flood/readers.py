"""The flood test's reader processes, seen from the test: started, told what to do, and
their summaries read back."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from typing import Any

from benchlib.servers import Service

#: tests/, the directory the readers run in (``python -m support.flood.reader``).
TESTS_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Reader:
    """One reader process (:mod:`support.flood.reader`): its stdout lines, stdin commands
    and JSON summary.  ``options`` are more of its command line options."""

    def __init__(
        self, role: str, svc: Service, kernel_id: str, flood_id: str, tmp: str, *options: str
    ) -> None:
        self.role = role
        self.out = os.path.join(tmp, f"{role}.json")
        self.err_path = os.path.join(tmp, f"{role}.stderr")
        self._err = open(self.err_path, "wb")  # closed in stop()
        argv = [
            sys.executable,
            "-m",
            "support.flood.reader",
            "--url",
            svc.ws_url(kernel_id),
            "--token",
            svc.token,
            "--role",
            role,
            "--flood-id",
            flood_id,
            "--out",
            self.out,
            *options,
        ]
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
            cwd=TESTS_DIR,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.strip())
        self._lines.put(None)

    def expect(self, word: str, timeout: float) -> None:
        """Wait (bounded) for the reader to print ``word``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"{self.role} reader: no {word!r} within {timeout}s\n{self.stderr()}"
                ) from None
            if line is None:
                raise AssertionError(
                    f"{self.role} reader exited ({self.proc.wait()}) before {word!r}\n"
                    + self.stderr()
                )
            if line == word:
                return

    def tell(self, word: str) -> None:
        """Send a command; a reader that already exited (e.g. closed) ignores it."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(word + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass

    def finish(self, timeout: float) -> dict[str, Any] | None:
        """Wait (bounded) for the reader to exit; its summary, or None if it wrote none."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        try:
            with open(self.out) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return None

    def stderr(self) -> str:
        self._err.flush()
        with open(self.err_path, encoding="utf-8", errors="replace") as f:
            return f.read()[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._err.close()
