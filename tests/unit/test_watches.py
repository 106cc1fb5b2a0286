import pytest

from actors.session.watches import WATCHER_ANY, WATCHER_CHILDREN, WATCHER_DATA, WatchTable
from zoomq.protocol import EVENT_NODE_CHILDREN_CHANGED, EVENT_NODE_CREATED, EVENT_NODE_DATA_CHANGED, EVENT_NODE_DELETED

pytestmark = pytest.mark.timeout(10)


def test_data_watch_fires_once_on_change():
    w = WatchTable()
    w.add_data("/a", 1)
    assert w.trigger(EVENT_NODE_DATA_CHANGED, "/a") == {1}
    assert not w.trigger(EVENT_NODE_DATA_CHANGED, "/a")


def test_exist_watch_fires_on_create_and_child_watch_not():
    w = WatchTable()
    w.add_data("/a", 1)
    w.add_child("/a", 2)
    assert w.trigger(EVENT_NODE_CREATED, "/a") == {1}
    assert w.trigger(EVENT_NODE_CHILDREN_CHANGED, "/a") == {2}


def test_delete_fires_data_and_child_watches_once_per_session():
    w = WatchTable()
    w.add_data("/a", 1)
    w.add_child("/a", 1)
    w.add_child("/a", 2)
    assert w.trigger(EVENT_NODE_DELETED, "/a") == {1, 2}
    assert w.count() == 0


def test_dropping_a_session_removes_its_watches_only():
    w = WatchTable()
    w.add_data("/a", 1)
    w.add_data("/a", 2)
    w.add_child("/b", 1)
    w.drop_session(1)
    assert w.trigger(EVENT_NODE_DELETED, "/a") == {2}
    assert not w.trigger(EVENT_NODE_CHILDREN_CHANGED, "/b")
    assert w.count() == 0


# --- persistent watches -----------------------------------------------------------------------


def test_a_persistent_watch_fires_every_event_on_its_path_and_stays():
    t = WatchTable()
    t.add_persistent("/a", 1)
    for ev in (
        EVENT_NODE_CREATED,
        EVENT_NODE_DATA_CHANGED,
        EVENT_NODE_CHILDREN_CHANGED,
        EVENT_NODE_DATA_CHANGED,
        EVENT_NODE_DELETED,
    ):
        assert t.trigger(ev, "/a") == {1}
    assert t.trigger(EVENT_NODE_DATA_CHANGED, "/a/b") == frozenset()
    assert t.count() == 1


def test_a_recursive_watch_fires_below_its_path_but_not_for_children_changes():
    t = WatchTable()
    t.add_persistent("/a", 7, recursive=True)
    assert t.trigger(EVENT_NODE_CREATED, "/a/b/c") == {7}
    assert t.trigger(EVENT_NODE_DATA_CHANGED, "/a") == {7}
    assert t.trigger(EVENT_NODE_DELETED, "/a/b") == {7}
    assert t.trigger(EVENT_NODE_CHILDREN_CHANGED, "/a") == frozenset()
    assert t.trigger(EVENT_NODE_DATA_CHANGED, "/ab") == frozenset()  # a sibling with the same prefix
    root = WatchTable()
    root.add_persistent("/", 3, recursive=True)
    assert root.trigger(EVENT_NODE_DATA_CHANGED, "/x/y") == {3}


def test_one_event_per_session_however_many_watches_match():
    t = WatchTable()
    t.add_data("/a/b", 1)
    t.add_persistent("/a/b", 1)
    t.add_persistent("/a", 1, recursive=True)
    t.add_persistent("/", 2, recursive=True)
    assert t.trigger(EVENT_NODE_DATA_CHANGED, "/a/b") == {1, 2}
    assert t.trigger(EVENT_NODE_DATA_CHANGED, "/a/b") == {1, 2}  # the one-shot went, the others stay


def test_remove_watches_by_type_and_nowatcher():
    t = WatchTable()
    t.add_data("/a", 1)
    t.add_child("/a", 1)
    t.add_persistent("/a", 1, recursive=True)
    assert t.remove("/a", 1, WATCHER_DATA)
    assert not t.remove("/a", 1, WATCHER_DATA)
    assert t.remove("/a", 1, WATCHER_CHILDREN)
    assert t.trigger(EVENT_NODE_DATA_CHANGED, "/a/x") == {1}
    assert t.remove("/a", 1, WATCHER_ANY)
    assert t.trigger(EVENT_NODE_DATA_CHANGED, "/a/x") == frozenset()
    assert not t.remove("/a", 2, WATCHER_ANY)
    assert t.count() == 0


def test_persistent_watches_die_with_the_session():
    t = WatchTable()
    t.add_persistent("/a", 1)
    t.add_persistent("/b", 1, recursive=True)
    t.drop_session(1)
    assert t.count() == 0 and t.trigger(EVENT_NODE_DATA_CHANGED, "/b/c") == frozenset()
