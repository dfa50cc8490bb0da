"""The static facts a kernel reports in ``kernel_info_reply``."""

from __future__ import annotations

import platform
import sys
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from typing import Any

from ..wire import PROTOCOL_VERSION


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


@cache
def kernel_info() -> dict[str, Any]:
    """The content of ``kernel_info_reply`` (the same for every kernel, built once)."""
    ipython = _version("ipython")
    return {
        "status": "ok",
        "protocol_version": PROTOCOL_VERSION,
        "implementation": "ipytwist",
        "implementation_version": _version("ipytwist"),
        "language_info": {
            "name": "python",
            "version": platform.python_version(),
            "mimetype": "text/x-python",
            "codemirror_mode": {"name": "ipython", "version": sys.version_info[0]},
            "pygments_lexer": "ipython3",
            "nbconvert_exporter": "python",
            "file_extension": ".py",
        },
        "banner": (
            f"Python {sys.version}\n"
            "Type 'copyright', 'credits' or 'license' for more information\n"
            f"IPython {ipython} -- An enhanced Interactive Python. Type '?' for help.\n"
            "Served by ipytwist.\n"
        ),
        # The worker runs this interpreter: its debugpy serves debug_request.
        "debugger": find_spec("debugpy") is not None,
        "help_links": [
            {"text": "Python Reference", "url": "https://docs.python.org/3/"},
            {"text": "IPython Reference", "url": "https://ipython.readthedocs.io/en/stable/"},
        ],
    }
