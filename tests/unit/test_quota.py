"""Quotas in the pure cores: the StatsTrack text, the tree's usage (kept as txns apply, rebuilt
from a snapshot, the same in a tree without values), and prep's limits (hard refuses, soft logs,
multi all-or-nothing, the quota znodes' own rules)."""

from __future__ import annotations

from typing import Any

import pytest

from actors.protocol.txn import Marker, Txn
from actors.session.tree import DataTree
from tests.unit.test_prep import Harness, mk
from zoomq.exceptions import Codes
from zoomq.protocol import Check, Delete, Multi, SetData
from zoomq.quota import QuotaLimits, QuotaUsage, format_stats, limits_path, parse_stats, quota_target, stats_path

pytestmark = pytest.mark.timeout(60)


def stats(tree: DataTree, path: str) -> dict[str, int]:
    return parse_stats(tree.nodes[stats_path(path)].data)


def with_quota(h: Harness, path: str, limits: QuotaLimits) -> None:
    """What `Client.set_quota` writes (and ZooKeeper's CLI): the quota path, limits, stats."""
    parts = path.strip("/").split("/")
    for i in range(len(parts)):
        h.ok(mk("/zookeeper/quota/" + "/".join(parts[: i + 1])))
    h.ok(mk(limits_path(path), data=limits.to_bytes()))
    h.ok(mk(stats_path(path), data=b"count=0,bytes=0"))


def test_statstrack_text_round_trips_in_zookeepers_key_order() -> None:
    limits = QuotaLimits(count=10, bytes=-1, count_hard=5, bytes_hard=100)
    assert limits.to_bytes() == b"count=10,bytes=-1,byteHardLimit=100,countHardLimit=5"
    assert QuotaLimits.parse(limits.to_bytes()) == limits
    assert QuotaLimits.parse(b"") == QuotaLimits() and not QuotaLimits().any()
    assert format_stats({"count": 3, "bytes": 7}) == b"count=3,bytes=7"
    for bad in (b"count", b"count=x", b"=3", b"count=1,,bytes=2"):
        with pytest.raises(ValueError):
            parse_stats(bad)
    assert quota_target("/zookeeper/quota/a/b/zookeeper_limits") == ("/a/b", "zookeeper_limits")
    assert quota_target("/zookeeper/quota/zookeeper_limits") is None  # no quota on "/"
    assert quota_target("/a/zookeeper_stats") is None


def test_usage_follows_creates_deletes_sets_and_multis_and_counts_the_root_itself() -> None:
    h = Harness()
    h.ok(mk("/app", data=b"12345"))
    h.ok(mk("/app/a", data=b"xy"))
    h.ok(mk("/other", data=b"not counted"))
    with_quota(h, "/app", QuotaLimits(count=100))
    tree = h.prep.tree
    assert stats(tree, "/app") == {"count": 2, "bytes": 7}  # computed from what was there
    h.ok(mk("/app/a/deep", data=b"abc"))
    h.ok(SetData(1, "/app/a", b"", -1))
    assert stats(tree, "/app") == {"count": 3, "bytes": 8}
    h.ok(Delete(1, "/app/a/deep", -1))
    h.ok(Multi(1, [mk("/app/m1", data=b"1"), mk("/app/m2", data=b"22"), Delete(1, "/app/m1", -1)]))
    assert stats(tree, "/app") == {"count": 3, "bytes": 7}
    assert tree.quotas["/app"].usage() == QuotaUsage(3, 7)
    assert stats(h.replica, "/app") == stats(tree, "/app")  # the replica derives the same (digests agree too)
    # Rebuilt from a snapshot, with and without values: the same usage.
    for keep in (True, False):
        again = DataTree.from_snapshot(h.replica.to_snapshot(), keep_data=keep)
        assert again.quotas["/app"].usage() == QuotaUsage(3, 7)
        assert again.quotas["/app"].limits == QuotaLimits(count=100)
    # The limits znode gone: no quota any more.
    h.ok(Delete(1, limits_path("/app"), -1))
    assert "/app" not in tree.quotas
    h.ok(mk("/app/free"))


