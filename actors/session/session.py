"""The session actor's core (pure): a node's clients and its replica of the data tree.

In:  `client_frames(rid, frames, now, gateway)` (a connection's messages, undecoded),
     `role_message(msg, now)` (Committed, LeaderUp, Looking, LearnerStats from the role actor),
     `sync_point(msg, tree, now)` (the role said where the committed stream stands, and the shell
     read the state through it from this node's disk), `tick(now)`, `not_reading(rid)`.
Out: `out` (the encoded frames for each connection, drained by the shell once per batch) and
     effects (`take_effects`: Tell "role" WriteRequest / OwnSession / Hello / Touch);
     `wants_snapshot` once snapshot_every txns were applied since the last one.
The shell owns the sockets, reads the disk at sync points, forks the snapshot writer, and knows
the process-level facts (open connections, file descriptors) the admin words report.

Rules:
- Replies leave in request order per session (`LocalSession.pending`): a read queued behind a
  write runs only when that write has been answered, so it sees it (ZooKeeper's FIFO order).
- A watch event is queued to the client before any reply that shows the new state, and only to
  sessions with READ on the node (ZooKeeper 3.8.4+, CVE-2024-23944).
- The tree changes only by Committed txns after a sync point: on (re)start, on LeaderUp, after a
  gap. Forwarded writes that a new leader never saw are answered CONNECTIONLOSS.
- In an ensemble, while the node does not serve, clients are refused (CONNECTIONLOSS), not held;
  a client that has seen a newer zxid than this node is turned away.
- A session belongs to its newest connection: a resume tells the leader (OwnSession) and is
  answered (Connected) only when the leader's OWNED marker comes back in the commit order, so a
  client whose resume completed knows that its older connection is refused from then on (as
  ZooKeeper revalidates a session with the leader before answering); what comes through a
  connection whose session moved is answered SESSIONMOVED (SESSIONEXPIRED once it is gone).
- Bad client input gets a precise error code when there is an xid to answer; nothing crashes.
- Watch history: the events of the latest cfg.watch_history_txns txns applied (with the node's
  ACL), complete after `history_from`. A persistent watch resumed from a zxid (AddWatch
  since_zxid, or SetWatches' relative_zxid after a reconnect) is sent every matching event after
  it, in order, before any newer one; from before `history_from` it gets one EVENT_RESYNC
  instead (not to ZooKeeper-protocol clients, which have no such event). The window restarts
  whenever the tree is read from disk (events of txns read there were never computed).
- Read-only mode (cfg.read_only_mode, ZooKeeper's readonlymode.enabled): while the node is cut
  off from the quorum (looking) it serves clients that connect with read_only: a new session is
  local to this node, an existing one is bound read-only; reads come from the tree as it stood,
  writes, sync and linearizable reads are NOTREADONLY, isro says "ro". When the node rejoins,
  read-only bindings are let go (the clients reconnect read-write) and local sessions end.
"""

from __future__ import annotations

import base64
import hashlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from actors.gateway import GATEWAY_RID_PREFIX
from actors.leader.prep import allowed
from actors.protocol.effects import Tell
from actors.protocol.internal import (
    AdminAnswer,
    AdminQuery,
    Committed,
    Hello,
    LeaderUp,
    LearnerStats,
    Looking,
    OpenSession,
    OwnSession,
    Reconfigured,
    SyncPoint,
    Touch,
    WriteRequest,
)
from actors.protocol.txn import OWNED_CXID, CloseSessionTxn, CreateSessionTxn, Marker, ReconfigTxn, Txn
from actors.protocol.zxid import fmt, follows
from actors.session import admin
from actors.session.reads import CONNECTION_SCHEMES, read_result
from runtime.latency import Latencies
from actors.session.tree import CONFIG, DataTree, data_size
from runtime.config import ServerEntry, membership_text
from actors.session.watches import WatchTable
from zoomq import protocol as p
from zoomq.exceptions import Codes
from zoomq.paths import validate_path
from zoomq.security import Id, Permissions

HELLO_RETRY_S = 1.0
TOUCH_EVERY_S = 0.2
MAX_HELD_FRAMES = 50_000
MAX_REMEMBERED = 10_000
PASSWD_BYTES = 16
EXPIRED = p.Connected(p.PROTOCOL_VERSION, 0, 0, bytes(PASSWD_BYTES))
SUPER = Id("super", "")
_WATCHER_TYPES = frozenset(
    {p.WATCHER_CHILDREN, p.WATCHER_DATA, p.WATCHER_ANY, p.WATCHER_PERSISTENT, p.WATCHER_PERSISTENT_RECURSIVE}
)
_TAGS: dict[type, str] = {cls: cls.__struct_config__.tag for cls in p.ClientMsg.__args__}  # type: ignore[attr-defined]
_CLIENT_TAGS = frozenset(_TAGS.values())


@dataclass(slots=True)
class Pending:
    """One request of a session waiting for its turn to be answered."""

    xid: int
    request: Any  # the client request (a read runs when it reaches the head)
    reply: bytes | None = None  # encoded reply once known
    is_write: bool = False
    then_read: bool = False  # a linearizable read: forwarded as a Sync, read when its marker comes back
    replay: tuple[str, bool, int] | None = None  # (path, recursive, since_zxid): history to send at its turn
    started: float = 0.0  # when it arrived (monotonic): its latency is measured to its answer


@dataclass(slots=True)
class LocalSession:
    session_id: int
    rid: bytes  # the ROUTER routing id of the client's current connection
    timeout_ms: int
    passwd: bytes
    auth: list[Id] = field(default_factory=list)
    pending: deque[Pending] = field(default_factory=deque)
    writes: dict[int, Pending] = field(default_factory=dict)  # xid -> forwarded write
    closing: bool = False
    conn: int = 0  # this binding's connection id: the leader answers SESSIONMOVED once another owns the session
    read_only: bool = False  # bound while the node serves read-only (see the module's rules)


