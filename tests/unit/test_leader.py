"""The leader core (actors/leader/leader.py) as scripts: messages in, effects out."""

from __future__ import annotations

import pytest
import structlog

from actors.leader.leader import LEARNER_STEPS, Leader, LearnerPhase, Phase
from actors.protocol import quorum as q
from actors.leader.sync import prepare
from actors.protocol.effects import Drop, EndRole, PersistEpoch, PrepareSync, Send, Tell
from actors.protocol.internal import Append, Committed, LeaderUp, OpenSession, SyncPoint, WriteRequest
from actors.protocol.txn import OWNED_CXID, CreateTxn, Txn
from actors.session.tree import DataTree
from zoomq import protocol as p
from zoomq.security import OPEN_ACL_UNSAFE

pytestmark = pytest.mark.timeout(30)
A, B, C, O = b"learner-2", b"learner-3", b"learner-4", b"observer-5"  # noqa: E741 - O for the observer


def z(epoch: int, counter: int) -> int:
    return (epoch << 32) | counter


def txn(epoch: int, counter: int) -> Txn:
    return Txn(z(epoch, counter), 0, 1, counter, CreateTxn(f"/h{counter}", b"", OPEN_ACL_UNSAFE))


class MemoryHistory:
    def __init__(self, txns: list[Txn], base: int = 0) -> None:
        self.txns, self.base = txns, base

    def window(self, upto: int) -> tuple[int, list[Txn]]:
        return self.base, [t for t in self.txns if t.zxid <= upto]

    def snapshot(self, upto: int) -> tuple[int, bytes]:
        tree = DataTree()
        for t in self.txns:
            if t.zxid <= upto:
                tree.apply(t)
        return upto, tree.to_snapshot()


class ScriptedLeader(Leader):
    """The core with its shell's reading thread played at once: every PrepareSync is answered
    from `history` before the effects are handed out."""

    history: MemoryHistory

    def take_effects(self) -> list:
        out = []
        for _ in range(100):
            effects = super().take_effects()
            reads = [e for e in effects if isinstance(e, PrepareSync)]
            out += [e for e in effects if not isinstance(e, PrepareSync)]
            if not reads:
                return out
            for read in reads:
                self.sync_ready(read.to, prepare(self.history, read.learner_last, read.upto))
        raise AssertionError("PrepareSync without end")


def leader(voters=(1, 2, 3), accepted=2, current=2, history=(), base=0, ensemble=True) -> Leader:
    core = ScriptedLeader(
        sid=1,
        voters=frozenset(voters),
        ensemble=ensemble,
        accepted_epoch=accepted,
        current_epoch=current,
        tick_ms=100,
        init_limit=10,
        container_check_ms=60_000,
        max_data_bytes=1 << 20,
        now=0.0,
        log=structlog.get_logger(),
    )
    core.history = MemoryHistory(list(history), base)
    core.set_time(0.0, 1_000)
    tree = DataTree()
    for t in history:
        tree.apply(t)
    core.log_ready(history[-1].zxid if history else 0, tree)
    return core


def sends(effects, to=None) -> list:
    return [e.msg for e in effects if isinstance(e, Send) and (to is None or e.to == to)]


def established(voters=(1, 2, 3)) -> Leader:
    core = leader(voters)
    core.learner_info(A, q.FollowerInfo(2, 2, 0), observer=False)
    core.from_learner(A, q.AckEpoch(2, 0))
    core.take_effects()  # the shell reads A's synchronization and sends it
    core.from_learner(A, q.AckNewLeader(0))
    assert core.ready
    core.take_effects()
    return core


def test_discovery_waits_for_a_quorum_then_picks_an_epoch_above_every_accepted_one():
    core = leader(voters=(1, 2, 3, 4, 5), accepted=2, current=2)
    core.learner_info(A, q.FollowerInfo(2, 7, 0), observer=False)
    assert core.phase is Phase.DISCOVERY and core.take_effects() == []
    core.learner_info(O, q.FollowerInfo(5, 9, 0), observer=True)  # observers never make the quorum
    assert core.take_effects() == []
    core.learner_info(B, q.FollowerInfo(3, 4, 0), observer=False)
    effects = core.take_effects()
    assert effects[0] == PersistEpoch("acceptedEpoch", 10)  # above the observer's 9 too, before telling anyone
    assert {e.to for e in effects if isinstance(e, Send)} == {A, O, B}
    assert set(map(type, sends(effects))) == {q.LeaderInfo} and core.epoch == 10


