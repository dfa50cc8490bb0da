"""The keeper: a durable kernel's process in front of its interpreter (docs/durable-kernels.md).

It holds the interpreter's four pipes, as the service's ``WorkerProcess`` does
for a worker started the old way, and puts its output and events in one order
(``PipeSync``, the sync markers); it numbers them and keeps them until the
service acks them (:class:`~ipytwist.link.end.LinkEnd`), so a service may come
and go.  It listens on the kernel's Unix socket; the service connects.  It is
the interpreter's parent (forked by ``python -m ipytwist.worker`` before IPython
loads): signals, stop and kill come as ``CONTROL`` frames.  Unfinished (the
design's steps): requests a piece at a time, SO_PEERCRED, SIGKILL 2 s after a stop."""

from __future__ import annotations

import fcntl
import gc
import json
import os
import selectors
import signal
import socket
import time

from ..framing import RecordSplitter, encode_record
from ..link.end import LinkEnd
from ..link.shake import LinkRefused
from ..link.wire import Frame, Kind, LinkError, json_body
from ..pipesync import PipeSync
from . import EVENT_FD, REQUEST_FD, SYNC_ENV, sync_marker

#: The inherited listening socket's fd, the pipe with the secret, the kernel's id.
LINK_FD_ENV = "IPYTWIST_LINK_FD"
SECRET_FD_ENV = "IPYTWIST_LINK_SECRET_FD"
KERNEL_ENV = "IPYTWIST_KERNEL_ID"
#: Seconds without a service after which the keeper ends its interpreter's group.
ORPHAN_ENV = "IPYTWIST_ORPHAN_TIMEOUT"
#: "1": the keeper ends with the process that started it (a kernel that is not durable).
DIE_WITH_PARENT_ENV = "IPYTWIST_KEEPER_DIES_WITH_PARENT"
DEFAULT_ORPHAN_TIMEOUT = 3600.0
_NAMES = {1: "stdout", 2: "stderr"}
#: After a read of an output pipe, leave it alone this long (``kernel.process``'s pause).
PIPE_READ_PAUSE = 0.01
_READ = 1 << 16


def fork_interpreter(token: str) -> tuple[int, dict[int, int], int]:
    """Fork the interpreter on new pipes (no exec: one Python start for both); its pid, the
    read ends of its fds 1, 2 and 4 and the write end of its fd 3; ``(0, {}, -1)`` in it."""
    req_r, req_w = os.pipe()
    pipes = {fd: os.pipe() for fd in (1, 2, EVENT_FD)}
    gc.freeze()  # no collection in either process writes to the pages they share
    pid = os.fork()
    if pid == 0:  # the interpreter: its fds as the worker expects them, nothing else
        try:
            # Above every target first, so that no dup2 closes a pipe still to be placed.
            targets = {fd: fcntl.fcntl(w, fcntl.F_DUPFD, 10) for fd, (_, w) in pipes.items()}
            targets[REQUEST_FD] = fcntl.fcntl(req_r, fcntl.F_DUPFD, 10)
            targets[0] = os.open(os.devnull, os.O_RDONLY)
            for fd, source in targets.items():
                os.dup2(source, fd)
            os.closerange(EVENT_FD + 1, os.sysconf("SC_OPEN_MAX"))
            os.environ[SYNC_ENV] = token
            return 0, {}, -1
        except BaseException:
            os._exit(127)
    os.close(req_r)
    readers = {}
    for fd, (r, w) in pipes.items():
        os.close(w)
        os.set_blocking(r, False)
        readers[fd] = r
    os.set_blocking(req_w, False)
    return pid, readers, req_w


def exit_phrase(code: int) -> str:
    """How the interpreter ended, in the words of the kernel's notice (as
    ``kernel.process.describe_exit`` says it of a worker on pipes)."""
    if code >= 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"was killed by signal {-code} ({name})"


def prepare_link(path: str, secret: bytes) -> tuple[socket.socket, int]:
    """What a keeper inherits from whoever starts it: the socket listening at ``path``
    and the read end of a pipe that holds ``secret`` (never the environment or argv)."""
    listen = socket.socket(socket.AF_UNIX)
    listen.bind(path)
    listen.listen(8)
    r, w = os.pipe()
    os.write(w, secret)
    os.close(w)
    return listen, r


