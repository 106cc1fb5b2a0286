"""Prep: every write op and error code, node types, sequence numbers, ACLs, multi atomicity,
session close/expiry, container/TTL reaping, and replica equivalence (§1.1-1.4, §1.6, §1.7, §5.6)."""

from __future__ import annotations

import random
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.leader.prep import Prep, allowed, fixup_acl
from actors.protocol import zxid as zx
from actors.protocol.internal import OpenSession, WriteRequest
from actors.protocol.txn import (
    CONTAINER_OWNER,
    MAX_TTL_MS,
    CheckTxn,
    CloseSessionTxn,
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    Marker,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    Txn,
    ttl_owner,
)
from actors.session.tree import DataTree
from zoomq import protocol as p
from zoomq.exceptions import Codes
from zoomq.protocol import (
    Check,
    Close,
    Create,
    Delete,
    GetData,
    Multi,
    MultiResult,
    OpResult,
    PathResult,
    SetACL,
    SetData,
    Sync,
)
from zoomq.security import (
    ACL,
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    Id,
    Permissions,
    make_acl,
    make_digest_acl,
    make_digest_acl_credential,
)

pytestmark = pytest.mark.timeout(60)

SID = 0x0100_0000_0000_0001
OTHER = SID + 1
OPEN = OPEN_ACL_UNSAFE
MAX_DATA = 1024
EPOCH = 3
ALICE = Id("digest", make_digest_acl_credential("alice", "pw"))
BOB = Id("digest", make_digest_acl_credential("bob", "pw"))
SUPER = Id("super", "")


class Harness:
    """Prep plus a replica tree that applies every emitted txn, as a follower's session actor would."""

    def __init__(self, *, epoch: int = EPOCH, check_acls: bool = True, sessions: tuple[int, ...] = (SID,)) -> None:
        self.prep = Prep(
            DataTree(), epoch=epoch, max_data_bytes=MAX_DATA, log=structlog.get_logger(), check_acls=check_acls
        )
        self.replica = DataTree()
        self.now = 1_000_000
        self.cxid = 0
        self.body: Any = None
        self.events: list[tuple[int, str]] = []
        for sid in sessions:
            self.open(sid)

    def _replicate(self, entry: Txn | Marker, check: bool = True) -> None:
        if isinstance(entry, Txn):
            self.body, self.events = self.replica.apply(entry)
            if check:
                assert self.replica.digest() == self.prep.tree.digest()

    def step(self, op: Any, *, sid: int = SID, auth: list[Id] | None = None) -> Txn | Marker:
        self.cxid += 1
        self.now += 10
        entry = self.prep.step(WriteRequest(1, sid, self.cxid, op, auth or []), self.now)
        # A txn for a new session names that session; everything else answers the requester.
        opened = isinstance(op, OpenSession) and isinstance(entry, Txn)
        assert entry.cxid == self.cxid and entry.session_id == (op.session_id if opened else sid)
        self._replicate(entry)
        return entry

    def open(self, sid: int, timeout_ms: int = 10_000) -> Txn:
        entry = self.step(OpenSession(sid, timeout_ms, b"p" * 16), sid=sid)
        assert isinstance(entry, Txn)
        return entry

    def ok(self, op: Any, **kw: Any) -> Txn:
        entry = self.step(op, **kw)
        assert isinstance(entry, Txn), entry
        return entry

    def err(self, op: Any, **kw: Any) -> int:
        """The error code of a request that must not produce a txn (the tree must not change)."""
        before = (self.prep.tree.digest(), self.prep.last_zxid)
        entry = self.step(op, **kw)
        assert isinstance(entry, Marker), entry
        assert (self.prep.tree.digest(), self.prep.last_zxid) == before
        return entry.err

    def create(self, path: str, data: bytes = b"", flags: int = 0, acl: Any = OPEN, ttl: int = 0, **kw: Any) -> str:
        return self.ok(Create(1, path, data, acl, flags, ttl), **kw).op.path

    def stat(self, path: str) -> p.ZnodeStat:
        node = self.prep.tree.get(path)
        assert node is not None, path
        return self.prep.tree.stat(node)

    def run(self, txns: list[Txn]) -> None:
        """Replay txns prep emitted outside `step` (expire, reap): the replica catches up."""
        for txn in txns:
            self._replicate(txn, check=False)
        assert self.replica.digest() == self.prep.tree.digest()


def mk(path: str, flags: int = 0, data: bytes = b"", acl: Any = OPEN, ttl: int = 0) -> Create:
    return Create(1, path, data, acl, flags, ttl)


# --- zxids, sessions, dispatch -----------------------------------------------------------------------


def test_zxids_are_epoch_and_a_counter_starting_at_one() -> None:
    h = Harness(sessions=())
    first = h.open(SID)
    assert first.zxid == zx.make(EPOCH, 1)
    second = h.ok(mk("/a"))
    assert second.zxid == zx.make(EPOCH, 2) and h.prep.last_zxid == second.zxid
    assert second.time_ms == h.now and second.session_id == SID


def test_a_new_epoch_restarts_the_counter_and_the_same_epoch_continues() -> None:
    h = Harness()
    h.create("/a")
    tree = h.prep.tree
    assert Prep(tree, epoch=EPOCH + 1, max_data_bytes=MAX_DATA, log=structlog.get_logger())._emit(
        SID, 1, CreateTxn("/b", b"", OPEN), 5
    ).zxid == zx.make(EPOCH + 1, 1)
    same = Prep(DataTree.from_snapshot(h.replica.to_snapshot()), epoch=EPOCH, max_data_bytes=1, log=None)
    assert same.step(WriteRequest(1, SID, 9, mk("/c")), 7).zxid == zx.make(EPOCH, 3)
    with pytest.raises(AssertionError):
        Prep(tree, epoch=EPOCH, max_data_bytes=MAX_DATA, log=None)  # the tree is already in EPOCH + 1


def test_open_session_becomes_a_create_session_txn_for_that_id() -> None:
    h = Harness(sessions=())
    txn = h.step(OpenSession(OTHER, 4_000, b"k" * 16), sid=SID)
    assert isinstance(txn, Txn) and txn.session_id == OTHER
    assert txn.op == CreateSessionTxn(4_000, b"k" * 16)
    assert h.prep.tree.sessions[OTHER].timeout_ms == 4_000


