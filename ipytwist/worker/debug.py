"""The debugger's side in the worker: debugpy's listener, cells compiled under the
names the debugger knows them by, and the user's variables while no code runs."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import sys
from typing import Any

from IPython.core.inputtransformer2 import leading_empty_lines

from ..dap import make_cell_dir, shown_variable
from .shell import WorkerShell

Content = dict[str, Any]
#: Longest repr shown for a variable in the variables list.
MAX_REPR = 1000
#: Most variables listed (the first ones defined).
MAX_VARIABLES = 5000


class DebugHandlers:
    """The worker requests of the kernel's debugger, answered while no code runs."""

    def __init__(self, shell: WorkerShell) -> None:
        self.shell = shell
        self._endpoint: tuple[str, int] | None = None
        #: The cell files' directory, once made (and found to be ours).
        self._cells: str | None = None
        #: How many modules were loaded before any cell ran (the first ones of
        #: ``sys.modules``, which keeps their order): their files' frames are hidden.
        #: Counted, not listed: a list would write to the page of each of some 800
        #: modules, which in a forked kernel are shared with every other (1.2 MiB each).
        self._loaded = len(sys.modules)

    def _internal(self) -> list[str]:
        loaded = itertools.islice(sys.modules.values(), self._loaded)
        return [f for m in loaded if isinstance(f := getattr(m, "__file__", None), str)]

    def table(self) -> dict[str, Any]:
        return {
            "debug_listen": self.listen,
            "debug_variables": self.variables,
            "debug_rich": self.rich,
            "debug_modules": self.modules,
        }

    def close(self) -> None:
        """The interpreter exits: its cell files go (if the debugger made their directory)."""
        if self._cells is not None:
            shutil.rmtree(self._cells, ignore_errors=True)

    def listen(self, c: Content) -> Content:
        """debugpy listens (once per interpreter); its port, and this interpreter's pid."""
        if self._endpoint is None:
            # Its warning about frozen modules (which only hides breakpoints set in the
            # standard library's frozen modules) would go into a cell as stderr.
            os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
            import debugpy

            # debugpy's threads must not take the kernel's SIGINT (see serve.py).
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                host, port = debugpy.listen(("127.0.0.1", 0))
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            self._endpoint = (str(host), int(port))
            # Lines must keep their numbers for breakpoints to land where they were set.
            cleanup = self.shell.input_transformer_manager.cleanup_transforms
            if leading_empty_lines in cleanup:
                cleanup.remove(leading_empty_lines)
        self._cells = make_cell_dir(os.getpid())
        host, port = self._endpoint
        pid, internal = os.getpid(), self._internal()
        return {"status": "ok", "host": host, "port": port, "pid": pid, "internal": internal}

    def variables(self, c: Content) -> Content:
        """The user's global variables, as DAP ``variables`` (not expandable)."""
        out: list[Content] = []
        for name, value in list(self.shell.user_ns.items()):
            if name in self.shell.user_ns_hidden or not shown_variable(name):
                continue
            if len(out) == MAX_VARIABLES:
                break
            try:
                text = repr(value)
            except Exception as e:  # a broken __repr__ must not hide the others
                text = f"<repr failed: {type(e).__name__}>"
            out.append(
                {
                    "name": name,
                    "value": text[:MAX_REPR],
                    "type": type(value).__name__,
                    "evaluateName": name,
                    "variablesReference": 0,
                }
            )
        return {"status": "ok", "variables": out}

    def rich(self, c: Content) -> Content:
        """A variable's rich representation (its MIME bundle)."""
        name = c.get("name")
        if not isinstance(name, str) or not name.isidentifier():
            return {"status": "ok", "data": {}, "metadata": {}}
        result = self.shell.user_expressions({name: name})[name]
        if result.get("status") != "ok":
            return {"status": "ok", "data": {}, "metadata": {}}
        return {"status": "ok", "data": result["data"], "metadata": result["metadata"]}

    def modules(self, c: Content) -> Content:
        """The interpreter's modules loaded from ``.py`` files, a page of them as DAP
        ``modules`` (ids are positions in ``sys.modules``)."""
        loaded = list(sys.modules.values())
        start, count = c.get("startModule"), c.get("moduleCount")
        start = start if isinstance(start, int) and start >= 0 else 0
        end = start + count if isinstance(count, int) and count > 0 else len(loaded)
        out = []
        for i, module in enumerate(loaded[start:end], start):
            path = getattr(getattr(module, "__spec__", None), "origin", None)
            if isinstance(path, str) and path.endswith(".py"):
                out.append({"id": i, "name": module.__name__, "path": path})
        return {"status": "ok", "modules": out, "totalModules": len(loaded)}
