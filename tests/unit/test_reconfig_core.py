"""Dynamic reconfiguration in the pure cores: server specs, the tree's /zookeeper/config, the
proposer's joint quorum, prep's checks, the leader's activation and the election's joiners."""

from __future__ import annotations

import pytest
import structlog

from actors.election.fle import Election
from actors.leader.proposer import Proposer
from actors.protocol import quorum as q
from actors.protocol.effects import Drop, EndRole, Tell
from actors.protocol.internal import Committed, OpenSession, WriteRequest
from actors.protocol.quorum import FOLLOWING, LOOKING, Notification
from actors.protocol.txn import Marker, ReconfigTxn, Txn
from actors.session.tree import CONFIG, DataTree, TreeInvariantError, parse_membership
from runtime.config import (
    ConfigError,
    Membership,
    ServerEntry,
    SpecError,
    applied,
    load,
    membership_text,
    parse_spec,
    reconfigured,
    write_membership,
)
from tests.unit.test_leader import A, B, MemoryHistory, ScriptedLeader, sends, z
from zoomq import protocol as p
from zoomq.exceptions import Codes
from zoomq.security import Id

pytestmark = pytest.mark.timeout(30)
SUPER = [Id("super", "")]


def member(sid: int, role: str = "participant") -> ServerEntry:
    return ServerEntry(sid, "127.0.0.1", 20000 + sid, 30000 + sid, 40000 + sid, role)


# --- specs ------------------------------------------------------------------------------------


def test_a_spec_reads_as_zookeeper_writes_it_and_prints_back_the_same():
    text = "server.100=0.0.0.0:1234:2345:observer;0.0.0.0:3456"
    entry = parse_spec(text)
    assert (entry.id, entry.host, entry.quorum_port, entry.election_port, entry.client_port, entry.role) == (
        100,
        "0.0.0.0",
        1234,
        2345,
        3456,
        "observer",
    )
    assert entry.spec() == text
    assert parse_spec("server.2=h:1:2;10.0.0.9:7").spec() == "server.2=h:1:2:participant;10.0.0.9:7"
    assert parse_spec("server.3=h:1:2;5").spec() == "server.3=h:1:2:participant;h:5"  # no client host: the server's


@pytest.mark.parametrize(
    "text",
    [
        "some thing",
        "server.x=h:1:2",
        "server.1=h:1",
        "server.1=h:1:2:leader",
        "server.1=h:1:99999",
        "server.1=h:1:1",
        "server.1=:1:2",
        "server.1=h:1:2;:5",
        "server.1=h:1:2;h:x",
        "host=h:1:2",
    ],
)
def test_a_bad_spec_is_a_spec_error(text):
    with pytest.raises(SpecError):
        parse_spec(text)


def test_incremental_and_whole_reconfigs_make_the_membership():
    current = [member(1), member(2), member(3)]
    grown = reconfigured(current, f"{member(4).spec()},{member(5, 'observer').spec()}", None, None)
    assert [(s.id, s.role) for s in grown] == [
        (1, "participant"),
        (2, "participant"),
        (3, "participant"),
        (4, "participant"),
        (5, "observer"),
    ]
    demoted = reconfigured(current, member(3, "observer").spec(), "1", None)  # a joining id already there: replaced
    assert [(s.id, s.role) for s in demoted] == [(2, "participant"), (3, "observer")]
    whole = reconfigured(current, None, None, ",".join(member(i).spec() for i in (7, 8, 9)))
    assert [s.id for s in whole] == [7, 8, 9]


@pytest.mark.parametrize(
    "joining, leaving, members",
    [
        (None, None, None),  # nothing asked
        (member(4).spec(), None, member(5).spec()),  # both forms
        (None, "9", None),  # not a member
        (None, "x", None),
        (f"{member(4).spec()},{member(4).spec()}", None, None),  # twice
        (member(4).spec(), "4", None),
        (None, "1,2,3", None),  # no participant left
        (None, None, member(4, "observer").spec()),
    ],
)
def test_a_reconfig_that_cannot_be_is_refused(joining, leaving, members):
    with pytest.raises(SpecError):
        reconfigured([member(1), member(2), member(3)], joining, leaving, members)