@pytest.mark.parametrize(
    "op",
    [
        OpenSession(SID, 4_000, b"k"),  # already open
        OpenSession(OTHER, 0, b"k"),
        OpenSession(OTHER, -5, b"k"),
        OpenSession(OTHER, 2**31, b"k"),  # ZooKeeper's timeOut is an int
        OpenSession(OTHER, "10", b"k"),
        OpenSession(OTHER, 10, "not bytes"),
        OpenSession("x", 10, b"k"),
        OpenSession(1 << 64, 10, b"k"),
    ],
)
def test_bad_open_session_is_bad_arguments(op: OpenSession) -> None:
    h = Harness()
    assert h.err(op) == Codes.BADARGUMENTS


@pytest.mark.parametrize(
    "op",
    [
        mk("/a"),
        Delete(1, "/zookeeper/quota"),
        SetData(1, "/", b""),
        SetACL(1, "/", OPEN),
        Check(1, "/", -1),
        Multi(1, []),
        Sync(1, "/"),
        Close(1),
    ],
)
def test_every_op_of_an_unknown_session_is_session_expired(op: Any) -> None:
    h = Harness()
    assert h.err(op, sid=OTHER) == Codes.SESSIONEXPIRED


def test_close_ends_the_session_and_its_ephemerals() -> None:
    h = Harness(sessions=(SID, OTHER))
    h.create("/d")
    h.create("/d/e1", flags=p.EPHEMERAL)
    h.create("/d/e0", flags=p.EPHEMERAL)
    h.create("/keep", flags=p.EPHEMERAL, sid=OTHER)
    txn = h.ok(Close(1))
    assert txn.op == CloseSessionTxn() and txn.session_id == SID
    assert h.events == [
        (p.EVENT_NODE_DELETED, "/d/e0"),
        (p.EVENT_NODE_CHILDREN_CHANGED, "/d"),
        (p.EVENT_NODE_DELETED, "/d/e1"),
        (p.EVENT_NODE_CHILDREN_CHANGED, "/d"),
    ]
    assert h.prep.tree.get("/d/e0") is None and h.prep.tree.get("/keep") is not None
    assert h.err(mk("/after")) == Codes.SESSIONEXPIRED
    assert h.err(Close(2)) == Codes.SESSIONEXPIRED


def test_sync_is_an_ordered_marker_with_the_path() -> None:
    h = Harness()
    entry = h.step(Sync(1, "/some/path"))
    assert entry == Marker(SID, h.cxid, 0, PathResult("/some/path"))
    assert h.err(Sync(1, "bad")) == Codes.BADARGUMENTS


def test_unknown_ops_are_unimplemented() -> None:
    h = Harness()
    assert h.err(GetData(1, "/")) == Codes.UNIMPLEMENTED
    assert h.err("create /x") == Codes.UNIMPLEMENTED


# --- create ------------------------------------------------------------------------------------------


def test_create_each_node_type_gets_its_owner() -> None:
    h = Harness()
    h.create("/d")
    cases = {
        p.PERSISTENT: ("/d/p", 0),
        p.EPHEMERAL: ("/d/e", SID),
        p.PERSISTENT_SEQUENTIAL: ("/d/ps-0000000002", 0),
        p.EPHEMERAL_SEQUENTIAL: ("/d/es-0000000003", SID),
        p.CONTAINER: ("/d/c", CONTAINER_OWNER),
        p.PERSISTENT_WITH_TTL: ("/d/t", ttl_owner(500)),
        p.PERSISTENT_SEQUENTIAL_WITH_TTL: ("/d/ts-0000000006", ttl_owner(500)),
    }
    for flags, (want, owner) in cases.items():
        base = want[: want.index("-") + 1] if "-" in want else want
        ttl = 500 if flags in (p.PERSISTENT_WITH_TTL, p.PERSISTENT_SEQUENTIAL_WITH_TTL) else 0
        txn = h.ok(mk(base, flags, b"v", ttl=ttl))
        assert txn.op == CreateTxn(want, b"v", OPEN, owner), flags
        assert h.body.path == want and h.body.stat.ephemeralOwner == owner
        assert h.events == [(p.EVENT_NODE_CREATED, want), (p.EVENT_NODE_CHILDREN_CHANGED, "/d")]
    assert h.prep.tree.ephemerals(SID) == ["/d/e", "/d/es-0000000003"]


def test_sequence_numbers_come_from_the_parents_create_counter() -> None:
    # The reference's live check against ZooKeeper 3.8.0.
    h = Harness()
    h.create("/q")
    assert h.create("/q/s-", flags=p.PERSISTENT_SEQUENTIAL) == "/q/s-0000000000"
    assert h.create("/q/s-", flags=p.PERSISTENT_SEQUENTIAL) == "/q/s-0000000001"
    h.ok(Delete(1, "/q/s-0000000000"))
    h.ok(Delete(1, "/q/s-0000000001"))
    h.create("/q/plain")
    assert h.create("/q/s-", flags=p.PERSISTENT_SEQUENTIAL) == "/q/s-0000000003"
    assert h.stat("/q").cversion == 6
    assert h.replica.stat(h.replica.get("/q")).cversion == 6


def test_sequential_name_may_be_just_the_number_and_can_go_negative() -> None:
    h = Harness()
    h.create("/q")
    assert h.create("/q/", flags=p.PERSISTENT_SEQUENTIAL) == "/q/0000000000"
    assert h.create("/", flags=p.EPHEMERAL_SEQUENTIAL).startswith("/000000000")
    h.prep.tree.get("/q").creates = 2**31 - 1  # the int overflows like Java's
    assert h.prep.step(WriteRequest(1, SID, 99, mk("/q/x-", 2)), 1).op.path == "/q/x-2147483647"
    assert h.prep.step(WriteRequest(1, SID, 100, mk("/q/x-", 2)), 1).op.path == "/q/x--2147483648"


def test_sequential_create_cannot_collide_with_a_plain_node() -> None:
    h = Harness()
    h.create("/q")
    h.create("/q/s-0000000001")
    assert h.err(mk("/q/s-", p.PERSISTENT_SEQUENTIAL)) == Codes.NODEEXISTS
    # A failed create does not bump the counter: the same name collides until another create.
    assert h.err(mk("/q/s-", p.PERSISTENT_SEQUENTIAL)) == Codes.NODEEXISTS
    h.create("/q/other")
    assert h.create("/q/s-", flags=p.PERSISTENT_SEQUENTIAL) == "/q/s-0000000002"


