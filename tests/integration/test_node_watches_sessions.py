"""Watches (one-shot, ZooKeeper's triggers, survive a reconnect) and sessions (expiry, resume)."""

from __future__ import annotations

import threading

import msgspec
import pytest
import zmq

from zoomq import Client, EventType, KazooState
from zoomq import protocol as p
from zoomq.security import OPEN_ACL_UNSAFE
from zoomq.testing import wait_for

from tests_support import kill_actor

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@pytest.fixture
def zk(zk_face):
    """Every test here runs on the threaded and on the asyncio client."""
    return zk_face


class Events:
    def __init__(self) -> None:
        self.items: list = []
        self.cond = threading.Condition()

    def __call__(self, event) -> None:
        with self.cond:
            self.items.append(event)
            self.cond.notify_all()

    def wait(self, n: int = 1, timeout: float = 10.0) -> list:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.items) >= n, timeout), f"got {self.items}"
            return list(self.items)


def test_data_watch_fires_once_on_change(node, zk):
    other = node.client()
    zk.create("/w", b"0")
    ev = Events()
    zk.get("/w", watch=ev)
    other.set("/w", b"1")
    (event,) = ev.wait(1)
    assert event.type == EventType.CHANGED and event.path == "/w"
    other.set("/w", b"2")
    zk.sync("/")
    zk.get("/w")  # a later round trip: a second event would have arrived by now
    assert len(ev.items) == 1


def test_exists_watch_on_missing_node_fires_created(node, zk):
    ev = Events()
    assert zk.exists("/later", watch=ev) is None
    node.client().create("/later", b"")
    assert ev.wait(1)[0].type == EventType.CREATED


def test_child_watch_fires_on_create_and_delete_of_children(node, zk):
    zk.create("/kids", b"")
    ev = Events()
    zk.get_children("/kids", watch=ev)
    other = node.client()
    other.create("/kids/a", b"")
    assert ev.wait(1)[0].type == EventType.CHILD
    ev2 = Events()
    zk.get_children("/kids", watch=ev2)
    other.delete("/kids/a")
    assert ev2.wait(1)[0].type == EventType.CHILD


def test_delete_fires_deleted_on_data_and_child_watches(node, zk):
    zk.create("/gone", b"")
    data_ev, child_ev = Events(), Events()
    zk.get("/gone", watch=data_ev)
    zk.get_children("/gone", watch=child_ev)
    node.client().delete("/gone")
    assert data_ev.wait(1)[0].type == EventType.DELETED
    assert child_ev.wait(1)[0].type == EventType.DELETED


def test_set_data_does_not_fire_child_watch_of_parent(node, zk):
    zk.create("/par/kid", b"", makepath=True)
    ev = Events()
    zk.get_children("/par", watch=ev)
    node.client().set("/par/kid", b"x")
    zk.sync("/")
    zk.get("/par")
    assert ev.items == []


def test_event_arrives_before_the_reply_that_shows_the_change(node, zk):
    zk.create("/order", b"0")
    seen_at_event: list = []
    ev = Events()

    def watcher(event):
        seen_at_event.append(event)
        ev(event)

    zk.get("/order", watch=watcher)
    node.client().set("/order", b"1")
    # Poll until our own read shows the new value; the event must not come later than that reply.
    wait_for(lambda: zk.get("/order")[0] == b"1", timeout=10, what="new value visible")
    ev.wait(1)


def test_session_expiry_removes_ephemerals_and_fires_watches(node, zk):
    # A raw client opens a session, creates an ephemeral, then vanishes without closing.
    _raw_session(node, timeout_ms=4000, ephemeral="/mortal")
    ev = Events()
    assert zk.exists("/mortal", watch=ev) is not None
    (event,) = ev.wait(1, timeout=30)
    assert event.type == EventType.DELETED
    assert zk.exists("/mortal") is None


