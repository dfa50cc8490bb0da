"""The Jupyter message codec: signing, replay refusal, frames and every rejection."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipytwist.wire import (
    DELIMITER,
    MAX_JSON_DEPTH,
    BadSignature,
    MalformedMessage,
    MessageTooLarge,
    ReplayedSignature,
    SeenSignatures,
    Signer,
    WireCodec,
    WireError,
    dumps,
    dumps_decoded,
    dumps_strings,
    new_message,
    reply_type,
)

KEY = b"0123456789abcdef"


def _msg(content: dict | None = None, buffers: list[bytes] | None = None) -> dict:
    return new_message("execute_request", content or {"code": "1"}, "sess", buffers=buffers)


def test_signature_is_hmac_sha256_over_the_four_parts() -> None:
    """sign() is the hex HMAC-SHA256 of the concatenated JSON frames."""
    parts = [b"{}", b"{}", b"{}", b'{"a":1}']
    expected = hmac.new(KEY, b"".join(parts), hashlib.sha256).hexdigest().encode()
    signer = Signer(KEY)
    assert signer.sign(parts) == expected
    assert signer.verify(expected, parts)
    assert not signer.verify(expected, [*parts[:3], b'{"a":2}'])
    assert not signer.verify(b"0" * 64, parts)


def test_empty_key_disables_signing() -> None:
    """With no key, signatures are empty and anything verifies."""
    signer = Signer(b"")
    assert signer.sign([b"{}"]) == b""
    assert signer.verify(b"whatever", [b"{}"])


def test_unsupported_scheme_is_refused() -> None:
    """Only hmac-sha256 is accepted."""
    with pytest.raises(ValueError):
        Signer(KEY, "hmac-md5")


def test_seen_signatures_refuse_repeats_and_stay_bounded() -> None:
    """A signature is accepted once; the memory forgets the oldest past its limit."""
    seen = SeenSignatures(limit=2)
    assert seen.add(b"a")
    assert not seen.add(b"a")
    assert seen.add(b"b")
    assert seen.add(b"c")  # evicts a
    assert len(seen._seen) == 2
    assert seen.add(b"a")
    assert not seen.add(b"c")


def test_roundtrip_with_identities_and_buffers() -> None:
    """serialize then deserialize gives back identities, header, content and buffers."""
    codec = WireCodec(KEY)
    msg = _msg({"code": "x = 1", "n": [1, 2]}, buffers=[b"\x00\x01", b"buf"])
    frames = codec.serialize(msg, [b"id1", b"id2"])
    assert frames[:3] == [b"id1", b"id2", DELIMITER]
    idents, back = WireCodec(KEY).deserialize(frames)
    assert idents == [b"id1", b"id2"]
    assert back["header"] == msg["header"]
    assert back["msg_type"] == "execute_request"
    assert back["msg_id"] == msg["header"]["msg_id"]
    assert back["content"] == msg["content"]
    assert back["parent_header"] == {}
    assert back["buffers"] == [b"\x00\x01", b"buf"]


def test_replayed_frames_are_rejected() -> None:
    """The same signed frames are accepted once; the second time they are a replay."""
    codec = WireCodec(KEY)
    frames = codec.serialize(_msg())
    codec.deserialize(frames)
    with pytest.raises(ReplayedSignature):
        codec.deserialize(frames)


def _frames(codec: WireCodec, parts: list[bytes]) -> list[bytes]:
    return [DELIMITER, codec.signer.sign(parts), *parts]


def _header(**kw: object) -> bytes:
    return json.dumps({"msg_id": "m", "msg_type": "kernel_info_request", **kw}).encode()


CASES = {
    "too-large": (MessageTooLarge, lambda c: c.serialize(_msg({"code": "x" * 2000}))),
    "no-delimiter": (MalformedMessage, lambda c: c.serialize(_msg())[1:]),
    "too-few-frames": (MalformedMessage, lambda c: c.serialize(_msg())[:5]),
    "missing-signature": (
        BadSignature,
        lambda c: [DELIMITER, b"", *c.serialize(_msg())[2:]],
    ),
    "bad-signature": (
        BadSignature,
        lambda c: [DELIMITER, b"f" * 64, *c.serialize(_msg())[2:]],
    ),
    "invalid-json": (MalformedMessage, lambda c: _frames(c, [b"{", b"{}", b"{}", b"{}"])),
    "invalid-utf8": (MalformedMessage, lambda c: _frames(c, [b"\xff", b"{}", b"{}", b"{}"])),
    "header-not-object": (MalformedMessage, lambda c: _frames(c, [b"[]", b"{}", b"{}", b"{}"])),
    "no-msg-type": (MalformedMessage, lambda c: _frames(c, [b'{"a":1}', b"{}", b"{}", b"{}"])),
    "msg-type-not-str": (
        MalformedMessage,
        lambda c: _frames(c, [b'{"msg_type":1}', b"{}", b"{}", b"{}"]),
    ),
    "parent-not-object": (MalformedMessage, lambda c: _frames(c, [_header(), b"1", b"{}", b"{}"])),
    "metadata-not-object": (
        MalformedMessage,
        lambda c: _frames(c, [_header(), b"{}", b"null", b"{}"]),
    ),
    "content-not-object": (
        MalformedMessage,
        lambda c: _frames(c, [_header(), b"{}", b"{}", b'"s"']),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_rejection(case: str) -> None:
    """Each kind of bad message raises its WireError subclass with a short message."""
    exc, make = CASES[case]
    codec = WireCodec(KEY, max_message_bytes=1000)
    frames = make(codec)
    with pytest.raises(exc) as info:
        codec.deserialize(frames)
    assert isinstance(info.value, WireError)
    text = str(info.value)
    assert "\n" not in text and len(text) < 100
    assert "xxxx" not in text


def test_without_a_key_unsigned_messages_are_accepted() -> None:
    """An empty key accepts messages with any (or no) signature."""
    codec = WireCodec(b"")
    frames = codec.serialize(_msg())
    assert frames[1] == b""
    _, msg = codec.deserialize(frames)
    assert msg["content"] == {"code": "1"}


def test_reply_type_and_parent_header() -> None:
    """Replies are named after the request and carry its header as parent."""
    assert reply_type("execute_request") == "execute_reply"
    assert reply_type("frob") == "frob_reply"
    req = _msg()
    reply = new_message(reply_type(req["msg_type"]), {}, "s", parent=req)
    assert reply["parent_header"] == req["header"]
    assert reply["parent_header"] is not req["header"]


def test_dumps_makes_ipython_values_json_safe() -> None:
    """bytes become base64, datetimes ISO strings, sets lists; NaN is allowed."""
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    out = json.loads(dumps({"b": b"hi", "d": when, "s": {1}, "t": (1, 2), "f": math.inf}))
    assert out == {"b": "aGk=", "d": when.isoformat(), "s": [1], "t": [1, 2], "f": math.inf}


@pytest.mark.parametrize("text", ["\udcff", "a\ud800b", "ok \udc80"])
def test_dumps_of_lone_surrogates_is_valid_utf8(text: str) -> None:
    """Strings with lone surrogates encode to valid UTF-8 JSON that reads back the same."""
    data = dumps({"t": text})
    assert json.loads(data.decode("utf-8")) == {"t": text}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(
    content=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
    metadata=st.dictionaries(st.text(max_size=10), json_values, max_size=3),
    idents=st.lists(st.binary(min_size=1, max_size=8).filter(lambda b: b != DELIMITER), max_size=3),
    buffers=st.lists(st.binary(max_size=32), max_size=3),
    key=st.binary(max_size=32),
)
def test_roundtrip_property(
    content: dict, metadata: dict, idents: list[bytes], buffers: list[bytes], key: bytes
) -> None:
    """Any JSON content, metadata, identities and buffers survive serialize/deserialize."""
    msg = new_message("x_request", content, "s", metadata=metadata, buffers=buffers)
    frames = WireCodec(key).serialize(msg, idents)
    got_idents, back = WireCodec(key).deserialize(frames)
    assert got_idents == idents
    assert back["content"] == content
    assert back["metadata"] == metadata
    assert back["buffers"] == buffers
    assert back["header"] == msg["header"]


@given(st.lists(st.binary(max_size=40), max_size=10))
def test_arbitrary_frames_raise_only_wire_errors(frames: list[bytes]) -> None:
    """Random frames are either accepted or refused with a WireError, never anything else."""
    codec = WireCodec(b"")
    try:
        codec.deserialize(frames)
    except WireError:
        pass


def test_deeply_nested_json_is_a_malformed_message() -> None:
    """JSON nested deeper than the parser can go is refused as malformed, not a crash."""
    codec = WireCodec(b"")
    frames = codec.serialize(new_message("kernel_info_request", {}, "s"), [b"id"])
    frames[-1] = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(MalformedMessage):
        codec.deserialize(frames)


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


@pytest.mark.parametrize("part", ["header", "parent_header", "metadata", "content"])
def test_nesting_past_the_limit_is_a_malformed_message(part: str) -> None:
    """JSON the parser takes but nested deeper than MAX_JSON_DEPTH is refused: the
    kernel encodes requests again deeper in the stack (a reply's parent_header is the
    request's header), where it failed with RecursionError mid-publish."""
    codec = WireCodec(KEY)
    for depth, ok in ((MAX_JSON_DEPTH, True), (MAX_JSON_DEPTH + 1, False)):
        msg = _msg()
        msg[part] = {**msg[part], "deep": _nested(depth - 1)}
        frames = codec.serialize(msg)
        if ok:
            assert codec.deserialize(frames)[1][part] == msg[part]
        else:
            with pytest.raises(MalformedMessage, match="nested"):
                codec.deserialize(frames)


@pytest.mark.parametrize(
    "text",
    ["plain\n", "caf\u00e9 \u2603 \U0001f600\n", 'quote " back \\ tab \t nul \x00', "\udc80lone"],
)
def test_dumps_strings_writes_what_dumps_writes(text: str) -> None:
    """The fast encoder for stream messages gives the same bytes as dumps, lone surrogates
    included (they take the slow path)."""
    msg = new_message("stream", {"name": "stdout", "text": text}, "s")
    assert dumps_strings(msg) == dumps(msg)


@pytest.mark.parametrize(
    "value",
    [
        {"status": "ok", "execution_count": 3, "payload": [], "user_expressions": {}},
        {"x": float("nan"), "y": float("inf")},  # orjson would write null
        {"none": None, "text": "null"},
        {"text": "\udc80lone"},
        {"big": 2**70},
        {1: "non-string key"},
        [1.5, True, "caf\u00e9 \U0001f600"],
    ],
    ids=repr,
)
def test_dumps_decoded_writes_what_dumps_writes(value: object) -> None:
    """The fast encoder of the ZeroMQ frames gives the same bytes as dumps; NaN stays
    NaN, and what orjson refuses takes the slow path."""
    assert dumps_decoded(value) == dumps(value)
