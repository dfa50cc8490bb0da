"""Entry point of the worker process: ``python -m ipytwist.worker``."""

from __future__ import annotations

import os
import signal
import sys

from . import detach

if os.environ.get("IPYTWIST_LINK_FD"):  # behind a keeper: fork it before IPython loads
    from .keepstart import enter

    _status = enter()
    if _status is not None:
        sys.exit(_status)
detach()
signal.signal(signal.SIGINT, signal.SIG_IGN)  # until the shell is ready

from .serve import serve  # noqa: E402

if __name__ == "__main__":
    sys.exit(serve())
