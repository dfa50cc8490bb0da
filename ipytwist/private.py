"""Files only the user may read: tokens, keys and connection files (0600, no symlinks)."""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["touch_private", "write_private_json"]

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW


def write_private_json(path: str, data: Any) -> None:
    """Write ``data`` as JSON to ``path``, mode 0600 (also when the file existed)."""
    fd = os.open(path, _FLAGS, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)
        json.dump(data, f, indent=1)


def touch_private(path: str) -> str:
    """Create ``path`` empty if absent; either way it ends 0600. Returns ``path``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return path
