"""``--base-url``: what it accepts (normalised to start and end with "/"), what it refuses
with a usage error, and the URL the service announces and writes to server.json."""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python import usage

from ipytwist.tap import Options, _ExitStatus, _Listening


def _parsed(tmp_path: Any, *args: str) -> Options:
    options = Options()
    options.parseOptions([*args, "--state-dir", str(tmp_path / "state")])
    return options


@pytest.mark.parametrize(
    "given, base",
    [
        (None, "/"),
        ("/", "/"),
        ("", "/"),
        ("/user/alice/", "/user/alice/"),
        ("/user/alice", "/user/alice/"),
        ("user/alice", "/user/alice/"),
        ("/user/al%40ce/", "/user/al%40ce/"),
        ("/user/a.b-c_d~e/", "/user/a.b-c_d~e/"),
    ],
)
def test_a_plain_path_is_normalised(tmp_path: Any, given: str | None, base: str) -> None:
    options = _parsed(tmp_path, *(["--base-url", given] if given is not None else []))
    assert options.config().base_url == base


@pytest.mark.parametrize(
    "given",
    [
        "http://host/user/alice/",
        "https:/user/alice/",
        "//evil.example/user/",
        "/user/../alice/",
        "/user/./alice/",
        "/user/%2e%2E/x/",
        "/user//alice/",
        "/user/alice/?x=1",
        "/user/alice/#top",
        "/user/al ice/",
        "/user/al\\ice/",
        "/user/a%2Fb/",
        "/user/%zz/",
        "/user/\u00e9/",
        "/user/\nalice/",
    ],
)
def test_anything_but_a_plain_path_is_a_usage_error(tmp_path: Any, given: str) -> None:
    with pytest.raises(usage.UsageError, match="^--base-url: "):
        _parsed(tmp_path, "--base-url", given)


class _Port:
    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 8888)


def test_server_json_and_the_log_carry_the_prefix(tmp_path: Any) -> None:
    lines: list[str] = []

    def observe(event: dict) -> None:
        lines.append(formatEvent(event))

    state = tmp_path / "state"
    listening = _Listening(
        None, None, "tok", str(state), False, exit_status=_ExitStatus(None), base_url="/user/a/"
    )
    globalLogPublisher.addObserver(observe)
    try:
        listening._announce(_Port())
    finally:
        globalLogPublisher.removeObserver(observe)
    assert json.loads((state / "server.json").read_text())["url"] == (
        "http://127.0.0.1:8888/user/a/"
    )
    assert any("serving at http://127.0.0.1:8888/user/a/" in line for line in lines), lines
