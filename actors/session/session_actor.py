"""The session actor: the node's client endpoint and its replica of the data tree.

It owns the client port (a ROUTER on tcp), the connect handshake, reads (served from the local
tree), the watch table and notifications, and it applies committed txns in zxid order, answering
the client that sent each. Writes, syncs, session opens and closes go to the leader as
WriteRequests; their answers come back through the ordered commit stream.

Rules:
- Replies leave in request order per session (`LocalSession.pending`): a read queued behind a
  write runs only when that write has been answered, so it sees it (ZooKeeper's FIFO client order).
- A watch event is queued to the client before any reply that shows the new state.
- The tree is only changed by `Committed` txns after a `SyncPoint`: on (re)start, or when a new
  leader chain announces itself (`LeaderUp`), the actor asks `Hello`, gets `SyncPoint(z)` and reads
  everything through z from this node's disk (committed implies durable here), dropping stream
  entries until then. Forwarded writes that a new leader never saw are answered CONNECTIONLOSS.
- In an ensemble, while the node is not serving (no leader, or resynchronising) clients are
  refused, not held: a request is answered CONNECTIONLOSS and a connect is turned away, so that
  the client goes to a node that can serve it (ZooKeeper closes the connections). A client that
  has seen a newer zxid than this node holds is turned away too.
- Bad client input gets a precise error code when there is an xid to answer; the actor goes on.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import struct

import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import zmq
from zmq.utils.monitor import parse_monitor_message

from actors.log import snapshot as snapshots
from actors.leader.prep import allowed
from actors.log.recovery import catch_up, load_state
from actors.protocol.internal import (
    Committed,
    Hello,
    LeaderUp,
    LearnerStats,
    Looking,
    OpenSession,
    OwnSession,
    Snapshotted,
    SyncPoint,
    Touch,
    WriteRequest,
)
from actors.protocol.txn import CloseSessionTxn, CreateSessionTxn, Marker, Txn
from actors.protocol.zxid import fmt, follows
from actors.session.tree import DataTree
from actors.gateway import GATEWAY_ENDPOINT, GATEWAY_RID_PREFIX
from actors.session.watches import WatchTable
from runtime.actor import CLIENT_HWM, Actor, ipc_address, set_peer_options, source_fd
from zoomq import protocol as p
from zoomq.exceptions import Codes
from zoomq.paths import validate_path
from zoomq.security import ACL, Id, Permissions

HELLO_RETRY_S = 1.0
TOUCH_EVERY_S = 0.2
MAX_HELD_FRAMES = 50_000
MAX_CLOSED_REMEMBERED = 10_000
PASSWD_BYTES = 16
EXPIRED = p.Connected(p.PROTOCOL_VERSION, 0, 0, bytes(PASSWD_BYTES))


@dataclass(slots=True)
class Pending:
    """One request of a session waiting for its turn to be answered."""

    xid: int
    request: Any  # the client request (a read runs when it reaches the head)
    reply: bytes | None = None  # encoded reply once known
    is_write: bool = False


@dataclass(slots=True)
class LocalSession:
    session_id: int
    rid: bytes  # current ROUTER routing id of the client's connection
    timeout_ms: int
    passwd: bytes
    auth: list[Id] = field(default_factory=list)
    pending: deque[Pending] = field(default_factory=deque)
    writes: dict[int, Pending] = field(default_factory=dict)  # xid -> forwarded write
    closing: bool = False
    conn: int = 0  # this binding's connection id: the leader answers SESSIONMOVED once another owns the session


class SessionActor(Actor):
    name = "session"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client_decoder = msgspec.msgpack.Decoder(p.ClientMsg)
        self.raw_decoder = msgspec.msgpack.Decoder()
        self.router = self.ctx.socket(zmq.ROUTER)
        set_peer_options(self.router, CLIENT_HWM)
        self.router.setsockopt(zmq.MAXMSGSIZE, 2 * self.cfg.max_data_bytes + (1 << 20))
        self.secure_bind(self.router, f"tcp://{self.cfg.client_host}:{self.cfg.client_port}", "clients")
        self.add_socket(self.router, self._on_native_frames)
        # Open connections, as srvr/cons/mntr count them: the routers' accepted minus closed
        # file descriptors (a ROUTER says nothing of disconnects; its monitor does).
        self.open_fds: dict[bool, set[int]] = {False: set(), True: set()}  # by "through the gateway"
        self.rid_fd: dict[bytes, tuple[bool, int]] = {}  # a session's connection -> its fd
        self._monitor(self.router, gateway=False)
        self.gateway_router: zmq.Socket | None = None
        if self.cfg.gateway_on:
            # The ZooKeeper-protocol gateway's connections, over ipc: same handling, own socket
            # (its routing ids start with GATEWAY_RID_PREFIX; the client port refuses those).
            self.gateway_router = self.ctx.socket(zmq.ROUTER)
            set_peer_options(self.gateway_router, CLIENT_HWM)
            self.gateway_router.setsockopt(zmq.MAXMSGSIZE, 2 * self.cfg.max_data_bytes + (1 << 20))
            self.gateway_router.bind(ipc_address(self.run_dir, GATEWAY_ENDPOINT))
            self.add_socket(self.gateway_router, self._on_client_frames)
            self._monitor(self.gateway_router, gateway=True)

    def _monitor(self, router: zmq.Socket, gateway: bool) -> None:
        monitor = router.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self.add_socket(monitor, functools.partial(self._on_monitor, gateway), copy=True)

    def _on_monitor(self, gateway: bool, frames: list[bytes], now: float) -> None:
        try:
            event = parse_monitor_message(frames)
        except (ValueError, struct.error):
            return
        fds = self.open_fds[gateway]
        if event["event"] == zmq.EVENT_ACCEPTED:
            fds.add(event["value"])
        elif event["event"] == zmq.EVENT_DISCONNECTED:
            fds.discard(event["value"])
            gone = (gateway, event["value"])
            for rid in [r for r, at in self.rid_fd.items() if at == gone]:
                del self.rid_fd[rid]

    def _open_sessions(self) -> list[LocalSession]:
        """Sessions whose client connection is open."""
        return [s for rid, s in self.by_rid.items() if rid in self.rid_fd]

    def _connections(self) -> int:
        return len(self.open_fds[False]) + len(self.open_fds[True])

    # --- lifecycle --------------------------------------------------------------------------------

    def on_start(self, now: float) -> None:
        self.sid = self.cfg.sid
        self.dir = Path(self.cfg.data_dir) / "version-1"
        self.tree = DataTree()
        self.loaded = False
        self.synced = False
        self.refuse_unsynced = bool(self.cfg.servers)  # ensemble: send clients elsewhere
        self.mode = "looking" if self.cfg.servers else "standalone"
        self.epoch = 0
        self.held: list[list[Any]] = []
        self.sessions: dict[int, LocalSession] = {}
        self.by_rid: dict[bytes, LocalSession] = {}
        self.closed_rids: dict[bytes, None] = {}
        self.moved_rids: dict[bytes, int] = {}  # connection -> the session another connection took from it
        # session id -> (rid, the connection's identities, timeout, passwd, connection id)
        self.connecting: dict[int, tuple[bytes, list[Id], int, bytes, int]] = {}
        self.watches = WatchTable()
        self.out: dict[bytes, list[bytes]] = {}
        self.touched: set[int] = set()
        self.next_touch = now + TOUCH_EVERY_S
        self.hello_due = now
        self.next_session_id = ((int(time.time() * 1000) << 24) & ((1 << 56) - 1)) >> 8 | (self.sid << 56)
        self.applied_since_snapshot = 0
        self.snapshot_child: tuple[int, int] | None = None  # (pid, zxid)
        self.stats = {"received": 0, "sent": 0, "started": time.time()}
        self.learner_stats: LearnerStats | None = None  # the leader's, when this node leads
        self._send_hello(now)

    def _send_hello(self, now: float) -> None:
        self.tell("role", Hello(origin=self.sid))
        self.hello_due = now + HELLO_RETRY_S

    def next_deadline(self) -> float | None:
        if not self.synced:
            return min(self.hello_due, self.next_touch)
        return self.next_touch

    def on_timer(self, now: float) -> None:
        if not self.synced and now >= self.hello_due:
            self._send_hello(now)
        if now >= self.next_touch:
            self.next_touch = now + TOUCH_EVERY_S
            if self.touched:
                self.tell("role", Touch(origin=self.sid, sessions=list(self.touched)))
                self.touched = set()
            self._reap_snapshot_child()

    def on_batch_end(self, now: float) -> None:
        if self.out:
            router = self.router
            gateway = self.gateway_router
            for rid, frames in self.out.items():
                try:
                    sock = gateway if gateway is not None and rid.startswith(GATEWAY_RID_PREFIX) else router
                    sock.send_multipart([rid, *frames], flags=zmq.NOBLOCK)
                except zmq.ZMQError as exc:
                    if exc.errno == zmq.EAGAIN:
                        self._not_reading(rid, len(frames))
                    continue  # EHOSTUNREACH: the connection is gone
                self.stats["sent"] += len(frames)
            self.out = {}

    def on_stop(self) -> None:
        self._reap_snapshot_child(block=True)

    # --- internal messages ------------------------------------------------------------------------

    def on_message(self, msg: Any, now: float) -> None:
        if isinstance(msg, Committed):
            if self.synced:
                self._on_committed(msg.entries)
        elif isinstance(msg, SyncPoint):
            self._on_sync_point(msg, now)
        elif isinstance(msg, LeaderUp):
            self.log.info("leader_up", epoch=msg.epoch, role=msg.role)
            self._fail_forwarded(Codes.CONNECTIONLOSS)
            self.synced = False
            self.mode, self.epoch = msg.role, msg.epoch
            self._send_hello(now)
        elif isinstance(msg, LearnerStats):
            self.learner_stats = msg
        elif isinstance(msg, Looking):
            self.log.info("looking")
            self._fail_forwarded(Codes.CONNECTIONLOSS)
            self.synced = False
            self.mode = "looking"
            self._disconnect_all()
        else:
            self.log.warning("unexpected_message", type=type(msg).__name__)

    def _on_sync_point(self, msg: SyncPoint, now: float) -> None:
        snaps = [z for z, _ in snapshots.list_snapshots(self.dir) if self.tree.last_zxid < z <= msg.zxid]
        if not self.loaded or snaps:
            # First load, or a leader's snapshot was installed past our tree (ZAB's SNAP): the
            # log no longer continues from where the tree stands, so start from the snapshot.
            self.tree = load_state(self.dir, upto=msg.zxid, log=self.log)
            self.loaded = True
        elif msg.zxid > self.tree.last_zxid:
            catch_up(self.tree, self.dir, msg.zxid, self.log)
        if self.tree.last_zxid < msg.zxid:
            # The disk does not (yet) hold what the leader calls committed: ask again shortly.
            self.log.warning("sync_point_not_on_disk", want=fmt(msg.zxid), have=fmt(self.tree.last_zxid))
            self.hello_due = now + 0.05
            return
        was_synced = self.synced
        self.synced = True
        self.mode, self.epoch = msg.role, msg.epoch
        # Sessions that ended while we were away take their local state with them.
        for session_id in [s for s in self.sessions if s not in self.tree.sessions]:
            self._drop_session(session_id)
        self.log.info("synced", zxid=fmt(self.tree.last_zxid), znodes=self.tree.node_count(), resync=was_synced)
        held, self.held = self.held, []
        for frames in held:
            self._on_client_frames(frames, now)

    def _disconnect_all(self) -> None:
        """Forget every connection: their next request is answered CONNECTIONLOSS, and the
        clients resume their sessions on a node that serves (or here, later)."""
        for session in self.sessions.values():
            session.pending.clear()
            session.writes.clear()
            self.watches.drop_session(session.session_id)
        self.by_rid.clear()
        self.held.clear()

    def _fail_forwarded(self, code: int) -> None:
        """A new leader never saw our forwarded requests: their outcome is unknown to the client."""
        for session in self.sessions.values():
            for item in session.writes.values():
                item.reply = self.encoder.encode(p.Reply(item.xid, self.tree.last_zxid, code))
            session.writes.clear()
            self._release(session)
        for session_id, (rid, _ids, _t, _pw, _conn) in list(self.connecting.items()):
            del self.connecting[session_id]
            self._send(rid, self.encoder.encode(p.Reply(0, self.tree.last_zxid, code)))

    # --- the commit stream ------------------------------------------------------------------------

    def _on_committed(self, entries: list[Any]) -> None:
        tree = self.tree
        for entry in entries:
            if isinstance(entry, Txn):
                if entry.zxid <= tree.last_zxid:
                    continue  # already read from disk at the sync point
                if not follows(tree.last_zxid, entry.zxid):
                    # A gap (messages lost with a dead peer's connection): resynchronise from disk.
                    self.log.warning("commit_gap", have=fmt(tree.last_zxid), got=fmt(entry.zxid))
                    self.synced = False
                    self._send_hello(time.monotonic())
                    return
                body, events = tree.apply(entry)
                if events:
                    self._fire(entry.zxid, events)
                self._answer_txn(entry, body)
                self.applied_since_snapshot += 1
            elif isinstance(entry, Marker):
                session = self.sessions.get(entry.session_id)
                if session is None and entry.session_id in self.connecting:
                    # prep refused to open the session (bad timeout, duplicate id): say so.
                    rid = self.connecting.pop(entry.session_id)[0]
                    self._send(rid, self.encoder.encode(p.Reply(0, tree.last_zxid, entry.err)))
                elif session is not None:
                    item = session.writes.pop(entry.cxid, None)
                    if item is not None:
                        item.reply = self.encoder.encode(self._marker_reply(item.xid, entry))
                        self._release(session)
                        if entry.err == Codes.SESSIONMOVED and self.by_rid.get(session.rid) is session:
                            # Another connection owns the session now: this one is done with it.
                            del self.by_rid[session.rid]
                            self._moved(session.rid, session.session_id)
        if self.applied_since_snapshot >= self.cfg.snapshot_every:
            self._take_snapshot()

    def _marker_reply(self, xid: int, marker: Marker) -> p.Reply:
        if not marker.replay:
            return p.Reply(xid, self.tree.last_zxid, marker.err, marker.body)
        # A re-sent request the leader found already applied: the original result, once more.
        done = self.tree.recent_result(marker.session_id, marker.cxid)
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
                self._send(rid, self.encoder.encode(p.Connected(p.PROTOCOL_VERSION, timeout_ms, txn.session_id, passwd, False, txn.zxid)))
            return
        session = self.sessions.get(txn.session_id)
        if isinstance(op, CloseSessionTxn):
            if session is not None:
                item = session.writes.pop(txn.cxid, None)
                if item is not None:
                    item.reply = self.encoder.encode(p.Reply(item.xid, txn.zxid, Codes.OK))
                    self._release(session)
                self._drop_session(txn.session_id)
            return
        if session is None:
            return
        item = session.writes.pop(txn.cxid, None)
        if item is not None:
            item.reply = self.encoder.encode(p.Reply(item.xid, txn.zxid, Codes.OK, body))
            self._release(session)

    def _fire(self, zxid: int, events: list[tuple[int, str]]) -> None:
        """Send each triggered watch event to its sessions — only to those with READ on the node
        (as ZooKeeper 3.8.4+, CVE-2024-23944: an event must not reveal a node one cannot read)."""
        tree = self.tree
        removed = tree.removed_acls
        for event_type, path in events:
            frame = None
            node = tree.get(path)
            acl = node.acl if node is not None else removed.get(path, ())
            for session_id in self.watches.trigger(event_type, path):
                session = self.sessions.get(session_id)
                if session is None or (acl and not allowed(acl, Permissions.READ, session.auth)):
                    continue
                if frame is None:
                    frame = self.encoder.encode(p.Event(zxid, event_type, p.STATE_SYNC_CONNECTED, path))
                self._send(session.rid, frame)
        removed.clear()

    # --- client frames ----------------------------------------------------------------------------

    def _send(self, rid: bytes, frame: bytes) -> None:
        out = self.out.get(rid)
        if out is None:
            self.out[rid] = [frame]
        else:
            out.append(frame)

    def _on_native_frames(self, frames: list[Any], now: float) -> None:
        rid = frames[0] if isinstance(frames[0], bytes) else frames[0].bytes
        if rid.startswith(GATEWAY_RID_PREFIX):
            return  # a client posing as the gateway (to choose its ip identity): ignored
        self._on_client_frames(frames, now)

    def _on_client_frames(self, frames: list[Any], now: float) -> None:
        if not self.synced:
            if self.refuse_unsynced:
                self._refuse(frames)
            elif len(self.held) < MAX_HELD_FRAMES:
                self.held.append([frames[0].bytes, *frames[1:]])
            return
        rid = frames[0] if isinstance(frames[0], bytes) else frames[0].bytes
        for frame in frames[1:]:
            self.stats["received"] += 1
            buf = frame.buffer if hasattr(frame, "buffer") else frame
            try:
                msg = self.client_decoder.decode(buf)
            except msgspec.DecodeError as exc:
                self._on_bad_frame(rid, bytes(buf), exc)
                continue
            self._on_client_msg(rid, msg, frame)

    def _refuse(self, frames: list[Any]) -> None:
        """Not serving: admin commands are answered, everything else is sent away."""
        rid = frames[0] if isinstance(frames[0], bytes) else frames[0].bytes
        for frame in frames[1:]:
            buf = frame.buffer if hasattr(frame, "buffer") else frame
            try:
                msg = self.client_decoder.decode(buf)
            except msgspec.DecodeError:
                continue
            if isinstance(msg, p.AdminCommand):
                self._send(rid, self.encoder.encode(p.Reply(msg.xid, self.tree.last_zxid, Codes.OK, p.TextResult(self._admin(msg.command)))))
            else:
                xid = 0 if isinstance(msg, p.Connect) else msg.xid
                self._send(rid, self.encoder.encode(p.Reply(xid, self.tree.last_zxid, Codes.CONNECTIONLOSS)))

    def _on_bad_frame(self, rid: bytes, buf: bytes, exc: Exception) -> None:
        """Answer what can be answered: the xid if the frame is at least a msgpack array."""
        xid = None
        code = Codes.MARSHALLINGERROR
        try:
            raw = self.raw_decoder.decode(buf)
        except msgspec.DecodeError:
            raw = None
        if isinstance(raw, list) and len(raw) >= 2 and isinstance(raw[1], int) and -(2**31) <= raw[1] < 2**31:
            xid = raw[1]
            known = isinstance(raw[0], str) and raw[0] in _CLIENT_TAGS
            code = Codes.BADARGUMENTS if known else Codes.UNIMPLEMENTED
        self.log.warning("bad_client_frame", error=str(exc)[:200], size=len(buf), xid=xid, code=code)
        if xid is not None:
            self._reply_now(rid, xid, code)

    def _reply_now(self, rid: bytes, xid: int, code: int, body: Any = None) -> None:
        """Answer at once, or in order behind the session's earlier requests."""
        reply = self.encoder.encode(p.Reply(xid, self.tree.last_zxid, code, body))
        session = self.by_rid.get(rid)
        if session is None or xid < 0:
            self._send(rid, reply)
            return
        session.pending.append(Pending(xid, None, reply))
        self._release(session)

    def _on_client_msg(self, rid: bytes, msg: Any, frame: Any) -> None:
        if isinstance(msg, p.Connect):
            gateway = self.gateway_router is not None and rid.startswith(GATEWAY_RID_PREFIX)
            fd = source_fd(frame)
            if fd is not None and len(self.rid_fd) < MAX_CLOSED_REMEMBERED + len(self.sessions):
                self.rid_fd[rid] = (gateway, fd)
            ids = _connection_ids((msg.peer or None) if gateway else _peer_address(frame), msg.x509 if gateway else "")
            self._on_connect(rid, msg, ids)
            return
        if isinstance(msg, p.AdminCommand):
            self._send(rid, self.encoder.encode(p.Reply(msg.xid, self.tree.last_zxid, Codes.OK, p.TextResult(self._admin(msg.command)))))
            return
        session = self.by_rid.get(rid)
        if session is None:
            # A connection we do not know: the session ended, or this actor restarted and lost track
            # (then the client reconnects and resumes its session).
            moved = self.moved_rids.get(rid)
            if rid in self.closed_rids or (moved is not None and moved not in self.tree.sessions):
                code = Codes.SESSIONEXPIRED  # the session ended (closed, perhaps by whoever took it)
            elif moved is not None:
                code = Codes.SESSIONMOVED  # another connection owns the session now
            else:
                code = Codes.CONNECTIONLOSS
            self._send(rid, self.encoder.encode(p.Reply(msg.xid, self.tree.last_zxid, code)))
            return
        self.touched.add(session.session_id)
        if isinstance(msg, p.Ping):
            self._send(rid, self.encoder.encode(p.Reply(p.PING_XID, self.tree.last_zxid, Codes.OK)))
        elif isinstance(msg, p.READ_OPS):
            if session.pending:
                session.pending.append(Pending(msg.xid, msg))
            else:
                self._send(rid, self._read(session, msg))
        elif isinstance(msg, p.WRITE_OPS):
            self._on_write(session, msg)
        elif isinstance(msg, p.Auth):
            self._on_auth(session, msg, frame)
        elif isinstance(msg, p.SetWatches):
            self._on_set_watches(session, msg)
        elif isinstance(msg, p.AddWatch):
            self._on_add_watch(session, msg)
        elif isinstance(msg, (p.RemoveWatches, p.CheckWatches)):
            if msg.watcher_type not in _WATCHER_TYPES:
                code = Codes.MARSHALLINGERROR  # ZooKeeper cannot read the WatcherType either
            elif validate_path(msg.path) is not None:
                code = Codes.BADARGUMENTS
            else:
                found = (self.watches.remove if isinstance(msg, p.RemoveWatches) else self.watches.has)(
                    msg.path, session.session_id, msg.watcher_type)
                code = Codes.OK if found else Codes.NOWATCHER
            self._reply_now(rid, msg.xid, code)
        else:
            self._reply_now(rid, msg.xid, Codes.UNIMPLEMENTED)

    def _on_connect(self, rid: bytes, req: p.Connect, ids: list[Id]) -> None:
        if req.last_zxid_seen > self.tree.last_zxid:
            # The client has seen a newer state than this node has: it must not go back in time.
            self.log.info("client_ahead", client_zxid=fmt(req.last_zxid_seen), zxid=fmt(self.tree.last_zxid))
            self._send(rid, self.encoder.encode(p.Reply(0, self.tree.last_zxid, Codes.CONNECTIONLOSS)))
            return
        old = self.by_rid.get(rid)
        if old is not None and old.session_id != req.session_id:
            self._send(rid, self.encoder.encode(EXPIRED))
            return
        if req.session_id == 0:
            timeout = min(max(req.timeout_ms, self.cfg.min_timeout_ms), self.cfg.max_timeout_ms)
            session_id = self.next_session_id
            self.next_session_id += 1
            passwd = os.urandom(PASSWD_BYTES)
            conn = _new_conn()
            self.connecting[session_id] = (rid, ids, timeout, passwd, conn)
            self.tell("role", WriteRequest(self.sid, session_id, 0, OpenSession(session_id, timeout, passwd), conn=conn))
            return
        info = self.tree.sessions.get(req.session_id)
        if info is None or info.passwd != req.passwd:
            self.log.info("session_refused", session=hex(req.session_id), known=info is not None)
            self._send(rid, self.encoder.encode(EXPIRED))
            return
        conn = _new_conn()
        self._bind_session(req.session_id, rid, info.timeout_ms, info.passwd, ids, conn)
        self.tell("role", OwnSession(self.sid, req.session_id, conn))  # the newest connection owns it
        self.touched.add(req.session_id)
        last_cxid = self.tree.last_cxid(req.session_id)
        self._send(rid, self.encoder.encode(p.Connected(p.PROTOCOL_VERSION, info.timeout_ms, req.session_id, info.passwd, False, self.tree.last_zxid, last_cxid)))

    def _bind_session(self, session_id: int, rid: bytes, timeout_ms: int, passwd: bytes, ids: list[Id], conn: int) -> None:
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
            session.auth = [ident for ident in session.auth if ident.scheme not in _CONNECTION_SCHEMES]
        session.auth[0:0] = ids  # the ip (and x509) schemes authenticate the connection, not the session
        session.conn = conn
        self.by_rid[rid] = session

    def _not_reading(self, rid: bytes, frames: int) -> None:
        """A client whose replies pile up (CLIENT_HWM) is let go: its session stays until it
        expires, and the client, once it reads again, reconnects and re-sends what is unanswered."""
        session = self.by_rid.pop(rid, None)
        self.log.warning("client_not_reading", dropped=frames, session=hex(session.session_id) if session else None)
        if session is not None:
            session.pending.clear()
            session.writes.clear()

    def _moved(self, rid: bytes, session_id: int) -> None:
        self.moved_rids[rid] = session_id
        if len(self.moved_rids) > MAX_CLOSED_REMEMBERED:
            self.moved_rids.pop(next(iter(self.moved_rids)))

    def _drop_session(self, session_id: int) -> None:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return
        if self.by_rid.get(session.rid) is session:
            del self.by_rid[session.rid]
        self.closed_rids[session.rid] = None
        if len(self.closed_rids) > MAX_CLOSED_REMEMBERED:
            self.closed_rids.pop(next(iter(self.closed_rids)))
        self.watches.drop_session(session_id)
        self.touched.discard(session_id)

    # --- writes -----------------------------------------------------------------------------------

    def _on_write(self, session: LocalSession, msg: Any) -> None:
        code = self._check_write(msg)
        if code:
            self._reply_now(session.rid, msg.xid, code)
            return
        if session.closing:
            self._reply_now(session.rid, msg.xid, Codes.SESSIONEXPIRED)
            return
        if isinstance(msg, p.Close):
            session.closing = True
        item = Pending(msg.xid, msg, is_write=True)
        session.pending.append(item)
        session.writes[msg.xid] = item
        self.tell("role", WriteRequest(self.sid, session.session_id, msg.xid, msg, session.auth, conn=session.conn))

    def _check_write(self, msg: Any) -> int:
        """Cheap checks done here so that garbage never reaches the leader."""
        ops = msg.ops if isinstance(msg, p.Multi) else (msg,)
        limit = self.cfg.max_data_bytes
        for op in ops:
            path = getattr(op, "path", None)
            if path is not None:
                sequential = isinstance(op, p.Create) and op.flags in (2, 3, 6)
                if validate_path(path, sequential=sequential) is not None:
                    return Codes.BADARGUMENTS
            data = getattr(op, "data", None)
            if data is not None and len(data) > limit:
                return Codes.BADARGUMENTS
        return 0

    # --- reads ------------------------------------------------------------------------------------

    def _release(self, session: LocalSession) -> None:
        """Send every answer at the head of the session's queue whose turn has come."""
        pending = session.pending
        while pending:
            head = pending[0]
            if head.reply is not None:
                self._send(session.rid, head.reply)
            elif head.is_write:
                return
            else:
                self._send(session.rid, self._read(session, head.request))
            pending.popleft()

    def _read(self, session: LocalSession, req: Any) -> bytes:
        err, body = self._read_result(session, req)
        return self.encoder.encode(p.Reply(req.xid, self.tree.last_zxid, err, body))

    def _read_result(self, session: LocalSession, req: Any) -> tuple[int, Any]:
        """(error code, reply body) of a read, from this node's tree."""
        tree = self.tree
        if isinstance(req, p.WhoAmI):  # ZooKeeper lists what was added by auth before the connection's own
            ids = sorted(session.auth, key=lambda ident: ident.scheme in _CONNECTION_SCHEMES)
            return Codes.OK, p.WhoAmIResult([_identity(ident) for ident in ids])
        if isinstance(req, p.MultiRead):
            results = []
            for op in req.ops:  # as many as one frame holds
                err, body = self._read_result(session, op) if isinstance(op, (p.GetData, p.GetChildren)) else (Codes.BADARGUMENTS, None)
                results.append(p.ReadResult(err, body))
            return Codes.OK, p.MultiReadResult(results)
        path = req.path if not isinstance(req, p.GetEphemerals) else req.prefix
        if validate_path(path) is not None:
            return Codes.BADARGUMENTS, None
        if isinstance(req, p.GetEphemerals):
            return Codes.OK, p.NamesResult([e for e in tree.ephemerals(session.session_id) if e.startswith(path)])
        node = tree.get(path)
        if node is not None and not self._may_read(session, node, req):
            return Codes.NOAUTH, None
        if isinstance(req, p.GetData):
            if node is None:
                return Codes.NONODE, None
            if req.watch:
                self.watches.add_data(path, session.session_id)
            return Codes.OK, p.DataResult(node.data, tree.stat(node))
        if isinstance(req, p.Exists):
            if req.watch:
                self.watches.add_data(path, session.session_id)
            if node is None:
                return Codes.NONODE, None
            return Codes.OK, p.StatResult(tree.stat(node))
        if node is None:
            return Codes.NONODE, None
        if isinstance(req, p.GetChildren):
            if req.watch:
                self.watches.add_child(path, session.session_id)
            stat = tree.stat(node) if req.include_stat else None
            return Codes.OK, p.ChildrenResult(list(node.children), stat)
        if isinstance(req, p.GetACL):
            acl = node.acl
            if not allowed(acl, Permissions.ADMIN, session.auth):
                acl = [_masked(entry) for entry in acl]  # ZooKeeper 3.8: digests only for ADMIN
            return Codes.OK, p.ACLResult(acl, tree.stat(node))
        # GetAllChildrenNumber
        return Codes.OK, p.CountResult(tree.count_descendants(path))

    def _may_read(self, session: LocalSession, node: Any, req: Any) -> bool:
        """ACL check for reads, as ZooKeeper 3.8 does it: READ (getACL: READ or ADMIN)."""
        if allowed(node.acl, Permissions.READ, session.auth):
            return True
        return isinstance(req, p.GetACL) and allowed(node.acl, Permissions.ADMIN, session.auth)

    # --- session-level requests -------------------------------------------------------------------

    def _on_auth(self, session: LocalSession, msg: p.Auth, frame: Any) -> None:
        code = Codes.OK
        if msg.scheme == "digest":
            # As ZooKeeper's DigestAuthenticationProvider: any credential is accepted; the id is
            # the part before the first ':' plus the hash of the whole credential.
            credential = msg.credential.decode("utf-8", "replace")
            ident = Id("digest", _digest_id(credential))
            if ident not in session.auth:
                session.auth.append(ident)
            if self.cfg.super_digest and ident.id == self.cfg.super_digest and SUPER not in session.auth:
                session.auth.append(SUPER)  # the configured super user: every check passes
        elif msg.scheme == "ip":
            pass  # accepted, as ZooKeeper: the ip identity is the connection's real address, already held
        elif msg.scheme == "sasl" and self.gateway_router is not None and session.rid.startswith(GATEWAY_RID_PREFIX):
            # Only the gateway says so, after a completed SASL exchange (it refuses clients' own "sasl" auth).
            ident = Id("sasl", msg.credential.decode("utf-8", "replace"))
            if ident not in session.auth:
                session.auth.append(ident)
        else:
            code = Codes.AUTHFAILED
        self._send(session.rid, self.encoder.encode(p.Reply(p.AUTH_XID, self.tree.last_zxid, code)))
        if code == Codes.AUTHFAILED:
            # ZooKeeper closes the connection: later requests on it are answered CONNECTIONLOSS;
            # the session itself lives on until its timeout.
            self.by_rid.pop(session.rid, None)

    def _on_add_watch(self, session: LocalSession, msg: p.AddWatch) -> None:
        """A persistent (recursive) watch; like ZooKeeper, the node need not exist. READ is
        checked where it does."""
        if validate_path(msg.path) is not None or msg.mode not in (p.WATCH_MODE_PERSISTENT, p.WATCH_MODE_PERSISTENT_RECURSIVE):
            self._reply_now(session.rid, msg.xid, Codes.BADARGUMENTS)
            return
        node = self.tree.get(msg.path)
        if node is not None and not allowed(node.acl, Permissions.READ, session.auth):
            self._reply_now(session.rid, msg.xid, Codes.NOAUTH)
            return
        self.watches.add_persistent(msg.path, session.session_id, msg.mode == p.WATCH_MODE_PERSISTENT_RECURSIVE)
        self._reply_now(session.rid, msg.xid, Codes.OK)

    def _on_set_watches(self, session: LocalSession, msg: p.SetWatches) -> None:
        """Re-arm watches after a reconnect, firing what changed after `relative_zxid` (setWatches)."""
        tree = self.tree
        zxid = tree.last_zxid
        rel = msg.relative_zxid
        events: list[tuple[int, str]] = []
        sid = session.session_id
        for path in msg.data:
            node = tree.get(path)
            if node is None:
                events.append((p.EVENT_NODE_DELETED, path))
            elif node.mzxid > rel:
                events.append((p.EVENT_NODE_DATA_CHANGED, path))
            else:
                self.watches.add_data(path, sid)
        for path in msg.exist:
            if tree.get(path) is not None:
                events.append((p.EVENT_NODE_CREATED, path))
            else:
                self.watches.add_data(path, sid)
        for path in msg.child:
            node = tree.get(path)
            if node is None:
                events.append((p.EVENT_NODE_DELETED, path))
            elif node.pzxid > rel:
                events.append((p.EVENT_NODE_CHILDREN_CHANGED, path))
            else:
                self.watches.add_child(path, sid)
        for path in msg.persistent:
            self.watches.add_persistent(path, sid, recursive=False)
        for path in msg.persistent_recursive:
            self.watches.add_persistent(path, sid, recursive=True)
        for event_type, path in events:
            self._send(session.rid, self.encoder.encode(p.Event(zxid, event_type, p.STATE_SYNC_CONNECTED, path)))
        self._send(session.rid, self.encoder.encode(p.Reply(p.SET_WATCHES_XID, zxid, Codes.OK)))

    def _admin(self, command: str) -> str:
        """ZooKeeper's four-letter words, with its field names (dashboards parse them)."""
        command = command.strip().lower()
        handler = _ADMIN.get(command)
        if handler is None:
            return f"{command} is not executed because it is not a known command ({', '.join(sorted(_ADMIN))})\n"
        return handler(self)

    def _mode(self) -> str:
        return self.mode if self.synced or self.mode == "standalone" else "looking"

    def _admin_ruok(self) -> str:
        return "imok"

    def _admin_isro(self) -> str:
        return "rw" if self.synced else "null"

    def _admin_srvr(self) -> str:
        tree = self.tree
        return (
            f"Zookeeper version: {VERSION}\nLatency min/avg/max: 0/0.0/0\nReceived: {self.stats['received']}\n"
            f"Sent: {self.stats['sent']}\nConnections: {self._connections()}\nOutstanding: {self._outstanding()}\n"
            f"Zxid: {hex(tree.last_zxid)}\nMode: {self._mode()}\nNode count: {tree.node_count()}\n"
        )

    def _admin_stat(self) -> str:
        clients = "".join(f" /{self._peer(s)}[1](queued={len(s.pending)},sid={hex(s.session_id)})\n" for s in self._open_sessions())
        return f"Zookeeper version: {VERSION}\nClients:\n{clients}\n" + self._admin_srvr().split("\n", 1)[1]

    def _admin_mntr(self) -> str:
        tree = self.tree
        lines: dict[str, Any] = {
            "zk_version": VERSION,
            "zk_server_state": self._mode(),
            "zk_avg_latency": 0,
            "zk_max_latency": 0,
            "zk_min_latency": 0,
            "zk_packets_received": self.stats["received"],
            "zk_packets_sent": self.stats["sent"],
            "zk_num_alive_connections": self._connections(),
            "zk_outstanding_requests": self._outstanding(),
            "zk_znode_count": tree.node_count(),
            "zk_watch_count": self.watches.count(),
            "zk_ephemerals_count": sum(len(tree.ephemerals(s)) for s in tree.sessions),
            "zk_approximate_data_size": sum(len(path) + len(n.data or b"") for path, n in tree.nodes.items()),
            "zk_global_sessions": len(tree.sessions),
            "zk_local_sessions": len(self.sessions),
            "zk_zxid": hex(tree.last_zxid),
            "zk_epoch": self.epoch,
            "zk_uptime": int((time.time() - self.stats["started"]) * 1000),
        }
        try:
            lines["zk_open_file_descriptor_count"] = len(os.listdir("/proc/self/fd"))
        except OSError:
            pass
        stats = self.learner_stats
        if self._mode() == "leader" and stats is not None:
            # ZooKeeper's leader-only lines (dashboards read them); zk_followers as 3.4/3.5 named it.
            lines["zk_learners"] = stats.learners
            lines["zk_followers"] = stats.learners
            lines["zk_synced_followers"] = stats.synced_followers
            lines["zk_synced_non_voting_followers"] = 0
            lines["zk_synced_observers"] = stats.synced_observers
            lines["zk_pending_syncs"] = stats.pending_syncs
        return "".join(f"{k}\t{v}\n" for k, v in lines.items())

    def _admin_cons(self) -> str:
        out = []
        for s in self._open_sessions():
            out.append(f" /{self._peer(s)}[1](queued={len(s.pending)},sid={hex(s.session_id)},to={s.timeout_ms},lzxid={hex(self.tree.last_zxid)})\n")
        return "".join(out) + "\n"

    def _admin_wchs(self) -> str:
        paths = len(set(self.watches.data) | set(self.watches.child))
        watching = len({sid for table in (self.watches.data, self.watches.child) for sids in table.values() for sid in sids})
        return f"{watching} connections watching {paths} paths\nTotal watches:{self.watches.count()}\n"

    def _admin_conf(self) -> str:
        cfg = self.cfg
        lines = [
            f"clientPort={cfg.client_port}",
            f"clientPortAddress={cfg.client_host}",
            f"dataDir={cfg.data_dir}",
            f"dataLogDir={cfg.data_dir}",
            f"tickTime={cfg.tick_ms}",
            f"minSessionTimeout={cfg.min_timeout_ms}",
            f"maxSessionTimeout={cfg.max_timeout_ms}",
            f"serverId={cfg.sid}",
        ]
        if cfg.servers:
            lines += [f"initLimit={cfg.init_limit}", f"syncLimit={cfg.sync_limit}", f"electionPort={_me(cfg).election_port}", f"quorumPort={_me(cfg).quorum_port}"]
            lines += [f"server.{e.id}={e.host}:{e.quorum_port}:{e.election_port}:{e.role};{e.host}:{e.client_port}" for e in cfg.servers]
        return "\n".join(lines) + "\n"

    def _admin_envi(self) -> str:
        import platform
        import sys

        return (
            f"Environment:\nzookeeper.version={VERSION}\nhost.name={platform.node()}\npython.version={sys.version.split()[0]}\n"
            f"os.name={platform.system()}\nos.arch={platform.machine()}\nuser.dir={os.getcwd()}\n"
        )

    def _outstanding(self) -> int:
        return sum(len(s.writes) for s in self.sessions.values())

    @staticmethod
    def _peer(session: LocalSession) -> str:
        return next((i.id for i in session.auth if i.scheme == "ip"), "?")

    # --- snapshots --------------------------------------------------------------------------------

    def _take_snapshot(self) -> None:
        """Write a snapshot from a forked child: a consistent copy at no pause beyond fork()."""
        if self.snapshot_child is not None:
            return
        self.applied_since_snapshot = 0
        zxid = self.tree.last_zxid
        pid = os.fork()
        if pid == 0:  # child: no sockets, no logging through shared state; just the file
            code = 0
            try:
                snapshots.write_snapshot(self.dir, zxid, self.tree.to_snapshot())
            except BaseException:  # noqa: BLE001 - the parent logs the failure from the exit code
                code = 1
            os._exit(code)
        self.snapshot_child = (pid, zxid)
        self.log.info("snapshot_started", zxid=fmt(zxid), pid=pid)

    def _reap_snapshot_child(self, block: bool = False) -> None:
        if self.snapshot_child is None:
            return
        pid, zxid = self.snapshot_child
        try:
            done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 1
        if done == 0:
            return
        self.snapshot_child = None
        if os.waitstatus_to_exitcode(status) == 0:
            self.log.info("snapshot_written", zxid=fmt(zxid))
            self.tell("log", Snapshotted(zxid=zxid))
        else:
            self.log.error("snapshot_failed", zxid=fmt(zxid), status=status)


