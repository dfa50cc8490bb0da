"""The keeper: a durable kernel's process in front of its interpreter (docs/durable-kernels.md).

It holds the interpreter's four pipes, as the service's ``WorkerProcess`` does
for a worker started the old way, and puts its output and events in one order
(``PipeSync``, the sync markers); it numbers them and keeps them until the
service acks them (:class:`~ipytwist.link.end.LinkEnd`), so a service may come
and go.  It listens on the kernel's Unix socket; the service connects (same uid
only: ``SO_PEERCRED``).  It is the interpreter's parent (forked by
``python -m ipytwist.worker`` before IPython loads, :mod:`.keepstart`): signals,
stop and kill come as ``CONTROL`` frames.  Its memory: the window of unacked
frames (:data:`~ipytwist.link.wire.LINK_WINDOW`, plus the frame that crossed it),
one read, the event record being read, and the requests not yet in fd 3.
"""

from __future__ import annotations

import json
import mmap
import os
import selectors
import signal
import socket
import time

from ..framing import RecordSplitter, plain_record
from ..link.end import LinkEnd
from ..link.shake import LinkRefused
from ..link.wire import PIPE_VERSION, Frame, Kind, LinkError, encode_frame, json_body
from ..pipesync import PipeSync
from . import EVENT_FD, sync_marker
from .keepio import (
    FrameQueue,
    RequestFeed,
    drain,
    exit_phrase,
    inode_of,
    log,
    peer_uid,
    prepare_link,
    remove_socket_file,
    wakeup_pipe,
)

__all__ = ["DEFAULT_ORPHAN_TIMEOUT", "DIE_WITH_PARENT_ENV", "KERNEL_ENV", "KILL_AFTER"]
__all__ += ["LINK_FD_ENV", "LINK_PATH_ENV", "ORPHAN_ENV", "SECRET_FD_ENV"]
__all__ += ["Keeper", "prepare_link"]

