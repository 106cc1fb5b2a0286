"""Crashes: SIGKILL of the whole node or of one actor under a write load loses no acknowledged write."""

from __future__ import annotations

import json

import pytest

from tests_support import Writer, check_writes, kill_actor
from zoomq import Client
from zoomq.testing import ZoomqServer, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]


def _client(hosts: str) -> Client:
    zk = Client(hosts=hosts, timeout=20.0)
    zk.start(timeout=30)
    return zk


def _assert_all_present(hosts: str, acked: list[int]) -> None:
    zk = Client(hosts=hosts, timeout=20.0)
    zk.start(timeout=30)
    try:
        check_writes(zk, acked)
    finally:
        zk.stop()


def test_kill_9_of_the_whole_node_under_load_loses_no_acknowledged_write(tmp_path):
    data_dir = tmp_path / "data"
    server = ZoomqServer(data_dir=data_dir).start()
    port = server.port
    writer = Writer(_client(server.hosts), depth=16)
    try:
        writer.wait_more(300)
        server.kill()  # SIGKILL to the supervisor and every actor, mid-load
        acked = writer.finish()
        assert len(acked) >= 300
        with ZoomqServer(data_dir=data_dir, port=port) as again:
            _assert_all_present(again.hosts, acked)
    finally:
        writer.stop.set()
        writer.zk.stop()
        server.stop()


@pytest.mark.parametrize("actor", ["log", "leader", "session"])
def test_sigkill_of_one_actor_is_restarted_and_loses_nothing(tmp_path, actor):
    with ZoomqServer(data_dir=tmp_path / "data") as server:
        writer = Writer(_client(server.hosts), depth=16)
        try:
            writer.wait_more(200)
            kill_actor(server, actor)
            writer.wait_more(200, timeout=60)  # the node serves writes again
        finally:
            acked = writer.finish()
            writer.zk.stop()
        _assert_all_present(server.hosts, acked)


def test_restart_recovers_from_snapshot_plus_log_and_purges_old_files(tmp_path):
    data_dir = tmp_path / "data"
    with ZoomqServer(data_dir=data_dir, snapshot_every=100, snapshot_retain=3) as server:
        zk = server.client()
        zk.ensure_path("/w")
        acked = []
        for i in range(650):
            zk.create("/w/n-", str(i).encode(), sequence=True)
            acked.append(i)
        version_dir = data_dir / "version-1"
        wait_for(lambda: len(list(version_dir.glob("snapshot.*"))) >= 3, timeout=30, what="snapshots written")
        port = server.port
    with ZoomqServer(data_dir=data_dir, port=port) as again:
        _assert_all_present(again.hosts, acked)
        # At most snapshot_retain remain: purged after each snapshot, and at start (one may have
        # been finished as the node stopped, before its purge).
        snaps = list(version_dir.glob("snapshot.*"))
        assert 1 <= len(snaps) <= 3, snaps
        # The session actor read the state as it started (alongside the leader's own read) and
        # took it up at its sync point, instead of reading it again after the leader's.
        loads = [
            json.loads(line)
            for line in again.log_text().splitlines()
            if '"state_loaded"' in line and '"session"' in line
        ]
        assert loads and "preloaded" in loads[-1], loads


def test_a_node_that_restarts_before_snapshot_every_still_snapshots_what_it_replays(tmp_path):
    """The txns a restart replays count towards the next snapshot: a node killed more often than
    snapshot_every txns apart used to replay its whole log at every start and never purge it."""
    data_dir = tmp_path / "data"
    version_dir = data_dir / "version-1"
    port = None
    for round_ in range(3):
        with ZoomqServer(data_dir=data_dir, port=port, snapshot_every=100) as server:
            port = server.port
            zk = server.client()
            for i in range(60):  # fewer than snapshot_every per life of the node
                zk.create(f"/r{round_}-{i}", b"x")
            zk.stop()
            if round_ == 0:
                assert not list(version_dir.glob("snapshot.*"))
            server.kill()  # SIGKILL: no snapshot at shutdown either
    with ZoomqServer(data_dir=data_dir, port=port, snapshot_every=100) as server:
        zk = server.client()
        zk.create("/after", b"x")  # the replayed 180 are past snapshot_every: the next commit snapshots
        wait_for(lambda: list(version_dir.glob("snapshot.*")), timeout=30, what="a snapshot")
        assert len(zk.get_children("/")) >= 181
        zk.stop()
