"""The soak's workload: the cells its clients run and what each must show."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..aclient import Pending

DISPLAY = "display_data"
#: The soak service keeps a short output log so it is full after the warm-up: with the
#: default 10,000 messages the logs would still be filling at the end, which is growth
#: by design, not a leak.
SOAK_SERVICE_ARGS = ("--replay-messages", "500")
#: Mean pause between a client's requests (uniform in [0, 2 x this]).
SOAK_THINK_SECONDS = 0.5
#: Any single request must be answered (and reach idle) within this.
SOAK_REQUEST_TIMEOUT = 60.0
#: Cells each kernel runs before the soak: more than the 500 cells a kernel's transcript
#: keeps (ipytwist.kernel.transcript), and far more than its output log's messages.
SOAK_PREFILL_CELLS = 600


def stdout_difference(got: str, want: str, p: Pending) -> str:
    """Where printed output first differs from the expected, and how it came in
    (stream message sizes and their msg_ids), to tell a duplicate from a loss."""
    at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
    if at is None:
        at = min(len(got), len(want))
    streams = [
        (len(m["content"]["text"]), m["header"]["msg_id"][:8])
        for m in p.msgs
        if m["msg_type"] == "stream" and m["content"].get("name") == "stdout"
    ]
    return (
        f"first difference at {at}: got {got[max(0, at - 20) : at + 60]!r}, "
        f"wanted {want[max(0, at - 20) : at + 60]!r}; stream messages (chars, id): {streams}"
    )


@dataclass(frozen=True)
class SoakCell:
    """A cell of the soak workload and what its client must see."""

    kind: str
    code: str
    result: str | None = None  # its execute_result's text/plain
    stdout: str | None = None
    display: str | None = None  # the text/plain of its one display_data

    def problem(self, p: Pending) -> str | None:
        if self.result is not None:
            results = p.of_type("execute_result")
            text = results[0]["content"]["data"].get("text/plain") if results else None
            if text != self.result:
                return f"{self.code!r} gave {text!r}"
        if self.stdout is not None and p.stdout() != self.stdout:
            got = p.stdout()
            return f"{self.code!r}: {len(got)} of {len(self.stdout)} characters printed" + (
                f" ({stdout_difference(got, self.stdout, p)})"
            )
        if self.display is not None:
            shown = [m["content"]["data"].get("text/plain") for m in p.of_type(DISPLAY)]
            if shown != [self.display]:
                return f"{self.code!r} showed {shown}"
        return None


def soak_cell(rng: random.Random) -> SoakCell:
    """A small execute (checked against its result), a print burst (checked line by
    line) or a ``display()`` call."""
    r = rng.random()
    if r < 0.57:
        a, b = rng.randrange(1000), rng.randrange(1000)
        return SoakCell("execute", f"{a} * {b}", result=str(a * b))
    if r < 0.82:
        lines = rng.choice((20, 200, 2000))
        want = "".join(f"{i}\n" for i in range(lines))
        return SoakCell("print burst", f"for i in range({lines}): print(i)", stdout=want)
    v = rng.randrange(10**6)
    return SoakCell("display", f"from IPython.display import display\ndisplay({v})", display=str(v))
