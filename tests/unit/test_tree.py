"""DataTree: applying txns, Stat fields, watch events, sessions and snapshots (§1.2-1.4, §1.6)."""

from __future__ import annotations

import msgspec
import pytest

from actors.protocol.txn import (
    CONTAINER_OWNER,
    CheckTxn,
    CloseSessionTxn,
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    Txn,
    ttl_owner,
)
from actors.session.tree import DataTree, SessionInfo, TreeInvariantError, Znode, int32
from zoomq import protocol as p
from zoomq.protocol import CreateResult, MultiResult, OpResult, StatResult
from zoomq.security import ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, Id, make_digest_acl

pytestmark = pytest.mark.timeout(30)

SID = 0x0100_0000_0000_0001
OPEN = OPEN_ACL_UNSAFE
CREATED, DELETED, CHANGED, CHILD = (
    p.EVENT_NODE_CREATED,
    p.EVENT_NODE_DELETED,
    p.EVENT_NODE_DATA_CHANGED,
    p.EVENT_NODE_CHILDREN_CHANGED,
)


class Applier:
    """A tree plus a zxid/time source: `run(op)` applies the op as the next txn."""

    def __init__(self, tree: DataTree | None = None) -> None:
        self.tree = tree or DataTree()
        self.zxid = self.tree.last_zxid
        self.time = 1_000

    def run(self, op, session_id: int = SID, time_ms: int | None = None):
        self.zxid += 1
        self.time = time_ms if time_ms is not None else self.time + 1
        return self.tree.apply(Txn(self.zxid, self.time, session_id, self.zxid, op))

    def create(self, path: str, data: bytes = b"", owner: int = 0, acl=OPEN):
        return self.run(CreateTxn(path, data, acl, owner))


def test_boots_like_zookeeper() -> None:
    tree = DataTree()
    assert tree.last_zxid == 0 and tree.sessions == {}
    assert sorted(tree.children("/")) == ["zookeeper"]
    assert sorted(tree.children("/zookeeper")) == ["config", "quota"]
    assert tree.node_count() == 4
    root = tree.stat(tree.get("/"))
    # Boot nodes are attached without counting as creates, so cversion = 0*2 - 1 (as on ZooKeeper).
    assert root.numChildren == 1 and root.cversion == -1 and root.czxid == 0
    assert tree.get("/zookeeper/config").acl == READ_ACL_UNSAFE
    assert tree.get("/").acl == OPEN


def test_create_sets_every_stat_field_and_bumps_the_parent() -> None:
    a = Applier()
    body, events = a.create("/a", b"hello")
    z = a.zxid
    assert isinstance(body, CreateResult) and body.path == "/a"
    st = body.stat
    assert (st.czxid, st.mzxid, st.pzxid) == (z, z, z)
    assert st.ctime == st.mtime == a.time
    assert (st.version, st.cversion, st.aversion) == (0, 0, 0)
    assert st.ephemeralOwner == 0 and st.dataLength == 5 and st.numChildren == 0
    assert events == [(CREATED, "/a"), (CHILD, "/")]
    root = a.tree.get("/")
    assert root.creates == 1 and root.pzxid == z and "a" in root.children
    assert a.tree.last_zxid == z


def test_cversion_is_creates_plus_deletes_and_deletes_move_only_pzxid() -> None:
    a = Applier()
    a.create("/p")
    a.create("/p/a")
    a.create("/p/b")
    before = a.tree.get("/p").mzxid
    body, events = a.run(DeleteTxn("/p/a"))
    assert body is None
    assert events == [(DELETED, "/p/a"), (CHILD, "/p")]
    p = a.tree.get("/p")
    st = a.tree.stat(p)
    assert st.numChildren == 1 and st.cversion == 3 and p.creates == 2
    assert st.pzxid == a.zxid and st.mzxid == before and st.version == 0


