"""The session actor, modelled for the simulation: the node's replica of the tree and its clients.

What it does is what the real session actor does, cut to what the simulation's clients use: it
refuses clients while the node does not serve; on LeaderUp or after a gap it asks the role where
the committed stream stands (Hello -> SyncPoint) and rebuilds its tree from this node's disk up
to that point (committed implies durable here); it applies Committed entries in zxid order and
answers the client whose request each one was (a replayed request with the result its own tree
remembers); writes go to the role actor as WriteRequests, reads are answered from the tree; it
reports its sessions' activity (Touch) to the role every 0.2 s; a client that has seen a newer
zxid than this node is turned away; every SNAPSHOT_EVERY applied txns it writes a snapshot (so
that a leader's diff window starts there and learners behind it are sent a SNAP).

Client messages are small tuples (the wire protocol is not what is under test here):
("connect", session_id or 0, last_zxid, timeout_ms) -> ("connected", session_id, zxid) |
("expired",) | ("refused",); ("write", session_id, cxid, op) -> ("result", cxid, err, body, zxid);
("read", session_id, path) -> ("data", value, version, zxid) | ("nonode", zxid) | ("refused",);
("ping", session_id).
"""

from __future__ import annotations

from typing import Any

from actors.protocol.internal import Committed, Hello, LeaderUp, Looking, OpenSession, OwnSession, SyncPoint, Touch, WriteRequest
from actors.protocol.txn import CreateSessionTxn, Marker, Txn
from actors.protocol.zxid import follows
from actors.session.tree import DataTree
from zoomq.exceptions import Codes

HELLO_RETRY_S = 0.2
TOUCH_EVERY_S = 0.2
SNAPSHOT_EVERY = 40  # applied txns between snapshots (small: lagging learners then get a SNAP)