def test_the_data_dirs_membership_overrides_the_config_file(tmp_path):
    servers = [
        {"id": i, "quorum_port": 20000 + i, "election_port": 30000 + i, "client_port": 40000 + i} for i in (1, 2, 3)
    ]
    write_membership(tmp_path, Membership([member(1), member(2), member(4)], z(1, 9)))
    cfg = load(None, sid=2, data_dir=str(tmp_path), servers=servers)
    assert [s.id for s in cfg.servers] == [1, 2, 4]
    with pytest.raises(ConfigError, match="removed from the ensemble"):
        load(None, sid=3, data_dir=str(tmp_path), servers=servers)
    (tmp_path / "membership.json").write_text("{not json")
    with pytest.raises(ConfigError, match="membership.json"):
        load(None, sid=2, data_dir=str(tmp_path), servers=servers)


# --- the tree ---------------------------------------------------------------------------------


def test_what_a_committed_reconfig_means_for_each_node():
    import msgspec

    keyed = [msgspec.structs.replace(member(sid), curve_public_key=f"key{sid}") for sid in (1, 2, 3)]
    joining = member(4)
    # A member that stays one: keeps the membership (with the CURVE keys it knew), its role as it was.
    new = [member(1), member(2), member(3), joining]
    stays = applied(keyed, 2, new, 0x5_00000001)
    assert stays.keep is not None and stays.keep.version == 0x5_00000001
    assert [s.curve_public_key for s in stays.keep.servers] == ["key1", "key2", "key3", ""]
    assert stays.servers == stays.keep.servers == stays.election and not stays.role_changed
    # The joiner before its add commits (the membership leaves it out): keeps nothing, stays in
    # its own place, and its election counts the members only.
    joiner_view = [*keyed, joining]
    before = applied(joiner_view, 4, [member(1), member(2), member(3)], 0x5_00000001)
    assert before.keep is None and not before.role_changed
    assert [s.id for s in before.servers] == [1, 2, 3, 4] and [s.id for s in before.election] == [1, 2, 3]
    # A participant made an observer: its role changed; a removed member keeps nothing.
    demoted = applied(keyed, 3, [member(1), member(2), member(3, "observer")], 0x5_00000002)
    assert demoted.role_changed and demoted.keep is not None
    removed = applied(keyed, 3, [member(1), member(2)], 0x5_00000003)
    assert removed.keep is None and not removed.role_changed and [s.id for s in removed.election] == [1, 2]


def test_a_reconfig_txn_rewrites_zookeeper_config_with_its_zxid_as_version_and_survives_a_snapshot():
    tree = DataTree()
    servers = [member(1), member(2)]
    body, events = tree.apply(Txn(z(1, 5), 77, 0, 0, ReconfigTxn(servers)))
    assert body.data == membership_text(servers, z(1, 5)) and body.data.endswith(b"version=100000005")
    assert (body.stat.version, body.stat.mzxid, body.stat.mtime) == (1, z(1, 5), 77)
    assert events == [(p.EVENT_NODE_DATA_CHANGED, CONFIG)]
    assert tree.membership == Membership(servers, z(1, 5))
    for keep_data in (True, False):
        again = DataTree.from_snapshot(tree.to_snapshot(), keep_data=keep_data)
        assert again.membership == tree.membership and again.get(CONFIG).data == body.data
    assert DataTree.from_snapshot(DataTree().to_snapshot()).membership is None  # never reconfigured
    with pytest.raises(TreeInvariantError):
        parse_membership(b"server.1=nonsense\nversion=1")


# --- the proposer -----------------------------------------------------------------------------


