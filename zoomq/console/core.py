"""What the console does with a zoomq client, without the web framework: render znode data, Stat
and ACLs as JSON-ready values, check what a browser sends, list children with their counts, plan
and carry out recursive deletes, and keep one zoomq client per browser session.

Everything here blocks (zoomq's threaded client): the web app calls it on worker threads. Every
wait on the ensemble is bounded by `op_timeout` (a node without quorum fails the request with
zoomq's TimeoutError instead of holding a worker forever).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from zoomq import exceptions as zx
from zoomq.paths import validate_path
from zoomq.security import ACL, CREATOR_ALL_ACL, OPEN_ACL_UNSAFE

MAX_CHILDREN_LISTED = 2000  # children shown per node (the count says how many there are)
MAX_DELETE_NODES = 100_000  # a recursive delete larger than this is refused (use the shell)
DELETE_CONFIRM_S = 120.0  # how long a recursive-delete confirmation stays valid
PROTECTED = ("/", "/zookeeper")  # never deleted from the console
_PERMS = (("c", 4), ("d", 8), ("r", 1), ("w", 2), ("a", 16))  # zkCli's order: cdrwa


class ConsoleError(Exception):
    """A request the console refuses or cannot serve; `name` and `status` go to the browser."""

    def __init__(self, name: str, message: str, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.name = name
        self.message = message
        self.status = status
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.name, "message": self.message, **self.extra}


# kazoo exception -> HTTP status of the JSON error the browser gets.
_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (zx.NoNodeError, 404),
    (zx.NoAuthError, 403),
    (zx.AuthFailedError, 403),
    (zx.BadVersionError, 409),
    (zx.NodeExistsError, 409),
    (zx.NotEmptyError, 409),
    (zx.QuotaExceededError, 409),
    (zx.BadArgumentsError, 400),
    (zx.InvalidACLError, 400),
    (zx.NoChildrenForEphemeralsError, 400),
    (zx.UnimplementedError, 400),
    (zx.TimeoutError, 504),
    (zx.ConnectionClosedError, 503),
    (zx.ConnectionLoss, 503),
    (zx.SessionExpiredError, 503),
)


def error_body(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) for an exception raised while serving a request."""
    if isinstance(exc, ConsoleError):
        return exc.status, exc.body()
    status = next(
        (code for cls, code in _STATUS if isinstance(exc, cls)), 500 if not isinstance(exc, zx.KazooException) else 502
    )
    message = str(exc) or type(exc).__name__
    return status, {"error": type(exc).__name__, "message": message}


# --- rendering ---------------------------------------------------------------------------------


def _printable(text: str) -> bool:
    return all(ch.isprintable() or ch in "\n\r\t" for ch in text)


def render_data(data: bytes | None) -> dict[str, Any]:
    """A znode's value for the browser: UTF-8 text when it is printable, else hex."""
    data = data or b""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and _printable(text):
        return {"encoding": "text", "value": text, "size": len(data)}
    return {"encoding": "hex", "value": data.hex(" ", 1), "size": len(data)}


