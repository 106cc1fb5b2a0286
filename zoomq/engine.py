"""The client's session engine (pure): every decision of `zoomq.Client`, with no socket, thread
or clock of its own. `zoomq.aio.Client` runs on the same engine (it drives a `zoomq.Client`).

In:  `next_xid()` and `submit(request)` (a caller's request), `connect_message()`,
     `handshake(msg)` (the node's answer to Connect), `frames()` (what to send now),
     `received(msg)` (one message from the node), `connection_lost(now, served)`, `expire(why)`,
     `close(error)`, `add_auth(...)`, `remove_watches(...)`.
Out: effects, drained with `take_effects()`: Deliver (a request's value or error to its result),
     Notify (a watch callback and its event), StateChange (kazoo's state, for the listeners).
The shell (zoomq/client.py) owns the socket, the threads (callers, I/O, events) and the clock; it
holds one lock around every call into the engine, and carries the effects out after it let go.

Rules:
- xids are numbered per session and never reused while the node may remember them: a session
  this engine did not open (client_id) starts its numbering past the node's last cxid, in a new
  generation; a request numbered in an older generation is renumbered before it is first sent.
- A request left unanswered when a connection drops is re-sent on the next one with the same
  xid, in order, ahead of newer ones: the node answers an already applied write with its first
  result. At most MAX_IN_FLIGHT requests are unanswered (the node remembers that many results).
- After a (re)connection, before any queued request: every credential (Auth), then SetWatches
  for every watch held, relative to the last zxid this client saw.
- SESSIONEXPIRED ends the session (LOST, every request fails SessionExpiredError, watches are
  dropped); SESSIONMOVED likewise, with SessionMovedError for the request that met it; a
  failed Auth is terminal (AUTH_FAILED). CONNECTIONLOSS from a node is a reconnection.
- No node reached for longer than the negotiated timeout since the last connection ended: the
  session is given up as expired, without waiting for a node to say so.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec

from zoomq import protocol as p
from zoomq.exceptions import AuthFailedError, Codes, SessionExpiredError, SessionMovedError
from zoomq.paths import lineage
from zoomq.states import EVENT_TYPE_MAP, EventType, KazooState, KeeperState, WatchedEvent, WatcherType

MAX_XID = 2**31 - 1
MAX_IN_FLIGHT = 256  # = actors.session.tree.RECENT_PER_SESSION (tests/unit check they match)


@dataclass(slots=True)
class Request:
    """One request: its frame, how to read the reply, and where the outcome goes."""

    xid: int
    frame: bytes
    result: Any  # opaque to the engine: the shell's AsyncResult, the simulator's record
    parse: Callable[[p.Reply], Any]  # the reply -> the value (or raises the caller's error)
    watch: tuple[str, str, Callable] | None = None  # (kind, path, func) registered on success
    msg: Any = None  # kept to renumber it
    gen: int = 0  # the xid generation its xid was taken in
    credential: tuple[str, str] | None = None  # an Auth request's (scheme, credential)


class Deliver(NamedTuple):
    result: Any
    value: Any = None
    error: BaseException | None = None


class Notify(NamedTuple):
    func: Callable[[WatchedEvent], Any]
    event: WatchedEvent


class StateChange(NamedTuple):
    state: str


class Handshake(enum.Enum):
    WAIT = "wait"  # not the answer yet: keep waiting
    FAILED = "failed"  # this node cannot open the session now: try the next
    AGAIN = "again"  # the session expired: send connect_message() again (a new session)
    READY = "ready"  # connected: send the returned frames first


class Watches:
    """The client's watch registry, by path as the caller wrote it (chroot not applied)."""

    def __init__(self) -> None:
        self.data: dict[str, set[Callable]] = {}
        self.exist: set[str] = set()  # data watches set by exists() on a missing node
        self.child: dict[str, set[Callable]] = {}
        self.persistent: dict[str, set[Callable]] = {}
        self.recursive: dict[str, set[Callable]] = {}

    def register(self, kind: str, path: str, func: Callable, value: Any) -> None:
        if kind == "child":
            self.child.setdefault(path, set()).add(func)
        elif kind == "persistent":
            self.persistent.setdefault(path, set()).add(func)
        elif kind == "recursive":
            self.recursive.setdefault(path, set()).add(func)
        else:
            self.data.setdefault(path, set()).add(func)
            if value is None:
                self.exist.add(path)
            else:
                self.exist.discard(path)

    def remove(self, path: str, watcher_type: int) -> None:
        if watcher_type in (WatcherType.DATA, WatcherType.ANY):
            self.data.pop(path, None)
            self.exist.discard(path)
        if watcher_type in (WatcherType.CHILDREN, WatcherType.ANY):
            self.child.pop(path, None)
        if watcher_type == WatcherType.ANY:
            self.persistent.pop(path, None)
            self.recursive.pop(path, None)

    def trigger(self, etype: str, path: str) -> set[Callable]:
        """The callbacks an event fires; one-shot watches are used up."""
        funcs: set[Callable] = set()
        if etype in (EventType.CREATED, EventType.CHANGED):
            funcs |= self.data.pop(path, set())
            self.exist.discard(path)
        elif etype == EventType.CHILD:
            funcs |= self.child.pop(path, set())
        elif etype == EventType.DELETED:
            funcs |= self.data.pop(path, set())
            funcs |= self.child.pop(path, set())
            self.exist.discard(path)
        funcs |= self.persistent.get(path, set())
        if self.recursive and etype != EventType.CHILD:
            for at in lineage(path):
                funcs |= self.recursive.get(at, set())
        return funcs

    def set_watches(self, relative_zxid: int, chroot: Callable[[str], str]) -> p.SetWatches | None:
        """What to re-arm on a new connection (None: nothing is watched)."""
        data = [chroot(x) for x in self.data if x not in self.exist]
        exist = [chroot(x) for x in self.data if x in self.exist]
        child = [chroot(x) for x in self.child]
        persistent = [chroot(x) for x in self.persistent]
        recursive = [chroot(x) for x in self.recursive]
        if not (data or exist or child or persistent or recursive):
            return None
        return p.SetWatches(p.SET_WATCHES_XID, relative_zxid, data, exist, child, persistent, recursive)

    def clear(self) -> None:
        for table in (self.data, self.exist, self.child, self.persistent, self.recursive):
            table.clear()