def test_a_reconfig_and_what_follows_need_the_old_and_the_new_quorum_then_the_new_one_alone():
    prop = Proposer(me=1, voters=frozenset({1, 2, 3}), committed_zxid=0)
    for counter in (1, 2, 3):
        prop.propose(Txn(z(1, counter), 0, 0, 0, ReconfigTxn([]) if counter == 2 else None))  # type: ignore[arg-type]
    prop.reconfig(z(1, 2), frozenset({1, 4, 5}))
    with pytest.raises(AssertionError):
        prop.reconfig(z(1, 3), frozenset({1}))  # one at a time
    prop.logged(1, z(1, 3))
    prop.logged(2, z(1, 3))  # the old quorum has everything ...
    assert prop.committed_zxid == z(1, 1)  # ... but the reconfig waits for the new one
    prop.logged(4, z(1, 3))
    assert prop.committed_zxid == z(1, 3) and prop.voters == {1, 4, 5} and prop.next_voters is None
    prop.propose(Txn(z(1, 4), 0, 0, 0, None))  # type: ignore[arg-type]
    prop.logged(1, z(1, 4))
    prop.logged(2, z(1, 4))  # an old voter no longer counts
    assert prop.committed_zxid == z(1, 3)
    prop.logged(5, z(1, 4))
    assert prop.committed_zxid == z(1, 4)


# --- the leader (and its prep) ----------------------------------------------------------------


def leader(servers: list[ServerEntry], enabled: bool = True, history: tuple[Txn, ...] = ()) -> ScriptedLeader:
    """A leader core of `servers` whose log holds `history`, past log_ready."""
    core = ScriptedLeader(
        sid=1,
        voters=frozenset(),
        ensemble=True,
        accepted_epoch=2,
        current_epoch=2,
        tick_ms=100,
        init_limit=10,
        container_check_ms=60_000,
        max_data_bytes=1 << 20,
        now=0.0,
        log=structlog.get_logger(),
        servers=servers,
        reconfig_enabled=enabled,
    )
    core.history = MemoryHistory(list(history))
    core.set_time(0.0, 1_000)
    tree = DataTree()
    for txn in history:
        tree.apply(txn)
    core.log_ready(history[-1].zxid if history else 0, tree)
    return core


def join(core: ScriptedLeader, to: bytes, sid: int, observer: bool = False) -> None:
    core.learner_info(to, q.FollowerInfo(sid, 2, 0, observer))
    core.from_learner(to, q.AckEpoch(2, 0))
    core.take_effects()
    core.from_learner(to, q.AckNewLeader(core.learners[to].newleader_zxid))
    core.take_effects()


def answer(core: ScriptedLeader, cxid: int, op: object, auth: list[Id] = SUPER) -> list:
    core.write(WriteRequest(1, 7, cxid, op, auth))  # type: ignore[arg-type]
    return core.take_effects()


def proposed(effects: list) -> list[Txn]:
    return [t for m in sends(effects, A) if isinstance(m, q.Proposal) for t in m.txns]


def established(servers: list[ServerEntry], enabled: bool = True) -> ScriptedLeader:
    core = leader(servers, enabled)
    join(core, A, 2)
    assert core.ready
    answer(core, 1, OpenSession(7, 10_000, b"p" * 16))
    core.logged(z(3, 1))
    core.from_learner(A, q.Ack(z(3, 1)))
    core.take_effects()
    return core


def refusals(core: ScriptedLeader, effects: list) -> list[int]:
    """The errors of the Markers among `effects` (released after a probe round answered by A)."""
    for probe in [m for m in sends(effects, A) if isinstance(m, q.Probe)]:
        core.from_learner(A, q.ProbeAck(probe.n))
    out = [e for e in core.take_effects() if isinstance(e, Tell) and isinstance(e.msg, Committed)]
    return [m.err for e in out for m in e.msg.entries if isinstance(m, Marker)]


