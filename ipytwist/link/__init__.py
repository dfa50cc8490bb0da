"""The worker link (docs/durable-kernels.md), sans-IO: :mod:`.wire` (frames, numbered
streams), :mod:`.shake` (the handshake), :mod:`.end` (one end across connections).

Pure code below the worker and the kernel, which will both use it: the keeper
listens on the kernel's Unix socket, the service connects.
"""
