"""Service options: --prespawn and --cull-idle, and what is refused before serving."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from benchlib.procs import wait_for
from benchlib.running import running_service
from benchlib.servers import twistd_command
from benchlib.wsclient import WSClient, WSClosed
from twisted.internet.address import IPv4Address
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python import usage

from ipytwist.kernel import LocalProvisioner
from ipytwist.tap import Options, _ExitStatus, _Listening


def test_prespawned_kernel_is_ready_at_once_and_the_pool_refills(tmp_path_factory: Any) -> None:
    """With --prespawn 1 a warm interpreter waits before anyone asks; POST /api/kernels hands
    it out already idle, its first cell runs without a start-up wait, and the pool refills."""
    with running_service(tmp_path_factory, "prespawn", "--prespawn", "1") as svc:

        def warm() -> int:
            return svc.api("GET", "/api/status").json()["warm_kernels"]

        wait_for(lambda: warm() == 1, 30, "a warm kernel")
        r = svc.api("POST", "/api/kernels", json={"name": "ipytwist"})
        assert r.status_code == 201
        model = r.json()
        assert model["execution_state"] == "idle"
        assert os.path.exists(svc.connection_file(model["id"]))
        ws = WSClient.connect(svc, model["id"])
        try:
            t0 = time.monotonic()
            reply, _ = ws.execute("1 + 1")
            assert reply["content"]["status"] == "ok"
            assert time.monotonic() - t0 < 0.5
        finally:
            ws.close()
        wait_for(lambda: warm() == 1, 30, "the pool to refill")
        assert len(svc.api("GET", "/api/kernels").json()) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["--listen", "bogus:1"],
        ["--listen", "tcp:99999"],
        ["--listen", "tcp:notaport"],
        ["--cull-idle", "-5"],
        ["--replay-bytes", "0"],
        ["--replay-messages", "0"],
        ["--max-kernels", "-1"],
    ],
)
def test_impossible_options_are_usage_errors(argv: list[str]) -> None:
    """An endpoint that can never listen, or a negative or zero bound, is refused when the
    options are parsed, not at run time."""
    with pytest.raises(usage.UsageError):
        Options().parseOptions(argv)


def test_a_port_in_use_ends_the_service_with_one_line(tmp_path: Any) -> None:
    """twistd exits 1 within seconds, having logged one line saying why and no
    traceback, instead of running on with nothing to serve."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [
                *twistd_command(),
                "-n",
                "--pidfile=",
                "ipytwist",
                "--listen",
                f"tcp:{port}:interface=127.0.0.1",
                "--state-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    lines = [line for line in out.splitlines() if "cannot listen" in line]
    assert len(lines) == 1 and "Address already in use" in lines[0], out
    assert "Traceback" not in out
    assert not os.path.exists(os.path.join(str(tmp_path), "server.json"))


def test_a_state_dir_others_can_write_to_is_refused(tmp_path: Any) -> None:
    """The token is written to STATE_DIR/server.json: a directory that is group- or
    world-writable (where a symlink could be planted) is a usage error."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(usage.UsageError, match="unsafe"):
        Options().parseOptions(["--state-dir", str(shared)])
    shared.chmod(0o700)
    Options().parseOptions(["--state-dir", str(shared)])


class _Port:
    def __init__(self, host: str, port: int) -> None:
        self.address = IPv4Address("TCP", host, port)

    def getHost(self) -> IPv4Address:
        return self.address


def _announced(tmp_path: Any, host: str, tls: bool = False, hub_api: str = "") -> list[str]:
    lines: list[str] = []

    def observe(event: dict) -> None:
        lines.append(formatEvent(event))

    state = str(tmp_path / "state")
    listening = _Listening(
        None, None, "tok", state, tls, exit_status=_ExitStatus(None), hub_api=hub_api
    )
    globalLogPublisher.addObserver(observe)
    try:
        listening._announce(_Port(host, 8888))
    finally:
        globalLogPublisher.removeObserver(observe)
    return lines


def test_binding_every_interface_is_said_plainly_and_warned_about(tmp_path: Any) -> None:
    """The log names the real address; without TLS off loopback it warns loudly."""
    lines = _announced(tmp_path, "0.0.0.0")
    assert any("listening on 0.0.0.0 port 8888 (every interface)" in line for line in lines)
    assert any("reachable from other machines over plain HTTP" in line for line in lines)
    assert any(str(tmp_path / "state") in line for line in lines)  # where the state is
    quiet = _announced(tmp_path, "127.0.0.1")
    assert not any("reachable from other machines" in line for line in quiet)
    tls = _announced(tmp_path, "0.0.0.0", tls=True)
    assert not any("reachable from other machines" in line for line in tls)


def test_under_jupyterhub_the_log_names_the_hubs_logins_not_the_services_token(
    tmp_path: Any,
) -> None:
    """``ipytwist singleuser``: the service's own token lets no one in, so the log does
    not point at it (before, it named the masked token and server.json)."""
    hub = _announced(tmp_path, "127.0.0.1", hub_api="http://127.0.0.1:8081/hub/api")
    assert any("logins go through JupyterHub (http://127.0.0.1:8081/hub/api)" in x for x in hub)
    assert not any("token" in line and "JupyterHub" not in line for line in hub)
    alone = _announced(tmp_path, "127.0.0.1")
    assert any("the whole token is in" in line for line in alone)


def test_workers_do_not_inherit_the_token(monkeypatch: Any) -> None:
    """IPYTWIST_TOKEN in the service's environment is not passed on to user code."""
    monkeypatch.setenv("IPYTWIST_TOKEN", "secret")
    spawned: list[dict] = []

    class Reactor:
        def spawnProcess(self, proto: Any, exe: str, args: list, env: dict, **kw: Any) -> None:
            spawned.append(env)

    class Listener:
        def worker_output(self, name: str, data: bytes) -> None:
            pass

    LocalProvisioner(Reactor()).start(Listener())  # type: ignore[arg-type]
    assert "IPYTWIST_TOKEN" not in spawned[0]
    assert os.environ["IPYTWIST_TOKEN"] == "secret"