def test_prep_checks_a_reconfig_in_zookeepers_order():
    three = [member(1), member(2), member(3)]
    off = established(three, enabled=False)
    assert refusals(off, answer(off, 2, p.Reconfig(2, leaving="3"))) == [Codes.RECONFIGDISABLED]
    core = established(three)
    assert refusals(core, answer(core, 2, p.Reconfig(2, leaving="3"), auth=[])) == [Codes.NOAUTH]
    # Bad specs and versions are told before the ACL check (kazoo's suite counts on it).
    assert refusals(core, answer(core, 3, p.Reconfig(3, joining="some thing"), auth=[])) == [Codes.BADARGUMENTS]
    assert refusals(core, answer(core, 4, p.Reconfig(4, joining="some thing", from_config=5), auth=[])) == [
        Codes.BADVERSION
    ]
    # Two new voters that are not connected: 1 and 2 of {1, 2, 3, 4, 5} are no quorum.
    specs = f"{member(4).spec()},{member(5).spec()}"
    assert refusals(core, answer(core, 5, p.Reconfig(5, joining=specs))) == [Codes.NEWCONFIGNOQUORUM]
    (txn,) = proposed(answer(core, 6, p.Reconfig(6, leaving="3")))
    assert type(txn.op) is ReconfigTxn
    second = answer(core, 7, p.Reconfig(7, joining=member(6, "observer").spec()))
    core.logged(txn.zxid)
    core.from_learner(A, q.Ack(txn.zxid))
    assert refusals(core, second) == [Codes.RECONFIGINPROGRESS]  # answered in order, after the first commits


def test_a_committed_reconfig_takes_effect_drops_the_removed_learner_and_counts_the_joined_one():
    core = established([member(1), member(2), member(3)])
    join(core, B, 3)
    core.learner_info(b"joiner", q.FollowerInfo(4, 2, 0))  # not a member yet: a non-voting follower
    core.from_learner(b"joiner", q.AckEpoch(2, 0))
    core.take_effects()
    core.from_learner(b"joiner", q.AckNewLeader(z(3, 1)))
    core.take_effects()
    effects = answer(core, 2, p.Reconfig(2, joining=member(4).spec(), leaving="3"))
    (txn,) = proposed(effects)
    assert core.joint == {1, 2, 4} and core.voters == {1, 2, 3}
    core.logged(txn.zxid)
    core.from_learner(B, q.Ack(txn.zxid))  # the old quorum {1, 3} ...
    assert not any(isinstance(e, Drop) for e in core.take_effects()) and core.voters == {1, 2, 3}
    core.from_learner(b"joiner", q.Ack(txn.zxid))  # ... and the new one {1, 4}
    effects = core.take_effects()
    assert [e.to for e in effects if isinstance(e, Drop)] == [B]
    assert core.voters == {1, 2, 4} and core.joint is None and core.config.version == txn.zxid
    assert not any(isinstance(e, EndRole) for e in effects)


def test_a_leader_the_reconfig_leaves_out_steps_down_once_it_commits():
    core = established([member(1), member(2), member(3)])
    join(core, B, 3)
    (txn,) = proposed(answer(core, 2, p.Reconfig(2, leaving="1")))
    core.logged(txn.zxid)
    core.from_learner(A, q.Ack(txn.zxid))
    core.from_learner(B, q.Ack(txn.zxid))
    effects = core.take_effects()
    assert any(isinstance(e, Tell) and isinstance(e.msg, Committed) for e in effects)  # the commit goes out first
    assert "not a voter" in [e for e in effects if isinstance(e, EndRole)][0].reason


def test_a_reconfig_in_an_unestablished_leaders_log_needs_both_quorums_to_establish():
    core = leader(
        [member(1), member(2), member(3)],
        history=(Txn(z(2, 1), 0, 0, 0, ReconfigTxn([member(1), member(4), member(5)])),),
    )
    assert core.joint == {1, 4, 5}
    for to, sid in ((A, 2), (B, 3)):
        core.learner_info(to, q.FollowerInfo(sid, 2, z(2, 1)))
    core.take_effects()
    assert not core.ready and core.epoch == 0  # the old voters alone do not even start discovery
    core.learner_info(b"four", q.FollowerInfo(4, 2, z(2, 1)))
    core.take_effects()
    assert core.epoch == 3
    for to in (A, b"four"):
        core.from_learner(to, q.AckEpoch(2, z(2, 1)))
        core.take_effects()
        core.from_learner(to, q.AckNewLeader(z(2, 1)))
        core.take_effects()
    assert core.ready and core.voters == {1, 4, 5} and core.joint is None


# --- the election -----------------------------------------------------------------------------


