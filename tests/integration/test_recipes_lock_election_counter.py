"""Lock, ReadLock/WriteLock, Semaphore, Election and Counter recipes against a real node."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from zoomq.exceptions import CancelledError, LockTimeout
from zoomq.recipe.counter import Counter
from zoomq.recipe.election import Election
from zoomq.recipe.lock import Lock, ReadLock, Semaphore, WriteLock
from zoomq.testing import wait_for

from tests_support import background as _thread
from tests_support import joined

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

WAIT = 20.0  # generous bound for any single wait


def _children(zk: Any, path: str) -> list[str]:
    return zk.get_children(path) if zk.exists(path) else []


# --- Lock --------------------------------------------------------------------------------------


def test_lock_basics_node_names_and_contenders(zk):
    lock = Lock(zk, "/locks/basic", "first")
    assert lock.acquire() is True
    assert lock.is_acquired
    (child,) = zk.get_children("/locks/basic")
    assert child == lock.node
    uuid_part, _, seq = child.partition("__lock__")
    assert len(uuid_part) == 32 and seq.isdigit() and len(seq) == 10
    assert zk.get("/locks/basic/" + child)[0] == b"first"

    other = Lock(zk, "/locks/basic", "second")
    t, out = _thread(other.acquire)
    wait_for(lambda: len(zk.get_children("/locks/basic")) == 2, WAIT)
    assert lock.contenders() == ["first", "second"]
    assert lock.release() is True
    assert lock.release() is False
    assert joined(t, out) is True
    assert other.contenders() == ["second"]
    assert other.acquire(blocking=False) is False  # not re-entrant, as kazoo's
    assert other.release() is True
    assert not other.is_acquired
    assert zk.get_children("/locks/basic") == []


def test_context_manager(zk):
    lock = Lock(zk, "/locks/ctx")
    with lock:
        assert lock.is_acquired
        assert len(zk.get_children("/locks/ctx")) == 1
    assert not lock.is_acquired
    assert zk.get_children("/locks/ctx") == []


def test_mutual_exclusion_across_clients(node):
    clients = [node.client() for _ in range(4)]
    setup = clients[0]
    setup.create("/shared", b"0", makepath=True)
    guard = threading.Lock()
    state = {"active": 0, "max": 0}
    rounds = 5

    def worker(client: Any, i: int) -> None:
        lock = Lock(client, "/locks/mutex", f"w{i}")
        for _ in range(rounds):
            with lock:
                with guard:
                    state["active"] += 1
                    state["max"] = max(state["max"], state["active"])
                # An unprotected read-modify-write: only exclusion keeps it exact.
                value = int(client.get("/shared")[0])
                client.set("/shared", str(value + 1).encode())
                with guard:
                    state["active"] -= 1

    threads = [_thread(lambda c=c, i=i: worker(c, i)) for i, c in enumerate(clients)]
    for t, out in threads:
        joined(t, out)
    assert state["max"] == 1
    assert int(setup.get("/shared")[0]) == rounds * len(clients)


def test_fifo_order_and_no_herd(node, zk):
    path = "/locks/fifo"
    holder = Lock(zk, path, "holder")
    assert holder.acquire()
    order: list[str] = []
    watched: dict[str, list[str]] = {}
    waiters = []
    for i in range(4):
        client = node.client()
        name = f"w{i}"
        seen = watched[name] = []
        real_get, real_children = client.get, client.get_children

        def get(p: str, watch: Any = None, _real=real_get, _seen=seen) -> Any:
            if watch is not None:
                _seen.append(p.rsplit("/", 1)[1])
            return _real(p, watch=watch)

        def get_children(p: str, watch: Any = None, _real=real_children, **kw: Any) -> Any:
            assert watch is None, "a lock waiter must not watch the whole lock directory"
            return _real(p, watch=watch, **kw)

        client.get, client.get_children = get, get_children
        lock = Lock(client, path, name)

        def take(lock: Lock = lock, name: str = name) -> None:
            with lock:
                order.append(name)

        waiters.append((lock, *_thread(take)))
        wait_for(lambda n=i + 2: len(zk.get_children(path)) == n, WAIT)  # queued in this order

    assert holder.contenders() == ["holder", "w0", "w1", "w2", "w3"]
    nodes = sorted(zk.get_children(path), key=lambda c: c[-10:])
    # Each waiter watches its predecessor and nothing else. (It may watch it again: a session
    # state change, such as the client's first CONNECTED reaching the lock's listener late,
    # wakes a waiter to look again, as kazoo's Lock does.)
    wait_for(lambda: all(watched[f"w{i}"] for i in range(4)), WAIT)
    for i in range(4):
        assert set(watched[f"w{i}"]) == {nodes[i]}
    assert order == []
    holder.release()
    for _, t, out in waiters:
        joined(t, out)
    assert order == ["w0", "w1", "w2", "w3"]


def test_timeout_and_non_blocking(node, zk):
    holder = Lock(zk, "/locks/timeout")
    assert holder.acquire()
    other = Lock(node.client(), "/locks/timeout")
    assert other.acquire(blocking=False) is False
    assert other.acquire(blocking=False, timeout=1) is False
    assert not other.is_acquired
    with pytest.raises(LockTimeout):
        other.acquire(timeout=0.3)
    assert not other.is_acquired
    assert zk.get_children("/locks/timeout") == [holder.node]  # the waiter's node is gone
    holder.release()
    assert other.acquire(timeout=5) is True
    other.release()


def test_holder_client_stops_next_waiter_gets_it(node):
    a, b = node.client(), node.client()
    held = Lock(a, "/locks/crash", "a")
    assert held.acquire()
    waiter = Lock(b, "/locks/crash", "b")
    t, out = _thread(lambda: waiter.acquire(timeout=WAIT))
    wait_for(lambda: len(b.get_children("/locks/crash")) == 2, WAIT)
    a.stop()
    assert not held.is_acquired  # session LOST: the lock is no longer held
    assert joined(t, out) is True
    assert waiter.contenders() == ["b"]
    assert held.release() is False
    waiter.release()


def test_cancel_makes_acquire_raise_cancelled(node, zk):
    holder = Lock(zk, "/locks/cancel")
    assert holder.acquire()
    waiter = Lock(node.client(), "/locks/cancel")
    t, out = _thread(waiter.acquire)
    wait_for(lambda: len(zk.get_children("/locks/cancel")) == 2, WAIT)
    waiter.cancel()
    with pytest.raises(CancelledError):
        joined(t, out)
    assert not waiter.is_acquired
    assert zk.get_children("/locks/cancel") == [holder.node]
    holder.release()
    assert waiter.acquire(timeout=5) is True  # cancellation is spent
    waiter.release()


def test_read_write_lock_sharing(node, zk):
    path = "/locks/rw"
    r1 = ReadLock(zk, path, "r1")
    r2 = ReadLock(node.client(), path, "r2")
    assert r1.acquire(timeout=5) and r2.acquire(timeout=5)  # readers share
    assert any("__rlock__" in c for c in zk.get_children(path))
    w = WriteLock(node.client(), path, "w")
    with pytest.raises(LockTimeout):
        w.acquire(timeout=0.3)  # a writer waits for earlier readers
    r2.release()

    t, out = _thread(lambda: w.acquire(timeout=WAIT))
    wait_for(lambda: len(zk.get_children(path)) == 2, WAIT)
    r3 = ReadLock(node.client(), path, "r3")
    with pytest.raises(LockTimeout):
        r3.acquire(timeout=0.3)  # a reader waits for an earlier writer
    assert r1.contenders() == ["r1", "w"]
    r1.release()
    assert joined(t, out) is True
    w2 = WriteLock(node.client(), path, "w2")
    assert w2.acquire(blocking=False) is False  # writers exclude each other
    t, out = _thread(lambda: r3.acquire(timeout=WAIT))
    wait_for(lambda: len(zk.get_children(path)) == 2, WAIT)
    w.release()
    assert joined(t, out) is True
    r3.release()


def test_plain_lock_ignores_read_locks_like_kazoo(zk):
    # kazoo's Lock excludes only `__lock__` nodes; WriteLock also excludes `__rlock__`.
    r = ReadLock(zk, "/locks/mixed", "r")
    assert r.acquire()
    lock = Lock(zk, "/locks/mixed", "l")
    assert lock.acquire(blocking=False) is True
    lock.release()
    r.release()


# --- Semaphore ---------------------------------------------------------------------------------


def test_semaphore_max_leases(node, zk):
    path = "/sem/a"
    s1 = Semaphore(zk, path, "s1", max_leases=2)
    s2 = Semaphore(node.client(), path, "s2", max_leases=2)
    s3 = Semaphore(node.client(), path, "s3", max_leases=2)
    assert s1.acquire(timeout=5) and s2.acquire(timeout=5)
    assert sorted(s1.lease_holders()) == ["s1", "s2"]
    assert zk.get(path)[0] == b"2"
    assert s3.acquire(blocking=False) is False
    with pytest.raises(LockTimeout):
        s3.acquire(timeout=0.3)
    t, out = _thread(lambda: s3.acquire(timeout=WAIT))
    s1.release()
    assert joined(t, out) is True
    assert sorted(s3.lease_holders()) == ["s2", "s3"]
    assert s1.release() is False
    with pytest.raises(ValueError, match="max leases"):
        Semaphore(zk, path, "bad", max_leases=3).acquire(timeout=5)
    s2.release()
    s3.release()
    assert s1.lease_holders() == []


def test_semaphore_concurrent_holders_never_exceed_max_leases(node):
    guard = threading.Lock()
    state = {"active": 0, "max": 0}
    clients = [node.client() for _ in range(4)]

    def worker(client: Any, i: int) -> None:
        sem = Semaphore(client, "/sem/b", f"s{i}", max_leases=2)
        for _ in range(3):
            with sem:
                with guard:
                    state["active"] += 1
                    state["max"] = max(state["max"], state["active"])
                client.exists("/sem/b")  # a round trip while holding a lease
                with guard:
                    state["active"] -= 1

    threads = [_thread(lambda c=c, i=i: worker(c, i)) for i, c in enumerate(clients)]
    for t, out in threads:
        joined(t, out)
    assert 1 <= state["max"] <= 2


def test_semaphore_lease_goes_with_the_client(node):
    a, b = node.client(), node.client()
    s1 = Semaphore(a, "/sem/c", "a", max_leases=1)
    assert s1.acquire(timeout=5)
    s2 = Semaphore(b, "/sem/c", "b", max_leases=1)
    t, out = _thread(lambda: s2.acquire(timeout=WAIT))
    a.stop()
    assert not s1.is_acquired
    assert joined(t, out) is True
    assert s2.lease_holders() == ["b"]
    s2.release()


# --- Election ----------------------------------------------------------------------------------


def test_election_one_leader_at_a_time_in_order(node):
    guard = threading.Lock()
    state = {"leading": 0, "max": 0}
    leaders: list[str] = []
    elected = {f"c{i}": threading.Event() for i in range(3)}
    step_down = {f"c{i}": threading.Event() for i in range(3)}

    def lead(name: str) -> None:
        with guard:
            state["leading"] += 1
            state["max"] = max(state["max"], state["leading"])
            leaders.append(name)
        elected[name].set()
        assert step_down[name].wait(WAIT)
        with guard:
            state["leading"] -= 1

    elections = {}
    runs = []
    for i in range(3):
        name = f"c{i}"
        elections[name] = Election(node.client(), "/election/a", name)
        runs.append(_thread(lambda n=name: elections[n].run(lead, n)))
        assert wait_for(lambda n=i + 1: len(elections["c0"].contenders()) == n, WAIT)

    assert elected["c0"].wait(WAIT)
    assert elections["c2"].contenders() == ["c0", "c1", "c2"]
    for i in range(3):
        name = f"c{i}"
        assert elected[name].wait(WAIT)
        assert [n for n, e in elected.items() if e.is_set()] == [f"c{j}" for j in range(i + 1)]
        step_down[name].set()
    for t, out in runs:
        joined(t, out)
    assert leaders == ["c0", "c1", "c2"]
    assert state["max"] == 1
    assert elections["c0"].contenders() == []


def test_election_next_contender_takes_over_when_leader_client_stops(node):
    a, b = node.client(), node.client()
    first_elected, second_elected, release_first = threading.Event(), threading.Event(), threading.Event()
    e1 = Election(a, "/election/b", "a")
    e2 = Election(b, "/election/b", "b")
    t1, out1 = _thread(lambda: e1.run(lambda: (first_elected.set(), release_first.wait(WAIT))))
    assert first_elected.wait(WAIT)
    t2, out2 = _thread(lambda: e2.run(second_elected.set))
    wait_for(lambda: e2.contenders() == ["a", "b"], WAIT)
    assert not second_elected.is_set()
    a.stop()
    assert second_elected.wait(WAIT)
    release_first.set()
    joined(t1, out1)  # the old leader steps down quietly: its lock went with its session
    joined(t2, out2)


def test_election_cancel_withdraws_a_waiting_contender(node, zk):
    leader = Election(zk, "/election/c", "leader")
    elected, done = threading.Event(), threading.Event()
    t1, out1 = _thread(lambda: leader.run(lambda: (elected.set(), done.wait(WAIT))))
    assert elected.wait(WAIT)
    called = []
    waiter = Election(node.client(), "/election/c", "waiter")
    t2, out2 = _thread(lambda: waiter.run(called.append, "led"))
    wait_for(lambda: leader.contenders() == ["leader", "waiter"], WAIT)
    waiter.cancel()
    assert joined(t2, out2) is None
    assert called == []
    assert leader.contenders() == ["leader"]
    done.set()
    joined(t1, out1)
    with pytest.raises(ValueError):
        leader.run("not callable")


# --- Counter -----------------------------------------------------------------------------------


def test_counter_int(zk):
    counter = Counter(zk, "/counter/int")
    assert counter.value == 0
    counter += 5
    assert (counter.pre_value, counter.post_value) == (0, 5)
    counter -= 2
    assert (counter.pre_value, counter.post_value) == (5, 3)
    assert counter.value == 3
    assert zk.get("/counter/int")[0] == b"3"
    with pytest.raises(TypeError):
        counter += 1.5
    assert Counter(zk, "/counter/int", default=10).value == 3  # the stored value wins


def test_counter_float(zk):
    counter = Counter(zk, "/counter/float", default=0.5)
    assert counter.value == 0.5
    counter += 1.5
    assert (counter.pre_value, counter.post_value) == (0.5, 2.0)
    counter -= 0.25
    assert counter.value == 1.75
    assert isinstance(counter.value, float)
    with pytest.raises(TypeError):
        counter += 1


def test_counter_curator_layout(zk):
    counter = Counter(zk, "/counter/curator", support_curator=True)
    counter += 7
    assert zk.get("/counter/curator")[0] == (7).to_bytes(4, "big")
    assert counter.value == 7
    with pytest.raises(TypeError):
        Counter(zk, "/counter/curator2", default=0.0, support_curator=True)


def test_counter_concurrent_increments_are_exact(node):
    clients = [node.client() for _ in range(4)]
    per_client = 10

    def bump(client: Any) -> None:
        counter = Counter(client, "/counter/shared")
        for _ in range(per_client):
            counter += 1

    threads = [_thread(lambda c=c: bump(c)) for c in clients]
    for t, out in threads:
        joined(t, out)
    assert Counter(clients[0], "/counter/shared").value == per_client * len(clients)


def test_recipes_are_client_attributes_with_kazoos_names(zk):
    with zk.Lock("/attr/lock", "me"):
        assert zk.Lock("/attr/lock").contenders() == ["me"]
    counter = zk.Counter("/attr/counter")
    counter += 2
    assert counter.value == 2
    assert zk.Election("/attr/election").contenders() == []
    assert zk.Semaphore("/attr/sem", max_leases=2).lease_holders() == []
    assert zk.ReadLock("/attr/rw") is not None and zk.WriteLock("/attr/rw") is not None
