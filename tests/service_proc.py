"""Kept only for tests/test_browser.py, which still imports these names from here: the
service launcher and its helpers live in bench/benchlib (see tests/support).  Remove this
module once that file imports them from there; add nothing to it."""

from benchlib.procs import wait_for
from benchlib.running import running_service
from benchlib.servers import WARM_POOL, Service

__all__ = ["WARM_POOL", "Service", "running_service", "wait_for"]
