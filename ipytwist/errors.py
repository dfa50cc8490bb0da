"""The content of a failed request's reply, in the one shape the protocol gives it (pure)."""

from __future__ import annotations

from typing import Any

__all__ = ["error_content"]


def error_content(
    ename: str, evalue: str, traceback: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    """``{"status": "error", "ename", "evalue", "traceback"}`` plus ``extra`` fields."""
    return {
        "status": "error",
        "ename": ename,
        "evalue": evalue,
        "traceback": list(traceback or []),
        **extra,
    }