def test_a_learner_with_a_newer_history_ends_an_unestablished_leadership():
    core = leader(history=[txn(2, 1)])
    core.learner_info(A, q.FollowerInfo(2, 2, z(2, 5)), observer=False)
    core.take_effects()
    core.from_learner(A, q.AckEpoch(2, z(2, 5)))
    assert "newer history" in core.take_effects()[-1].reason


def test_a_learner_ahead_that_joins_after_the_epoch_was_chosen_is_truncated_not_a_reason_to_give_up():
    # 5 voters: 1, 2, 3 chose the epoch; 4 (a mute ex-leader with proposals nobody else logged,
    # passed over by the election) joins later, ahead of this leader.
    core = leader(voters=(1, 2, 3, 4, 5), history=[txn(2, 1)])
    for to, sid in ((A, 2), (B, 3)):
        core.learner_info(to, q.FollowerInfo(sid, 2, z(2, 1)), observer=False)
    core.take_effects()
    core.learner_info(C, q.FollowerInfo(4, 2, z(2, 6)), observer=False)
    core.from_learner(C, q.AckEpoch(2, z(2, 6)))
    effects = core.take_effects()
    assert not core.ended and sends(effects, C) == [q.LeaderInfo(3), q.Trunc(z(2, 1)), q.NewLeader(3, z(2, 1))]


def test_a_learner_behind_gets_a_diff_one_ahead_a_trunc_one_older_than_the_window_a_snap():
    history = [txn(2, i) for i in range(1, 6)]
    core = leader(voters=(1, 2, 3, 4), history=history, base=z(2, 2))
    for to, sid, last in ((A, 2, z(2, 3)), (B, 3, z(1, 9)), (C, 4, z(2, 1))):
        core.learner_info(to, q.FollowerInfo(sid, 2, last), observer=False)
    core.take_effects()
    core.from_learner(A, q.AckEpoch(2, z(2, 3)))
    assert sends(core.take_effects(), A) == [q.Diff(history[3:]), q.NewLeader(3, z(2, 5))]
    core.from_learner(B, q.AckEpoch(1, z(2, 2) + 1000))  # a dead leader's uncommitted proposals... after the window
    core.from_learner(C, q.AckEpoch(2, z(2, 1)))  # older than the snapshot at (2, 2)
    assert sends(core.take_effects(), C) == [q.Snap(*core.history.snapshot(z(2, 5))), q.NewLeader(3, z(2, 5))]


def test_a_trunc_drops_what_the_new_leader_never_had():
    history = [txn(2, i) for i in range(1, 4)]
    core = leader(history=history)
    core.learner_info(A, q.FollowerInfo(2, 2, z(2, 9)), observer=False)
    core.take_effects()
    core.from_learner(A, q.AckEpoch(1, z(2, 9)))  # an older currentEpoch: not newer than the leader's
    assert sends(core.take_effects(), A) == [q.Trunc(z(2, 3)), q.NewLeader(3, z(2, 3))]


def test_establishment_needs_a_quorum_of_new_leader_acks_and_persists_current_epoch_first():
    core = leader(voters=(1, 2, 3, 4, 5))
    for to, sid in ((A, 2), (B, 3)):
        core.learner_info(to, q.FollowerInfo(sid, 2, 0), observer=False)
    for to in (A, B):
        core.from_learner(to, q.AckEpoch(2, 0))
    core.take_effects()
    core.from_learner(A, q.AckNewLeader(0))
    assert not core.ready and core.take_effects() == []
    core.from_learner(B, q.AckNewLeader(0))
    effects = core.take_effects()
    assert effects[0] == PersistEpoch("currentEpoch", 3)
    assert Tell("session", LeaderUp(epoch=3, role="leader")) in effects
    assert sends(effects, A) == [q.UpToDate()] and sends(effects, B) == [q.UpToDate()]


