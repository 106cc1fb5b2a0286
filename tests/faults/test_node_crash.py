"""Crashes: SIGKILL of the whole node or of one actor under a write load loses no acknowledged write."""

from __future__ import annotations

import threading

import pytest

from tests_support import kill_actor
from zoomq import Client
from zoomq.exceptions import ConnectionLoss, KazooException, NodeExistsError
from zoomq.testing import ZoomqServer, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]


class Writer(threading.Thread):
    """Creates /load/n<i> one after another; remembers which creates were acknowledged."""

    def __init__(self, hosts: str, pipelined: int = 16) -> None:
        super().__init__(daemon=True)
        self.zk = Client(hosts=hosts, timeout=20.0)
        self.zk.start()
        self.zk.ensure_path("/load")
        self.acked: set[str] = set()
        self.failed = 0
        self.pipelined = pipelined
        self.stop_flag = threading.Event()
        self.progress = threading.Condition()

    def run(self) -> None:
        i = 0
        while not self.stop_flag.is_set() and i < 1_000_000:
            batch = []
            for _ in range(self.pipelined):
                path = f"/load/n{i:07d}"
                i += 1
                batch.append((path, self.zk.create_async(path, path.encode())))
            for path, result in batch:
                try:
                    result.get(timeout=30)
                    self.acked.add(path)
                except NodeExistsError:
                    self.acked.add(path)  # a retried create whose first attempt landed
                except (ConnectionLoss, KazooException):
                    self.failed += 1
            with self.progress:
                self.progress.notify_all()

    def wait_acked(self, n: int, timeout: float = 30.0) -> None:
        wait_for(lambda: len(self.acked) >= n, timeout=timeout, what=f"{n} acknowledged writes")

    def finish(self) -> set[str]:
        self.stop_flag.set()
        self.join(60)
        self.zk.stop()
        return set(self.acked)


def _assert_all_present(hosts: str, acked: set[str]) -> None:
    zk = Client(hosts=hosts, timeout=20.0)
    zk.start(timeout=30)
    try:
        present = set(f"/load/{c}" for c in zk.get_children("/load"))
        missing = acked - present
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {sorted(missing)[:5]}"
        for path in sorted(acked)[:50]:
            assert zk.get(path)[0] == path.encode()
    finally:
        zk.stop()


def test_kill_9_of_the_whole_node_under_load_loses_no_acknowledged_write(tmp_path):
    data_dir = tmp_path / "data"
    server = ZoomqServer(data_dir=data_dir).start()
    port = server.port
    writer = Writer(server.hosts)
    writer.start()
    try:
        writer.wait_acked(300)
        server.kill()  # SIGKILL to the supervisor and every actor, mid-load
        acked = writer.finish()
        assert len(acked) >= 300
        with ZoomqServer(data_dir=data_dir, port=port) as again:
            _assert_all_present(again.hosts, acked)
    finally:
        writer.stop_flag.set()
        server.stop()


@pytest.mark.parametrize("actor", ["log", "leader", "session"])
def test_sigkill_of_one_actor_is_restarted_and_loses_nothing(tmp_path, actor):
    with ZoomqServer(data_dir=tmp_path / "data") as server:
        writer = Writer(server.hosts)
        writer.start()
        try:
            writer.wait_acked(200)
            kill_actor(server, actor)
            before = len(writer.acked)
            writer.wait_acked(before + 200, timeout=60)  # the node serves writes again
        finally:
            acked = writer.finish()
        _assert_all_present(server.hosts, acked)


def test_restart_recovers_from_snapshot_plus_log_and_purges_old_files(tmp_path):
    data_dir = tmp_path / "data"
    with ZoomqServer(data_dir=data_dir, snapshot_every=100, snapshot_retain=3) as server:
        zk = server.client()
        zk.ensure_path("/load")
        acked = set()
        for i in range(650):
            path = f"/load/n{i:07d}"
            zk.create(path, path.encode())
            acked.add(path)
        version_dir = data_dir / "version-1"
        wait_for(lambda: len(list(version_dir.glob("snapshot.*"))) >= 3, timeout=30, what="snapshots written")
        port = server.port
    snaps = list((data_dir / "version-1").glob("snapshot.*"))
    assert 1 <= len(snaps) <= 3, snaps
    with ZoomqServer(data_dir=data_dir, port=port) as again:
        _assert_all_present(again.hosts, acked)
