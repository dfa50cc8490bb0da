"""The site's JSON errors, as the in-process tests read them."""

from __future__ import annotations

from typing import Any


def assert_json_error(response: Any, code: int, reason: str) -> None:
    """``response`` (a glue_fakes ``Response``) is the JSON error ``code`` ``reason``."""
    assert response.code == code, response
    assert response.header("content-type") == "application/json"
    body = response.json()
    assert body["reason"] == reason, body
    assert isinstance(body["message"], str) and body["message"]