def test_reference_live_check_for_the_creates_counter() -> None:
    # create s-0, s-1, delete both, create plain -> next sequential suffix is 3, cversion 6.
    a = Applier()
    a.create("/q")
    a.create("/q/s-0000000000")
    a.create("/q/s-0000000001")
    a.run(DeleteTxn("/q/s-0000000000"))
    a.run(DeleteTxn("/q/s-0000000001"))
    a.create("/q/plain")
    q = a.tree.get("/q")
    assert q.creates == 3  # the next sequential name is s-0000000003 (prep reads this)
    a.create("/q/s-0000000003")
    assert a.tree.stat(q).cversion == 6


def test_set_data_and_set_acl() -> None:
    a = Applier()
    a.create("/n", b"v0")
    created = a.zxid
    body, events = a.run(SetDataTxn("/n", b"v1-longer", 1), time_ms=5_000)
    assert isinstance(body, StatResult)
    st = body.stat
    assert st.version == 1 and st.mzxid == a.zxid and st.czxid == created and st.mtime == 5_000
    assert st.ctime < st.mtime and st.dataLength == 9 and st.pzxid == created
    assert events == [(CHANGED, "/n")]
    acl = [make_digest_acl("u", "p", all=True)]
    body, events = a.run(SetACLTxn("/n", acl, 1))
    assert isinstance(body, StatResult) and body.stat.aversion == 1 and body.stat.version == 1
    assert events == []  # setACL fires no watch
    assert a.tree.get("/n").acl == acl
    assert a.tree.get("/n").data == b"v1-longer"


def test_multi_applies_every_op_at_one_zxid_with_results_and_events_in_order() -> None:
    a = Applier()
    a.create("/m")
    body, events = a.run(
        MultiTxn(
            [
                CreateTxn("/m/a", b"x", OPEN),
                SetDataTxn("/m", b"p", 1),
                CheckTxn("/m"),
                DeleteTxn("/m/a"),
                SetACLTxn("/m", READ_ACL_UNSAFE, 1),
            ]
        )
    )
    z = a.zxid
    assert isinstance(body, MultiResult)
    r = body.results
    assert r[0].err == 0 and r[0].path == "/m/a" and r[0].stat.czxid == z and r[0].stat.dataLength == 1
    assert r[1].err == 0 and r[1].path is None and r[1].stat.version == 1
    assert r[2] == OpResult(0)
    assert r[3] == OpResult(0)
    assert r[4].stat.aversion == 1
    assert events == [(CREATED, "/m/a"), (CHILD, "/m"), (CHANGED, "/m"), (DELETED, "/m/a"), (CHILD, "/m")]
    m = a.tree.get("/m")
    assert m.mzxid == m.pzxid == z and a.tree.stat(m).cversion == 2


def test_empty_multi_only_moves_last_zxid() -> None:
    a = Applier()
    d = a.tree.digest()
    body, events = a.run(MultiTxn([]))
    assert body == MultiResult([]) and events == []
    assert a.tree.last_zxid == a.zxid and a.tree.digest() != d


def test_sessions_and_their_ephemerals() -> None:
    a = Applier()
    body, events = a.run(CreateSessionTxn(30_000, b"p" * 16), session_id=SID)
    assert body is None and events == []
    assert a.tree.sessions[SID] == SessionInfo(30_000, b"p" * 16)
    other = SID + 1
    a.run(CreateSessionTxn(30_000, b"q" * 16), session_id=other)
    a.create("/e")
    a.create("/e/b", owner=SID)
    a.create("/e/a", owner=SID)
    a.create("/z", owner=SID)
    a.create("/mine", owner=other)
    a.create("/box", owner=CONTAINER_OWNER)
    a.create("/ttl", owner=ttl_owner(500))
    assert a.tree.ephemerals(SID) == ["/e/a", "/e/b", "/z"]
    assert a.tree.ephemerals(other) == ["/mine"]
    assert a.tree.ephemerals(12345) == []
    assert a.tree.containers == {"/box"} and a.tree.ttls == {"/ttl"}
    body, events = a.run(CloseSessionTxn(), session_id=SID)
    assert body is None
    assert events == [
        (DELETED, "/e/a"),
        (CHILD, "/e"),
        (DELETED, "/e/b"),
        (CHILD, "/e"),
        (DELETED, "/z"),
        (CHILD, "/"),
    ]
    assert SID not in a.tree.sessions and other in a.tree.sessions
    assert a.tree.ephemerals(SID) == []
    assert a.tree.get("/e/a") is None and a.tree.get("/e/b") is None and a.tree.get("/z") is None
    assert a.tree.get("/mine") is not None and a.tree.get("/e").pzxid == a.zxid


