"""The session core (actors/session/session.py) as scripts: client frames and role messages in,
frames per connection and effects out. No sockets, no disk: the commit stream is written here."""

from __future__ import annotations

import itertools

import msgspec
import pytest
import structlog

from actors.protocol.effects import Tell
from actors.protocol.internal import (
    Committed,
    Hello,
    LeaderUp,
    Looking,
    OpenSession,
    OwnSession,
    SyncPoint,
    Touch,
    WriteRequest,
)
from actors.protocol.txn import (
    OWNED_CXID,
    CloseSessionTxn,
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    Marker,
    SetACLTxn,
    SetDataTxn,
    Txn,
)
from actors.session.session import SessionCore, digest_id
from actors.session.tree import DataTree
from runtime.config import NodeConfig, ServerEntry
from zoomq import protocol as p
from zoomq.exceptions import Codes
from zoomq.security import ACL, OPEN_ACL_UNSAFE, Id, Permissions

pytestmark = pytest.mark.timeout(30)
A, B = b"conn-a", b"conn-b"
DECODE = msgspec.msgpack.Decoder(p.ServerMsg).decode
ENCODE = msgspec.msgpack.Encoder().encode


class Script:
    """A session core and the commit stream of a one-node leader that accepts every write."""

    def __init__(self, ensemble: bool = False, **cfg) -> None:
        servers = [ServerEntry(1, "127.0.0.1", 2888, 3888), ServerEntry(2, "127.0.0.1", 2889, 3889)] if ensemble else []
        self.cfg = NodeConfig(sid=1, servers=servers, **cfg)
        counter = itertools.count(1)
        self.core = SessionCore(
            cfg=self.cfg,
            log=structlog.get_logger(),
            now=0.0,
            wall_ms=1_000,
            random_bytes=lambda n: bytes([next(counter) % 256]) * n,
        )
        self.zxid = 0
        self.now = 0.0

    def effects(self) -> list:
        return [e.msg for e in self.core.take_effects() if isinstance(e, Tell) and e.dest == "role"]

    def sync(self, role: str = "standalone", tree: DataTree | None = None) -> None:
        tree = tree or DataTree()
        self.core.sync_point(SyncPoint(tree.last_zxid, 1, role), tree, self.now)
        self.zxid = tree.last_zxid

    def send(self, rid: bytes, *msgs, gateway: bool = False) -> list:
        self.core.client_frames(rid, [ENCODE(m) for m in msgs], self.now, gateway)
        return self.out(rid)

    def out(self, rid: bytes) -> list:
        return [DECODE(f) for f in self.core.out.pop(rid, [])]

    def commit(self, *entries) -> None:
        self.core.role_message(Committed(list(entries)), self.now)

    def txn(self, session_id: int, cxid: int, op) -> Txn:
        self.zxid += 1
        return Txn(self.zxid, 0, session_id, cxid, op)

    def open(self, rid: bytes) -> p.Connected:
        """A new session, through the leader (the script plays it)."""
        assert self.send(rid, p.Connect(p.PROTOCOL_VERSION, 0, 10_000)) == []
        (req,) = [m for m in self.effects() if isinstance(m, WriteRequest)]
        assert isinstance(req.op, OpenSession)
        self.commit(self.txn(req.session_id, 0, CreateSessionTxn(req.op.timeout_ms, req.op.passwd)))
        (connected,) = self.out(rid)
        assert connected.session_id == req.session_id and connected.timeout_ms == 10_000
        return connected

    def forwarded(self) -> list[WriteRequest]:
        return [m for m in self.effects() if isinstance(m, WriteRequest)]


def test_a_new_session_is_opened_through_the_leader_and_answered_once_committed():
    s = Script()
    s.sync()
    connected = s.open(A)
    assert connected.passwd and connected.last_zxid == 1
    assert s.core.by_rid[A].session_id == connected.session_id


