"""The ZeroMQ room: the Jupyter wire protocol's five channels for a kernel (txzmq)."""

from .channels import ZmqChannels, new_connection_info
from .transport import ZmqAttachment, ZmqTransport

__all__ = [
    "ZmqAttachment",
    "ZmqChannels",
    "ZmqTransport",
    "new_connection_info",
]