def test_deleting_the_last_child_of_a_container_keeps_the_container() -> None:
    a = Applier()
    a.create("/box", owner=CONTAINER_OWNER)
    a.create("/box/item")
    a.run(DeleteTxn("/box/item"))
    assert a.tree.get("/box") is not None  # prep's reaper decides, not the tree
    a.run(DeleteTxn("/box"))
    assert a.tree.containers == set()


@pytest.mark.parametrize(
    ("setup", "op", "what"),
    [
        ([], CreateTxn("/missing/child", b"", OPEN), "without parent"),
        ([CreateTxn("/a", b"", OPEN)], CreateTxn("/a", b"", OPEN), "existing"),
        ([], DeleteTxn("/missing"), "missing"),
        ([], DeleteTxn("/"), "missing"),
        ([CreateTxn("/a", b"", OPEN), CreateTxn("/a/b", b"", OPEN)], DeleteTxn("/a"), "non-empty"),
        ([], SetDataTxn("/missing", b"", 1), "missing"),
        ([], SetACLTxn("/missing", OPEN, 1), "missing"),
        ([], MultiTxn([CheckTxn("/missing")]), "missing"),
        ([], CloseSessionTxn(), "unknown session"),
        ([CreateSessionTxn(1, b"")], CreateSessionTxn(1, b""), "twice"),
    ],
)
def test_a_txn_that_cannot_apply_is_a_broken_invariant(setup, op, what: str) -> None:
    a = Applier()
    for s in setup:
        a.run(s)
    with pytest.raises(TreeInvariantError, match=what):
        a.run(op)
    assert isinstance(TreeInvariantError("x"), AssertionError)


def test_zxids_must_increase() -> None:
    a = Applier()
    a.create("/a")
    with pytest.raises(TreeInvariantError, match="not after"):
        a.tree.apply(Txn(a.zxid, 0, SID, 0, CreateTxn("/b", b"", OPEN)))
    assert a.tree.get("/b") is None


def test_apply_without_results_changes_the_tree_identically() -> None:
    a, b = Applier(), Applier()
    ops = [
        CreateTxn("/x", b"1", OPEN),
        MultiTxn([CreateTxn("/x/y", b"", OPEN), SetDataTxn("/x", b"2", 1)]),
        SetACLTxn("/x", READ_ACL_UNSAFE, 1),
        DeleteTxn("/x/y"),
    ]
    for i, op in enumerate(ops, 1):
        a.tree.apply(Txn(i, i, SID, i, op))
        assert b.tree.apply(Txn(i, i, SID, i, op), results=False) == (None, [])
    assert a.tree.digest() == b.tree.digest()


def test_count_descendants_and_children() -> None:
    a = Applier()
    for path in ("/c", "/c/a", "/c/a/b", "/c/d", "/c/a/b/e"):
        a.create(path)
    assert a.tree.count_descendants("/c") == 4
    assert a.tree.count_descendants("/c/a") == 2
    assert a.tree.count_descendants("/c/d") == 0
    assert a.tree.count_descendants("/nope") == 0
    assert a.tree.count_descendants("/") == a.tree.node_count() - 1
    assert sorted(a.tree.children("/c")) == ["a", "d"]
    assert a.tree.children("/c/d") == []
    assert a.tree.children("/nope") is None


