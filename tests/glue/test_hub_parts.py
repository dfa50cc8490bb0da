"""The hub's parts in process, on a fake hub and Twisted's clock: the environment, the
scope check, the API client against hostile answers, the token cache, activity reports."""

from __future__ import annotations

from typing import Any

import pytest
from glue_fakes import make_host
from hubfakes import ALICE, API, BOB, ENVIRON, FakeHub, hub_env
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone

from ipytwist.hub.activity import ActivityReporter
from ipytwist.hub.api import TIMEOUT, HubApi, HubError, _Bounded
from ipytwist.hub.auth import CACHE_SECONDS, CACHE_SIZE, TokenCache
from ipytwist.hub.env import HubEnv, HubEnvError
from ipytwist.hub.scopes import grants_access

# -- the environment -------------------------------------------------------------------


def test_the_environment_is_read_as_the_hub_gives_it() -> None:
    env = hub_env()
    assert env.prefix == "/user/alice/" and env.user == "alice" and env.server_name == ""
    assert env.listen == "tcp:50123:interface=127.0.0.1"
    assert env.authorize_url == "/hub/api/oauth2/authorize"
    assert env.callback_path == "/user/alice/oauth_callback"
    assert "access:servers!server=alice/" in env.access_scopes
    assert env.activity_interval == 300.0
    # the deprecated name of the scopes, a hub under a base URL, a named server
    named = hub_env(
        JUPYTERHUB_OAUTH_ACCESS_SCOPES="",
        JUPYTERHUB_OAUTH_SCOPES='["access:servers!server=alice/lab"]',
        JUPYTERHUB_BASE_URL="/jh",
        JUPYTERHUB_SERVICE_PREFIX="/jh/user/alice/lab",
        JUPYTERHUB_SERVER_NAME="lab",
        JUPYTERHUB_ACTIVITY_INTERVAL="0.1",
    )
    assert named.access_scopes == {"access:servers!server=alice/lab"}
    assert named.authorize_url == "/jh/hub/api/oauth2/authorize"
    assert named.prefix == "/jh/user/alice/lab/" and named.server_name == "lab"
    assert named.activity_interval == 1.0  # at most once a second
    elsewhere = hub_env(JUPYTERHUB_HOST="https://hub.example.org/")  # a hub on its own host
    assert elsewhere.authorize_url == "https://hub.example.org/hub/api/oauth2/authorize"


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"JUPYTERHUB_API_TOKEN": ""}, "JUPYTERHUB_API_TOKEN not set"),
        ({"JUPYTERHUB_USER": ""}, "JUPYTERHUB_USER not set"),
        ({"JUPYTERHUB_OAUTH_ACCESS_SCOPES": "{nope"}, "JUPYTERHUB_OAUTH_ACCESS_SCOPES"),
        ({"JUPYTERHUB_OAUTH_ACCESS_SCOPES": '"one"'}, "not a list of strings"),
        ({"JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:99999/"}, "bad port"),
        ({"JUPYTERHUB_SERVICE_URL": "https://127.0.0.1:1/"}, "not an http URL"),
        ({"JUPYTERHUB_API_URL": "file:///etc"}, "JUPYTERHUB_API_URL"),
        ({"JUPYTERHUB_ACTIVITY_INTERVAL": "soon"}, "JUPYTERHUB_ACTIVITY_INTERVAL"),
    ],
)
def test_a_bad_environment_is_one_clear_error(changes: dict[str, str], said: str) -> None:
    with pytest.raises(HubEnvError, match=said):
        HubEnv.from_environ({**ENVIRON, **changes})


def test_listen_follows_the_service_url() -> None:
    assert hub_env(JUPYTERHUB_SERVICE_URL="http://0.0.0.0:8888/").listen == (
        "tcp:8888:interface=0.0.0.0"
    )
    assert hub_env(JUPYTERHUB_SERVICE_URL="http://[::1]:9/x/").listen == (r"tcp:9:interface=\:\:1")


# -- scopes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("held", "admitted"),
    [
        (["access:servers!user=alice"], True),
        (["access:servers!server=alice/"], True),
        (["access:servers"], True),
        (["access:servers!server=alice/other"], False),  # another server of alice's
        (["access:servers!user=bob"], False),
        (["access:servers!user=alice2"], False),
        (["read:users!user=alice", "self"], False),
        (["access:services"], False),
        ([], False),
        ([None, 3, {"a": 1}], False),  # nonsense from a hub
    ],
)
def test_only_the_scope_of_this_server_admits(held: list[Any], admitted: bool) -> None:
    assert grants_access(held, "alice", "") is admitted


def test_a_named_servers_scope_is_its_own() -> None:
    assert grants_access(["access:servers!server=alice/lab"], "alice", "lab")
    assert not grants_access(["access:servers!server=alice/"], "alice", "lab")


# -- the API client against hostile answers --------------------------------------------


def failed_with(d: Deferred[Any]) -> str:
    results: list[Any] = []
    d.addBoth(results.append)
    assert len(results) == 1 and isinstance(results[0], Failure), results
    assert results[0].check(HubError)
    return str(results[0].value)


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ((500, b"<html>oops</html>"), "the hub answered 500"),
        ((200, b"<html>not json</html>"), "not JSON"),
        ((200, b"[1, 2]"), "not a JSON object"),
        ((302, b""), "the hub answered 302"),
    ],
)
def test_a_hub_answering_nonsense_fails_the_call(answer: tuple[int, bytes], said: str) -> None:
    hub = FakeHub(override=lambda method, url: answer)
    api = HubApi(hub.fetch, Clock(), API, "server-api-token")
    message = failed_with(api.user_for_token(ALICE))
    assert said in message and ALICE not in message


