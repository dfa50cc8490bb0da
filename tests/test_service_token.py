"""The token kept in the state directory, against the real service: started without
``--token``, a service takes the token of the one before it on that directory (after a
SIGTERM or a SIGKILL), so jupyter_server pointed at it with ``--GatewayClient.auth_token``
(JupyterLab's back end) goes on being let in; a loose token file stops the start."""

from __future__ import annotations

import os
import signal
import stat
from typing import Any, Self

from benchlib.scenarios.statedir import StateService, run_refused
from benchlib.servers import JupyterServer, free_port

from ipytwist.tokenfile import TOKEN_NAME


class KeptTokenService(StateService):
    """A service on a given state directory and port, with no token given: it serves
    with the one in the state directory, which :attr:`token` is once it listens."""

    def __init__(self, base_dir: str, state_dir: str, port: int) -> None:
        super().__init__(base_dir, state_dir)
        self.listen_port = port

    def argv(self) -> list[str]:
        argv = super().argv()
        at = argv.index("--token")
        del argv[at : at + 2]
        argv[argv.index("--listen") + 1] = f"tcp:{self.listen_port}:interface=127.0.0.1"
        return argv

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env.pop("IPYTWIST_TOKEN", None)
        return env

    def start(self, timeout: float = 60.0) -> Self:
        super().start(timeout)
        self.token = self.info["token"]
        return self


def test_jupyterlab_with_the_old_token_is_let_in_after_restarts(tmp_path: Any) -> None:
    """The first start makes the token file (0600); after a SIGTERM and after a SIGKILL
    the next start serves with the same token: jupyter_server's requests through the
    gateway get 200, as do direct ones with it, and another token still gets 401."""
    state_dir, port = str(tmp_path / "state"), free_port()
    first = KeptTokenService(str(tmp_path / "first"), state_dir, port).start()
    token = first.token
    js = JupyterServer(
        str(tmp_path / "js"),
        f"--gateway-url=http://127.0.0.1:{port}",
        f"--GatewayClient.auth_token={token}",
    )
    services = [first]
    try:
        path = os.path.join(state_dir, TOKEN_NAME)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with open(path) as f:
            assert f.read() == token + "\n"
        js.start()
        assert js.api("GET", "/api/kernelspecs").status_code == 200
        first.stop()  # SIGTERM
        for name, end in (("second", signal.SIGKILL), ("third", None)):
            svc = KeptTokenService(str(tmp_path / name), state_dir, port).start()
            services.append(svc)
            assert svc.token == token
            r = js.api("GET", "/api/kernelspecs")
            assert r.status_code == 200 and "ipytwist" in r.json()["kernelspecs"], r.text
            assert svc.api("GET", "/api/kernels").status_code == 200
            other = svc.api("GET", "/api/kernels", headers={"Authorization": "token " + "0" * 64})
            assert other.status_code == 401
            if end is not None:
                assert svc.proc is not None
                svc.proc.send_signal(end)
                svc.proc.wait(15)
    finally:
        js.stop()
        for svc in services:
            svc.stop()


def test_a_token_file_open_to_others_stops_the_start(tmp_path: Any) -> None:
    """One line that says what to do, exit 1, the token not in it, the file untouched."""
    state_dir = tmp_path / "state"
    state_dir.mkdir(0o700)
    (state_dir / TOKEN_NAME).write_text("t" * 64 + "\n")
    (state_dir / TOKEN_NAME).chmod(0o644)
    r = run_refused(KeptTokenService(str(tmp_path / "svc"), str(state_dir), free_port()))
    assert r.exit_code == 1 and r.one_clear_line, r
    assert "is open to others (mode 0644): chmod 600 it" in r.lines[0], r
    assert "t" * 64 not in r.lines[0]
    assert stat.S_IMODE((state_dir / TOKEN_NAME).stat().st_mode) == 0o644
    assert not (state_dir / "server.json").exists()