class SessionCore:
    def __init__(
        self,
        *,
        cfg: Any,
        log: Any,
        now: float,
        wall_ms: int,
        random_bytes: Callable[[int], bytes],
        peer_of: Callable[[Any], str | None] = lambda frame: None,
        note_connection: Callable[[bytes, Any, bool], None] = lambda rid, frame, gateway: None,
        node_facts: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        self.cfg = cfg
        self.log = log
        self.sid = cfg.sid
        self.random_bytes = random_bytes
        self.peer_of = peer_of
        self.note_connection = note_connection
        self.node_facts = node_facts
        self.encoder = msgspec.msgpack.Encoder()
        self.client_decoder = msgspec.msgpack.Decoder(p.ClientMsg)
        self.raw_decoder = msgspec.msgpack.Decoder()
        self.tree = DataTree()
        self.loaded = False
        self.synced = False
        self.refuse_unsynced = bool(cfg.servers)  # ensemble: send clients elsewhere
        self.read_only_mode = bool(cfg.servers) and bool(getattr(cfg, "read_only_mode", False))
        self.mode = "looking" if cfg.servers else "standalone"
        self.epoch = 0
        self.held: list[tuple[bytes, list[Any], bool]] = []
        self.sessions: dict[int, LocalSession] = {}
        self.by_rid: dict[bytes, LocalSession] = {}
        self.closed_rids: dict[bytes, None] = {}
        self.moved_rids: dict[bytes, int] = {}  # connection -> the session another connection took from it
        # session id -> (rid, the connection's identities, timeout, passwd, connection id)
        self.connecting: dict[int, tuple[bytes, list[Id], int, bytes, int]] = {}
        self.resuming: dict[int, tuple[bytes, int]] = {}  # session -> (rid, conn) awaiting the leader's OWNED marker
        self.watches = WatchTable()
        # One flat tuple per txn with events: (zxid, type, path, acl, type, path, acl, ...).
        self.history: deque[tuple[Any, ...]] = deque(maxlen=max(0, getattr(cfg, "watch_history_txns", 0)))
        self.history_from = 0  # events after this zxid are all in `history`
        self.out: dict[bytes, list[bytes]] = {}
        self.touched: set[int] = set()
        self.next_touch = now + TOUCH_EVERY_S
        self.hello_due = now
        self.next_session_id = ((wall_ms << 24) & ((1 << 56) - 1)) >> 8 | (self.sid << 56)
        self.applied_since_snapshot = 0
        self.received = 0
        self.learner_stats: LearnerStats | None = None  # the leader's, when this node leads
        self._effects: list[Any] = []
        self.membership_version = 0  # the newest reconfig told to the supervisor
        self.latencies = Latencies()
        self.applied_total = 0  # txns applied from the commit stream since start (for /metrics)
        self.clock = now  # the time of the input being handled (monotonic)
        self._hello(now)

    # --- outputs ------------------------------------------------------------------------------

    def take_effects(self) -> list[Any]:
        out, self._effects = self._effects, []
        return out

    def _tell(self, msg: Any) -> None:
        self._effects.append(Tell("role", msg))

    def _send(self, rid: bytes, frame: bytes) -> None:
        out = self.out.get(rid)
        if out is None:
            self.out[rid] = [frame]
        else:
            out.append(frame)

    def _reply(self, rid: bytes, xid: int, code: int, body: Any = None) -> None:
        self._send(rid, self.encoder.encode(p.Reply(xid, self.tree.last_zxid, code, body)))

    @property
    def wants_snapshot(self) -> bool:
        return self.applied_since_snapshot >= self.cfg.snapshot_every

    def snapshot_started(self) -> None:
        self.applied_since_snapshot = 0

    # --- time ---------------------------------------------------------------------------------

    def _hello(self, now: float) -> None:
        self._tell(Hello(origin=self.sid))
        self.hello_due = now + HELLO_RETRY_S

    def next_deadline(self) -> float:
        return self.next_touch if self.synced else min(self.hello_due, self.next_touch)

    def tick(self, now: float) -> None:
        self.clock = now
        if not self.synced and now >= self.hello_due:
            self._hello(now)
        if now >= self.next_touch:
            self.next_touch = now + TOUCH_EVERY_S
            if self.touched:
                self._tell(Touch(origin=self.sid, sessions=list(self.touched)))
                self.touched = set()

    # --- the role's messages ------------------------------------------------------------------

    def role_message(self, msg: Any, now: float) -> None:
        self.clock = now
        if isinstance(msg, Committed):
            if self.synced:
                self._committed(msg.entries, now)
        elif isinstance(msg, LeaderUp):
            self.log.info("leader_up", epoch=msg.epoch, role=msg.role)
            self._fail_forwarded(Codes.CONNECTIONLOSS)
            self.synced = False
            self.mode, self.epoch = msg.role, msg.epoch
            self._hello(now)
        elif isinstance(msg, LearnerStats):
            self.learner_stats = msg
        elif isinstance(msg, AdminQuery):
            self._effects.append(Tell(msg.reply_to, AdminAnswer(msg.id, self.admin_query(msg.command))))
        elif isinstance(msg, Looking):
            self.log.info("looking")
            self._fail_forwarded(Codes.CONNECTIONLOSS)
            self.synced = False
            self.mode = "looking"
            self._disconnect_all()
        else:
            self.log.warning("unexpected_message", type=type(msg).__name__)

    @property
    def serving_read_only(self) -> bool:
        """Cut off from the quorum with read-only mode on: read-only clients are served."""
        return self.read_only_mode and not self.synced and self.mode == "looking" and self.loaded

    def needs_reload(self, snapshots_between: bool) -> bool:
        """Whether the state must be read whole (first load, or a leader's snapshot was installed
        past the tree, ZAB's SNAP) rather than caught up from the log."""
        return not self.loaded or snapshots_between

    def sync_point(self, msg: SyncPoint, tree: DataTree, now: float) -> None:
        """`tree`: the state the shell read from this node's disk through msg.zxid (or as far as
        the disk goes)."""
        self.tree = tree
        self.loaded = True
        if tree.last_zxid < msg.zxid:
            # The disk does not (yet) hold what the leader calls committed: ask again shortly.
            self.log.warning("sync_point_not_on_disk", want=fmt(msg.zxid), have=fmt(tree.last_zxid))
            self.hello_due = now + 0.05
            return
        was_synced = self.synced
        self.synced = True
        self._restart_history()
        config = tree.get(CONFIG)
        if tree.membership is not None:
            self._reconfigured(tree.membership.servers, tree.membership.version)
        elif config is not None and self.cfg.servers:
            config.data = membership_text(
                self.cfg.servers
            )  # /zookeeper/config: the membership (no reconfig yet: version 0)
        self.mode, self.epoch = msg.role, msg.epoch
        for session_id in [s for s in self.sessions if s not in tree.sessions]:
            self._drop_session(session_id)  # ended while we were away (or local to read-only mode)
        for session in [s for s in self.sessions.values() if s.read_only]:
            self._let_go(session)  # bound read-only: the client comes back read-write
        self.log.info("synced", zxid=fmt(tree.last_zxid), znodes=tree.node_count(), resync=was_synced)
        held, self.held = self.held, []
        for rid, frames, gateway in held:
            self.client_frames(rid, frames, now, gateway)

    def _disconnect_all(self) -> None:
        """Forget every connection: the clients resume their sessions where a node serves."""
        for session in self.sessions.values():
            session.pending.clear()
            session.writes.clear()
            self.watches.drop_session(session.session_id)
        self.by_rid.clear()
        self.held.clear()
        self.resuming.clear()

    def _fail_forwarded(self, code: int) -> None:
        """A new leader never saw our forwarded requests: their outcome is unknown to the client."""
        for session in self.sessions.values():
            for item in session.writes.values():
                item.reply = self.encoder.encode(p.Reply(item.xid, self.tree.last_zxid, code))
            session.writes.clear()
            self._release(session)
        for session_id, (rid, *_rest) in list(self.connecting.items()):
            del self.connecting[session_id]
            self._reply(rid, 0, code)
        for rid, _conn in self.resuming.values():
            self._reply(rid, 0, code)  # the client connects again and resumes with the new leader
        self.resuming.clear()

    # --- the commit stream --------------------------------------------------------------------

    def _committed(self, entries: list[Any], now: float) -> None:
        tree = self.tree
        for entry in entries:
            if isinstance(entry, Txn):
                if entry.zxid <= tree.last_zxid:
                    continue  # already read from disk at the sync point
                if not follows(tree.last_zxid, entry.zxid):
                    self.log.warning("commit_gap", have=fmt(tree.last_zxid), got=fmt(entry.zxid))
                    self.synced = False  # messages lost with a dead peer's connection: resynchronise
                    self._hello(now)
                    return
                body, events = tree.apply(entry)
                if events:
                    self._fire(entry.zxid, events)
                if type(entry.op) is ReconfigTxn:
                    self._reconfigured(entry.op.servers, entry.zxid)
                self._answer_txn(entry, body)
                self.applied_since_snapshot += 1
                self.applied_total += 1
            elif isinstance(entry, Marker):
                self._answer_marker(entry)

    def _reconfigured(self, servers: list[ServerEntry], version: int) -> None:
        """A membership newer than the last one told: to the supervisor (it activates it)."""
        if version > self.membership_version:
            self.membership_version = version
            if self.cfg.servers:
                self.cfg = msgspec.structs.replace(self.cfg, servers=list(servers))
            self._effects.append(Tell("supervisor", Reconfigured(servers, version)))

    def _answer_marker(self, marker: Marker) -> None:
        if marker.cxid == OWNED_CXID:
            self._owned(marker)
            return
        session = self.sessions.get(marker.session_id)
        if session is None and marker.session_id in self.connecting:
            rid = self.connecting.pop(marker.session_id)[0]  # prep refused to open the session
            self._reply(rid, 0, marker.err)
            return
        if session is None or (marker.conn and marker.conn != session.conn):
            return  # not this binding's request (the session moved: another node's connection)
        item = session.writes.pop(marker.cxid, None)
        if item is None:
            return
        if item.then_read and marker.err == Codes.OK and not marker.replay:
            item.reply = self._read(session, item.request)
        else:
            item.reply = self.encoder.encode(self._marker_reply(item.xid, marker))
        self._release(session)
        if marker.err == Codes.SESSIONMOVED and self.by_rid.get(session.rid) is session:
            del self.by_rid[session.rid]  # another connection owns the session now
            self._moved(session.rid, session.session_id)

    def _owned(self, marker: Marker) -> None:
        """The leader has the session's new owner: the resume through that connection is done."""
        pending = self.resuming.get(marker.session_id)
        if pending is None or pending[1] != marker.conn:
            return  # another node's resume, or an older one of this session
        rid = pending[0]
        del self.resuming[marker.session_id]
        session = self.by_rid.get(rid)
        if session is None or session.session_id != marker.session_id:
            return  # that connection went away meanwhile
        self._send(
            rid,
            self.encoder.encode(
                p.Connected(
                    p.PROTOCOL_VERSION,
                    session.timeout_ms,
                    session.session_id,
                    session.passwd,
                    False,
                    self.tree.last_zxid,
                    self.tree.last_cxid(session.session_id),
                )
            ),
        )

    def _marker_reply(self, xid: int, marker: Marker) -> p.Reply:
        if not marker.replay:
            return p.Reply(xid, self.tree.last_zxid, marker.err, marker.body)
        done = self.tree.recent_result(marker.session_id, marker.cxid)  # a re-sent request, already applied
        if done is None:
            self.log.error("replay_without_result", session=hex(marker.session_id), cxid=marker.cxid)
            return p.Reply(xid, self.tree.last_zxid, Codes.SYSTEMERROR)
        return p.Reply(xid, done[0], Codes.OK, done[1])

    def _answer_txn(self, txn: Txn, body: Any) -> None:
        op = txn.op
        if isinstance(op, CreateSessionTxn):
            pending = self.connecting.pop(txn.session_id, None)
            if pending is not None:
                rid, ids, timeout_ms, passwd, conn = pending
                self._bind_session(txn.session_id, rid, timeout_ms, passwd, ids, conn)
                self._send(
                    rid,
                    self.encoder.encode(
                        p.Connected(p.PROTOCOL_VERSION, timeout_ms, txn.session_id, passwd, False, txn.zxid)
                    ),
                )
            return
        session = self.sessions.get(txn.session_id)
        if session is None:
            return
        item = session.writes.pop(txn.cxid, None)
        if item is not None:
            item.reply = self.encoder.encode(
                p.Reply(item.xid, txn.zxid, Codes.OK, None if isinstance(op, CloseSessionTxn) else body)
            )
            self._release(session)
        if isinstance(op, CloseSessionTxn):
            self._drop_session(txn.session_id)

    def _fire(self, zxid: int, events: list[tuple[int, str]]) -> None:
        """Each triggered watch event to its sessions that have READ on the node."""
        tree = self.tree
        removed = tree.removed_acls
        kept: list[Any] | None = [zxid] if self.history.maxlen else None
        for event_type, path in events:
            frame = None
            node = tree.get(path)
            acl = node.acl if node is not None else removed.get(path, ())
            if kept is not None:
                kept += (event_type, path, acl)
            for session_id in self.watches.trigger(event_type, path):
                session = self.sessions.get(session_id)
                if session is None or (acl and not allowed(acl, Permissions.READ, session.auth)):
                    continue
                if frame is None:
                    frame = self.encoder.encode(p.Event(zxid, event_type, p.STATE_SYNC_CONNECTED, path))
                self._send(session.rid, frame)
        removed.clear()
        if kept is not None and len(kept) > 1:
            history = self.history
            if len(history) == history.maxlen:
                self.history_from = history[0][0]  # about to fall out: the window starts after it
            history.append(tuple(kept))  # (zxid, type, path, acl, type, path, acl, ...): ~110 bytes a txn

    def _restart_history(self) -> None:
        """Events are complete only after the tree's zxid now (txns read from disk fired none)."""
        self.history.clear()
        self.history_from = self.tree.last_zxid

    def _replay(self, session: LocalSession, path: str, recursive: bool, since_zxid: int) -> None:
        """Every event after `since_zxid` a persistent watch on `path` would have had, in order
        (or one RESYNC when the window starts later)."""
        floor = self.history_from if self.history.maxlen else self.tree.last_zxid
        if since_zxid < floor:
            if not session.rid.startswith(GATEWAY_RID_PREFIX):
                self._send(
                    session.rid,
                    self.encoder.encode(p.Event(self.tree.last_zxid, p.EVENT_RESYNC, p.STATE_SYNC_CONNECTED, path)),
                )
            return
        prefix = path.rstrip("/") + "/"
        for kept in self.history:
            zxid = kept[0]
            if zxid <= since_zxid:
                continue
            for i in range(1, len(kept), 3):
                event_type, at, acl = kept[i], kept[i + 1], kept[i + 2]
                if recursive:
                    if event_type == p.EVENT_NODE_CHILDREN_CHANGED or not (at == path or at.startswith(prefix)):
                        continue
                elif at != path:
                    continue
                if acl and not allowed(acl, Permissions.READ, session.auth):
                    continue
                self._send(session.rid, self.encoder.encode(p.Event(zxid, event_type, p.STATE_SYNC_CONNECTED, at)))

    # --- client frames ------------------------------------------------------------------------

    def client_frames(self, rid: bytes, frames: list[Any], now: float, gateway: bool = False) -> None:
        """One connection's messages (zmq frames or bytes, one message each)."""
        self.clock = now
        if not self.synced and not self.serving_read_only:
            if self.refuse_unsynced:
                self._refuse(rid, frames)
            elif len(self.held) < MAX_HELD_FRAMES:
                self.held.append((rid, frames, gateway))
            return
        for frame in frames:
            self.received += 1
            buf = frame.buffer if hasattr(frame, "buffer") else frame
            try:
                msg = self.client_decoder.decode(buf)
            except msgspec.DecodeError as exc:
                self._bad_frame(rid, bytes(buf), exc)
                continue
            self._client_msg(rid, msg, frame, gateway)

    def _refuse(self, rid: bytes, frames: list[Any]) -> None:
        """Not serving: admin commands are answered, everything else is sent away."""
        for frame in frames:
            try:
                msg = self.client_decoder.decode(frame.buffer if hasattr(frame, "buffer") else frame)
            except msgspec.DecodeError:
                continue
            if isinstance(msg, p.AdminCommand):
                self._reply(rid, msg.xid, Codes.OK, p.TextResult(self.admin(msg.command)))
            else:
                self._reply(rid, 0 if isinstance(msg, p.Connect) else msg.xid, Codes.CONNECTIONLOSS)

    def _bad_frame(self, rid: bytes, buf: bytes, exc: Exception) -> None:
        """Answer what can be answered: the xid if the frame is at least a msgpack array."""
        xid = None
        code = Codes.MARSHALLINGERROR
        try:
            raw = self.raw_decoder.decode(buf)
        except msgspec.DecodeError:
            raw = None
        if isinstance(raw, list) and len(raw) >= 2 and isinstance(raw[1], int) and -(2**31) <= raw[1] < 2**31:
            xid = raw[1]
            code = Codes.BADARGUMENTS if isinstance(raw[0], str) and raw[0] in _CLIENT_TAGS else Codes.UNIMPLEMENTED
        self.log.warning("bad_client_frame", error=str(exc)[:200], size=len(buf), xid=xid, code=code)
        if xid is not None:
            self._reply_in_order(rid, xid, code)

    def _reply_in_order(self, rid: bytes, xid: int, code: int, body: Any = None) -> None:
        """Answer at once, or in order behind the session's earlier requests."""
        reply = self.encoder.encode(p.Reply(xid, self.tree.last_zxid, code, body))
        session = self.by_rid.get(rid)
        if session is None or xid < 0:
            self._send(rid, reply)
            return
        session.pending.append(Pending(xid, None, reply))
        self._release(session)

    def _client_msg(self, rid: bytes, msg: Any, frame: Any, gateway: bool) -> None:
        if isinstance(msg, p.Connect):
            self.note_connection(rid, frame, gateway)
            ids = _connection_ids((msg.peer or None) if gateway else self.peer_of(frame), msg.x509 if gateway else "")
            self._connect(rid, msg, ids)
            return
        if isinstance(msg, p.AdminCommand):
            self._reply(rid, msg.xid, Codes.OK, p.TextResult(self.admin(msg.command)))
            return
        session = self.by_rid.get(rid)
        if session is None:
            # A connection we do not know: the session ended or moved, or this actor restarted and
            # lost track (then the client reconnects and resumes its session).
            moved = self.moved_rids.get(rid)
            if rid in self.closed_rids or (moved is not None and moved not in self.tree.sessions):
                code = Codes.SESSIONEXPIRED
            elif moved is not None:
                code = Codes.SESSIONMOVED
            else:
                code = Codes.CONNECTIONLOSS
            self._reply(rid, msg.xid, code)
            return
        if session.read_only:
            if self._refused_read_only(session, msg):
                return
        else:
            self.touched.add(session.session_id)
        if isinstance(msg, p.Ping):
            self._reply(rid, p.PING_XID, Codes.OK)
        elif isinstance(msg, p.READ_OPS):
            if getattr(msg, "linearizable", False) and validate_path(msg.path) is None:
                self._linearizable_read(session, msg)
            elif session.pending:
                session.pending.append(Pending(msg.xid, msg, started=self.clock))
            else:
                self._send(rid, self._read(session, msg))
                self.latencies.record(_TAGS[type(msg)], 0.0)
        elif isinstance(msg, p.WRITE_OPS):
            self._write(session, msg)
        elif isinstance(msg, p.Auth):
            self._auth(session, msg, gateway)
        elif isinstance(msg, p.SetWatches):
            self._set_watches(session, msg)
        elif isinstance(msg, p.AddWatch):
            self._add_watch(session, msg)
        elif isinstance(msg, (p.RemoveWatches, p.CheckWatches)):
            if msg.watcher_type not in _WATCHER_TYPES:
                code = Codes.MARSHALLINGERROR  # ZooKeeper cannot read the WatcherType either
            elif validate_path(msg.path) is not None:
                code = Codes.BADARGUMENTS
            else:
                found = (self.watches.remove if isinstance(msg, p.RemoveWatches) else self.watches.has)(
                    msg.path, session.session_id, msg.watcher_type
                )
                code = Codes.OK if found else Codes.NOWATCHER
            self._reply_in_order(rid, msg.xid, code)
        else:
            self._reply_in_order(rid, msg.xid, Codes.UNIMPLEMENTED)

    # --- sessions -----------------------------------------------------------------------------

    def _new_conn(self) -> int:
        """A connection id, unique enough to tell a session's connections apart anywhere."""
        return int.from_bytes(self.random_bytes(8), "big") >> 1 or 1

    def _refused_read_only(self, session: LocalSession, msg: Any) -> bool:
        """A read-only binding: what needs the leader is refused NOTREADONLY (a local session's
        close just ends it here)."""
        if isinstance(msg, p.Close) and session.session_id not in self.tree.sessions:
            rid = session.rid
            self._drop_session(session.session_id)
            self._reply(rid, msg.xid, Codes.OK)
            return True
        if isinstance(msg, p.WRITE_OPS) or getattr(msg, "linearizable", False):
            self._reply_in_order(session.rid, msg.xid, Codes.NOTREADONLY)
            return True
        return False

    def _let_go(self, session: LocalSession) -> None:
        """Forget a binding (not the session): the client's next request gets CONNECTIONLOSS and it
        resumes the session, on this node or another."""
        if self.by_rid.get(session.rid) is session:
            del self.by_rid[session.rid]
        session.pending.clear()
        session.writes.clear()
        session.read_only = False
        self.watches.drop_session(session.session_id)

    def _new_session(self, req: p.Connect) -> tuple[int, int, bytes]:
        """(id, negotiated timeout, password) for a session this node opens."""
        timeout = min(max(req.timeout_ms, self.cfg.min_timeout_ms), self.cfg.max_timeout_ms)
        session_id = self.next_session_id
        self.next_session_id += 1
        return session_id, timeout, self.random_bytes(PASSWD_BYTES)

    def _connect_read_only(self, rid: bytes, req: p.Connect, ids: list[Id]) -> None:
        tree = self.tree
        if not req.read_only or req.last_zxid_seen > tree.last_zxid:
            self._reply(rid, 0, Codes.CONNECTIONLOSS)  # a read-write client (or one ahead): elsewhere
            return
        if req.session_id == 0:
            session_id, timeout, passwd = self._new_session(req)
        else:
            known = tree.sessions.get(req.session_id)
            local = self.sessions.get(req.session_id)
            if known is not None and known.passwd == req.passwd:
                session_id, timeout, passwd = req.session_id, known.timeout_ms, known.passwd
            elif (
                local is not None
                and local.read_only
                and req.session_id not in tree.sessions
                and local.passwd == req.passwd
            ):
                session_id, timeout, passwd = req.session_id, local.timeout_ms, local.passwd
            else:
                self._reply(rid, 0, Codes.CONNECTIONLOSS)  # not known here: try another node
                return
        self._bind_session(session_id, rid, timeout, passwd, ids, 0)
        self.sessions[session_id].read_only = True
        self._send(
            rid,
            self.encoder.encode(
                p.Connected(
                    p.PROTOCOL_VERSION, timeout, session_id, passwd, True, tree.last_zxid, tree.last_cxid(session_id)
                )
            ),
        )

    def _connect(self, rid: bytes, req: p.Connect, ids: list[Id]) -> None:
        if self.serving_read_only:
            self._connect_read_only(rid, req, ids)
            return
        tree = self.tree
        if req.last_zxid_seen > tree.last_zxid:
            # The client has seen a newer state than this node has: it must not go back in time.
            self.log.info("client_ahead", client_zxid=fmt(req.last_zxid_seen), zxid=fmt(tree.last_zxid))
            self._reply(rid, 0, Codes.CONNECTIONLOSS)
            return
        old = self.by_rid.get(rid)
        if old is not None and old.session_id != req.session_id:
            self._send(rid, self.encoder.encode(EXPIRED))
            return
        if req.session_id == 0:
            session_id, timeout, passwd = self._new_session(req)
            conn = self._new_conn()
            self.connecting[session_id] = (rid, ids, timeout, passwd, conn)
            self._tell(
                WriteRequest(
                    self.sid, session_id, 0, OpenSession(session_id, timeout, passwd), conn=conn, epoch=self.epoch
                )
            )
            return
        info = tree.sessions.get(req.session_id)
        if info is None or info.passwd != req.passwd:
            self.log.info("session_refused", session=hex(req.session_id), known=info is not None)
            self._send(rid, self.encoder.encode(EXPIRED))
            return
        conn = self._new_conn()
        self._bind_session(req.session_id, rid, info.timeout_ms, info.passwd, ids, conn)
        self._tell(OwnSession(self.sid, req.session_id, conn, self.epoch))  # the newest connection owns it
        self.touched.add(req.session_id)
        self.resuming[req.session_id] = (rid, conn)  # answered by _owned

    def _bind_session(
        self, session_id: int, rid: bytes, timeout_ms: int, passwd: bytes, ids: list[Id], conn: int
    ) -> None:
        session = self.sessions.get(session_id)
        if session is None:
            session = LocalSession(session_id, rid, timeout_ms, passwd)
            self.sessions[session_id] = session
        else:
            # Resumed on a new connection: replies owed to the old connection are not deliverable,
            # and what still comes through it is answered SESSIONMOVED.
            if self.by_rid.pop(session.rid, None) is not None and session.rid != rid:
                self._moved(session.rid, session_id)
            session.rid = rid
            session.pending.clear()
            session.writes.clear()
            self.watches.drop_session(session_id)  # the client re-registers with SetWatches
            session.auth = [ident for ident in session.auth if ident.scheme not in CONNECTION_SCHEMES]
        session.auth[0:0] = ids  # ip, x509 and sasl identify the connection, not the session
        session.conn = conn
        session.read_only = False
        self.by_rid[rid] = session

    def not_reading(self, rid: bytes, frames: int) -> None:
        """A client whose replies pile up is let go: its session stays until it expires, and the
        client, once it reads again, reconnects and re-sends what is unanswered."""
        session = self.by_rid.pop(rid, None)
        self.log.warning("client_not_reading", dropped=frames, session=hex(session.session_id) if session else None)
        if session is not None:
            session.pending.clear()
            session.writes.clear()

    def _moved(self, rid: bytes, session_id: int) -> None:
        self.moved_rids[rid] = session_id
        if len(self.moved_rids) > MAX_REMEMBERED:
            self.moved_rids.pop(next(iter(self.moved_rids)))

    def _drop_session(self, session_id: int) -> None:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return
        if self.by_rid.get(session.rid) is session:
            del self.by_rid[session.rid]
        self.closed_rids[session.rid] = None
        if len(self.closed_rids) > MAX_REMEMBERED:
            self.closed_rids.pop(next(iter(self.closed_rids)))
        self.watches.drop_session(session_id)
        self.touched.discard(session_id)

    # --- requests -----------------------------------------------------------------------------

    def _write(self, session: LocalSession, msg: Any) -> None:
        code = self._check_write(msg)
        if code:
            self._reply_in_order(session.rid, msg.xid, code)
            return
        if session.closing:
            self._reply_in_order(session.rid, msg.xid, Codes.SESSIONEXPIRED)
            return
        if isinstance(msg, p.Close):
            session.closing = True
        item = Pending(msg.xid, msg, is_write=True, started=self.clock)
        session.pending.append(item)
        session.writes[msg.xid] = item
        self._tell(
            WriteRequest(self.sid, session.session_id, msg.xid, msg, session.auth, conn=session.conn, epoch=self.epoch)
        )

    def _linearizable_read(self, session: LocalSession, msg: Any) -> None:
        """Raft's ReadIndex on ZAB: the read goes to the leader as a Sync, which the leader puts in
        the commit order only once a quorum answered a probe sent after it (so it still led); its
        marker reaches this node after every txn committed before it, and the read then runs
        here. Nothing is logged. Linearizable: every write acknowledged before the call was
        committed before the leader decided the marker."""
        item = Pending(msg.xid, msg, is_write=True, then_read=True, started=self.clock)
        session.pending.append(item)
        session.writes[msg.xid] = item
        self._tell(
            WriteRequest(
                self.sid,
                session.session_id,
                msg.xid,
                p.Sync(msg.xid, msg.path),
                session.auth,
                conn=session.conn,
                epoch=self.epoch,
            )
        )

    def _check_write(self, msg: Any) -> int:
        """Cheap checks done here so that garbage never reaches the leader."""
        limit = self.cfg.max_data_bytes
        for op in msg.ops if isinstance(msg, p.Multi) else (msg,):
            path = getattr(op, "path", None)
            if (
                path is not None
                and validate_path(path, sequential=isinstance(op, p.Create) and op.flags in (2, 3, 6)) is not None
            ):
                return Codes.BADARGUMENTS
            data = getattr(op, "data", None)
            if data is not None and len(data) > limit:
                return Codes.BADARGUMENTS
        return 0

    def _release(self, session: LocalSession) -> None:
        """Send every answer at the head of the session's queue whose turn has come."""
        pending = session.pending
        while pending:
            head = pending[0]
            if head.replay is not None:
                self._replay(session, *head.replay)
            elif head.reply is not None:
                self._send(session.rid, head.reply)
            elif head.is_write:
                return
            else:
                self._send(session.rid, self._read(session, head.request))
            pending.popleft()
            if head.started and head.request is not None:
                self.latencies.record(_TAGS.get(type(head.request), "other"), (self.clock - head.started) * 1000.0)

    def _read(self, session: LocalSession, req: Any) -> bytes:
        err, body = read_result(
            self.tree, self.watches, session.session_id, session.auth, req, subtree_limit=self.cfg.backup_max_znodes
        )
        return self.encoder.encode(p.Reply(req.xid, self.tree.last_zxid, err, body))

    def _auth(self, session: LocalSession, msg: p.Auth, gateway: bool) -> None:
        code = Codes.OK
        if msg.scheme == "digest":
            # As ZooKeeper's DigestAuthenticationProvider: any credential is accepted; the id is
            # the part before the first ':' plus the hash of the whole credential.
            ident = Id("digest", digest_id(msg.credential.decode("utf-8", "replace")))
            if ident not in session.auth:
                session.auth.append(ident)
            if self.cfg.super_digest and ident.id == self.cfg.super_digest and SUPER not in session.auth:
                session.auth.append(SUPER)  # the configured super user: every check passes
        elif msg.scheme == "ip":
            pass  # accepted, as ZooKeeper: the ip identity is the connection's real address, already held
        elif msg.scheme == "sasl" and gateway and session.rid.startswith(GATEWAY_RID_PREFIX):
            # Only the gateway says so, after a completed SASL exchange (it refuses clients' own "sasl" auth).
            ident = Id("sasl", msg.credential.decode("utf-8", "replace"))
            if ident not in session.auth:
                session.auth.append(ident)
        else:
            code = Codes.AUTHFAILED
        self._reply(session.rid, p.AUTH_XID, code)
        if code == Codes.AUTHFAILED:
            # ZooKeeper closes the connection: later requests on it are answered CONNECTIONLOSS;
            # the session itself lives on until its timeout.
            self.by_rid.pop(session.rid, None)

    def _add_watch(self, session: LocalSession, msg: p.AddWatch) -> None:
        """A persistent (recursive) watch; the node need not exist. READ is checked where it does."""
        if validate_path(msg.path) is not None or msg.mode not in (
            p.WATCH_MODE_PERSISTENT,
            p.WATCH_MODE_PERSISTENT_RECURSIVE,
        ):
            self._reply_in_order(session.rid, msg.xid, Codes.BADARGUMENTS)
            return
        node = self.tree.get(msg.path)
        if node is not None and not allowed(node.acl, Permissions.READ, session.auth):
            self._reply_in_order(session.rid, msg.xid, Codes.NOAUTH)
            return
        recursive = msg.mode == p.WATCH_MODE_PERSISTENT_RECURSIVE
        self.watches.add_persistent(msg.path, session.session_id, recursive)
        self._reply_in_order(session.rid, msg.xid, Codes.OK)
        if msg.since_zxid >= 0:
            if session.pending:  # the reply waits behind earlier requests: replay after it, in order
                session.pending.append(Pending(msg.xid, None, replay=(msg.path, recursive, msg.since_zxid)))
            else:
                self._replay(session, msg.path, recursive, msg.since_zxid)

    def _set_watches(self, session: LocalSession, msg: p.SetWatches) -> None:
        """Re-arm watches after a reconnect, firing what changed after `relative_zxid` (setWatches)."""
        zxid = self.tree.last_zxid
        for event_type, path in plan_set_watches(self.tree, self.watches, session.session_id, msg):
            self._send(session.rid, self.encoder.encode(p.Event(zxid, event_type, p.STATE_SYNC_CONNECTED, path)))
        # Persistent watches miss nothing across a reconnect: what changed after the client's last
        # zxid comes again, in order, from the history window (ZooKeeper replays none of it).
        for path in msg.persistent:
            self._replay(session, path, False, msg.relative_zxid)
        for path in msg.persistent_recursive:
            self._replay(session, path, True, msg.relative_zxid)
        self._reply(session.rid, p.SET_WATCHES_XID, Codes.OK)

    # --- the admin words ----------------------------------------------------------------------

    def admin(self, command: str) -> str:
        return admin.answer(command, self._facts)

    def admin_query(self, command: str) -> bytes:
        """JSON for the ops actor: "json:<AdminServer command>" or "metrics" (what /metrics shows
        that the session actor knows: mntr's values, request latencies, the leader's counters)."""
        if command.startswith("json:"):
            name = command[len("json:") :]
            facts = self._facts
            if name == "watches_by_path":
                facts = self._facts_with_watches
            return msgspec.json.encode(admin.json_command(name, facts))
        if command == "metrics":
            f = self._facts()
            stats = self.learner_stats if f.mode == "leader" else None
            return msgspec.json.encode(
                {
                    "mntr": admin.json_command("monitor", lambda: f),
                    "latency": self.latencies.snapshot(),
                    "applied": self.applied_total,
                    "bus_queued": f.bus_queued,
                    "leader": {name: getattr(stats, name) for name in stats.__struct_fields__}
                    if stats is not None
                    else None,
                }
            )
        return msgspec.json.encode({"command": command, "error": f"Unknown command: {command}"})

    def _facts_with_watches(self) -> admin.AdminFacts:
        facts = self._facts()
        paths: dict[str, set[int]] = {}
        for table in (self.watches.data, self.watches.child):
            for path, sids in table.items():
                paths.setdefault(path, set()).update(sids)
        facts.watches_by_path = {path: sorted(sids) for path, sids in sorted(paths.items())}
        return facts

    def _facts(self) -> admin.AdminFacts:
        tree = self.tree
        watches = self.watches
        node = self.node_facts()
        open_rids = node.get("open_rids", ())
        return admin.AdminFacts(
            mode="read-only"
            if self.serving_read_only
            else self.mode
            if self.synced or self.mode == "standalone"
            else "looking",
            serving=self.synced,
            zxid=tree.last_zxid,
            epoch=self.epoch,
            node_count=tree.node_count(),
            watch_count=watches.count(),
            watch_paths=len(set(watches.data) | set(watches.child)),
            watching_sessions=len(
                {s for table in (watches.data, watches.child) for sids in table.values() for s in sids}
            ),
            ephemerals=sum(len(tree.ephemerals(s)) for s in tree.sessions),
            data_size=sum(len(path) + data_size(n.data) for path, n in tree.nodes.items()),
            global_sessions=len(tree.sessions),
            local_sessions=len(self.sessions),
            outstanding=sum(len(s.writes) for s in self.sessions.values()),
            received=self.received,
            sent=node.get("sent", 0),
            connections=node.get("connections", 0),
            open=[
                admin.ConnectionView(
                    next((i.id for i in s.auth if i.scheme == "ip"), "?"), len(s.pending), s.session_id, s.timeout_ms
                )
                for rid, s in self.by_rid.items()
                if rid in open_rids
            ],
            uptime_ms=node.get("uptime_ms", 0),
            open_fds=node.get("open_fds"),
            learners=self.learner_stats,
            config=self.cfg,
            environment=node.get("environment", {}),
            quotas={root: (q.limits, q.usage()) for root, q in tree.quotas.items()},
            latency=self.latencies,
            actors=node.get("actors", {}),
            bus_queued=node.get("bus_queued", {}),
        )


def plan_set_watches(tree: DataTree, watches: WatchTable, session_id: int, msg: p.SetWatches) -> list[tuple[int, str]]:
    """ZooKeeper's DataTree.setWatches: the events to fire now for what changed after the
    client's last zxid (or is gone); every other watch is armed again."""
    rel = msg.relative_zxid
    events: list[tuple[int, str]] = []
    for path in msg.data:
        node = tree.get(path)
        if node is None:
            events.append((p.EVENT_NODE_DELETED, path))
        elif node.mzxid > rel:
            events.append((p.EVENT_NODE_DATA_CHANGED, path))
        else:
            watches.add_data(path, session_id)
    for path in msg.exist:
        if tree.get(path) is not None:
            events.append((p.EVENT_NODE_CREATED, path))
        else:
            watches.add_data(path, session_id)
    for path in msg.child:
        node = tree.get(path)
        if node is None:
            events.append((p.EVENT_NODE_DELETED, path))
        elif node.pzxid > rel:
            events.append((p.EVENT_NODE_CHILDREN_CHANGED, path))
        else:
            watches.add_child(path, session_id)
    for path in msg.persistent:
        watches.add_persistent(path, session_id, recursive=False)
    for path in msg.persistent_recursive:
        watches.add_persistent(path, session_id, recursive=True)
    return events


def digest_id(credential: str) -> str:
    """ZooKeeper's digest id of `user:password` (and of any other credential text)."""
    digest = base64.b64encode(hashlib.sha1(credential.encode("utf-8")).digest()).decode()
    return credential.split(":", 1)[0] + ":" + digest


def _connection_ids(peer: str | None, x509: str) -> list[Id]:
    """What a connection itself proves: its source address (ip), its verified TLS client
    certificate (x509, ZooKeeper's X509AuthenticationProvider)."""
    ids = [Id("ip", peer)] if peer else []
    if x509:
        ids.append(Id("x509", x509))
    return ids