class SimSession:
    def __init__(self, node: Any) -> None:
        self.node = node
        self.tree = DataTree()
        self.synced = False
        self.hello_due: float | None = None
        self.waiting: dict[tuple[int, int], Any] = {}  # (session, cxid) -> client
        self.connecting: dict[int, Any] = {}  # session id -> client
        self.touched: set[int] = set()
        self.applied = 0
        self.conns: dict[Any, int] = {}  # a client connection -> its id (the leader's session owner)
        self.next_touch = node.world.now + TOUCH_EVERY_S

    # --- the role's messages ------------------------------------------------------------------

    def receive(self, msg: Any) -> None:
        if isinstance(msg, Committed):
            if self.synced:
                self._committed(msg.entries)
        elif isinstance(msg, SyncPoint):
            self._sync_point(msg)
        elif isinstance(msg, LeaderUp):
            self._fail_all(Codes.CONNECTIONLOSS)
            self.synced = False
            self._hello()
        elif isinstance(msg, Looking):
            self._fail_all(Codes.CONNECTIONLOSS)
            self.synced = False
            self.hello_due = None

    def _hello(self) -> None:
        self.node.tell("role", Hello(origin=self.node.sid), "session")
        self.hello_due = self.node.world.now + HELLO_RETRY_S

    def _sync_point(self, msg: SyncPoint) -> None:
        disk = self.node.disk
        if disk.last_durable < msg.zxid:
            return  # not on this disk yet: the retry asks again
        if msg.zxid < self.tree.last_zxid:
            raise AssertionError(f"node {self.node.sid}: sync point {msg.zxid:#x} behind the applied {self.tree.last_zxid:#x}")
        before = self.tree.last_zxid
        self.tree = disk.state(msg.zxid)
        self.node.world.note_applied_state(self.node, self.tree, [t for t in disk.log if before < t.zxid <= msg.zxid])
        self.synced = True
        self.hello_due = None

    def _committed(self, entries: list[Any]) -> None:
        tree = self.tree
        world = self.node.world
        for entry in entries:
            if isinstance(entry, Txn):
                if entry.zxid <= tree.last_zxid:
                    continue
                if not follows(tree.last_zxid, entry.zxid):
                    self.synced = False
                    self._hello()
                    return
                body, _events = tree.apply(entry)
                world.note_applied(self.node, entry)
                self._answer_txn(entry, body)
                self.applied += 1
                if self.applied % SNAPSHOT_EVERY == 0:  # the real actor forks and writes it; here, at once
                    self.node.disk.snapshots[tree.last_zxid] = tree.to_snapshot()
            elif isinstance(entry, Marker):
                client = self.waiting.pop((entry.session_id, entry.cxid), None)
                if client is None:
                    client = self.connecting.pop(entry.session_id, None)
                    if client is not None:
                        self._to(client, ("refused",))
                    continue
                if entry.replay:
                    done = tree.recent_result(entry.session_id, entry.cxid)
                    assert done is not None, f"replay of {entry.session_id:#x}/{entry.cxid} without a remembered result"
                    self._to(client, ("result", entry.cxid, Codes.OK, done[1], done[0]))
                else:
                    self._to(client, ("result", entry.cxid, entry.err, entry.body, tree.last_zxid))

    def _answer_txn(self, txn: Txn, body: Any) -> None:
        if isinstance(txn.op, CreateSessionTxn):
            client = self.connecting.pop(txn.session_id, None)
            if client is not None:
                self._to(client, ("connected", txn.session_id, txn.zxid))
            return
        client = self.waiting.pop((txn.session_id, txn.cxid), None)
        if client is not None:
            self._to(client, ("result", txn.cxid, Codes.OK, body, txn.zxid))

    def _fail_all(self, code: int) -> None:
        for (_session, cxid), client in list(self.waiting.items()):
            self._to(client, ("result", cxid, code, None, self.tree.last_zxid))
        self.waiting.clear()
        for client in self.connecting.values():
            self._to(client, ("refused",))
        self.connecting.clear()

    # --- clients ------------------------------------------------------------------------------

    def _to(self, client: Any, reply: Any) -> None:
        self.node.world.to_client(self.node, client, reply)

    def request(self, client: Any, msg: tuple) -> None:
        kind = msg[0]
        if not self.synced:
            self._to(client, ("refused",) if kind != "write" else ("result", msg[2], Codes.CONNECTIONLOSS, None, 0))
            return
        tree = self.tree
        if kind == "connect":
            _, session_id, last_zxid, timeout_ms = msg
            if last_zxid > tree.last_zxid:
                self._to(client, ("refused",))  # the client has seen a newer state
            elif session_id == 0:
                session_id = self.node.world.new_session_id(self.node.sid)
                self.connecting[session_id] = client
                self.conns[client] = conn = self.node.world.new_conn()
                self.node.tell("role", WriteRequest(self.node.sid, session_id, 0, OpenSession(session_id, timeout_ms, b"p" * 16),
                                                    conn=conn), "session")
            elif session_id in tree.sessions:
                self.touched.add(session_id)
                self.conns[client] = conn = self.node.world.new_conn()
                self.node.tell("role", OwnSession(self.node.sid, session_id, conn), "session")  # the newest connection owns it
                self._to(client, ("connected", session_id, tree.last_zxid))
            else:
                self._to(client, ("expired",))
        elif kind == "write":
            _, session_id, cxid, op = msg
            if session_id not in tree.sessions:
                self._to(client, ("result", cxid, Codes.SESSIONEXPIRED, None, tree.last_zxid))
                return
            self.touched.add(session_id)
            self.waiting[(session_id, cxid)] = client
            self.node.tell("role", WriteRequest(self.node.sid, session_id, cxid, op, [], conn=self.conns.get(client, 0)), "session")
        elif kind == "read":
            _, session_id, path = msg
            self.touched.add(session_id)
            node = tree.get(path)
            if node is None:
                self._to(client, ("nonode", tree.last_zxid))
            else:
                self._to(client, ("data", node.data, node.version, tree.last_zxid))
        elif kind == "ping":
            self.touched.add(msg[1])

    # --- timers -------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        return min(d for d in (self.hello_due, self.next_touch) if d is not None)

    def timer(self, now: float) -> None:
        if self.hello_due is not None and now >= self.hello_due and not self.synced:
            self._hello()
        if now >= self.next_touch:
            self.next_touch = now + TOUCH_EVERY_S
            if self.touched:
                self.node.tell("role", Touch(origin=self.node.sid, sessions=sorted(self.touched)), "session")
                self.touched = set()