@pytest.mark.parametrize(
    ("op", "code"),
    [
        (mk("/x", flags=-1), Codes.BADARGUMENTS),
        (mk("/x", flags=7), Codes.BADARGUMENTS),
        (mk("/x", flags="0"), Codes.BADARGUMENTS),
        (mk("/x", flags=p.PERSISTENT_WITH_TTL, ttl=0), Codes.BADARGUMENTS),
        (mk("/x", flags=p.PERSISTENT_WITH_TTL, ttl=-1), Codes.BADARGUMENTS),
        (mk("/x", flags=p.PERSISTENT_WITH_TTL, ttl=MAX_TTL_MS + 1), Codes.BADARGUMENTS),
        (mk("/x", flags=p.PERSISTENT_SEQUENTIAL_WITH_TTL, ttl=0), Codes.BADARGUMENTS),
        (mk("/x", flags=p.PERSISTENT, ttl=100), Codes.BADARGUMENTS),  # ttl without a TTL mode
        (mk("/x", flags=p.PERSISTENT_WITH_TTL, ttl="5"), Codes.BADARGUMENTS),
        (mk("/x", data=b"x" * (MAX_DATA + 1)), Codes.BADARGUMENTS),
        (mk("/x", data="text"), Codes.BADARGUMENTS),
        (mk("/x", data=bytearray(b"x")), Codes.BADARGUMENTS),
        (mk("x"), Codes.BADARGUMENTS),
        (mk("/x/"), Codes.BADARGUMENTS),
        (mk("/a//b"), Codes.BADARGUMENTS),
        (mk("/a/../b"), Codes.BADARGUMENTS),
        (mk("/x\x00"), Codes.BADARGUMENTS),
        (mk(None), Codes.BADARGUMENTS),
        (mk(""), Codes.BADARGUMENTS),
        (mk("/"), Codes.NODEEXISTS),  # the root exists: ZooKeeper answers NodeExists, not BadArguments
        (mk("/zookeeper/mine"), Codes.BADARGUMENTS),
        (mk("/zookeeper/", p.PERSISTENT_SEQUENTIAL), Codes.BADARGUMENTS),
        (mk("/zookeeper/quota/x/zookeeper_limits", data=b"count=one"), Codes.BADARGUMENTS),  # not StatsTrack text
        (mk("/zookeeper"), Codes.NODEEXISTS),
        (mk("/zookeeper/quota"), Codes.NODEEXISTS),  # what ensure_path("/zookeeper/quota/x") meets on its way
        (mk("/missing/child"), Codes.NONODE),
        (mk("/missing/s-", p.PERSISTENT_SEQUENTIAL), Codes.NONODE),
        (mk("/exists"), Codes.NODEEXISTS),
        (mk("/eph/child"), Codes.NOCHILDRENFOREPHEMERALS),
        (mk("/eph/s-", p.EPHEMERAL_SEQUENTIAL), Codes.NOCHILDRENFOREPHEMERALS),
        (mk("/x", acl=[]), Codes.INVALIDACL),
        (mk("/x", acl=None), Codes.INVALIDACL),
    ],
)
def test_create_errors(op: Create, code: int) -> None:
    h = Harness()
    h.create("/exists")
    h.create("/eph", flags=p.EPHEMERAL)
    assert h.err(op) == code


def test_create_data_may_be_exactly_the_limit() -> None:
    h = Harness()
    h.create("/x", b"x" * MAX_DATA)
    assert h.stat("/x").dataLength == MAX_DATA


def test_no_data_is_kept_apart_from_empty_data() -> None:
    """ZooKeeper's null data (kazoo's value=None): stored as None, dataLength 0, not b""."""
    h = Harness()
    h.create("/none", None)
    h.create("/empty", b"")
    assert h.prep.tree.get("/none").data is None and h.replica.get("/none").data is None
    assert h.replica.get("/empty").data == b""
    assert h.stat("/none").dataLength == 0
    h.ok(SetData(1, "/empty", None))
    h.ok(SetData(1, "/none", b""))
    assert h.replica.get("/empty").data is None and h.replica.get("/none").data == b""
    restored = DataTree.from_snapshot(h.replica.to_snapshot())
    assert restored.get("/empty").data is None and restored.get("/none").data == b""


def test_create_of_the_root_checks_create_on_it_then_answers_node_exists() -> None:
    h = Harness()
    h.ok(SetACL(1, "/", [ACL(Permissions.READ, Id("world", "anyone"))]))
    assert h.err(mk("/")) == Codes.NOAUTH
    assert h.err(mk("/"), auth=[Id("super", "")]) == Codes.NODEEXISTS


def test_children_of_containers_and_ttl_nodes_are_allowed() -> None:
    h = Harness()
    h.create("/c", flags=p.CONTAINER)
    h.create("/t", flags=p.PERSISTENT_WITH_TTL, ttl=10)
    h.create("/c/x")
    h.create("/t/x", flags=p.EPHEMERAL)


def test_check_order_follows_zookeeper() -> None:
    h = Harness()
    h.create("/locked", acl=READ_ACL_UNSAFE)
    # INVALIDACL is decided before the parent lookup, NONODE before NOAUTH, NOAUTH before NODEEXISTS.
    assert h.err(mk("/missing/x", acl=[])) == Codes.INVALIDACL
    assert h.err(mk("/missing/x", acl=READ_ACL_UNSAFE)) == Codes.NONODE
    h2 = Harness(check_acls=False)
    h2.create("/locked", acl=READ_ACL_UNSAFE)
    h2.create("/locked/x")
    h.prep.tree.get("/locked").children = {"x"}  # pretend x exists: NOAUTH still comes first
    assert h.err(mk("/locked/x")) == Codes.NOAUTH


