"""ipytwist: IPython over the network, on Twisted."""

from .kernel import Kernel, LocalProvisioner, OutputStream
from .wire import Message, WireCodec, WireError

__all__ = ["Kernel", "LocalProvisioner", "Message", "OutputStream", "WireCodec", "WireError"]
__version__ = "0.1.0"