def test_max_message_bytes_bounds_both_transports_of_a_hosted_kernel(
    tmp_path_factory: Any,
) -> None:
    """With --max-message-bytes 100000 a 200 kB request is refused on the WebSocket (close
    1009) and dropped on ZeroMQ, and the kernel goes on answering small ones on both."""
    from jupyter_client import BlockingKernelClient

    big = "x = '" + "y" * 200_000 + "'"
    with running_service(tmp_path_factory, "limit", "--max-message-bytes", "100000") as svc:
        kid = svc.start_kernel()
        ws = WSClient.connect(svc, kid)
        try:
            ws.execute_request(big)
            # A close 1009, never a reply (nor a reset: the connection lingers).
            with pytest.raises(WSClosed) as closed:
                while True:
                    assert ws.recv()["msg_type"] != "execute_reply"
            assert closed.value.code == 1009
        finally:
            ws.close()
        kc = BlockingKernelClient()
        kc.load_connection_file(svc.connection_file(kid))
        kc.start_channels()
        try:
            dropped = kc.execute(big)
            answered = kc.execute("6 * 7")
            reply = kc.get_shell_msg(timeout=30)
            assert reply["parent_header"]["msg_id"] == answered != dropped
            assert reply["content"]["status"] == "ok"
        finally:
            kc.stop_channels()
        ws = WSClient.connect(svc, kid)
        try:
            reply, _ = ws.execute("1 + 1")
            assert reply["content"]["status"] == "ok"
        finally:
            ws.close()
        wait_for(lambda: "exceeds 100000" in svc.log(), 10, "the dropped ZeroMQ message logged")


def _readme_options() -> dict[str, str]:
    """The README's table of options: each option's name and its row."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `--")]
    return {name: row for row in rows for name in re.findall(r"`--([a-z-]+)", row.split("|")[1])}


def test_the_readme_and_help_agree_on_every_option_and_its_unit() -> None:
    """Issue 16: the README said --transcript-bytes counts bytes, --help said characters.
    Every option in the README's table is one of the service's, and an option counted in
    bytes says so in both places, and neither speaks of characters."""
    readme = _readme_options()
    helps = {p[0]: p[3] for p in Options.optParameters} | {f[0]: f[2] for f in Options.optFlags}
    for method in (m for m in dir(Options) if m.startswith("opt_")):  # repeatable options
        helps.setdefault(method[4:].replace("_", "-"), getattr(Options, method).__doc__ or "")
    assert readme and set(readme) <= set(helps), set(readme) - set(helps)
    for name in (n for n in readme if n.endswith("-bytes")):
        default, meaning = readme[name].split("|")[2:4]
        row = (default + meaning).lower()
        assert ("byte" in row or "mib" in row) and "character" not in row, (name, row)
        assert "byte" in helps[name].lower() and "character" not in helps[name].lower(), name