# --- ACLs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "acl",
    [
        [ACL(32, Id("world", "anyone"))],
        [ACL(-1, Id("world", "anyone"))],
        [ACL(True, Id("world", "anyone"))],
        [ACL("31", Id("world", "anyone"))],
        [ACL(31, Id("world", "someone"))],
        [ACL(31, Id("unknown", "x"))],
        [ACL(31, Id("sasl", ""))],
        [ACL(31, Id("x509", ""))],
        [ACL(31, Id("digest", "nocolon"))],
        [ACL(31, Id("digest", "a:b:c"))],
        [ACL(31, Id("digest", "user:"))],
        [ACL(31, Id("ip", "1.2.3"))],
        [ACL(31, Id("ip", "1.2.3.4/33"))],
        [ACL(31, Id("ip", "1.2.3.4/x"))],
        [ACL(31, Id("ip", "::1/129"))],
        [ACL(31, Id("ip", "host.example"))],
        [ACL(31, Id("auth", ""))],  # no authenticated id
        [ACL(31, Id(7, "anyone"))],
        [ACL(31, "world:anyone")],
        [(31,)],
        ["ALL"],
        OPEN + [ACL(31, Id("digest", "bad"))],
        [ACL(31, Id("super", "anything"))],  # not a scheme an ACL may name, as ZooKeeper
    ],
)
def test_malformed_acls_are_invalid_acl(acl: Any) -> None:
    h = Harness()
    h.create("/n")
    assert h.err(mk("/x", acl=acl)) == Codes.INVALIDACL
    assert h.err(SetACL(1, "/n", acl)) == Codes.INVALIDACL


@pytest.mark.parametrize(
    "acl",
    [
        OPEN,
        READ_ACL_UNSAFE,
        [ACL(0, Id("world", "anyone"))],
        [make_digest_acl("u", "p", all=True)],
        [ACL(31, Id("digest", ":hash"))],
        [ACL(31, Id("ip", "10.0.0.0/8"))],
        [ACL(31, Id("ip", "127.0.0.1"))],
        [ACL(31, Id("ip", "::1"))],
        [ACL(31, Id("ip", "fe80::/10"))],
    ],
)
def test_well_formed_acls_are_stored(acl: list[ACL]) -> None:
    h = Harness()
    h.create("/x", acl=acl)
    assert h.prep.tree.get("/x").acl == acl and h.replica.get("/x").acl == acl


def test_auth_acl_becomes_the_requesters_ids_and_duplicates_go() -> None:
    h = Harness()
    auth = [ALICE, Id("ip", "127.0.0.1"), BOB]
    h.create("/x", acl=CREATOR_ALL_ACL + [ACL(31, ALICE), ACL(1, Id("world", "anyone"))] * 2, auth=auth)
    assert h.prep.tree.get("/x").acl == [ACL(31, ALICE), ACL(31, BOB), ACL(1, Id("world", "anyone"))]
    # ip ids do not count as authenticated (IPAuthenticationProvider.isAuthenticated is false)
    assert h.err(mk("/y", acl=CREATOR_ALL_ACL), auth=[Id("ip", "127.0.0.1")]) == Codes.INVALIDACL
    assert fixup_acl(CREATOR_ALL_ACL, [SUPER]) == Codes.INVALIDACL


def test_permissions_are_checked_per_op() -> None:
    h = Harness()
    alice_all = [ACL(Permissions.ALL, ALICE)]
    h.create("/a", acl=alice_all, auth=[ALICE])
    h.create("/a/child", acl=OPEN, auth=[ALICE])
    # strangers: CREATE/DELETE on the parent, WRITE/ADMIN/READ on the node
    assert h.err(mk("/a/x")) == Codes.NOAUTH
    assert h.err(Delete(1, "/a/child")) == Codes.NOAUTH
    assert h.err(SetData(1, "/a", b"")) == Codes.NOAUTH
    assert h.err(SetACL(1, "/a", OPEN)) == Codes.NOAUTH
    assert h.err(Check(1, "/a", -1)) == Codes.NOAUTH
    assert h.step(Check(1, "/a/child", -1)).err == 0  # child is open
    assert h.err(mk("/a/x"), auth=[BOB]) == Codes.NOAUTH
    # the owner and super may
    h.ok(SetData(1, "/a", b"v"), auth=[ALICE])
    h.ok(mk("/a/y"), auth=[SUPER])
    h.ok(Delete(1, "/a/child"), auth=[BOB, ALICE])
    h.ok(SetACL(1, "/a", READ_ACL_UNSAFE), auth=[ALICE])
    assert h.err(SetData(1, "/a", b"w"), auth=[ALICE]) == Codes.NOAUTH


def test_each_permission_bit_grants_only_its_op() -> None:
    h = Harness()
    for perm, op in [
        (Permissions.CREATE, mk("/n/x")),
        (Permissions.WRITE, SetData(1, "/n", b"")),
        (Permissions.ADMIN, SetACL(1, "/n", [ACL(31, ALICE)])),
        (Permissions.READ, Check(1, "/n", -1)),
    ]:
        other = Permissions.ALL & ~perm
        h.create("/n", acl=[ACL(other, ALICE)], auth=[ALICE])
        assert h.err(op, auth=[ALICE]) == Codes.NOAUTH, perm
        h.ok(SetACL(1, "/n", [ACL(perm, ALICE)]), auth=[SUPER])
        entry = h.step(op, auth=[ALICE])
        assert entry.err == 0 if isinstance(entry, Marker) else True, perm
        h.prep.tree.get("/n")  # still there
        for name in list(h.prep.tree.get("/n").children):
            h.ok(Delete(1, "/n/" + name), auth=[SUPER])
        h.ok(Delete(1, "/n"), auth=[SUPER])
    h.create("/n", acl=[ACL(Permissions.ALL & ~Permissions.DELETE, ALICE)], auth=[ALICE])
    h.create("/n/x", auth=[ALICE])
    assert h.err(Delete(1, "/n/x"), auth=[ALICE]) == Codes.NOAUTH


def test_ip_acls_match_by_prefix() -> None:
    h = Harness()
    h.create("/net", acl=[ACL(31, Id("ip", "10.1.0.0/16")), ACL(1, Id("ip", "::1"))])
    h.ok(SetData(1, "/net", b"x"), auth=[Id("ip", "10.1.200.3")])
    assert h.err(SetData(1, "/net", b"x"), auth=[Id("ip", "10.2.0.1")]) == Codes.NOAUTH
    assert h.err(SetData(1, "/net", b"x"), auth=[Id("ip", "::1")]) == Codes.NOAUTH  # READ only
    assert h.step(Check(1, "/net", -1), auth=[Id("ip", "::1")]).err == 0
    assert allowed([ACL(31, Id("ip", "1.2.3.4"))], 1, [Id("ip", "1.2.3.4")])
    assert not allowed([ACL(31, Id("ip", "1.2.3.4"))], 1, [Id("ip", "not-an-ip")])
    assert allowed([], 1, [])  # an empty ACL allows everything