def test_an_elected_member_tells_a_joiner_where_the_leader_is_and_never_counts_its_vote():
    core = Election(1, frozenset({1, 2, 3}))
    core.serve(FOLLOWING, 2, z(1, 4), 1, 1)
    core.receive(Notification(9, LOOKING, 1, 9, z(1, 9), 1), now=0.0)
    assert core.outbox == [(9, Notification(1, FOLLOWING, 1, 2, z(1, 4), 1))]
    looking = Election(1, frozenset({1, 2, 3}))
    looking.look(0, 0, now=0.0)
    looking.outbox.clear()
    looking.receive(Notification(9, LOOKING, 1, 9, z(1, 9), 1), now=0.0)
    assert looking.outbox == [] and 9 not in looking.received
    looking.set_members(frozenset({1, 2}), frozenset({3}))
    assert looking.voters == {1, 2} and looking.observers == {3}
    with pytest.raises(ValueError):
        looking.set_members(frozenset({2}), frozenset())


def test_a_joiner_that_counts_a_dead_member_still_follows_the_leader_two_live_members_follow():
    core = Election(4, frozenset({1, 2, 3, 4}))  # 3 is dead: the reconfig will replace it by 4
    core.look(0, 0, now=0.0)
    core.receive(Notification(1, FOLLOWING, 5, 2, z(1, 4), 1), now=0.0)
    assert core.state == LOOKING  # a follower's word alone is not enough
    core.receive(Notification(2, "leading", 5, 2, z(1, 4), 1), now=0.0)
    assert core.state == FOLLOWING and core.vote.leader == 2


def test_the_only_voter_left_by_a_reconfig_elects_itself():
    core = Election(2, frozenset({2}), frozenset({1, 3}))
    core.look(z(3, 5), 3, now=0.0)
    assert core.decided is not None and core.decided.leader == 2 and core.state == "leading"


def test_a_node_that_missed_a_reconfig_takes_it_from_a_peers_notification():
    text = membership_text([member(1), member(2, "observer"), member(3)], z(2, 7))
    core = Election(2, frozenset({1, 2, 3}))
    core.look(z(2, 6), 2, now=0.0)
    assert core.own is not None
    core.receive(Notification(1, LOOKING, 1, 1, z(2, 7), 2, z(2, 7), text), now=0.0)
    assert core.adopted == Membership([member(1), member(2, "observer"), member(3)], z(2, 7))
    assert core.voters == {1, 3} and core.observers == {2} and core.own is None  # an observer now: no candidacy
    core.broadcast()
    assert core.outbox[-1][1].config_version == z(2, 7)  # and it passes the membership on
    core.adopted = None
    core.receive(Notification(3, LOOKING, 1, 3, z(2, 7), 2, z(2, 5), b"stale"), now=0.0)
    assert core.adopted is None  # an older one is not taken
    core.set_members(frozenset({1, 2, 3}), frozenset(), z(2, 9), b"", now=0.0)
    assert core.own is not None and core.vote.leader == 2  # made a participant again mid-round: a candidate


def test_a_leader_its_own_log_leaves_out_establishes_commits_it_and_steps_down_after_its_sessions_sync():
    change = Txn(z(2, 1), 0, 0, 0, ReconfigTxn([member(1, "observer"), member(2), member(3)]))
    core = leader([member(1), member(2), member(3)], history=(change,))
    for to, sid in ((A, 2), (B, 3)):
        core.learner_info(to, q.FollowerInfo(sid, 2, z(2, 1)))
    core.take_effects()
    for to in (A, B):
        core.from_learner(to, q.AckEpoch(2, z(2, 1)))
        core.take_effects()
        core.from_learner(to, q.AckNewLeader(z(2, 1)))
    effects = core.take_effects()
    assert core.ready and core.voters == {2, 3} and not core.ended
    assert any(isinstance(e, Tell) and type(e.msg).__name__ == "LeaderUp" for e in effects)
    core.hello()  # its session actor asks where the committed stream stands: told, then it goes
    effects = core.take_effects()
    assert [type(e.msg).__name__ for e in effects if isinstance(e, Tell)] == ["SyncPoint"]
    assert "not a voter" in [e for e in effects if isinstance(e, EndRole)][0].reason