def with_chroot(chroot: str, path: str) -> str:
    if not chroot:
        return path
    return chroot if path == "/" else chroot + path


def without_chroot(chroot: str, path: str) -> str:
    if chroot and path.startswith(chroot):
        return path[len(chroot) :] or "/"
    return path


class SessionEngine:
    def __init__(
        self,
        *,
        timeout_ms: int,
        read_only: bool = False,
        client_id: tuple[int, bytes] | None = None,
        chroot: str = "",
        auth_data: Iterable[tuple[str, str]] = (),
        log: Any = None,
    ) -> None:
        self.timeout_ms = timeout_ms
        self.read_only = read_only
        self.session_id, self.passwd = client_id if client_id else (0, b"")
        self.negotiated_ms = timeout_ms
        self.chroot = chroot
        self.log = log
        self.last_zxid = 0
        self.state = KazooState.LOST
        self.keeper = KeeperState.CLOSED
        self.queue: deque[Request] = deque()
        self.pending: dict[int, Request] = {}
        self.xid = 0
        self.xid_gen = 0
        self.xid_session = 0
        self.watches = Watches()
        self.auth_data: set[tuple[str, str]] = set(auth_data)
        # add_auth calls awaiting the node's verdict, by credential; and the credentials whose Auth
        # went out on the current connection, in order (the node answers them in order, xid -4).
        self.auth_waiters: dict[tuple[str, str], list[Any]] = {}
        self.auth_sent: deque[tuple[str, str]] = deque()
        self.auth_failed = False
        self.stopping = False  # the caller is stopping the client: an ended session is not reported
        self.closing: Any = None  # the result of the Close request, once sent
        self.lost_since: float | None = None
        self.encoder = msgspec.msgpack.Encoder()
        self._effects: list[Any] = []

    # --- outputs ------------------------------------------------------------------------------

    def take_effects(self) -> list[Any]:
        out, self._effects = self._effects, []
        return out

    def set_state(self, state: str, keeper: str) -> None:
        self.keeper = keeper
        if state != self.state:
            self.state = state
            self._effects.append(StateChange(state))

    @property
    def connected(self) -> bool:
        return self.state == KazooState.CONNECTED

    @property
    def read_timeout_s(self) -> float:
        """Silence after which the connection is taken for dead."""
        return self.negotiated_ms * 2 / 3 / 1000.0

    @property
    def ping_every_s(self) -> float:
        return self.negotiated_ms / 3 / 1000.0

    # --- requests -----------------------------------------------------------------------------

    def next_xid(self) -> tuple[int, int]:
        """(xid, generation) for a new request."""
        self.xid = self.xid + 1 if self.xid < MAX_XID else 1
        return self.xid, self.xid_gen

    def skip_xids(self, count: int) -> None:
        """Number the next requests past `count` xids (another program may have used them)."""
        self.xid = (self.xid + count) % MAX_XID

    def submit(self, request: Request) -> None:
        self.queue.append(request)

    def add_auth(self, scheme: str, credential: str, result: Any) -> None:
        """Kept for every later connection; answered now if connected (True or AuthFailedError,
        and then the client is done, as kazoo), else at once with True."""
        cred = (scheme, credential)
        self.auth_data.add(cred)
        if not self.connected:
            self._effects.append(Deliver(result, True))
            return
        self.auth_waiters.setdefault(cred, []).append(result)
        frame = self.encoder.encode(p.Auth(p.AUTH_XID, scheme, credential.encode()))
        self.queue.append(Request(p.AUTH_XID, frame, result, _no_value, credential=cred))

    def remove_watches(self, path: str, watcher_type: int) -> None:
        self.watches.remove(path, watcher_type)

    def frames(self) -> list[bytes]:
        """The queued requests that may go now, in order (at most MAX_IN_FLIGHT unanswered)."""
        out: list[bytes] = []
        queue, pending = self.queue, self.pending
        while queue and len(pending) < MAX_IN_FLIGHT:
            req = queue.popleft()
            if req.gen != self.xid_gen and req.xid > 0:
                self._renumber(req)
            if req.credential is not None:
                self.auth_sent.append(req.credential)  # not pending: re-sent from auth_data after a reconnect
            else:
                pending[req.xid] = req
            out.append(req.frame)
        return out

    def _renumber(self, req: Request) -> None:
        """A request numbered before this session was taken over gets a fresh xid."""
        xid, req.gen = self.next_xid()
        req.msg = msgspec.structs.replace(req.msg, xid=xid)
        req.xid, req.frame = xid, self.encoder.encode(req.msg)

    # --- connections --------------------------------------------------------------------------

    def connect_message(self) -> p.Connect:
        return p.Connect(
            p.PROTOCOL_VERSION, self.last_zxid, self.timeout_ms, self.session_id, self.passwd, self.read_only
        )

    def handshake(self, msg: Any) -> tuple[Handshake, list[bytes]]:
        if isinstance(msg, p.Reply) and msg.xid == 0 and msg.err:
            return Handshake.FAILED, []  # the node could not open the session now
        if not isinstance(msg, p.Connected):
            return Handshake.WAIT, []
        if msg.timeout_ms <= 0:
            self.expire("the node says the session expired")
            return Handshake.AGAIN, []
        self.session_id, self.passwd = msg.session_id, msg.passwd
        if msg.session_id != self.xid_session:
            self.xid_session = msg.session_id
            self.xid_gen += 1
            if msg.last_cxid:
                self.xid = msg.last_cxid
        self.negotiated_ms = msg.timeout_ms
        seen = self.last_zxid  # what this client saw before: watches fire for anything newer
        self.last_zxid = max(seen, msg.last_zxid)
        self.lost_since = None
        frames = self._replay(seen)
        self.set_state(KazooState.CONNECTED, KeeperState.CONNECTED_RO if msg.read_only else KeeperState.CONNECTED)
        return Handshake.READY, frames

    def _replay(self, seen_zxid: int) -> list[bytes]:
        """Auth and watches, before any queued request (same connection, so in order)."""
        frames = []
        self.auth_sent.clear()
        for scheme, credential in sorted(self.auth_data):
            frames.append(self.encoder.encode(p.Auth(p.AUTH_XID, scheme, credential.encode())))
            self.auth_sent.append((scheme, credential))
        set_watches = self.watches.set_watches(seen_zxid, lambda path: with_chroot(self.chroot, path))
        if set_watches is not None:
            frames.append(self.encoder.encode(set_watches))
        return frames

    def begin(self, now: float) -> None:
        """The client starts: the clock of "no node reached" starts too."""
        self.lost_since = now

    def connection_lost(self, now: float, served: bool) -> None:
        """A connection ended (`served`: it had been established) or an attempt failed."""
        if served or self.lost_since is None:
            self.lost_since = now
        pending, self.pending = self.pending, {}
        if pending:
            self.queue.extendleft(reversed(list(pending.values())))
        if self.state == KazooState.CONNECTED:
            self.set_state(KazooState.SUSPENDED, KeeperState.CONNECTING)
        if self.session_id and now - self.lost_since > self.negotiated_ms / 1000.0:
            self.expire("no node reachable within the session timeout")

    def expire(self, why: str) -> None:
        if self.log is not None:
            self.log.info("session_lost", session=hex(self.session_id), why=why)
        self.session_id, self.passwd = 0, b""
        self.fail_all(SessionExpiredError)
        self.watches.clear()
        self.set_state(KazooState.LOST, KeeperState.EXPIRED_SESSION)

    def fail_all(self, error: type[Exception] | Callable[[], Exception]) -> None:
        """Every request sent or queued fails with `error()`."""
        pending, self.pending = self.pending, {}
        for req in [*pending.values(), *self.queue]:
            self._effects.append(Deliver(req.result, None, error()))
        self.queue.clear()

    def close(self) -> None:
        """The client stopped: the session is left (closed by the Close, or to expire)."""
        self.session_id, self.passwd = 0, b""
        self.set_state(KazooState.LOST, KeeperState.CLOSED)

    # --- the node's messages ------------------------------------------------------------------

    def received(self, msg: Any) -> bool:
        """One message from the node; False: drop this connection."""
        if isinstance(msg, p.Event):
            self.last_zxid = max(self.last_zxid, msg.zxid)
            self._event(msg)
            return True
        if not isinstance(msg, p.Reply):
            return True
        err = msg.err
        if err == Codes.SESSIONEXPIRED:
            # The session ended (expired, or closed through another connection) while this
            # connection lived: report it as kazoo does (LOST) and start over with a new session.
            if not self.stopping:
                self.expire("the node says the session has ended")
            return False
        if err == Codes.SESSIONMOVED:
            # Another connection resumed this session (another program with its client_id): it
            # owns it now. This request fails with that; the rest of this program's session is
            # over (LOST), rather than taking it back.
            req = self.pending.pop(msg.xid, None)
            if req is not None:
                self._effects.append(Deliver(req.result, None, SessionMovedError()))
            if not self.stopping:
                self.expire("another connection took the session over")
            return False
        if msg.zxid > self.last_zxid and err != Codes.CONNECTIONLOSS:
            # Not from a CONNECTIONLOSS: that node forgot this connection and its watches, so
            # events up to its zxid were not all delivered; SetWatches must start from before.
            self.last_zxid = msg.zxid
        xid = msg.xid
        if xid == p.PING_XID or xid == p.SET_WATCHES_XID:
            return err != Codes.CONNECTIONLOSS  # the node lost track of us: reconnect, resume
        if xid == p.AUTH_XID:
            return self._auth_answer(err)
        if err == Codes.CONNECTIONLOSS:
            # The node lost track of this connection (or cannot serve): reconnect, resume the
            # session and re-send what is pending, this request included.
            return False
        req = self.pending.pop(xid, None)
        if req is None:
            return True
        try:
            value = req.parse(msg)
        except Exception as exc:  # noqa: BLE001 - the caller's error, delivered to the caller
            self._effects.append(Deliver(req.result, None, exc))
            return True
        if req.watch is not None:
            kind, path, func = req.watch
            self.watches.register(kind, path, func, value)
        if err == 0 and req.result is self.closing and self.closing is not None:
            self.set_state(KazooState.LOST, KeeperState.CLOSED)
        self._effects.append(Deliver(req.result, value))
        return True

    def _auth_answer(self, err: int) -> bool:
        cred = self.auth_sent.popleft() if self.auth_sent else None
        waiters = self.auth_waiters.pop(cred, []) if cred is not None else []
        if err != Codes.AUTHFAILED:
            self._effects.extend(Deliver(w, True) for w in waiters)
            return True
        # As kazoo: terminal. The node closes the connection; nothing more is sent.
        if self.log is not None:
            self.log.warning("auth_failed", scheme=cred[0] if cred else None)
        self.auth_failed = True
        for waiting in [*waiters, *(w for ws in self.auth_waiters.values() for w in ws)]:
            self._effects.append(Deliver(waiting, None, AuthFailedError()))
        self.auth_waiters.clear()
        self.fail_all(AuthFailedError)
        self.set_state(KazooState.LOST, KeeperState.AUTH_FAILED)
        return False

    def _event(self, msg: p.Event) -> None:
        path = without_chroot(self.chroot, msg.path)
        etype = EVENT_TYPE_MAP.get(msg.type, EventType.NONE)
        funcs = self.watches.trigger(etype, path)
        if funcs:
            event = WatchedEvent(etype, KeeperState.CONNECTED, path, msg.zxid)
            self._effects.extend(Notify(func, event) for func in funcs)


def _no_value(reply: p.Reply) -> None:
    return None