def test_reserved_config_node_is_read_only_and_checks_can_be_switched_off() -> None:
    h = Harness()
    assert h.err(SetData(1, "/zookeeper/config", b"x")) == Codes.NOAUTH
    h.ok(SetData(1, "/zookeeper/config", b"x"), auth=[SUPER])
    h.ok(SetData(1, "/zookeeper/quota", b"x"))
    off = Harness(check_acls=False)
    off.create("/r", acl=READ_ACL_UNSAFE)
    off.ok(SetACL(1, "/r", OPEN))


# --- delete / setData / setACL / check ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "code"),
    [
        (Delete(1, "/missing"), Codes.NONODE),
        (Delete(1, "/n", 5), Codes.BADVERSION),
        (Delete(1, "/parent"), Codes.NOTEMPTY),
        (Delete(1, "/parent", 0), Codes.NOTEMPTY),
        (Delete(1, "/parent", 3), Codes.BADVERSION),  # BADVERSION is checked before NOTEMPTY
        (Delete(1, "/"), Codes.BADARGUMENTS),
        (Delete(1, "/zookeeper"), Codes.BADARGUMENTS),
        (Delete(1, "/zookeeper/quota"), Codes.BADARGUMENTS),
        (Delete(1, "/zookeeper/config"), Codes.BADARGUMENTS),
        (Delete(1, "bad"), Codes.BADARGUMENTS),
        (Delete(1, "/n", "0"), Codes.BADARGUMENTS),
        (SetData(1, "/missing", b""), Codes.NONODE),
        (SetData(1, "/n", b"", 1), Codes.BADVERSION),
        (SetData(1, "/n", b"x" * (MAX_DATA + 1)), Codes.BADARGUMENTS),
        (SetData(1, "/n", "str"), Codes.BADARGUMENTS),
        (SetData(1, "/n/", b""), Codes.BADARGUMENTS),
        (SetData(1, "/n", b"", None), Codes.BADARGUMENTS),
        (SetACL(1, "/missing", OPEN), Codes.NONODE),
        (SetACL(1, "/n", OPEN, 1), Codes.BADVERSION),
        (SetACL(1, "/n", []), Codes.INVALIDACL),
        (SetACL(1, "//", OPEN), Codes.BADARGUMENTS),
        (Check(1, "/missing", -1), Codes.NONODE),
        (Check(1, "/n", 1), Codes.BADVERSION),
        (Check(1, "n", 0), Codes.BADARGUMENTS),
    ],
)
def test_write_errors(op: Any, code: int) -> None:
    h = Harness()
    h.create("/n")
    h.create("/parent")
    h.create("/parent/kid")
    assert h.err(op) == code


def test_delete_with_any_or_the_exact_version() -> None:
    h = Harness()
    h.create("/a")
    h.create("/b")
    h.ok(SetData(1, "/b", b"1"))
    txn = h.ok(Delete(1, "/a", -1))
    assert txn.op == DeleteTxn("/a") and h.body is None
    assert h.events == [(p.EVENT_NODE_DELETED, "/a"), (p.EVENT_NODE_CHILDREN_CHANGED, "/")]
    h.ok(Delete(1, "/b", 1))
    assert h.prep.tree.get("/a") is None and h.prep.tree.get("/b") is None


def test_set_data_bumps_the_version_and_fires_data_changed() -> None:
    h = Harness()
    h.create("/n", b"a")
    txn = h.ok(SetData(1, "/n", b"bb", 0))
    assert txn.op == SetDataTxn("/n", b"bb", 1)
    assert h.body.stat.version == 1 and h.body.stat.dataLength == 2 and h.body.stat.mtime == txn.time_ms
    assert h.events == [(p.EVENT_NODE_DATA_CHANGED, "/n")]
    assert h.ok(SetData(1, "/n", b"c", -1)).op.version == 2
    assert h.err(SetData(1, "/n", b"d", 1)) == Codes.BADVERSION


def test_set_acl_checks_the_acl_version_not_the_data_version() -> None:
    h = Harness()
    h.create("/n")
    h.ok(SetData(1, "/n", b"x"))
    h.ok(SetData(1, "/n", b"y"))
    assert h.err(SetACL(1, "/n", READ_ACL_UNSAFE, 2)) == Codes.BADVERSION
    txn = h.ok(SetACL(1, "/n", OPEN, 0))
    assert txn.op == SetACLTxn("/n", OPEN, 1)
    assert h.body.stat.aversion == 1 and h.body.stat.version == 2 and h.events == []


def test_standalone_check_is_a_marker_and_changes_nothing() -> None:
    h = Harness()
    h.create("/n")
    before = h.prep.last_zxid
    assert h.step(Check(1, "/n", 0)) == Marker(SID, h.cxid, 0)
    assert h.step(Check(1, "/n", -1)).err == 0
    assert h.prep.last_zxid == before


# --- multi -------------------------------------------------------------------------------------------


def test_multi_succeeds_as_one_txn_seeing_its_own_earlier_ops() -> None:
    h = Harness()
    h.create("/t")
    txn = h.ok(
        Multi(
            1,
            [
                mk("/t/a", data=b"1"),
                mk("/t/a/b"),  # parent created just before
                SetData(1, "/t/a", b"2", 0),  # version as after the create
                Check(1, "/t/a", 1),
                mk("/t/s-", p.PERSISTENT_SEQUENTIAL),  # /t's counter as after the first create
                Delete(1, "/t/a/b"),
                Delete(1, "/t/a", 1),  # empty again
                mk("/t/a", flags=p.EPHEMERAL),  # exists no more
            ],
        )
    )
    assert isinstance(txn.op, MultiTxn)
    assert [type(op) for op in txn.op.ops] == [
        CreateTxn,
        CreateTxn,
        SetDataTxn,
        CheckTxn,
        CreateTxn,
        DeleteTxn,
        DeleteTxn,
        CreateTxn,
    ]
    assert txn.op.ops[4].path == "/t/s-0000000001"
    assert txn.op.ops[7].ephemeral_owner == SID
    r = h.body.results
    assert [x.err for x in r] == [0] * 8
    assert r[0].path == "/t/a" and r[2].stat.version == 1 and r[3] == OpResult(0) and r[5] == OpResult(0)
    assert all(x.stat is None or x.stat.czxid <= txn.zxid for x in r)
    assert h.events[:2] == [(p.EVENT_NODE_CREATED, "/t/a"), (p.EVENT_NODE_CHILDREN_CHANGED, "/t")]
    assert h.stat("/t").cversion == 2 * 3 - 2
    assert h.prep.tree.ephemerals(SID) == ["/t/a"]


