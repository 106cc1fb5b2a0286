"""The learner core (actors/follower/learner.py) as scripts: messages in, effects out."""

from __future__ import annotations

import pytest
import structlog

from actors.follower.learner import Learner, Phase
from actors.protocol import quorum as q
from actors.protocol.effects import EndRole, InstallSnapshot, PersistEpoch, Send, Tell
from actors.protocol.internal import (
    Append,
    Committed,
    Hello,
    LeaderUp,
    OwnSession,
    SyncPoint,
    Touch,
    Truncate,
    WriteRequest,
)
from actors.protocol.txn import CreateTxn, Marker, Txn
from zoomq import protocol as p

pytestmark = pytest.mark.timeout(30)
E = 5  # the new leader's epoch


def txn(epoch: int, counter: int) -> Txn:
    return Txn((epoch << 32) | counter, 0, 1, counter, CreateTxn(f"/n{counter}", b"", []))


def z(epoch: int, counter: int) -> int:
    return (epoch << 32) | counter


def learner(voting: bool = True, accepted: int = 3, current: int = 3) -> Learner:
    core = Learner(
        sid=2,
        leader=1,
        voting=voting,
        accepted_epoch=accepted,
        current_epoch=current,
        tick_s=0.1,
        init_limit=10,
        sync_limit=5,
        now=0.0,
        log=structlog.get_logger(),
    )
    assert core.take_effects() == [Tell("log", Hello(origin=2))]
    return core


def synced(voting: bool = True, last: int = z(3, 4)) -> Learner:
    """A learner through discovery and a DIFF, waiting for UpToDate."""
    core = learner(voting)
    core.log_ready(last)
    core.from_leader(q.LeaderInfo(E))
    core.from_leader(q.NewLeader(E, last))
    core.take_effects()
    assert core.phase is Phase.ACKED
    return core


def ends(core: Learner) -> EndRole:
    effects = core.take_effects()
    assert isinstance(effects[-1], EndRole), effects
    return effects[-1]


def test_discovery_reports_the_accepted_epoch_and_log_end_then_persists_the_new_epoch_before_acking_it():
    core = learner(voting=False, accepted=3, current=2)
    core.log_ready(z(3, 7))
    assert core.take_effects() == [Send(q.FollowerInfo(2, 3, z(3, 7), True))]
    core.from_leader(q.LeaderInfo(E))
    assert core.take_effects() == [PersistEpoch("acceptedEpoch", E), Send(q.AckEpoch(2, z(3, 7)))]


def test_an_epoch_below_the_accepted_one_is_refused():
    core = learner(accepted=6)
    core.log_ready(0)
    core.take_effects()
    core.from_leader(q.LeaderInfo(E))
    assert "older than one accepted" in ends(core).reason


def test_an_epoch_accepted_already_is_acked_as_not_vouching_for_it():
    # Two prospective leaders may propose the same epoch (each from a quorum that had not accepted
    # it); a learner that accepted it from one must not vouch for it again, or both could establish.
    core = learner(accepted=E)
    core.log_ready(z(3, 1))
    core.take_effects()
    core.from_leader(q.LeaderInfo(E))
    assert core.take_effects() == [Send(q.AckEpoch(3, z(3, 1), fresh=False))]  # nothing persisted: no change
    assert core.phase is Phase.SYNCING


def test_a_leader_that_dropped_this_learner_ends_its_role_in_any_phase():
    for core in (learner(), synced()):
        if core.phase is not Phase.ACKED:
            core.log_ready(0)
            core.take_effects()
        core.from_leader(q.Dropped("unknown channel"))
        assert "dropped this learner" in ends(core).reason


def test_new_leader_is_acknowledged_only_once_its_history_is_durable_and_current_epoch_written_first():
    core = learner()
    core.log_ready(z(3, 2))
    core.from_leader(q.LeaderInfo(E))
    core.take_effects()
    core.from_leader(q.Diff([txn(3, 3), txn(3, 4)]))
    core.from_leader(q.NewLeader(E, z(3, 4)))
    assert core.take_effects() == [Tell("log", Append(txns=[txn(3, 3), txn(3, 4)]))]
    core.logged(z(3, 3))
    assert core.take_effects() == []  # not yet all of it
    core.logged(z(3, 4))
    assert core.take_effects() == [PersistEpoch("currentEpoch", E), Send(q.AckNewLeader(z(3, 4)))]


