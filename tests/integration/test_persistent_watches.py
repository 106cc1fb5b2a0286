"""Persistent and persistent-recursive watches (ZooKeeper 3.6's addWatch) end to end."""

from __future__ import annotations

import queue

import pytest

from zoomq import AddWatchMode, WatcherType
from zoomq.exceptions import NoAuthError, NoWatcherError
from zoomq.security import make_digest_acl

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def zk(zk_face):
    """Every test here runs on the threaded and on the asyncio client."""
    return zk_face


def _events(q: queue.Queue, n: int) -> list[tuple[str, str]]:
    return [(e.type, e.path) for e in (q.get(timeout=10) for _ in range(n))]


def test_persistent_watch_sees_every_change_of_its_node(node, zk):
    got: queue.Queue = queue.Queue()
    zk.add_watch("/p", got.put)  # the node need not exist yet
    zk.create("/p", b"1")
    zk.set("/p", b"2")
    zk.create("/p/kid", b"")
    zk.set("/p", b"3")
    zk.delete("/p/kid")
    zk.delete("/p")
    assert _events(got, 6) == [
        ("CREATED", "/p"),
        ("CHANGED", "/p"),
        ("CHILD", "/p"),
        ("CHANGED", "/p"),
        ("CHILD", "/p"),
        ("DELETED", "/p"),
    ]


def test_recursive_watch_sees_the_whole_subtree_but_no_child_events(node, zk):
    got: queue.Queue = queue.Queue()
    zk.create("/r", b"")
    zk.add_watch("/r", got.put, AddWatchMode.PERSISTENT_RECURSIVE)
    other = node.client()
    other.create("/r/a/b", b"", makepath=True)
    other.set("/r/a/b", b"x")
    other.delete("/r/a/b")
    other.create("/rx", b"")  # not under /r
    other.set("/r", b"y")
    assert _events(got, 5) == [
        ("CREATED", "/r/a"),
        ("CREATED", "/r/a/b"),
        ("CHANGED", "/r/a/b"),
        ("DELETED", "/r/a/b"),
        ("CHANGED", "/r"),
    ]
    assert got.empty()


def test_remove_watches_stops_events_and_reports_nowatcher(node, zk):
    got: queue.Queue = queue.Queue()
    zk.create("/rm", b"")
    zk.add_watch("/rm", got.put, recursive=True)
    zk.remove_watches("/rm", WatcherType.ANY)
    with pytest.raises(NoWatcherError):
        zk.remove_watches("/rm", WatcherType.ANY)
    zk.set("/rm", b"1")
    marker: queue.Queue = queue.Queue()
    zk.get("/rm", watch=marker.put)
    zk.set("/rm", b"2")
    assert marker.get(timeout=10).type == "CHANGED"
    assert got.empty()


def test_persistent_watches_survive_a_reconnect(node, zk):
    got: queue.Queue = queue.Queue()
    zk.create("/keep", b"")
    zk.add_watch("/keep", got.put, recursive=True)
    from tests_support import kill_actor

    kill_actor(node, "session")
    # A reply from the new session actor comes after the client re-registered its watches on the
    # new connection (SetWatches goes first); a change made before that would not be reported,
    # as in ZooKeeper (persistent watches get no catch-up events).
    assert zk.exists("/keep") is not None
    other = node.client()
    other.create("/keep/after", b"")
    assert _events(got, 1) == [("CREATED", "/keep/after")]


def test_add_watch_needs_read_permission_and_valid_arguments(node, zk):
    zk.create("/secret", b"", acl=[make_digest_acl("u", "p", all=True)])
    with pytest.raises(NoAuthError):
        zk.add_watch("/secret", lambda e: None)
    with pytest.raises(ValueError):
        zk.add_watch("/x", lambda e: None, mode=7)
