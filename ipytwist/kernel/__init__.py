"""The kernel room: one interpreter, its request queue and its output stream."""

from .aborts import InFlight
from .core import Kernel
from .process import LocalProvisioner, WorkerProcess
from .requests import Request, Requester
from .stream import Envelope, OutputStream

__all__ = [
    "Envelope",
    "InFlight",
    "Kernel",
    "LocalProvisioner",
    "OutputStream",
    "Request",
    "Requester",
    "WorkerProcess",
]