@pytest.mark.parametrize(
    ("ops", "at", "code"),
    [
        ([mk("/t/b"), mk("/t/a"), Delete(1, "/t/a")], 1, Codes.NODEEXISTS),  # the reference's live check
        ([mk("/x/y")], 0, Codes.NONODE),
        ([mk("/t/n"), Check(1, "/t/n", 1)], 1, Codes.BADVERSION),
        ([mk("/t/n"), mk("/t/n/k"), Delete(1, "/t/n")], 2, Codes.NOTEMPTY),
        ([Delete(1, "/t/a"), SetData(1, "/t/a", b"")], 1, Codes.NONODE),
        ([mk("/t/e", p.EPHEMERAL), mk("/t/e/k")], 1, Codes.NOCHILDRENFOREPHEMERALS),
        ([SetData(1, "/t", b"", 0), SetData(1, "/t", b"", 0)], 1, Codes.BADVERSION),
        ([mk("/t/x", data=b"x" * (MAX_DATA + 1))], 0, Codes.BADARGUMENTS),
        ([mk("/t/ok"), Sync(1, "/t")], 1, Codes.BADARGUMENTS),  # not an op a multi may hold
        ([mk("/t/ok"), Multi(1, [])], 1, Codes.BADARGUMENTS),
        ([mk("/t/ok"), "junk", mk("/t/ok2")], 1, Codes.BADARGUMENTS),
        ([mk("/t/ok"), mk("/t/acl", acl=[])], 1, Codes.INVALIDACL),
        ([mk("/t/ok"), SetData(1, "/t/locked", b"")], 1, Codes.NOAUTH),
    ],
)
def test_failed_multi_encodes_every_slot_and_leaves_the_tree_unchanged(ops: list[Any], at: int, code: int) -> None:
    h = Harness()
    h.create("/t")
    h.create("/t/a")
    h.create("/t/locked", acl=READ_ACL_UNSAFE)
    entry = h.step(Multi(1, ops))
    assert isinstance(entry, Marker) and entry.err == 0
    expect = [OpResult(0)] * at + [OpResult(code)] + [OpResult(Codes.RUNTIMEINCONSISTENCY)] * (len(ops) - at - 1)
    assert entry.body == MultiResult(expect)
    # nothing of the failed multi is visible to the next request
    assert h.prep.tree.digest() == h.replica.digest()
    assert h.create("/t/b") == "/t/b"
    assert h.create("/t/s-", flags=p.PERSISTENT_SEQUENTIAL) == "/t/s-0000000003"


def test_empty_multi_is_an_empty_multi_txn() -> None:
    h = Harness()
    txn = h.ok(Multi(1, []))
    assert txn.op == MultiTxn([]) and h.body == MultiResult([])


def test_multi_with_garbage_ops_list_is_bad_arguments() -> None:
    h = Harness()
    assert h.err(Multi(1, None)) == Codes.BADARGUMENTS


# --- expiry and reaping ------------------------------------------------------------------------------


def test_expire_closes_each_live_session_once() -> None:
    h = Harness(sessions=(SID, OTHER))
    h.create("/e", flags=p.EPHEMERAL, sid=OTHER)
    txns = h.prep.expire([OTHER, 999, OTHER, SID], 5_000)
    assert [(t.session_id, t.op, t.time_ms) for t in txns] == [
        (OTHER, CloseSessionTxn(), 5_000),
        (SID, CloseSessionTxn(), 5_000),
    ]
    assert txns[1].zxid == txns[0].zxid + 1
    h.run(txns)
    assert h.prep.tree.sessions == {} and h.prep.tree.get("/e") is None
    assert h.prep.expire([SID], 6_000) == []


def test_containers_are_reaped_once_they_had_a_child_and_have_none() -> None:
    h = Harness()
    h.create("/never", flags=p.CONTAINER)
    h.create("/busy", flags=p.CONTAINER)
    h.create("/busy/x")
    h.create("/b", flags=p.CONTAINER)
    h.create("/b/x")
    h.create("/a", flags=p.CONTAINER)
    h.create("/a/x")
    assert h.prep.reap(h.now) == []
    h.ok(Delete(1, "/b/x"))
    h.ok(Delete(1, "/a/x"))
    txns = h.prep.reap(h.now)
    assert [(t.op, t.session_id, t.cxid) for t in txns] == [(DeleteTxn("/a"), 0, 0), (DeleteTxn("/b"), 0, 0)]
    h.run(txns)
    assert h.events == [(p.EVENT_NODE_DELETED, "/b"), (p.EVENT_NODE_CHILDREN_CHANGED, "/")]
    assert h.prep.reap(h.now) == []
    assert h.prep.tree.get("/never") is not None and h.prep.tree.get("/busy") is not None


def test_nested_containers_go_one_level_per_round_and_the_limit_holds() -> None:
    h = Harness()
    h.create("/c", flags=p.CONTAINER)
    h.create("/c/d", flags=p.CONTAINER)
    for i in range(3):
        h.create(f"/c/d/{i}")
        h.ok(Delete(1, f"/c/d/{i}"))
    h.create("/e", flags=p.CONTAINER)
    h.create("/e/x")
    h.ok(Delete(1, "/e/x"))
    assert [t.op.path for t in h.prep.reap(h.now, limit=1)] == ["/c/d"]
    assert [t.op.path for t in h.prep.reap(h.now)] == ["/c", "/e"]