def test_a_read_queued_behind_a_write_waits_for_it_and_sees_it():
    s = Script()
    s.sync()
    sid = s.open(A).session_id
    assert s.send(A, p.Create(1, "/a", b"x", OPEN_ACL_UNSAFE), p.GetData(2, "/a")) == []  # the read waits
    (req,) = s.forwarded()
    assert req.cxid == 1 and isinstance(req.op, p.Create)
    s.commit(s.txn(sid, 1, CreateTxn("/a", b"x", OPEN_ACL_UNSAFE)))
    create, read = s.out(A)
    assert (create.xid, create.err) == (1, Codes.OK)
    assert (read.xid, read.err, read.body.data) == (2, Codes.OK, b"x")


def test_a_linearizable_read_is_answered_at_its_sync_marker_with_everything_committed_before_it():
    s = Script(ensemble=True)
    s.sync("follower")
    sid = s.open(A).session_id
    s.effects()
    other = s.txn(sid + 1, 0, CreateSessionTxn(10_000, b"p" * 16))
    s.commit(other)
    assert s.send(A, p.GetData(1, "/a", linearizable=True), p.Exists(2, "/a")) == []  # both wait
    (req,) = s.forwarded()
    assert isinstance(req.op, p.Sync) and req.op.path == "/a" and req.cxid == 1  # nothing to log: a marker
    # Another client's write, acknowledged before the read was decided, reaches this node first.
    s.commit(s.txn(sid + 1, 1, CreateTxn("/a", b"new", OPEN_ACL_UNSAFE)), Marker(sid, 1, Codes.OK, p.PathResult("/a")))
    read, exists = s.out(A)
    assert (read.xid, read.err, read.body.data) == (1, Codes.OK, b"new")
    assert (exists.xid, exists.err) == (2, Codes.OK)


def test_a_linearizable_read_that_the_leader_refuses_gets_the_error():
    s = Script(ensemble=True)
    s.sync("follower")
    sid = s.open(A).session_id
    s.effects()
    (bad,) = s.send(A, p.Exists(2, "no-slash", linearizable=True))  # bad path: answered here, not forwarded
    assert bad.err == Codes.BADARGUMENTS and s.forwarded() == []
    s.send(A, p.GetChildren(3, "/", linearizable=True))
    s.commit(Marker(sid, 3, Codes.SESSIONMOVED))
    (reply,) = s.out(A)
    assert reply.err == Codes.SESSIONMOVED


def test_a_watch_event_reaches_the_client_before_the_reply_that_shows_the_change():
    s = Script()
    s.sync()
    sid = s.open(A).session_id
    s.commit(s.txn(sid, 0, CreateTxn("/a", b"1", OPEN_ACL_UNSAFE)))
    assert s.send(A, p.GetData(1, "/a", watch=True))[0].body.data == b"1"
    s.send(A, p.SetData(2, "/a", b"2"))
    s.commit(s.txn(sid, 2, SetDataTxn("/a", b"2", 1)))
    event, reply = s.out(A)
    assert isinstance(event, p.Event) and (event.type, event.path) == (p.EVENT_NODE_DATA_CHANGED, "/a")
    assert isinstance(reply, p.Reply) and reply.xid == 2


def test_a_watch_event_goes_only_to_sessions_that_may_read_the_node():
    s = Script()
    s.sync()
    a = s.open(A).session_id
    s.open(B)
    s.commit(s.txn(a, 0, CreateTxn("/a", b"", OPEN_ACL_UNSAFE)))
    s.send(A, p.Exists(1, "/a", watch=True))
    s.send(B, p.Exists(1, "/a", watch=True))
    secret = [ACL(Permissions.ALL, Id("digest", digest_id("alice:pw")))]
    s.send(A, p.Auth(p.AUTH_XID, "digest", b"alice:pw"))
    s.out(A)
    s.commit(s.txn(a, 0, SetDataTxn("/a", b"", 1)))  # fires both watches: both may read /a
    assert [type(m) for m in s.out(A)] == [p.Event] and [type(m) for m in s.out(B)] == [p.Event]
    s.send(A, p.Exists(2, "/a", watch=True))
    s.send(B, p.Exists(2, "/a", watch=True))
    s.out(A), s.out(B)
    s.commit(s.txn(a, 0, SetACLTxn("/a", secret, 1)), s.txn(a, 0, SetDataTxn("/a", b"", 2)))
    assert [type(m) for m in s.out(A)] == [p.Event]
    assert s.out(B) == []  # B holds no READ on /a any more


