"""The kernel room: one interpreter, its request queue and its output stream."""

from .core import Kernel, Requester
from .process import LocalProvisioner, WorkerProcess
from .stream import Envelope, OutputStream

__all__ = ["Envelope", "Kernel", "LocalProvisioner", "OutputStream", "Requester", "WorkerProcess"]