def test_ttl_nodes_are_reaped_when_childless_and_older_than_their_ttl() -> None:
    h = Harness()
    h.create("/t", flags=p.PERSISTENT_WITH_TTL, ttl=1_000)
    busy = h.create("/busy", flags=p.PERSISTENT_SEQUENTIAL_WITH_TTL, ttl=1_000)
    h.create(busy + "/kid")
    mtime = h.stat("/t").mtime
    assert h.prep.reap(mtime + 1_000) == []  # strictly older than the ttl
    h.ok(SetData(1, "/t", b"touch"))  # a data change restarts the clock
    mtime = h.stat("/t").mtime
    assert h.prep.reap(mtime + 1_000) == []
    txns = h.prep.reap(mtime + 1_001)
    assert [t.op for t in txns] == [DeleteTxn("/t")]
    h.run(txns)
    assert h.prep.tree.ttls == {busy}


# --- bad input never raises --------------------------------------------------------------------------


class _NotARequest:
    pass


def test_garbage_requests_get_a_marker() -> None:
    h = Harness()
    log = structlog.get_logger()
    prep = Prep(DataTree(), epoch=1, max_data_bytes=10, log=log)
    assert prep.step(_NotARequest(), 0) == Marker(0, 0, Codes.BADARGUMENTS)  # type: ignore[arg-type]
    assert prep.step(WriteRequest(1, "sid", 1, Close(1)), 0).err == Codes.BADARGUMENTS
    assert isinstance(h.step(mk("/x"), auth="not a list"), Txn)  # auth of the wrong shape counts as none
    assert h.err(mk("/y", acl=CREATOR_ALL_ACL), auth=[("digest", "u:h")]) == Codes.INVALIDACL  # not Ids


_weird = st.sampled_from([None, -1, 0, 1, 7, 2**40, 2**70, "", "/", "/a", "x", b"", b"/a", 1.5, [], [None], {}, True])


@st.composite
def _garbage_ops(draw: st.DrawFn) -> Any:
    cls = draw(st.sampled_from([Create, Delete, SetData, SetACL, Check, Sync, Close, Multi, OpenSession]))
    fields = cls.__struct_fields__
    values = [draw(_weird) for _ in fields]
    if cls is Multi and draw(st.booleans()):
        values[1] = [draw(_garbage_ops()) for _ in range(draw(st.integers(0, 3)))]
    return cls(*values)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_garbage_ops(), max_size=8))
def test_prep_never_raises_on_malformed_fields(ops: list[Any]) -> None:
    h = Harness()
    h.create("/a")
    for op in ops:
        entry = h.step(op)  # the harness also replays every txn on a replica
        assert isinstance(entry, (Txn, Marker))


# --- replica equivalence -----------------------------------------------------------------------------

_PATHS = ["/a", "/b", "/a/b", "/a/s-", "/b/", "/c", "/a/b/c", "/c/d", "/zookeeper/x"]
_SESSIONS = [11, 12, 13]


def _st_write() -> st.SearchStrategy[Any]:
    path = st.sampled_from(_PATHS)
    version = st.sampled_from([-1, -1, 0, 1])
    data = st.sampled_from([b"", b"x", b"yy"])
    acl = st.sampled_from(
        [OPEN, OPEN, READ_ACL_UNSAFE, CREATOR_ALL_ACL, [make_acl("world", "anyone", read=True, create=True)]]
    )
    create = st.builds(
        lambda path, data, acl, flags, ttl, odd: Create(1, path, data, acl, flags, ttl if (flags >= 5) != odd else 0),
        path,
        data,
        acl,
        st.integers(0, 6),
        st.sampled_from([5, 50]),
        st.sampled_from([False, False, False, True]),  # sometimes a TTL where none belongs, or none
    )
    simple = st.one_of(
        create,
        create,
        create,
        create,
        st.builds(Delete, st.just(1), path, version),
        st.builds(SetData, st.just(1), path, data, version),
        st.builds(SetACL, st.just(1), path, acl, version),
        st.builds(Check, st.just(1), path, version),
    )
    return st.one_of(
        simple,
        simple,
        simple,
        st.builds(Multi, st.just(1), st.lists(simple, max_size=4)),
        st.builds(Sync, st.just(1), path),
    )


@st.composite
def _action(draw: st.DrawFn) -> tuple[Any, ...]:
    roll = draw(st.integers(0, 99))  # mostly requests; session churn and reaping now and then
    sid = draw(st.sampled_from(_SESSIONS))
    if roll < 85:
        return ("req", sid, draw(_st_write()), draw(st.booleans()))
    if roll < 89:
        return ("req", sid, Close(1), False)
    if roll < 93:
        return ("open", sid)
    if roll < 96:
        return ("expire", draw(st.lists(st.sampled_from(_SESSIONS), max_size=2)))
    return ("reap", draw(st.integers(0, 100)))


def _run_actions(prep: Prep, actions: list[tuple[Any, ...]], stats: dict[str, int] | None = None) -> list[Txn]:
    """Feed `actions` through prep (sessions open first); the txns it emitted, in order."""
    emitted: list[Txn] = []
    now = 10_000
    actions = [("open", sid) for sid in _SESSIONS] + list(actions)
    for i, action in enumerate(actions):
        now += 7
        kind = action[0]
        if kind == "req":
            _, sid, op, authed = action
            entry = prep.step(WriteRequest(1, sid, i, op, [ALICE] if authed else []), now)
            if isinstance(entry, Txn):
                emitted.append(entry)
            elif isinstance(op, Multi) and entry.body is not None:
                errs = [r.err for r in entry.body.results]
                assert len(errs) == len(op.ops)
                bad = [e for e in errs if e not in (0, Codes.RUNTIMEINCONSISTENCY)]
                assert len(bad) == 1 and all(e == 0 for e in errs[: errs.index(bad[0])])
            if stats is not None:
                name = type(entry.op).__name__ if isinstance(entry, Txn) else f"marker{entry.err}"
                stats[name] = stats.get(name, 0) + 1
        elif kind == "open":
            entry = prep.step(WriteRequest(1, action[1], i, OpenSession(action[1], 5_000, b"pw")), now)
            if isinstance(entry, Txn):
                emitted.append(entry)
        elif kind == "expire":
            emitted.extend(prep.expire(action[1], now))
        else:
            now += action[1]
            reaped = prep.reap(now)
            emitted.extend(reaped)
            if stats is not None:
                stats["reaped"] = stats.get("reaped", 0) + len(reaped)
    return emitted


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_action(), min_size=1, max_size=60))
def test_replaying_preps_txns_on_a_fresh_tree_gives_the_same_tree(actions: list[tuple[Any, ...]]) -> None:
    prep = Prep(DataTree(), epoch=2, max_data_bytes=MAX_DATA, log=structlog.get_logger())
    emitted = _run_actions(prep, actions)
    replica = DataTree()
    for txn in emitted:
        replica.apply(txn)
    assert [t.zxid for t in emitted] == [zx.make(2, n) for n in range(1, len(emitted) + 1)]
    assert replica.digest() == prep.tree.digest()
    assert replica.to_snapshot() == prep.tree.to_snapshot()
    assert DataTree.from_snapshot(replica.to_snapshot()).digest() == replica.digest()