#: The inherited listening socket's fd, the pipe with the secret, the kernel's id.
LINK_FD_ENV = "IPYTWIST_LINK_FD"
SECRET_FD_ENV = "IPYTWIST_LINK_SECRET_FD"
KERNEL_ENV = "IPYTWIST_KERNEL_ID"
#: The socket's path (removed when the keeper ends; its bound name may be a short alias).
LINK_PATH_ENV = "IPYTWIST_LINK_PATH"
#: Seconds without a service after which the keeper ends its interpreter's group.
ORPHAN_ENV = "IPYTWIST_ORPHAN_TIMEOUT"
#: "1": the keeper ends with the process that started it (a kernel that is not durable).
DIE_WITH_PARENT_ENV = "IPYTWIST_KEEPER_DIES_WITH_PARENT"
DEFAULT_ORPHAN_TIMEOUT = 3600.0
#: Seconds from a stop's shutdown or a SIGTERM to the SIGKILL of the interpreter's group.
KILL_AFTER = 2.0
_NAMES = {1: "stdout", 2: "stderr"}
#: After a read of an output pipe, leave it alone this long (``kernel.process``'s pause).
PIPE_READ_PAUSE = 0.01
_READ = 1 << 16
#: An ack of requests rides on the next frame to the service, or goes alone this late.
ACK_DELAY = 0.02
#: The loop's longest sleep with nothing due (twice a second: 2 % of a core, 200 kernels).
IDLE_WAKE = 60.0
_SHUTDOWN = plain_record({"req": "shutdown"})


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
        self.path = ""
        #: The socket file's inode: a later keeper of the kernel may take its path.
        self.inode: int | None = None
        self.at(str(listen.getsockname()))
        self.orphan_timeout = orphan_timeout
        token, self.pid, self.readers, req_w = interpreter
        self.link = LinkEnd(True, secret, kernel_id)
        self.link.info = {"pid": self.pid, "keeper": os.getpid()}
        self.sync = PipeSync(sync_marker(token), self._output)
        self.splitter = RecordSplitter()
        self.sel = selectors.DefaultSelector()
        self.sel.register(listen, selectors.EVENT_READ, "listen")
        self.conn: socket.socket | None = None
        self.out = FrameQueue()  # to the service
        self.feed = RequestFeed(req_w)  # requests for the interpreter
        self.uid = os.getuid()
        self._recv = mmap.mmap(-1, 1 << 18)  # for all recvs; a page costs once written
        self.exited: str | None = None
        #: Ending: the service asked for it (stop, kill), or SIGTERM, or the orphan timeout.
        self.stopping = False
        #: The service will not come back for the end: exit once the interpreter has.
        self.leaving = False
        self.status = 0
        #: When the interpreter's group gets SIGKILL if the interpreter still runs.
        self.kill_at: float | None = None
        self.orphaned_at: float | None = time.monotonic()
        #: A SIGCHLD came (or none was watched for yet): look whether the interpreter ended.
        self._child_signalled = True
        #: When the ack of written requests goes alone, if no frame has taken it by then.
        self._ack_at: float | None = None
        self._reading = True
        self._conn_mask = 0
        self._watched: set[int | str] = set()
        #: Output pipes left alone until then, after a read (as ``WorkerProcess`` does).
        self._paused: dict[int, float] = {}

    # -- the interpreter's side ---------------------------------------------

    def _register(self) -> float:
        """Watch what there is to watch now; the seconds until something is due."""
        now = time.monotonic()
        self._paused = {fd: at for fd, at in self._paused.items() if at > now}
        reading = self._reading and not self.link.out.full
        for fd, r in self.readers.items():
            self._watch(fd, r, reading and fd not in self._paused, selectors.EVENT_READ)
        if self.conn is not None:
            mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.out else 0)
            if mask != self._conn_mask:  # (a syscall: not on every turn)
                self.sel.modify(self.conn, mask, "conn")
                self._conn_mask = mask
        self._watch("fd3", self.feed.fd, bool(self.feed), selectors.EVENT_WRITE)
        due = [*self._paused.values(), now + IDLE_WAKE]  # (signals wake it through a pipe)
        if self.orphaned_at is not None and not self.leaving:
            due.append(self.orphaned_at + self.orphan_timeout)
        due += [at for at in (self.kill_at, self._ack_at) if at is not None]
        return min(due) - now

    def _watch(self, key: int | str, fd: int, want: bool, events: int) -> None:
        if want and key not in self._watched:
            self.sel.register(fd, events, key)
            self._watched.add(key)
        elif not want and key in self._watched:
            self.sel.unregister(fd)
            self._watched.discard(key)

    def _output(self, name: str, data: bytes) -> None:
        self._send(Kind.OUTPUT, bytes((1 if name == "stdout" else 2,)) + data)

    def _read(self, fd: int) -> bytes | None:
        """One read of one of the interpreter's pipes: None if it is empty.  At EOF (no
        writer is left: it can never give more) the pipe is closed and forgotten."""
        try:
            data = os.read(self.readers[fd], _READ)
        except BlockingIOError:
            return None
        if not data:
            self._forget(fd)
        return data

    def _forget(self, fd: int) -> None:
        if fd in self._watched:
            self.sel.unregister(self.readers[fd])
            self._watched.discard(fd)
        os.close(self.readers.pop(fd))

    def _drain_output(self, fd: int, bounded: bool) -> None:
        """Read an output pipe until it is empty, or (``bounded``) the window is full.  A
        short read took all there was (a marker is one atomic write, never cut by it)."""
        while fd in self.readers and not (bounded and self.link.out.full):
            data = self._read(fd)
            if data:
                self.sync.output(_NAMES[fd], data)
                if bounded:  # let the next writes pile up: fewer, larger frames
                    self._paused[fd] = time.monotonic() + PIPE_READ_PAUSE
            if data is None or len(data) < _READ:
                self.sync.pipe_empty(_NAMES[fd])
                return

    def _pipe_ready(self, fd: int) -> None:
        if fd != EVENT_FD:
            self._drain_output(fd, bounded=True)
            return
        while EVENT_FD in self.readers and not self.link.out.full:  # a read at a time
            data = self._read(EVENT_FD)
            for record in self.splitter.feed(data or b""):
                for out, name in _NAMES.items():  # what was written before its marker
                    if self.sync.before_next_event(name):
                        self._drain_output(out, bounded=False)
                self._send(Kind.EVENT, record)
                self.sync.event_delivered()
            if data is None or len(data) < _READ:
                return

    def _reap(self) -> None:
        """After a SIGCHLD: if the interpreter has ended, send the rest of its output and
        its end.  SIGKILL to its group if a stop's time is up."""
        if self.exited is not None:
            return
        if self.kill_at is not None and time.monotonic() >= self.kill_at:
            self.kill_at = None
            self._kill_group()  # it did not end in time
        if not self._child_signalled:
            return
        self._child_signalled = False
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return
        self.link.out.window = 1 << 62  # its last output goes, whatever the window
        self._pipe_ready(EVENT_FD)
        for fd in _NAMES:
            self._drain_output(fd, bounded=False)
        self.sync.flush()
        self._kill_group()  # user code's children end with their interpreter
        self._reading = False
        code = os.waitstatus_to_exitcode(status)
        self.exited = exit_phrase(code)
        self._send(Kind.EXITED, json_body({"description": self.exited, "status": code}))

    def _kill_group(self, signum: int = signal.SIGKILL) -> None:
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def _end(self, status: int) -> None:
        """SIGTERM to the interpreter's group, SIGKILL after :data:`KILL_AFTER`; the
        keeper exits once the interpreter has (with ``status``)."""
        self.stopping = self.leaving = True
        self.status = status
        if self.exited is None:
            self._kill_group(signal.SIGTERM)
            self.kill_at = time.monotonic() + KILL_AFTER

    # -- the service's side -------------------------------------------------

    def _send(self, kind: Kind, body: bytes) -> None:
        self.out.add(self.link.send(kind, body))
        self._ack_at = None  # the frame carries the ack

    def _accept(self) -> None:
        conn, _ = self.listen.accept()
        uid = peer_uid(conn)
        if uid is not None and uid != self.uid:
            log(f"refused a connection from uid {uid} (not the kernel's owner)")
            reason = json_body({"reason": "not the kernel's owner"})
            try:
                conn.setblocking(False)
                conn.send(encode_frame(Kind.REFUSE, 0, 0, reason))
            except OSError:
                pass
            conn.close()
            return
        if self.conn is not None:
            self._drop()  # a new service replaces a hung one
        conn.setblocking(False)
        self.conn = conn
        self.out.add(self.link.connection_made())
        self.sel.register(conn, selectors.EVENT_READ, "conn")
        self._conn_mask = selectors.EVENT_READ

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
            n = self.conn.recv_into(self._recv)
            data = bytes(memoryview(self._recv)[:n])
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop()
            return
        shaking = not self.link.authenticated
        try:
            write, frames = self.link.data_received(data)
        except LinkRefused as e:
            self.out.add(e.frame)
            self._flush()
            self._drop()
            if not e.frame:  # the service refused us: end, with the interpreter's group
                self._kill_group()
                raise SystemExit(1) from None
            return
        except LinkError:
            self._drop()
            return
        self.out.add(write)
        if self.link.authenticated:
            self.orphaned_at = None
            if shaking and self.link.version >= PIPE_VERSION and self.exited is None:
                self.out.add_with_fd(encode_frame(Kind.PIPE, 0, 0), self.feed.fd)
        for frame in frames:
            self._handle(frame)

    def _handle(self, frame: Frame) -> None:
        if frame.kind is Kind.REQUEST:
            self.feed.add(frame.seq, frame.body)
        elif frame.kind is Kind.CONTROL:
            try:
                control = json.loads(frame.body)
            except ValueError:
                control = {}
            self._control(control if isinstance(control, dict) else {}, frame.seq)

    def _control(self, control: dict[str, object], seq: int) -> None:
        what = control.get("do")
        signum = control.get("signal")
        if what == "signal" and isinstance(signum, int) and self.exited is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass
        elif what == "stop":
            self.stopping = True
            self.feed.add(seq, _SHUTDOWN)
            if self.kill_at is None:
                self.kill_at = time.monotonic() + KILL_AFTER
        elif what == "kill":
            self.stopping = True
            self._kill_group()

    def _flush(self) -> None:
        """Write requests into fd 3 and frames to the service, as far as each takes them;
        ack the requests all written (and the frames that were no request)."""
        self.feed.write()
        if self.link.acknowledge(self.feed.written_before(self.link.inbound.taken)):
            self._ack_at = self._ack_at or time.monotonic() + ACK_DELAY
        if self._ack_at is not None and time.monotonic() >= self._ack_at:
            self._ack_at = None
            if self.link.authenticated:  # (else the next handshake repeats it)
                self.out.add(encode_frame(Kind.ACK, 0, self.link.safe))
        if self.conn is not None and self.out:
            try:
                self.out.write(self.conn)
            except OSError:
                self._drop()

    # -- the loop -------------------------------------------------------------

    def run(self) -> int:
        """Serve until the interpreter has ended and the service took its end.  SIGTERM
        ends the interpreter's whole group (SIGKILL after :data:`KILL_AFTER`), then the
        keeper; so does the orphan timeout."""
        signal.signal(signal.SIGTERM, self._terminated)
        self.sel.register(wakeup_pipe(), selectors.EVENT_READ, "signal")  # SIGCHLD, SIGTERM
        signal.signal(signal.SIGCHLD, self._child_changed)  # the interpreter is reaped at once
        while not self._done():
            if self.orphaned_at is not None and not self.leaving:
                if time.monotonic() - self.orphaned_at >= self.orphan_timeout:
                    self._end(1)
            for key, mask in self.sel.select(timeout=max(0.0, self._register())):
                if key.data == "listen":
                    self._accept()
                elif key.data == "conn" and mask & selectors.EVENT_READ:
                    self._conn_ready()
                elif isinstance(key.data, int):
                    self._pipe_ready(key.data)
                elif key.data == "signal":
                    drain(key.fd)
            self._reap()
            self._flush()
        return self.status

    def _terminated(self, signum: int, frame: object) -> None:
        self._end(1)

    def _child_changed(self, signum: int, frame: object) -> None:
        self._child_signalled = True

    def at(self, path: str) -> None:
        """The socket file is ``path`` (its real path, when bound through a directory's
        descriptor)."""
        self.path, self.inode = path, inode_of(path)

    def remove_socket(self) -> None:
        """The socket file goes with the keeper, unless a later keeper of the kernel took
        its path; and the kernel's directory if nothing else is in it."""
        remove_socket_file(self.path, self.inode)

    def _done(self) -> bool:
        """The interpreter has ended and its end was taken, or the service that asked
        for the stop has gone (it does not want this kernel back), or none is wanted."""
        if self.exited is None:
            return False
        if self.leaving or (self.stopping and self.conn is None):
            return True
        return self.link.out.acked == self.link.out.sent