def _raw_session(node, timeout_ms: int = 10_000, ephemeral: str | None = None) -> tuple[int, bytes]:
    """Open a session with a bare DEALER, optionally create an ephemeral, then drop the connection
    without closing the session (as a crashed client would)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://{node.hosts}")
    enc, dec = msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder(p.ServerMsg)
    try:
        sock.send(enc.encode(p.Connect(p.PROTOCOL_VERSION, 0, timeout_ms)))
        assert sock.poll(10_000)
        connected = dec.decode(sock.recv())
        if ephemeral:
            sock.send(enc.encode(p.Create(1, ephemeral, b"", OPEN_ACL_UNSAFE, p.EPHEMERAL)))
            assert sock.poll(10_000)
            assert dec.decode(sock.recv()).err == 0
        return connected.session_id, connected.passwd
    finally:
        sock.close(linger=0)


def test_resume_with_client_id_keeps_the_session_and_its_ephemerals(node):
    session_id, passwd = _raw_session(node, ephemeral="/mine")
    resumed = Client(hosts=node.hosts, timeout=10.0, client_id=(session_id, passwd))
    resumed.start()
    try:
        assert resumed.client_id[0] == session_id
        assert resumed.exists("/mine").ephemeralOwner == session_id
        assert resumed.get_ephemerals("/") == ["/mine"]
    finally:
        resumed.stop()


@pytest.mark.parametrize("case", ["wrong-password", "closed-session"])
def test_a_dead_or_foreign_session_is_reported_lost_and_replaced(node, case):
    if case == "wrong-password":
        session_id, _ = _raw_session(node)
        passwd = b"\x00" * 16
    else:
        first = node.client()
        session_id, passwd = first.client_id
        first.stop()
    ghost = Client(hosts=node.hosts, timeout=10.0, client_id=(session_id, passwd))
    try:
        ghost.start(timeout=15)
        assert ghost.client_id[0] != session_id  # refused: a new session, as kazoo does after expiry
        assert ghost.exists("/") is not None
    finally:
        ghost.stop()


def test_operations_on_a_closed_session_are_refused(node):
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://{node.hosts}")
    enc, dec = msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder(p.ServerMsg)
    try:
        sock.send(enc.encode(p.Connect(p.PROTOCOL_VERSION, 0, 4000)))
        assert sock.poll(10_000)
        dec.decode(sock.recv())
        sock.send(enc.encode(p.Close(1)))
        assert sock.poll(10_000)
        assert dec.decode(sock.recv()).err == 0
        sock.send(enc.encode(p.GetData(2, "/", False)))
        assert sock.poll(10_000)
        reply = dec.decode(sock.recv())
        assert reply.xid == 2 and reply.err == p_codes().SESSIONEXPIRED
    finally:
        sock.close(linger=0)


def p_codes():
    from zoomq.exceptions import Codes

    return Codes


def test_client_listener_sees_connected_and_lost_on_stop(node):
    states: list = []
    zk = Client(hosts=node.hosts)
    zk.add_listener(states.append)
    zk.start()
    wait_for(lambda: KazooState.CONNECTED in states, timeout=10, what="CONNECTED")
    zk.stop()
    wait_for(lambda: KazooState.LOST in states, timeout=10, what="LOST")
    with pytest.raises(Exception):  # noqa: B017 - a stopped client refuses work
        zk.get("/")


def test_watch_survives_a_session_actor_restart(node, zk):
    zk.create("/survive", b"0")
    ev = Events()
    zk.get("/survive", watch=ev)
    kill_actor(node, "session")
    other = node.client()
    other.set("/survive", b"1")
    (event,) = ev.wait(1, timeout=30)
    assert event.type == EventType.CHANGED


def test_a_program_taking_over_a_session_is_never_answered_with_old_results(node):
    # The first program writes under the session; the node remembers results by xid. A second
    # program resuming the session numbers from 1 again unless the node tells it where to go on.
    session = _raw_session(node, ephemeral="/taken")  # its create was xid 1
    second = Client(hosts=node.hosts, timeout=10.0, client_id=session)
    connected = second.start_async()
    pending = second.create_async("/second", b"")  # numbered before the node answered
    assert connected.wait(15)
    try:
        assert second.client_id[0] == session[0]
        assert pending.get(timeout=10) == "/second"
        assert second.create("/third", b"") == "/third"
        assert sorted(second.get_children("/")) == ["second", "taken", "third", "zookeeper"]
    finally:
        second.stop()


def test_expire_session_ends_the_session_and_the_client_is_told(node, zk):
    from zoomq.testing import expire_session

    states: list = []
    zk.add_listener(states.append)
    zk.create("/mine", b"", ephemeral=True)
    old = zk.client_id[0]
    expire_session(zk)
    assert KazooState.LOST in states
    assert node.client().exists("/mine") is None
    wait_for(lambda: zk.connected, timeout=15, what="a new session")
    assert zk.client_id[0] != old
