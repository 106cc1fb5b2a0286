"""Fast leader election's vote logic, driven through a simulated network (no sockets, no clock)."""

from __future__ import annotations

import pytest

from actors.election.fle import NO_LEADER, Election, better
from actors.protocol.quorum import FOLLOWING, LEADING, LOOKING, OBSERVING, Notification

pytestmark = pytest.mark.timeout(30)


class Net:
    """Nodes plus an in-flight message list; `cut` pairs lose every message between them."""

    def __init__(self, voters: list[int], observers: list[int] = (), finalize_s: float = 0.2) -> None:
        vs, obs = frozenset(voters), frozenset(observers)
        self.nodes = {sid: Election(sid, vs, obs, finalize_s=finalize_s) for sid in [*voters, *observers]}
        self.cut: set[frozenset[int]] = set()
        self.down: set[int] = set()
        self.now = 0.0
        self.delivered = 0

    def collect(self) -> list[tuple[int, int, Notification]]:
        out = []
        for sid, node in self.nodes.items():
            for dest, msg in node.outbox:
                targets = [d for d in self.nodes if d != sid] if dest is None else [dest]
                out.extend((sid, t, msg) for t in targets)
            node.outbox.clear()
        return out

    def run(self, rounds: int = 50) -> None:
        """Deliver until quiet, advancing time past finalize waits; bounded."""
        for _ in range(rounds):
            msgs = self.collect()
            for src, dst, msg in msgs:
                if src in self.down or dst in self.down or frozenset((src, dst)) in self.cut:
                    continue
                self.nodes[dst].receive(msg, self.now)
                self.delivered += 1
            self.now += 0.05
            for sid, node in self.nodes.items():
                if sid not in self.down:
                    node.tick(self.now)
            if not msgs and all(n.decide_at is None for n in self.nodes.values()):
                return

    def look(self, sid: int, zxid: int = 0, epoch: int = 0) -> None:
        self.nodes[sid].look(zxid, epoch, self.now)

    def states(self) -> dict[int, tuple[str, int]]:
        return {sid: (n.state, n.vote.leader) for sid, n in self.nodes.items() if sid not in self.down}


def test_fresh_ensemble_elects_the_highest_sid():
    net = Net([1, 2, 3])
    for sid in (1, 2, 3):
        net.look(sid)
    net.run()
    assert net.states() == {1: (FOLLOWING, 3), 2: (FOLLOWING, 3), 3: (LEADING, 3)}


def test_newest_history_wins_over_a_higher_sid():
    net = Net([1, 2, 3])
    net.look(1, zxid=0x1_00000009, epoch=1)
    net.look(2, zxid=0x1_00000005, epoch=1)
    net.look(3, zxid=0x1_00000005, epoch=1)
    net.run()
    assert net.states() == {1: (LEADING, 1), 2: (FOLLOWING, 1), 3: (FOLLOWING, 1)}


def test_epoch_counts_before_zxid():
    net = Net([1, 2, 3])
    net.look(1, zxid=0x1_000000FF, epoch=1)
    net.look(2, zxid=0x2_00000001, epoch=2)
    net.look(3, zxid=0x1_00000001, epoch=2)
    net.run()
    assert net.states()[2] == (LEADING, 2)
    assert {s for s, _ in net.states().values()} == {LEADING, FOLLOWING}


def test_better_orders_epoch_then_zxid_then_sid():
    def n(leader, zxid, epoch):
        return Notification(9, LOOKING, 1, leader, zxid, epoch)

    assert better(n(1, 5, 2), n(3, 9, 1))
    assert better(n(1, 9, 1), n(3, 5, 1))
    assert better(n(3, 5, 1), n(1, 5, 1))
    assert not better(n(1, 5, 1), n(1, 5, 1))


def test_minority_cannot_elect():
    net = Net([1, 2, 3, 4, 5])
    net.down = {3, 4, 5}
    net.look(1)
    net.look(2)
    net.run()
    assert net.states() == {1: (LOOKING, 2), 2: (LOOKING, 2)}


def test_bare_majority_elects_among_itself():
    net = Net([1, 2, 3, 4, 5])
    net.down = {4, 5}
    for sid in (1, 2, 3):
        net.look(sid)
    net.run()
    assert net.states() == {1: (FOLLOWING, 3), 2: (FOLLOWING, 3), 3: (LEADING, 3)}


