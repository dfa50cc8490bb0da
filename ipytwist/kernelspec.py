"""Writing the ``ipytwist`` kernelspec that Jupyter clients launch kernels from."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from importlib.util import find_spec
from typing import Any

KERNEL_NAME = "ipytwist"
DISPLAY_NAME = "Python 3 (ipytwist)"


def kernel_json(python: str = sys.executable) -> dict[str, Any]:
    """The kernelspec.  JupyterLab enables its debugger for a kernel only when the spec's
    ``metadata.debugger`` says so (``kernel_info`` alone does not), as ipykernel's does."""
    return {
        "argv": [python, "-m", "ipytwist.kernel", "-f", "{connection_file}"],
        "display_name": DISPLAY_NAME,
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {"debugger": find_spec("debugpy") is not None},
    }


def kernels_dir(user: bool = False, prefix: str | None = None) -> str:
    """Where ``jupyter kernelspec`` would put kernels for these options."""
    if prefix:
        return os.path.join(prefix, "share", "jupyter", "kernels")
    if user:
        data = os.environ.get("JUPYTER_DATA_DIR")
        if not data:
            if sys.platform == "darwin":
                data = os.path.expanduser("~/Library/Jupyter")
            else:
                base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
                data = os.path.join(base, "jupyter")
        return os.path.join(data, "kernels")
    return os.path.join(sys.prefix, "share", "jupyter", "kernels")


def install(
    user: bool = False,
    prefix: str | None = None,
    name: str = KERNEL_NAME,
    python: str = sys.executable,
) -> str:
    """Write ``kernel.json`` for ``name``; return the kernelspec directory."""
    dest = os.path.join(kernels_dir(user, prefix), name)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "kernel.json"), "w") as f:
            json.dump(kernel_json(python), f, indent=1)
        if os.path.isdir(dest):
            shutil.rmtree(dest)
        shutil.copytree(tmp, dest)
    return dest