def test_an_ensemble_node_that_does_not_serve_sends_clients_away_but_answers_admin_words():
    s = Script(ensemble=True)
    (reply,) = s.send(A, p.Connect(p.PROTOCOL_VERSION, 0, 10_000))
    assert reply.err == Codes.CONNECTIONLOSS
    (text,) = s.send(A, p.AdminCommand(5, "ruok"))
    assert text.body.text == "imok"
    assert any(isinstance(m, Hello) for m in s.effects())


def test_a_standalone_node_holds_clients_until_its_state_is_loaded():
    s = Script()
    assert s.send(A, p.Connect(p.PROTOCOL_VERSION, 0, 10_000)) == []
    assert s.forwarded() == []
    s.sync()
    assert len(s.forwarded()) == 1  # the held Connect went on once the node served


def test_writes_a_new_leader_never_saw_are_answered_connectionloss():
    s = Script(ensemble=True)
    s.sync("follower")
    sid = s.open(A).session_id
    s.send(A, p.Create(1, "/a", b"", OPEN_ACL_UNSAFE), p.Exists(2, "/a"))
    s.core.role_message(LeaderUp(2, "follower"), s.now)
    write, read = s.out(A)
    assert (write.xid, write.err) == (1, Codes.CONNECTIONLOSS)
    assert (read.xid, read.err) == (2, Codes.NONODE)
    assert not s.core.synced and any(isinstance(m, Hello) for m in s.effects())
    assert s.core.sessions[sid].writes == {}


def test_a_refusal_for_the_old_connection_of_a_moved_session_is_not_taken_by_the_new_one():
    """After a takeover the session lives on two nodes with the same cxids outstanding: the
    leader's SESSIONMOVED for the old connection's request must not answer the new one's."""
    s = Script()
    s.sync()
    sid = s.open(A).session_id
    s.effects()
    mine = s.core.sessions[sid].conn
    s.send(A, p.Create(5, "/mine", b"", OPEN_ACL_UNSAFE))
    s.commit(Marker(sid, 5, Codes.SESSIONMOVED, conn=mine + 1))  # the other node's connection, same cxid
    assert s.out(A) == [] and 5 in s.core.sessions[sid].writes
    s.commit(s.txn(sid, 5, CreateTxn("/mine", b"", OPEN_ACL_UNSAFE)))
    (created,) = s.out(A)
    assert (created.xid, created.err) == (5, Codes.OK)


def test_a_resume_a_new_leader_never_saw_is_refused_and_tried_again():
    s = Script(ensemble=True)
    s.sync("follower")
    first = s.open(A)
    assert s.send(B, p.Connect(p.PROTOCOL_VERSION, s.zxid, 10_000, first.session_id, first.passwd)) == []
    s.core.role_message(LeaderUp(2, "follower"), s.now)
    (refused,) = s.out(B)
    assert refused.err == Codes.CONNECTIONLOSS and s.core.resuming == {}


def test_looking_forgets_every_connection():
    s = Script(ensemble=True)
    s.sync("follower")
    s.open(A)
    s.core.role_message(Looking(), s.now)
    assert s.core.by_rid == {} and s.core.mode == "looking"
    (reply,) = s.send(A, p.Exists(3, "/"))
    assert reply.err == Codes.CONNECTIONLOSS


def test_a_session_resumed_elsewhere_is_moved_then_expired_for_its_old_connection():
    s = Script()
    s.sync()
    first = s.open(A)
    s.effects()
    # The resume is answered once the leader has the new owner (its OWNED marker, in order).
    assert s.send(B, p.Connect(p.PROTOCOL_VERSION, s.zxid, 10_000, first.session_id, first.passwd)) == []
    own = [m for m in s.effects() if isinstance(m, OwnSession)]
    assert len(own) == 1 and own[0].session_id == first.session_id
    s.commit(Marker(first.session_id, OWNED_CXID, 0, conn=own[0].conn + 1))  # another connection's: not ours
    assert s.out(B) == []
    s.commit(Marker(first.session_id, OWNED_CXID, 0, conn=own[0].conn))
    (resumed,) = s.out(B)
    assert resumed.session_id == first.session_id and resumed.timeout_ms == 10_000
    (moved,) = s.send(A, p.Exists(1, "/"))
    assert moved.err == Codes.SESSIONMOVED
    s.commit(s.txn(first.session_id, 0, CloseSessionTxn()))
    (expired,) = s.send(A, p.Exists(2, "/"))
    assert expired.err == Codes.SESSIONEXPIRED


