"""Faults on a real 3-node ensemble: SIGKILL and SIGSTOP of nodes and actors under a steady write
load. After each: every acknowledged write is on every node, no sequential node is duplicated or
out of order, and every node holds the same data."""

from __future__ import annotations

import os
import signal
import time

import pytest

from actors.log.txnlog import read_txns
from tests_support import check_every_node, kill_actor, writer_on
from zoomq.exceptions import KazooException
from zoomq.testing import ZoomqEnsemble, ZoomqServer, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]


@pytest.fixture
def ens(tmp_path):
    with ZoomqEnsemble(3, base_dir=tmp_path) as ensemble:
        yield ensemble


def test_kill_the_leader_under_load(ens):
    writer = writer_on(ens)
    writer.wait_more(100)
    leader = ens.leader()
    leader.kill()
    writer.wait_more(50)
    new_leader = ens.wait_leader(exclude=leader)
    print(
        f"longest write pause around the SIGKILL of the leader: {writer.longest_gap():.2f}s; new leader {new_leader.hosts}"
    )
    leader.start(timeout=60)
    writer.wait_more(50)
    check_every_node(ens, writer.finish())


def test_a_restarted_follower_catches_up_by_diff(ens):
    writer = writer_on(ens, prefer=ens.leader())
    writer.wait_more(50)
    follower = ens.followers()[0]
    follower.kill()
    writer.wait_more(100)
    follower.start(timeout=60)
    writer.wait_more(20)
    acked = writer.finish()
    check_every_node(ens, acked)
    leader_log = ens.leader().log_text()
    assert '"kind": "diff"' in leader_log


def test_a_follower_away_past_the_snapshot_catches_up_by_snap(tmp_path):
    # sync_memory_txns=0: the leader's latest txns in memory would otherwise bridge the gap (DIFF)
    with ZoomqEnsemble(3, base_dir=tmp_path, snapshot_every=40, snapshot_retain=1, sync_memory_txns=0) as ens:
        writer = writer_on(ens, prefer=ens.leader())
        writer.wait_more(20)
        follower = ens.followers()[0]
        follower.kill()
        writer.wait_more(150)  # several snapshots on the others meanwhile
        follower.start(timeout=60)
        writer.wait_more(20)
        check_every_node(ens, writer.finish())
        leaders = [n.log_text() for n in ens.nodes if n.running]
        assert any('"kind": "snap"' in text for text in leaders)


def test_proposals_a_dead_leader_did_not_commit_are_truncated(ens):
    leader = ens.leader()
    followers = ens.followers()
    writer = writer_on(ens, prefer=leader)
    writer.wait_more(30)
    burst = ens.client(hosts=leader.hosts, timeout=30.0)
    for f in followers:
        f.pause()  # what the leader sends them now stays in their socket buffers ...
    # proposed, never acknowledged; the client re-sends them when it reaches a node again
    pending = [burst.create_async("/w/n-", str(-1 - i).encode(), sequence=True) for i in range(20)]
    wait_for(
        lambda: _last_logged(leader) > max(_last_logged(f) for f in followers), 20, "proposals the leader alone logged"
    )
    for f in followers:
        f.kill()  # ... and dies with them
    leader.kill()
    for f in followers:
        f.launch()
    ens.wait_leader(exclude=leader)
    writer.wait_more(20)
    leader.start(timeout=60)  # it holds txns nobody else has: they must go
    writer.wait_more(20)
    _settle(pending)  # else a re-sent create can land between two nodes' checks
    burst.stop()
    check_every_node(ens, writer.finish())
    assert any('"kind": "trunc"' in n.log_text() for n in ens.nodes if n is not leader)


def _settle(results: list, timeout: float = 90.0) -> None:
    """Wait until each async result is either a value or an error."""
    for result in results:
        try:
            result.get(timeout=timeout)
        except KazooException:
            pass


def _last_logged(node: ZoomqServer) -> int:
    last = 0
    for txn in read_txns(node.data_dir / "version-1"):
        last = txn.zxid
    return last


def test_pausing_a_minority_does_not_stop_writes(ens):
    writer = writer_on(ens, prefer=ens.leader())
    writer.wait_more(20)
    paused = ens.followers()[0]
    paused.pause()
    try:
        writer.wait_more(100)
    finally:
        paused.resume()
    writer.wait_more(20)
    check_every_node(ens, writer.finish())


def test_a_suspicion_of_the_only_other_live_voter_is_lifted(tmp_path):
    """One follower dead, the other's following failed (the leader hung past sync_limit) while the
    leader holds a txn nobody else logged: only the old leader can be elected now. The survivor,
    which suspects it, votes for it again once it has heard no other voter for a second, instead
    of waiting sync_limit ticks; and the txn the old leader alone logged survives its election."""
    with ZoomqEnsemble(3, base_dir=tmp_path, tick_ms=500) as ens:  # a suspicion lasts 5 x 0.5 s
        leader = ens.leader()
        dead, survivor = ens.followers()
        zk = ens.client(hosts=leader.hosts, timeout=30.0)
        zk.create("/s", b"0")
        dead.kill()
        survivor.pause()
        logged = _last_logged(leader)
        pending = zk.set_async("/s", b"1")  # logged by the leader alone
        wait_for(lambda: _last_logged(leader) > logged, 20, "the leader logged the write")
        leader.pause()
        survivor.resume()  # its leader is silent: after sync_limit ticks it looks, suspecting it
        wait_for(lambda: f'"suspect": {leader.sid}' in survivor.log_text(), 30, "the survivor suspecting the leader")
        leader.resume()
        wait_for(lambda: "suspicion_lifted" in survivor.log_text(), 30, "the suspicion lifted")
        assert ens.wait_leader(timeout=30) is leader  # its newer history wins
        _settle([pending])
        zk.stop()
        check = ens.client(hosts=survivor.hosts)
        check.sync("/s")
        assert check.get("/s")[0] == b"1"  # the new epoch committed what the old leader had logged