VERSION = "3.8.0-zoomq-0.1.0"  # the ZooKeeper release whose semantics it follows; tools parse the digits
SUPER = Id("super", "")


def _masked(entry: ACL) -> ACL:
    if entry.id.scheme != "digest":
        return entry
    return ACL(entry.perms, Id("digest", entry.id.id.split(":", 1)[0] + ":x"))

_ADMIN: dict[str, Any] = {
    "ruok": SessionActor._admin_ruok,
    "isro": SessionActor._admin_isro,
    "srvr": SessionActor._admin_srvr,
    "stat": SessionActor._admin_stat,
    "mntr": SessionActor._admin_mntr,
    "cons": SessionActor._admin_cons,
    "wchs": SessionActor._admin_wchs,
    "conf": SessionActor._admin_conf,
    "envi": SessionActor._admin_envi,
}


def _me(cfg: Any) -> Any:
    return next(e for e in cfg.servers if e.id == cfg.sid)


def _digest_id(credential: str) -> str:
    """ZooKeeper's digest id of `user:password` (and of any other credential text)."""
    digest = base64.b64encode(hashlib.sha1(credential.encode("utf-8")).digest()).decode()  # noqa: S324 - ZooKeeper's scheme
    return credential.split(":", 1)[0] + ":" + digest