def test_a_learner_that_had_accepted_this_epoch_syncs_but_does_not_count_towards_establishing_it():
    core = leader(voters=(1, 2, 3, 4, 5))
    for to, sid in ((A, 2), (B, 3)):
        core.learner_info(to, q.FollowerInfo(sid, 2, 0), observer=False)
    core.take_effects()
    core.from_learner(A, q.AckEpoch(2, 0))
    core.from_learner(B, q.AckEpoch(2, 0, fresh=False))  # it vouched for epoch 3 to a rival already
    core.take_effects()
    core.from_learner(A, q.AckNewLeader(0))
    core.from_learner(B, q.AckNewLeader(0))
    assert not core.ready and core.take_effects() == []  # 1, 2 vouch; 3 does not: no quorum of 5
    core.learner_info(C, q.FollowerInfo(4, 2, 0), observer=False)
    core.from_learner(C, q.AckEpoch(2, 0))
    core.take_effects()
    core.from_learner(C, q.AckNewLeader(0))
    assert core.ready


def test_a_txn_commits_only_after_a_quorum_ack_and_the_leaders_own_fsync_in_zxid_order():
    core = established()
    core.write(WriteRequest(1, 7, 1, OpenSession(7, 10_000, b"p" * 16)))
    core.write(WriteRequest(1, 7, 2, p.Create(2, "/x", b"", OPEN_ACL_UNSAFE)))
    effects = core.take_effects()
    appended = [e.msg for e in effects if isinstance(e, Tell) and isinstance(e.msg, Append)]
    assert [t.zxid for t in appended[0].txns] == [z(3, 1), z(3, 2)]
    assert sends(effects, A) == [q.Proposal(appended[0].txns)]
    core.from_learner(A, q.Ack(z(3, 2)))
    assert core.take_effects() == []  # a quorum of followers, but not the leader's own disk
    core.logged(z(3, 1))
    effects = core.take_effects()
    assert [e.msg.entries[0].zxid for e in effects if isinstance(e, Tell) and isinstance(e.msg, Committed)] == [z(3, 1)]
    assert sends(effects, A) == [q.Commit([z(3, 1)])]
    core.logged(z(3, 2))
    assert sends(core.take_effects(), A) == [q.Commit([z(3, 2)])]


def test_an_observer_is_informed_of_commits_and_never_counted():
    core = established()
    core.learner_info(O, q.FollowerInfo(5, 3, 0), observer=True)
    core.from_learner(O, q.AckEpoch(3, 0))
    core.take_effects()
    core.from_learner(O, q.AckNewLeader(0))
    core.take_effects()
    core.write(WriteRequest(1, 7, 1, OpenSession(7, 10_000, b"p" * 16)))
    core.from_learner(O, q.Ack(z(3, 1)))  # ignored: observers never vote
    core.logged(z(3, 1))
    assert not [m for m in sends(core.take_effects(), O) if isinstance(m, q.Inform)]
    core.from_learner(A, q.Ack(z(3, 1)))
    assert [type(m) for m in sends(core.take_effects(), O)] == [q.Inform]


def test_a_reconnecting_follower_keeps_the_leadership_until_it_fails_to_sync_within_init_limit():
    core = established()
    core.set_time(5.0, 6_000)
    core.learner_info(B, q.FollowerInfo(2, 3, 0), observer=False)  # server 2 again, a new incarnation
    effects = core.take_effects()
    assert Drop(A, "reconnected") in effects and sends(effects, B) == [q.LeaderInfo(3)]
    core.tick()
    assert not core.ended  # within init_limit of joining, it counts
    core.set_time(6.5, 7_500)
    core.tick()
    assert core.take_effects()[-1] == EndRole("lost the quorum", {"phase": "broadcast", "alive": [1]})


def test_a_dead_follower_costs_the_leadership_at_the_next_tick():
    core = established()
    core.learner_lost(A, "silent")
    assert not core.ended
    core.tick()
    assert core.take_effects()[-1].reason == "lost the quorum"


def test_a_learner_that_already_accepted_this_epoch_rejoins_and_a_newer_epoch_ends_the_leadership():
    core = established()
    core.learner_info(B, q.FollowerInfo(3, 3, 0), observer=False)  # restarted after accepting epoch 3
    assert sends(core.take_effects(), B) == [q.LeaderInfo(3)] and not core.ended
    core.learner_info(C, q.FollowerInfo(4, 4, 0), observer=False)  # someone got further
    assert core.take_effects()[-1].reason == "a learner has accepted a newer epoch"


