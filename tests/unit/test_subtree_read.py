"""GetSubtree in the session core (actors/session/session.py + reads.py), as scripts: client frames
in, replies out. One step answers the whole subtree, so it is consistent at the tree's zxid."""

from __future__ import annotations

import itertools

import msgspec
import pytest
import structlog

from actors.protocol.internal import Committed, Looking, SyncPoint, WriteRequest
from actors.protocol.txn import CONTAINER_OWNER, CreateSessionTxn, CreateTxn, Txn, ttl_owner
from actors.session.session import SessionCore
from actors.session.tree import DataTree
from runtime.config import NodeConfig, ServerEntry
from zoomq import protocol as p
from zoomq.exceptions import Codes
from zoomq.security import ACL, OPEN_ACL_UNSAFE, Id, Permissions, make_digest_acl

pytestmark = pytest.mark.timeout(30)
A = b"conn-a"
DECODE = msgspec.msgpack.Decoder(p.ServerMsg).decode
ENCODE = msgspec.msgpack.Encoder().encode
SECRET_ACL = [make_digest_acl("bob", "pw", all=True)]
BOB_READS = [make_digest_acl("bob", "pw", read=True), ACL(Permissions.READ, Id("world", "anyone"))]


class Script:
    """A session core on a standalone node's tree, and one client session."""

    def __init__(self, tree: DataTree, **cfg) -> None:
        counter = itertools.count(1)
        self.core = SessionCore(
            cfg=NodeConfig(sid=1, **cfg),
            log=structlog.get_logger(),
            now=0.0,
            wall_ms=1_000,
            random_bytes=lambda n: bytes([next(counter) % 256]) * n,
        )
        self.core.sync_point(SyncPoint(tree.last_zxid, 1, "standalone"), tree, 0.0)
        self.zxid = tree.last_zxid
        self.core.client_frames(A, [ENCODE(p.Connect(p.PROTOCOL_VERSION, 0, 10_000))], 0.0)
        (req,) = [e.msg for e in self.core.take_effects() if isinstance(e.msg, WriteRequest)]
        self.session_id = req.session_id
        self.commit(Txn(self.next(), 0, req.session_id, 0, CreateSessionTxn(10_000, req.op.passwd)))
        (connected,) = self.out()
        assert connected.timeout_ms == 10_000

    def next(self) -> int:
        self.zxid += 1
        return self.zxid

    def commit(self, *entries) -> None:
        self.core.role_message(Committed(list(entries)), 0.0)

    def send(self, *msgs) -> list:
        self.core.client_frames(A, [ENCODE(m) for m in msgs], 0.0)
        return self.out()

    def out(self) -> list:
        return [DECODE(f) for f in self.core.out.pop(A, [])]

    def subtree(self, path: str = "/") -> p.Reply:
        (reply,) = self.send(p.GetSubtree(7, path))
        assert reply.xid == 7
        return reply


def tree_of(*creates: tuple) -> DataTree:
    tree = DataTree()
    for i, (path, data, *rest) in enumerate(creates, start=1):
        acl = rest[0] if rest else OPEN_ACL_UNSAFE
        owner = rest[1] if len(rest) > 1 else 0
        tree.apply(Txn(i, 1_000 + i, 0, 0, CreateTxn(path, data, acl, owner)), results=False)
    return tree


def test_the_whole_subtree_comes_in_one_reply_parents_first_at_the_trees_zxid():
    tree = tree_of(
        ("/app", b"v"), ("/app/b", None), ("/app/a", b""), ("/app/a/x", b"\x00\xff"), ("/app-z", b"z"), ("/other", b"o")
    )
    s = Script(tree)
    reply = s.subtree("/app")
    assert reply.err == Codes.OK
    body = reply.body
    assert isinstance(body, p.SubtreeResult)
    assert body.zxid == reply.zxid == s.zxid  # the one point it is consistent at
    assert [n.path for n in body.nodes] == ["/app", "/app/a", "/app/a/x", "/app/b"]  # depth first, children by name
    by_path = {n.path: n for n in body.nodes}
    assert by_path["/app/b"].data is None and by_path["/app/a"].data == b""  # null kept apart from empty
    assert by_path["/app/a/x"].data == b"\x00\xff"
    assert by_path["/app"].stat.numChildren == 2 and by_path["/app"].acl == OPEN_ACL_UNSAFE
    assert (body.ephemerals, body.unreadable, body.masked) == ([], 0, 0)
    assert [n.path for n in s.subtree("/").body.nodes][:3] == ["/", "/app", "/app/a"]


def test_ephemerals_are_left_out_and_listed_containers_and_ttls_kept_with_their_owner_marker():
    tree = tree_of(
        ("/s", b""), ("/s/c", b"", OPEN_ACL_UNSAFE, CONTAINER_OWNER), ("/s/t", b"t", OPEN_ACL_UNSAFE, ttl_owner(5_000))
    )
    s = Script(tree)
    s.commit(Txn(s.next(), 0, s.session_id, 1, CreateTxn("/s/e", b"mine", OPEN_ACL_UNSAFE, s.session_id)))
    body = s.subtree("/s").body
    assert [n.path for n in body.nodes] == ["/s", "/s/c", "/s/t"]
    assert body.ephemerals == ["/s/e"]
    owners = {n.path: n.stat.ephemeralOwner for n in body.nodes}
    assert owners["/s/c"] == CONTAINER_OWNER and owners["/s/t"] == ttl_owner(5_000)