def test_the_leader_saying_session_moved_unbinds_the_connection():
    s = Script()
    s.sync()
    sid = s.open(A).session_id
    s.send(A, p.Delete(1, "/x"))
    s.commit(Marker(sid, 1, Codes.SESSIONMOVED))
    (reply,) = s.out(A)
    assert reply.err == Codes.SESSIONMOVED
    (later,) = s.send(A, p.Exists(2, "/"))
    assert later.err == Codes.SESSIONMOVED


def test_a_wrong_password_or_unknown_session_is_expired():
    s = Script()
    s.sync()
    first = s.open(A)
    (refused,) = s.send(B, p.Connect(p.PROTOCOL_VERSION, 0, 10_000, first.session_id, b"wrong"))
    assert refused.timeout_ms == 0 and refused.session_id == 0
    (unknown,) = s.send(B, p.Connect(p.PROTOCOL_VERSION, 0, 10_000, 12345, b"x"))
    assert unknown.timeout_ms == 0


def test_a_client_that_saw_a_newer_state_is_turned_away():
    s = Script()
    s.sync()
    (reply,) = s.send(A, p.Connect(p.PROTOCOL_VERSION, 99, 10_000))
    assert reply.err == Codes.CONNECTIONLOSS
    assert s.forwarded() == []


@pytest.mark.parametrize(
    ("frame", "answer"),
    [
        (b"\xc1garbage", None),  # not msgpack: nothing to answer
        (ENCODE(["get", 7, 42]), (7, Codes.BADARGUMENTS)),  # a known request with bad fields
        (ENCODE(["nosuchop", 8]), (8, Codes.UNIMPLEMENTED)),  # an unknown request
        (ENCODE({"get": 1}), None),  # msgpack, but not a request: no xid to answer
    ],
)
def test_a_bad_frame_is_answered_by_xid_when_it_has_one_and_crashes_nothing(frame, answer):
    s = Script()
    s.sync()
    s.open(A)
    s.core.client_frames(A, [frame], s.now)
    got = [(r.xid, r.err) for r in s.out(A)]
    assert got == ([answer] if answer else [])
    assert s.send(A, p.Exists(9, "/"))[0].err == Codes.OK  # the connection still works


def test_bad_requests_never_reach_the_leader():
    s = Script(max_data_bytes=10)
    s.sync()
    s.open(A)
    replies = s.send(
        A,
        p.Create(1, "bad", b"", OPEN_ACL_UNSAFE),
        p.Create(2, "/big", b"x" * 11, OPEN_ACL_UNSAFE),
        p.RemoveWatches(3, "/", 99),
        p.AddWatch(4, "/", 7),
    )
    assert [(r.xid, r.err) for r in replies] == [
        (1, Codes.BADARGUMENTS),
        (2, Codes.BADARGUMENTS),
        (3, Codes.MARSHALLINGERROR),
        (4, Codes.BADARGUMENTS),
    ]
    assert s.forwarded() == []


def test_a_gap_in_the_commit_stream_resynchronises():
    s = Script()
    s.sync()
    sid = s.open(A).session_id
    s.zxid += 5  # entries lost
    s.commit(s.txn(sid, 0, CreateTxn("/late", b"", OPEN_ACL_UNSAFE)))
    assert not s.core.synced and s.core.tree.get("/late") is None
    assert any(isinstance(m, Hello) for m in s.effects())


def test_a_sync_point_the_disk_does_not_reach_yet_is_asked_again_soon():
    s = Script()
    s.core.sync_point(SyncPoint(5, 1), DataTree(), 10.0)
    assert not s.core.synced
    s.effects()
    s.core.tick(10.06)
    assert any(isinstance(m, Hello) for m in s.effects())