_CONNECTION_SCHEMES = frozenset({"ip", "x509", "sasl"})  # proven anew on each connection


def _new_conn() -> int:
    """A connection id, unique enough to tell a session's connections apart anywhere."""
    return int.from_bytes(os.urandom(8), "big") >> 1 or 1
_WATCHER_TYPES = frozenset({p.WATCHER_CHILDREN, p.WATCHER_DATA, p.WATCHER_ANY, p.WATCHER_PERSISTENT, p.WATCHER_PERSISTENT_RECURSIVE})


def _identity(ident: Id) -> p.AuthIdentity:
    """ZooKeeper's ClientInfo of an auth id: the digest scheme shows the user name only."""
    user = ident.id.split(":", 1)[0] if ident.scheme == "digest" else ident.id
    return p.AuthIdentity(ident.scheme, user)


def _connection_ids(peer: str | None, x509: str) -> list[Id]:
    """What a connection itself proves: its source address (ip), its verified TLS client
    certificate (x509, ZooKeeper's X509AuthenticationProvider)."""
    ids = [Id("ip", peer)] if peer else []
    if x509:
        ids.append(Id("x509", x509))
    return ids


def _peer_address(frame: Any) -> str | None:
    """The client's IP address (ZeroMQ's Peer-Address property of the frame)."""
    try:
        return frame.get("Peer-Address") or None
    except (AttributeError, zmq.ZMQError):
        return None


_CLIENT_TAGS = frozenset(
    cls.__struct_config__.tag for cls in p.ClientMsg.__args__  # type: ignore[attr-defined]
)
