"""The actor base: one process, its sockets, and a loop that handles messages in batches.

Rules:
- An actor's inbox is its bus (runtime/localbus.py: a Unix stream socket at
  `<run_dir>/<name>.bus`); `tell(dest, msg)` queues a message for another actor of the same node
  and `flush()` (after every batch) writes one batch per destination. Sends never block: a
  message to an actor not up yet waits for it, a full queue drops with a log line; a peer's death
  loses what it had not read and the protocols above resynchronise (a reconnect is not delivery).
- The loop polls until the next deadline (`next_deadline()`), drains at most `MAX_BATCH` multiparts
  per ready ZeroMQ socket without blocking and what the bus has, dispatches them, calls
  `on_timer(now)` when the deadline passed, then `on_batch_end()` and `flush()`. `now` is
  `time.monotonic()`, read once per batch.
- A frame that does not decode is logged and dropped; the actor goes on.
- SIGTERM (or a stop request, or the supervisor's death) ends the loop: `on_stop()`, sockets
  closed with LINGER 0, exit 0. An exception escaping a hook crashes the process (exit 1) so that
  the supervisor restarts it: broken invariants are not papered over.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import msgspec
import structlog
import zmq

from actors.protocol.internal import InternalMsg
from runtime.config import NodeConfig
from runtime.localbus import LocalBus

MAX_BATCH = 512  # multiparts drained per socket per loop turn
QUORUM_HWM = 1_000  # messages queued per learner channel, each way: a learner that falls behind is dropped
CLIENT_HWM = 10_000  # replies queued per client connection: one that does not read them is let go
MAX_POLL_MS = 500  # the loop wakes at least this often (parent-death check, stop flag)
PEER_CONNECT_MS = 1_000  # a peer connect not answered within this is dropped and retried
UNACKED_LIMIT_MS = 1_000  # a connection whose sent data stays unacknowledged this long is replaced
SNDHWM = 200_000
_PR_SET_PDEATHSIG = 1


def set_peer_options(sock: zmq.Socket, hwm: int) -> None:
    """A socket facing peers or clients: bounded queues, and (a ROUTER) a send to a peer whose
    queue is full or who is gone fails (EAGAIN / EHOSTUNREACH) instead of being dropped silently,
    so that the shell lets that peer go: memory stays bounded whoever stops reading."""
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    if sock.type == zmq.ROUTER:
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)


def limit_unacked(sock: zmq.Socket, ms: int = UNACKED_LIMIT_MS) -> None:
    """Replace a TCP connection whose sent data has gone unacknowledged for `ms` (Linux's
    TCP_USER_TIMEOUT): ZeroMQ closes it and connects afresh, a connect tried every PEER_CONNECT_MS.
    Without it, a connection that lived through a partition goes on retransmitting on the
    kernel's backoff (0.2, 0.4, 0.8, 1.6 s, ... longer the longer the partition) and carries nothing
    for up to that long after the partition healed. For channels where a closed connection costs
    nothing (election votes are re-sent while looking)."""
    sock.setsockopt(zmq.TCP_MAXRT, ms)


def source_fd(frame: Any) -> int | None:
    """The file descriptor of the connection a received frame came in on (ZeroMQ's SRCFD): with
    a socket monitor's EVENT_DISCONNECTED (which names the descriptor), it tells which peer of a
    ROUTER went away, which the ROUTER itself never says."""
    try:
        fd = frame.get(zmq.SRCFD)
    except (AttributeError, zmq.ZMQError):
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


def ipc_address(run_dir: str, name: str) -> str:
    return f"ipc://{run_dir}/{name}.ipc"


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to signal this process when its parent dies (no orphan actors)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


class Actor:
    """Base class of every actor shell. Subclasses set `name` and override the hooks."""

    name = "actor"
    inbox_type: Any = InternalMsg

    def __init__(self, cfg: NodeConfig, run_dir: str, log: structlog.typing.FilteringBoundLogger) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.log = log
        self.ctx = zmq.Context.instance()
        self.encoder = msgspec.msgpack.Encoder()
        self.decoder = msgspec.msgpack.Decoder(self.inbox_type)
        self._poller = zmq.Poller()
        self._handlers: dict[zmq.Socket, tuple[Callable[[list[Any], float], None], bool]] = {}
        self._outboxes: dict[str, list[bytes]] = {}
        self._stopping = False
        self.exit_code = 0
        self._parent = os.getppid()
        self._curve_auth: Any = None  # this process's ZAP handler, started by the first secure_bind
        self.bus = LocalBus(run_dir, self.name, log, queue_limit=SNDHWM)
        self._now = time.monotonic()
        self._poller.register(self.bus.fileno(), zmq.POLLIN)

    # --- hooks (override) ---------------------------------------------------------------------

    def on_start(self, now: float) -> None:
        """Called once before the loop."""

    def on_message(self, msg: Any, now: float) -> None:
        """One decoded inbox message."""

    def on_timer(self, now: float) -> None:
        """The deadline from `next_deadline()` has passed."""

    def next_deadline(self) -> float | None:
        """Monotonic time of the next timer, or None."""
        return None

    def on_batch_end(self, now: float) -> None:
        """After each batch of messages, before flushing."""

    def on_stop(self) -> None:
        """Clean shutdown (SIGTERM or stop)."""

    # --- services -----------------------------------------------------------------------------

    @property
    def curve_on(self) -> bool:
        return bool(self.cfg.curve_secret_key)

    def secure_bind(self, sock: zmq.Socket, address: str, domain: str) -> None:
        """Bind a TCP socket; with CURVE on, as a CURVE server admitting `domain`'s keys only
        (runtime/curve.py: "clients" or "peers")."""
        if self.curve_on:
            from runtime import curve

            if self._curve_auth is None:
                peers = set(curve.peer_keys(self.cfg).values()) if self.cfg.servers else None
                self._curve_auth = curve.authenticator(
                    self.ctx, clients=self.cfg.curve_client_keys, peers=peers, peer_dir=self.cfg.curve_peer_keys
                )
            curve.serve(sock, curve.secret_pair(self.cfg.curve_secret_key), domain)
        sock.bind(address)

    def peer_is(self, server_id: int, frame: zmq.Frame) -> bool:
        """Whether a message received on a "peers" port came from server `server_id`'s key:
        ZeroMQ's authenticator admits any peer key and names the one it admitted in each frame
        (User-Id, the z85 public key), so a peer cannot claim another server's id. Always true
        without CURVE."""
        if not self.curve_on:
            return True
        from runtime import curve

        expected = curve.peer_key(self.cfg, server_id)
        try:
            presented = frame.get("User-Id")
        except zmq.ZMQError:
            return False
        return expected is not None and presented == expected.decode()

    def secure_connect(self, sock: zmq.Socket, address: str, server_id: int) -> None:
        """Connect a TCP socket to member `server_id`; with CURVE on, as a CURVE client that
        proves this node's key and checks that member's."""
        if self.curve_on:
            from runtime import curve

            key = curve.peer_key(self.cfg, server_id)
            if key is None:
                raise curve.CurveError(
                    f"no CURVE key for server {server_id}: its curve_public_key, or server.{server_id}.key "
                    "in curve_peer_keys"
                )
            curve.connect_as(sock, curve.secret_pair(self.cfg.curve_secret_key), key)
        # A connect whose SYN is lost (a partition, a dead host) is abandoned after PEER_CONNECT_MS and
        # tried afresh, instead of waiting for the kernel's backed-off SYN retransmissions (1, 3, 7 s
        # ...): a healed link is used again within about a second.
        sock.setsockopt(zmq.CONNECT_TIMEOUT, PEER_CONNECT_MS)
        sock.connect(address)

    def add_socket(self, sock: zmq.Socket, handler: Callable[[list[Any], float], None], *, copy: bool = False) -> None:
        """Poll `sock` too; `handler(frames, now)` gets each received multipart: bytes with
        `copy=True` (cheaper for small messages), zmq.Frame objects otherwise (they carry
        metadata such as the peer address)."""
        self._handlers[sock] = (handler, copy)
        self._poller.register(sock, zmq.POLLIN)

    def remove_socket(self, sock: zmq.Socket) -> None:
        """Stop polling `sock` (the caller closes it)."""
        if self._handlers.pop(sock, None) is not None:
            self._poller.unregister(sock)

    def tell(self, dest: str, msg: Any) -> None:
        """Queue `msg` for the actor `dest` of this node; sent at the end of the batch."""
        self._outboxes.setdefault(dest, []).append(self.encoder.encode(msg))

    def tell_raw(self, dest: str, frame: bytes) -> None:
        self._outboxes.setdefault(dest, []).append(frame)

    def flush(self) -> None:
        if not self._outboxes:
            return
        now = time.monotonic()
        for dest, frames in self._outboxes.items():
            if frames:
                self.bus.send(dest, frames, now)
        self._outboxes = {}

    def stop(self) -> None:
        self._stopping = True

    def end(self, code: int, reason: str, **fields: Any) -> None:
        """Leave the loop after this batch and exit with `code` (e.g. a role that ended)."""
        self.log.warning("actor_ending", reason=reason, code=code, **fields)
        self.exit_code = code
        self._stopping = True

    # --- loop ---------------------------------------------------------------------------------

    def _on_frame(self, frame: bytes) -> None:
        try:
            msg = self.decoder.decode(frame)
        except msgspec.DecodeError as exc:
            self.log.warning("bad_internal_message", error=str(exc), size=len(frame))
            return
        self.on_message(msg, self._now)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides; Ctrl-C reaches it
        now = time.monotonic()
        self.on_start(now)
        self.flush()
        try:
            while not self._stopping:
                deadline = self.next_deadline()
                retry = self.bus.next_deadline()
                if retry is not None and (deadline is None or retry < deadline):
                    deadline = retry
                timeout_ms = MAX_POLL_MS
                if deadline is not None:
                    timeout_ms = max(0, min(MAX_POLL_MS, int((deadline - time.monotonic()) * 1000) + 1))
                try:
                    ready = self._poller.poll(timeout_ms)
                except zmq.ZMQError as exc:
                    if exc.errno == zmq.EINTR or self._stopping:
                        continue
                    raise
                now = self._now = time.monotonic()
                bus_turn = retry is not None and now >= retry
                for sock, _ in ready:
                    if sock == self.bus.fileno():
                        bus_turn = True
                        continue
                    entry = self._handlers.get(sock)
                    if entry is None:  # removed by a handler earlier in this batch
                        continue
                    handler, copy = entry
                    for _ in range(MAX_BATCH):
                        try:
                            frames = sock.recv_multipart(zmq.NOBLOCK, copy=copy)
                        except zmq.Again:
                            break
                        handler(frames, now)
                if bus_turn:
                    self.bus.process(now, self._on_frame)
                deadline = self.next_deadline()
                if deadline is not None and now >= deadline:
                    self.on_timer(now)
                self.on_batch_end(now)
                self.flush()
                if os.getppid() != self._parent:
                    self.log.warning("parent_gone")
                    break
        finally:
            self.on_stop()
            self.flush()
            for sock in self._handlers:
                sock.close(linger=0)
            self.bus.close()
            if self._curve_auth is not None:
                self._curve_auth.stop()
        return self.exit_code
