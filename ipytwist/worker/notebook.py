"""What libraries read to tell a notebook from a terminal, answered as on ipykernel.

ipywidgets, tqdm, plotly and others look at ``type(get_ipython()).__name__``
(``ZMQInteractiveShell``), ``'IPKernelApp' in get_ipython().config`` and
``get_ipython().kernel``, whose ``get_parent()`` (also ``_parent_header``) is the
request that runs, whose ``session`` names the kernel's session and whose
``comm_manager`` is the worker's.  The worker sets the parent before each request.
"""

from __future__ import annotations

import getpass
import importlib.machinery
import sys
import types
import uuid
from typing import Any

from comm.base_comm import CommManager
from traitlets.config import Config

__all__ = ["KernelStandIn", "load_shell_module", "notebook_config", "parent_of"]

#: The module tqdm.auto looks for in ``sys.modules`` to take its notebook path.
SHELL_MODULE = "ipykernel.zmqshell"
#: Where bokeh's ``push_notebook`` takes its ``Comm`` from.
COMM_MODULE = "ipykernel.comm"


def notebook_config() -> Config:
    """The shell's config, with the section ipykernel's application puts there."""
    return Config({"IPKernelApp": {}})


def load_shell_module(shell_class: type, comm_class: type) -> None:
    """Put ipykernel's shell and comm modules in ``sys.modules``, as they always are on
    ipykernel, holding our shell class and our comm class: tqdm.auto tests for the
    first, bokeh's ``push_notebook`` makes its comm from the second.  Stand-ins, even
    where ipykernel is installed: importing the real ones costs about 50 ms of every
    worker's start (they import ZeroMQ, tornado and jupyter_client)."""
    for name, attribute, value in (
        (SHELL_MODULE, "ZMQInteractiveShell", shell_class),
        (COMM_MODULE, "Comm", comm_class),
    ):
        if name not in sys.modules:
            module = types.ModuleType(name, "ipytwist's stand-in for ipykernel's module")
            module.__spec__ = importlib.machinery.ModuleSpec(name, None)
            setattr(module, attribute, value)
            sys.modules[name] = module


def parent_of(record: dict[str, Any]) -> dict[str, Any]:
    """The request message of a worker record, as ``get_parent()`` returns it."""
    header = record.get("header")
    header = header if isinstance(header, dict) else {}
    content = record.get("content")
    content = content if isinstance(content, dict) else {}
    if "msg_type" in content and isinstance(content.get("content"), dict):
        content = content["content"]  # a comm message's record wraps the message
    return {
        "header": header,
        "msg_id": header.get("msg_id", ""),
        "msg_type": header.get("msg_type", ""),
        "parent_header": {},
        "metadata": {},
        "content": content,
    }


class SessionStandIn:
    """The few attributes of ipykernel's ``Session`` that libraries read."""

    def __init__(self) -> None:
        self.session = uuid.uuid4().hex
        try:
            self.username = getpass.getuser()
        except (KeyError, OSError):
            self.username = "username"


class KernelStandIn:
    """``get_ipython().kernel``: the running request, the session, the comms."""

    def __init__(self, comm_manager: CommManager) -> None:
        self.comm_manager = comm_manager
        self.session = SessionStandIn()
        self._parent: dict[str, Any] = {}

    def set_parent(self, parent: dict[str, Any], channel: str = "shell") -> None:
        """The request that runs now."""
        self._parent = parent

    def get_parent(self, channel: str | None = None) -> dict[str, Any]:
        """The request that runs (or ran last): its header, content and so on."""
        return self._parent

    @property
    def _parent_header(self) -> dict[str, Any]:
        return self._parent
