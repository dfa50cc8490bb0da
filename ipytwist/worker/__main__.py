"""Entry point of the worker process: ``python -m ipytwist.worker``."""

from __future__ import annotations

import os
import signal
import sys


def _detach() -> None:
    """Own process group (a Ctrl-C to the kernel's group reaches us only through
    the kernel), and die with the kernel if it is killed outright."""
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass  # no prctl here: the parent check below still ends an orphan at start
    if os.getppid() != parent:
        os._exit(1)


if os.environ.get("IPYTWIST_LINK_FD"):  # behind a keeper: fork it before IPython loads
    from .keepstart import enter

    _status = enter()
    if _status is not None:
        sys.exit(_status)
_detach()
signal.signal(signal.SIGINT, signal.SIG_IGN)  # until the shell is ready

from .serve import serve  # noqa: E402

if __name__ == "__main__":
    sys.exit(serve())
