"""The recipes through connection loss and session expiry, as kazoo documents them, on a standalone
node and on a 3-node ensemble (SIGKILL of the leader or of a follower, SIGSTOP of a node, a
session ended under a live client with `expire_session`).

- Lock: a holder whose session expires loses the lock (its node goes, its listener sees LOST,
  `is_acquired` turns False as zoomq's Lock documents) and a waiting contender gets it; a holder
  whose connection drops for less than the session timeout keeps it; read-modify-write under the
  lock loses no update while the leader is killed.
- Election: a leader whose session expires is replaced; leaders never overlap (their fenced
  actions never interleave).
- Counter, ConfigCenter, Queue: no increment, publication or item is lost or doubled across a
  node's SIGKILL.
- Membership, Party, ShallowParty: a member whose session expires is seen leaving.
- Under them, the client: told LOST when its session is ended through another node, and its
  watches re-armed from the right zxid after its node left the quorum; and (xfail, a node bug) a
  session used through two nodes at once never gets one request's result for another.

One ensemble and one standalone node per xdist worker (module scope); a test that kills or pauses a
node leaves it running again (`ens` heals before and after every test). Every test works under its
own root path.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest
from tests_support import background, joined

from zoomq import Client, KazooState
from zoomq.exceptions import SessionMovedError
from zoomq.recipe.scenarios import ConfigCenter, Membership
from zoomq.testing import ZoomqEnsemble, ZoomqServer, expire_session, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]

WAIT = 30.0  # bound of any single wait
SHORT = 4.0  # session timeout of a client whose session a test expires: it is told at its next ping


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZoomqEnsemble]:
    with ZoomqEnsemble(3, base_dir=tmp_path_factory.mktemp("ens")) as ens:
        yield ens


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZoomqServer]:
    with ZoomqServer(
        data_dir=tmp_path_factory.mktemp("standalone"), tick_ms=100, max_session_timeout_ms=60_000
    ) as node:
        yield node


def _heal(ens: ZoomqEnsemble) -> None:
    """Every node running and serving, and a leader: what a test that killed one leaves behind."""
    for node in ens.nodes:
        if not node.running:
            node.start(timeout=60)
    ens.wait_leader(timeout=60)
    for node in ens.nodes:
        node.wait_ready(60)


@pytest.fixture
def ens(ensemble: ZoomqEnsemble) -> Iterator[ZoomqEnsemble]:
    _heal(ensemble)
    yield ensemble
    _heal(ensemble)


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    """make(hosts, timeout=10.0) -> a started Client that tries `hosts` in the order given; all
    stopped at the end of the test."""
    made: list[Client] = []

    def make(hosts: str, timeout: float = 10.0) -> Client:
        client = Client(hosts=hosts, timeout=timeout, randomize_hosts=False)
        made.append(client)
        client.start(timeout=WAIT)
        return client

    yield make
    for client in made:
        with contextlib.suppress(Exception):
            client.stop()


@pytest.fixture
def base() -> str:
    """A root path of this test's own (the nodes are shared by the tests of a worker)."""
    return f"/t{uuid.uuid4().hex[:12]}"


def _prefer(ens: ZoomqEnsemble, node: ZoomqServer) -> str:
    """A connection string that tries `node` first and the others after it."""
    return ",".join(n.hosts for n in [node, *(n for n in ens.nodes if n is not node)])


@pytest.fixture(params=["standalone", "ensemble"])
def where(request: pytest.FixtureRequest) -> SimpleNamespace:
    """hosts(i): a connection string for the i-th client: the standalone node, or every node of
    the ensemble with node i % 3 first (so that the clients of a test sit on different nodes;
    `expire_session` ends a session through any of them)."""
    if request.param == "standalone":
        node = request.getfixturevalue("standalone")
        return SimpleNamespace(name="standalone", hosts=lambda i: node.hosts)
    ens = request.getfixturevalue("ens")
    return SimpleNamespace(name="ensemble", hosts=lambda i: _prefer(ens, ens.nodes[i % len(ens.nodes)]))


def _states(client: Client) -> list[str]:
    """The connection states `client` reports from now on."""
    seen: list[str] = []
    client.add_listener(seen.append)
    return seen


# --- Lock ---------------------------------------------------------------------------------------