def _random_op(rng: random.Random, tree: DataTree, sid: int) -> Any:
    """A request mostly about nodes that exist, so that most of them succeed."""
    paths = [path for path in tree.nodes if not path.startswith("/zookeeper")]
    node = rng.choice(paths)
    base = "" if node == "/" else node
    version = rng.choice([-1, -1, -1, 0, 1])
    roll = rng.random()
    if roll < 0.45:
        flags = rng.choice([0, 0, 0, 1, 2, 3, 4, 5, 6])
        ttl = rng.choice([5, 50, 500]) if flags >= 5 else 0
        return Create(1, f"{base}/{rng.choice('abcdefgh')}", rng.choice([b"", b"v"]), OPEN, flags, ttl)
    if roll < 0.60:
        return Delete(1, node, version)
    if roll < 0.75:
        return SetData(1, node, rng.choice([b"", b"x", b"yz"]), version)
    if roll < 0.80:
        return SetACL(1, node, rng.choice([OPEN, READ_ACL_UNSAFE]), version)
    if roll < 0.85:
        return Check(1, node, version)
    ops = []
    for _ in range(rng.randint(0, 5)):
        sub = _random_op(rng, tree, sid)
        if isinstance(sub, (Create, Delete, SetData, Check)):
            ops.append(sub)
    return Multi(1, ops)


@pytest.mark.parametrize("seed", range(6))
def test_seeded_random_walk_keeps_every_replica_equal(seed: int) -> None:
    rng = random.Random(seed)
    prep = Prep(DataTree(), epoch=5, max_data_bytes=MAX_DATA, log=structlog.get_logger(), check_acls=False)
    replica = DataTree()
    now = 1_000
    counts: dict[str, int] = {}
    for step in range(1_500):
        now += rng.randint(0, 20)
        roll = rng.random()
        if roll < 0.03:
            txns = [prep.step(WriteRequest(1, sid, step, OpenSession(sid, 1_000, b"pw")), now) for sid in _SESSIONS]
        elif roll < 0.05:
            txns = prep.expire([rng.choice(_SESSIONS)], now)
        elif roll < 0.10:
            txns = prep.reap(now)
        else:
            live = sorted(prep.tree.sessions) or [_SESSIONS[0]]
            sid = rng.choice(live)
            txns = [prep.step(WriteRequest(1, sid, step, _random_op(rng, prep.tree, sid)), now)]
        for entry in txns:
            if isinstance(entry, Txn):
                replica.apply(entry)
                kind = type(entry.op).__name__
            else:
                kind = f"marker{entry.err}"
            counts[kind] = counts.get(kind, 0) + 1
    assert replica.digest() == prep.tree.digest()
    assert replica.to_snapshot() == prep.tree.to_snapshot()
    # the walk really went places
    assert counts.get("CreateTxn", 0) > 200 and counts.get("DeleteTxn", 0) > 30
    assert counts.get("MultiTxn", 0) > 20 and counts.get("CloseSessionTxn", 0) > 5


# --- re-sent requests (ZAB clients retry after ConnectionLoss with the same session and xid) ----


def test_a_resent_write_is_answered_with_its_original_result_not_applied_twice() -> None:
    h = Harness()
    h.create("/q")
    first = h.prep.step(WriteRequest(1, SID, 500, mk("/q/n-", p.PERSISTENT_SEQUENTIAL)), 1)
    assert isinstance(first, Txn)
    h._replicate(first)
    again = h.prep.step(WriteRequest(2, SID, 500, mk("/q/n-", p.PERSISTENT_SEQUENTIAL)), 2)
    assert again == Marker(SID, 500, 0, None, replay=first.zxid)
    assert h.prep.tree.get("/q").children == {"n-0000000000"}
    # Every replica remembers the same result for it.
    zxid, body = h.replica.recent_result(SID, 500)
    assert zxid == first.zxid and body.path == "/q/n-0000000000"


def test_a_failed_request_is_not_remembered_and_runs_again() -> None:
    h = Harness()
    h.create("/a")
    failed = h.prep.step(WriteRequest(1, SID, 600, mk("/a")), 1)
    assert isinstance(failed, Marker) and failed.err == Codes.NODEEXISTS
    assert h.prep.tree.recent_result(SID, 600) is None


def test_the_remembered_results_are_bounded_and_end_with_the_session() -> None:
    from actors.session.tree import RECENT_PER_SESSION

    h = Harness()
    for i in range(RECENT_PER_SESSION + 5):
        h.create(f"/n{i}")
    table = h.prep.tree.recent[SID]
    assert len(table) == RECENT_PER_SESSION
    assert min(table) == h.cxid - RECENT_PER_SESSION + 1  # the oldest went first
    h.ok(Close(1))
    assert SID not in h.prep.tree.recent and SID not in h.replica.recent


def test_remembered_results_survive_a_snapshot() -> None:
    h = Harness()
    h.create("/s")
    h.ok(SetData(1, "/s", b"v", -1))
    tree = DataTree.from_snapshot(h.replica.to_snapshot())
    assert tree.recent == h.replica.recent
    assert tree.recent_result(SID, h.cxid)[1].stat.version == 1


def test_the_client_never_has_more_requests_in_flight_than_a_session_remembers() -> None:
    from actors.session.tree import RECENT_PER_SESSION
    from zoomq.engine import MAX_IN_FLIGHT

    assert MAX_IN_FLIGHT <= RECENT_PER_SESSION
