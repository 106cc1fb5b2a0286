"""Barrier, DoubleBarrier, Party, ShallowParty, Queue and LockingQueue recipes against a real node."""

from __future__ import annotations

import threading

import pytest

from zoomq.recipe.barrier import Barrier, DoubleBarrier
from zoomq.recipe.party import Party, ShallowParty
from zoomq.recipe.queue import LockingQueue, Queue
from zoomq.testing import wait_for

from tests_support import background as _thread
from tests_support import joined

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

WAIT = 20.0  # generous bound for any single wait
SHORT = 0.3  # how long "still blocked" is checked for


# --- Barrier -----------------------------------------------------------------------------------


def test_barrier_wait_blocks_until_removed(node, zk):
    barrier = Barrier(zk, "/barriers/b1")
    assert barrier.wait(timeout=0.1) is True  # not up: nothing to wait for
    barrier.create()
    assert zk.exists("/barriers/b1") is not None

    other = node.client()
    passed = threading.Event()

    def waiter() -> bool:
        result = Barrier(other, "/barriers/b1").wait()
        passed.set()
        return result

    t, out = _thread(waiter)
    assert not passed.wait(SHORT)  # still blocked while the barrier is up
    assert barrier.remove() is True
    assert passed.wait(WAIT)
    assert joined(t, out) is True
    assert barrier.remove() is False  # already down


def test_barrier_wait_timeout_returns_false(zk):
    barrier = Barrier(zk, "/barriers/b2")
    barrier.create()
    assert barrier.wait(timeout=0.3) is False
    assert zk.exists("/barriers/b2") is not None
    barrier.remove()
    assert barrier.wait(timeout=0.3) is True


# --- DoubleBarrier -----------------------------------------------------------------------------


def test_double_barrier_three_clients(node, zk):
    path = "/barriers/double"
    clients = [node.client() for _ in range(3)]
    barriers = [DoubleBarrier(c, path, 3, identifier=f"member-{i}") for i, c in enumerate(clients)]
    entered = [threading.Event() for _ in range(3)]
    go_leave = threading.Event()
    left = [threading.Event() for _ in range(3)]

    def participant(i: int) -> None:
        barriers[i].enter()
        entered[i].set()
        assert go_leave.wait(WAIT)
        barriers[i].leave()
        left[i].set()

    threads = []
    # The first two block in enter until the third arrives.
    for i in range(2):
        threads.append(_thread(lambda i=i: participant(i)))
    wait_for(lambda: zk.exists(path) and len([c for c in zk.get_children(path) if c != "ready"]) == 2, WAIT, "two in")
    assert not any(e.wait(SHORT) for e in entered[:2])
    threads.append(_thread(lambda: participant(2)))
    for e in entered:
        assert e.wait(WAIT)
    assert all(b.participating for b in barriers)
    members = [c for c in zk.get_children(path) if c != "ready"]
    assert sorted(members) == sorted(b.node_name for b in barriers)
    assert zk.get(f"{path}/{barriers[1].node_name}")[0] == b"member-1"

    go_leave.set()
    for t, out in threads:
        joined(t, out)
    assert all(e.is_set() for e in left)
    assert not any(b.participating for b in barriers)
    assert zk.get_children(path) == []


def test_double_barrier_leave_waits_for_all(node, zk):
    path = "/barriers/double2"
    clients = [node.client() for _ in range(2)]
    barriers = [DoubleBarrier(c, path, 2) for c in clients]
    ts = [_thread(b.enter) for b in barriers]
    for t, out in ts:
        joined(t, out)
    # One leaves; it must wait for the other to leave too.
    done = threading.Event()

    def leave_first() -> None:
        barriers[0].leave()
        done.set()

    t, out = _thread(leave_first)
    assert not done.wait(SHORT)
    barriers[1].leave()
    assert done.wait(WAIT)
    joined(t, out)
    assert zk.get_children(path) == []


# --- Party -------------------------------------------------------------------------------------


