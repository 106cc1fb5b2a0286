"""The zoomq client: kazoo's `KazooClient` API over zoomq's ZeroMQ protocol (zoomq/protocol.py).

This module is the shell: the threads, the socket and the clock. What to send, how a reply is
matched, what a reconnection replays and when the session is over are the session engine's
(zoomq/engine.py, pure); the operations are in zoomq/operations.py. The caller's threads encode
requests and queue them; one I/O thread owns the ZeroMQ DEALER socket (zmq sockets are not
thread-safe), sends queued requests in one multipart, hands replies to the engine, pings when
idle, and reconnects across the host list. One event thread runs watch callbacks and state
listeners, in order, never on the I/O thread.

Beyond kazoo: watches survive a reconnect; a client that cannot reach any node for longer than
its session timeout reports LOST by itself. Requests pending when a connection drops are not
failed with an ambiguous ConnectionLoss: they are re-sent, in order, with the same session and
xid, on the next connection (to any node). The leader remembers the results of each session's
latest writes (a replicated table) and answers a re-sent write that was already applied with its
original result, so a retried sequential create makes one node. They fail only if the session
expires (SessionExpiredError) or the client is stopped (ConnectionClosedError). At most
MAX_IN_FLIGHT requests are sent unanswered (the rest wait in the queue): the node remembers that
many results per session, so every unanswered write is still remembered when it is re-sent.
"""

from __future__ import annotations

import _thread
import contextlib
import functools
import os
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
import structlog
import zmq
import zmq.utils.monitor

from zoomq import protocol as p
from zoomq.engine import MAX_IN_FLIGHT, Deliver, Handshake, Notify, Request, SessionEngine, StateChange
from zoomq.exceptions import (
    AuthFailedError,
    ConfigurationError,
    ConnectionClosedError,
    TimeoutError,  # noqa: A004 - kazoo's handler timeout, under our exceptions module
)
from zoomq.operations import Operations, TransactionRequest
from zoomq.retry import KazooRetry
from zoomq.security import ACL
from zoomq.states import KeeperState

__all__ = ["MAX_IN_FLIGHT", "AsyncResult", "Client", "KazooClient", "TransactionRequest"]

_log = structlog.get_logger("zoomq.client")
_STOP = object()


class AsyncResult:
    """kazoo's IAsyncResult: a value or an exception that arrives later.

    A bare lock held until the result is set is the latch (a threading.Event costs a Condition and
    two more locks per request); every waiter acquires it and passes it on.
    """

    __slots__ = ("_latch", "_guard", "_ready", "_value", "_exception", "_callbacks")

    def __init__(self) -> None:
        self._latch = _thread.allocate_lock()
        self._latch.acquire()
        self._guard = _thread.allocate_lock()
        self._ready = False
        self._value: Any = None
        self._exception: BaseException | None = None
        self._callbacks: list[Callable[[AsyncResult], Any]] | None = None

    @property
    def value(self) -> Any:
        return self._value

    @property
    def exception(self) -> BaseException | None:
        return self._exception

    def ready(self) -> bool:
        return self._ready

    def successful(self) -> bool:
        return self._ready and self._exception is None

    def set(self, value: Any = None) -> None:
        self._value = value
        self._done()

    def set_exception(self, exception: BaseException) -> None:
        self._exception = exception
        self._done()

    def _done(self) -> None:
        with self._guard:
            if self._ready:
                return
            self._ready = True
            callbacks, self._callbacks = self._callbacks, None
        self._latch.release()
        for cb in callbacks or ():
            self._call(cb)

    def _call(self, callback: Callable[[AsyncResult], Any]) -> None:
        """Run a caller's callback; what it raises is logged, as kazoo's callback thread does
        (it must not end the I/O thread, nor come out of a rawlink on a result already set)."""
        try:
            callback(self)
        except Exception:  # noqa: BLE001 - the caller's bug, reported in the log
            _log.exception("result_callback_failed")

    def wait(self, timeout: float | None = None) -> bool:
        if self._ready:
            return True
        if self._latch.acquire(True, -1 if timeout is None else max(0.0, timeout)):
            self._latch.release()  # let any other waiter through too
        return self._ready

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if not self.wait(timeout if block else 0):
            raise TimeoutError("result not ready")
        if self._exception is not None:
            raise self._exception
        return self._value

    def get_nowait(self) -> Any:
        return self.get(block=False)

    def rawlink(self, callback: Callable[[AsyncResult], Any]) -> None:
        with self._guard:
            if not self._ready:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)
                return
        self._call(callback)

    def unlink(self, callback: Callable[[AsyncResult], Any]) -> None:
        with self._guard, contextlib.suppress(ValueError, AttributeError):
            self._callbacks.remove(callback)  # type: ignore[union-attr]