def test_lock_holder_whose_session_expires_loses_it_to_the_waiter(where, clients, base):
    path = f"{base}/lock"
    holder_zk = clients(where.hosts(0), timeout=SHORT)
    waiter_zk = clients(where.hosts(1))
    observer = clients(where.hosts(2))
    states = _states(holder_zk)

    held = holder_zk.Lock(path, "holder")
    assert held.acquire(timeout=WAIT)
    node_path = f"{path}/{held.node}"
    old_session = holder_zk.client_id[0]
    observer.sync(path)  # reads on another node: at least as new as the last commit
    assert observer.exists(node_path).ephemeralOwner == old_session

    waiter = waiter_zk.Lock(path, "waiter")
    t, out = background(lambda: waiter.acquire(timeout=WAIT))
    wait_for(lambda: len(observer.get_children(path)) == 2, WAIT, "the waiter queued")
    assert waiter.contenders() == ["holder", "waiter"]
    assert not waiter.is_acquired

    expire_session(holder_zk)
    assert KazooState.LOST in states  # the holder is told ...
    assert not held.is_acquired  # ... and its Lock no longer claims the lock (zoomq's documented behaviour)
    assert joined(t, out, WAIT) is True  # the waiter has it
    observer.sync(path)
    assert observer.exists(node_path) is None  # the expired holder's node went with its session
    assert observer.get_children(path) == [waiter.node]
    assert waiter.contenders() == ["waiter"]

    # The old holder releasing now must not touch anybody else's node.
    assert held.release() is False
    observer.sync(path)
    assert observer.get_children(path) == [waiter.node]

    # The holder's client carries on with a new session; the same Lock object can queue again.
    wait_for(lambda: holder_zk.connected, WAIT, "the holder's new session")
    assert holder_zk.client_id[0] != old_session
    t, out = background(lambda: held.acquire(timeout=WAIT))
    wait_for(lambda: len(observer.get_children(path)) == 2, WAIT, "the old holder queued again")
    assert waiter.release() is True
    assert joined(t, out, WAIT) is True
    observer.sync(path)
    assert observer.exists(f"{path}/{held.node}").ephemeralOwner == holder_zk.client_id[0]
    assert held.release() is True
    observer.sync(path)
    assert observer.get_children(path) == []


