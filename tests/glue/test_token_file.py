"""The token kept in the state directory (ipytwist/tokenfile.py): made once, private from
its first byte, read back on every start, refused (never replaced) when it is unsafe or
malformed; and the service tree of ``makeService`` serving with it, started on a
``MemoryReactorClock``."""

from __future__ import annotations

import json
import os
import stat
from typing import Any

import pytest
from glue_fakes import Browser, no_zmq_sockets
from test_state_dir import Critical, critical, start  # noqa: F401  # (a fixture)
from twisted.application.internet import StreamServerEndpointService
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

import ipytwist.tap as tap
import ipytwist.tokenfile as tokenfile
from ipytwist.statedir import StateDirLock
from ipytwist.tap import Options, makeService
from ipytwist.tokenfile import TOKEN_NAME, TokenFileError, load_or_make_token

GOOD = "a-token-someone-wrote-0123456789"


def test_the_first_start_makes_a_private_token_and_later_ones_read_it(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even with umask 0 the file is 0600 and was 0600 when made; nothing else is left."""
    opened: list[tuple[int, int]] = []
    real_open = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        opened.append((flags, mode))
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(os, "open", spy)
    old = os.umask(0)
    try:
        token = load_or_make_token(str(tmp_path))
    finally:
        os.umask(old)
    path = tmp_path / TOKEN_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_nlink == 1
    assert path.read_text() == token + "\n" and len(token) == 2 * tokenfile.TOKEN_BYTES
    made = [(f, m) for f, m in opened if f & os.O_CREAT]
    assert made and all(f & os.O_EXCL and f & os.O_NOFOLLOW and m == 0o600 for f, m in made)
    assert os.listdir(tmp_path) == [TOKEN_NAME]
    assert load_or_make_token(str(tmp_path)) == token


@pytest.mark.parametrize("text", [GOOD, GOOD + "\n", "x" * 512])
def test_a_token_written_by_hand_is_read(tmp_path: Any, text: str) -> None:
    path = tmp_path / TOKEN_NAME
    path.write_text(text)
    path.chmod(0o600)
    assert load_or_make_token(str(tmp_path)) == text.rstrip("\n")
    path.chmod(0o400)  # read-only for its owner: private too
    assert load_or_make_token(str(tmp_path)) == text.rstrip("\n")


def refused(tmp_path: Any) -> str:
    with pytest.raises(TokenFileError) as e:
        load_or_make_token(str(tmp_path))
    text = str(e.value)
    assert "\n" not in text and str(tmp_path / TOKEN_NAME) in text
    return text


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660])
def test_a_token_file_open_to_others_is_refused(tmp_path: Any, mode: int) -> None:
    path = tmp_path / TOKEN_NAME
    path.write_text(GOOD)
    path.chmod(mode)
    assert f"is open to others (mode {mode:04o}): chmod 600 it" in refused(tmp_path)
    assert path.read_text() == GOOD and stat.S_IMODE(path.stat().st_mode) == mode  # untouched


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
def test_a_token_file_of_another_user_is_refused(tmp_path: Any) -> None:
    path = tmp_path / TOKEN_NAME
    path.write_text(GOOD)
    path.chmod(0o600)
    os.chown(path, 65534, 65534)
    assert "belongs to uid 65534, not to you" in refused(tmp_path)


def test_a_token_file_that_is_a_symlink_is_refused(tmp_path: Any) -> None:
    """Even to a good token file of the user's own."""
    target = tmp_path / "elsewhere"
    target.write_text(GOOD)
    target.chmod(0o600)
    (tmp_path / TOKEN_NAME).symlink_to(target)
    assert "is a symbolic link: remove it" in refused(tmp_path)
    (tmp_path / TOKEN_NAME).unlink()
    (tmp_path / TOKEN_NAME).symlink_to(tmp_path / "nowhere")  # dangling: not made through
    assert "is a symbolic link" in refused(tmp_path)
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_token_file_that_is_not_a_file_is_refused(tmp_path: Any, kind: str) -> None:
    """A FIFO is not waited on."""
    path = tmp_path / TOKEN_NAME
    os.mkfifo(path, 0o600) if kind == "fifo" else path.mkdir(0o700)
    assert "is not a regular file" in refused(tmp_path)


@pytest.mark.parametrize(
    "data, why",
    [
        (b"", "is empty"),
        (b"\n\n", "is empty"),
        (b"short\n", "does not hold one token"),
        (b"two words token-0123456789", "does not hold one token"),
        (GOOD.encode() + b"\n" + GOOD.encode(), "does not hold one token"),
        (b"\xff" * 40, "does not hold one token"),
        (b"x" * 513, "does not hold one token"),
        (b"x" * 10_000_000, "does not hold one token"),
    ],
)
def test_an_empty_or_malformed_token_file_is_refused(tmp_path: Any, data: bytes, why: str) -> None:
    path = tmp_path / TOKEN_NAME
    path.write_bytes(data)
    path.chmod(0o600)
    text = refused(tmp_path)
    assert f"{why}" in text and "remove it to have a new token made" in text
    assert len(text) < 300 and path.read_bytes() == data  # never the payload, never replaced


def test_a_token_that_cannot_be_made_is_refused(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk is full: one line, and no file half made."""

    def full(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    assert "cannot be made: No space left on device" in refused(tmp_path)
    assert os.listdir(tmp_path) == []


def no_token_options(state_dir: str) -> Options:
    opts = Options()
    opts.parseOptions(["--state-dir", state_dir, "--listen", "tcp:0:interface=127.0.0.1"])
    return opts


def listening_site(top: Any) -> Any:
    (listening,) = [s for s in top if isinstance(s, StreamServerEndpointService)]
    return listening.factory


def test_without_a_token_the_service_serves_with_the_kept_one(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two starts on one state directory: the second takes the first's token (in
    server.json too); a token given by --token or $IPYTWIST_TOKEN wins and is not
    written."""
    no_zmq_sockets(monkeypatch)
    monkeypatch.delenv("IPYTWIST_TOKEN", raising=False)
    state_dir = str(tmp_path / "state")
    tokens = []
    for _ in range(2):
        top = makeService(no_token_options(state_dir), MemoryReactorClock())
        start(top)
        with open(os.path.join(state_dir, "server.json")) as f:
            tokens.append(json.load(f)["token"])
        browser = Browser(listening_site(top))
        assert browser.request("GET", "/api/kernels", token=tokens[-1]).code == 200
        assert browser.request("GET", "/api/kernels", token="x" * 64).code == 401
        top.stopService()
    assert tokens[0] == tokens[1] == load_or_make_token(state_dir)
    monkeypatch.setenv("IPYTWIST_TOKEN", "from-the-environment")
    top = makeService(no_token_options(state_dir), MemoryReactorClock())
    start(top)
    browser = Browser(listening_site(top))
    assert browser.request("GET", "/api/kernels", token="from-the-environment").code == 200
    assert browser.request("GET", "/api/kernels", token=tokens[0]).code == 401
    assert load_or_make_token(state_dir) == tokens[0]  # the file is as it was
    top.stopService()


def test_a_bad_token_file_starts_nothing_and_exits_1(
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    critical: Critical,  # noqa: F811
) -> None:
    """One critical line; nothing listens; the directory is let go (a fixed file lets
    the next start serve)."""
    no_zmq_sockets(monkeypatch)
    monkeypatch.delenv("IPYTWIST_TOKEN", raising=False)
    state_dir = tmp_path / "state"
    state_dir.mkdir(0o700)
    (state_dir / TOKEN_NAME).write_text(GOOD)
    (state_dir / TOKEN_NAME).chmod(0o644)
    reactor = MemoryReactorClock()
    top = makeService(no_token_options(str(state_dir)), reactor)
    start(top)
    assert len(critical.lines) == 1 and "is open to others" in critical.lines[0]
    assert GOOD not in critical.lines[0]
    assert reactor.tcpServers == [] and not (state_dir / "server.json").exists()
    (exit_status,) = [s for s in top if isinstance(s, tap._ExitStatus)]
    assert exit_status.code == 1
    d = top.stopService()
    d.addErrback(Failure.raiseException)
    lock = StateDirLock(str(state_dir))
    lock.acquire()  # let go
    lock.release()
    (state_dir / TOKEN_NAME).chmod(0o600)
    top = makeService(no_token_options(str(state_dir)), MemoryReactorClock())
    start(top)
    assert Browser(listening_site(top)).request("GET", "/api/kernels", token=GOOD).code == 200
    top.stopService()