def test_failed_auth_closes_the_connection_but_not_the_session():
    s = Script()
    s.sync()
    sid = s.open(A).session_id
    (reply,) = s.send(A, p.Auth(p.AUTH_XID, "nosuchscheme", b"x"))
    assert reply.err == Codes.AUTHFAILED
    assert s.send(A, p.Exists(1, "/"))[0].err == Codes.CONNECTIONLOSS
    assert sid in s.core.sessions


def test_only_the_gateway_may_claim_a_sasl_identity():
    s = Script()
    s.sync()
    s.open(A)
    (reply,) = s.send(A, p.Auth(p.AUTH_XID, "sasl", b"alice"))
    assert reply.err == Codes.AUTHFAILED


def test_a_client_that_stops_reading_is_let_go_and_its_session_kept():
    s = Script()
    s.sync()
    sid = s.open(A).session_id
    s.core.not_reading(A, 10_000)
    assert A not in s.core.by_rid and sid in s.core.sessions
    assert s.send(A, p.Exists(1, "/"))[0].err == Codes.CONNECTIONLOSS


def test_active_sessions_are_reported_to_the_leader_on_the_tick():
    s = Script()
    s.sync()
    sid = s.open(A).session_id
    s.effects()
    s.send(A, p.Ping(p.PING_XID))
    s.core.tick(s.core.next_deadline())
    (touch,) = [m for m in s.effects() if isinstance(m, Touch)]
    assert touch.sessions == [sid]
    s.core.tick(s.core.next_deadline())
    assert not any(isinstance(m, Touch) for m in s.effects())  # nothing new: nothing said


def test_a_snapshot_is_wanted_every_snapshot_every_txns():
    s = Script(snapshot_every=3)
    s.sync()
    sid = s.open(A).session_id  # one txn
    s.commit(s.txn(sid, 0, CreateTxn("/a", b"", OPEN_ACL_UNSAFE)))
    assert not s.core.wants_snapshot
    s.commit(s.txn(sid, 0, CreateTxn("/b", b"", OPEN_ACL_UNSAFE)))
    assert s.core.wants_snapshot
    s.core.snapshot_started()
    assert not s.core.wants_snapshot


def test_set_watches_fires_what_changed_while_away_and_arms_the_rest():
    s = Script()
    s.sync()
    sid = s.open(A).session_id
    s.commit(s.txn(sid, 0, CreateTxn("/same", b"", OPEN_ACL_UNSAFE)))
    seen = s.zxid
    s.commit(
        s.txn(sid, 0, CreateTxn("/new", b"", OPEN_ACL_UNSAFE)),
        s.txn(sid, 0, CreateTxn("/changed", b"", OPEN_ACL_UNSAFE)),
    )
    s.commit(s.txn(sid, 0, SetDataTxn("/changed", b"x", 1)))
    out = s.send(
        A, p.SetWatches(p.SET_WATCHES_XID, seen, data=["/same", "/changed", "/gone"], exist=["/new"], child=[])
    )
    events = sorted((m.type, m.path) for m in out if isinstance(m, p.Event))
    assert events == [
        (p.EVENT_NODE_CREATED, "/new"),
        (p.EVENT_NODE_DELETED, "/gone"),
        (p.EVENT_NODE_DATA_CHANGED, "/changed"),
    ]
    assert out[-1].xid == p.SET_WATCHES_XID
    assert s.core.watches.has("/same", sid, p.WATCHER_DATA)


# --- read-only mode --------------------------------------------------------------------------


def _cut_off(s: Script) -> int:
    """A follower with one session (on A), then cut off from the quorum."""
    s.sync("follower")
    sid = s.open(A).session_id
    s.commit(s.txn(sid, 1, CreateTxn("/cfg", b"v1", OPEN_ACL_UNSAFE)))
    s.core.role_message(Looking(), s.now)
    s.effects()
    return sid


