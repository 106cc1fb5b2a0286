"""Every client operation and node type against a real standalone node, as ZooKeeper does them."""

from __future__ import annotations

import pytest

from zoomq.exceptions import (
    BadArgumentsError,
    BadVersionError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoAuthError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)
from zoomq.security import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, make_acl
from zoomq.testing import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def zk(zk_face):
    """Every test here runs on the threaded and on the asyncio client."""
    return zk_face


def test_create_get_set_delete_round_trip(zk):
    assert zk.create("/a", b"one") == "/a"
    data, stat = zk.get("/a")
    assert data == b"one"
    assert stat.version == 0 and stat.dataLength == 3 and stat.numChildren == 0
    assert stat.czxid == stat.mzxid == stat.pzxid and stat.ephemeralOwner == 0
    stat2 = zk.set("/a", b"two")
    assert stat2.version == 1 and stat2.mzxid > stat.mzxid and stat2.czxid == stat.czxid
    assert zk.get("/a")[0] == b"two"
    assert zk.exists("/a").version == 1
    zk.delete("/a")
    assert zk.exists("/a") is None
    with pytest.raises(NoNodeError):
        zk.get("/a")


def test_errors_as_zookeeper_reports_them(zk):
    zk.create("/e", b"")
    with pytest.raises(NodeExistsError):
        zk.create("/e", b"")
    with pytest.raises(NoNodeError):
        zk.create("/missing/child", b"")
    with pytest.raises(BadVersionError):
        zk.set("/e", b"x", version=7)
    zk.create("/e/c", b"")
    with pytest.raises(NotEmptyError):
        zk.delete("/e")
    with pytest.raises(BadVersionError):
        zk.delete("/e/c", version=3)
    with pytest.raises(NoNodeError):
        zk.delete("/nothing")
    with pytest.raises(NoNodeError):
        zk.set("/nothing", b"")


def test_versions_and_children_stat(zk):
    zk.create("/p", b"")
    zk.create("/p/a", b"")
    zk.create("/p/b", b"")
    zk.delete("/p/a")
    children, stat = zk.get_children("/p", include_data=True)
    assert children == ["b"]
    assert stat.numChildren == 1
    assert stat.cversion == 3  # two creates + one delete
    zk.set("/p", b"v", version=0)
    with pytest.raises(BadVersionError):
        zk.set("/p", b"v", version=0)


def test_sequential_numbering_follows_the_parents_create_counter(zk):
    zk.create("/q", b"")
    assert zk.create("/q/s-", b"", sequence=True) == "/q/s-0000000000"
    assert zk.create("/q/s-", b"", sequence=True) == "/q/s-0000000001"
    zk.delete("/q/s-0000000000")
    zk.delete("/q/s-0000000001")
    zk.create("/q/plain", b"")
    assert zk.create("/q/s-", b"", sequence=True) == "/q/s-0000000003"
    assert zk.exists("/q").cversion == 6


def test_ephemeral_nodes_belong_to_the_session_and_have_no_children(node, zk):
    other = node.client()
    other.create("/eph", b"", ephemeral=True)
    stat = zk.exists("/eph")
    assert stat.ephemeralOwner == other.client_id[0]
    with pytest.raises(NoChildrenForEphemeralsError):
        other.create("/eph/child", b"")
    assert other.get_ephemerals("/") == ["/eph"]
    other.stop()
    assert zk.exists("/eph") is None


def test_ephemeral_sequential(zk):
    zk.create("/es", b"")
    path = zk.create("/es/n-", b"v", ephemeral=True, sequence=True)
    assert path == "/es/n-0000000000"
    assert zk.exists(path).ephemeralOwner == zk.client_id[0]


def test_makepath_and_ensure_path_and_recursive_delete(zk):
    assert zk.create("/x/y/z", b"deep", makepath=True) == "/x/y/z"
    assert zk.get("/x/y/z")[0] == b"deep"
    zk.ensure_path("/x/y/w")
    assert sorted(zk.get_children("/x/y")) == ["w", "z"]
    zk.delete("/x", recursive=True)
    assert zk.exists("/x") is None