def test_stale_round_is_answered_not_adopted():
    node = Election(1, frozenset({1, 2, 3}))
    node.look(0, 0, 0.0)
    node.look(0, 0, 0.0)  # round 2
    node.outbox.clear()
    node.receive(Notification(3, LOOKING, 1, 3, 0x10, 1), 0.0)
    assert node.vote.leader == 1  # not adopted
    assert node.outbox == [(3, Notification(1, LOOKING, 2, 1, 0, 0))]


def test_newer_round_resets_received_votes_and_revotes():
    node = Election(1, frozenset({1, 2, 3}))
    node.look(0x1_00000002, 1, 0.0)
    node.receive(Notification(2, LOOKING, 1, 1, 0x1_00000002, 1), 0.0)
    assert node.decide_at is not None  # 1 and 2 agree on 1: quorum, finalize started
    node.outbox.clear()
    node.receive(Notification(3, LOOKING, 5, 3, 0x1_00000001, 1), 0.0)
    assert node.round == 5
    assert node.vote.leader == 1  # own history is newer than 3's: keep it
    assert set(node.received) == {1, 3}
    assert node.decide_at is None
    assert node.outbox and node.outbox[0][0] is None  # re-broadcast in the new round


def test_a_vote_sent_while_the_peer_still_followed_is_answered_when_it_looks():
    """After the leader (3) died, 2 looked first and broadcast its vote; 1, still following,
    answered with its settled vote and forgot 2's. When 1 looks and votes for itself, 2 answers
    at once, and both decide without waiting for a resend."""
    two = Election(2, frozenset({1, 2, 3}))
    two.look(0x1_00000005, 1, 0.0, suspect=3, suspect_s=5.0)
    two.receive(Notification(1, FOLLOWING, 0, 3, 0x1_00000001, 1), 0.0)  # 1's answer: it still followed 3
    two.outbox.clear()
    two.receive(Notification(1, LOOKING, 1, 1, 0x1_00000005, 1), 0.01)  # 1 looks (same round), votes for itself
    assert two.outbox == [(1, Notification(2, LOOKING, 1, 2, 0x1_00000005, 1))]
    one = Election(1, frozenset({1, 2, 3}))
    one.look(0x1_00000005, 1, 0.01, suspect=3, suspect_s=5.0)
    one.receive(two.outbox[0][1], 0.02)
    assert (one.state, one.vote.leader) == (FOLLOWING, 2)  # 1 and 2 back 2; 3 is the suspect
    two.outbox.clear()
    two.receive(one.outbox[-1][1], 0.02)
    assert two.state == LEADING and two.outbox == []  # a vote as good as ours is not answered


def test_a_better_vote_during_finalize_postpones_the_decision():
    node = Election(1, frozenset({1, 2, 3}))
    node.look(0, 0, 0.0)
    node.receive(Notification(2, LOOKING, 1, 1, 0, 0), 0.0)
    assert node.decide_at == pytest.approx(0.2)
    node.receive(Notification(3, LOOKING, 1, 3, 0, 0), 0.1)
    assert node.vote.leader == 3
    node.tick(0.25)
    assert node.state == LOOKING  # 3 has one vote of 3 so far (1's): no quorum yet


def test_late_node_follows_the_running_leader_even_with_a_higher_sid():
    net = Net([1, 2, 3])
    net.look(1, zxid=0x1_00000005, epoch=1)
    net.look(2, zxid=0x1_00000001, epoch=1)
    net.down = {3}
    net.run()
    assert net.states() == {1: (LEADING, 1), 2: (FOLLOWING, 1)}
    net.down = set()
    net.look(3, zxid=0x1_00000001, epoch=1)
    net.run()
    assert net.states()[3] == (FOLLOWING, 1)


def test_settled_votes_without_the_leader_saying_leading_are_not_followed():
    node = Election(3, frozenset({1, 2, 3}))
    node.look(0, 0, 0.0)
    node.receive(Notification(2, FOLLOWING, 4, 1, 0, 0), 0.0)
    assert node.state == LOOKING  # 1 has not said LEADING: it may be gone
    node.receive(Notification(1, LEADING, 4, 1, 0, 0), 0.0)
    assert (node.state, node.vote.leader) == (FOLLOWING, 1)