def test_a_truncation_must_be_answered_before_new_leader_is_acknowledged():
    core = learner()
    core.log_ready(z(3, 9))
    core.from_leader(q.LeaderInfo(E))
    core.from_leader(q.Trunc(z(3, 4)))
    core.from_leader(q.NewLeader(E, z(3, 4)))
    effects = core.take_effects()
    assert Tell("log", Truncate(z(3, 4))) in effects and not any(
        isinstance(e, Send) and isinstance(e.msg, q.AckNewLeader) for e in effects
    )
    core.log_ready(z(3, 4))  # the truncation's answer
    assert core.take_effects()[-1] == Send(q.AckNewLeader(z(3, 4)))


def test_a_snapshot_is_installed_then_the_log_restarts_from_it():
    core = learner()
    core.log_ready(0)
    core.from_leader(q.LeaderInfo(E))
    core.take_effects()
    core.from_leader(q.Snap(z(3, 50), b"tree"))
    core.from_leader(q.NewLeader(E, z(3, 50)))
    core.from_leader(q.Proposal([txn(E, 1)]))  # outstanding proposals, sent before the install is answered
    assert core.take_effects() == [
        InstallSnapshot(z(3, 50), b"tree"),
        Tell("log", Truncate(z(3, 50), snapshot=True)),
        Tell("log", Append(txns=[txn(E, 1)])),
    ]
    core.log_ready(z(3, 50))
    assert core.take_effects()[-1] == Send(q.AckNewLeader(z(3, 50)))
    core.logged(z(E, 1))  # the proposal appended after the install: this learner's own
    assert core.take_effects() == [Send(q.Ack(z(E, 1)))]


def test_up_to_date_serves_and_announces_the_leader():
    core = synced()
    core.from_leader(q.UpToDate())
    assert core.take_effects() == [Tell("session", LeaderUp(epoch=E, role="follower"))]
    assert core.phase is Phase.SERVING and core.silence_s == pytest.approx(0.5)


def test_a_follower_acks_only_what_its_log_made_durable_and_an_observer_never():
    for voting in (True, False):
        core = synced(voting)
        core.from_leader(q.UpToDate())
        core.from_leader(q.Proposal([txn(E, 1)]))
        effects = core.take_effects()
        assert not any(isinstance(e, Send) for e in effects)
        core.logged(z(E, 1))
        acks = [e for e in core.take_effects() if isinstance(e, Send)]
        assert acks == ([Send(q.Ack(z(E, 1)))] if voting else [])


def test_commits_reach_the_session_in_order_only_once_on_this_disk():
    core = synced()
    core.from_leader(q.UpToDate())
    core.take_effects()
    marker = Marker(7, 1, p.PING_XID)
    core.from_leader(q.Proposal([txn(E, 1), txn(E, 2)]))
    core.from_leader(q.Commit([z(E, 1), marker, z(E, 2)]))
    core.take_effects()
    core.logged(z(E, 1))
    assert core.take_effects()[-1] == Tell("session", Committed(entries=[txn(E, 1), marker]))
    core.logged(z(E, 2))
    assert core.take_effects()[-1] == Tell("session", Committed(entries=[txn(E, 2)]))


def test_an_observer_is_informed_of_whole_txns():
    core = synced(voting=False)
    core.from_leader(q.UpToDate())
    core.take_effects()
    core.from_leader(q.Inform([txn(E, 1)]))
    assert core.take_effects() == [Tell("log", Append(txns=[txn(E, 1)]))]
    core.logged(z(E, 1))
    assert core.take_effects() == [Tell("session", Committed(entries=[txn(E, 1)]))]


def test_a_commit_of_a_txn_never_proposed_ends_the_role():
    core = synced()
    core.from_leader(q.UpToDate())
    core.from_leader(q.Proposal([txn(E, 1), txn(E, 3)]))
    core.logged(z(E, 3))
    core.from_leader(q.Commit([z(E, 1), z(E, 2)]))
    assert "never proposed" in ends(core).reason