def test_a_node_the_session_may_not_read_is_left_out_with_what_is_below_it_and_counted():
    tree = tree_of(
        ("/r", b""), ("/r/open", b"1"), ("/r/secret", b"2", SECRET_ACL), ("/r/secret/kid", b"3"), ("/r/z", b"4")
    )
    s = Script(tree)
    body = s.subtree("/r").body
    assert [n.path for n in body.nodes] == ["/r", "/r/open", "/r/z"]
    assert body.unreadable == 1  # the node itself; the size of what is below it is not told
    assert s.subtree("/r/secret").err == Codes.NOAUTH  # the root itself unreadable: the whole read refused
    s.send(p.Auth(p.AUTH_XID, "digest", b"bob:pw"))
    body = s.subtree("/r").body
    assert [n.path for n in body.nodes] == ["/r", "/r/open", "/r/secret", "/r/secret/kid", "/r/z"]
    assert body.unreadable == 0


def test_digest_ids_are_masked_without_admin_as_get_acl_masks_them():
    tree = tree_of(("/m", b"", BOB_READS))
    s = Script(tree)
    (node,) = s.subtree("/m").body.nodes
    assert node.acl[0].id == Id("digest", "bob:x") and s.subtree("/m").body.masked == 1
    tree2 = tree_of(("/m", b"", SECRET_ACL))
    s2 = Script(tree2)
    s2.send(p.Auth(p.AUTH_XID, "digest", b"bob:pw"))
    body = s2.subtree("/m").body
    assert body.nodes[0].acl == SECRET_ACL and body.masked == 0  # ADMIN: the real id, restorable


def test_a_subtree_above_backup_max_znodes_is_refused_with_bad_arguments():
    tree = tree_of(("/big", b""), *((f"/big/n{i}", b"") for i in range(5)))
    s = Script(tree, backup_max_znodes=6)
    assert s.subtree("/big").err == Codes.OK  # 6 znodes: at the bound
    s.commit(Txn(s.next(), 0, 0, 0, CreateTxn("/big/n5", b"", OPEN_ACL_UNSAFE)))
    reply = s.subtree("/big")
    assert (reply.err, reply.body) == (Codes.BADARGUMENTS, None)
    assert s.subtree("/big/n1").err == Codes.OK  # its parts still can be read


@pytest.mark.parametrize(
    ("path", "code"), [("/missing", Codes.NONODE), ("no-slash", Codes.BADARGUMENTS), ("/a//b", Codes.BADARGUMENTS)]
)
def test_a_bad_or_missing_path_gets_a_precise_error(path, code):
    s = Script(tree_of(("/a", b"")))
    assert s.subtree(path).err == code


def test_queued_behind_a_write_it_sees_that_write_and_nothing_later():
    s = Script(tree_of(("/q", b"")))
    assert s.send(p.Create(1, "/q/new", b"n", OPEN_ACL_UNSAFE), p.GetSubtree(2, "/q")) == []  # waits for the write
    s.commit(Txn(s.next(), 0, s.session_id, 1, CreateTxn("/q/new", b"n", OPEN_ACL_UNSAFE)))
    created, got = s.out()
    assert (created.xid, got.xid) == (1, 2)
    assert [n.path for n in got.body.nodes] == ["/q", "/q/new"] and got.body.zxid == created.zxid


def test_read_only_mode_serves_it_as_a_read():
    counter = itertools.count(1)
    cfg = NodeConfig(
        sid=1,
        read_only_mode=True,
        servers=[ServerEntry(1, "127.0.0.1", 2888, 3888), ServerEntry(2, "127.0.0.1", 2889, 3889)],
    )
    core = SessionCore(
        cfg=cfg,
        log=structlog.get_logger(),
        now=0.0,
        wall_ms=1_000,
        random_bytes=lambda n: bytes([next(counter) % 256]) * n,
    )
    tree = tree_of(("/ro", b"x"))
    core.sync_point(SyncPoint(tree.last_zxid, 1, "follower"), tree, 0.0)
    core.role_message(Looking(), 0.0)
    core.client_frames(A, [ENCODE(p.Connect(p.PROTOCOL_VERSION, 0, 10_000, read_only=True))], 0.0)
    core.client_frames(A, [ENCODE(p.GetSubtree(3, "/ro"))], 0.0)
    connected, reply = [DECODE(f) for f in core.out.pop(A)]
    assert connected.read_only and reply.err == Codes.OK and [n.path for n in reply.body.nodes] == ["/ro"]


def test_the_wire_form_is_a_tagged_array_with_path_defaulting_to_the_root():
    assert msgspec.msgpack.decode(ENCODE(p.GetSubtree(5))) == ["subtree", 5, "/"]
    decoded = msgspec.msgpack.Decoder(p.ClientMsg).decode(msgspec.msgpack.encode(["subtree", 9]))
    assert decoded == p.GetSubtree(9, "/")
