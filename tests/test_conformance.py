"""Conformance of the ``ipytwist`` kernel with the Jupyter messaging protocol.

Runs the protocol checks of ``jupyter_kernel_test`` against the kernel as
Jupyter launches it (``python -m ipytwist.kernel -f {connection_file}``).
Every sample attribute is filled in, so no check is skipped.
"""

from __future__ import annotations

import os
import tempfile

import jupyter_kernel_test as jkt


class IpytwistKernelTests(jkt.KernelTests):
    """execute, streams, errors, results, display, pager, completion, is_complete,
    inspect, history and clear_output behave as the messaging spec says."""

    kernel_name = "ipytwist"

    @classmethod
    def setUpClass(cls) -> None:
        # A history of its own: the suite's other kernels share the test IPYTHONDIR,
        # and their cells would match the history searches below.
        cls._ipython_dir = tempfile.TemporaryDirectory(prefix="ipytwist-conformance-")
        saved = os.environ.get("IPYTHONDIR")
        os.environ["IPYTHONDIR"] = cls._ipython_dir.name
        try:
            super().setUpClass()
        finally:
            if saved is None:
                os.environ.pop("IPYTHONDIR", None)
            else:
                os.environ["IPYTHONDIR"] = saved

    @classmethod
    def tearDownClass(cls) -> None:
        super().tearDownClass()
        cls._ipython_dir.cleanup()

    language_name = "python"
    file_extension = ".py"

    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('test', file=sys.stderr)"

    completion_samples = [
        {"text": "zi", "matches": {"zip"}},
        {"text": "import collections; collections.Ord", "matches": {"OrderedDict"}},
    ]

    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n\n"]
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*2", "for i in range(3):"]
    invalid_code_samples = ["import = 7q", "1 +* 2"]

    code_page_something = "print?"

    code_generate_error = "raise ValueError('boom')"

    code_execute_result = [
        {"code": "1+2+3", "result": "6"},
        {"code": "[n*n for n in range(1, 4)]", "result": "[1, 4, 9]"},
        {"code": "from IPython.display import HTML; HTML('<b>hi</b>')", "mime": "text/html"},
    ]

    code_display_data = [
        {
            "code": "from IPython.display import HTML, display; display(HTML('<b>test</b>'))",
            "mime": "text/html",
        },
        {
            "code": "from IPython.display import Math, display; display(Math('\\\\frac{1}{2}'))",
            "mime": "text/latex",
        },
    ]

    # Matches the first sample of code_execute_result ("1+2+3").
    code_history_pattern = "1?2*"
    supported_history_operations = ("tail", "range", "search")

    code_inspect_sample = "zip"

    code_clear_output = "from IPython.display import clear_output; clear_output()"


class IpytwistIopubWelcomeTests(jkt.IopubWelcomeTests):
    """A fresh iopub subscriber first receives ``iopub_welcome`` for its topic ("")."""

    kernel_name = "ipytwist"
    support_iopub_welcome = True