def test_no_quorum_within_init_limit_ends_the_attempt():
    core = leader()
    core.set_time(0.5, 1_500)
    core.tick()
    assert core.take_effects() == []
    core.set_time(1.0, 2_000)
    core.tick()
    assert core.take_effects()[-1].reason == "no quorum synchronized in time"


def test_sessions_expire_on_the_monotonic_clock_not_the_wall_clock():
    core = leader(voters=(1,), ensemble=False)
    core.write(WriteRequest(1, 7, 1, OpenSession(7, 2_000, b"p" * 16)))
    core.logged(z(3, 1))
    core.take_effects()
    core.set_time(1.0, 10_000_000_000)  # the wall clock jumped years ahead
    core.tick()
    assert core.take_effects() == []
    core.set_time(2.5, 10_000_000_500)
    core.tick()
    closes = [t for e in core.take_effects() if isinstance(e, Tell) and isinstance(e.msg, Append) for t in e.msg.txns]
    assert [type(t.op).__name__ for t in closes] == ["CloseSessionTxn"] and closes[0].time_ms == 10_000_000_500


def test_a_log_holding_txns_this_leader_never_proposed_ends_the_leadership():
    core = established()
    core.logged(z(2, 9))
    assert core.take_effects()[-1].reason == "the log holds txns this leader did not write"


def test_a_previous_roles_append_reported_before_the_logs_end_is_ignored():
    """The follower this node was appended z(2, 9) and ended; its Logged reached the new leader
    before LogReady, which counts it (the log answers in order). Ending the leadership on it cost
    an election, and the ex-follower, suspecting this node, kept a quorum from forming."""
    core = ScriptedLeader(
        sid=1,
        voters=frozenset((1, 2, 3)),
        ensemble=True,
        accepted_epoch=2,
        current_epoch=2,
        tick_ms=100,
        init_limit=10,
        container_check_ms=60_000,
        max_data_bytes=1 << 20,
        now=0.0,
        log=structlog.get_logger(),
    )
    core.history = MemoryHistory([], 0)
    core.set_time(0.0, 1_000)
    core.logged(z(2, 9))
    assert core.take_effects() == []
    core.log_ready(z(2, 9), DataTree())
    assert not any(isinstance(e, EndRole) for e in core.take_effects())


def test_a_session_asking_where_the_stream_stands_gets_the_commit_point():
    core = established()
    core.hello()
    assert core.take_effects() == [Tell("session", SyncPoint(zxid=0, epoch=3, role="leader"))]


def test_the_learner_transition_table_is_the_only_way_a_learner_moves():
    core = leader()
    core.learner_info(A, q.FollowerInfo(2, 2, 0), observer=False)
    core.from_learner(A, q.AckNewLeader(0))  # out of turn: ignored
    assert core.learners[A].phase is LearnerPhase.EPOCH
    assert set(LEARNER_STEPS) == {(LearnerPhase.EPOCH, q.AckEpoch), (LearnerPhase.SYNCING, q.AckNewLeader)}


def with_session(core: Leader, acked_by: bytes | None = A) -> Leader:
    """`core` with session 7 opened and committed (acknowledged by learner `acked_by`)."""
    core.write(WriteRequest(1, 7, 1, OpenSession(7, 10_000, b"p" * 16)))
    core.logged(z(3, 1))
    if acked_by is not None:
        core.from_learner(acked_by, q.Ack(z(3, 1)))
    core.take_effects()
    return core


def committed(effects: list) -> list:
    return [e.msg.entries for e in effects if isinstance(e, Tell) and isinstance(e.msg, Committed)]


def test_an_answer_that_is_not_a_txn_waits_for_a_quorum_to_answer_a_probe_sent_after_it():
    core = with_session(established())
    core.write(WriteRequest(1, 7, 2, p.Sync(2, "/")))  # a Marker
    effects = core.take_effects()
    assert sends(effects, A) == [q.Probe(1)]
    assert not committed(effects)  # held
    core.from_learner(A, q.ProbeAck(0))  # an older answer proves nothing about now
    assert core.take_effects() == []
    core.from_learner(A, q.ProbeAck(1))
    released = committed(core.take_effects())
    assert len(released) == 1 and released[0][0].cxid == 2