def test_party_membership_and_ephemeral_members(node, zk):
    path = "/parties/p"
    mine = Party(zk, path, "alice")
    assert len(mine) == 0
    assert list(mine) == []
    mine.join()
    assert mine.participating
    assert list(mine) == ["alice"]
    (child,) = zk.get_children(path)
    assert child == mine.node and child.endswith("__party__") and len(child) == 32 + len("__party__")
    assert zk.exists(f"{path}/{child}").ephemeralOwner == zk.client_id[0]

    other = node.client()
    theirs = Party(other, path, "bob")
    theirs.join()
    theirs.join()  # joining again is harmless
    assert len(mine) == 2
    assert sorted(mine) == ["alice", "bob"]
    # Unrelated children are not members.
    zk.create(f"{path}/not-a-member")
    assert len(mine) == 2

    other.stop()  # its session ends: bob is gone
    wait_for(lambda: len(mine) == 1, WAIT, "bob's node gone")
    assert list(mine) == ["alice"]

    assert mine.leave() is True
    assert not mine.participating
    assert mine.leave() is False
    assert len(mine) == 0


def test_shallow_party_membership_and_ephemeral_members(node, zk):
    path = "/parties/shallow"
    mine = ShallowParty(zk, path, "alice")
    mine.join()
    (child,) = zk.get_children(path)
    assert child.startswith("alice-") and child == mine.node
    assert zk.get(f"{path}/{child}")[0] == b"alice"  # kazoo stores the identifier as data too
    assert zk.exists(f"{path}/{child}").ephemeralOwner == zk.client_id[0]

    other = node.client()
    theirs = ShallowParty(other, path, "bob")
    third = ShallowParty(other, path, "carol-2")  # an identifier with a dash
    theirs.join()
    third.join()
    assert len(mine) == 3
    assert sorted(mine) == ["alice", "bob", "carol-2"]

    other.stop()
    wait_for(lambda: len(mine) == 1, WAIT, "other's nodes gone")
    assert list(mine) == ["alice"]
    assert mine.leave() is True
    assert list(mine) == []


# --- Queue -------------------------------------------------------------------------------------


def test_queue_fifo_and_priority(zk):
    queue = Queue(zk, "/queues/q")
    assert queue.get() is None
    assert len(queue) == 0
    queue.put(b"a1")
    queue.put(b"a2")
    queue.put(b"urgent", priority=1)
    queue.put(b"late", priority=500)
    queue.put(b"a3")
    queue.put(b"urgent2", priority=1)
    assert len(queue) == 6
    names = sorted(zk.get_children("/queues/q"))
    assert names[0].startswith("entry-001-") and len(names[0]) == len("entry-001-") + 10
    got = [queue.get() for _ in range(6)]
    assert got == [b"urgent", b"urgent2", b"a1", b"a2", b"a3", b"late"]
    assert queue.get() is None
    assert len(queue) == 0


def test_queue_bad_arguments(zk):
    queue = Queue(zk, "/queues/bad")
    with pytest.raises(TypeError):
        queue.put("text")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        queue.put(b"x", priority=1000)
    with pytest.raises(TypeError):
        queue.put(b"x", priority="1")  # type: ignore[arg-type]


def test_queue_concurrent_consumers_get_each_item_once(node, zk):
    path = "/queues/many"
    producer = Queue(zk, path)
    items = [f"item-{i}".encode() for i in range(60)]
    for item in items:
        producer.put(item)

    consumers = [node.client() for _ in range(4)]
    results: list[list[bytes]] = [[] for _ in consumers]

    def consume(i: int) -> None:
        queue = Queue(consumers[i], path)
        for _ in range(len(items) + 1):  # bounded: never more gets than items
            value = queue.get()
            if value is None:
                return
            results[i].append(value)

    threads = [_thread(lambda i=i: consume(i)) for i in range(len(consumers))]
    for t, out in threads:
        joined(t, out)
    everything = [v for r in results for v in r]
    assert sorted(everything) == sorted(items)  # each item exactly once
    for r in results:  # each consumer saw its items in queue order
        assert r == sorted(r, key=items.index)
    assert len(producer) == 0