def parse_data(value: Any, encoding: Any) -> bytes:
    """What the browser sent (`encoding` "text" or "hex") as bytes; ConsoleError if it does not parse."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ConsoleError("BadRequest", "data must be a string")
    if encoding in (None, "text"):
        return value.encode("utf-8")
    if encoding == "hex":
        try:
            return bytes.fromhex(value)
        except ValueError as exc:
            raise ConsoleError("BadRequest", f"data is not hex: {exc}") from None
    raise ConsoleError("BadRequest", f"unknown encoding {encoding!r} (text or hex)")


def _ms_iso(ms: int) -> str:
    if not ms:
        return ""
    return _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def render_stat(stat: Any) -> dict[str, Any] | None:
    """ZnodeStat -> its fields, zxids and the ephemeral owner also in hex, times in ISO 8601."""
    if stat is None:
        return None
    out: dict[str, Any] = dict(stat._asdict())
    out["czxidHex"] = hex(stat.czxid)
    out["mzxidHex"] = hex(stat.mzxid)
    out["pzxidHex"] = hex(stat.pzxid)
    out["ephemeralOwnerHex"] = hex(stat.ephemeralOwner)
    out["ctimeIso"] = _ms_iso(stat.ctime)
    out["mtimeIso"] = _ms_iso(stat.mtime)
    return out


def perms_text(perms: int) -> str:
    """ZooKeeper's permission letters (cdrwa), as zkCli's getAcl prints them."""
    return "".join(letter for letter, bit in _PERMS if perms & bit)


def render_acls(acls: Iterable[ACL]) -> list[dict[str, Any]]:
    return [{"scheme": a.id.scheme, "id": a.id.id, "perms": perms_text(a.perms), "permsList": a.acl_list} for a in acls]


# --- what the browser sends ---------------------------------------------------------------------


def check_path(path: Any, *, sequential: bool = False) -> str:
    """A valid znode path, or ConsoleError("BadPath")."""
    why = validate_path(path, sequential=sequential)
    if why is not None:
        raise ConsoleError("BadPath", f"invalid path {path!r}: {why}")
    return path


def child_path(parent: str, name: str) -> str:
    return (parent.rstrip("/") + "/" + name) if parent != "/" else "/" + name


def check_version(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise ConsoleError("BadRequest", "version must be an integer >= -1 (the version you loaded)")
    return value


@dataclass(frozen=True)
class CreateRequest:
    path: str  # the full path to create (for a sequential node: the prefix)
    data: bytes
    kind: str  # persistent | container | ttl
    sequential: bool
    ttl_ms: int
    acl: str  # open | creator

    @classmethod
    def parse(cls, body: dict[str, Any]) -> CreateRequest:
        parent = check_path(body.get("parent", "/"))
        name = body.get("name", "")
        if not isinstance(name, str):
            raise ConsoleError("BadRequest", "name must be a string")
        kind = body.get("kind", "persistent")
        if kind not in ("persistent", "sequential", "container", "ttl"):
            raise ConsoleError("BadRequest", f"unknown kind {kind!r} (persistent, sequential, container, ttl)")
        sequential = kind == "sequential" or bool(body.get("sequential", False))
        if kind == "sequential":
            kind = "persistent"
        if kind == "container" and sequential:
            raise ConsoleError("BadRequest", "a container node cannot be sequential")
        ttl_ms = 0
        if kind == "ttl":
            ttl_ms = body.get("ttl_ms")
            if isinstance(ttl_ms, str) and ttl_ms.strip().isdigit():
                ttl_ms = int(ttl_ms)
            if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int) or ttl_ms <= 0:
                raise ConsoleError("BadRequest", "a TTL node needs ttl_ms, a positive number of milliseconds")
        if "/" in name or (not name and not sequential):
            raise ConsoleError(
                "BadPath", "the name must be non-empty and contain no '/' (empty only for a sequential node)"
            )
        path = check_path(child_path(parent, name), sequential=sequential)
        acl = body.get("acl", "open")
        if acl not in ("open", "creator"):
            raise ConsoleError("BadRequest", f"unknown acl {acl!r} (open, creator)")
        return cls(path, parse_data(body.get("data", ""), body.get("encoding", "text")), kind, sequential, ttl_ms, acl)

    def acl_list(self) -> list[ACL]:
        return list(OPEN_ACL_UNSAFE if self.acl == "open" else CREATOR_ALL_ACL)


# --- operations on the tree ----------------------------------------------------------------------


def _wait(result: Any, timeout: float) -> Any:
    return result.get(timeout=timeout)


def list_children(client: Any, path: str, timeout: float) -> dict[str, Any]:
    """The node's children with each one's child count, data length and kind (one pipelined
    exists per child). A child this session may not read is listed with `noauth` and no counts."""
    names = sorted(_wait(client.get_children_async(path), timeout))
    shown = names[:MAX_CHILDREN_LISTED]
    pending = [(name, client.exists_async(child_path(path, name))) for name in shown]
    children = []
    for name, result in pending:
        entry: dict[str, Any] = {
            "name": name,
            "path": child_path(path, name),
            "numChildren": None,
            "dataLength": None,
            "ephemeral": False,
            "noauth": False,
        }
        try:
            stat = _wait(result, timeout)
        except zx.NoAuthError:
            entry["noauth"] = True
            children.append(entry)
            continue
        if stat is None:  # deleted meanwhile
            continue
        entry.update(numChildren=stat.numChildren, dataLength=stat.dataLength, ephemeral=bool(stat.ephemeralOwner))
        children.append(entry)
    return {"path": path, "children": children, "total": len(names), "truncated": len(names) > len(shown)}


def read_node(client: Any, path: str, timeout: float) -> dict[str, Any]:
    """A node's data, Stat and ACLs. What the session may not read is reported in place
    (`dataError` / `aclError`, e.g. NoAuthError, and `noauth`) rather than as a failure: a node
    without READ for this session still exists, and its ACL may still be readable."""
    exists_result = client.exists_async(path)
    data_result = client.get_async(path)
    acl_result = client.get_acls_async(path)
    out: dict[str, Any] = {
        "path": path,
        "name": path.rsplit("/", 1)[-1] or "/",
        "stat": None,
        "data": None,
        "dataError": None,
        "acls": None,
        "aclError": None,
    }
    try:
        stat = _wait(exists_result, timeout)
        if stat is None:
            raise zx.NoNodeError(path)
        out["stat"] = render_stat(stat)
    except zx.NoAuthError:
        pass  # zoomq checks READ on exists too: the data's error says it
    try:
        data, stat = _wait(data_result, timeout)
        out["data"] = render_data(data)
        out["stat"] = render_stat(stat)  # the one that goes with the data (its version is the one to edit)
    except zx.NoAuthError as exc:
        out["dataError"] = {"error": type(exc).__name__, "message": str(exc) or "not allowed to read this node"}
    try:
        acls, _ = _wait(acl_result, timeout)
        out["acls"] = render_acls(acls)
    except zx.NoAuthError as exc:
        out["aclError"] = {"error": type(exc).__name__, "message": str(exc)}
    out["noauth"] = out["dataError"] is not None
    return out


def subtree(client: Any, path: str, timeout: float, limit: int = MAX_DELETE_NODES) -> list[list[str]]:
    """The node and everything below it, level by level ([[path], [its children], ...]); each
    level is listed with pipelined get_children. ConsoleError past `limit` nodes."""
    levels = [[path]]
    count = 1
    while levels[-1]:
        pending = [(p, client.get_children_async(p)) for p in levels[-1]]
        nxt: list[str] = []
        for parent, result in pending:
            try:
                names = _wait(result, timeout)
            except zx.NoNodeError:
                continue
            nxt.extend(child_path(parent, n) for n in sorted(names))
        count += len(nxt)
        if count > limit:
            raise ConsoleError(
                "TooLarge", f"{path} has more than {limit} nodes below it: delete it with `zoomq shell` (deleteall)"
            )
        levels.append(nxt)
    levels.pop()
    return levels


def check_deletable(path: str) -> None:
    if path in PROTECTED or path.startswith("/zookeeper/"):
        raise ConsoleError("Protected", f"{path} is not deleted from the console", status=403)


def delete_tree(client: Any, levels: list[list[str]], timeout: float) -> int:
    """Delete what `subtree` listed, deepest level first (pipelined per level); nodes already
    gone are skipped. Returns how many this call deleted."""
    deleted = 0
    for level in reversed(levels):
        pending = [client.delete_async(p) for p in level]
        for result in pending:
            try:
                _wait(result, timeout)
                deleted += 1
            except zx.NoNodeError:
                pass
    return deleted


# --- one zoomq client per browser session --------------------------------------------------------


@dataclass
class PendingDelete:
    path: str
    count: int
    expires: float


@dataclass
class ConsoleSession:
    """A browser session: its cookie id, CSRF token, credentials added at login, and zoomq client."""

    id: str
    csrf: str
    created: float
    last_used: float
    auth: list[tuple[str, str]] = field(default_factory=list)  # added through the login form
    identities: list[str] = field(default_factory=list)  # shown: "digest:alice" (never the password)
    client: Any = None
    streams: int = 0  # open live-watch streams (a session with one open is not idle)
    deletes: dict[str, PendingDelete] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False

    def touch(self) -> None:
        self.last_used = time.monotonic()

    def add_delete(self, path: str, count: int) -> str:
        now = time.monotonic()
        self.deletes = {k: v for k, v in self.deletes.items() if v.expires > now}
        token = secrets.token_urlsafe(16)
        self.deletes[token] = PendingDelete(path, count, now + DELETE_CONFIRM_S)
        return token

    def take_delete(self, token: Any, path: str) -> PendingDelete:
        pending = self.deletes.pop(token, None) if isinstance(token, str) else None
        if pending is None or pending.expires < time.monotonic() or pending.path != path:
            raise ConsoleError(
                "ConfirmationRequired",
                f"deleting {path} with everything below it needs a confirmation: "
                "ask for the count first (POST /api/delete/plan), then confirm with its token",
                status=428,
            )
        return pending


class SessionStore:
    """The console's browser sessions. Each gets its own zoomq client the first time it needs one
    (`client_factory(extra_auth)` makes it, not yet started); a session idle for `idle_s`, logged
    out, or evicted to stay within `max_sessions` has its client stopped."""

    def __init__(
        self,
        client_factory: Callable[[list[tuple[str, str]]], Any],
        *,
        idle_s: float = 900.0,
        max_sessions: int = 64,
        connect_timeout: float = 15.0,
    ) -> None:
        self._factory = client_factory
        self.idle_s = idle_s
        self.max_sessions = max_sessions
        self.connect_timeout = connect_timeout
        self._sessions: dict[str, ConsoleSession] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: str | None) -> ConsoleSession | None:
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
        if session is not None:
            if time.monotonic() - session.last_used > self.idle_s and session.streams == 0:
                with self._lock:
                    self._sessions.pop(session.id, None)
                _close_later([session])  # called on the event loop: stopping a client may take a while
                return None
            session.touch()
        return session

    def new(self) -> ConsoleSession:
        now = time.monotonic()
        session = ConsoleSession(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)
        evicted = []
        with self._lock:
            self._sessions[session.id] = session
            while len(self._sessions) > self.max_sessions:
                oldest = min(self._sessions.values(), key=lambda s: s.last_used)
                evicted.append(self._sessions.pop(oldest.id))
        _close_later(evicted)
        return session

    def client(self, session: ConsoleSession) -> Any:
        """The session's started zoomq client (made and started now if it has none)."""
        with session.lock:
            if session.closed:
                raise ConsoleError("NoSession", "this browser session has ended: reload the page", status=401)
            if session.client is None:
                client = self._factory(list(session.auth))
                try:
                    client.start(timeout=self.connect_timeout)
                except Exception as exc:  # noqa: BLE001 - said to the browser as 503
                    raise ConsoleError(
                        "Unavailable", f"cannot connect to the ensemble: {type(exc).__name__}: {exc}", status=503
                    ) from None
                session.client = client
            return session.client

    def login(self, session: ConsoleSession, scheme: str, credential: str, timeout: float) -> None:
        """Add credentials to the session's client (kept for its reconnects, and for a new client)."""
        client = self.client(session)
        try:
            client.add_auth_async(scheme, credential).get(timeout=timeout)
        except zx.AuthFailedError:
            # The client is done once the node refuses an auth: start afresh without it.
            with session.lock:
                old, session.client = session.client, None
            _stop(old)
            raise
        session.auth.append((scheme, credential))
        user = credential.split(":", 1)[0] if scheme == "digest" else ""
        identity = f"{scheme}:{user}" if user else scheme
        if identity not in session.identities:
            session.identities.append(identity)

    def end(self, session: ConsoleSession) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)
        _close(session)

    def reap(self) -> int:
        """End the sessions idle for longer than idle_s (none with a live stream open)."""
        now = time.monotonic()
        with self._lock:
            idle = [s for s in self._sessions.values() if now - s.last_used > self.idle_s and s.streams == 0]
            for s in idle:
                self._sessions.pop(s.id, None)
        for s in idle:
            _close(s)
        return len(idle)

    def close_all(self) -> None:
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for s in sessions:
            _close(s)


def _close_later(sessions: list[ConsoleSession]) -> None:
    """Close these sessions' clients on a thread of their own (the caller may be the event loop)."""
    if sessions:
        threading.Thread(target=lambda: [_close(s) for s in sessions], name="console-close", daemon=True).start()


def _close(session: ConsoleSession) -> None:
    with session.lock:
        session.closed = True
        client, session.client = session.client, None
        session.auth.clear()
    _stop(client)


def _stop(client: Any) -> None:
    if client is None:
        return
    with contextlib.suppress(Exception):
        client.stop()
    with contextlib.suppress(Exception):
        client.close()
