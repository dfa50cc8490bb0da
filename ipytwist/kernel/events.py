"""Worker output events as Jupyter iopub content (pure translation, no state)."""

from __future__ import annotations

from typing import Any

Event = dict[str, Any]


def _display(e: Event) -> dict[str, Any]:
    return {
        "data": e.get("data", {}),
        "metadata": e.get("metadata", {}),
        "transient": e.get("transient", {}),
    }


def _result(e: Event) -> dict[str, Any]:
    return {
        "execution_count": e.get("execution_count"),
        "data": e.get("data", {}),
        "metadata": e.get("metadata", {}),
    }


def _error(e: Event) -> dict[str, Any]:
    return {
        "ename": e.get("ename", ""),
        "evalue": e.get("evalue", ""),
        "traceback": e.get("traceback", []),
    }


def _clear(e: Event) -> dict[str, Any]:
    return {"wait": bool(e.get("wait"))}


def _input(e: Event) -> dict[str, Any]:
    return {"code": e.get("code", ""), "execution_count": int(e.get("count") or 0)}


_OUTPUT = {
    "display_data": _display,
    "update_display_data": _display,
    "execute_result": _result,
    "error": _error,
    "clear_output": _clear,
    "execute_input": _input,
}


def iopub_content(event: Event) -> tuple[str, dict[str, Any]] | None:
    """``(msg_type, content)`` for an output event, or None for other events."""
    kind = event.get("ev")
    if not isinstance(kind, str) or kind not in _OUTPUT:
        return None
    return kind, _OUTPUT[kind](event)
