"""The leader's choice of DIFF, TRUNC or SNAP for a learner."""

import pytest

from actors.leader.sync import SyncPlan, plan_sync, prepare

pytestmark = pytest.mark.timeout(10)

E1 = 1 << 32
E2 = 2 << 32
E3 = 3 << 32


def test_up_to_date_learner_gets_an_empty_diff():
    assert plan_sync(E1 + 5, 0, [E1 + 1, E1 + 5], E1 + 5) == SyncPlan("diff", E1 + 5)


def test_behind_learner_gets_the_txns_after_its_last():
    assert plan_sync(E1 + 2, 0, [E1 + 1, E1 + 2, E1 + 3], E1 + 3) == SyncPlan("diff", E1 + 2)


def test_empty_learner_gets_everything_when_nothing_was_snapshotted():
    assert plan_sync(0, 0, [E1 + 1, E1 + 2], E1 + 2) == SyncPlan("diff", 0)


def test_learner_ahead_of_the_leader_is_truncated():
    assert plan_sync(E1 + 7, 0, [E1 + 1, E1 + 5], E1 + 5) == SyncPlan("trunc", E1 + 5)


def test_learner_with_a_dead_leaders_uncommitted_txns_is_truncated_to_the_common_point():
    # The learner logged E1+4..E1+6 from the old leader; the new leader (epoch 2) stopped at E1+3.
    window = [E1 + 1, E1 + 2, E1 + 3, E2 + 1, E2 + 2]
    assert plan_sync(E1 + 6, 0, window, E2 + 2) == SyncPlan("trunc", E1 + 3)


def test_learner_whose_whole_epoch_the_leader_lacks_truncates_to_the_epoch_before():
    window = [E1 + 1, E1 + 2, E3 + 1]
    assert plan_sync(E2 + 2, 0, window, E3 + 1) == SyncPlan("trunc", E1 + 2)


def test_learner_older_than_the_snapshot_gets_a_snapshot():
    assert plan_sync(E1 + 2, E1 + 10, [E1 + 11], E1 + 11) == SyncPlan("snap", E1 + 11)


def test_learner_exactly_at_the_snapshot_gets_a_diff():
    assert plan_sync(E1 + 10, E1 + 10, [E1 + 11], E1 + 11) == SyncPlan("diff", E1 + 10)


def test_truncation_below_every_windowed_txn_goes_to_the_base():
    assert plan_sync(E1 + 12, E1 + 10, [E2 + 1], E2 + 1) == SyncPlan("trunc", E1 + 10)


def test_txns_beyond_sync_to_are_not_part_of_the_plan():
    # The leader has logged E2+3 but not committed it: sync covers E2+2 only.
    assert plan_sync(E2 + 3, 0, [E2 + 1, E2 + 2, E2 + 3], E2 + 2) == SyncPlan("trunc", E2 + 2)


def test_a_learner_already_at_the_sync_point_needs_nothing_read():
    class Unreadable:
        def window(self, upto):
            raise AssertionError("read")

        def snapshot(self, upto):
            raise AssertionError("read")

    prepared = prepare(Unreadable(), E1 + 5, E1 + 5)
    assert prepared.plan == SyncPlan("diff", E1 + 5) and prepared.txns == [] and prepared.snapshot is None


def test_a_negative_sync_memory_window_is_a_config_error():
    from runtime.config import ConfigError, load

    with pytest.raises(ConfigError, match="sync_memory_txns"):
        load(None, sync_memory_txns=-1)
    assert load(None, sync_memory_txns=0).sync_memory_txns == 0


def test_a_learner_behind_the_snapshot_gets_the_stored_snapshot_then_the_txns_after_it():
    from actors.protocol.txn import CreateTxn, Txn
    from zoomq.security import OPEN_ACL_UNSAFE

    txns = [Txn(E1 + i, 0, 1, i, CreateTxn(f"/n{i}", b"", OPEN_ACL_UNSAFE)) for i in range(11, 14)]

    class Stored:
        def window(self, upto):
            return E1 + 10, [t for t in txns if t.zxid <= upto]

        def snapshot(self, upto):
            return E1 + 10, b"the snapshot file at E1+10"

    prepared = prepare(Stored(), E1 + 2, E1 + 13)
    assert prepared.plan == SyncPlan("snap", E1 + 13)
    assert (prepared.snapshot_zxid, prepared.snapshot) == (E1 + 10, b"the snapshot file at E1+10")
    assert [t.zxid for t in prepared.txns] == [E1 + 11, E1 + 12, E1 + 13]
