"""Fast leader election, the vote logic alone (no sockets, no clock: `now` is an input).

In:  `look(zxid, epoch, now)` to start a round with this node's history end, `receive(n, now)`
     for each peer notification, `tick(now)` when the finalize deadline may have passed,
     `serve(state, leader, ...)` when told the node already serves in a known role.
Out: messages in `outbox` as (dest sid, Notification), dest None meaning every peer; `decided`
     (the Notification describing the outcome) once a round ends.

Rules, as ZooKeeper's FastLeaderElection:
- A vote is for (epoch, zxid, sid); the greater tuple wins, so the node with the newest history
  is elected and ties go to the higher server id.
- Rounds (`round`, ZooKeeper's logical clock): a notification from a newer round resets what was
  received and re-votes; one from an older round is answered with our vote so its sender catches up.
  Beyond ZooKeeper, a vote of this round worse than ours is answered too: its sender has not seen
  ours (it was still following when we broadcast it), and would wait for our resend otherwise.
- A LOOKING participant that sees a quorum of participants (itself included) vote for its
  current vote waits `finalize_s` for a better vote before deciding; beyond ZooKeeper, it decides
  at once when every participant (but a suspect, below) votes for it: none can have a better one.
- Notifications from nodes already FOLLOWING/LEADING tell of a running ensemble: a looking node
  joins that leader once a quorum reports it and the leader itself says LEADING. Reported as the
  leader itself, a node takes it only for this round's own candidacy (not its previous life's).
- Observers never count as votes and never vote for themselves; they only learn the leader.
- A node that is not looking answers every looking node with its settled vote.
- Beyond ZooKeeper: `look(..., suspect=X, suspect_s=T)` after following X ended (X went silent, or
  its sync failed) keeps this node from voting for X for T seconds. A leader that can send but not
  receive (deaf) still wins every election on its better history, and the others follow it into
  the same silence, round after round: without it, they elect one of themselves. Safety does not
  depend on whom a node votes for (the new leader's discovery takes the newest history of a
  quorum); once T passes, X is a candidate again, so no quorum is kept from forming for long.
  Nor does it join X on settled votes meanwhile: a leader that just gave up still reports LEADING
  for a moment, and its ex-followers' FOLLOWING votes with it; joining them again made a loop.
  The suspicion is lifted early when it can only stall: after `hear_s` of looking, if the voters
  heard from within the last `hear_s` (this node included) are no quorum without X, no leader
  but X can be elected now (with one of three voters dead, the only other live one is X).
"""

from __future__ import annotations

from actors.protocol import majority
from actors.protocol.quorum import FOLLOWING, LEADING, LOOKING, OBSERVING, Notification
from runtime.config import Membership, SpecError, membership_from_text

NO_LEADER = -1
IDLE = "idle"  # before the first look(): notifications are ignored (their senders resend)


def better(a: Notification, b: Notification) -> bool:
    """True if a's candidate beats b's: newer epoch, then newer zxid, then higher sid."""
    return (a.epoch, a.zxid, a.leader) > (b.epoch, b.zxid, b.leader)


