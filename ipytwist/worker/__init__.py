"""The worker: a child process running IPython, driven by framed records.

It knows nothing of Jupyter messages, sockets or Twisted.  Requests arrive on
file descriptor 3, events leave on file descriptor 4; user code writes to the
real file descriptors 1 and 2, which the kernel reads as stream output.
"""

import signal

REQUEST_FD = 3
EVENT_FD = 4
#: Sent by the kernel while an interrupted request keeps running; a no-op in the
#: worker, it only makes a blocking call return so Python runs a SIGINT handler that
#: the SIGINT itself did not get to run (see ``ipytwist.kernel.core.INTERRUPT_NUDGES``).
NUDGE_SIGNAL = signal.SIGWINCH
#: Environment variable carrying the token of the output pipes' sync marker (hex).
SYNC_ENV = "IPYTWIST_SYNC_TOKEN"


#: The record key by which the kernel says how many SIGINTs it had sent the worker
#: before the record: one that lands while the worker waits for a request is meant for
#: that request only if the worker has had more than that (see ``link.Interrupts``).
SIGINTS_BEFORE = "sigints"
#: The record key by which the kernel says it published a cell's ``execute_input``
#: itself, with this execution count (the count the worker's last reply gave).
ANNOUNCED = "input"


def runs_as_cell(content: dict[str, object]) -> bool:
    """Whether an ``execute_request``'s content runs as a cell that announces its input:
    not silent, its code a string and its user expressions a dict (the worker refuses
    others before anything runs)."""
    expressions = content.get("user_expressions") or {}
    return (
        not content.get("silent", False)
        and isinstance(content.get("code", ""), str)
        and isinstance(expressions, dict)
    )


def sync_marker(token: str) -> bytes:
    """Bytes the worker writes to fds 1 and 2 just before each event record.

    Everything before the n-th marker on a output pipe was written before the
    n-th event, everything after it later, so the kernel can put stream output
    and events in the order they happened.  One small write, so it is atomic.
    """
    return b"\x00ipytwist-sync:" + token.encode("ascii") + b"\x00"


def detach() -> None:
    """Own process group (a Ctrl-C to the kernel's group reaches the worker only through
    the kernel), and die with the parent if it is killed outright."""
    import os
    import sys

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
