import pytest

from actors.leader.proposer import Proposer
from actors.protocol.txn import CreateTxn, Marker, Txn

pytestmark = pytest.mark.timeout(10)


def txn(zxid: int) -> Txn:
    return Txn(zxid, 0, 1, zxid, CreateTxn(f"/n{zxid}", b"", []))


def test_standalone_commits_only_after_own_log_is_durable():
    p = Proposer(me=1, voters=frozenset({1}), committed_zxid=0)
    p.propose(txn(1))
    p.propose(txn(2))
    assert p.take_committed() == []
    p.logged(1, 1)
    assert [e.zxid for e in p.take_committed()] == [1]
    p.logged(1, 2)
    assert [e.zxid for e in p.take_committed()] == [2]


def test_marker_waits_for_every_entry_before_it():
    p = Proposer(me=1, voters=frozenset({1}), committed_zxid=0)
    p.propose(txn(1))
    m = Marker(1, 7, -101)
    p.propose(m)
    p.propose(txn(2))
    assert p.take_committed() == []
    p.logged(1, 1)
    out = p.take_committed()
    assert out[0].zxid == 1 and out[1] is m and len(out) == 2


def test_marker_with_nothing_before_it_is_released_at_once():
    p = Proposer(me=1, voters=frozenset({1}), committed_zxid=5)
    m = Marker(1, 7, 0)
    p.propose(m)
    assert p.take_committed() == [m]


def test_three_voters_need_two_acks_including_the_leader():
    p = Proposer(me=1, voters=frozenset({1, 2, 3}), committed_zxid=0)
    p.propose(txn(1))
    p.logged(2, 1)
    p.logged(3, 1)
    assert p.take_committed() == []  # a quorum of followers, but not durable on the leader yet
    p.logged(1, 1)
    assert [e.zxid for e in p.take_committed()] == [1]


def test_zxids_must_increase():
    p = Proposer(me=1, voters=frozenset({1}), committed_zxid=3)
    with pytest.raises(AssertionError):
        p.propose(txn(3))


def test_resend_after_names_what_a_restarted_log_lacks():
    p = Proposer(me=1, voters=frozenset({1}), committed_zxid=0)
    for z in (1, 2, 3):
        p.propose(txn(z))
    p.logged(1, 1)
    p.take_committed()
    assert [t.zxid for t in p.resend_after(1)] == [2, 3]


def test_a_restarted_logs_durable_end_counts_as_its_ack():
    """The log writer may die after its fsync but before its Logged left: its LogReady(last)
    must commit what it has, or those writes wait for an ack that never comes."""
    p = Proposer(me=1, voters=frozenset({1}), committed_zxid=0)
    for z in (1, 2, 3):
        p.propose(txn(z))
    p.logged(1, 2)  # as the leader actor does on LogReady(last_zxid=2)
    assert [e.zxid for e in p.take_committed()] == [1, 2]
    assert [t.zxid for t in p.resend_after(2)] == [3]