def test_include_data_returns_the_stat(zk):
    path, stat = zk.create("/inc", b"abc", include_data=True)
    assert path == "/inc" and stat.dataLength == 3


def test_container_is_reaped_after_its_last_child_goes(tmp_path):
    from zoomq.testing import ZoomqServer

    with ZoomqServer(data_dir=tmp_path / "d", container_check_ms=100) as server:
        zk = server.client()
        zk.create("/box", b"", container=True)
        zk.create("/box/item", b"")
        zk.delete("/box/item")
        wait_for(lambda: zk.exists("/box") is None, timeout=20, what="container reaped")


def test_ttl_node_is_reaped_after_its_ttl(tmp_path):
    from zoomq.testing import ZoomqServer

    with ZoomqServer(data_dir=tmp_path / "d", container_check_ms=100) as server:
        zk = server.client()
        zk.create("/ttl", b"", ttl=300)
        assert zk.exists("/ttl") is not None
        wait_for(lambda: zk.exists("/ttl") is None, timeout=20, what="ttl node reaped")


def test_acls_are_stored_and_returned(zk):
    read_admin = [make_acl("world", "anyone", read=True, admin=True)]
    zk.create("/acl", b"", acl=read_admin)
    acls, stat = zk.get_acls("/acl")
    assert list(acls) == read_admin and stat.aversion == 0
    stat = zk.set_acls("/acl", OPEN_ACL_UNSAFE)
    assert stat.aversion == 1
    with pytest.raises(BadVersionError):
        zk.set_acls("/acl", OPEN_ACL_UNSAFE, version=0)
    zk.create("/ro", b"", acl=READ_ACL_UNSAFE)
    with pytest.raises(NoAuthError):
        zk.set("/ro", b"x")


def test_sync_returns_the_path(zk):
    assert zk.sync("/") == "/"


def test_transaction_is_atomic(zk):
    zk.create("/t", b"")
    tx = zk.transaction()
    tx.create("/t/a", b"1")
    tx.set_data("/t", b"parent")
    tx.check("/t", 1)  # checked against the state after the earlier ops, as ZooKeeper does
    results = tx.commit()
    assert results[0] == "/t/a"
    assert results[1].version == 1
    assert results[2] is True
    tx = zk.transaction()
    tx.create("/t/b", b"")
    tx.create("/t/a", b"")  # exists: the whole transaction fails
    tx.delete("/t/a")
    results = tx.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], NodeExistsError)
    assert isinstance(results[2], RuntimeInconsistency)
    assert zk.exists("/t/b") is None and zk.exists("/t/a") is not None


def test_children_count_and_reserved_tree(zk):
    zk.create("/c/a/b", b"", makepath=True)
    zk.create("/c/d", b"")
    assert zk.get_children_count("/c") == 3
    assert "zookeeper" in zk.get_children("/")
    with pytest.raises(BadArgumentsError):
        zk.create("/zookeeper/mine", b"")


@pytest.mark.parametrize("bad", ["/trailing/", "/a/./b", "/a/../b", "/nul\x00", "/ctl\x01x", "/zookeeper/x/."])
def test_invalid_paths_are_bad_arguments(zk, bad):
    with pytest.raises((BadArgumentsError, ValueError)):
        zk.create(bad, b"")


def test_oversize_data_is_a_precise_error_and_the_node_keeps_serving(zk):
    with pytest.raises(BadArgumentsError):
        zk.create("/big", b"x" * (1024 * 1024 + 1))
    zk.create("/small", b"x" * 1024)
    assert zk.exists("/big") is None
    assert zk.get("/small")[0] == b"x" * 1024


def test_digest_acl_denies_without_auth_and_allows_with_it(node, zk):
    from zoomq.security import make_digest_acl

    zk.add_auth("digest", "alice:secret")
    zk.create("/private", b"mine", acl=[make_digest_acl("alice", "secret", all=True)])
    assert zk.get("/private")[0] == b"mine"
    stranger = node.client()
    with pytest.raises(NoAuthError):
        stranger.get("/private")
    with pytest.raises(NoAuthError):
        stranger.set("/private", b"theirs")
    stranger.add_auth("digest", "alice:secret")
    assert stranger.get("/private")[0] == b"mine"