def test_cut_off_with_read_only_mode_serves_reads_to_read_only_clients_and_refuses_writes():
    s = Script(ensemble=True, read_only_mode=True)
    _cut_off(s)
    (refused,) = s.send(B, p.Connect(p.PROTOCOL_VERSION, 0, 10_000))  # a read-write client: elsewhere
    assert refused.err == Codes.CONNECTIONLOSS
    (connected,) = s.send(B, p.Connect(p.PROTOCOL_VERSION, 0, 10_000, read_only=True))
    assert connected.read_only and connected.session_id and connected.timeout_ms == 10_000
    read, write, sync, lin, ping = s.send(
        B,
        p.GetData(1, "/cfg"),
        p.Create(2, "/x", b"", OPEN_ACL_UNSAFE),
        p.Sync(3, "/"),
        p.GetData(4, "/cfg", linearizable=True),
        p.Ping(),
    )
    assert (read.err, read.body.data) == (Codes.OK, b"v1")
    assert write.err == sync.err == lin.err == Codes.NOTREADONLY
    assert ping.err == Codes.OK
    assert s.core.admin("isro") == "ro" and "Mode: read-only" in s.core.admin("srvr")
    assert not [m for m in s.effects() if isinstance(m, (WriteRequest, Touch, OwnSession))]  # nothing for a leader


def test_without_read_only_mode_a_cut_off_node_refuses_read_only_clients_too():
    s = Script(ensemble=True)
    _cut_off(s)
    (refused,) = s.send(B, p.Connect(p.PROTOCOL_VERSION, 0, 10_000, read_only=True))
    assert refused.err == Codes.CONNECTIONLOSS
    assert s.core.admin("isro") == "null"


def test_on_rejoining_read_only_bindings_are_let_go_and_local_sessions_end():
    s = Script(ensemble=True, read_only_mode=True)
    sid = _cut_off(s)
    info = s.core.tree.sessions[sid]
    (resumed,) = s.send(A, p.Connect(p.PROTOCOL_VERSION, 0, 10_000, sid, info.passwd, read_only=True))
    assert resumed.read_only and resumed.session_id == sid  # an existing session, bound read-only
    (local,) = s.send(B, p.Connect(p.PROTOCOL_VERSION, 0, 10_000, read_only=True))
    tree = s.core.tree
    s.core.sync_point(SyncPoint(tree.last_zxid, 2, "follower"), tree, s.now)  # back in the quorum
    (again,) = s.send(A, p.Exists(5, "/cfg"))
    assert again.err == Codes.CONNECTIONLOSS  # resume read-write (the session lives on)
    (ended,) = s.send(B, p.Exists(5, "/cfg"))
    assert ended.err == Codes.SESSIONEXPIRED and local.session_id not in s.core.sessions
    assert s.core.admin("isro") == "rw"


# --- watch history: persistent watches that miss nothing ---------------------------------------


def _events(replies: list) -> list[tuple[int, str, int]]:
    return [(m.type, m.path, m.zxid) for m in replies if isinstance(m, p.Event)]


def test_a_persistent_watch_resumed_from_a_zxid_gets_every_later_change_in_order():
    s = Script(watch_history_txns=100)
    s.sync()
    sid = s.open(A).session_id
    zxids = []
    for i in range(5):
        txn = s.txn(sid, 10 + i, CreateTxn(f"/feed-{i}" if i == 0 else f"/feed-0/n{i}", b"", OPEN_ACL_UNSAFE))
        zxids.append(txn.zxid)
        s.commit(txn)
    s.commit(s.txn(sid, 20, SetDataTxn("/feed-0/n2", b"x", 1)))
    s.out(A)
    replies = s.send(A, p.AddWatch(30, "/feed-0", p.WATCH_MODE_PERSISTENT_RECURSIVE, since_zxid=zxids[1]))
    assert replies[0].xid == 30 and replies[0].err == Codes.OK  # the reply first, then the history
    assert _events(replies[1:]) == [
        (p.EVENT_NODE_CREATED, "/feed-0/n2", zxids[2]),
        (p.EVENT_NODE_CREATED, "/feed-0/n3", zxids[3]),
        (p.EVENT_NODE_CREATED, "/feed-0/n4", zxids[4]),
        (p.EVENT_NODE_DATA_CHANGED, "/feed-0/n2", zxids[4] + 1),
    ]  # no CHILD events for a recursive watch, nothing at or before since_zxid
    # Live events follow, exactly once.
    s.commit(s.txn(sid, 31, DeleteTxn("/feed-0/n4")))
    assert _events(s.out(A)) == [(p.EVENT_NODE_DELETED, "/feed-0/n4", zxids[4] + 2)]