def test_equal_acl_lists_are_shared_and_leaves_share_an_empty_children_set() -> None:
    a = Applier()
    a.create("/a", acl=[ACL(31, Id("world", "anyone"))])
    a.create("/b", acl=list(OPEN))
    a.create("/c", acl=[make_digest_acl("u", "p", read=True)])
    na, nb, nc = (a.tree.get(p) for p in ("/a", "/b", "/c"))
    assert na.acl is nb.acl and na.acl is a.tree.get("/").acl
    assert nc.acl is not na.acl
    assert na.children is nb.children  # one shared empty frozenset
    assert not hasattr(na, "__dict__") and "creates" in Znode.__slots__


def test_int32_wraps_like_java() -> None:
    assert int32(2**31 - 1) == 2**31 - 1
    assert int32(2**31) == -(2**31)
    assert int32(-(2**31) - 1) == 2**31 - 1
    assert int32(-5) == -5


def _busy_tree() -> Applier:
    a = Applier()
    a.run(CreateSessionTxn(10_000, b"s" * 16), session_id=SID)
    a.create("/a", b"data", acl=[make_digest_acl("u", "p", all=True), ACL(1, Id("world", "anyone"))])
    a.create("/a/e", b"", owner=SID)
    a.create("/q")
    a.create("/q/s-0000000000")
    a.run(DeleteTxn("/q/s-0000000000"))
    a.create("/box", owner=CONTAINER_OWNER)
    a.create("/ttl", b"t", owner=ttl_owner(1234))
    a.run(SetDataTxn("/a", b"data2", 1), time_ms=99_999)
    a.run(SetACLTxn("/q", READ_ACL_UNSAFE, 1))
    return a


def test_snapshot_round_trip_preserves_everything() -> None:
    a = _busy_tree()
    tree = a.tree
    copy = DataTree.from_snapshot(tree.to_snapshot())
    assert copy.digest() == tree.digest()
    assert copy.last_zxid == tree.last_zxid and copy.sessions == tree.sessions
    assert list(copy.nodes) == list(tree.nodes)
    for path, node in tree.nodes.items():
        other = copy.get(path)
        assert copy.stat(other) == tree.stat(node), path
        assert other.data == node.data and other.acl == node.acl and other.creates == node.creates
        assert set(other.children) == set(node.children)
    assert copy.ephemerals(SID) == ["/a/e"]
    assert copy.containers == {"/box"} and copy.ttls == {"/ttl"}
    assert copy.to_snapshot() == tree.to_snapshot()
    # The copy keeps working: the creates counter and sessions survived.
    b = Applier(copy)
    b.create("/q/s-0000000001")
    assert copy.stat(copy.get("/q")).cversion == 3
    b.run(CloseSessionTxn(), session_id=SID)
    assert copy.get("/a/e") is None


def test_digest_sees_every_field() -> None:
    base = _busy_tree().tree.digest()
    assert _busy_tree().tree.digest() == base  # deterministic
    changes = [
        CreateTxn("/new", b"", OPEN),
        SetDataTxn("/a", b"data2", 2),  # same data, new version
        SetACLTxn("/a", OPEN, 2),
        CreateSessionTxn(1, b""),
        MultiTxn([]),  # only last_zxid moves
    ]
    for op in changes:
        a = _busy_tree()
        a.run(op, session_id=SID + 7)
        assert a.tree.digest() != base, op


def test_from_snapshot_refuses_inconsistent_bytes() -> None:
    with pytest.raises(msgspec.DecodeError):
        DataTree.from_snapshot(b"\x00garbage")
    tree = DataTree()
    snap = msgspec.msgpack.decode(tree.to_snapshot())
    orphan = list(snap[4][-1][-1])  # the last node of the last chunk
    orphan[0] = "/no/parent"
    snap[4][-1].append(orphan)
    with pytest.raises(TreeInvariantError, match="before its parent"):
        DataTree.from_snapshot(msgspec.msgpack.encode(snap))
    snap[4][-1][-1] = "not a node"  # a chunk that does not decode: refused like garbage
    with pytest.raises(msgspec.DecodeError):
        DataTree.from_snapshot(msgspec.msgpack.encode(snap))