def test_a_silent_hub_fails_the_call_in_time() -> None:
    clock = Clock()
    never: Deferred[Any] = Deferred()
    hub = FakeHub(override=lambda method, url: never)
    d = HubApi(hub.fetch, clock, API, "t").user_for_token(ALICE)
    clock.advance(TIMEOUT - 0.1)
    assert not d.called
    clock.advance(0.2)
    assert "did not answer in time" in failed_with(d)


def test_an_unreachable_hub_fails_the_call() -> None:
    hub = FakeHub(override=lambda m, u: fail(ConnectionRefusedError("connection refused")))
    assert "unreachable" in failed_with(HubApi(hub.fetch, Clock(), API, "t").user_for_token(BOB))


def test_a_refused_token_is_an_empty_user_not_an_error() -> None:
    hub = FakeHub()
    results: list[Any] = []
    HubApi(hub.fetch, Clock(), API, "t").user_for_token("made-up").addBoth(results.append)
    assert results == [{}]
    ((_, _, headers, _),) = hub.calls
    assert headers[b"authorization"] == b"token made-up"


# -- the token cache -----------------------------------------------------------------


def test_the_cache_forgets_after_its_time() -> None:
    clock = Clock()
    cache = TokenCache(clock)
    cache.put(ALICE, True)
    cache.put(BOB, False)
    clock.advance(CACHE_SECONDS - 1)
    assert cache.get(ALICE) is True and cache.get(BOB) is False
    clock.advance(1)
    assert cache.get(ALICE) is None and cache.get(BOB) is None and len(cache) == 0


def test_the_cache_is_bounded_and_keeps_no_token() -> None:
    cache = TokenCache(Clock())
    for i in range(CACHE_SIZE * 3):
        cache.put(f"token-{i}", i % 2 == 0)
    assert len(cache) == CACHE_SIZE
    assert cache.get("token-0") is None  # the oldest went first
    assert cache.get(f"token-{CACHE_SIZE * 3 - 2}") is True
    assert not any("token-" in key for key in cache._entries)


# -- activity ----------------------------------------------------------------------------


def test_activity_is_reported_while_there_is_some(tmp_path: Any, monkeypatch: Any) -> None:
    env = make_host(tmp_path, monkeypatch)
    hub = FakeHub()
    api = HubApi(hub.fetch, env.clock, API, ENVIRON["JUPYTERHUB_API_TOKEN"])
    reporter = ActivityReporter(env.host, api, env.clock, hub_env().activity_url, "", 30.0)
    reporter.startService()
    env.clock.advance(30)
    assert hub.activity == []  # no kernel, no activity
    hk = env.start_kernel()
    env.clock.advance(30)
    (first,) = hub.activity
    stamp = first["last_activity"]
    assert first == {"servers": {"": {"last_activity": stamp}}, "last_activity": stamp}
    (_, url, headers, _) = hub.calls[-1]
    assert url.endswith("/users/alice/activity")
    assert headers[b"authorization"] == b"token server-api-token"
    env.clock.advance(30)
    assert len(hub.activity) == 1  # nothing new: nothing sent
    hk.kernel.state.value = "busy"  # a running cell is activity at every tick
    env.clock.advance(30)
    env.clock.advance(30)
    assert len(hub.activity) == 3 and hub.activity[-1]["last_activity"] > stamp
    reporter.stopService()


def test_a_failed_report_is_one_line_and_retried(tmp_path: Any, monkeypatch: Any) -> None:
    from twisted.logger import capturedLogs

    env = make_host(tmp_path, monkeypatch)
    answers: list[Any] = [(500, b"down")]
    hub = FakeHub(override=lambda m, u: answers.pop() if answers else None)
    api = HubApi(hub.fetch, env.clock, API, "t")
    reporter = ActivityReporter(env.host, api, env.clock, hub_env().activity_url, "", 10.0)
    reporter.startService()
    env.start_kernel()
    with capturedLogs() as events:
        env.clock.advance(10)
    lines = [e for e in events if "activity" in str(e.get("log_format", ""))]
    assert len(lines) == 1 and hub.activity == []
    env.clock.advance(10)
    assert len(hub.activity) == 1
    reporter.stopService()


def test_an_answer_past_the_limit_is_given_up_on() -> None:
    class Body:
        stopped = False

        def stopProducing(self) -> None:
            self.stopped = True

    got: Deferred[bytes] = Deferred()
    reader = _Bounded(got, limit=10)
    body = Body()
    reader.makeConnection(body)  # type: ignore[arg-type]  # the response body's producer
    reader.dataReceived(b"12345")
    reader.dataReceived(b"678901")  # 11 bytes: past the limit
    assert body.stopped and "longer than 10 bytes" in failed_with(got)
    reader.connectionLost(Failure(ResponseDone()))  # nothing more happens
    whole: Deferred[bytes] = Deferred()
    ok = _Bounded(whole, limit=10)
    ok.makeConnection(Body())  # type: ignore[arg-type]  # as above
    ok.dataReceived(b"0123456789")
    ok.connectionLost(Failure(ResponseDone()))
    assert whole.result == b"0123456789"
