"""Jupyter kernel messages as the clients here write and read them (plain dicts)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any


def execute_content(code: str, **extra: Any) -> dict[str, Any]:
    """An execute_request's content, as Jupyter frontends send it."""
    return {
        "code": code,
        "silent": False,
        "store_history": True,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
        **extra,
    }


def make_message(
    msg_type: str, content: dict[str, Any], session: str, msg_id: str | None = None
) -> dict[str, Any]:
    """A request of ``session`` (a new msg_id unless one is given)."""
    return {
        "header": {
            "msg_id": msg_id or uuid.uuid4().hex,
            "msg_type": msg_type,
            "username": "test",
            "session": session,
            "date": datetime.now(UTC).isoformat(),
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": content,
        "buffers": [],
    }


def legacy_text(msg: dict[str, Any], channel: str) -> str:
    """``msg`` as a text frame of the legacy JSON WebSocket protocol."""
    return json.dumps({**msg, "channel": channel})


def ids(msgs: list[dict[str, Any]]) -> list[str]:
    """The msg_ids of ``msgs``, in order."""
    return [m["header"]["msg_id"] for m in msgs]


def parent_id(msg: dict[str, Any]) -> str | None:
    return (msg.get("parent_header") or {}).get("msg_id")


def is_idle_of(msg: dict[str, Any], msg_id: str) -> bool:
    return (
        msg["msg_type"] == "status"
        and msg["content"].get("execution_state") == "idle"
        and parent_id(msg) == msg_id
    )


def is_reply_to(msg: dict[str, Any], msg_id: str, msg_type: str = "execute_reply") -> bool:
    return msg["msg_type"] == msg_type and parent_id(msg) == msg_id


def stream_text(msgs: Iterable[dict[str, Any]]) -> str:
    return "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")


def iopub_of(msgs: Iterable[dict[str, Any]], msg_id: str) -> list[dict[str, Any]]:
    return [m for m in msgs if m.get("channel") == "iopub" and parent_id(m) == msg_id]


def is_gap_notice(msg: dict[str, Any]) -> bool:
    """The service's notice that output was dropped for this client."""
    return (
        msg["msg_type"] == "stream"
        and msg["content"].get("name") == "stderr"
        and msg["content"].get("text", "").startswith("[ipytwist]")
        and "dropped" in msg["content"]["text"]
    )