def test_lock_mutual_exclusion_while_the_leader_is_killed(ens, clients, base):
    n_clients, rounds = 4, 15
    path, shared = f"{base}/lock", f"{base}/shared"
    zks = [clients(_prefer(ens, ens.nodes[i % 3])) for i in range(n_clients)]
    zks[0].create(shared, b"0", makepath=True)
    guard = threading.Lock()
    state = {"active": 0, "max": 0, "done": 0}
    read: list[int] = []

    def worker(i: int) -> None:
        zk = zks[i]
        lock = zk.Lock(path, f"w{i}")
        for _ in range(rounds):
            with lock:
                with guard:
                    state["active"] += 1
                    state["max"] = max(state["max"], state["active"])
                # An unprotected read-modify-write: only the lock keeps it exact.
                value = int(zk.get(shared)[0])
                zk.set(shared, str(value + 1).encode())
                with guard:
                    read.append(value)
                    state["active"] -= 1
                    state["done"] += 1

    workers = [background(lambda i=i: worker(i)) for i in range(n_clients)]
    wait_for(lambda: state["done"] >= n_clients * rounds // 4, WAIT, "progress before the kill")
    leader = ens.leader()
    leader.kill()
    ens.wait_leader(timeout=WAIT, exclude=leader)
    for t, out in workers:
        joined(t, out, 90)
    assert state["max"] == 1
    assert sorted(read) == list(range(n_clients * rounds))  # each value read once: no update lost
    final = clients(_prefer(ens, ens.followers()[0]))
    final.sync(shared)
    assert int(final.get(shared)[0]) == n_clients * rounds
    assert final.get_children(path) == []


@pytest.mark.parametrize("fault", ["pause-follower", "kill-leader"])
def test_lock_survives_a_connection_loss_shorter_than_the_session(ens, clients, base, fault):
    path = f"{base}/lock"
    leader = ens.leader()
    followers = ens.followers()
    assert len(followers) == 2
    target, calm = (followers[0], followers[1]) if fault == "pause-follower" else (leader, followers[0])

    # The holder sits on the node the fault hits; its session outlives the outage.
    holder_zk = clients(_prefer(ens, target), timeout=6.0)
    states = _states(holder_zk)
    session = holder_zk.client_id[0]
    lock = holder_zk.Lock(path, "holder")
    assert lock.acquire(timeout=WAIT)
    node_path = f"{path}/{lock.node}"

    other_zk = clients(_prefer(ens, calm))
    released = threading.Event()
    other = other_zk.Lock(path, "other")

    def contend() -> bool:
        assert other.acquire(timeout=90)
        return released.is_set()  # whether the holder had let go when the contender got the lock

    t, out = background(contend)
    wait_for(lambda: len(other_zk.get_children(path)) == 2, WAIT, "the contender queued")

    def check_still_held() -> None:
        assert holder_zk.client_id is not None and holder_zk.client_id[0] == session
        assert lock.is_acquired
        stat = other_zk.exists(node_path)
        assert stat is not None and stat.ephemeralOwner == session
        assert not other.is_acquired and t.is_alive()
        assert KazooState.LOST not in states

    if fault == "pause-follower":
        target.pause()
        try:
            # The holder notices the silence, moves to another node and resumes its session there.
            wait_for(lambda: KazooState.SUSPENDED in states and holder_zk.connected, WAIT, "the holder on another node")
            holder_zk.sync(path)
            check_still_held()
        finally:
            target.resume()
    else:
        target.kill()
        ens.wait_leader(timeout=WAIT, exclude=target)
        wait_for(lambda: KazooState.SUSPENDED in states and holder_zk.connected, WAIT, "the holder on another node")
        holder_zk.sync(path)
    other_zk.sync(path)
    check_still_held()
    assert other.contenders() == ["holder", "other"]

    released.set()
    assert lock.release() is True
    assert joined(t, out, WAIT) is True  # the contender got it only after the release
    assert other.release() is True
    assert other_zk.get_children(path) == []


# --- Election -----------------------------------------------------------------------------------


def test_election_leader_whose_session_expires_is_replaced_one_at_a_time(where, clients, base):
    path, acts = f"{base}/election", f"{base}/acts"
    n = 3
    zks = [clients(where.hosts(i), timeout=SHORT) for i in range(n)]  # the contenders' sessions
    # Each leader acts through a second client of its own: its elected session only holds the
    # election, as expire_session needs (see test_a_session_taken_over_elsewhere_...).
    workers = [clients(where.hosts(i)) for i in range(n)]
    workers[0].ensure_path(acts)
    observer = clients(where.hosts(0))
    lost = [threading.Event() for _ in range(n)]
    for i, zk in enumerate(zks):
        zk.add_listener(lambda s, i=i: lost[i].set() if s == KazooState.LOST else None)
    elections = [zk.Election(path, f"c{i}") for i, zk in enumerate(zks)]
    elected = [threading.Event() for _ in range(n)]
    finish = threading.Event()
    guard = threading.Lock()
    enters: list[tuple[int, float]] = []
    done = [0] * n
    refused = [0] * n

    def lead(i: int) -> None:
        """Act as leader until told the session is lost (or the test ends). Every action is
        fenced: a multi that also checks that this contender's election node still exists, so no
        action of a deposed leader can land, whether or not it knows yet that it was deposed."""
        own = f"{path}/{elections[i].lock.node}"
        with guard:
            enters.append((i, time.monotonic()))
        elected[i].set()
        for _ in range(100_000):
            if lost[i].is_set() or finish.is_set():
                break
            tx = workers[i].transaction()
            tx.check(own, 0)
            tx.create(f"{acts}/a-", str(i).encode(), sequence=True)
            if any(isinstance(r, Exception) for r in tx.commit()):
                refused[i] += 1  # the election node is gone: deposed
                break
            done[i] += 1
            lost[i].wait(0.01)  # pace the actions; wakes at once on LOST

    runs = [background(lambda: elections[0].run(lead, 0))]
    assert elected[0].wait(WAIT)
    for i in range(1, n):
        runs.append(background(lambda i=i: elections[i].run(lead, i)))
        wait_for(lambda m=i + 1: len(observer.get_children(path)) == m, WAIT, "contenders queued")
    assert elections[0].contenders() == ["c0", "c1", "c2"]

    deposed_at = []
    for i in range(n - 1):
        wait_for(lambda i=i: done[i] >= 3, WAIT, f"c{i} acting as leader")
        assert not any(e.is_set() for e in elected[i + 1 :])  # nobody else while c{i} leads
        deposed_at.append(time.monotonic())
        expire_session(zks[i])
        assert elected[i + 1].wait(WAIT), f"c{i + 1} was not elected after c{i}'s session expired"
        joined(*runs[i], timeout=WAIT)  # the deposed leader's run returned: it stepped down
        assert not elections[i].lock.is_acquired
    wait_for(lambda: done[n - 1] >= 3, WAIT, f"c{n - 1} acting as leader")
    finish.set()
    joined(*runs[n - 1], timeout=WAIT)

    assert [i for i, _ in enters] == list(range(n))  # each elected once, in queue order
    for i in range(1, n):
        # A successor was elected only after its predecessor's session was being ended.
        assert enters[i][1] > deposed_at[i - 1]
    # The fenced actions, in the order the ensemble applied them: one leader's, then the next's,
    # never interleaved (a deposed leader's action landing after its successor's would show here).
    observer.sync(acts)
    order = [int(observer.get(f"{acts}/{c}")[0]) for c in sorted(observer.get_children(acts))]
    runs_of = [who for k, who in enumerate(order) if k == 0 or order[k - 1] != who]
    assert runs_of == list(range(n)), f"leaders' actions interleaved: {runs_of}"
    assert [order.count(i) for i in range(n)] == done  # every acknowledged action, and no other
    print(f"actions per leader {done}; refused after deposition (before LOST was seen) {refused}")
    assert observer.get_children(path) == []
    wait_for(lambda: all(zk.connected for zk in zks), WAIT, "the deposed leaders' new sessions")


# --- Counter ------------------------------------------------------------------------------------


def test_counter_increments_from_several_clients_while_a_follower_is_killed(ens, clients, base):
    path = f"{base}/counter"
    rounds = 20
    zks = [clients(_prefer(ens, node)) for node in ens.nodes]
    victim = ens.followers()[0]
    posts: list[list[int]] = [[] for _ in zks]

    def increment(i: int) -> None:
        counter = zks[i].Counter(path)
        for _ in range(rounds):
            counter += 1
            posts[i].append(counter.post_value)

    workers = [background(lambda i=i: increment(i)) for i in range(len(zks))]
    wait_for(lambda: sum(map(len, posts)) >= rounds, WAIT, "increments before the kill")
    victim.kill()
    for t, out in workers:
        joined(t, out, 90)
    total = rounds * len(zks)
    # Each increment saw its own value: none applied twice, none lost.
    assert sorted(v for p in posts for v in p) == list(range(1, total + 1))
    check = clients(_prefer(ens, ens.leader()))
    check.sync(path)
    assert check.Counter(path).value == total


# --- Membership, Party --------------------------------------------------------------------------


def test_a_member_whose_session_expires_is_seen_leaving(where, clients, base):
    watcher = clients(where.hosts(0))
    mortal = clients(where.hosts(1), timeout=SHORT)
    staying = clients(where.hosts(2))
    cluster, party_path, shallow_path = f"{base}/cluster", f"{base}/party", f"{base}/shallow"

    joins: queue.Queue = queue.Queue()
    leaves: queue.Queue = queue.Queue()
    Membership(watcher, cluster).listen(joins.put, leaves.put)
    Membership(mortal, cluster).join("mortal")
    Membership(staying, cluster).join("staying")
    assert {joins.get(timeout=WAIT), joins.get(timeout=WAIT)} == {"mortal", "staying"}

    party = mortal.Party(party_path, "mortal")
    party.join()
    staying.Party(party_path, "staying").join()
    shallow = mortal.ShallowParty(shallow_path, "mortal")
    shallow.join()
    staying.ShallowParty(shallow_path, "staying").join()
    party_view = watcher.Party(party_path)  # a viewer, not a member
    shallow_view = watcher.ShallowParty(shallow_path)
    wait_for(lambda: sorted(party_view) == ["mortal", "staying"], WAIT, "both in the party")
    wait_for(lambda: sorted(shallow_view) == ["mortal", "staying"], WAIT, "both in the shallow party")

    expire_session(mortal)
    assert leaves.get(timeout=WAIT) == "mortal"  # the listener is told, without the member saying so
    watcher.sync(cluster)
    assert Membership(watcher, cluster).members() == ["staying"]
    wait_for(lambda: sorted(party_view) == ["staying"], WAIT, "the party without the expired member")
    wait_for(lambda: sorted(shallow_view) == ["staying"], WAIT, "the shallow party without it")
    assert len(party_view) == 1 and len(shallow_view) == 1
    assert leaves.empty() and joins.empty()

    # Membership is not given back by itself (kazoo's Party neither): the member joins again.
    wait_for(lambda: mortal.connected, WAIT, "the member's new session")
    party.join()
    Membership(mortal, cluster).join("mortal")
    assert joins.get(timeout=WAIT) == "mortal"
    wait_for(lambda: sorted(party_view) == ["mortal", "staying"], WAIT, "the member back in the party")


# --- ConfigCenter -------------------------------------------------------------------------------


@pytest.mark.parametrize("victim", ["leader", "follower"])
def test_config_subscribers_on_every_node_see_the_last_value_after_a_node_is_killed(ens, clients, base, victim):
    # When the leader dies every node leaves the quorum and forgets its clients' watches; the
    # subscribers must still end on the last value (DataWatch reads again after a reconnect).
    path = f"{base}/config"
    versions = 40
    subscribers = [clients(_prefer(ens, node)) for node in ens.nodes]  # the victim's one must move
    seen: list[list[bytes | None]] = [[] for _ in subscribers]
    for i, zk in enumerate(subscribers):
        ConfigCenter(zk, path).subscribe(seen[i].append)
    wait_for(lambda: all(s for s in seen), WAIT, "the initial reads")
    assert all(s[0] is None for s in seen)  # nothing published yet

    leader = ens.leader()
    calm, other = ens.followers()
    killed = leader if victim == "leader" else other
    publisher = ConfigCenter(clients(_prefer(ens, calm)), path)
    published: list[bytes] = []

    def publish() -> None:
        for i in range(versions):
            value = b"v%03d" % i
            publisher.publish(value)
            published.append(value)

    t, out = background(publish)
    wait_for(lambda: len(published) >= versions // 3, WAIT, "publications before the kill")
    killed.kill()
    joined(t, out, 90)
    last = b"v%03d" % (versions - 1)
    wait_for(lambda: all(s and s[-1] == last for s in seen), WAIT, "every subscriber seeing the last value")
    for i, s in enumerate(seen):
        values = [v for v in s if v is not None]
        assert values == sorted(values), f"subscriber {i} saw an older value after a newer one: {values}"
        assert len(values) == len(set(values)), f"subscriber {i} was told a value twice: {values}"


# --- Queue --------------------------------------------------------------------------------------


def test_queue_items_put_around_a_leader_kill_come_out_once_in_order(ens, clients, base):
    path = f"{base}/queue"
    per_producer = 30
    leader = ens.leader()
    producers = [clients(_prefer(ens, leader)), clients(_prefer(ens, ens.followers()[0]))]
    consumer_zk = clients(_prefer(ens, ens.followers()[1]))
    put: list[list[bytes]] = [[] for _ in producers]
    got: list[bytes] = []
    total = per_producer * len(producers)
    stop = threading.Event()

    def produce(i: int) -> None:
        q = producers[i].Queue(path)
        for j in range(per_producer):
            item = b"p%d-%03d" % (i, j)
            q.put(item)
            put[i].append(item)

    def consume() -> None:
        q = consumer_zk.Queue(path)
        deadline = time.monotonic() + 120
        while len(got) < total and not stop.is_set() and time.monotonic() < deadline:
            item = q.get()
            if item is None:
                stop.wait(0.02)  # empty for now: look again shortly
            else:
                got.append(item)

    makers = [background(lambda i=i: produce(i)) for i in range(len(producers))]
    taker = background(consume)
    wait_for(lambda: all(len(p) >= per_producer // 3 for p in put), WAIT, "items put before the kill")
    leader.kill()
    try:
        for t, out in makers:
            joined(t, out, 90)
        wait_for(lambda: len(got) >= total, 90, "every item taken")
    finally:
        stop.set()
        joined(*taker, timeout=WAIT)
    assert len(got) == len(set(got)) == total, "an item came out twice or not at all"
    assert set(got) == {item for p in put for item in p}
    for i, items in enumerate(put):
        assert [g for g in got if g.startswith(b"p%d-" % i)] == items, f"producer {i}'s items out of order"
    consumer_zk.sync(path)
    assert len(consumer_zk.Queue(path)) == 0
    assert consumer_zk.Queue(path).get() is None


# --- under the recipes: what the client must get right for them -------------------------------
# Both failed before zoomq/client.py learnt to treat a SESSIONEXPIRED reply as the end of the
# session, and to keep its last seen zxid out of a CONNECTIONLOSS reply.


def _end_session_through(node: ZoomqServer, client: Client) -> None:
    """`expire_session` through a node of our choosing: take `client`'s session over on `node`
    and close it there."""
    session_id, passwd = client.client_id
    thief = Client(hosts=node.hosts, client_id=(session_id, passwd))
    thief.start(timeout=WAIT)
    try:
        assert thief.client_id is not None and thief.client_id[0] == session_id
    finally:
        thief.stop()


def test_a_session_ended_through_another_node_is_reported_lost_to_the_lock_holder(ens, clients, base):
    """The node the holder is on answers its next message SESSIONEXPIRED on a connection it keeps
    open: the client must report LOST then (and the Lock let go), not carry on CONNECTED with a
    lock that another contender holds."""
    path = f"{base}/lock"
    mine, theirs = ens.followers()[0], ens.leader()
    holder_zk = clients(_prefer(ens, mine), timeout=SHORT)
    states = _states(holder_zk)
    session = holder_zk.client_id[0]
    held = holder_zk.Lock(path, "holder")
    assert held.acquire(timeout=WAIT)
    waiter = clients(_prefer(ens, theirs)).Lock(path, "waiter")
    t, out = background(lambda: waiter.acquire(timeout=WAIT))
    wait_for(lambda: len(waiter.contenders()) == 2, WAIT, "the waiter queued")

    _end_session_through(theirs, holder_zk)
    assert joined(t, out, WAIT) is True  # the ensemble is right: the waiter has the lock now ...
    # ... and the holder must be told (it pings every SHORT/3 s), not believe it still holds it.
    wait_for(lambda: KazooState.LOST in states, 2 * SHORT, "the holder told that its session is gone")
    assert not held.is_acquired
    wait_for(lambda: holder_zk.connected, WAIT, "the holder's new session")  # as kazoo, it starts over
    assert holder_zk.client_id[0] != session


def test_a_watch_on_a_surviving_follower_fires_for_a_change_made_under_the_next_leader(ens, clients, base):
    """A follower that left the quorum forgot its clients' watches; the CONNECTIONLOSS reply to a
    client's next message carries the follower's newest zxid, which the client must not take as
    seen: its SetWatches has to start before the change, or the change is never announced (a
    ConfigCenter subscriber would keep an old value)."""
    path = f"{base}/watched"
    follower = ens.followers()[0]
    # Pings every 10 s: nothing but the test's own requests reaches the node in what follows.
    watcher = clients(_prefer(ens, follower), timeout=30.0)
    writer = clients(follower.hosts)  # this follower alone: its write is applied there when it returns
    writer.create(path, b"before", makepath=True)
    fired = threading.Event()
    watcher.get(path, watch=lambda event: fired.set())

    leader = ens.leader()
    leader.kill()  # the follower leaves the quorum, then follows the next leader
    ens.wait_leader(timeout=WAIT, exclude=leader)
    follower.wait_ready(WAIT)
    writer.set(path, b"after")
    assert watcher.get(path)[0] == b"after"  # the watcher's first message since: it resumes its session
    wait_for(fired.is_set, 5.0, "the watch firing for the change it missed")


def test_a_session_taken_over_elsewhere_never_gets_another_requests_result(ens, clients, base):
    first_node, second_node = ens.nodes[0], ens.nodes[1]
    original = clients(first_node.hosts)
    original.ensure_path(base)
    taker = Client(hosts=second_node.hosts, client_id=original.client_id)
    taker.start(timeout=WAIT)
    try:
        assert taker.client_id[0] == original.client_id[0]
        # The newest connection owns the session (as ZooKeeper): the original's write is refused
        # with SessionMovedError and creates nothing, and the original has lost its session.
        with pytest.raises(SessionMovedError):
            original.create(f"{base}/from-original", b"")
        assert taker.create(f"{base}/from-taker", b"") == f"{base}/from-taker"
        assert taker.exists(f"{base}/from-taker") is not None
        assert taker.exists(f"{base}/from-original") is None
        wait_for(
            lambda: original.client_id is None or original.client_id[0] != taker.client_id[0],
            WAIT,
            "the original client giving the session up",
        )
    finally:
        taker.stop()