RW_PROBE_FIRST_S = 0.5  # connected read-only: the other hosts are asked `isro` after this, then
RW_PROBE_MAX_S = 8.0  # ... at doubling intervals up to this (kazoo backs off the same way)
RW_PROBE_TIMEOUT_S = 0.5  # a host that does not answer within this is skipped
_HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
CURVE_REFUSED = (
    "refused the CURVE handshake: the server key given is not that node's, this client's key is not admitted, "
    "or only one side uses CURVE"
)


def refusal(event: dict[str, Any]) -> tuple[str, str] | None:
    """(endpoint, why) for a monitor event that means a connection was refused, else None:
    the CURVE handshake failed, or nothing listens there. Shared with `zoomq admin`."""
    endpoint = event.get("endpoint", b"")
    endpoint = endpoint.decode() if isinstance(endpoint, bytes) else str(endpoint)
    if event["event"] & _HANDSHAKE_FAILED:
        return endpoint, CURVE_REFUSED
    if event["event"] & zmq.EVENT_CONNECT_RETRIED:
        return endpoint, "refused the connection (nothing listens there)"
    return None


def _curve_settings(server_key: Any, secret_key: str | None) -> tuple[tuple[bytes, bytes], dict[str, bytes]] | None:
    """((public, secret) of this client, server public key by "host:port" or "*")."""
    if server_key is None and secret_key is None:
        return None
    from runtime import curve  # key handling shared with the node

    if server_key is None or secret_key is None:
        raise ConfigurationError("CURVE needs both curve_server_key (the node's public key) and curve_secret_key")
    try:
        pair = curve.secret_pair(secret_key)
        if isinstance(server_key, dict):
            keys = {str(k): curve.public_key(v) for k, v in server_key.items()}
        else:
            keys = {"*": curve.public_key(server_key)}
    except curve.CurveError as exc:
        raise ConfigurationError(str(exc)) from exc
    return pair, keys


def _parse_hosts(hosts: str) -> tuple[list[tuple[str, int]], str]:
    chroot = ""
    if "/" in hosts:
        hosts, _, chroot = hosts.partition("/")
        chroot = "/" + chroot.rstrip("/") if chroot.strip("/") else ""
    out = []
    for item in hosts.split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") else 2181
        elif item.count(":") == 1:
            host, _, port_s = item.partition(":")
            port = int(port_s)
        else:
            host, port = item, 2181
        out.append((host, port))
    if not out:
        raise ConfigurationError("no hosts given")
    return out, chroot