@pytest.mark.parametrize(
    ("setup", "msg"),
    [
        ("connecting", q.Proposal([txn(E, 1)])),
        ("connecting", q.NewLeader(E, 0)),
        ("syncing", q.UpToDate()),  # before NewLeader was acknowledged
        ("serving", q.LeaderInfo(E + 1)),
        ("serving", q.Diff([])),
    ],
)
def test_a_message_the_phase_does_not_expect_ends_the_role(setup, msg):
    core = learner()
    core.log_ready(0)
    if setup != "connecting":
        core.from_leader(q.LeaderInfo(E))
    if setup == "serving":
        core.from_leader(q.NewLeader(E, 0))
        core.from_leader(q.UpToDate())
    core.take_effects()
    core.from_leader(msg)
    assert ends(core).reason == "unexpected message from the leader"


def test_a_restarted_log_that_lost_appends_ends_the_role_and_one_that_kept_them_counts_as_logged():
    core = synced()
    core.from_leader(q.UpToDate())
    core.from_leader(q.Proposal([txn(E, 1), txn(E, 2)]))
    core.take_effects()
    core.log_ready(z(E, 2))  # restarted, and everything sent is durable
    assert core.take_effects()[-1] == Send(q.Ack(z(E, 2)))
    core.from_leader(q.Proposal([txn(E, 3)]))
    core.log_ready(z(E, 2))  # restarted, and txn 3 was lost with it
    assert ends(core).reason.startswith("the log is missing appends")


def test_a_log_holding_txns_this_learner_never_wrote_ends_the_role():
    core = synced()
    core.from_leader(q.UpToDate())
    core.from_leader(q.Proposal([txn(E, 1)]))
    core.take_effects()
    core.logged(z(E, 2))  # a previous role actor's append reached the log after its end was reported
    assert ends(core).reason == "the log holds txns this learner did not write"


def test_local_requests_go_to_the_leader_only_while_serving():
    core = synced()
    req = WriteRequest(2, 7, 1, p.Sync(1, "/"))
    core.local(req)
    core.local(Hello(origin=2))
    core.local(Touch(origin=2, sessions=[7]))
    assert core.take_effects() == [Send(Touch(origin=2, sessions=[7]))]
    core.from_leader(q.UpToDate())
    core.take_effects()
    core.local(req)
    core.local(Hello(origin=2))
    assert core.take_effects() == [Send(req), Tell("session", SyncPoint(zxid=z(3, 4), epoch=E, role="follower"))]


def test_a_broken_channel_ends_the_role_once():
    core = synced()
    core.channel_broken("sequence gap", expected=3)
    core.channel_broken("the connection closed")
    effects = core.take_effects()
    assert [e.reason for e in effects if isinstance(e, EndRole)] == ["sequence gap"]
    core.from_leader(q.UpToDate())  # nothing more happens after the end
    assert core.take_effects() == []


def test_a_probe_is_answered_at_once_by_a_learner_that_follows():
    core = synced(voting=True)
    core.from_leader(q.Probe(4))
    assert core.take_effects() == [Send(q.ProbeAck(4))]


def test_a_newleader_past_what_the_leader_sent_ends_the_role_instead_of_waiting_forever():
    core = learner(True)
    core.log_ready(z(3, 4))
    core.from_leader(q.LeaderInfo(E))
    core.from_leader(q.Diff([txn(3, 5)]))
    core.from_leader(q.NewLeader(E, z(3, 7)))  # (3, 6) and (3, 7) were never sent
    assert ends(core).reason == "NEWLEADER is past what the leader sent"


def test_local_requests_from_an_earlier_epoch_are_not_forwarded():
    core = synced()
    core.from_leader(q.UpToDate())
    core.take_effects()
    stale = [WriteRequest(2, 7, 1, p.Sync(1, "/"), conn=5, epoch=E - 1), OwnSession(2, 7, 5, epoch=E - 1)]
    current = [WriteRequest(2, 7, 2, p.Sync(2, "/"), conn=6, epoch=E), OwnSession(2, 7, 6, epoch=E)]
    for msg in stale + current:
        core.local(msg)
    assert core.take_effects() == [Send(msg) for msg in current]