class Keeper:
    """The keeper's loop: the interpreter's pipes and the link, on one selector."""

    def __init__(
        self,
        listen: socket.socket,
        secret: bytes,
        kernel_id: str,
        orphan_timeout: float,
        interpreter: tuple[str, int, dict[int, int], int],
    ) -> None:
        self.listen = listen
        self.orphan_timeout = orphan_timeout
        token, self.pid, self.readers, self.req_w = interpreter
        self.link = LinkEnd(True, secret, kernel_id)
        self.link.info = {"pid": self.pid, "keeper": os.getpid()}
        self._ino = os.stat(listen.getsockname()).st_ino  # a later keeper may take the path
        self.sync = PipeSync(sync_marker(token), self._output)
        self.splitter = RecordSplitter()
        self.sel = selectors.DefaultSelector()
        self.sel.register(listen, selectors.EVENT_READ, "listen")
        self.conn: socket.socket | None = None
        self.out = bytearray()  # to the service
        self.to_fd3 = bytearray()  # requests for the interpreter
        self.exited: str | None = None
        self.stopping = False  # the service asked for the end: do not wait for it back
        self.orphaned_at: float | None = time.monotonic()
        self._reading = True
        self._watched: set[int | str] = set()
        #: Output pipes left alone until then, after a read (as ``WorkerProcess`` does).
        self._paused: dict[int, float] = {}

    # -- the interpreter's side ---------------------------------------------

    def _read_pipes(self, on: bool) -> None:
        """Read the output and event pipes, or leave them to fill (the window is full:
        print blocks in the interpreter, as under backpressure)."""
        self._reading = on

    def _register(self) -> float:
        """Watch what there is to watch now; the seconds until a paused pipe resumes."""
        now = time.monotonic()
        self._paused = {fd: at for fd, at in self._paused.items() if at > now}
        for fd, r in self.readers.items():
            want = self._reading and fd not in self._paused
            if want and fd not in self._watched:
                self.sel.register(r, selectors.EVENT_READ, fd)
                self._watched.add(fd)
            elif not want and fd in self._watched:
                self.sel.unregister(r)
                self._watched.discard(fd)
        if self.conn is not None:
            writing = selectors.EVENT_WRITE if self.out else 0
            self.sel.modify(self.conn, selectors.EVENT_READ | writing, "conn")
        if bool(self.to_fd3) != ("fd3" in self._watched):
            if self.to_fd3:
                self.sel.register(self.req_w, selectors.EVENT_WRITE, "fd3")
                self._watched.add("fd3")
            else:
                self.sel.unregister(self.req_w)
                self._watched.discard("fd3")
        return min(self._paused.values(), default=now + 0.5) - now

    def _output(self, name: str, data: bytes) -> None:
        self._send(Kind.OUTPUT, bytes((1 if name == "stdout" else 2,)) + data)

    def _drain(self, fd: int) -> bytes:
        """What is waiting on one of the interpreter's pipes (b"" at EOF too)."""
        chunks: list[bytes] = []
        while True:
            try:
                data = os.read(self.readers[fd], _READ)
            except BlockingIOError:
                return b"".join(chunks)
            if not data:
                return b"".join(chunks)
            chunks.append(data)

    def _pipe_ready(self, fd: int) -> None:
        if fd != EVENT_FD:
            data = self._drain(fd)
            self.sync.output(_NAMES[fd], data)
            self.sync.pipe_empty(_NAMES[fd])
            if data:  # let the next writes pile up: fewer, larger frames
                self._paused[fd] = time.monotonic() + PIPE_READ_PAUSE
            return
        for record in self.splitter.feed(self._drain(EVENT_FD)):
            for out in _NAMES:  # what the interpreter wrote before this event's marker
                self.sync.output(_NAMES[out], self._drain(out))
                self.sync.pipe_empty(_NAMES[out])
            self._send(Kind.EVENT, record)
            self.sync.event_delivered()

    def _reap(self) -> None:
        if self.exited is not None:
            return
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return
        for fd in (EVENT_FD, 1, 2):
            self._pipe_ready(fd)
        self.sync.flush()
        self._kill_group()  # user code's children end with their interpreter
        self._read_pipes(False)
        code = os.waitstatus_to_exitcode(status)
        self.exited = exit_phrase(code)
        self._send(Kind.EXITED, json_body({"description": self.exited, "status": code}))

    def _kill_group(self, signum: int = signal.SIGKILL) -> None:
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    # -- the service's side -------------------------------------------------

    def _send(self, kind: Kind, body: bytes) -> None:
        self.out += b"".join(self.link.send(kind, body))
        if self.link.out.full:
            self._read_pipes(False)

    def _accept(self) -> None:
        conn, _ = self.listen.accept()
        if self.conn is not None:
            self._drop()  # a new service replaces a hung one
        conn.setblocking(False)
        self.conn = conn
        self.out = bytearray(self.link.connection_made())
        self.sel.register(conn, selectors.EVENT_READ, "conn")

    def _drop(self) -> None:
        if self.conn is not None:
            self.sel.unregister(self.conn)
            self.conn.close()
        self.conn = None
        self.link.connection_lost()
        self.out.clear()
        self.orphaned_at = time.monotonic()

    def _conn_ready(self) -> None:
        assert self.conn is not None  # (registered only while there is one)
        try:
            data = self.conn.recv(1 << 18)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop()
            return
        try:
            write, frames = self.link.data_received(data)
        except LinkRefused as e:
            self.out += e.frame
            self._flush()
            self._drop()
            if not e.frame:  # the service refused us: end, with the interpreter's group
                self._kill_group()
                raise SystemExit(1) from None
            return
        except LinkError:
            self._drop()
            return
        self.out += b"".join(write)
        if self.link.authenticated:
            self.orphaned_at = None
        for frame in frames:
            self._handle(frame)
        if not self.link.out.full and self.exited is None:
            self._read_pipes(True)

    def _handle(self, frame: Frame) -> None:
        if frame.kind is Kind.REQUEST:
            self.to_fd3 += frame.body
        elif frame.kind is Kind.CONTROL:
            try:
                control = json.loads(frame.body)
            except ValueError:
                control = {}
            self._control(control if isinstance(control, dict) else {})
        self.out += self.link.acknowledge(frame.seq)

    def _control(self, control: dict[str, object]) -> None:
        what = control.get("do")
        signum = control.get("signal")
        if what == "signal" and isinstance(signum, int) and self.exited is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass
        elif what == "stop":
            self.stopping = True
            self.to_fd3 += encode_record({"req": "shutdown"})
        elif what == "kill":
            self.stopping = True
            self._kill_group()

    def _flush(self) -> None:
        """Write what waits, as far as the socket and the pipe take it."""
        if self.conn is not None and self.out:
            try:
                n = self.conn.send(self.out)
                del self.out[:n]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._drop()
        if self.to_fd3 and self.req_w >= 0:
            try:
                n = os.write(self.req_w, self.to_fd3)
                del self.to_fd3[:n]
            except BlockingIOError:
                pass
            except OSError:
                self.to_fd3.clear()  # the interpreter is gone; its EXITED follows

    # -- the loop -------------------------------------------------------------

    def run(self) -> int:
        """Serve until the interpreter has ended and the service took its end.  SIGTERM
        ends the interpreter's whole group, then the keeper."""
        signal.signal(signal.SIGTERM, self._terminated)
        while not self._done():
            if self.orphaned_at is not None and self._orphan_expired():
                return 1
            for key, mask in self.sel.select(timeout=max(0.0, self._register())):
                if key.data == "listen":
                    self._accept()
                elif key.data == "conn" and mask & selectors.EVENT_READ:
                    self._conn_ready()
                elif isinstance(key.data, int):
                    self._pipe_ready(key.data)
            self._reap()
            self._flush()
        return 0

    def _terminated(self, signum: int, frame: object) -> None:
        self._kill_group()
        self.remove_socket()
        os._exit(1)

    def remove_socket(self) -> None:
        """The socket file goes with the keeper (no service could reach it any more)."""
        try:
            if os.stat(path := self.listen.getsockname()).st_ino == self._ino:  # still ours
                os.unlink(path)
        except (OSError, TypeError):
            pass

    def _done(self) -> bool:
        """The interpreter has ended and its end was taken, or the service that asked
        for the stop has gone (it does not want this kernel back)."""
        if self.exited is None:
            return False
        return self.link.out.acked == self.link.out.sent or (self.stopping and self.conn is None)

    def _orphan_expired(self) -> bool:
        assert self.orphaned_at is not None
        if time.monotonic() - self.orphaned_at < self.orphan_timeout:
            return False
        self._kill_group(signal.SIGTERM)
        self._kill_group(signal.SIGKILL)  # (the 2 s of grace is still to come)
        return True


