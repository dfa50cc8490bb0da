"""The kernel room: one interpreter, its request queue and its output log."""

from .aborts import InFlight
from .core import Kernel
from .outputlog import Envelope, OutputLog
from .process import LocalProvisioner, WorkerProcess
from .requests import Request, Requester

__all__ = [
    "Envelope",
    "InFlight",
    "Kernel",
    "LocalProvisioner",
    "OutputLog",
    "Request",
    "Requester",
    "WorkerProcess",
]
