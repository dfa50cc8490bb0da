"""The transcript as an nbformat 4 notebook, from its JSON (pure)."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["WIDGET_STATE_MIME", "notebook"]

#: The key of the widget state in a notebook's ``metadata.widgets``.
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"


def notebook(transcript: dict[str, Any], kernel_name: str = "ipytwist") -> dict[str, Any]:
    """The notebook of a transcript's JSON (:meth:`Transcript.to_json`)."""
    cells = []
    for cell in transcript["cells"]:
        outputs = []
        for o in cell["outputs"]:
            if o["output_type"] == "stream":
                outputs.append({"output_type": "stream", "name": o["name"], "text": o["text"]})
            elif o["output_type"] == "error":
                keys = ("output_type", "ename", "evalue", "traceback")
                outputs.append({k: o[k] for k in keys})
            else:
                out = {
                    "output_type": o["output_type"],
                    "data": o["data"],
                    "metadata": o["metadata"],
                }
                if o["output_type"] == "execute_result":
                    out["execution_count"] = o.get("execution_count")
                outputs.append(out)
        cells.append(
            {
                "cell_type": "code",
                "id": _nb_cell_id(cell["id"]),
                "execution_count": cell["execution_count"],
                "metadata": {"ipytwist": {"origin": cell["origin"], "client": cell["client"]}},
                "source": cell["code"],
                "outputs": outputs,
            }
        )
    metadata: dict[str, Any] = {
        "kernelspec": {
            "name": kernel_name,
            "display_name": "Python 3 (ipytwist)",
            "language": "python",
        },
        "language_info": {"name": "python"},
    }
    widgets = transcript.get("widgets")
    if widgets and widgets["state"]:  # as nbclient's store_widget_state writes it
        metadata["widgets"] = {WIDGET_STATE_MIME: widgets}
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": metadata, "cells": cells}


def _nb_cell_id(msg_id: str) -> str:
    """nbformat cell ids: 1-64 chars of letters, digits, '-' and '_'."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "-", msg_id)[:64]
    return cleaned or "cell"
