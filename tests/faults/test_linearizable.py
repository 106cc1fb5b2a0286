"""Linearizability under faults: clients on different nodes run get (after sync, or a
linearizable get), set and versioned set (cas) on a few keys while the leader is killed and a
follower is paused; the recorded history must be linearizable (bench/linearizability.py, Wing &
Gong search). And the difference a linearizable get makes: plain reads from a follower that lags
give a history the checker rejects; linearizable ones the same way do not."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest

from bench.linearizability import Op, check
from zoomq.exceptions import BadVersionError, KazooException
from zoomq.testing import ZoomqEnsemble, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

KEYS = ("/lin/a", "/lin/b", "/lin/c")
OPS_PER_CLIENT = 120


def _client_loop(
    zk, who: int, history: list[Op], lock: threading.Lock, seed: int, done: threading.Event, reads: str = "sync"
) -> None:
    rnd = random.Random(seed)
    for i in range(OPS_PER_CLIENT):
        key = rnd.choice(KEYS)
        kind = rnd.choice(("get", "get", "set", "cas"))
        value = f"{who}-{i}".encode()
        call = time.monotonic()
        expect: int | None = None
        op: Op
        try:
            if kind == "get":
                if reads == "sync":
                    zk.sync(key)
                    data, stat = zk.get(key)
                else:
                    data, stat = zk.get(key, linearizable=True)
                op = Op(who, key, "get", None, None, call, time.monotonic(), True, (data, stat.version))
            elif kind == "set":
                zk.set(key, value)
                op = Op(who, key, "set", value, None, call, time.monotonic(), True)
            else:
                _, stat = zk.get(key)  # the version to expect (a read of its own; not part of the history)
                expect = stat.version
                call = time.monotonic()
                try:
                    zk.set(key, value, version=stat.version)
                    op = Op(who, key, "cas", value, stat.version, call, time.monotonic(), True)
                except BadVersionError:
                    op = Op(who, key, "cas", value, stat.version, call, time.monotonic(), False)
        except KazooException:
            # Outcome unknown (the session was lost with the request in flight).
            if kind == "get" or (kind == "cas" and expect is None):
                continue  # a read, or a cas that never got as far as its write: nothing to record
            op = Op(who, key, kind, value, expect, call, None, False)
        with lock:
            history.append(op)
    done.set()


@pytest.mark.parametrize("reads", ["sync", "linearizable"])
def test_history_under_leader_kill_and_follower_pause_is_linearizable(tmp_path, reads):
    with ZoomqEnsemble(3, base_dir=tmp_path) as ens:
        setup = ens.client()
        for key in KEYS:
            setup.create(key, b"0", makepath=True)
        history: list[Op] = []
        lock = threading.Lock()
        workers = []
        for who, node in enumerate([*ens.nodes, ens.nodes[0]]):
            order = [node, *[n for n in ens.nodes if n is not node]]
            zk = ens.client(hosts=",".join(n.hosts for n in order), randomize_hosts=False, timeout=30.0)
            done = threading.Event()
            t = threading.Thread(
                target=_client_loop, args=(zk, who, history, lock, 1000 + who, done, reads), daemon=True
            )
            workers.append((t, done))
        for t, _ in workers:
            t.start()
        wait_for(lambda: len(history) >= 60, 60, "some history before the faults")
        leader = ens.leader()
        leader.kill()
        wait_for(lambda: len(history) >= 150, 90, "progress after the leader's death")
        leader.start(timeout=60)
        paused = ens.followers()[0]
        paused.pause()
        wait_for(lambda: len(history) >= 250, 90, "progress with a follower paused")
        paused.resume()
        for t, done in workers:
            assert done.wait(120), "a client did not finish"
            t.join(10)
        ok, why = check(history, initial={k: (b"0", 0) for k in KEYS})
        assert ok, why
        assert sum(1 for op in history if op.ret is not None) >= 4 * OPS_PER_CLIENT * 0.9


def test_the_checker_catches_a_stale_read_in_a_recorded_history():
    """The same recording shape, with a read that misses a write acknowledged before it began."""
    history = [
        Op(0, "/lin/a", "set", b"0-1", None, 1.0, 2.0, True),
        Op(1, "/lin/a", "get", None, None, 3.0, 4.0, True, (b"0", 0)),
    ]
    ok, why = check(history, initial={"/lin/a": (b"0", 0)})
    assert not ok and "/lin/a" in why


def test_a_lagging_follower_serves_stale_plain_reads_and_current_linearizable_ones(tmp_path):
    with ZoomqEnsemble(3, base_dir=tmp_path) as ens:
        leader = ens.leader()
        lagging = ens.followers()[0]
        writer = ens.client(hosts=leader.hosts)
        reader = ens.client(hosts=lagging.hosts)
        writer.create("/lag", b"0")
        reader.sync("/lag")
        role = lagging.actor_pids()["follower"]
        os.kill(role, signal.SIGSTOP)  # the node's session actor serves on; commits stop reaching it
        try:
            call = time.monotonic()
            writer.set("/lag", b"1")  # acknowledged by the leader and the other follower
            plain: list[Op] = [Op(0, "/lag", "set", b"1", None, call, time.monotonic(), True)]
            lin = list(plain)
            call = time.monotonic()
            data, stat = reader.get("/lag")
            plain.append(Op(1, "/lag", "get", None, None, call, time.monotonic(), True, (data, stat.version)))
            call = time.monotonic()
            pending = reader.get_async("/lag", linearizable=True)  # waits for the follower to catch up
        finally:
            os.kill(role, signal.SIGCONT)
        data, stat = pending.get(timeout=30)
        lin.append(Op(1, "/lag", "get", None, None, call, time.monotonic(), True, (data, stat.version)))
        ok, why = check(plain, initial={"/lag": (b"0", 0)})
        assert not ok, "a plain read on a follower that lags was expected to be stale"
        ok, why = check(lin, initial={"/lag": (b"0", 0)})
        assert ok, why
        assert data == b"1"