def test_pausing_a_majority_stops_acknowledgements_until_resumed(ens):
    leader = ens.leader()
    zk = ens.client(hosts=leader.hosts, timeout=30.0)
    zk.create("/maj", b"0")
    logged_before = _last_logged(leader)
    followers = ens.followers()
    for f in followers:
        f.pause()
    try:
        result = zk.set_async("/maj", b"1")
        # The leader takes it and logs it (its own fsync), which is when a leader that did not
        # wait for a quorum would answer; no answer may come while the followers are paused.
        wait_for(lambda: _last_logged(leader) > logged_before, 20, "the leader logged the write")
        assert not result.ready() or result.exception is not None, "a write was acknowledged without a quorum"
    finally:
        for f in followers:
            f.resume()
    # The paused write's outcome: once the majority is back, it commits (or, if leadership
    # changed meanwhile, fails cleanly); either way the value it wrote is seen at most once.
    try:
        stat = result.get(timeout=60)
        assert stat.version == 1
    except KazooException:
        pass
    ens.wait_leader()
    other = ens.client()
    other.sync("/maj")
    assert other.get("/maj")[0] in (b"0", b"1")
    other.set("/maj", b"2")
    assert other.get("/maj")[0] == b"2"


@pytest.mark.parametrize("actor", ["log", "session", "election", "role"])
@pytest.mark.parametrize("where", ["leader", "follower"])
def test_kill_each_actor_under_load(ens, actor, where):
    writer = writer_on(ens)
    writer.wait_more(50)
    node = ens.leader() if where == "leader" else ens.followers()[0]
    name = actor if actor != "role" else ("leader" if where == "leader" else "follower")
    if actor == "role":
        # Not restarted as such: the node goes back to election and a new role actor is started.
        os.kill(node.actor_pids()[name], signal.SIGKILL)
    else:
        kill_actor(node, name)
    writer.wait_more(100)
    ens.wait_leader()
    check_every_node(ens, writer.finish())


def test_the_leader_notices_a_dead_followers_closed_connection_at_once(tmp_path):
    """With 2 s ticks a silent learner would be dropped after sync_limit ticks (10 s); a killed
    one closes its connection, and the leader drops it for that reason, not for its silence."""
    import json

    with ZoomqEnsemble(3, base_dir=tmp_path, tick_ms=2000) as ens:
        leader = ens.leader()
        victim = ens.followers()[0]
        victim.kill()

        def dropped():
            for line in leader.log_text().splitlines():
                if '"learner_dropped"' in line:
                    return json.loads(line)
            return None

        event = wait_for(dropped, timeout=30, what="the leader dropping the dead follower")
        assert event["why"] == "connection closed", event
        assert ens.client(hosts=leader.hosts).create("/still", b"") == "/still"  # the other follower keeps the quorum


def _tree_rss(node: ZoomqServer) -> int:
    import psutil

    total = 0
    try:
        root = psutil.Process(node.pid)
        for proc in [root, *root.children(recursive=True)]:
            total += proc.memory_info().rss
    except psutil.Error:
        pass
    return total


LEADER_RSS_BOUND = 600 * 1024 * 1024  # the leader node's whole process tree, a paused follower or not


def test_a_paused_follower_under_saturated_writes_does_not_grow_the_leaders_memory(tmp_path):
    """A follower that stops reading (SIGSTOP) while writes pour in: the leader's queue to it is
    bounded (QUORUM_HWM), it is dropped and later synchronized again, and the leader's memory stays
    under LEADER_RSS_BOUND for the whole minute."""
    import threading

    with ZoomqEnsemble(3, base_dir=tmp_path) as ens:
        leader = ens.leader()
        paused = ens.followers()[0]
        zk = ens.client(hosts=leader.hosts, timeout=30.0)
        paths = [f"/flood/n{i}" for i in range(128)]
        for path in paths:
            zk.create(path, b"", makepath=True)
        stop = threading.Event()
        acked = [0]

        def flood() -> None:  # overwrites: the data stays the same size, only queues could grow
            value = b"x" * 1024
            while not stop.is_set():
                batch = [zk.set_async(path, value) for path in paths]
                for result in batch:
                    try:
                        result.get(timeout=60)
                        acked[0] += 1
                    except KazooException:
                        pass

        loader = threading.Thread(target=flood, daemon=True)
        loader.start()
        wait_for(lambda: acked[0] > 1000, 60, "the load under way")
        paused.pause()
        peak = 0
        try:
            start = acked[0]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # the observation window itself, sampled
                peak = max(peak, _tree_rss(leader))
                stop.wait(1.0)
            assert acked[0] > start + 1_000, "writes kept committing with the other follower"
        finally:
            paused.resume()
            stop.set()
            loader.join(90)
        print(f"leader RSS peak with a paused follower: {peak / 2**20:.0f} MiB ({acked[0]} writes)")
        assert peak < LEADER_RSS_BOUND, f"leader grew to {peak / 2**20:.0f} MiB"
        wait_for(
            lambda: ens.client(hosts=paused.hosts).exists("/flood") is not None, 60, "the paused follower back in sync"
        )