# --- LockingQueue ------------------------------------------------------------------------------


def test_locking_queue_get_consume_release(node, zk):
    path = "/queues/locking"
    queue = LockingQueue(zk, path)
    assert len(queue) == 0
    assert queue.get(timeout=0.2) is None
    assert not queue.holds_lock()
    assert queue.consume() is False
    assert queue.release() is False

    queue.put(b"one")
    queue.put_all([b"two", b"three"])
    queue.put(b"first", priority=5)
    assert len(queue) == 4

    assert queue.get(timeout=WAIT) == b"first"
    assert queue.holds_lock()
    assert queue.get() == b"first"  # until consumed or released, the same item
    (taken,) = zk.get_children(f"{path}/taken")
    assert zk.get(f"{path}/taken/{taken}")[0] == queue.id
    assert queue.release() is True
    assert not queue.holds_lock()
    assert zk.get_children(f"{path}/taken") == []
    assert len(queue) == 4  # released, not removed

    assert queue.get(timeout=WAIT) == b"first"
    assert queue.consume() is True
    assert queue.processing_element is None
    assert len(queue) == 3
    assert zk.get_children(f"{path}/taken") == []

    got = []
    for _ in range(3):
        got.append(queue.get(timeout=WAIT))
        assert queue.consume() is True
    assert got == [b"one", b"two", b"three"]
    assert len(queue) == 0

    with pytest.raises(TypeError):
        queue.put_all(b"not a list")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        queue.put_all([b"ok", "text"])  # type: ignore[list-item]
    assert len(queue) == 0  # nothing of a bad batch went in


def test_locking_queue_locked_item_not_handed_out(node, zk):
    path = "/queues/locking2"
    first = LockingQueue(zk, path)
    second = LockingQueue(node.client(), path)
    first.put(b"a")
    first.put(b"b")
    assert first.get(timeout=WAIT) == b"a"
    assert second.get(timeout=WAIT) == b"b"  # a is locked by first
    third = LockingQueue(node.client(), path)
    assert third.get(timeout=0.3) is None  # both locked

    # A blocked get takes the item once it is released.
    t, out = _thread(lambda: third.get(timeout=WAIT))
    assert first.release() is True
    assert joined(t, out) == b"a"
    assert third.holds_lock()
    assert not first.holds_lock()
    assert first.consume() is False  # first no longer holds anything

    # A blocked get also wakes for a new item.
    t, out = _thread(lambda: first.get(timeout=WAIT))
    first_client_queue = LockingQueue(zk, path)
    first_client_queue.put(b"c")
    assert joined(t, out) == b"c"
    assert first.consume() and second.consume() and third.consume()
    assert len(first) == 0


def test_locking_queue_lock_of_stopped_client_is_freed(node, zk):
    path = "/queues/locking3"
    dying_client = node.client()
    dying = LockingQueue(dying_client, path)
    survivor = LockingQueue(zk, path)
    survivor.put(b"job")
    assert dying.get(timeout=WAIT) == b"job"
    assert survivor.get(timeout=0.2) is None

    t, out = _thread(lambda: survivor.get(timeout=WAIT))
    dying_client.stop()  # its session, and with it the lock, goes
    assert joined(t, out) == b"job"
    assert survivor.holds_lock()
    assert survivor.consume() is True
    assert len(survivor) == 0


def test_these_recipes_are_client_attributes_with_kazoos_names(zk):
    q = zk.Queue("/attr/q")
    q.put(b"x")
    assert len(q) == 1 and q.get() == b"x"
    party = zk.Party("/attr/party", "me")
    party.join()
    assert list(party) == ["me"]
    assert zk.ShallowParty("/attr/sp", "a") is not None
    barrier = zk.Barrier("/attr/barrier")
    barrier.create()
    assert barrier.wait(0.05) is False
    assert zk.DoubleBarrier("/attr/db", 1) is not None and zk.LockingQueue("/attr/lq") is not None
