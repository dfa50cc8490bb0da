"""What the tests share: fixtures' building blocks, clients, fakes and scenario parts.

Where a test needs what a benchmark also needs (launching the service, the kernel
WebSocket clients, the reliability scenarios, Chromium's flags), it imports the
benchmarks' library, ``bench/benchlib``, which importing this package puts on
``sys.path``; the benchmarks import nothing from here.

- :mod:`support.fakes`: the kernel's collaborators faked (worker, provisioner, client);
- :mod:`support.service`: the service fixture;
- :mod:`support.zmq_client`: the signing ZeroMQ client;
- :mod:`support.jupyter_kernel`: a kernel started through jupyter_client, and driving it;
- :mod:`support.fake_process`: Twisted's process transport and pipes, faked;
- :mod:`support.json_errors`: the site's JSON errors as the in-process tests read them;
- :mod:`support.worker_proc`: a real worker driven over its pipes;
- :mod:`support.tcp_proxy`: a TCP proxy whose connections a test cuts;
- :mod:`support.console`: the console's environment under test;
- :mod:`support.flood`: the flood test's reader processes, meters and judge;
- :mod:`support.fuzz`: hostile input and the service's log after it;
- :mod:`support.raw_http`: raw HTTP and sockets from any loopback address;
- :mod:`support.chunks`: a byte stream fed to a decoder in pieces.
"""

from __future__ import annotations

import os
import sys

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "bench")
if os.path.abspath(BENCH) not in [os.path.abspath(p) for p in sys.path]:
    sys.path.append(os.path.abspath(BENCH))