def test_a_restarted_leader_does_not_take_its_old_followers_votes_as_its_own_election():
    """Node 2 led (epoch 2) and restarted; 1 and 3 have not noticed yet and still report FOLLOWING
    2 with the vote that elected it. Taking that, 2 would lead nobody until init_limit ran out."""
    node = Election(2, frozenset({1, 2, 3}))
    node.look(0x2_00000006, 2, 0.0)  # a fresh process: round 1
    for sid in (1, 3):
        node.receive(Notification(sid, FOLLOWING, 1, 2, 0x1_0000000D, 1), 0.0)
    assert node.state == LOOKING
    # this round's candidacy, backed by followers that decided before this node did: taken
    fresh = Election(2, frozenset({1, 2, 3}))
    fresh.look(0x2_00000006, 2, 0.0)
    fresh.receive(Notification(3, FOLLOWING, 1, 2, 0x2_00000006, 2), 0.0)
    fresh.receive(Notification(1, FOLLOWING, 1, 2, 0x2_00000006, 2), 0.0)
    assert (fresh.state, fresh.vote.leader) == (LEADING, 2)


def test_observer_learns_the_leader_and_never_counts():
    net = Net([1, 2], observers=[3])
    for sid in (1, 2, 3):
        net.look(sid)
    net.run()
    assert net.states()[3] == (LOOKING, NO_LEADER)  # nobody was settled yet when it asked
    assert net.states()[2] == (LEADING, 2)
    net.look(3)  # resend (the actor does this on a timer)
    net.run()
    assert net.states()[3] == (OBSERVING, 2)


def test_observer_votes_do_not_make_a_quorum():
    node = Election(1, frozenset({1, 2, 3}), frozenset({4, 5}))
    node.look(0, 0, 0.0)
    node.receive(Notification(4, LOOKING, 1, 1, 0, 0), 0.0)
    node.receive(Notification(5, LOOKING, 1, 1, 0, 0), 0.0)
    assert node.decide_at is None
    assert [dest for dest, _ in node.outbox[1:]] == [4, 5]  # answered, so they learn


def test_a_serving_node_answers_lookers_with_its_settled_vote():
    node = Election(2, frozenset({1, 2, 3}))
    node.serve(FOLLOWING, 1, 0x2_00000000, 2, 7)
    node.receive(Notification(3, LOOKING, 1, 3, 0, 0), 0.0)
    assert node.outbox == [(3, Notification(2, FOLLOWING, 7, 1, 0x2_00000000, 2))]
    node.outbox.clear()
    node.receive(Notification(1, LEADING, 7, 1, 0, 0), 0.0)
    assert node.outbox == []


def test_unknown_senders_are_ignored():
    node = Election(1, frozenset({1, 2, 3}))
    node.look(0, 0, 0.0)
    node.outbox.clear()
    node.receive(Notification(9, LOOKING, 1, 9, 1 << 40, 99), 0.0)
    assert node.vote.leader == 1 and node.outbox == []


def test_constructor_rejects_a_node_outside_the_ensemble():
    with pytest.raises(ValueError):
        Election(4, frozenset({1, 2, 3}))


def test_partition_heals_and_everyone_agrees():
    net = Net([1, 2, 3, 4, 5])
    net.cut = {frozenset((1, 5)), frozenset((2, 5)), frozenset((3, 5)), frozenset((4, 5))}
    for sid in net.nodes:
        net.look(sid)
    net.run()
    assert net.states()[4] == (LEADING, 4)
    assert net.states()[5] == (LOOKING, 5)
    net.cut = set()
    net.look(5)
    net.run()
    assert net.states()[5] == (FOLLOWING, 4)


def test_a_leader_whose_following_failed_is_not_voted_for_while_suspected():
    # Node 3 can send but not receive (deaf): 1 and 2 hear its better vote, 3 hears nothing.
    net = Net([1, 2, 3])
    for sid in (1, 2):
        net.nodes[sid].look(5, 1, net.now, suspect=3, suspect_s=10.0)
    net.look(3, zxid=9, epoch=1)  # the newest history: without the suspicion, 1 and 2 would follow it
    deaf_inbox = net.nodes[3]
    original = deaf_inbox.receive
    deaf_inbox.receive = lambda n, now: None  # 3 hears nothing
    net.run()
    assert net.states()[1] == (FOLLOWING, 2) and net.states()[2] == (LEADING, 2)
    assert net.nodes[3].state == LOOKING
    deaf_inbox.receive = original
    net.nodes[3].broadcast()  # its election actor resends while looking
    net.run()  # 3 hears again: the settled 1 and 2 bring it in as a follower
    assert net.states()[3] == (FOLLOWING, 2)


