"""Quotas on real nodes: the client helpers, hard limits refusing writes (multi included), soft
limits logged, usage kept by the node through a restart and a leader kill, the shell's
setquota / listquota / delquota, mntr, and a kazoo client through the ZooKeeper gateway writing
the quota znodes as ZooKeeper's CLI does."""

from __future__ import annotations

import subprocess
import sys

import pytest

from zoomq.exceptions import BadArgumentsError, NoNodeError, QuotaExceededError
from zoomq.quota import QuotaLimits, QuotaUsage, limits_path, parse_stats, stats_path
from zoomq.testing import ZoomqEnsemble, ZoomqServer, free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_hard_limits_refuse_writes_and_usage_follows_the_tree(zk, node):
    zk.create("/app", b"0123456789")
    assert zk.set_quota("/app", count_hard=3, bytes=12) == QuotaLimits(count_hard=3, bytes=12)
    assert zk.get_quota("/app") == (QuotaLimits(count_hard=3, bytes=12), QuotaUsage(1, 10))
    zk.create("/app/a", b"ab")
    zk.create("/app/b")
    with pytest.raises(QuotaExceededError):
        zk.create("/app/c")
    with pytest.raises(QuotaExceededError):
        zk.create("/app/a/deeper")
    assert zk.exists("/app/c") is None
    assert zk.get_quota("/app")[1] == QuotaUsage(3, 12)
    # A multi is refused whole: the delete in it would make room, the two creates need two.
    tx = zk.transaction()
    tx.delete("/app/b")
    tx.create("/app/x")
    tx.create("/app/y")
    results = tx.commit()
    assert isinstance(results[2], QuotaExceededError)
    assert zk.exists("/app/b") is not None and zk.exists("/app/x") is None
    # The soft byte limit (12) is passed: allowed, and the leader says so in its log.
    zk.set("/app/a", b"a longer value")
    assert zk.get_quota("/app")[1] == QuotaUsage(3, 24)
    wait_for(lambda: "quota_exceeded" in node.log_text(), 10, "the soft limit logged")
    # The limits change in place, and go with delete_quota.
    zk.set_quota("/app", count_hard=4)
    zk.create("/app/c")
    assert zk.get_quota("/app")[0] == QuotaLimits(count_hard=4, bytes=12)
    zk.delete_quota("/app", bytes=True)
    assert zk.get_quota("/app")[0] == QuotaLimits(count_hard=4)
    assert zk.delete_quota("/app") is True
    assert zk.get_quota("/app") is None and zk.exists("/zookeeper/quota/app") is None
    zk.create("/app/d")  # no limit any more
    with pytest.raises(NoNodeError):
        zk.delete_quota("/app")


def test_quota_rules_of_zookeepers_cli(zk):
    zk.create("/t/inner/deep", makepath=True)
    with pytest.raises(NoNodeError):
        zk.set_quota("/missing", count=1)
    with pytest.raises(ValueError):
        zk.set_quota("/t")  # no limit given
    with pytest.raises(ValueError):
        zk.set_quota("/t", count=0)
    for bad in ("/", "/zookeeper", "/zookeeper/quota"):
        with pytest.raises(BadArgumentsError):
            zk.set_quota(bad, count=1)
    zk.set_quota("/t/inner", count=10)
    with pytest.raises(BadArgumentsError, match="below /t/inner"):
        zk.set_quota("/t/inner/deep", count=1)
    with pytest.raises(BadArgumentsError, match="has a quota"):
        zk.set_quota("/t", count=1)
    # The node keeps the stats znode: a client may not write it; limits must be StatsTrack text.
    with pytest.raises(BadArgumentsError):
        zk.set(stats_path("/t/inner"), b"count=0,bytes=0")
    with pytest.raises(BadArgumentsError):
        zk.set(limits_path("/t/inner"), b"not quota text")
    assert zk.list_quotas() == {"/t/inner": (QuotaLimits(count=10), QuotaUsage(2, 0))}


