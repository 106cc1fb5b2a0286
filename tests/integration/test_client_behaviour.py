"""Client behaviour a kazoo user relies on, and what zoomq adds: DataWatch/ChildrenWatch,
async results, LOST when no node answers within the session timeout, watches across restarts."""

from __future__ import annotations

import threading

import pytest

from zoomq import Client, KazooState
from zoomq.exceptions import ConnectionClosedError, ConnectionLoss, NoNodeError, SessionExpiredError
from zoomq.testing import ZoomqServer, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def test_data_watch_sees_the_initial_value_and_every_change(node, zk):
    seen: list = []
    zk.create("/dw", b"a")

    @zk.DataWatch("/dw")
    def changed(data, stat):
        seen.append(data)

    assert seen == [b"a"]
    other = node.client()
    other.set("/dw", b"b")
    wait_for(lambda: seen[-1] == b"b", timeout=10, what="b seen")
    other.delete("/dw")
    wait_for(lambda: seen[-1] is None, timeout=10, what="deletion seen")
    other.create("/dw", b"c")
    wait_for(lambda: seen[-1] == b"c", timeout=10, what="re-creation seen")


def test_data_watch_stops_when_the_function_returns_false(node, zk):
    calls: list = []
    zk.create("/dws", b"0")

    def once(data, stat):
        calls.append(data)
        return False

    zk.DataWatch("/dws", once)
    node.client().set("/dws", b"1")
    zk.sync("/")
    zk.get("/dws")
    assert calls == [b"0"]


def test_children_watch_follows_membership(node, zk):
    zk.create("/members", b"")
    seen: list = []
    zk.ChildrenWatch("/members", lambda children: seen.append(sorted(children)))
    other = node.client()
    other.create("/members/a", b"", ephemeral=True)
    wait_for(lambda: seen[-1] == ["a"], timeout=10, what="a joined")
    other.create("/members/b", b"", ephemeral=True)
    wait_for(lambda: seen[-1] == ["a", "b"], timeout=10, what="b joined")
    other.stop()  # its ephemerals leave with the session
    wait_for(lambda: seen[-1] == [], timeout=10, what="both left")


def test_async_results_pipeline_in_order(zk):
    zk.create("/pipe", b"")
    results = [zk.create_async(f"/pipe/n-{i:04d}", b"x") for i in range(500)]
    assert [r.get(timeout=30) for r in results] == [f"/pipe/n-{i:04d}" for i in range(500)]
    bad = zk.get_async("/pipe/missing")
    assert bad.wait(10) and not bad.successful()
    assert isinstance(bad.exception, NoNodeError)
    done = threading.Event()
    zk.exists_async("/pipe").rawlink(lambda r: done.set())
    assert done.wait(10)


def test_client_reports_lost_by_itself_when_no_node_answers(tmp_path):
    server = ZoomqServer(data_dir=tmp_path / "d").start()
    states: list = []
    zk = Client(hosts=server.hosts, timeout=4.0)
    zk.add_listener(states.append)
    try:
        zk.start()
        zk.create("/e", b"", ephemeral=True)
        server.kill()
        wait_for(lambda: KazooState.SUSPENDED in states, timeout=10, what="SUSPENDED")
        wait_for(lambda: KazooState.LOST in states, timeout=20, what="LOST without any node")
        assert zk.client_id is None and not zk.connected
    finally:
        zk.stop()
        server.stop()


def test_a_stopped_client_refuses_work(node):
    zk = node.client()
    zk.stop()
    with pytest.raises(ConnectionClosedError, match="Connection has been closed"):  # kazoo's answer
        zk.get("/")


def test_watches_and_session_survive_a_restart_of_the_node(tmp_path):
    server = ZoomqServer(data_dir=tmp_path / "d").start()
    try:
        zk = Client(hosts=server.hosts, timeout=20.0)
        zk.start()
        zk.create("/w", b"0")
        zk.create("/mine", b"", ephemeral=True)
        session = zk.client_id[0]
        fired = threading.Event()
        zk.get("/w", watch=lambda e: fired.set())
        server.restart()  # same data dir and port: the session lives on disk
        other = server.client()
        other.set("/w", b"1")
        assert fired.wait(30), "the watch did not survive the restart"
        wait_for(lambda: zk.connected, timeout=30, what="reconnected")
        assert zk.client_id[0] == session
        assert zk.exists("/mine") is not None
        zk.stop()
    finally:
        server.stop()


def test_client_tries_every_host_until_one_answers(node):
    from zoomq.testing import free_port

    dead = f"127.0.0.1:{free_port()}"
    zk = Client(hosts=f"{dead},{node.hosts}", timeout=4.0, randomize_hosts=False)
    zk.start(timeout=20)
    try:
        assert zk.exists("/") is not None
    finally:
        zk.stop()


def test_requests_pending_when_the_node_dies_fail_with_connection_loss(tmp_path):
    server = ZoomqServer(data_dir=tmp_path / "d").start()
    try:
        zk = Client(hosts=server.hosts, timeout=10.0)
        zk.start()
        zk.create("/p", b"")
        server.kill()
        # Nothing answers now: a request sent after the crash cannot complete.
        result = zk.set_async("/p", b"x")
        assert result.wait(15), "the pending request was never failed"
        assert isinstance(result.exception, (ConnectionLoss, SessionExpiredError))
        zk.stop()
    finally:
        server.stop()


def test_chroot_prefixes_every_path(node, zk):
    zk.create("/app", b"")
    rooted = Client(hosts=node.hosts + "/app")
    rooted.start()
    try:
        assert rooted.create("/x", b"1") == "/x"
        assert zk.get("/app/x")[0] == b"1"
        assert rooted.get_children("/") == ["x"]
    finally:
        rooted.stop()


def test_a_raising_result_callback_does_not_stop_the_client(node, zk):
    called = []

    def bad(result):
        called.append(result)
        raise RuntimeError("caller's bug")

    result = zk.exists_async("/")
    result.rawlink(bad)  # linked while pending, or already set: either way it is logged, not raised
    assert result.get(timeout=10) is not None
    result.rawlink(bad)  # set for sure: run now, in this thread, and still not raised here
    # the first may still be running on the I/O thread (the result is set before its callbacks run)
    wait_for(lambda: len(called) == 2, 10, "both callbacks run")
    assert called == [result, result]
    assert zk.create("/after-bad-callback", b"") == "/after-bad-callback"  # the I/O thread lives on
