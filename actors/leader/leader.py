"""ZAB's leader, pure: discovery, synchronization of each learner, establishment, broadcast.

In:  `set_time(now, wall_ms)` before each batch; `log_ready(last_zxid, tree)` (the durable end of
     this node's log and the state it holds, at start; later a restarted log actor's end),
     `logged(zxid)` (this node's log is durable through zxid), `learner_info(to, info, observer)`
     (a new learner channel's FollowerInfo), `from_learner(to, msg)`, `learner_lost(to, why)`
     (its channel broke: gap, silence, closed), `write(req)`, `touch(sessions)`, `hello()` (the
     session actor asks where the committed stream stands), `tick()`.
Out: effects (actors/protocol/effects.py): Send(msg, to), Drop(to, why), Tell("log" | "session"),
     PersistEpoch, EndRole.

Reading the leader's own history to synchronize a learner (the txns of its diff window, or a
whole snapshot) is slow, and must not stall the broadcast to everyone else: the core asks for it
(PrepareSync effect), the shell reads it away from the loop (actors/leader/sync.py `prepare`) and
hands it back (`sync_ready`); meanwhile commits go on, and the txns committed during the read are
sent after it from the core's memory of recent commits (ZooKeeper's committedLog).

The leader's phases: starting (waiting for its log) -> discovery (a quorum of FollowerInfo) ->
sync (learners being brought to its history) -> broadcast (established: a quorum acknowledged
NEWLEADER). A standalone node (no learners) goes from starting straight to broadcast.

Each learner's handler is a transition table (`LEARNER_STEPS`): from its phase, which message
moves it where. Anything else from a learner is ignored (it is a stale or confused channel; its
silence or a gap will drop it).

Rules:
- The new epoch is above every acceptedEpoch a quorum reported and above this node's own
  accepted and current epochs and its log's last epoch (ZAB discovery).
- A learner with a newer history (currentEpoch, last zxid) than this leader, before it is
  established, ends this leadership (it should not have won).
- Established once a quorum of voters (the leader included) acknowledged NEWLEADER: currentEpoch
  is persisted first, then everything the leader logged is committed.
- A txn commits only when a quorum of voters, the leader's own durable log included, has it
  (proposer.py); commits go out strictly in zxid order, to the session actor (Committed), the
  followers (Commit) and the observers (Inform).
- An answer that is not a txn (a Marker: sync, check, an error, a replayed result) was decided on
  this leader's view alone; a leader already replaced (it has not noticed yet) could answer from a
  stale view. So a Marker is put in the commit order only once a quorum of voters answered a
  Probe sent after it was decided: at that moment no other leader can have a quorum, and `sync`
  followed by a read is linearizable (Raft's ReadIndex; ZooKeeper answers sync without it).
- Fewer than a quorum of voters alive ends the leadership (checked at each tick); a voter counts
  while its channel is synchronized, or for init_limit ticks after it (re)connected, so that a
  follower that restarts or reconnects does not cost the leadership (ZooKeeper's
  LearnerHandler.synced()). No quorum synchronized within init_limit ticks ends it too.
- A session belongs to its newest connection (ZooKeeper's session owner): OwnSession moves it; a
  write through another connection is answered SESSIONMOVED. After a leader change the owners
  are unknown and the first connection heard from owns each session (as ZooKeeper).
- Time is an input: `set_time(now, wall_ms)` before each batch. Session expiry runs on the
  monotonic `now` (a wall-clock step must not expire every session at once); txns are stamped
  with the wall clock `wall_ms` (ZooKeeper's ctime/mtime).
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Any

from actors.leader.prep import Prep, ReconfigGate
from actors.leader.proposer import Proposer
from actors.leader.sessions import SessionTracker
from actors.leader.sync import PreparedSync, plan_sync
from actors.protocol import majority
from actors.protocol import quorum as q
from actors.protocol.effects import Drop, PersistEpoch, PrepareSync, RoleCore, Send, Tell
from actors.protocol.internal import (
    Append,
    Committed,
    LeaderUp,
    LearnerStats,
    OpenSession,
    OwnSession,
    SyncPoint,
    Touch,
    WriteRequest,
    sent_in_another_epoch,
)
from actors.protocol.txn import OWNED_CXID, CloseSessionTxn, CreateSessionTxn, Marker, ReconfigTxn, Txn
from actors.protocol.zxid import epoch_of, fmt, follows
from runtime.config import Membership, ServerEntry
from zoomq.exceptions import Codes


class Phase(Enum):
    STARTING = "starting"
    DISCOVERY = "discovery"
    SYNC = "sync"
    BROADCAST = "broadcast"


class LearnerPhase(Enum):
    INFO = "info"  # FollowerInfo received
    EPOCH = "epoch"  # LeaderInfo sent
    PREPARING = "preparing"  # AckEpoch received; its synchronization being read from the history
    SYNCING = "syncing"  # DIFF / TRUNC / SNAP and NEWLEADER sent
    ACKED = "acked"  # AckNewLeader received
    ACTIVE = "active"  # UpToDate sent: in the broadcast


# (phase, message type) -> the handler's name; the only ways a learner moves.
LEARNER_STEPS: dict[tuple[LearnerPhase, type], str] = {
    (LearnerPhase.EPOCH, q.AckEpoch): "_on_ack_epoch",
    (LearnerPhase.SYNCING, q.AckNewLeader): "_on_ack_new_leader",
}
STREAMING = (LearnerPhase.SYNCING, LearnerPhase.ACKED, LearnerPhase.ACTIVE)
RECENT_COMMITS = 20_000  # committed txns kept to bridge a learner's synchronization read


@dataclass(slots=True)
class LearnerState:
    to: bytes  # the channel's identity
    sid: int
    observer: bool
    accepted_epoch: int
    last_zxid: int
    joined: float = 0.0  # when the channel was opened (monotonic)
    phase: LearnerPhase = LearnerPhase.INFO
    newleader_zxid: int = 0
    vouches: bool = True  # its AckEpoch was fresh: it may count towards establishing this epoch
    chose_epoch: bool = False  # among the quorum whose FollowerInfo chose the epoch


def _behind(acked: int, released: int) -> int:
    """How many txns a log that ends at `acked` lacks of one that ends at `released` (the epoch's
    counters; a log still in an earlier epoch lacks at least the current epoch's)."""
    if acked >= released:
        return 0
    return released & 0xFFFFFFFF if epoch_of(acked) != epoch_of(released) else released - acked


def _voters(servers: list[ServerEntry]) -> frozenset[int]:
    return frozenset(s.id for s in servers if s.voter)


class Leader(RoleCore, ReconfigGate):
    def __init__(
        self,
        *,
        sid: int,
        voters: frozenset[int],
        ensemble: bool,
        accepted_epoch: int,
        current_epoch: int,
        tick_ms: int,
        init_limit: int,
        container_check_ms: int,
        max_data_bytes: int,
        now: float,
        log: Any,
        sync_memory_txns: int = RECENT_COMMITS,
        servers: list[ServerEntry] | None = None,
        reconfig_enabled: bool = False,
        config_version: int = 0,
    ) -> None:
        self.sid = sid
        self.sync_memory_txns = min(sync_memory_txns, RECENT_COMMITS)  # 0: always read the log
        # The membership in force (committed), and while a newer one is not yet committed (in
        # this leader's log before it is established, or a reconfig outstanding) its voters:
        # then every quorum needs both (`_quorum`).
        self.config = Membership(list(servers or []), config_version)
        self.voters = _voters(self.config.servers) if servers else voters
        self.observers = {s.id for s in self.config.servers if not s.voter}
        self.joint: frozenset[int] | None = None
        self.enabled = reconfig_enabled
        self.ensemble = ensemble
        self.role = "leader" if ensemble else "standalone"
        self.accepted_epoch = accepted_epoch
        self.current_epoch = current_epoch
        self.init_s = init_limit * tick_ms / 1000.0
        self.reap_every_s = container_check_ms / 1000.0
        self.max_data_bytes = max_data_bytes
        self.log = log
        self.phase = Phase.STARTING
        self.epoch = 0
        self.last_logged = 0
        self.tree: Any = None
        self.prep: Prep | None = None
        self.proposer: Proposer | None = None
        self.tracker = SessionTracker(tick_ms=tick_ms)
        self.learners: dict[bytes, LearnerState] = {}
        self.now = now
        self.wall_ms = 0
        self.init_deadline = now + self.init_s
        self.next_reap = now + self.reap_every_s
        self.ended = False
        self.leaving_at: float | None = None  # established a non-voter: steps down once its session synced, or then
        self.to_append: list[Txn] = []
        self.probe_sent = 0  # the last Probe number sent
        self.probe_acked: dict[int, int] = {}  # voter sid -> the highest Probe number it answered
        self.held: deque[tuple[int, Marker]] = deque()  # (the probe that must be answered, marker)
        self.owners: dict[int, int] = {}  # session -> the connection that owns it
        self.recent: deque[Txn] = deque(maxlen=RECENT_COMMITS)  # the latest committed txns, in order
        self.released = 0  # the last txn's zxid whose commit went out (to learners and the session actor)
        self.proposed = self.committed = self.commit_rounds = 0  # counters for /metrics
        self._out: list[Any] = []

    def set_time(self, now: float, wall_ms: int) -> None:
        self.now = now
        self.wall_ms = wall_ms

    @property
    def _now_ms(self) -> int:
        return int(self.now * 1000)

    @property
    def ready(self) -> bool:
        return self.proposer is not None

    def _context(self) -> dict[str, Any]:
        return {"phase": self.phase.value}

    def _send(self, peer: LearnerState, msg: Any) -> None:
        self._out.append(Send(msg, peer.to))

    # --- time ---------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        if self.phase is Phase.STARTING:
            return None
        if not self.ready:
            return self.init_deadline if self.ensemble else None
        due = self.tracker.next_deadline_ms()
        deadline = self.next_reap if self.leaving_at is None else min(self.next_reap, self.leaving_at)
        return deadline if due is None else min(deadline, due / 1000.0)

    def tick(self) -> None:
        now = self.now
        if self.phase is Phase.STARTING or self.ended:
            return
        if not self.ready:
            if self.ensemble and now >= self.init_deadline:
                self._end("no quorum synchronized in time", learners=sorted(p.sid for p in self.learners.values()))
            return
        assert self.prep is not None
        if self.leaving_at is not None and now >= self.leaving_at:
            self._end("not a voter of the new configuration", version=fmt(self.config.version))
            return
        if not self._quorum(self._alive_sids()):
            self._end("lost the quorum", alive=sorted(self._alive_sids()))
            return
        expired = self.tracker.expired(self._now_ms)
        if expired:
            self.log.info("sessions_expired", sessions=[hex(s) for s in expired])
            for txn in self.prep.expire(expired, self.wall_ms):
                self._propose(txn)
        if now >= self.next_reap:
            self.next_reap = now + self.reap_every_s
            for txn in self.prep.reap(self.wall_ms):
                self._propose(txn)

    def stats(self) -> LearnerStats:
        learners = list(self.learners.values())
        synced = [p for p in learners if p.phase in (LearnerPhase.ACKED, LearnerPhase.ACTIVE)]
        acked = self.proposer.acked if self.proposer is not None else {}
        released = self.released
        return LearnerStats(
            learners=len(learners),
            synced_followers=sum(1 for p in synced if not p.observer),
            synced_observers=sum(1 for p in synced if p.observer),
            pending_syncs=sum(1 for p in learners if p.phase in (LearnerPhase.PREPARING, LearnerPhase.SYNCING)),
            proposed=self.proposed,
            committed=self.committed,
            commit_rounds=self.commit_rounds,
            lag={p.sid: _behind(acked.get(p.sid, 0), released) for p in synced if not p.observer},
        )

    # --- this node's log ----------------------------------------------------------------------

    def log_ready(self, last_zxid: int, tree: Any, tail: deque[Txn] | list[Txn] | None = None) -> None:
        """`tail`: the last txns of this node's log through last_zxid, in order, if the shell read
        them loading the state: learners whose log ends within them are synchronized from memory."""
        if self.phase is not Phase.STARTING:
            self._log_restarted(last_zxid)
            return
        self.last_logged = last_zxid
        self.tree = tree
        newer = tree.membership
        if newer is not None and newer.version > self.config.version:
            # A reconfig in this node's log that this node has not seen commit: committed when this
            # leader is established (with everything else it logged), so that takes both quorums.
            self.joint = _voters(newer.servers)
            self.log.info("reconfig_in_log", version=fmt(newer.version), voters=sorted(self.joint))
        if tail and tail[-1].zxid == last_zxid:
            self.recent.extend(tail)
        if not self.ensemble:
            self._set_epoch(max(self.accepted_epoch, self.current_epoch, epoch_of(last_zxid)) + 1)
            self._establish()
            return
        self.phase = Phase.DISCOVERY
        self.init_deadline = self.now + self.init_s
        self.log.info("discovery", zxid=fmt(last_zxid), znodes=tree.node_count())
        self._try_new_epoch()

    def _log_restarted(self, last_zxid: int) -> None:
        if self.proposer is None:
            if last_zxid != self.last_logged:
                self._end("the log changed under a leader being established")
            return
        # What the restarted log holds is durable (its Logged may have died with it); the rest goes again.
        self.proposer.logged(self.sid, last_zxid)
        missing = self.proposer.resend_after(last_zxid)
        self.log.info("log_restarted", last_zxid=fmt(last_zxid), resend=len(missing))
        if missing:
            self._out.append(Tell("log", Append(txns=missing)))

    def logged(self, zxid: int) -> None:
        if self.phase is Phase.STARTING:
            # A previous role actor's append, durable before the log's end was asked for: the
            # log answers in order, so LogReady (still to come) counts it.
            return
        mine = self.proposer.last_proposed_zxid if self.proposer is not None else self.last_logged
        if zxid > mine:
            # Txns this leader never proposed reached its log (a previous role actor's appends):
            # its history is not what it synchronized the learners to.
            self._end("the log holds txns this leader did not write", logged=fmt(zxid), proposed=fmt(mine))
            return
        if self.proposer is not None:
            self.proposer.logged(self.sid, zxid)

    # --- learners -----------------------------------------------------------------------------

    def learner_info(self, to: bytes, info: q.FollowerInfo, observer: bool | None = None) -> None:
        """A learner's new channel (its first message). An older channel of the same server goes.
        A server not in the membership (about to be added by a reconfig) learns as what it says it
        is: a follower's acks then count toward the new voters' quorum of the reconfig."""
        if observer is None:
            observer = info.sid in self.observers or (info.observer and not self._member(info.sid))
        for old in [p for p in self.learners.values() if p.sid == info.sid]:
            self._drop(old, "reconnected")
        peer = LearnerState(to, info.sid, observer, info.accepted_epoch, info.last_zxid, joined=self.now)
        self.learners[to] = peer
        self.log.info(
            "learner_connected",
            sid=info.sid,
            observer=observer,
            last_zxid=fmt(info.last_zxid),
            accepted_epoch=info.accepted_epoch,
        )
        if self.phase is Phase.DISCOVERY:
            self._try_new_epoch()
        elif self.phase in (Phase.SYNC, Phase.BROADCAST):
            # A learner that already accepted this very epoch (it restarted, or its channel broke)
            # simply joins again; only a newer one means another leader got further.
            if peer.accepted_epoch > self.epoch:
                self._end("a learner has accepted a newer epoch", sid=peer.sid, epoch=peer.accepted_epoch)
                return
            self._send_epoch(peer)

    def learner_lost(self, to: bytes, why: str) -> None:
        peer = self.learners.pop(to, None)
        if peer is None:
            return
        self.log.warning("learner_dropped", sid=peer.sid, why=why, phase=peer.phase.value)

    def _drop(self, peer: LearnerState, why: str) -> None:
        self._out.append(Drop(peer.to, why))
        self.learner_lost(peer.to, why)

    # --- membership -----------------------------------------------------------------------------

    def _member(self, sid: int) -> bool:
        return sid in self.voters or sid in self.observers

    def _quorum(self, sids: set[int]) -> bool:
        """A quorum of the voters, and of the next voters while a reconfig is not committed."""
        return majority.reached(sids, self.voters) and (self.joint is None or majority.reached(sids, self.joint))

    def active(self) -> Membership:
        return self.config

    def synced_quorum(self, servers: list[ServerEntry]) -> bool:
        synced = {
            p.sid
            for p in self.learners.values()
            if not p.observer and p.phase in (LearnerPhase.ACKED, LearnerPhase.ACTIVE)
        } | {self.sid}
        if majority.reached(synced, _voters(servers)):
            return True
        self.log.info("reconfig_without_quorum", synced=sorted(synced), voters=sorted(_voters(servers)))
        return False

    def _activate(self, config: Membership) -> None:
        """A reconfig committed: its membership is in force. Learners it removed go; one whose
        role it changed goes too (it comes back as its new role); a leader it made a non-voter
        steps down, and the new voters elect among themselves."""
        old_members = {s.id for s in self.config.servers}
        self.config = config
        self.voters = _voters(config.servers)
        self.observers = {s.id for s in config.servers if not s.voter}
        self.joint = None
        self.log.info(
            "reconfigured", version=fmt(config.version), voters=sorted(self.voters), observers=sorted(self.observers)
        )
        for peer in list(self.learners.values()):
            if not self._member(peer.sid):
                if peer.sid in old_members:
                    self._drop(peer, "removed by a reconfig")
            elif peer.observer != (peer.sid in self.observers):
                self._drop(peer, "its role changed by a reconfig")
        if self.sid not in self.voters and self.ready:
            self._end("not a voter of the new configuration", version=fmt(config.version))

    def _alive_sids(self) -> set[int]:
        """The voters that count as alive: synchronized, or still within init_limit of joining."""
        grace = self.now - self.init_s
        return {
            p.sid
            for p in self.learners.values()
            if not p.observer and (p.phase in (LearnerPhase.ACKED, LearnerPhase.ACTIVE) or p.joined >= grace)
        } | {self.sid}

    def from_learner(self, to: bytes, msg: Any) -> None:
        peer = self.learners.get(to)
        if peer is None or self.ended:
            return
        if isinstance(msg, q.Ack):
            if self.proposer is not None and not peer.observer and peer.phase in STREAMING:
                self.proposer.logged(peer.sid, msg.zxid)
        elif isinstance(msg, q.ProbeAck):
            if (
                not peer.observer
                and peer.phase in (LearnerPhase.ACKED, LearnerPhase.ACTIVE)
                and msg.n <= self.probe_sent
            ):
                self.probe_acked[peer.sid] = max(self.probe_acked.get(peer.sid, 0), msg.n)
                self._release_probed()
        elif isinstance(msg, WriteRequest):
            self.write(msg)
        elif isinstance(msg, Touch):
            self.touch(msg.sessions)
        elif isinstance(msg, OwnSession):
            self.own(msg)
        else:
            handler = LEARNER_STEPS.get((peer.phase, type(msg)))
            if handler is not None:
                getattr(self, handler)(peer, msg)

    def _try_new_epoch(self) -> None:
        """Discovery: with a quorum of voters' FollowerInfo, an epoch above every accepted one."""
        voters_in = {p.sid for p in self.learners.values() if not p.observer} | {self.sid}
        if not self._quorum(voters_in):
            return
        newest = max(
            [self.accepted_epoch, self.current_epoch, epoch_of(self.last_logged)]
            + [p.accepted_epoch for p in self.learners.values()]
        )
        self._set_epoch(newest + 1)
        for peer in self.learners.values():
            peer.chose_epoch = True
        self.phase = Phase.SYNC
        self.log.info("new_epoch", epoch=self.epoch, learners=sorted(voters_in))
        for peer in self.learners.values():
            self._send_epoch(peer)

    def _set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.accepted_epoch = epoch
        self._out.append(PersistEpoch("acceptedEpoch", epoch))
        self.prep = Prep(self.tree, epoch=epoch, max_data_bytes=self.max_data_bytes, log=self.log)
        self.prep.gate = self

    def _send_epoch(self, peer: LearnerState) -> None:
        if peer.phase is LearnerPhase.INFO:
            peer.phase = LearnerPhase.EPOCH
            self._send(peer, q.LeaderInfo(self.epoch))

    def _on_ack_epoch(self, peer: LearnerState, msg: q.AckEpoch) -> None:
        # A learner of the quorum that chose the epoch must not be ahead of this leader (the election
        # should have picked it: as ZooKeeper, give up). One that joins later and is ahead holds only
        # what no quorum logged (that quorum intersects every quorum that did): it is truncated.
        peer.vouches = msg.fresh
        ahead = (msg.current_epoch, msg.last_zxid) > (self.current_epoch, self.last_logged)
        if not self.ready and msg.fresh and peer.chose_epoch and ahead:
            self._end("a learner has a newer history than this leader", sid=peer.sid, zxid=fmt(msg.last_zxid))
            return
        peer.last_zxid = msg.last_zxid
        self._synchronize(peer)

    def _sync_point(self) -> int:
        """Where a synchronization ends: the last commit sent out. Not the proposer's commit
        point, which acks earlier in this batch may have moved past it: the txns between would
        reach the learner neither in its DIFF (not released yet) nor as proposals (no longer
        outstanding), and it would wait for them forever."""
        return self.last_logged if self.proposer is None else self.released

    def _synchronize(self, peer: LearnerState) -> None:
        """From memory when the latest txns cover the learner's end; else ask for it to be read
        (off the loop): PrepareSync."""
        peer.phase = LearnerPhase.PREPARING
        upto = self._sync_point()
        prepared = self._from_memory(peer.last_zxid, upto)
        if prepared is not None:
            self.sync_ready(peer.to, prepared)
        else:
            self._out.append(PrepareSync(peer.to, peer.last_zxid, upto))

    def _from_memory(self, learner_last: int, upto: int) -> PreparedSync | None:
        """The synchronization to `upto` out of `recent`, if it reaches from the learner's end
        (or the first txn kept) through `upto`: a reconnecting learner is seldom further behind,
        and reading the log from the last snapshot on took seconds with a long log."""
        recent = self.recent
        kept = min(len(recent), self.sync_memory_txns)
        if not kept or learner_last < recent[-kept].zxid or recent[-1].zxid < upto:
            return None
        txns = [t for t in itertools.islice(recent, len(recent) - kept, None) if t.zxid <= upto]
        plan = plan_sync(learner_last, txns[0].zxid, [t.zxid for t in txns[1:]], upto)
        if plan.kind == "snap":
            return None
        return PreparedSync(upto, plan, [t for t in txns if t.zxid > plan.common])

    def sync_ready(self, to: bytes, prepared: PreparedSync) -> None:
        """DIFF / TRUNC / SNAP up to what was read, the txns committed since from memory, then
        NEWLEADER: from here on the learner is in the stream."""
        peer = self.learners.get(to)
        if peer is None or peer.phase is not LearnerPhase.PREPARING or self.ended:
            return
        sync_to = self._sync_point()
        since = [t for t in self.recent if t.zxid > prepared.upto] if sync_to > prepared.upto else []
        if sync_to > prepared.upto and (not since or not follows(prepared.upto, since[0].zxid)):
            self._out.append(PrepareSync(to, peer.last_zxid, sync_to))  # too far behind memory: read again
            return
        plan = prepared.plan
        if plan.kind == "snap":
            assert prepared.snapshot is not None
            self._send(peer, q.Snap(prepared.snapshot_zxid, prepared.snapshot))
        elif plan.kind == "trunc":
            self._send(peer, q.Trunc(plan.common))
        txns = [*prepared.txns, *since]
        if txns:
            self._send(peer, q.Diff(txns))
        self._send(peer, q.NewLeader(self.epoch, sync_to))
        peer.phase = LearnerPhase.SYNCING
        peer.newleader_zxid = sync_to
        if self.proposer is not None and not peer.observer:
            outstanding = self.proposer.resend_after(sync_to)
            if outstanding:
                self._send(peer, q.Proposal(outstanding))
        self.log.info(
            "learner_sync", sid=peer.sid, kind=plan.kind, common=fmt(plan.common), to=fmt(sync_to), txns=len(txns)
        )

    def _on_ack_new_leader(self, peer: LearnerState, msg: q.AckNewLeader) -> None:
        if msg.zxid != peer.newleader_zxid:
            return
        peer.phase = LearnerPhase.ACKED
        if self.ready:
            assert self.proposer is not None
            if not peer.observer:
                self.proposer.logged(peer.sid, msg.zxid)
            self._up_to_date(peer)
            return
        acked = {
            p.sid for p in self.learners.values() if p.phase is LearnerPhase.ACKED and not p.observer and p.vouches
        } | {self.sid}
        if self._quorum(acked):
            self._establish()

    def _establish(self) -> None:
        """A quorum holds this leader's history: it is committed; serve."""
        assert self.prep is not None
        self.current_epoch = self.epoch
        self._out.append(PersistEpoch("currentEpoch", self.epoch))
        last = self.last_logged
        newer = self.prep.tree.membership
        if newer is not None and newer.version > self.config.version:
            self._activate(newer)
        if self.sid not in self.voters:
            # Its own log made it a non-voter: committed now, with both quorums. It serves until
            # its session actor has read that (one sync point; its supervisor then learns the
            # membership and its election stops picking it), then steps down.
            self.leaving_at = self.now + self.init_s
        self.proposer = Proposer(me=self.sid, voters=self.voters, committed_zxid=last)
        self.released = last
        for peer in self.learners.values():
            if not peer.observer and peer.phase in (LearnerPhase.ACKED, LearnerPhase.ACTIVE):
                self.proposer.logged(peer.sid, peer.newleader_zxid)
        tree = self.prep.tree
        for session_id, info in tree.sessions.items():  # every session's timer starts anew (as ZooKeeper)
            self.tracker.add(session_id, info.timeout_ms, self._now_ms)
        self.phase = Phase.BROADCAST
        self.log.info(
            "leading",
            epoch=self.epoch,
            zxid=fmt(last),
            znodes=tree.node_count(),
            sessions=len(tree.sessions),
            learners=sorted(p.sid for p in self.learners.values() if p.phase is LearnerPhase.ACKED),
        )
        self._out.append(Tell("session", LeaderUp(epoch=self.epoch, role=self.role)))
        for peer in self.learners.values():
            if peer.phase is LearnerPhase.ACKED:
                self._up_to_date(peer)

    def _up_to_date(self, peer: LearnerState) -> None:
        peer.phase = LearnerPhase.ACTIVE
        self._send(peer, q.UpToDate())
        self.log.info("learner_up_to_date", sid=peer.sid, observer=peer.observer)

    # --- clients' requests --------------------------------------------------------------------

    def hello(self) -> None:
        if self.proposer is not None:
            self._out.append(Tell("session", SyncPoint(zxid=self.released, epoch=self.epoch, role=self.role)))
            if self.leaving_at is not None:
                self._end("not a voter of the new configuration", version=fmt(self.config.version))

    def touch(self, sessions: list[int]) -> None:
        now_ms = self._now_ms
        for session_id in sessions:
            self.tracker.touch(session_id, now_ms)

    def own(self, msg: OwnSession) -> None:
        """The session now belongs to connection `msg.conn`; the resume is answered (a Marker in
        the commit order) once this is decided, so that a client whose resume completed knows
        its older connection's next write is refused (as ZooKeeper revalidates with the leader)."""
        if self.prep is None or not self.ready:
            return  # the session actor fails the resume when this leader announces itself
        if sent_in_another_epoch(msg, self.epoch):
            self.log.info("stale_request_dropped", session=hex(msg.session_id), epoch=msg.epoch)
        elif msg.conn:
            self.owners[msg.session_id] = msg.conn
            self._propose(Marker(msg.session_id, OWNED_CXID, Codes.OK, conn=msg.conn))

    def write(self, req: WriteRequest) -> None:
        if self.prep is None or not self.ready:
            return  # the session actor fails it when this leader announces itself
        if sent_in_another_epoch(req, self.epoch):
            self.log.info("stale_request_dropped", session=hex(req.session_id), epoch=req.epoch)
            return
        if req.conn:
            owner = self.owners.setdefault(req.session_id, req.conn)
            if owner != req.conn and not isinstance(req.op, OpenSession):
                self._propose(Marker(req.session_id, req.cxid, Codes.SESSIONMOVED, conn=req.conn))
                return
        self._propose(self.prep.step(req, self.wall_ms))

    def _propose(self, entry: Any) -> None:
        assert self.proposer is not None
        if isinstance(entry, Marker) and len(self.voters) > 1:
            self.held.append((self.probe_sent + 1, entry))  # answered after the next probe's quorum
            return
        self.proposer.propose(entry)
        if isinstance(entry, Txn):
            self.proposed += 1
            self.to_append.append(entry)
            op = entry.op
            if isinstance(op, ReconfigTxn):
                self.joint = _voters(op.servers)
                self.proposer.reconfig(entry.zxid, self.joint)
                self.log.info("reconfig_proposed", zxid=fmt(entry.zxid), servers=[s.spec() for s in op.servers])
            elif isinstance(op, CreateSessionTxn):
                self.tracker.add(entry.session_id, op.timeout_ms, self._now_ms)
            elif isinstance(op, CloseSessionTxn):
                self.tracker.remove(entry.session_id)
                self.owners.pop(entry.session_id, None)

    def _release_probed(self) -> None:
        """Markers whose probe a quorum of voters (this leader included) has answered."""
        assert self.proposer is not None
        answered = {**self.probe_acked, self.sid: self.probe_sent}
        point = majority.committed_point(answered, self.voters)
        if self.joint is not None:
            point = min(point, majority.committed_point(answered, self.joint))
        held = self.held
        while held and held[0][0] <= point:
            self.proposer.propose(held.popleft()[1])

    def _flush(self) -> None:
        """The batch's proposals, probes and commits."""
        if self.held and self.held[-1][0] > self.probe_sent:
            self.probe_sent += 1
            probe = q.Probe(self.probe_sent)
            for peer in self.learners.values():
                if not peer.observer and peer.phase in (LearnerPhase.ACKED, LearnerPhase.ACTIVE):
                    self._send(peer, probe)
        streaming = [p for p in self.learners.values() if p.phase in STREAMING]
        if self.to_append:
            self._out.append(Tell("log", Append(txns=self.to_append)))
            proposal = q.Proposal(self.to_append)
            for peer in streaming:
                if not peer.observer:
                    self._send(peer, proposal)
            self.to_append = []
        if self.proposer is None:
            return
        done = self.proposer.take_committed()
        if not done:
            return
        self.committed += len(done)
        self.commit_rounds += 1
        txns = [e for e in done if isinstance(e, Txn)]
        if txns:
            self.recent.extend(txns)
            self.released = txns[-1].zxid
        self._out.append(Tell("session", Committed(entries=done)))
        commit = inform = None
        for peer in streaming:
            if peer.observer:
                inform = inform or q.Inform(done)
                self._send(peer, inform)
            else:
                commit = commit or q.Commit([e.zxid if isinstance(e, Txn) else e for e in done])
                self._send(peer, commit)
        for txn in txns:
            if isinstance(txn.op, ReconfigTxn):
                self._activate(Membership(list(txn.op.servers), txn.zxid))