def test_a_hard_count_limit_refuses_the_create_that_would_pass_it() -> None:
    h = Harness()
    h.ok(mk("/app"))
    with_quota(h, "/app", QuotaLimits(count_hard=3))
    h.ok(mk("/app/1"))
    h.ok(mk("/app/2"))
    assert h.err(mk("/app/3")) == Codes.QUOTAEXCEEDED
    assert h.err(mk("/app/1/x")) == Codes.QUOTAEXCEEDED  # anywhere in the subtree
    h.ok(mk("/outside"))
    h.ok(Delete(1, "/app/2", -1))
    h.ok(mk("/app/3"))  # room again


def test_a_hard_byte_limit_refuses_growth_but_not_shrinking_or_new_empty_nodes_in_count() -> None:
    h = Harness()
    h.ok(mk("/app", data=b"0123456789"))
    with_quota(h, "/app", QuotaLimits(bytes_hard=15))
    h.ok(mk("/app/a", data=b"abcde"))  # 15: at the limit is allowed
    assert h.err(mk("/app/b", data=b"x")) == Codes.QUOTAEXCEEDED
    assert h.err(SetData(1, "/app/a", b"abcdef", -1)) == Codes.QUOTAEXCEEDED
    h.ok(mk("/app/empty"))  # no bytes: no byte check
    h.ok(SetData(1, "/app", b"", -1))  # shrinking is always allowed
    h.ok(SetData(1, "/app/a", b"abcdef", -1))


def test_the_quota_check_comes_before_the_version_check_as_zookeeper() -> None:
    h = Harness()
    h.ok(mk("/app"))
    with_quota(h, "/app", QuotaLimits(bytes_hard=1))
    assert h.err(SetData(1, "/app", b"too big", 42)) == Codes.QUOTAEXCEEDED


def test_a_multi_counts_its_own_earlier_ops_and_fails_whole() -> None:
    h = Harness()
    h.ok(mk("/app"))
    with_quota(h, "/app", QuotaLimits(count_hard=3))
    entry = h.step(Multi(1, [mk("/app/1"), mk("/app/2"), mk("/app/3")]))
    assert isinstance(entry, Marker)
    codes = [r.err for r in entry.body.results]
    assert codes == [0, 0, Codes.QUOTAEXCEEDED]
    assert "/app/1" not in h.prep.tree.nodes  # nothing of it applied
    # A delete earlier in the same multi makes room.
    h.ok(mk("/app/1"))
    h.ok(mk("/app/2"))
    h.ok(Multi(1, [Delete(1, "/app/2", -1), mk("/app/3"), Check(1, "/app", -1)]))


def test_soft_limits_are_logged_not_enforced(monkeypatch: Any) -> None:
    h = Harness()
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(h.prep, "log", type("L", (), {"warning": lambda self, e, **kw: seen.append(kw)})())
    h.ok(mk("/app"))
    with_quota(h, "/app", QuotaLimits(count=1, bytes=1))
    h.ok(mk("/app/over", data=b"abc"))
    assert {s["what"] for s in seen} == {"count", "bytes"} and not any(s["hard"] for s in seen)


def test_the_quota_znodes_own_rules() -> None:
    h = Harness()
    h.ok(mk("/app"))
    assert h.err(mk(limits_path("/app"), data=b"count=ten")) == Codes.BADARGUMENTS  # not StatsTrack text
    assert h.err(mk(limits_path("/app"), data=b"count=10")) == Codes.NONODE  # its parent first
    with_quota(h, "/app", QuotaLimits(count=5))
    assert h.err(SetData(1, limits_path("/app"), b"bytes=", -1)) == Codes.BADARGUMENTS
    assert h.err(SetData(1, stats_path("/app"), b"count=0", -1)) == Codes.BADARGUMENTS
    h.ok(SetData(1, limits_path("/app"), QuotaLimits(count_hard=2).to_bytes(), -1))
    assert h.prep.tree.quotas["/app"].limits == QuotaLimits(count_hard=2)
    h.ok(mk("/app/a"))  # count was 1 (/app): one more fits
    assert h.err(mk("/app/b")) == Codes.QUOTAEXCEEDED
    assert h.err(mk("/zookeeper/other")) == Codes.BADARGUMENTS  # the rest of /zookeeper stays closed
    assert h.err(Delete(1, "/zookeeper/quota", -1)) == Codes.BADARGUMENTS
    # The stats znode is created with whatever the client wrote, then holds the node's figures.
    assert stats(h.replica, "/app") == {"count": 2, "bytes": 0}
    assert isinstance(h.step(Delete(1, stats_path("/app"), -1)), Txn)
