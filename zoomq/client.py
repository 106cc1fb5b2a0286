"""The zoomq client: kazoo's `KazooClient` API over zoomq's ZeroMQ protocol (zoomq/protocol.py).

Threads: the caller's threads encode requests and queue them; one I/O thread owns the ZeroMQ
DEALER socket (zmq sockets are not thread-safe), sends queued requests in one multipart, matches
replies by xid, pings when idle, and reconnects across the host list, resuming the session and
re-registering watches (SetWatches) and auth. One event thread runs watch callbacks and state
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
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec
import structlog
import zmq
import zmq.utils.monitor

from zoomq import protocol as p
from zoomq.exceptions import (
    AuthFailedError,
    Codes,
    ConfigurationError,
    ConnectionClosedError,
    NoNodeError,
    NodeExistsError,
    SessionExpiredError,
    SessionMovedError,
    TimeoutError,  # noqa: A004 - kazoo's handler timeout, under our exceptions module
    error_for,
)
from zoomq.paths import lineage
from zoomq.retry import KazooRetry
from zoomq.security import ACL, OPEN_ACL_UNSAFE, Id
from zoomq.states import EVENT_TYPE_MAP, AddWatchMode, EventType, KazooState, KeeperState, WatchedEvent, WatcherType, ZnodeStat

_log = structlog.get_logger("zoomq.client")
MAX_XID = 2**31 - 1
MAX_IN_FLIGHT = 256  # = actors.session.tree.RECENT_PER_SESSION (tests/unit check they match)
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
            try:
                cb(self)
            except Exception:  # noqa: BLE001 - a caller's callback must not end the I/O thread
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
        callback(self)

    def unlink(self, callback: Callable[[AsyncResult], Any]) -> None:
        with self._guard, contextlib.suppress(ValueError, AttributeError):
            self._callbacks.remove(callback)  # type: ignore[union-attr]


class _Request:
    __slots__ = ("xid", "frame", "result", "parse", "watch", "path", "msg", "gen")

    def __init__(
        self, xid: int, frame: bytes, result: AsyncResult, parse: Callable[[p.Reply], Any], watch: Any, path: str | None,
        msg: Any = None, gen: int = 0,
    ) -> None:
        self.xid = xid
        self.frame = frame
        self.msg = msg  # kept to renumber it (see Client._xid_gen)
        self.gen = gen
        self.result = result
        self.parse = parse
        self.watch = watch  # (kind, path, func) registered on success, or None
        self.path = path  # the path asked for; for an Auth request, its (scheme, credential)


_HANDSHAKE_FAILED = zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
CURVE_REFUSED = ("refused the CURVE handshake: the server key given is not that node's, this client's key is not admitted, "
                 "or only one side uses CURVE")


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


class Client:
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
        self._timeout_ms = int(timeout * 1000)
        self.default_acl = list(default_acl) if default_acl else None
        self.auth_data: set[tuple[str, str]] = set(auth_data or ())
        self.read_only = bool(read_only)
        self.log = logger or _log
        if isinstance(command_retry, dict):
            command_retry = KazooRetry(**command_retry)
        self.retry_policy = command_retry or KazooRetry(max_tries=None, delay=0.1, backoff=2, max_delay=3600)
        self._session_id, self._passwd = client_id if client_id else (0, b"")
        self._negotiated_ms = self._timeout_ms
        self.last_zxid = 0
        self.state = KazooState.LOST
        self.client_state = KeeperState.CLOSED
        self._listeners: list[Callable[[str], Any]] = []
        self._data_watchers: dict[str, set[Callable]] = {}
        self._exist_paths: set[str] = set()
        self._child_watchers: dict[str, set[Callable]] = {}
        self._persistent: dict[str, set[Callable]] = {}  # add_watch(PERSISTENT)
        self._recursive: dict[str, set[Callable]] = {}  # add_watch(PERSISTENT_RECURSIVE)
        self._watch_lock = threading.Lock()
        self._queue: deque[_Request] = deque()
        self._pending: dict[int, _Request] = {}
        self._xid = 0
        self._xid_lock = threading.Lock()
        # xids are numbered per session. Taking over a session this object did not open (client_id)
        # moves the numbering past the node's remembered results and starts a new generation:
        # requests numbered in an older generation and not sent yet get new xids before they go.
        self._xid_gen = 0
        self._xid_session = 0
        self._xid_tls = threading.local()
        self._encoder = msgspec.msgpack.Encoder()
        self._stopped = threading.Event()
        self._stopped.set()
        self._connected_event = threading.Event()
        self._io: threading.Thread | None = None
        self._events: queue.Queue[Any] = queue.Queue()
        self._event_thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1
        self._io_idle = True  # the I/O thread is (about to be) asleep in poll: wake it to send
        self._closing: AsyncResult | None = None
        # add_auth calls awaiting the node's verdict, by credential; and the credentials whose Auth
        # went out on the current connection, in order (the node answers them in order, xid -4).
        self._auth_waiters: dict[tuple[str, str], list[AsyncResult]] = {}
        self._auth_sent: deque[tuple[str, str]] = deque()
        self._auth_failed = False
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

    # --- configuration ------------------------------------------------------------------------

    def set_hosts(self, hosts: str, randomize_hosts: bool | None = None) -> None:
        parsed, chroot = _parse_hosts(hosts)
        if getattr(self, "_io", None) is not None and chroot != getattr(self, "chroot", chroot):
            raise ConfigurationError("changing chroot at runtime is not supported")
        if randomize_hosts if randomize_hosts is not None else self.randomize_hosts:
            random.shuffle(parsed)
        self.hosts = parsed
        self.chroot = chroot

    @property
    def connected(self) -> bool:
        return self.state == KazooState.CONNECTED

    @property
    def client_id(self) -> tuple[int, bytes] | None:
        if self._session_id and self.connected:
            return (self._session_id, self._passwd)
        return None

    def add_listener(self, listener: Callable[[str], Any]) -> None:
        if not callable(listener):
            raise ConfigurationError("listener must be callable")
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[str], Any]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _set_state(self, state: str, keeper: str) -> None:
        self.client_state = keeper
        if state == self.state:
            return
        self.state = state
        self._events.put(("state", state))

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
        self._auth_failed = False
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
            self._submit(p.Close(self._next_xid()), lambda r: None, result=closing)
        else:
            # Mid-reconnect: the reconnection is halted (as kazoo) and the session left to expire.
            # Should a handshake complete meanwhile, the I/O thread must not wait for a Close
            # that was never queued.
            closing.set(None)
        self._stopped.set()
        self._wake(force=True)
        self._io.join(10)
        self._io = None
        self._set_state(KazooState.LOST, KeeperState.CLOSED)
        self._session_id, self._passwd = 0, b""
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

    def _next_xid(self) -> int:
        with self._xid_lock:
            self._xid = self._xid + 1 if self._xid < MAX_XID else 1
            self._xid_tls.gen = self._xid_gen
            return self._xid

    def _wake(self, force: bool = False) -> None:
        # Only a sleeping I/O thread needs the syscall; a busy one looks at the queue before it sleeps.
        if self._wake_w >= 0 and (force or self._io_idle):
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._wake_w, b"x")

    def _submit(self, msg: Any, parse: Callable[[p.Reply], Any], watch: Any = None, path: str | None = None, result: AsyncResult | None = None) -> AsyncResult:
        result = result or AsyncResult()
        if self._stopped.is_set() and not isinstance(msg, p.Close):
            result.set_exception(ConnectionClosedError("Connection has been closed"))  # as kazoo, also before start()
            return result
        if self._auth_failed:
            result.set_exception(AuthFailedError("authentication failed: the client is done (restart it)"))
            return result
        gen = getattr(self._xid_tls, "gen", 0)  # of the xid this thread just took for msg
        self._queue.append(_Request(msg.xid, self._encoder.encode(msg), result, parse, watch, path, msg, gen))
        self._wake()
        return result

    # --- the I/O thread -----------------------------------------------------------------------

    def _io_loop(self) -> None:
        ctx = zmq.Context.instance()
        decoder = msgspec.msgpack.Decoder(p.ServerMsg)
        lost_since = time.monotonic()
        host_index = 0
        try:
            while not self._stopped.is_set() or (self._closing is not None and self.connected and not self._closing.ready() and self._queue):
                host, port = self.hosts[host_index % len(self.hosts)]
                host_index += 1
                sock = ctx.socket(zmq.DEALER)
                sock.setsockopt(zmq.LINGER, 0)
                try:
                    # One monitor per connection: a refused TCP connect (a dead node) moves on to
                    # the next host at once; a dropped connection is noticed at once while serving.
                    monitor = sock.get_monitor_socket(zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_DISCONNECTED | _HANDSHAKE_FAILED)
                    if self._curve is not None:
                        pair, server_keys = self._curve
                        sock.curve_publickey, sock.curve_secretkey = pair
                        sock.curve_serverkey = server_keys.get(f"{host}:{port}") or server_keys["*"]
                    sock.connect(f"tcp://{host}:{port}")
                    try:
                        if self._handshake(sock, decoder, len(self.hosts), monitor):
                            self._serve(sock, decoder, monitor)
                            lost_since = time.monotonic()
                    finally:
                        sock.disable_monitor()
                        monitor.close(linger=0)
                finally:
                    sock.close(linger=0)
                if self._stopped.is_set() or self._auth_failed:
                    break
                self._requeue_pending()
                if self.state == KazooState.CONNECTED:
                    self._set_state(KazooState.SUSPENDED, KeeperState.CONNECTING)
                if self._session_id and time.monotonic() - lost_since > self._negotiated_ms / 1000.0:
                    self._expire("no node reachable within the session timeout")
                if host_index % len(self.hosts) == 0:
                    self._stopped.wait(0.05 + random.random() * 0.1)  # back off between host rounds
        finally:
            self._fail_pending(ConnectionClosedError, include_queue=True)

    def _expire(self, why: str) -> None:
        self.log.info("session_lost", session=hex(self._session_id), why=why)
        self._session_id, self._passwd = 0, b""
        self._fail_pending(SessionExpiredError, include_queue=True)
        with self._watch_lock:
            self._data_watchers.clear()
            self._child_watchers.clear()
            self._exist_paths.clear()
            self._persistent.clear()
            self._recursive.clear()
        self._set_state(KazooState.LOST, KeeperState.EXPIRED_SESSION)

    def _handshake(self, sock: zmq.Socket, decoder: msgspec.msgpack.Decoder, n_hosts: int, refused: zmq.Socket) -> bool:
        sock.send(self._encoder.encode(p.Connect(p.PROTOCOL_VERSION, self.last_zxid, self._timeout_ms, self._session_id, self._passwd, self.read_only)))
        wait_ms = max(200, int(self._negotiated_ms / max(1, n_hosts)))
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
            if isinstance(msg, p.Reply) and msg.xid == 0 and msg.err:
                return False  # the node could not open the session; try again
            if not isinstance(msg, p.Connected):
                continue
            if msg.timeout_ms <= 0:
                self._expire("the node says the session expired")
                sock.send(self._encoder.encode(p.Connect(p.PROTOCOL_VERSION, self.last_zxid, self._timeout_ms, 0, b"", self.read_only)))
                deadline = time.monotonic() + wait_ms / 1000.0
                continue
            self._session_id, self._passwd = msg.session_id, msg.passwd
            self._curve_refused.clear()
            if msg.session_id != self._xid_session:
                with self._xid_lock:
                    self._xid_session = msg.session_id
                    self._xid_gen += 1
                    if msg.last_cxid:
                        self._xid = msg.last_cxid
            self._negotiated_ms = msg.timeout_ms
            seen = self.last_zxid  # what this client saw before: watches fire for anything newer
            self.last_zxid = max(seen, msg.last_zxid)
            self._after_connect(sock, seen)
            self._set_state(KazooState.CONNECTED, KeeperState.CONNECTED_RO if msg.read_only else KeeperState.CONNECTED)
            self._connected_event.set()
            return True
        return False

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

    def _after_connect(self, sock: zmq.Socket, seen_zxid: int) -> None:
        """Replay auth and watches before any queued request (same connection, so in order)."""
        frames = []
        self._auth_sent.clear()
        for scheme, credential in sorted(self.auth_data):
            frames.append(self._encoder.encode(p.Auth(p.AUTH_XID, scheme, credential.encode())))
            self._auth_sent.append((scheme, credential))
        with self._watch_lock:
            data = [self._chroot(x) for x in self._data_watchers if x not in self._exist_paths]
            exist = [self._chroot(x) for x in self._data_watchers if x in self._exist_paths]
            child = [self._chroot(x) for x in self._child_watchers]
            persistent = [self._chroot(x) for x in self._persistent]
            recursive = [self._chroot(x) for x in self._recursive]
        if data or exist or child or persistent or recursive:
            frames.append(self._encoder.encode(p.SetWatches(p.SET_WATCHES_XID, seen_zxid, data, exist, child, persistent, recursive)))
        if frames:
            sock.send_multipart(frames)

    def _serve(self, sock: zmq.Socket, decoder: msgspec.msgpack.Decoder, monitor: zmq.Socket) -> None:
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        # A dropped TCP connection is noticed at once (not only at the next ping): the node may have
        # restarted its session actor, which then no longer knows this connection.
        poller.register(monitor, zmq.POLLIN)
        self._serve_loop(sock, decoder, poller, monitor)

    def _serve_loop(self, sock: zmq.Socket, decoder: msgspec.msgpack.Decoder, poller: zmq.Poller, monitor: zmq.Socket) -> None:
        read_timeout = self._negotiated_ms * 2 / 3 / 1000.0
        ping_every = self._negotiated_ms / 3 / 1000.0
        last_recv = last_send = time.monotonic()
        pending = self._pending
        while True:
            if self._stopped.is_set() and (self._closing is None or self._closing.ready() or not self.connected):
                return
            self._io_idle = True
            if self._queue and len(pending) < MAX_IN_FLIGHT:
                frames = []
                q = self._queue
                while q and len(pending) < MAX_IN_FLIGHT:
                    req = q.popleft()
                    if req.gen != self._xid_gen and req.xid > 0:
                        self._renumber(req)
                    if req.xid != p.AUTH_XID:
                        pending[req.xid] = req
                    else:  # not pending: auth is re-sent from auth_data after a reconnect
                        self._auth_sent.append(req.path)
                    frames.append(req.frame)
                sock.send_multipart(frames)
                last_send = time.monotonic()
            now = time.monotonic()
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
                    if not self._on_message(msg):
                        return
            if now - last_recv > read_timeout:
                self.log.info("connection_timed_out", after_s=round(now - last_recv, 3))
                return
            if now - last_send >= ping_every:
                sock.send(self._encoder.encode(p.Ping()))
                last_send = now

    def _on_message(self, msg: Any) -> bool:
        """Handle one message from the node; False = drop this connection."""
        if isinstance(msg, p.Event):
            self.last_zxid = max(self.last_zxid, msg.zxid)
            self._dispatch_event(msg)
            return True
        if not isinstance(msg, p.Reply):
            return True
        if msg.err == Codes.SESSIONEXPIRED:
            # The session ended (expired, or closed through another connection, maybe on another
            # node) while this connection lived: the node answers SESSIONEXPIRED to whatever comes
            # next. Report it as kazoo does (LOST) and start over with a new session.
            if not self._stopped.is_set():
                self._expire("the node says the session has ended")
            return False
        if msg.err == Codes.SESSIONMOVED:
            # Another connection resumed this session (another program with its client_id): it
            # owns it now (ZooKeeper's SessionMovedError). This request fails with that; the rest
            # of this program's session is over (LOST), rather than taking it back.
            req = self._pending.pop(msg.xid, None)
            if req is not None:
                req.result.set_exception(SessionMovedError())
            if not self._stopped.is_set():
                self._expire("another connection took the session over")
            return False
        if msg.zxid > self.last_zxid and msg.err != Codes.CONNECTIONLOSS:
            # Not from a CONNECTIONLOSS: that node forgot this connection and its watches, so
            # events up to its zxid were not all delivered; SetWatches must start from before.
            self.last_zxid = msg.zxid
        if msg.xid == p.PING_XID or msg.xid == p.SET_WATCHES_XID:
            return msg.err != Codes.CONNECTIONLOSS  # the node lost track of us: reconnect, resume
        if msg.xid == p.AUTH_XID:
            cred = self._auth_sent.popleft() if self._auth_sent else None
            waiters = self._auth_waiters.pop(cred, []) if cred is not None else []
            if msg.err == Codes.AUTHFAILED:
                # As kazoo: terminal. The node closes the connection; nothing more is sent.
                self.log.warning("auth_failed", scheme=cred[0] if cred else None)
                self._auth_failed = True
                for waiting in [*waiters, *(w for ws in self._auth_waiters.values() for w in ws)]:
                    waiting.set_exception(AuthFailedError())
                self._auth_waiters.clear()
                self._fail_pending(AuthFailedError, include_queue=True)
                self._set_state(KazooState.LOST, KeeperState.AUTH_FAILED)
                return False
            for waiting in waiters:
                waiting.set(True)
            return True
        if msg.err == Codes.CONNECTIONLOSS:
            # The node lost track of this connection (or cannot serve): reconnect, resume the
            # session and re-send what is pending, this request included.
            return False
        req = self._pending.pop(msg.xid, None)
        if req is None:
            return True
        try:
            value = req.parse(msg)
        except Exception as exc:  # noqa: BLE001 - delivered to the caller
            req.result.set_exception(exc)
            return True
        if req.watch is not None:
            self._register_watch(req.watch, value)
        if msg.err == 0 and isinstance(req.frame, bytes) and req.result is self._closing:
            self._set_state(KazooState.LOST, KeeperState.CLOSED)
        req.result.set(value)
        return True

    def _renumber(self, req: _Request) -> None:
        """Give a request numbered before this session was taken over a fresh xid (I/O thread)."""
        with self._xid_lock:
            self._xid = self._xid + 1 if self._xid < MAX_XID else 1
            xid, req.gen = self._xid, self._xid_gen
        req.msg = msgspec.structs.replace(req.msg, xid=xid)
        req.xid, req.frame = xid, self._encoder.encode(req.msg)

    def _requeue_pending(self) -> None:
        """Put the requests sent on a lost connection back at the head of the queue, in order."""
        pending, self._pending = self._pending, {}
        if pending:
            self._queue.extendleft(reversed(list(pending.values())))

    def _fail_pending(self, exc_class: type[Exception], include_queue: bool = False) -> None:
        pending, self._pending = self._pending, {}
        for req in pending.values():
            req.result.set_exception(exc_class())
        if include_queue:
            while self._queue:
                self._queue.popleft().result.set_exception(exc_class())

    # --- watches ------------------------------------------------------------------------------

    def _register_watch(self, watch: tuple[str, str, Callable], value: Any) -> None:
        kind, path, func = watch
        with self._watch_lock:
            if kind == "child":
                self._child_watchers.setdefault(path, set()).add(func)
            else:
                self._data_watchers.setdefault(path, set()).add(func)
                if value is None:
                    self._exist_paths.add(path)
                else:
                    self._exist_paths.discard(path)

    def _dispatch_event(self, msg: p.Event) -> None:
        path = self._unchroot(msg.path)
        etype = EVENT_TYPE_MAP.get(msg.type, EventType.NONE)
        funcs: set[Callable] = set()
        with self._watch_lock:
            if etype in (EventType.CREATED, EventType.CHANGED):
                funcs |= self._data_watchers.pop(path, set())
                self._exist_paths.discard(path)
            elif etype == EventType.CHILD:
                funcs |= self._child_watchers.pop(path, set())
            elif etype == EventType.DELETED:
                funcs |= self._data_watchers.pop(path, set())
                funcs |= self._child_watchers.pop(path, set())
                self._exist_paths.discard(path)
            funcs |= self._persistent.get(path, set())
            if self._recursive and etype != EventType.CHILD:
                for at in lineage(path):
                    funcs |= self._recursive.get(at, set())
        if funcs:
            event = WatchedEvent(etype, KeeperState.CONNECTED, path)
            for func in funcs:
                self._events.put(("watch", func, event))

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

    # --- paths --------------------------------------------------------------------------------

    def _chroot(self, path: str) -> str:
        if not self.chroot:
            return path
        return self.chroot if path == "/" else self.chroot + path

    def _unchroot(self, path: str) -> str:
        if self.chroot and path.startswith(self.chroot):
            path = path[len(self.chroot) :]
            return path or "/"
        return path

    def unchroot(self, path: str) -> str:
        return self._unchroot(path)

    def _path(self, path: Any) -> str:
        if not isinstance(path, str):
            raise TypeError("path must be a string")
        if not path.startswith("/"):
            path = "/" + path
        if len(path) > 1 and "//" in path:
            path = "/" + "/".join(x for x in path.split("/") if x)
        return self._chroot(path)

    # --- operations ---------------------------------------------------------------------------

    @staticmethod
    def _check(reply: p.Reply, path: str | None = None) -> None:
        if reply.err:
            raise error_for(reply.err, path)

    def _acl(self, acl: Any) -> list[ACL]:
        if acl is None:
            return list(self.default_acl or OPEN_ACL_UNSAFE)
        if isinstance(acl, ACL):
            acl = [acl]
        if not isinstance(acl, (list, tuple)):
            raise TypeError("acl must be a list of ACL")
        return [ACL(a.perms, Id(a.id.scheme, a.id.id)) for a in acl]

    def create_async(
        self,
        path: str,
        value: bytes = b"",
        acl: Any = None,
        ephemeral: bool = False,
        sequence: bool = False,
        makepath: bool = False,
        include_data: bool = False,
        container: bool = False,
        ttl: int = 0,
    ) -> AsyncResult:
        if value is not None and not isinstance(value, bytes):
            raise TypeError("Invalid type for 'value' (must be a byte string)")
        if not isinstance(ephemeral, bool) or not isinstance(sequence, bool) or not isinstance(makepath, bool):
            raise TypeError("ephemeral, sequence and makepath must be bool")
        if ttl and (ephemeral or container):
            raise TypeError("ttl only applies to persistent nodes")
        if container:
            flags = p.CONTAINER
        elif ttl:
            flags = p.PERSISTENT_SEQUENTIAL_WITH_TTL if sequence else p.PERSISTENT_WITH_TTL
        else:
            flags = (p.EPHEMERAL if ephemeral else 0) | (p.PERSISTENT_SEQUENTIAL if sequence else 0)
        full = self._path(path)
        msg = p.Create(self._next_xid(), full, value, self._acl(acl), flags, ttl)

        def parse(reply: p.Reply) -> Any:
            self._check(reply, path)
            created = self._unchroot(reply.body.path)
            return (created, reply.body.stat) if include_data else created

        if not makepath:
            return self._submit(msg, parse, path=full)
        outer = AsyncResult()

        def first(result: AsyncResult) -> None:
            if isinstance(result.exception, NoNodeError):
                parent = path.rsplit("/", 1)[0]
                if parent:
                    try:
                        self.ensure_path(parent, acl)
                    except Exception as exc:  # noqa: BLE001
                        outer.set_exception(exc)
                        return
                retry = self.create_async(path, value, acl, ephemeral, sequence, False, include_data, container, ttl)
                retry.rawlink(lambda r: outer.set_exception(r.exception) if r.exception else outer.set(r.value))
            elif result.exception is not None:
                outer.set_exception(result.exception)
            else:
                outer.set(result.value)

        inner = self._submit(msg, parse, path=full)
        # makepath may need more round trips: finish on a helper thread, never the I/O thread.
        inner.rawlink(lambda r: threading.Thread(target=first, args=(r,), daemon=True).start() if r.exception else first(r))
        return outer

    def create(self, path: str, value: bytes = b"", acl: Any = None, ephemeral: bool = False, sequence: bool = False, makepath: bool = False, include_data: bool = False, container: bool = False, ttl: int = 0) -> Any:
        return self.create_async(path, value, acl, ephemeral, sequence, makepath, include_data, container, ttl).get()

    def ensure_path(self, path: str, acl: Any = None) -> bool | str:
        if self.exists(path):
            return True
        parts = [x for x in path.split("/") if x]
        current = ""
        for part in parts:
            current += "/" + part
            try:
                self.create(current, b"", acl=acl)
            except NodeExistsError:
                pass
        return True

    def ensure_path_async(self, path: str, acl: Any = None) -> AsyncResult:
        result = AsyncResult()

        def run() -> None:
            try:
                result.set(self.ensure_path(path, acl))
            except Exception as exc:  # noqa: BLE001
                result.set_exception(exc)

        threading.Thread(target=run, daemon=True).start()
        return result

    def _watch_arg(self, watch: Any) -> None:
        if watch is not None and not callable(watch):
            raise TypeError("watch must be callable")

    def exists_async(self, path: str, watch: Callable | None = None) -> AsyncResult:
        self._watch_arg(watch)
        full = self._path(path)

        def parse(reply: p.Reply) -> Any:
            if reply.err == Codes.NONODE:
                return None
            self._check(reply, path)
            return reply.body.stat

        return self._submit(p.Exists(self._next_xid(), full, watch is not None), parse, ("data", path, watch) if watch else None, full)

    def exists(self, path: str, watch: Callable | None = None) -> ZnodeStat | None:
        return self.exists_async(path, watch).get()

    def get_async(self, path: str, watch: Callable | None = None) -> AsyncResult:
        self._watch_arg(watch)
        full = self._path(path)

        def parse(reply: p.Reply) -> Any:
            self._check(reply, path)
            return reply.body.data, reply.body.stat

        return self._submit(p.GetData(self._next_xid(), full, watch is not None), parse, ("data", path, watch) if watch else None, full)

    def get(self, path: str, watch: Callable | None = None) -> tuple[bytes, ZnodeStat]:
        return self.get_async(path, watch).get()

    def get_children_async(self, path: str, watch: Callable | None = None, include_data: bool = False) -> AsyncResult:
        self._watch_arg(watch)
        full = self._path(path)

        def parse(reply: p.Reply) -> Any:
            self._check(reply, path)
            return (reply.body.children, reply.body.stat) if include_data else reply.body.children

        msg = p.GetChildren(self._next_xid(), full, watch is not None, include_data)
        return self._submit(msg, parse, ("child", path, watch) if watch else None, full)

    def get_children(self, path: str, watch: Callable | None = None, include_data: bool = False) -> Any:
        return self.get_children_async(path, watch, include_data).get()

    def set_async(self, path: str, value: bytes | None, version: int = -1) -> AsyncResult:
        if value is not None and not isinstance(value, bytes):
            raise TypeError("Invalid type for 'value' (must be a byte string)")
        if not isinstance(version, int):
            raise TypeError("version must be an int")

        def parse(reply: p.Reply) -> Any:
            self._check(reply, path)
            return reply.body.stat

        return self._submit(p.SetData(self._next_xid(), self._path(path), value, version), parse)

    def set(self, path: str, value: bytes | None, version: int = -1) -> ZnodeStat:
        return self.set_async(path, value, version).get()

    def delete_async(self, path: str, version: int = -1) -> AsyncResult:
        if not isinstance(version, int):
            raise TypeError("version must be an int")

        def parse(reply: p.Reply) -> Any:
            self._check(reply, path)
            return True

        return self._submit(p.Delete(self._next_xid(), self._path(path), version), parse)

    def delete(self, path: str, version: int = -1, recursive: bool = False) -> Any:
        if not recursive:
            return self.delete_async(path, version).get()
        try:
            for child in self.get_children(path):
                self.delete(path.rstrip("/") + "/" + child, recursive=True)
            self.delete(path, version)
        except NoNodeError:
            pass
        return True

    def get_acls_async(self, path: str) -> AsyncResult:
        def parse(reply: p.Reply) -> Any:
            self._check(reply, path)
            return list(reply.body.acl), reply.body.stat

        return self._submit(p.GetACL(self._next_xid(), self._path(path)), parse)

    def get_acls(self, path: str) -> tuple[list[ACL], ZnodeStat]:
        return self.get_acls_async(path).get()

    def set_acls_async(self, path: str, acls: Any, version: int = -1) -> AsyncResult:
        def parse(reply: p.Reply) -> Any:
            self._check(reply, path)
            return reply.body.stat

        return self._submit(p.SetACL(self._next_xid(), self._path(path), self._acl(acls), version), parse)

    def set_acls(self, path: str, acls: Any, version: int = -1) -> ZnodeStat:
        return self.set_acls_async(path, acls, version).get()

    def add_auth_async(self, scheme: str, credential: str) -> AsyncResult:
        if not isinstance(scheme, str) or not isinstance(credential, str):
            raise TypeError("scheme and credential must be strings")
        self.auth_data.add((scheme, credential))
        result = AsyncResult()
        if self.connected:
            # Answered in order (xid -4): True, or AuthFailedError and the client is done, as kazoo.
            cred = (scheme, credential)
            self._auth_waiters.setdefault(cred, []).append(result)
            self._queue.append(_Request(p.AUTH_XID, self._encoder.encode(p.Auth(p.AUTH_XID, scheme, credential.encode())), result, lambda r: None, None, cred))
            self._wake()
        else:
            result.set(True)  # sent with the others when the connection is made
        return result

    def add_auth(self, scheme: str, credential: str) -> bool:
        return self.add_auth_async(scheme, credential).get()

    def sync_async(self, path: str) -> AsyncResult:
        def parse(reply: p.Reply) -> Any:
            self._check(reply, path)
            return self._unchroot(reply.body.path)

        return self._submit(p.Sync(self._next_xid(), self._path(path)), parse)

    def sync(self, path: str) -> str:
        return self.sync_async(path).get()

    def add_watch(self, path: str, watch: Callable[[WatchedEvent], Any], mode: int | None = None, *, recursive: bool = False) -> None:
        self.add_watch_async(path, watch, mode, recursive=recursive).get()

    def add_watch_async(
        self, path: str, watch: Callable[[WatchedEvent], Any], mode: int | None = None, *, recursive: bool = False
    ) -> AsyncResult:
        """A persistent watch: `watch(event)` on every change of `path` until removed (created,
        deleted, data and children changed); `recursive=True` (or kazoo's
        `mode=AddWatchMode.PERSISTENT_RECURSIVE`) on `path` and everything below it (created,
        deleted, data changed). Kept across reconnects."""
        if mode is None:
            mode = AddWatchMode.PERSISTENT_RECURSIVE if recursive else AddWatchMode.PERSISTENT
        if mode not in (AddWatchMode.PERSISTENT, AddWatchMode.PERSISTENT_RECURSIVE):
            raise ValueError(f"unknown watch mode {mode!r}")
        table = self._recursive if mode == AddWatchMode.PERSISTENT_RECURSIVE else self._persistent

        def parse(reply: p.Reply) -> None:
            self._check(reply, path)
            with self._watch_lock:
                table.setdefault(path, set()).add(watch)

        if not callable(watch):
            raise TypeError("watch must be callable")
        return self._submit(p.AddWatch(self._next_xid(), self._path(path), mode), parse)

    def remove_watches(self, path: str, watcher_type: int = WatcherType.ANY) -> None:
        self.remove_watches_async(path, watcher_type).get()

    def remove_watches_async(self, path: str, watcher_type: int = WatcherType.ANY) -> AsyncResult:
        """Remove this client's watches on `path` of `watcher_type` (CHILDREN, DATA, or ANY,
        which includes persistent ones); NoWatcherError if there were none on the node."""

        def parse(reply: p.Reply) -> None:
            self._check(reply, path)

        with self._watch_lock:
            if watcher_type in (WatcherType.DATA, WatcherType.ANY):
                self._data_watchers.pop(path, None)
                self._exist_paths.discard(path)
            if watcher_type in (WatcherType.CHILDREN, WatcherType.ANY):
                self._child_watchers.pop(path, None)
            if watcher_type == WatcherType.ANY:
                self._persistent.pop(path, None)
                self._recursive.pop(path, None)
        return self._submit(p.RemoveWatches(self._next_xid(), self._path(path), watcher_type), parse)

    def get_children_count(self, path: str) -> int:
        return self.get_children_count_async(path).get()

    def get_children_count_async(self, path: str) -> AsyncResult:
        def parse(reply: p.Reply) -> Any:
            self._check(reply, path)
            return reply.body.count

        return self._submit(p.GetAllChildrenNumber(self._next_xid(), self._path(path)), parse)

    def get_ephemerals(self, prefix: str = "/") -> list[str]:
        return self.get_ephemerals_async(prefix).get()

    def get_ephemerals_async(self, prefix: str = "/") -> AsyncResult:
        def parse(reply: p.Reply) -> Any:
            self._check(reply, prefix)
            return sorted(self._unchroot(n) for n in reply.body.names)

        return self._submit(p.GetEphemerals(self._next_xid(), self._path(prefix)), parse)

    def command(self, cmd: bytes | str = b"ruok") -> str:
        return self.command_async(cmd).get(timeout=10)

    def command_async(self, cmd: bytes | str = b"ruok") -> AsyncResult:
        text = cmd.decode() if isinstance(cmd, bytes) else cmd

        def parse(reply: p.Reply) -> Any:
            self._check(reply)
            return reply.body.text

        return self._submit(p.AdminCommand(self._next_xid(), text), parse)

    def transaction(self) -> TransactionRequest:
        return TransactionRequest(self)

    def _multi_async(self, ops: list[Any]) -> AsyncResult:
        def parse(reply: p.Reply) -> list[Any]:
            self._check(reply)
            results = reply.body.results
            if any(r.err for r in results):
                return [error_for(r.err) for r in results]
            out: list[Any] = []
            for op, r in zip(ops, results, strict=False):
                if isinstance(op, p.Create):
                    out.append(self._unchroot(r.path))
                elif isinstance(op, p.SetData):
                    out.append(r.stat)
                else:
                    out.append(True)
            return out

        return self._submit(p.Multi(self._next_xid(), ops), parse)


class TransactionRequest:
    """kazoo's TransactionRequest: ops collected, then committed atomically."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.operations: list[Any] = []
        self.committed = False

    def create(self, path: str, value: bytes = b"", acl: Any = None, ephemeral: bool = False, sequence: bool = False) -> None:
        if not isinstance(value, bytes):
            raise TypeError("Invalid type for 'value' (must be a byte string)")
        flags = (p.EPHEMERAL if ephemeral else 0) | (p.PERSISTENT_SEQUENTIAL if sequence else 0)
        self._add(p.Create(0, self.client._path(path), value, self.client._acl(acl), flags))

    def delete(self, path: str, version: int = -1) -> None:
        if not isinstance(version, int):
            raise TypeError("Invalid type for 'version' (int expected)")
        self._add(p.Delete(0, self.client._path(path), version))

    def set_data(self, path: str, value: bytes, version: int = -1) -> None:
        if not isinstance(value, bytes):
            raise TypeError("Invalid type for 'value' (must be a byte string)")
        if not isinstance(version, int):
            raise TypeError("Invalid type for 'version' (int expected)")
        self._add(p.SetData(0, self.client._path(path), value, version))

    def check(self, path: str, version: int) -> None:
        if not isinstance(version, int):
            raise TypeError("Invalid type for 'version' (int expected)")
        self._add(p.Check(0, self.client._path(path), version))

    def _add(self, op: Any) -> None:
        self._check_tx_state()
        self.operations.append(op)

    def _check_tx_state(self) -> None:
        if self.committed:
            raise ValueError("Transaction already committed")  # kazoo's words

    def commit_async(self) -> AsyncResult:
        self._check_tx_state()
        self.committed = True
        return self.client._multi_async(self.operations)

    def commit(self) -> list[Any]:
        return self.commit_async().get()

    def __enter__(self) -> TransactionRequest:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commit()


KazooClient = Client
