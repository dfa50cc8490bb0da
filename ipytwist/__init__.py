"""ipytwist: IPython over the network, on Twisted.

Public names are imported lazily, so the worker process (which only needs
``ipytwist.worker``) never pays for importing Twisted.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Kernel": "ipytwist.kernel",
    "LocalProvisioner": "ipytwist.kernel",
    "OutputLog": "ipytwist.kernel",
    "KernelHost": "ipytwist.host",
    "Message": "ipytwist.wire",
    "WireCodec": "ipytwist.wire",
    "WireError": "ipytwist.wire",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ipytwist' has no attribute {name!r}")
    return getattr(import_module(module), name)