def _die_with_parent() -> None:
    """PDEATHSIG: the keeper of a kernel that is not durable ends with its parent."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the keeper's orphan timeout ends it


def enter() -> int | None:
    """``python -m ipytwist.worker`` with :data:`LINK_FD_ENV` set: fork the
    interpreter before anything heavy is imported; the parent is the keeper and
    serves (its exit status), the child returns ``None`` and goes on as the worker.
    The environment says the socket and the secret's pipe."""
    parent = os.getppid()
    os.setsid()  # neither the service's death nor its terminal's Ctrl-C reaches us
    if os.environ.pop(DIE_WITH_PARENT_ENV, "") == "1":
        _die_with_parent()
        if os.getppid() != parent:
            return 1
    listen = socket.socket(fileno=int(os.environ.pop(LINK_FD_ENV)))
    secret_fd = int(os.environ.pop(SECRET_FD_ENV))
    secret = os.read(secret_fd, 64)
    os.close(secret_fd)
    kernel_id = os.environ.pop(KERNEL_ENV)
    timeout = float(os.environ.pop(ORPHAN_ENV, DEFAULT_ORPHAN_TIMEOUT))
    token = os.urandom(16).hex()
    pid, readers, req_w = fork_interpreter(token)
    if pid == 0:
        listen.detach()  # (closed with the rest above fd 4)
        return None
    keeper = Keeper(listen, secret, kernel_id, timeout, (token, pid, readers, req_w))
    try:
        return keeper.run()
    finally:
        keeper.remove_socket()