def test_quotas_survive_a_restart_and_show_in_mntr(tmp_path):
    with ZoomqServer(data_dir=tmp_path / "data", snapshot_every=5) as node:
        zk = node.client()
        zk.create("/svc/a", b"xyz", makepath=True)
        zk.set_quota("/svc", count_hard=4, bytes_hard=10)
        for i in range(8):  # enough txns for a snapshot: the quota comes back from snapshot + log
            zk.set("/svc/a", str(i).encode())
        zk.create("/svc/b")
        zk.stop()
        node.restart()
        zk = node.client()
        assert zk.get_quota("/svc") == (QuotaLimits(count_hard=4, bytes_hard=10), QuotaUsage(3, 1))
        zk.create("/svc/c")
        with pytest.raises(QuotaExceededError):
            zk.create("/svc/d")
        with pytest.raises(QuotaExceededError):
            zk.set("/svc/a", b"x" * 11)
        mntr = dict(line.split("\t", 1) for line in zk.command("mntr").splitlines() if "\t" in line)
        assert mntr["zk_svc_quota_count_limit_per_namespace"] == "4"
        assert mntr["zk_svc_quota_count_usage_per_namespace"] == "4"
        assert mntr["zk_svc_quota_bytes_usage_per_namespace"] == "1"
        zk.stop()


def _shell(hosts: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zoomq", "shell", hosts, "-c", command], capture_output=True, text=True, timeout=60
    )


def test_shell_setquota_listquota_delquota(node, zk):
    zk.create("/s", b"")
    out = _shell(node.hosts, "setquota -n 5 -B 100 /s; create /s/x abc; listquota /s")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-3:] == [
        "absolute path is /zookeeper/quota/s/zookeeper_limits",
        "Output quota for /s count=5,bytes=-1,byteHardLimit=100",
        "Output stat for /s count=2,bytes=3",
    ]
    out = _shell(node.hosts, "setquota -N 2 /s; create /s/y")
    assert out.returncode == 1 and "QuotaExceededError" in out.stderr
    out = _shell(node.hosts, "delquota /s; listquota /s")
    assert out.returncode == 1 and "quota for /s does not exist." in out.stderr
    out = _shell(node.hosts, "setquota /s")
    assert out.returncode == 1 and "usage: setquota" in out.stderr


def test_a_kazoo_client_through_the_gateway_writes_quotas_as_zookeepers_cli(tmp_path):
    kazoo_client = pytest.importorskip("kazoo.client")
    from kazoo.exceptions import QuotaExceededError as KazooQuotaExceeded

    port = free_port()
    with ZoomqServer(data_dir=tmp_path / "data", zk_port=port) as node:
        kz = kazoo_client.KazooClient(hosts=f"127.0.0.1:{port}")
        kz.start(timeout=15)
        try:
            kz.create("/k/a", b"", makepath=True)
            kz.ensure_path("/zookeeper/quota/k")  # what zkCli's setquota writes
            kz.create("/zookeeper/quota/k/zookeeper_limits", b"count=-1,bytes=-1,countHardLimit=3")
            kz.create("/zookeeper/quota/k/zookeeper_stats", b"count=0,bytes=0")
            assert parse_stats(kz.get("/zookeeper/quota/k/zookeeper_stats")[0]) == {"count": 2, "bytes": 0}
            kz.create("/k/b")
            with pytest.raises(KazooQuotaExceeded):
                kz.create("/k/c")
        finally:
            kz.stop()
            kz.close()
        assert node.running


@pytest.mark.faults
def test_a_quota_holds_across_a_leader_kill_and_every_node_counts_the_same(tmp_path):
    with ZoomqEnsemble(3, base_dir=tmp_path) as ens:
        zk = ens.client()
        zk.create("/team", b"", makepath=True)
        zk.set_quota("/team", count_hard=6)
        for i in range(4):
            zk.create(f"/team/n{i}", b"v")
        leader = ens.leader()
        leader.kill()
        ens.wait_leader(exclude=leader)
        zk2 = ens.client(hosts=",".join(n.hosts for n in ens.nodes if n is not leader))
        zk2.create("/team/n4", b"v")  # the sixth znode: at the limit
        with pytest.raises(QuotaExceededError):
            zk2.create("/team/n5", b"v")
        leader.start(timeout=60)
        for node in ens.nodes:
            each = ens.client(hosts=node.hosts)
            each.sync("/team")
            assert each.get_quota("/team") == (QuotaLimits(count_hard=6), QuotaUsage(6, 5)), node.hosts
            each.stop()
