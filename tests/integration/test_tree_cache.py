"""TreeCache: a local mirror of a subtree that follows every change, across reconnects."""

from __future__ import annotations

import queue

import pytest

from tests_support import kill_actor
from zoomq.recipe.cache import TreeEvent
from zoomq.testing import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _mirror(cache, zk, root: str) -> dict[str, bytes]:
    out = {}
    todo = [root]
    while todo:
        path = todo.pop()
        node = cache.get_data(path)
        if node is None:
            continue
        out[path] = node.data
        todo += [f"{path.rstrip('/')}/{k}" for k in cache.get_children(path) or ()]
    return out


def _truth(zk, root: str) -> dict[str, bytes]:
    out = {}
    todo = [root]
    while todo:
        path = todo.pop()
        out[path] = zk.get(path)[0]
        todo += [f"{path.rstrip('/')}/{k}" for k in zk.get_children(path)]
    return out


def test_cache_loads_then_follows_adds_updates_and_removes(node, zk):
    zk.create("/tc/a/x", b"1", makepath=True)
    events: queue.Queue = queue.Queue()
    cache = zk.TreeCache("/tc")
    cache.listen(events.put)
    cache.start()
    kinds = []
    while True:
        ev = events.get(timeout=10)
        kinds.append(ev.event_type)
        if ev.event_type == TreeEvent.INITIALIZED:
            break
    assert kinds.count(TreeEvent.NODE_ADDED) == 3  # /tc, /tc/a, /tc/a/x
    assert cache.get_data("/tc/a/x").data == b"1"
    assert cache.get_children("/tc/a") == frozenset({"x"})

    writer = node.client()
    writer.create("/tc/b", b"2")
    writer.set("/tc/a/x", b"3")
    writer.delete("/tc/a/x")
    got = [(e.event_type, e.event_data.path) for e in (events.get(timeout=10) for _ in range(3))]
    assert got == [
        (TreeEvent.NODE_ADDED, "/tc/b"),
        (TreeEvent.NODE_UPDATED, "/tc/a/x"),
        (TreeEvent.NODE_REMOVED, "/tc/a/x"),
    ]
    assert cache.get_data("/tc/a/x") is None and cache.get_children("/tc/a") == frozenset()
    wait_for(lambda: _mirror(cache, zk, "/tc") == _truth(writer, "/tc"), 10, "the mirror")
    cache.close()
    writer.create("/tc/after-close", b"")
    assert cache.get_data("/tc/after-close") is None


def test_cache_catches_up_on_what_changed_while_disconnected(node, zk):
    zk.create("/tr/k", b"0", makepath=True)
    cache = zk.TreeCache("/tr")
    events: queue.Queue = queue.Queue()
    cache.listen(events.put)
    cache.start()
    kill_actor(node, "session")  # the client reconnects; its persistent watch comes back
    writer = node.client()
    writer.create("/tr/new", b"n")
    writer.set("/tr/k", b"1")
    wait_for(
        lambda: _mirror(cache, zk, "/tr") == {"/tr": b"", "/tr/k": b"1", "/tr/new": b"n"},
        20,
        "the mirror after a reconnect",
    )
    cache.close()


def test_cache_of_a_missing_root_fills_when_it_appears(node, zk):
    cache = zk.TreeCache("/later")
    cache.start()
    assert cache.get_data("/later") is None
    node.client().create("/later/x", b"y", makepath=True)
    wait_for(lambda: (d := cache.get_data("/later/x")) is not None and d.data == b"y", 10, "the new subtree")
    assert cache.get_children("/later") == frozenset({"x"})
    cache.close()