def test_a_resume_older_than_the_window_gets_one_resync_event():
    s = Script(watch_history_txns=3)
    s.sync()
    sid = s.open(A).session_id
    first = s.txn(sid, 1, CreateTxn("/w", b"", OPEN_ACL_UNSAFE))
    s.commit(first)
    for i in range(5):
        s.commit(s.txn(sid, 2 + i, SetDataTxn("/w", bytes([i]), i + 1)))
    s.out(A)
    replies = s.send(A, p.AddWatch(9, "/w", p.WATCH_MODE_PERSISTENT, since_zxid=first.zxid))
    assert [(e[0], e[1]) for e in _events(replies)] == [(p.EVENT_RESYNC, "/w")]
    replies = s.send(A, p.AddWatch(10, "/w", p.WATCH_MODE_PERSISTENT, since_zxid=s.zxid - 2))  # inside the window
    assert [(e[0], e[2]) for e in _events(replies)] == [
        (p.EVENT_NODE_DATA_CHANGED, s.zxid - 1),
        (p.EVENT_NODE_DATA_CHANGED, s.zxid),
    ]


def test_setwatches_after_a_reconnect_replays_what_persistent_watches_missed_but_not_to_unreadable_nodes():
    s = Script(watch_history_txns=100)
    s.sync()
    sid = s.open(A).session_id
    s.commit(s.txn(sid, 1, CreateTxn("/app", b"", OPEN_ACL_UNSAFE)))
    seen = s.zxid
    s.commit(s.txn(sid + 1, 1, CreateTxn("/app/open", b"", OPEN_ACL_UNSAFE)))
    secret = [ACL(Permissions.ALL, Id("digest", "someone:else"))]
    s.commit(s.txn(sid + 1, 2, CreateTxn("/app/secret", b"", secret)))
    s.commit(s.txn(sid + 1, 3, SetDataTxn("/app/open", b"v", 1)))
    s.out(A)
    info = s.core.tree.sessions[sid]
    s.send(B, p.Connect(p.PROTOCOL_VERSION, seen, 10_000, sid, info.passwd))
    (own,) = [m for m in s.effects() if isinstance(m, OwnSession)]
    s.commit(Marker(sid, OWNED_CXID, 0, conn=own.conn))
    s.out(B)
    replies = s.send(B, p.SetWatches(p.SET_WATCHES_XID, seen, [], [], [], [], ["/app"]))
    assert [(e[0], e[1]) for e in _events(replies)] == [
        (p.EVENT_NODE_CREATED, "/app/open"),
        (p.EVENT_NODE_DATA_CHANGED, "/app/open"),
    ]  # /app/secret: no READ
    assert replies[-1].xid == p.SET_WATCHES_XID


def test_no_resync_event_goes_to_a_zookeeper_protocol_client():
    from actors.gateway import GATEWAY_RID_PREFIX

    s = Script(watch_history_txns=1)
    s.sync()
    rid = GATEWAY_RID_PREFIX + b"conn"
    s.send(rid, p.Connect(p.PROTOCOL_VERSION, 0, 10_000), gateway=True)
    (req,) = [m for m in s.effects() if isinstance(m, WriteRequest)]
    s.commit(s.txn(req.session_id, 0, CreateSessionTxn(req.op.timeout_ms, req.op.passwd)))
    for i in range(3):
        s.commit(s.txn(req.session_id, 1 + i, CreateTxn(f"/g{i}", b"", OPEN_ACL_UNSAFE)))
    s.out(rid)
    replies = s.send(rid, p.SetWatches(p.SET_WATCHES_XID, 1, [], [], [], [], ["/"]), gateway=True)
    assert _events(replies) == []