def test_a_deposed_leader_never_answers_a_sync_and_a_standalone_one_at_once():
    core = with_session(established())
    core.learner_lost(A, "silent")  # its follower went to another leader; it has not noticed yet
    core.write(WriteRequest(1, 7, 2, p.Sync(2, "/")))
    assert not committed(core.take_effects())
    alone = with_session(leader(voters=(1,), ensemble=False), acked_by=None)
    alone.write(WriteRequest(1, 7, 2, p.Sync(2, "/")))
    assert [entries[0].cxid for entries in committed(alone.take_effects())] == [2]


def test_the_newest_connection_owns_a_session_and_the_others_get_session_moved():
    from actors.protocol.internal import OwnSession

    core = leader(voters=(1,), ensemble=False)
    core.write(WriteRequest(1, 7, 0, OpenSession(7, 10_000, b"p" * 16), conn=11))
    core.logged(z(3, 1))
    core.take_effects()
    core.write(WriteRequest(1, 7, 1, p.Create(1, "/a", b"", OPEN_ACL_UNSAFE), conn=11))
    core.own(OwnSession(2, 7, 22))  # the session resumed through another connection, elsewhere
    core.write(WriteRequest(1, 7, 2, p.Create(2, "/b", b"", OPEN_ACL_UNSAFE), conn=11))  # the old one again
    core.write(WriteRequest(2, 7, 2, p.Create(2, "/c", b"", OPEN_ACL_UNSAFE), conn=22))
    core.logged(z(3, 3))
    entries = [e for batch in committed(core.take_effects()) for e in batch]
    assert [(type(e).__name__, e.cxid, getattr(e, "err", 0)) for e in entries] == [
        ("Txn", 1, 0),
        ("Marker", OWNED_CXID, 0),
        ("Marker", 2, -118),
        ("Txn", 2, 0),
    ]  # /a (before the move), SESSIONMOVED, /c
    owned = entries[1]
    assert (owned.session_id, owned.conn) == (7, 22)  # answers the resume through connection 22


def test_requests_stamped_with_an_earlier_leaders_epoch_are_dropped():
    """A resume or write that sat queued for a role actor that ended (its node followed the
    previous leader) must not take the session from the connection that resumed it since: the
    client would be told its own session moved."""
    from actors.protocol.internal import OwnSession

    core = leader(voters=(1,), ensemble=False)
    core.write(WriteRequest(1, 7, 0, OpenSession(7, 10_000, b"p" * 16), conn=11, epoch=3))
    core.logged(z(3, 1))
    core.take_effects()
    core.own(OwnSession(2, 7, 22, epoch=2))  # heard by the previous leader's follower, delivered late
    core.write(WriteRequest(2, 7, 1, p.Create(1, "/old", b"", OPEN_ACL_UNSAFE), conn=22, epoch=2))
    core.write(WriteRequest(1, 7, 2, p.Create(2, "/a", b"", OPEN_ACL_UNSAFE), conn=11, epoch=3))
    core.logged(z(3, 2))
    entries = [e for batch in committed(core.take_effects()) for e in batch]
    assert [(type(e).__name__, e.cxid, getattr(e, "err", 0)) for e in entries] == [("Txn", 2, 0)]


def test_after_a_leader_change_the_first_connection_heard_from_owns_the_session():
    core = with_session(established())
    core.owners.clear()  # what a new leader knows of owners
    core.write(WriteRequest(1, 7, 2, p.Sync(2, "/"), conn=33))
    core.write(WriteRequest(1, 7, 3, p.Sync(3, "/"), conn=44))
    core.take_effects()
    core.from_learner(A, q.ProbeAck(1))
    released = [e for batch in committed(core.take_effects()) for e in batch]
    assert [(e.cxid, e.err) for e in released] == [(2, 0), (3, -118)]


