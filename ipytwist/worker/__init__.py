"""The worker: a child process running IPython, driven by framed records.

It knows nothing of Jupyter messages, sockets or Twisted.  Requests arrive on
file descriptor 3, events leave on file descriptor 4; user code writes to the
real file descriptors 1 and 2, which the kernel reads as stream output.
"""

REQUEST_FD = 3
EVENT_FD = 4
