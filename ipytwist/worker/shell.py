"""IPython's InteractiveShell, with its output turned into worker events."""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from IPython.core import page, payloadpage
from IPython.core.compilerop import CachingCompiler
from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.history import HistoryManager
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.payload import PayloadManager
from IPython.paths import get_ipython_dir
from IPython.utils.path import get_home_dir
from traitlets import Any as AnyTrait
from traitlets import Callable as CallableTrait

from ..dap import cell_path
from .history import LateSessionHistory
from .scalars import plain_only

#: matplotlib's GUIs that draw in the frontend and need no event loop in the kernel
#: (ipykernel's ``eventloops.loop_map`` has None for them): ``%matplotlib widget`` is
#: ipympl's, drawn through comms.
NO_EVENT_LOOP = (None, "inline", "widget", "ipympl", "nbagg", "notebook", "webagg")
#: An exception as ``sys.exc_info()`` gives it.
ExcInfo = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
_WORKER_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class EventDisplayPublisher(DisplayPublisher):
    """``display()``, ``update_display()`` and ``clear_output()`` become events."""

    def publish(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        source: Any = None,
        *,
        transient: dict[str, Any] | None = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        self.shell.emit(
            {
                "ev": "update_display_data" if update else "display_data",
                "data": data,
                "metadata": metadata or {},
                "transient": transient or {},
            }
        )

    def clear_output(self, wait: bool = False) -> None:
        self.shell.emit({"ev": "clear_output", "wait": bool(wait)})


class EventDisplayHook(DisplayHook):
    """The value of a cell's last expression becomes an ``execute_result`` event."""

    def start_displayhook(self) -> None:
        self._event: dict[str, Any] = {"ev": "execute_result", "data": {}, "metadata": {}}

    def compute_format_data(self, result: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """IPython's, quicker for a number or a string (see :mod:`.scalars`)."""
        formatter = self.shell.display_formatter if self.shell is not None else None
        quick = plain_only(formatter, result) if formatter is not None else None
        return quick if quick is not None else super().compute_format_data(result)

    def write_output_prompt(self) -> None:
        self._event["execution_count"] = self.prompt_count

    def write_format_data(
        self, format_dict: dict[str, Any], md_dict: dict[str, Any] | None = None
    ) -> None:
        self._event["data"] = format_dict
        self._event["metadata"] = md_dict or {}

    def finish_displayhook(self) -> None:
        event, self._event = self._event, {}
        if event.get("data") and self.shell is not None:
            self.shell.emit(event)


def without_interrupt_frames(tb: TracebackType | None) -> TracebackType | None:
    """A KeyboardInterrupt's traceback ends in user code, not in the worker's signal
    handler or ``input()`` that raised it (Python's own SIGINT handler is in C)."""
    keep = None
    node = tb
    while node is not None:
        if not node.tb_frame.f_code.co_filename.startswith(_WORKER_DIR):
            keep = node
        node = node.tb_next
    if keep is None:
        return tb
    keep.tb_next = None
    return tb


def out_of_memory(error: BaseException | None, depth: int = 8) -> bool:
    """Whether ``error`` is a MemoryError or happened while handling one (what runs
    out of memory may fail otherwise: ``SystemError`` from a C function)."""
    while error is not None and depth:
        if isinstance(error, MemoryError):
            return True
        error, depth = error.__context__, depth - 1
    return False


class CellCompiler(CachingCompiler):
    """Compiles each cell as the file named by a hash of its code (``dap.cell_path``),
    where the debugger looks for it; tracebacks still say ``Cell In[n]``."""

    def get_code_name(self, raw_code: str, transformed_code: str, number: int) -> str:
        return cell_path(raw_code, os.getpid())


class ZMQInteractiveShell(InteractiveShell):
    """An InteractiveShell whose output, errors and pager go to ``emit``.

    Named as ipykernel's shell, which libraries test by name to know they run in a
    notebook (see :mod:`ipytwist.worker.notebook`); plotly also wants its module
    to be ipykernel's."""

    __module__ = "ipykernel.zmqshell"

    displayhook_class = EventDisplayHook
    #: Cells compiled under the file names the debugger knows them by.
    compiler_class = CellCompiler
    display_pub_class = EventDisplayPublisher
    emit = CallableTrait()  # the worker link's emit: one event dict
    #: ``get_ipython().kernel``, as on ipykernel (a :class:`KernelStandIn`).
    kernel = AnyTrait(None, allow_none=True)
    #: The error content of the cell's last traceback (None: no error yet).
    last_error: dict[str, Any] | None = None
    #: Called before a MemoryError's traceback is formatted (the worker releases its
    #: emergency reserve there, see :mod:`ipytwist.worker.reserve`).
    on_memory_error: Callable[[], None] = staticmethod(lambda: None)

    #: The process that made the shell: in a kernel forked by a fork server, the server.
    maker_pid = 0
    #: True for the shell a fork server made, until a kernel has its own history.
    premade = False
    #: False while a fork server makes the shell that its kernels reuse: its history
    #: manager opens no database and starts no thread (:meth:`own_history` makes the real one).
    history_at_init = True

    def init_instance_attrs(self) -> None:
        super().init_instance_attrs()
        self.maker_pid = os.getpid()

    def init_history(self) -> None:
        if type(self).history_at_init:
            super().init_history()
            return
        self.history_manager = HistoryManager(shell=self, parent=self, enabled=False)
        configurables: list[Any] = self.configurables  # typed as a list of shells
        configurables.append(self.history_manager)

    def for_kernel(self, emit: Callable[[dict[str, Any]], None]) -> None:
        """Make a shell made before a fork this kernel's, as if made now: its output goes
        to ``emit``, its files and encoding are this process's; its history is the
        kernel's once :meth:`own_history` has run."""
        self.emit = emit
        self.init_encoding()
        self._orig_sys_module_state = {
            "stdin": sys.stdin,
            "stdout": sys.stdout,
            "stderr": sys.stderr,
            "excepthook": sys.excepthook,
        }

    def own_history(self) -> None:
        """A shell made before a fork (without a history database): a history of this
        kernel's, whose new session its saving thread inserts while the kernel goes on
        (see :meth:`history_ready`), and the namespace's history lists (``In``, ``Out``,
        ``_ih``, ``_oh``, ``_dh``) of it.  Nothing for a shell made with its history."""
        if not self.premade:
            return
        self.premade = False
        configurables: list[Any] = self.configurables  # typed as a list of shells
        configurables.remove(self.history_manager)
        self.history_manager = LateSessionHistory(shell=self, parent=self)
        configurables.append(self.history_manager)
        self.init_user_ns()  # fills in over the old lists, by the same names

    def history_ready(self) -> None:
        """Once the history's session is in the database (:meth:`own_history` has it
        inserted while the kernel goes on starting): before the history is used."""
        if isinstance(self.history_manager, LateSessionHistory):
            self.history_manager.wait()

    def init_hooks(self) -> None:
        super().init_hooks()
        # `obj?` and `%page` fill the execute reply's pager payload.
        self.set_hook("show_in_pager", page.as_hook(payloadpage.page), 99)

    @property
    def payloads(self) -> PayloadManager:
        """IPython's payload manager, which its ``__init__`` always sets up."""
        manager = self.payload_manager
        if not isinstance(manager, PayloadManager):
            raise RuntimeError("IPython's payload manager is not set up")
        return manager

    def set_parent(self, parent: dict[str, Any]) -> None:
        """The request that runs (ipywidgets' ``Output`` sets it back on entry)."""
        if self.kernel is not None:
            self.kernel.set_parent(parent)

    def get_parent(self) -> dict[str, Any]:
        """The request that runs, as ``kernel.get_parent()`` gives it."""
        return dict(self.kernel.get_parent()) if self.kernel is not None else {}

    def init_virtualenv(self) -> None:  # the worker runs in the kernel's interpreter
        pass

    def _get_exc_info(self, exc_tuple: ExcInfo | None = None) -> ExcInfo:
        etype, value, tb = super()._get_exc_info(exc_tuple)
        if isinstance(value, KeyboardInterrupt):
            tb = without_interrupt_frames(tb)
        return etype, value, tb

    def showtraceback(self, exc_tuple: ExcInfo | None = None, *args: Any, **kwargs: Any) -> None:
        """IPython's, with memory to format the traceback in after a MemoryError."""
        value = exc_tuple[1] if exc_tuple is not None else sys.exc_info()[1]
        if out_of_memory(value):
            self.on_memory_error()
        super().showtraceback(exc_tuple, *args, **kwargs)

    def _showtraceback(self, etype: Any, evalue: Any, stb: Sequence[str]) -> None:
        # stb is the traceback's lines (IPython 8 annotates it as one str, IPython 9 as a
        # list of str: Sequence[str] takes both).
        content = {
            "ename": getattr(etype, "__name__", str(etype)),
            "evalue": str(evalue),
            "traceback": list(stb),
        }
        self.last_error = content
        self.emit({"ev": "error", **content})

    def enable_gui(self, gui: str | None = None) -> None:
        if gui not in NO_EVENT_LOOP:
            raise NotImplementedError(
                f"GUI event loop {gui!r} is not supported by ipytwist; use %matplotlib inline"
            )

    def ask_exit(self) -> None:
        self.payloads.write_payload({"source": "ask_exit", "keepkernel": False})


#: The worker's shell, by the name the worker's code knows it.
WorkerShell = ZMQInteractiveShell


def premake() -> WorkerShell:
    """In a fork server, before any fork: the shell its kernels reuse (:func:`kernel_shell`),
    with neither a history database nor a thread, which must not cross a fork."""
    from .notebook import notebook_config

    WorkerShell.history_at_init = False
    try:
        shell = WorkerShell.instance(emit=lambda event: None, config=notebook_config())
    finally:
        WorkerShell.history_at_init = True
    shell.premade = True
    # What every kernel's first cell would do once (tokenize's regular expressions, the
    # formatters' lookups), done here; neither touches the namespace or the history.
    shell.transform_cell("1")
    if shell.display_formatter is not None:
        shell.display_formatter.format(1)
    return shell


def kernel_shell(emit: Callable[[dict[str, Any]], None]) -> WorkerShell:
    """The kernel's shell, output to ``emit``: the one a fork server made before the fork,
    made this kernel's, or a new one (no fork server, or one whose shell was made for
    another IPython directory or home than this kernel's environment says)."""
    from .notebook import notebook_config

    if WorkerShell.initialized():
        shell = WorkerShell.instance()
        if shell.ipython_dir == get_ipython_dir() and shell.home_dir == get_home_dir():
            shell.for_kernel(emit)
            return shell
        atexit.unregister(shell.atexit_operations)
        WorkerShell.clear_instance()
    return WorkerShell.instance(emit=emit, config=notebook_config())
