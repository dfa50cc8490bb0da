"""``ipytwist console``: the real console in a pseudo-terminal (pexpect) against a real
service started by ``twistd``, over REST + WebSocket only."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import subprocess
import sys
import time

import pexpect
import pytest
from benchlib.procs import wait_for
from benchlib.servers import WARM_POOL, Service
from benchlib.wsclient import WSClient
from support.console import console_env
from support.service import service_fixture
from support.tcp_proxy import Proxy

PROMPT = r"In \[(\d+)\]:"
ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

svc = service_fixture("console", *WARM_POOL)


class Console:
    """One ``python -m ipytwist console`` in a pty, with everything it wrote."""

    def __init__(self, home: str, *args: str, color: bool = False) -> None:
        self.log = io.StringIO()
        self.p = pexpect.spawn(
            sys.executable,
            ["-m", "ipytwist", "console", *([] if color else ["--no-color"]), *args],
            env=console_env(home),
            encoding="utf-8",
            timeout=20,
            dimensions=(50, 200),
        )
        self.p.logfile_read = self.log

    def prompt(self, timeout: float = 20) -> int:
        self.p.expect(PROMPT, timeout=timeout)
        return int(self.p.match.group(1))

    def run(self, code: str) -> None:
        self.p.send(code + "\r")

    def text(self) -> str:
        return ANSI_RE.sub("", self.log.getvalue())

    def quit(self) -> int:
        self.p.sendeof()
        self.p.expect(pexpect.EOF)
        self.p.close()
        return self.p.exitstatus


@pytest.fixture
def home(tmp_path: object) -> str:
    return str(tmp_path)


def attach(svc: Service, home: str, kernel: str, url: str | None = None) -> Console:
    c = Console(home, url or svc.url, "--token", svc.token, "--kernel", kernel)
    c.prompt()
    return c


def test_the_prompt_runs_code_with_the_kernels_counts(
    svc: Service, home: str, kernel_id: str
) -> None:
    c = Console(home, svc.url, "--token", svc.token, "--kernel", kernel_id)
    assert c.prompt() == 1
    c.run("6*7*1000")
    c.p.expect(r"Out\[1\]: 42000")
    assert c.prompt() == 2
    c.run("1/0")
    c.p.expect("ZeroDivisionError")
    assert c.prompt() == 3
    assert c.quit() == 0
    assert "Traceback (most recent call last)" not in svc.log()


def test_attaching_to_a_used_kernel_prompts_its_next_count(
    svc: Service, home: str, kernel_id: str
) -> None:
    other = WSClient.connect(svc, kernel_id)
    try:
        other.execute("1")
        other.execute("2")
    finally:
        other.ws.close()
    c = attach(svc, home, kernel_id)  # waits for the first prompt
    assert int(c.p.match.group(1)) == 3
    c.run("40 + 2")
    c.p.expect(r"Out\[3\]: 42")


def test_output_streams_while_the_cell_runs(svc: Service, home: str, kernel_id: str) -> None:
    c = attach(svc, home, kernel_id)
    t0 = time.monotonic()
    c.run("import time; [print('tick', i, flush=True) or time.sleep(0.6) for i in range(3)]")
    c.p.expect("tick 0")
    first = time.monotonic() - t0
    c.p.expect("tick 2")
    last = time.monotonic() - t0
    c.prompt()
    assert first < 1.0 < last, (first, last)


def test_tab_completes_from_the_kernel(svc: Service, home: str, kernel_id: str) -> None:
    c = attach(svc, home, kernel_id)
    c.p.send("list(enumer\t")
    c.p.expect("enumerate")
    c.run("('ab'))")
    c.p.expect(re.escape("[(0, 'a'), (1, 'b')]"))


def test_question_mark_shows_the_docstring(svc: Service, home: str, kernel_id: str) -> None:
    c = attach(svc, home, kernel_id)
    c.run("len?")
    c.p.expect("Return the number of items in a container")
    c.prompt()


def test_ctrl_c_interrupts_the_running_cell(svc: Service, home: str, kernel_id: str) -> None:
    c = attach(svc, home, kernel_id)
    # Ctrl-C once the cell shows it runs, as a user would: the kernel's state over REST
    # may still say busy from the console's own start-up request (its idle comes after
    # the reply that lets the prompt show), and a Ctrl-C read with the Enter is the
    # prompt's.
    c.run("import time; print('sleeping', 'now'); time.sleep(100)")
    c.p.expect("sleeping now")
    assert svc.api("GET", f"/api/kernels/{kernel_id}").json()["execution_state"] == "busy"
    t0 = time.monotonic()
    c.p.sendintr()
    c.p.expect("KeyboardInterrupt", timeout=5)
    assert time.monotonic() - t0 < 2.0
    c.prompt()
    assert "ipytwist" not in c.text().split("KeyboardInterrupt", 1)[1]  # no frames of ours
    c.p.send("\x03")  # at the prompt Ctrl-C clears the line
    c.prompt()
    c.run("'alive'")
    c.p.expect("Out.*'alive'")


def test_input_is_answered_at_the_terminal(svc: Service, home: str, kernel_id: str) -> None:
    c = attach(svc, home, kernel_id)
    c.run("name = input('who' + ' are you? ')")
    c.p.expect("who are you\\?")
    c.run("Ann")
    c.prompt()
    c.run("name.upper()")
    c.p.expect("Out.*'ANN'")


def test_a_line_ending_with_a_backslash_continues(svc: Service, home: str, kernel_id: str) -> None:
    c = attach(svc, home, kernel_id)
    c.run("x = 1 + \\")
    c.p.expect(r"\.\.\.:")
    c.run("2")
    c.prompt()
    c.run("def f():")
    c.p.expect(r"\.\.\.:")
    c.run("return x * 10")
    c.p.expect(r"\.\.\.:")
    c.run("")
    c.prompt()
    c.run("f()")
    c.p.expect(r"Out\[\d+\]: 30")


def test_another_clients_cell_appears_at_the_idle_prompt(
    svc: Service, home: str, kernel_id: str
) -> None:
    c = attach(svc, home, kernel_id)
    other = WSClient.connect(svc, kernel_id)
    try:
        other.execute("print('hello from elsewhere')")
    finally:
        other.ws.close()
    c.p.expect("another client")
    c.p.expect("print\\('hello from elsewhere'\\)")  # its code, under its In [n]
    c.p.expect("hello from elsewhere")
    c.prompt()  # redrawn below
    c.run("2+2")
    c.p.expect(r"Out\[2\]: 4")  # and the count follows the other client's cell


def test_a_cut_connection_mid_cell_loses_no_output(svc: Service, home: str, kernel_id: str) -> None:
    proxy = Proxy(svc.port)
    try:
        c = attach(svc, home, kernel_id, url=f"http://127.0.0.1:{proxy.port}/")
        c.run("import time; [print('line', i, flush=True) or time.sleep(0.3) for i in range(8)]")
        c.p.expect("line 1")
        proxy.cut()
        c.p.expect("connection lost")

        def printed_meanwhile() -> bool:
            cells = svc.api("GET", f"/api/kernels/{kernel_id}/transcript").json()["cells"]
            return any("line 6" in json.dumps(cell["outputs"]) for cell in cells)

        wait_for(printed_meanwhile, 10, "the cell to print while the console is cut off")
        proxy.restore()
        c.p.expect("reconnected")
        c.prompt()
        lines = re.findall(r"line (\d)", c.text())
        assert lines == [str(i) for i in range(8)]
    finally:
        proxy.close()


def test_a_server_that_is_gone_is_said_plainly(svc: Service, home: str, kernel_id: str) -> None:
    proxy = Proxy(svc.port)
    try:
        c = Console(
            home,
            f"http://127.0.0.1:{proxy.port}/",
            "--token",
            svc.token,
            "--kernel",
            kernel_id,
            "--reconnect-timeout",
            "1",
        )
        c.prompt()
        proxy.cut()
        c.p.expect("is gone")
        c.p.expect(pexpect.EOF)
        c.p.close()
        assert c.p.exitstatus == 1
        assert "Traceback" not in c.text()
    finally:
        proxy.close()


def run_cli(home: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ipytwist", *args],
        env=console_env(home),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--token", "wrong"], "refused the token"),
        (["--kernel", "no-such-kernel"], "no kernel no-such-kernel"),
        (["--url", "http://127.0.0.1:9/"], "cannot reach"),
        (["--url", "ftp://example.org/"], "not an http(s) URL"),
    ],
)
def test_bad_input_is_one_line_and_a_failure(
    svc: Service, home: str, args: list[str], says: str
) -> None:
    url = svc.url
    if args[0] == "--url":
        url, args = args[1], []
    token = [] if "--token" in args else ["--token", svc.token]
    out = run_cli(home, "console", url, *token, *args)
    assert out.returncode == 1
    assert out.stdout == ""
    assert len(out.stderr.splitlines()) == 1, out.stderr
    assert says in out.stderr


def test_the_token_is_asked_once_and_remembered(svc: Service, home: str) -> None:
    c = Console(home, svc.url)
    c.p.expect("Token for")
    c.p.sendline(svc.token)
    c.prompt()
    c.run("41+1")
    c.p.expect("Out.*42")
    c.prompt()
    c.p.sendeof()
    c.p.expect(r"Shut down kernel")
    c.p.sendline("y")
    c.p.expect("shut down")
    c.p.expect(pexpect.EOF)
    store = os.path.join(home, "ipytwist", "console", "tokens.json")
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o600
    # Asked no more; the input history is the server's.
    c = Console(home, svc.url)
    c.prompt()
    c.p.send("\x1b[A")  # Up: the previous session's input
    c.p.send("\r")
    c.p.expect("Out.*42")
    c.prompt()
    c.p.sendeof()
    c.p.expect(r"Shut down kernel")
    c.p.sendline("y")
    c.p.expect(pexpect.EOF)


def test_without_a_url_the_local_service_is_used(svc: Service, home: str, kernel_id: str) -> None:
    c = Console(home, "--state-dir", svc.state_dir, "--kernel", kernel_id)
    c.prompt()
    c.run("'local'")
    c.p.expect("Out.*'local'")
    c.prompt()
    assert c.quit() == 0
    out = run_cli(home, "kernels", "--state-dir", svc.state_dir)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].split() == [
        "ID",
        "NAME",
        "STATE",
        "CLIENTS",
        "LAST",
        "ACTIVITY",
    ]
    assert kernel_id in out.stdout


def test_shell_commands_lay_out_for_the_consoles_terminal(
    svc: Service, home: str, kernel_id: str
) -> None:
    """The console's terminal is 200 columns wide: `!` commands (run in a pty) and
    COLUMNS see that, not Jupyter's 80; a client that gives no size changes nothing."""
    c = attach(svc, home, kernel_id)
    c.run("!stty size")
    c.p.expect(r"(\d+) (\d+)\r*\n")
    assert c.p.match.groups() == ("50", "200")
    c.prompt()
    c.run("import os; print('cols', os.environ.get('COLUMNS'))")
    c.p.expect(r"cols (\w+)")
    assert c.p.match.group(1) == "200"
    c.prompt()
    assert c.quit() == 0
    client = WSClient.connect(svc, kernel_id)
    try:
        _, msgs = client.execute("import os; print(os.environ.get('COLUMNS'))")
    finally:
        client.ws.close()
    printed = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")
    assert printed == "None\n"  # put back after the console's cells


