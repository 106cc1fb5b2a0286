"""`python -m bench failover --target zookeeper`: bench/failover.py's measurement on Apache ZooKeeper.

A ZooKeeper ensemble (bench/targets.py) and one kazoo client creating sequential znodes
synchronously. `--victim leader`: the client is connected to every node and the leader (the node
whose `srvr` says `Mode: leader`) is SIGKILLed with its whole process tree; the figure is the
longest time between two acknowledged writes around the kill; the old leader is started again
between runs (it rejoins as a follower). `--victim follower`: the client is connected to the
leader only; a follower is killed, writes go on for a second, it is started again and
synchronized; the figure covers all of it. Finally every acknowledged write is looked for on
every node.

kazoo, unlike zoomq's client, fails the request in flight when its connection drops
(ConnectionLoss: it may or may not have been applied); the writer retries at once, as an
application would, and counts those.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time

from bench.failover import report
from bench.targets import INSTALL_HINT, ZooKeeperTarget, zookeeper_available
from zoomq.testing import wait_for


def run(args: argparse.Namespace) -> int:
    if not zookeeper_available():
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    from kazoo.client import KazooClient
    from kazoo.exceptions import ConnectionLoss, SessionExpiredError

    gaps: list[float] = []
    retried = 0
    with ZooKeeperTarget(args.nodes, 0, args.tick_ms) as target:
        on_leader = args.victim == "follower"
        zk = KazooClient(hosts=target.leader().hosts if on_leader else target.hosts, timeout=30.0)
        zk.start(timeout=30)
        zk.ensure_path("/failover")
        acked: list[tuple[float, str]] = []
        stop = threading.Event()
        failures: list[BaseException] = []

        def write() -> None:
            nonlocal retried
            i = 0
            try:
                while not stop.is_set() and i < 10_000_000:
                    try:
                        path = zk.create("/failover/n-", str(i).encode(), sequence=True)
                    except ConnectionLoss:
                        retried += 1
                        stop.wait(0.001)  # reconnecting: do not spin
                        continue
                    acked.append((time.monotonic(), path))
                    i += 1
            except SessionExpiredError as exc:  # the measurement is void: say so
                failures.append(exc)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        try:
            for _ in range(args.runs):
                n = len(acked)
                wait_for(lambda n=n: len(acked) >= n + 200 or failures, 60, "writes before the kill")
                leader = target.leader()
                victim = next(n for n in target.nodes() if n.sid != leader.sid) if on_leader else leader
                killed_at = time.monotonic()
                target.kill_node(victim.sid)
                if on_leader:
                    wait_for(
                        lambda k=killed_at: failures or acked[-1][0] > k + 1.0, 120, "writes a second after the kill"
                    )
                    target.launch_node(victim.sid)
                    target.wait_node(victim.sid, timeout=120)
                    n = len(acked)
                    wait_for(lambda n=n: failures or len(acked) >= n + 200, 120, "writes after the follower rejoined")
                else:
                    wait_for(
                        lambda k=killed_at: failures or (any(t > k for t, _ in acked[-5:]) and acked[-1][0] > k + 0.05),
                        120,
                        "writes after the kill",
                    )
                if failures:
                    raise SystemExit(f"the writer's session expired: {failures[0]!r}")
                times = [t for t, _ in acked if t >= killed_at - 0.5]  # this kill only
                gaps.append(max(b - a for a, b in itertools.pairwise(times)))
                if not on_leader:
                    target.launch_node(victim.sid)
                    target.wait_node(victim.sid, timeout=120)
        finally:
            stop.set()
            writer.join(60)
        paths = {p for _, p in acked}
        for node in target.nodes():
            reader = KazooClient(hosts=node.hosts, timeout=30.0)
            reader.start(timeout=30)
            try:
                reader.sync("/failover")
                have = {"/failover/" + c for c in reader.get_children("/failover")}
            finally:
                reader.stop()
                reader.close()
            missing = paths - have
            if missing:
                raise SystemExit(f"{node.hosts} lost {len(missing)} acknowledged writes")
        zk.stop()
        zk.close()
    return report(args, gaps, len(paths), "ZooKeeper", retried_connection_loss=retried)


__all__ = ["run"]