def test_a_learners_synchronization_is_read_off_the_loop_and_what_commits_meanwhile_follows_it():
    core = with_session(established())
    history = list(core.recent)  # what the leader's log holds (its own commits)
    core.learner_info(B, q.FollowerInfo(3, 3, 0), observer=False)
    assert sends(Leader.take_effects(core), B) == [q.LeaderInfo(3)]
    core.from_learner(B, q.AckEpoch(2, 0))
    effects = Leader.take_effects(core)  # the shell's view: a read to do, nothing sent yet
    reads = [e for e in effects if isinstance(e, PrepareSync)]
    assert reads == [PrepareSync(B, 0, z(3, 1))] and not sends(effects, B)
    assert core.learners[B].phase is LearnerPhase.PREPARING
    core.write(WriteRequest(1, 7, 2, p.Create(2, "/during", b"", OPEN_ACL_UNSAFE)))  # commits go on meanwhile
    core.logged(z(3, 2))
    core.from_learner(A, q.Ack(z(3, 2)))
    Leader.take_effects(core)
    core.sync_ready(B, prepare(MemoryHistory(history), 0, z(3, 1)))  # what was read: up to (3, 1)
    sent = sends(core.take_effects(), B)
    assert [type(m).__name__ for m in sent] == ["Diff", "NewLeader"]
    assert [t.zxid for t in sent[0].txns] == [z(3, 1), z(3, 2)] and sent[1] == q.NewLeader(3, z(3, 2))


def test_a_commit_decided_in_the_same_batch_as_a_learners_sync_still_reaches_that_learner():
    """Found by the nemesis: acks that commit (3, 3) arrive in the batch that also hands back B's
    synchronization read. B must get (3, 3) in its DIFF or as a proposal, and a NEWLEADER it can
    reach; before, NEWLEADER named (3, 3) while neither carried it, and B waited forever."""
    core = with_session(established())
    history = list(core.recent)
    core.learner_info(B, q.FollowerInfo(3, 3, 0), observer=False)
    core.from_learner(B, q.AckEpoch(2, 0))
    Leader.take_effects(core)  # B's read (up to (3, 1)) is under way
    core.write(WriteRequest(1, 7, 2, p.Create(2, "/one", b"", OPEN_ACL_UNSAFE)))
    core.logged(z(3, 2))
    core.from_learner(A, q.Ack(z(3, 2)))
    Leader.take_effects(core)  # (3, 2) committed and released
    core.write(WriteRequest(1, 7, 3, p.Create(3, "/two", b"", OPEN_ACL_UNSAFE)))
    Leader.take_effects(core)  # (3, 3) proposed to A
    core.logged(z(3, 3))  # one batch: the acks that commit (3, 3), then B's read
    core.from_learner(A, q.Ack(z(3, 3)))
    core.sync_ready(B, prepare(MemoryHistory(history), 0, z(3, 1)))
    sent = sends(core.take_effects(), B)
    carried = [t.zxid for m in sent if isinstance(m, q.Diff | q.Proposal) for t in m.txns]
    newleader = next(m for m in sent if isinstance(m, q.NewLeader))
    assert carried == [z(3, 1), z(3, 2), z(3, 3)]
    assert newleader.zxid in carried


def test_a_learner_whose_end_is_in_the_loaded_tail_is_synchronized_from_memory():
    history = [txn(2, i) for i in range(1, 6)]
    core = ScriptedLeader(
        sid=1,
        voters=frozenset((1, 2, 3)),
        ensemble=True,
        accepted_epoch=2,
        current_epoch=2,
        tick_ms=100,
        init_limit=10,
        container_check_ms=60_000,
        max_data_bytes=1 << 20,
        now=0.0,
        log=structlog.get_logger(),
    )
    core.history = MemoryHistory([], 0)  # nothing readable: only memory can answer
    core.set_time(0.0, 1_000)
    tree = DataTree()
    for t in history:
        tree.apply(t)
    core.log_ready(z(2, 5), tree, history[1:])  # the shell kept the last four txns it replayed
    core.learner_info(A, q.FollowerInfo(2, 2, z(2, 3)), observer=False)
    Leader.take_effects(core)
    core.from_learner(A, q.AckEpoch(2, z(2, 3)))
    effects = Leader.take_effects(core)
    assert not [e for e in effects if isinstance(e, PrepareSync)]
    sent = sends(effects, A)
    assert [type(m).__name__ for m in sent] == ["Diff", "NewLeader"]
    assert [t.zxid for t in sent[0].txns] == [z(2, 4), z(2, 5)]
    core.learner_info(B, q.FollowerInfo(3, 2, z(2, 1)), observer=False)  # older than the tail: read
    Leader.take_effects(core)
    core.from_learner(B, q.AckEpoch(2, z(2, 1)))
    assert [e for e in Leader.take_effects(core) if isinstance(e, PrepareSync)] == [PrepareSync(B, z(2, 1), z(2, 5))]