def _colours(text: str, tokens: tuple[str, ...]) -> list[str]:
    """For each of ``tokens``, the last SGR sequence written before it in ``text``."""
    colours = []
    for token in tokens:
        codes = re.findall(r"\x1b\[[0-9;]*m", text[: text.rindex(token)])
        colours.append(codes[-1] if codes else "")
    return colours


TYPED = "def fn(x): return 'abc' + 4242  # note"
TOKENS = ("def", "fn", "'abc'", "+", "4242", "# note")


def _typed_colours(argv: list[str], home: str) -> list[str]:
    log = io.StringIO()
    env = dict(console_env(home), IPYTHONDIR=home)
    p = pexpect.spawn(sys.executable, argv, env=env, encoding="utf-8", timeout=20)
    p.logfile_read = log
    try:
        p.expect(r"In \[")
        p.send(TYPED)
        p.expect("note")
        return _colours(log.getvalue(), TOKENS)
    finally:
        p.sendcontrol("c")
        p.sendeof()
        p.close(force=True)


def test_typed_code_has_plain_ipythons_colours(svc: Service, home: str, kernel_id: str) -> None:
    """Code typed at the prompt is drawn in the colours plain `ipython` gives it."""
    url = ["-m", "ipytwist", "console", svc.url, "--token", svc.token, "--kernel", kernel_id]
    ours = _typed_colours(url, home)
    theirs = _typed_colours(
        ["-m", "IPython", "--no-banner", "--HistoryManager.enabled=False"], home
    )
    assert ours == theirs, dict(zip(TOKENS, zip(ours, theirs, strict=True), strict=True))
