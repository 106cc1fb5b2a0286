"""Faults on a real 3-node ensemble: SIGKILL and SIGSTOP of nodes and actors under a steady write
load. After each: every acknowledged write is on every node, no sequential node is duplicated or
out of order, and every node holds the same data."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from actors.log.txnlog import read_txns
from tests_support import kill_actor
from zoomq.exceptions import KazooException
from zoomq.testing import ZoomqEnsemble, ZoomqServer, wait_for

pytestmark = pytest.mark.timeout(240)


class Writer:
    """One client creating sequential nodes `/w/n-` whose data is a counter; records what was
    acknowledged. A failed create is retried with a new counter value."""

    def __init__(self, ens: ZoomqEnsemble, prefer: ZoomqServer | None = None) -> None:
        # Connected to `prefer` first, able to move to any other node.
        order = [prefer] if prefer is not None else []
        order += [n for n in ens.nodes if n is not prefer]
        self.zk = ens.client(hosts=",".join(n.hosts for n in order), timeout=15.0, randomize_hosts=prefer is None)
        self.zk.ensure_path("/w")
        self.acked: list[int] = []
        self.times: list[float] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        i = 0
        while not self.stop.is_set() and i < 1_000_000:
            try:
                self.zk.create("/w/n-", str(i).encode(), sequence=True)
                self.acked.append(i)
                self.times.append(time.monotonic())
            except KazooException as exc:
                self.errors.append(type(exc).__name__)
                self.stop.wait(0.05)
            i += 1

    def wait_more(self, n: int, timeout: float = 60.0) -> float:
        """Wait for n more acknowledgements; how long it took."""
        start = time.monotonic()
        target = len(self.acked) + n
        wait_for(lambda: len(self.acked) >= target, timeout, f"{n} more acknowledged writes")
        return time.monotonic() - start

    def longest_gap(self) -> float:
        """The longest time without an acknowledgement (what a fault cost the writer)."""
        t = self.times
        return max((b - a for a, b in zip(t, t[1:], strict=False)), default=0.0)

    def finish(self) -> list[int]:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        return list(self.acked)


def check_every_node(ens: ZoomqEnsemble, acked: list[int]) -> None:
    """Every running node has every acked value once, in sequence order, and the same data."""
    seen = None
    for node in ens.nodes:
        if not node.running:
            continue
        zk = ens.client(hosts=node.hosts)
        zk.sync("/w")
        names = sorted(zk.get_children("/w"))
        values = [int(zk.get("/w/" + name)[0]) for name in names]
        assert len(values) == len(set(values)), f"{node.hosts}: a write was applied twice"
        ours = [v for v in values if v >= 0]  # the Writer's (other clients write negative values)
        assert ours == sorted(ours), f"{node.hosts}: sequential nodes out of order"
        missing = set(acked) - set(values)
        assert not missing, f"{node.hosts}: acknowledged writes lost: {sorted(missing)[:10]}"
        if seen is None:
            seen = (names, values)
        assert (names, values) == seen, f"{node.hosts} differs from another node"
        zk.stop()


@pytest.fixture
def ens(tmp_path):
    with ZoomqEnsemble(3, base_dir=tmp_path) as ensemble:
        yield ensemble


def test_kill_the_leader_under_load(ens):
    writer = Writer(ens)
    writer.wait_more(100)
    leader = ens.leader()
    leader.kill()
    writer.wait_more(50)
    new_leader = ens.wait_leader(exclude=leader)
    print(f"longest write pause around the SIGKILL of the leader: {writer.longest_gap():.2f}s; new leader {new_leader.hosts}")
    leader.start(timeout=60)
    writer.wait_more(50)
    check_every_node(ens, writer.finish())


def test_a_restarted_follower_catches_up_by_diff(ens):
    writer = Writer(ens, prefer=ens.leader())
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
    with ZoomqEnsemble(3, base_dir=tmp_path, snapshot_every=40, snapshot_retain=1) as ens:
        writer = Writer(ens, prefer=ens.leader())
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
    writer = Writer(ens, prefer=leader)
    writer.wait_more(30)
    burst = ens.client(hosts=leader.hosts, timeout=30.0)
    for f in followers:
        f.pause()  # what the leader sends them now stays in their socket buffers ...
    for i in range(20):
        burst.create_async("/w/n-", str(-1 - i).encode(), sequence=True)  # proposed, never acknowledged
    wait_for(lambda: _last_logged(leader) > max(_last_logged(f) for f in followers), 20, "proposals the leader alone logged")
    for f in followers:
        f.kill()  # ... and dies with them
    leader.kill()
    for f in followers:
        f.launch()
    ens.wait_leader(exclude=leader)
    writer.wait_more(20)
    leader.start(timeout=60)  # it holds txns nobody else has: they must go
    writer.wait_more(20)
    check_every_node(ens, writer.finish())
    assert any('"kind": "trunc"' in n.log_text() for n in ens.nodes if n is not leader)


def _last_logged(node: ZoomqServer) -> int:
    last = 0
    for txn in read_txns(node.data_dir / "version-1"):
        last = txn.zxid
    return last


def test_pausing_a_minority_does_not_stop_writes(ens):
    writer = Writer(ens, prefer=ens.leader())
    writer.wait_more(20)
    paused = ens.followers()[0]
    paused.pause()
    try:
        writer.wait_more(100)
    finally:
        paused.resume()
    writer.wait_more(20)
    check_every_node(ens, writer.finish())


def test_pausing_a_majority_stops_acknowledgements_until_resumed(ens):
    leader = ens.leader()
    zk = ens.client(hosts=leader.hosts, timeout=30.0)
    zk.create("/maj", b"0")
    followers = ens.followers()
    for f in followers:
        f.pause()
    try:
        result = zk.set_async("/maj", b"1")
        # Nothing may be acknowledged without a quorum: the write stays unanswered.
        assert not result.wait(3.0) or result.exception is not None
    finally:
        for f in followers:
            f.resume()
    ens.wait_leader()
    other = ens.client()
    other.set("/maj", b"2")
    assert other.get("/maj")[0] == b"2"


@pytest.mark.parametrize("actor", ["log", "session", "election", "role"])
@pytest.mark.parametrize("where", ["leader", "follower"])
def test_kill_each_actor_under_load(ens, actor, where):
    writer = Writer(ens)
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