def test_a_suspicion_runs_out_and_the_suspect_is_a_candidate_again():
    net = Net([1, 2, 3])
    net.down.add(2)  # 1 and 3 alone: no quorum without 3
    net.nodes[1].look(5, 1, net.now, suspect=3, suspect_s=1.0)
    net.look(3, zxid=9, epoch=1)
    net.run(rounds=10)  # 1 still refuses 3, 3 refuses 1's older history: nobody decides
    assert net.nodes[1].state == LOOKING and net.nodes[1].vote.leader == 1
    net.now = 1.5  # the suspicion ran out: at its next tick 1 votes for 3, and they decide
    net.nodes[1].tick(net.now)
    net.run()
    assert net.states() == {1: (FOLLOWING, 3), 3: (LEADING, 3)}


def test_a_suspicion_that_can_only_stall_is_lifted_once_the_others_stay_silent():
    # 2 is dead: 1 and the suspect 3 are the only live voters, so refusing 3 elects nobody.
    net = Net([1, 2, 3])
    net.down.add(2)
    net.nodes[1].look(5, 1, net.now, suspect=3, suspect_s=10.0)
    net.look(3, zxid=9, epoch=1)
    net.run(rounds=10)
    assert net.nodes[1].state == LOOKING and net.nodes[1].suspect == 3  # listening first (hear_s)
    for _ in range(40):  # the election actors resend every 0.2 s while looking
        for sid in (1, 3):
            if net.nodes[sid].state == LOOKING:
                net.nodes[sid].broadcast()
        net.run(rounds=4)
        if net.nodes[1].state != LOOKING:
            break
    assert net.now < 5.0, "lifted long before the suspicion ran out"
    assert net.states() == {1: (FOLLOWING, 3), 3: (LEADING, 3)}


def test_a_suspicion_stays_while_a_quorum_without_the_suspect_is_heard():
    node = Election(1, frozenset({1, 2, 3, 4, 5}), hear_s=1.0)
    node.look(5, 1, 0.0, suspect=3, suspect_s=10.0)
    now = 0.0
    for _ in range(15):  # 3 s: 2 and 4 keep voting for themselves, the suspect for itself
        now += 0.2
        for sid, zxid in ((2, 4), (4, 3), (3, 9)):
            node.receive(Notification(sid, LOOKING, 1, sid, zxid, 1), now)
        node.tick(now)
    assert node.suspect == 3 and node.vote.leader == 1  # 1, 2, 4 can still make a quorum without 3
    for _ in range(8):  # 2 and 4 fall silent: only 3 is heard
        now += 0.2
        node.receive(Notification(3, LOOKING, 1, 3, 9, 1), now)
        node.tick(now)
    assert node.suspect == NO_LEADER and node.vote.leader == 3 and node.lifted == 3  # before it ran out (10 s)


def test_stale_settled_votes_for_a_suspect_are_not_joined():
    net = Net([1, 2, 3])
    net.nodes[1].look(5, 1, net.now, suspect=3, suspect_s=10.0)
    for sid in (2, 3):  # 3 still says LEADING and 2 FOLLOWING it, from before 3's leadership ended
        net.nodes[sid].serve(LEADING if sid == 3 else FOLLOWING, 3, 5, 1, 1)
    net.nodes[1].broadcast()
    net.run()
    assert net.nodes[1].state == LOOKING


def test_every_voter_backing_the_vote_decides_without_the_finalize_wait():
    node = Election(1, frozenset({1, 2, 3}))
    node.look(0, 0, 0.0)
    node.receive(Notification(2, LOOKING, 1, 3, 0, 0), 0.0)  # 1 and 2 for 3: a quorum, 3 not heard yet
    assert node.state == LOOKING and node.decide_at == pytest.approx(0.2)
    node.receive(Notification(3, LOOKING, 1, 3, 0, 0), 0.01)  # all three: no better vote can come
    assert node.state == FOLLOWING and node.vote.leader == 3


def test_every_voter_but_the_suspect_backing_the_vote_decides_at_once():
    node = Election(1, frozenset({1, 2, 3, 4, 5}))
    node.look(0, 0, 0.0, suspect=5, suspect_s=10.0)
    node.receive(Notification(2, LOOKING, 1, 4, 0, 0), 0.0)
    node.receive(Notification(3, LOOKING, 1, 4, 0, 0), 0.0)
    assert node.state == LOOKING  # 1, 2, 3 for 4: a quorum, waiting for 4 (or a better vote)
    node.receive(Notification(4, LOOKING, 1, 4, 0, 0), 0.01)
    assert node.state == FOLLOWING and node.vote.leader == 4