class Client(Operations):
    """A kazoo-compatible client for zoomq."""

    def __init__(
        self,
        hosts: str = "127.0.0.1:2181",
        timeout: float = 10.0,
        client_id: tuple[int, bytes] | None = None,
        handler: Any = None,
        default_acl: list[ACL] | None = None,
        auth_data: list[tuple[str, str]] | None = None,
        sasl_options: Any = None,
        read_only: bool | None = None,
        randomize_hosts: bool = True,
        connection_retry: Any = None,
        command_retry: Any = None,
        logger: Any = None,
        curve_server_key: str | bytes | dict[str, str | bytes] | None = None,
        curve_secret_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        for legacy in ("max_retries", "retry_delay", "retry_backoff", "retry_max_delay"):
            kwargs.pop(legacy, None)
        if kwargs:
            raise TypeError(f"unexpected keyword arguments: {sorted(kwargs)}")
        self.randomize_hosts = randomize_hosts
        self.set_hosts(hosts)
        self._curve = _curve_settings(curve_server_key, curve_secret_key)
        if self._curve is not None and "*" not in self._curve[1]:
            missing = [f"{h}:{p}" for h, p in self.hosts if f"{h}:{p}" not in self._curve[1]]
            if missing:
                raise ConfigurationError(f"curve_server_key has no key for {missing}")
        self._connect_error = ""  # why the last connection attempt failed, when known
        # Hosts that refused the CURVE handshake since the last connection; every host in it
        # before the first connection fails start() at once (a key problem does not heal by waiting).
        self._curve_refused: set[str] = set()
        self._start_error = ""
        self.default_acl = list(default_acl) if default_acl else None
        self.log = logger or _log
        if isinstance(command_retry, dict):
            command_retry = KazooRetry(**command_retry)
        self.retry_policy = command_retry or KazooRetry(max_tries=None, delay=0.1, backoff=2, max_delay=3600)
        self._engine = SessionEngine(
            timeout_ms=int(timeout * 1000),
            read_only=bool(read_only),
            client_id=client_id,
            chroot=self.chroot,
            auth_data=auth_data or (),
            log=self.log,
        )
        # Every call into the engine holds this lock (callers' threads and the I/O thread); the
        # effects are carried out after it is let go, so no callback ever runs under it.
        self._lock = threading.Lock()
        self._xid_tls = threading.local()  # the generation of the xid this thread took last
        self._encoder = msgspec.msgpack.Encoder()
        self._listeners: list[Callable[[str], Any]] = []
        self._stopped = threading.Event()
        self._stopped.set()
        self._connected_event = threading.Event()
        self._io: threading.Thread | None = None
        self._events: queue.Queue[Any] = queue.Queue()
        self._event_thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1
        self._io_idle = True  # the I/O thread is (about to be) asleep in poll: wake it to send
        self._closing: AsyncResult | None = None
        # Read-only mode: the index of a host that answered "rw" (connect there next), and when
        # and how often the hosts are asked (see _probe_for_read_write).
        self._rw_host: int | None = None
        self._rw_probe_at = 0.0
        self._rw_probe_every = 0.0
        self._rw_prober: threading.Thread | None = None
        # Recipes with kazoo's names.
        from zoomq.recipe import barrier, cache, counter, election, lock, party, watchers
        from zoomq.recipe import queue as queue_recipe

        self.DataWatch = functools.partial(watchers.DataWatch, self)
        self.ChildrenWatch = functools.partial(watchers.ChildrenWatch, self)
        self.TreeCache = functools.partial(cache.TreeCache, self)
        self.Lock = functools.partial(lock.Lock, self)
        self.ReadLock = functools.partial(lock.ReadLock, self)
        self.WriteLock = functools.partial(lock.WriteLock, self)
        self.Semaphore = functools.partial(lock.Semaphore, self)
        self.Election = functools.partial(election.Election, self)
        self.Counter = functools.partial(counter.Counter, self)
        self.Barrier = functools.partial(barrier.Barrier, self)
        self.DoubleBarrier = functools.partial(barrier.DoubleBarrier, self)
        self.Party = functools.partial(party.Party, self)
        self.ShallowParty = functools.partial(party.ShallowParty, self)
        self.Queue = functools.partial(queue_recipe.Queue, self)
        self.LockingQueue = functools.partial(queue_recipe.LockingQueue, self)

    # --- what the engine knows ----------------------------------------------------------------

    state = property(lambda self: self._engine.state)
    client_state = property(lambda self: self._engine.keeper)
    last_zxid = property(lambda self: self._engine.last_zxid)
    auth_data = property(lambda self: self._engine.auth_data)
    read_only = property(lambda self: self._engine.read_only)

    @property
    def connected(self) -> bool:
        return self._engine.connected

    @property
    def client_id(self) -> tuple[int, bytes] | None:
        engine = self._engine
        if engine.session_id and engine.connected:
            return (engine.session_id, engine.passwd)
        return None

    # --- configuration ------------------------------------------------------------------------

    def set_hosts(self, hosts: str, randomize_hosts: bool | None = None) -> None:
        parsed, chroot = _parse_hosts(hosts)
        if getattr(self, "_io", None) is not None and chroot != getattr(self, "chroot", chroot):
            raise ConfigurationError("changing chroot at runtime is not supported")
        if randomize_hosts if randomize_hosts is not None else self.randomize_hosts:
            random.shuffle(parsed)
        self.hosts = parsed
        self.chroot = chroot
        if hasattr(self, "_engine"):
            self._engine.chroot = chroot

    def add_listener(self, listener: Callable[[str], Any]) -> None:
        if not callable(listener):
            raise ConfigurationError("listener must be callable")
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[str], Any]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 15) -> None:
        event = self.start_async()
        if not event.wait(timeout) or self._start_error:
            self.stop()
            self.close()
            if self._start_error:
                raise TimeoutError(self._start_error)
            why = f" (last: {self._connect_error})" if self._connect_error else ""
            raise TimeoutError(f"could not connect to any of {self.hosts} within {timeout} s{why}")

    def start_async(self) -> threading.Event:
        if not self._stopped.is_set():
            return self._connected_event
        self._stopped.clear()
        self._connected_event.clear()
        self._closing = None
        with self._lock:
            self._engine.stopping = self._engine.auth_failed = False
            self._engine.closing = None
        self._start_error = ""
        self._curve_refused.clear()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._event_thread = threading.Thread(target=self._event_loop, name="zoomq-events", daemon=True)
        self._event_thread.start()
        self._io = threading.Thread(target=self._io_loop, name="zoomq-io", daemon=True)
        self._io.start()
        return self._connected_event

    def stop(self) -> None:
        if self._stopped.is_set() or self._io is None:
            return
        closing = AsyncResult()
        self._closing = closing
        if self.connected:
            with self._lock:
                self._engine.closing = closing
            self._submit(p.Close(self._next_xid()), lambda r: None, result=closing)
        else:
            # Mid-reconnect: the reconnection is halted (as kazoo) and the session left to expire.
            # Should a handshake complete meanwhile, the I/O thread must not wait for a Close
            # that was never queued.
            closing.set(None)
        with self._lock:
            self._engine.stopping = True
        self._stopped.set()
        self._wake(force=True)
        self._io.join(10)
        self._io = None
        self._engine_call(self._engine.close)
        self._events.put(_STOP)
        if self._event_thread is not None and self._event_thread is not threading.current_thread():
            self._event_thread.join(10)
        self._event_thread = None
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def close(self) -> None:
        """Free resources (kazoo: after stop)."""

    def restart(self) -> None:
        self.stop()
        self.start()

    def retry(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.retry_policy.copy()(func, *args, **kwargs)

    # --- request plumbing ---------------------------------------------------------------------

    def _engine_call(self, method: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            out = method(*args)
            effects = self._engine.take_effects()
        self._carry_out(effects)
        return out

    def _carry_out(self, effects: list[Any]) -> None:
        for effect in effects:
            if type(effect) is Deliver:
                if effect.error is not None:
                    effect.result.set_exception(effect.error)
                else:
                    effect.result.set(effect.value)
            elif type(effect) is Notify:
                self._events.put(("watch", effect.func, effect.event))
            elif type(effect) is StateChange:
                self._events.put(("state", effect.state))

    def _next_xid(self) -> int:
        with self._lock:
            xid, self._xid_tls.gen = self._engine.next_xid()
        return xid

    def _new_result(self) -> AsyncResult:
        return AsyncResult()

    def _spawn(self, func: Callable[..., Any], *args: Any) -> None:
        threading.Thread(target=func, args=args, daemon=True).start()

    def _wake(self, force: bool = False) -> None:
        # Only a sleeping I/O thread needs the syscall; a busy one looks at the queue before it sleeps.
        if self._wake_w >= 0 and (force or self._io_idle):
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._wake_w, b"x")

    def _submit(
        self, msg: Any, parse: Callable[[p.Reply], Any], watch: Any = None, result: AsyncResult | None = None
    ) -> AsyncResult:
        result = result or AsyncResult()
        if self._stopped.is_set() and not isinstance(msg, p.Close):
            result.set_exception(ConnectionClosedError("Connection has been closed"))  # as kazoo, also before start()
            return result
        if self._engine.auth_failed:
            result.set_exception(AuthFailedError("authentication failed: the client is done (restart it)"))
            return result
        gen = getattr(self._xid_tls, "gen", 0)  # of the xid this thread just took for msg
        request = Request(msg.xid, self._encoder.encode(msg), result, parse, watch, msg, gen)
        with self._lock:
            self._engine.submit(request)
        self._wake()
        return result

    # --- the I/O thread -----------------------------------------------------------------------

    def _io_loop(self) -> None:
        ctx = zmq.Context.instance()
        decoder = msgspec.msgpack.Decoder(p.ServerMsg)
        engine = self._engine
        self._engine_call(engine.begin, time.monotonic())
        host_index = 0
        try:
            while not self._stopped.is_set() or (
                self._closing is not None and self.connected and not self._closing.ready() and engine.queue
            ):
                if self._rw_host is not None:  # a read-write node answered the probe: go there
                    host_index, self._rw_host = self._rw_host, None
                host, port = self.hosts[host_index % len(self.hosts)]
                host_index += 1
                served = False
                sock = ctx.socket(zmq.DEALER)
                sock.setsockopt(zmq.LINGER, 0)
                try:
                    # One monitor per connection: a refused TCP connect (a dead node) moves on to
                    # the next host at once; a dropped connection is noticed at once while serving.
                    monitor = sock.get_monitor_socket(
                        zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_DISCONNECTED | _HANDSHAKE_FAILED
                    )
                    if self._curve is not None:
                        pair, server_keys = self._curve
                        sock.curve_publickey, sock.curve_secretkey = pair
                        sock.curve_serverkey = server_keys.get(f"{host}:{port}") or server_keys["*"]
                    sock.connect(f"tcp://{host}:{port}")
                    try:
                        if self._handshake(sock, decoder, len(self.hosts), monitor):
                            served = True
                            self._serve(sock, decoder, monitor)
                    finally:
                        sock.disable_monitor()
                        monitor.close(linger=0)
                finally:
                    sock.close(linger=0)
                if self._stopped.is_set() or engine.auth_failed:
                    break
                self._engine_call(engine.connection_lost, time.monotonic(), served)
                if host_index % len(self.hosts) == 0:
                    self._stopped.wait(0.05 + random.random() * 0.1)  # back off between host rounds
        finally:
            self._engine_call(engine.fail_all, ConnectionClosedError)

    def _handshake(self, sock: zmq.Socket, decoder: msgspec.msgpack.Decoder, n_hosts: int, refused: zmq.Socket) -> bool:
        engine = self._engine
        sock.send(self._encoder.encode(self._engine_call(engine.connect_message)))
        wait_ms = max(200, int(engine.negotiated_ms / max(1, n_hosts)))
        deadline = time.monotonic() + wait_ms / 1000.0
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(refused, zmq.POLLIN)
        while not self._stopped.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ready = dict(poller.poll(int(min(left, 0.1) * 1000) + 1))
            if refused in ready:
                self._note_refusal(refused)
                return False  # nothing listens there, or it refused our key
            if sock not in ready:
                continue
            try:
                msg = decoder.decode(sock.recv())
            except msgspec.DecodeError:
                continue
            outcome, frames = self._engine_call(engine.handshake, msg)
            if outcome is Handshake.FAILED:
                return False
            if outcome is Handshake.AGAIN:
                sock.send(self._encoder.encode(self._engine_call(engine.connect_message)))
                deadline = time.monotonic() + wait_ms / 1000.0
            elif outcome is Handshake.READY:
                self._curve_refused.clear()
                self._after_connect(sock, frames)
                self._connected_event.set()
                return True
        return False

    def _after_connect(self, sock: zmq.Socket, frames: list[bytes]) -> None:
        """The engine's replay (auth, watches) goes first on a new connection."""
        self._rw_probe_at, self._rw_probe_every = time.monotonic() + RW_PROBE_FIRST_S, 0.0
        if frames:
            sock.send_multipart(frames)

    def _note_refusal(self, monitor: zmq.Socket) -> None:
        with contextlib.suppress(zmq.ZMQError):
            refused = refusal(zmq.utils.monitor.recv_monitor_message(monitor, zmq.NOBLOCK))
            if refused is None:
                return
            endpoint, why = refused
            self._connect_error = f"{endpoint} {why}"
            if why is not CURVE_REFUSED:
                return
            if endpoint not in self._curve_refused:  # once per host, not once per retry
                self._curve_refused.add(endpoint)
                self.log.warning("curve_handshake_failed", endpoint=endpoint)
            everyone = {f"tcp://{host}:{port}" for host, port in self.hosts}
            if not self._connected_event.is_set() and everyone <= self._curve_refused:
                self._start_error = f"every host ({', '.join(sorted(everyone))}) {CURVE_REFUSED}"
                self._connected_event.set()  # start() returns now, with that error

    def _serve(self, sock: zmq.Socket, decoder: msgspec.msgpack.Decoder, monitor: zmq.Socket) -> None:
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        # A dropped TCP connection is noticed at once (not only at the next ping): the node may have
        # restarted its session actor, which then no longer knows this connection.
        poller.register(monitor, zmq.POLLIN)
        engine, lock, carry_out = self._engine, self._lock, self._carry_out
        read_timeout, ping_every = engine.read_timeout_s, engine.ping_every_s
        last_recv = last_send = time.monotonic()
        while True:
            if self._stopped.is_set() and (self._closing is None or self._closing.ready() or not self.connected):
                return
            self._io_idle = True
            if engine.queue and len(engine.pending) < MAX_IN_FLIGHT:
                with lock:
                    frames = engine.frames()
                sock.send_multipart(frames)
                last_send = time.monotonic()
            now = time.monotonic()
            if engine.keeper == KeeperState.CONNECTED_RO:
                if self._rw_host is not None:
                    self.log.info("read_write_node_found", host=self.hosts[self._rw_host])
                    return  # drop the read-only connection; the loop connects there next
                self._probe_for_read_write(now)
            timeout = min(read_timeout - (now - last_recv), ping_every - (now - last_send))
            events = dict(poller.poll(max(0, int(timeout * 1000)) + 1))
            self._io_idle = False
            now = time.monotonic()
            if monitor in events:
                self.log.info("connection_dropped")
                return
            if self._wake_r in events:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
            if sock in events:
                keep = True
                with lock:
                    for _ in range(10_000):
                        try:
                            raw = sock.recv(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        last_recv = now
                        try:
                            msg = decoder.decode(raw)
                        except msgspec.DecodeError:
                            self.log.warning("bad_frame_from_node")
                            continue
                        if not engine.received(msg):
                            keep = False
                            break
                    effects = engine.take_effects()
                carry_out(effects)
                if not keep:
                    return
            if now - last_recv > read_timeout:
                self.log.info("connection_timed_out", after_s=round(now - last_recv, 3))
                return
            if now - last_send >= ping_every:
                sock.send(self._encoder.encode(p.Ping()))
                last_send = now

    # --- read-only mode: looking for a read-write node (kazoo's RW server search) ---------------

    def _probe_for_read_write(self, now: float) -> None:
        """While connected read-only, ask the other hosts `isro` now and then (backing off from
        RW_PROBE_FIRST_S to RW_PROBE_MAX_S) on a helper thread; the first that answers "rw"
        is where the I/O thread connects next."""
        if now < self._rw_probe_at or (self._rw_prober is not None and self._rw_prober.is_alive()):
            return
        self._rw_probe_every = (
            min(RW_PROBE_MAX_S, self._rw_probe_every * 2) if self._rw_probe_every else RW_PROBE_FIRST_S
        )
        self._rw_probe_at = now + self._rw_probe_every
        self._rw_prober = threading.Thread(target=self._rw_probe, daemon=True, name="zoomq-rw-probe")
        self._rw_prober.start()

    def _rw_probe(self) -> None:
        for index, (host, port) in enumerate(self.hosts):
            if self._stopped.is_set():
                return
            if self._isro(host, port) == "rw":
                self._rw_host = index
                self._wake(force=True)
                return

    def _isro(self, host: str, port: int) -> str | None:
        """A node's answer to `isro` (None: no answer within RW_PROBE_TIMEOUT_S)."""
        from zoomq.admin import AdminError, ask

        keys = None
        if self._curve is not None:
            pair, server_keys = self._curve
            keys = (pair, server_keys.get(f"{host}:{port}") or server_keys["*"])
        try:
            return ask(host, port, "isro", RW_PROBE_TIMEOUT_S, curve_keys=keys).strip()
        except (AdminError, zmq.ZMQError, msgspec.DecodeError):
            return None

    # --- the event thread ---------------------------------------------------------------------

    def _event_loop(self) -> None:
        while True:
            item = self._events.get()
            if item is _STOP:
                return
            try:
                if item[0] == "state":
                    for listener in list(self._listeners):
                        if listener(item[1]) is True:
                            self.remove_listener(listener)
                else:
                    item[1](item[2])
            except Exception:  # noqa: BLE001 - a user callback must not kill the event thread
                self.log.exception("callback_failed")


KazooClient = Client
