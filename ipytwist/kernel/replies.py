"""Reply messages the kernel builds itself (pure)."""

from __future__ import annotations

from typing import Any

from ..wire import Message, new_message, reply_type, utcnow_iso
from .info import kernel_info

__all__ = ["aborted_content", "reply_message", "static_reply"]


def static_reply(msg_type: str) -> dict[str, Any]:
    """The content of a reply the kernel gives without the worker (kernel_info)."""
    if msg_type == "kernel_info_request":
        return kernel_info()
    raise ValueError(f"the worker answers {msg_type}")


def aborted_content(msg: Message, execution_count: int) -> dict[str, Any]:
    """The reply content of a request that never ran."""
    content: dict[str, Any] = {"status": "aborted"}
    if msg["header"]["msg_type"] == "execute_request":
        content["execution_count"] = execution_count
    return content


def reply_message(
    msg: Message, content: dict[str, Any], session: str, started: str = ""
) -> Message:
    """The reply to ``msg``; an execute_reply carries ipykernel's metadata."""
    metadata: dict[str, Any] = {}
    if msg["header"]["msg_type"] == "execute_request":
        metadata = {
            "started": started or utcnow_iso(),
            "dependencies_met": True,
            "engine": session,
            "status": content.get("status", "ok"),
        }
    return new_message(
        reply_type(msg["header"]["msg_type"]), content, session, msg, metadata=metadata
    )
