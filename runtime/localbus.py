"""Messages between the processes of one node: Unix stream sockets, length-prefixed frames.

Why not ZeroMQ here: a ZeroMQ `ipc://` hop hands each message through an I/O thread on both
sides (sender's thread -> its I/O thread -> the socket -> the receiver's I/O thread -> its
thread), three wake-ups where one does. On this kind of path (a write crosses four to eight
such hops in series) that was a third of an unloaded write's latency (bench/RESULTS.md). A
node's actors only ever talk to each other on one machine, so they need none of ZeroMQ's
routing or reconnect machinery beyond what is below.

Rules (the same contract the actors had with ZeroMQ PUSH/PULL):
- Each process binds `<run_dir>/<name>.bus` and accepts any number of senders; each sender keeps
  one connection per destination. Messages from one sender arrive in the order sent.
- `send(dest, frames)` never blocks: frames are queued and written as the socket takes them
  (a whole batch in one write when it fits). A destination not there yet (not bound, or
  restarting) is retried every RETRY_S with the queue kept, so that a message sent to an actor
  that is still starting reaches it. Past `queue_limit` queued frames further frames are
  dropped with a log line.
- A connection that breaks loses what was in flight on it (the peer died): delivery is not
  promised across a peer's death; the protocols above resynchronise, as they did with ZeroMQ.
- Bad input from a sender (a length beyond MAX_FRAME) closes that connection, never the process.
- The bus is one epoll descriptor (`fileno()`) for the caller's own poller: readable when
  anything (a connection, a frame, room to write) wants attention; then call `process(now)`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import struct
from collections import deque
from collections.abc import Callable
from typing import Any

LEN = struct.Struct("<I")
MAX_FRAME = 1 << 30
RECV_BYTES = 256 * 1024  # one recv
RECVS_PER_TURN = 16  # per connection per process(): a busy sender does not starve the others
RETRY_S = 0.005  # a destination not accepting is tried again this often
SOCKET_BUFFER = 4 * 1024 * 1024  # asked for; Linux caps it at net.core.{w,r}mem_max
_GONE = (errno.ENOENT, errno.ECONNREFUSED, errno.EAGAIN, errno.ENOTDIR)


def bus_path(run_dir: str, name: str) -> str:
    return os.path.join(run_dir, f"{name}.bus")


def _new_socket() -> socket.socket:
    return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)


class _Out:
    """One destination: its connection (or None) and what is waiting to be written."""

    __slots__ = ("dest", "path", "sock", "chunks", "head", "queued", "retry_at", "watching_out", "dropping")

    def __init__(self, dest: str, path: str) -> None:
        self.dest = dest
        self.path = path
        self.sock: socket.socket | None = None
        self.chunks: deque[tuple[bytes, int]] = deque()  # (encoded frames, how many frames)
        self.head = 0  # bytes of chunks[0] already written
        self.queued = 0
        self.retry_at = 0.0
        self.watching_out = False
        self.dropping = False


class _In:
    __slots__ = ("sock", "buf")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()


class LocalBus:
    def __init__(self, run_dir: str, name: str, log: Any, *, queue_limit: int = 200_000) -> None:
        self.run_dir = run_dir
        self.name = name
        self.log = log
        self.queue_limit = queue_limit
        self.path = bus_path(run_dir, name)
        self._ep = select.epoll()
        self._listener = _new_socket()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # a previous incarnation's socket file
        self._listener.bind(self.path)
        self._listener.listen(128)
        self._ep.register(self._listener.fileno(), select.EPOLLIN)
        self._ins: dict[int, _In] = {}
        self._outs: dict[str, _Out] = {}
        self._out_fds: dict[int, _Out] = {}
        self._waiting: set[_Out] = set()  # destinations to connect to again at their retry_at
        self.closed = False

    def fileno(self) -> int:
        return self._ep.fileno()

    def next_deadline(self) -> float | None:
        if not self._waiting:
            return None
        return min(out.retry_at for out in self._waiting)

    # --- sending ------------------------------------------------------------------------------

    def send(self, dest: str, frames: list[bytes], now: float) -> None:
        """Queue `frames` for `dest` and write what the socket takes now."""
        out = self._outs.get(dest)
        if out is None:
            out = self._outs[dest] = _Out(dest, bus_path(self.run_dir, dest))
        room = self.queue_limit - out.queued
        if room < len(frames):
            if not out.dropping:
                self.log.warning("send_dropped", dest=dest, messages=len(frames) - max(room, 0), queued=out.queued)
                out.dropping = True
            frames = frames[: max(room, 0)]
            if not frames:
                return
        parts: list[bytes] = []
        for frame in frames:
            parts.append(LEN.pack(len(frame)))
            parts.append(frame)
        out.chunks.append((b"".join(parts), len(frames)))
        out.queued += len(frames)
        if out.sock is None:
            if out in self._waiting and now < out.retry_at:
                return
            self._connect(out, now)
        if out.sock is not None and not out.watching_out:
            self._pump(out, now)

    def _connect(self, out: _Out, now: float) -> None:
        sock = _new_socket()
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
        try:
            sock.connect(out.path)
        except OSError as exc:
            sock.close()
            if exc.errno not in _GONE:
                self.log.warning("bus_connect_failed", dest=out.dest, error=str(exc))
            out.retry_at = now + RETRY_S
            self._waiting.add(out)
            return
        self._waiting.discard(out)
        out.sock = sock
        self._out_fds[sock.fileno()] = out

    def _pump(self, out: _Out, now: float) -> None:
        """Write queued chunks until done or the socket is full (then wait for EPOLLOUT)."""
        sock = out.sock
        assert sock is not None
        while out.chunks:
            data, count = out.chunks[0]
            try:
                sent = sock.send(memoryview(data)[out.head :] if out.head else data)
            except BlockingIOError:
                self._watch_out(out, True)
                return
            except OSError as exc:
                self._broken(out, now, str(exc))
                return
            out.head += sent
            if out.head < len(data):
                continue
            out.chunks.popleft()
            out.head = 0
            out.queued -= count
            out.dropping = False
        self._watch_out(out, False)

    def _watch_out(self, out: _Out, on: bool) -> None:
        if out.watching_out == on or out.sock is None:
            return
        fd = out.sock.fileno()
        if on:
            self._ep.register(fd, select.EPOLLOUT)
        else:
            self._ep.unregister(fd)
        out.watching_out = on

    def _broken(self, out: _Out, now: float, reason: str) -> None:
        """The peer went away: what it had not read is lost; a batch cut in the middle is dropped
        whole (the next connection must start on a frame boundary); the rest waits for it."""
        self._watch_out(out, False)
        assert out.sock is not None
        self._out_fds.pop(out.sock.fileno(), None)
        out.sock.close()
        out.sock = None
        if out.head:
            _, count = out.chunks.popleft()
            out.queued -= count
            out.head = 0
            self.log.info("bus_peer_gone", dest=out.dest, reason=reason, lost=count)
        self._connect(out, now)
        if out.sock is not None and out.chunks:
            self._pump(out, now)

    # --- receiving ----------------------------------------------------------------------------

    def process(self, now: float, on_frame: Callable[[bytes], None]) -> None:
        """Handle what is ready: accept senders, read their frames (`on_frame` each, in order),
        write queued data where there is room, connect again to destinations now due."""
        for fd, events in self._ep.poll(0):
            if fd == self._listener.fileno():
                self._accept()
                continue
            conn = self._ins.get(fd)
            if conn is not None:
                self._read(fd, conn, on_frame)
                continue
            out = self._out_fds.get(fd)
            if out is not None:
                if events & (select.EPOLLERR | select.EPOLLHUP):
                    self._broken(out, now, "hangup")
                else:
                    self._pump(out, now)
        if self._waiting:
            for out in [o for o in self._waiting if o.retry_at <= now]:
                self._connect(out, now)
                if out.sock is not None:
                    self._pump(out, now)

    def _accept(self) -> None:
        for _ in range(128):
            try:
                sock, _addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.log.warning("bus_accept_failed", error=str(exc))
                return
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
            self._ins[sock.fileno()] = _In(sock)
            self._ep.register(sock.fileno(), select.EPOLLIN)

    def _read(self, fd: int, conn: _In, on_frame: Callable[[bytes], None]) -> None:
        for _ in range(RECVS_PER_TURN):
            try:
                data = conn.sock.recv(RECV_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._drop_in(fd, conn)
                return
            if conn.buf:  # a frame spans reads: accumulate (amortised, no re-copy per read)
                conn.buf += data
                buf: bytes | bytearray = conn.buf
            else:
                buf = data
            pos, end = 0, len(buf)
            while end - pos >= 4:
                (size,) = LEN.unpack_from(buf, pos)
                if size > MAX_FRAME:
                    self.log.warning("bus_bad_frame", size=size)
                    self._drop_in(fd, conn)
                    return
                if end - pos - 4 < size:
                    break
                pos += 4
                on_frame(buf[pos : pos + size] if buf is data else bytes(memoryview(buf)[pos : pos + size]))
                pos += size
                if self.closed:
                    return
            if pos == end:
                conn.buf = bytearray()
            elif buf is data:
                conn.buf = bytearray(memoryview(data)[pos:])
            else:
                del conn.buf[:pos]
            if len(data) < RECV_BYTES:
                return

    def _drop_in(self, fd: int, conn: _In) -> None:
        self._ins.pop(fd, None)
        with contextlib.suppress(OSError, ValueError):
            self._ep.unregister(fd)
        conn.sock.close()

    # --- end ----------------------------------------------------------------------------------

    def pending(self) -> int:
        """Frames queued and not yet written (all destinations)."""
        return sum(out.queued for out in self._outs.values())

    def queued_by_dest(self) -> dict[str, int]:
        """Frames queued and not yet written, per destination (for /metrics' queue depths)."""
        return {dest: out.queued for dest, out in self._outs.items()}

    def close(self) -> None:
        """Close everything. The socket file stays: a new incarnation may already have bound
        the same path (it unlinks a stale one itself)."""
        if self.closed:
            return
        self.closed = True
        for conn in self._ins.values():
            conn.sock.close()
        for out in self._outs.values():
            if out.sock is not None:
                out.sock.close()
        self._ins.clear()
        self._outs.clear()
        self._out_fds.clear()
        self._waiting.clear()
        self._listener.close()
        self._ep.close()