class Election:
    def __init__(
        self,
        me: int,
        voters: frozenset[int],
        observers: frozenset[int] = frozenset(),
        *,
        finalize_s: float = 0.2,
        hear_s: float | None = None,
        config_version: int = 0,
        config: bytes = b"",
    ) -> None:
        if me not in voters and me not in observers:
            raise ValueError(f"server {me} is in neither the voters nor the observers")
        self.me = me
        self.voters = voters
        self.observers = observers
        self.finalize_s = finalize_s
        self.hear_s = 5 * finalize_s if hear_s is None else hear_s  # silent this long: taken as gone
        self.state = IDLE
        self.round = 0
        self.own: Notification | None = None  # this node's own candidacy (participants)
        self.vote: Notification = self._make(NO_LEADER, 0, 0)
        self.received: dict[int, Notification] = {}  # this round's votes of LOOKING participants
        self.settled: dict[int, Notification] = {}  # votes of nodes already following/leading
        self.decide_at: float | None = None
        self.decided: Notification | None = None
        self.outbox: list[tuple[int | None, Notification]] = []
        self.suspect: int = NO_LEADER  # a candidate this node does not vote for ...
        self.suspect_until = 0.0  # ... until then (or until it can only stall, see tick)
        self.heard: dict[int, float] = {}  # when each voter's last notification came
        self.lifted: int = NO_LEADER  # a suspicion lifted before it ran out, for the shell to log
        self.looked_at = 0.0
        self.config_version = config_version  # the membership in force (see set_members)
        self.config = config
        self.adopted: Membership | None = None  # a newer membership taken from a peer, for the shell

    @property
    def participant(self) -> bool:
        return self.me in self.voters

    def _make(self, leader: int, zxid: int, epoch: int) -> Notification:
        return Notification(self.me, self.state, self.round, leader, zxid, epoch)

    def _current(self) -> Notification:
        return Notification(
            self.me,
            self.state,
            self.round,
            self.vote.leader,
            self.vote.zxid,
            self.vote.epoch,
            self.config_version,
            self.config,
        )

    # --- inputs ---------------------------------------------------------------------------------

    def look(self, zxid: int, epoch: int, now: float, suspect: int = NO_LEADER, suspect_s: float = 0.0) -> None:
        """Start a new round with this node's history ending at (epoch, zxid); `suspect`: the
        leader whose following just failed, not voted for during `suspect_s`."""
        if suspect != NO_LEADER and suspect != self.me:
            self.suspect, self.suspect_until = suspect, now + suspect_s
        self.state = LOOKING
        self.looked_at = now
        self.round += 1
        self.received.clear()
        self.settled.clear()
        self.decided = None
        self.decide_at = None
        if self.participant:
            self.own = self._make(self.me, zxid, epoch)
            self.vote = self.own
            self.received[self.me] = self.vote
        else:
            self.own = None
            self.vote = self._make(NO_LEADER, zxid, epoch)
        self.broadcast()
        if self.participant:
            self._count(now)  # the only voter (a reconfig may leave one, with observers) decides alone

    def serve(self, state: str, leader: int, zxid: int, epoch: int, round_: int) -> None:
        """The node serves in `state` under `leader` (e.g. after this actor restarted)."""
        self.state = state
        self.round = max(self.round, round_)
        self.vote = Notification(self.me, state, self.round, leader, zxid, epoch)
        self.decide_at = None

    def set_members(
        self, voters: frozenset[int], observers: frozenset[int], version: int = 0, config: bytes = b"", now: float = 0.0
    ) -> None:
        """A reconfig committed: the voters and observers from now on (this node among them),
        and the membership's version and text, which this node's notifications carry.
        Votes of servers no longer voting are forgotten; a round under way goes on."""
        if self.me not in voters and self.me not in observers:
            raise ValueError(f"server {self.me} is in neither the voters nor the observers")
        self.voters, self.observers = voters, observers
        if version > self.config_version:
            self.config_version, self.config = version, config
        for votes in (self.received, self.settled):
            for sid in [s for s in votes if s not in voters and s not in observers]:
                del votes[sid]
        if self.state == LOOKING and not self.participant:
            self.own = None
            self.received.pop(self.me, None)
        elif self.state == LOOKING and self.own is None:  # an observer made a participant mid-round: a candidate
            self.own = self._make(self.me, self.vote.zxid, self.vote.epoch)
            self.vote = self.own
            self.received[self.me] = self.vote
        if self.state == LOOKING and self.participant:
            self._count(now)  # fewer voters may make the votes already in a quorum

    def broadcast(self) -> None:
        self.outbox.append((None, self._current()))

    def receive(self, n: Notification, now: float) -> None:
        if n.sid == self.me:
            return
        if n.config_version > self.config_version and n.config:
            self._adopt(n.config_version, n.config, now)
        if self.state == IDLE:
            return
        if n.sid in self.voters:
            self.heard[n.sid] = now
        if n.sid not in self.voters and n.sid not in self.observers:
            # A server about to join by a reconfig: it learns where the leader is (it follows
            # as a non-voting learner until the reconfig commits), its vote never counts.
            if self.state != LOOKING and n.state == LOOKING:
                self.outbox.append((n.sid, self._current()))
            return
        if self.state != LOOKING:
            if n.state == LOOKING:
                self.outbox.append((n.sid, self._current()))
            return
        if n.state == LOOKING:
            self._from_looking(n, now)
        else:
            self._from_settled(n)

    def _adopt(self, version: int, config: bytes, now: float) -> None:
        """A peer has a newer membership in force (a reconfig committed while this node was
        away): take it, and tell the shell (`adopted`: the supervisor keeps it). A node it leaves
        out keeps its own place, as a non-voting learner would."""
        try:
            membership = membership_from_text(config)
        except SpecError:
            return
        voters = {s.id for s in membership.servers if s.voter}
        observers = {s.id for s in membership.servers if not s.voter}
        if self.me not in voters | observers:
            (voters if self.participant else observers).add(self.me)
        self.set_members(frozenset(voters), frozenset(observers), version, config, now)
        self.adopted = membership

    def tick(self, now: float) -> None:
        """Decide if the finalize wait ended with no better vote; end a suspicion that ran out,
        or that can only stall the election."""
        if self.suspect != NO_LEADER and (now >= self.suspect_until or self._suspicion_stalls(now)):
            if now < self.suspect_until:
                self.lifted = self.suspect
            self.suspect = NO_LEADER
            if self.state == LOOKING and self.participant:
                self._reconsider(now)
        if self.state == LOOKING and self.decide_at is not None and now >= self.decide_at:
            self._decide(self.vote, self.round)

    def _suspicion_stalls(self, now: float) -> bool:
        """Looking for `hear_s` already, and the voters heard from meanwhile make no quorum
        without the suspect: refusing it keeps any leader from being elected."""
        if self.state != LOOKING or not self.participant or now < self.looked_at + self.hear_s:
            return False
        live = {sid for sid, at in self.heard.items() if sid in self.voters and now - at <= self.hear_s}
        return not majority.reached((live | {self.me}) - {self.suspect}, self.voters)

    def _eligible(self, n: Notification) -> bool:
        return n.leader != NO_LEADER and n.leader != self.suspect

    def _reconsider(self, now: float) -> None:
        """The suspect is a candidate again: take the best vote of this round."""
        best = max(
            (n for n in self.received.values() if n.round == self.round and n.state == LOOKING and self._eligible(n)),
            key=lambda n: (n.epoch, n.zxid, n.leader),
            default=None,
        )
        if best is not None and better(best, self.vote):
            self.vote = Notification(self.me, LOOKING, self.round, best.leader, best.zxid, best.epoch)
            self.received[self.me] = self.vote
            self.decide_at = None
            self.broadcast()
            self._count(now)

    # --- the rules --------------------------------------------------------------------------------

    def _from_looking(self, n: Notification, now: float) -> None:
        if n.sid not in self.voters:
            self.outbox.append((n.sid, self._current()))  # an observer asks: tell it our vote
            return
        if not self.participant:
            return  # an observer only learns the leader from settled nodes
        if n.round > self.round:
            self.round = n.round
            self.received.clear()
            assert self.own is not None
            best = n if self._eligible(n) and better(n, self.own) else self.own
            self.vote = Notification(self.me, LOOKING, self.round, best.leader, best.zxid, best.epoch)
            self.decide_at = None
            self.broadcast()
        elif n.round < self.round:
            self.outbox.append((n.sid, self._current()))
            return
        elif self._eligible(n) and better(n, self.vote):
            self.vote = Notification(self.me, LOOKING, self.round, n.leader, n.zxid, n.epoch)
            self.decide_at = None
            self.broadcast()
        elif better(self.vote, n):
            # Its vote is worse than ours: it has not seen ours (sent while it still followed, and
            # answered then with its settled vote). Tell it now rather than at its next resend.
            self.outbox.append((n.sid, self._current()))
        self.received[n.sid] = n
        self.received[self.me] = self.vote
        self._count(now)

    def _count(self, now: float) -> None:
        """A quorum for our vote: wait `finalize_s` for a better one, unless every voter but the
        suspect already backs it (each votes for the best it has seen, its own history included,
        so no better vote can come but the suspect's, which is not taken)."""
        agree = self._agree(self.received.values(), self.vote)
        if not majority.reached(agree, self.voters):
            self.decide_at = None
        elif agree >= self.voters - {self.suspect}:
            self._decide(self.vote, self.round)
        elif self.decide_at is None:
            self.decide_at = now + self.finalize_s

    def _from_settled(self, n: Notification) -> None:
        if n.sid in self.voters:
            self.settled[n.sid] = n
            if n.round == self.round:
                self.received[n.sid] = n
        if n.leader == self.suspect:
            return  # its election actor may still say LEADING after its role ended: not joined blindly
        if n.leader == self.me:
            # Settled votes for this node back a leadership of an earlier incarnation of it (it
            # restarted, or its leadership ended) unless they are for this round's own candidacy:
            # ZooKeeper's checkLeader compares the rounds; the history is compared too, since a
            # restarted node's round counts again from 1. Taken, it would lead nobody until
            # init_limit ran out, while its ex-followers elected another leader.
            own = self.own
            leader_ok = own is not None and n.round == self.round and (n.epoch, n.zxid) == (own.epoch, own.zxid)
        else:
            leader_ok = n.leader in self.settled and self.settled[n.leader].state == LEADING
        if not leader_ok:
            return
        # A leader that says so, backed by a majority of the other voters (this node's own vote
        # is not asked for: a node joining by a reconfig, counting itself among four voters of
        # which one is dead, must still find the leader two live members follow).
        if majority.reached(self._agree(self.settled.values(), n), self.voters - {self.me}) or (
            n.round == self.round and majority.reached(self._agree(self.received.values(), n), self.voters)
        ):
            self.round = max(self.round, n.round)
            self._decide(n, self.round)

    def _agree(self, votes: object, target: Notification) -> set[int]:
        """Who among `votes` backs `target` (the same candidate and history while looking; the
        same leader once settled)."""
        if target.state == LOOKING:
            return {
                v.sid
                for v in votes  # type: ignore[attr-defined]
                if v.leader == target.leader and v.epoch == target.epoch and v.zxid == target.zxid
            }
        return {v.sid for v in votes if v.leader == target.leader}  # type: ignore[attr-defined]

    def _decide(self, vote: Notification, round_: int) -> None:
        if vote.leader == self.me:
            state = LEADING
        elif self.participant:
            state = FOLLOWING
        else:
            state = OBSERVING
        self.state = state
        self.round = round_
        self.vote = Notification(self.me, state, round_, vote.leader, vote.zxid, vote.epoch)
        self.decide_at = None
        self.decided = self.vote
