import pytest

from actors.session.watches import WatchTable
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
