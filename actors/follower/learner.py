"""ZAB's learner, pure: a follower (voting) or an observer (not voting), as one core.

In:  `log_ready(last_zxid)` (the log actor's durable end, at start and after a truncation or a
     snapshot install), `logged(zxid)` (everything through zxid is durable here),
     `from_leader(msg)` (a message off the channel, in order), `channel_broken(why)`,
     `local(msg)` (the session actor's WriteRequest / Touch / Hello), `tick(now)` (log Hello retries).
Out: effects (actors/protocol/effects.py): Send to the leader, Tell the log / session actors,
     PersistEpoch, InstallSnapshot, EndRole.

Phases, and what each accepts from the leader (anything else ends the role):

| phase      | leader's messages                           | moves on when                          |
|------------|---------------------------------------------|----------------------------------------|
| starting   | -                                           | log_ready: FollowerInfo -> connecting  |
| connecting | LeaderInfo                                  | LeaderInfo(e >= acceptedEpoch): syncing|
| syncing    | Trunc Snap Diff NewLeader Proposal Commit Inform | NewLeader's zxid durable: acked   |
| acked      | UpToDate Proposal Commit Inform             | UpToDate: serving                      |
| serving    | Proposal Commit Inform                      | -                                      |
Pings are taken in every phase but starting; a Probe(n) (acked and serving) is answered
ProbeAck(n) at once: it tells the leader this learner still follows it.

Rules:
- An epoch below acceptedEpoch is refused; acceptedEpoch is persisted before AckEpoch, and
  currentEpoch before AckNewLeader (ZAB phase 1 and 2).
- AckNewLeader only once the log holds everything through NewLeader's zxid durably and every
  truncation or snapshot install has been answered.
- An Ack (followers only) is sent for what the log made durable, never earlier; a log that
  reports more than this learner appended ends the role (its synchronization was planned on a
  wrong end).
- Commits reach the session actor strictly in order, and only once this node's log holds them,
  so that "committed" implies "on this node's disk" everywhere.
- The leader silent for `silence_s` (sync_limit ticks once serving, init_limit before) ends the
  role: the shell's channel (runtime/channel.py) keeps that time and reports `channel_broken`.
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import Any

from actors.protocol import quorum as q
from actors.protocol.effects import InstallSnapshot, PersistEpoch, RoleCore, Send, Tell
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
    sent_in_another_epoch,
)
from actors.protocol.txn import Marker, Txn
from actors.protocol.zxid import fmt

LOG_HELLO_RETRY_S = 1.0


class Phase(Enum):
    STARTING = "starting"
    CONNECTING = "connecting"
    SYNCING = "syncing"
    ACKED = "acked"
    SERVING = "serving"


_STREAM = (q.Proposal, q.Commit, q.Inform)
ACCEPTS: dict[Phase, tuple[type, ...]] = {
    Phase.STARTING: (),
    Phase.CONNECTING: (q.LeaderInfo, q.Ping),
    Phase.SYNCING: (q.Trunc, q.Snap, q.Diff, q.NewLeader, q.Ping, *_STREAM),
    Phase.ACKED: (q.UpToDate, q.Ping, q.Probe, *_STREAM),
    Phase.SERVING: (q.Ping, q.Probe, *_STREAM),
}


class Learner(RoleCore):
    def __init__(
        self,
        *,
        sid: int,
        leader: int,
        voting: bool,
        accepted_epoch: int,
        current_epoch: int,
        tick_s: float,
        init_limit: int,
        sync_limit: int,
        now: float,
        log: Any,
    ) -> None:
        self.sid = sid
        self.leader = leader
        self.voting = voting
        self.role = "follower" if voting else "observer"
        self.accepted_epoch = accepted_epoch
        self.current_epoch = current_epoch
        self.tick_s = tick_s
        self.init_s = init_limit * tick_s
        self.sync_s = sync_limit * tick_s
        self.log = log
        self.phase = Phase.STARTING
        self.epoch = 0
        self.newleader: q.NewLeader | None = None
        self.last_logged = -1  # durable end of this node's log
        self.appended = -1  # the last zxid handed to the log actor
        self.pending_log = 0  # truncations / snapshot installs not yet answered by log_ready
        self.proposals: dict[int, Txn] = {}
        self.commits: deque[int | Marker] = deque()
        self.released = 0  # the last zxid passed to the session actor
        self.hello_due = now + LOG_HELLO_RETRY_S
        self.ended = False
        self._out: list[Any] = [Tell("log", Hello(origin=sid))]

    def _context(self) -> dict[str, Any]:
        return {"leader": self.leader, "phase": self.phase.value}

    # --- time ---------------------------------------------------------------------------------

    @property
    def silence_s(self) -> float:
        """How long the leader may be silent: sync_limit ticks once serving, init_limit before."""
        return self.sync_s if self.phase is Phase.SERVING else self.init_s

    def next_deadline(self) -> float | None:
        return self.hello_due if self.phase is Phase.STARTING else None

    def tick(self, now: float) -> None:
        if self.phase is Phase.STARTING and now >= self.hello_due:
            self._out.append(Tell("log", Hello(origin=self.sid)))
            self.hello_due = now + LOG_HELLO_RETRY_S

    # --- the log actor ------------------------------------------------------------------------

    def log_ready(self, last_zxid: int) -> None:
        if self.phase is Phase.STARTING:
            self.last_logged = self.appended = last_zxid
            self.phase = Phase.CONNECTING
            self._out.append(Send(q.FollowerInfo(self.sid, self.accepted_epoch, last_zxid, not self.voting)))
            return
        if self.pending_log:
            # The answer to a truncation or a snapshot install (appends sent after it are still
            # counted in `appended`: the log takes them after this answer).
            self.pending_log -= 1
            self.last_logged = last_zxid
            self._maybe_ack_new_leader()
            return
        if last_zxid >= self.appended:
            # A repeated answer, or a restarted log actor that lost nothing we sent: its end is durable.
            if last_zxid > self.last_logged:
                self.logged(last_zxid)
            return
        # The log actor restarted and lost appends we sent: start over from a clean sync.
        self._end("the log is missing appends (lost on the way, or its actor restarted)", last_zxid=fmt(last_zxid))

    def logged(self, zxid: int) -> None:
        if self.phase is Phase.STARTING or zxid <= self.last_logged:
            return
        if zxid > self.appended:
            # The log holds txns this learner never handed it (appends of a previous role actor
            # that reached the log after its end was reported): the leader's plan for this log is
            # wrong. Synchronize again from the log's real end.
            self._end("the log holds txns this learner did not write", logged=fmt(zxid), appended=fmt(self.appended))
            return
        self.last_logged = zxid
        if self.voting and self.phase in (Phase.ACKED, Phase.SERVING):
            self._out.append(Send(q.Ack(zxid)))
        self._maybe_ack_new_leader()

    # --- the leader ---------------------------------------------------------------------------

    def channel_broken(self, why: str, **fields: Any) -> None:
        self._end(why, **fields)

    def from_leader(self, msg: Any) -> None:
        if self.ended:
            return
        if isinstance(msg, q.Dropped):
            self._end("the leader dropped this learner", why=msg.reason)
            return
        if not isinstance(msg, ACCEPTS[self.phase]):
            self._end("unexpected message from the leader", type=type(msg).__name__)
            return
        if isinstance(msg, q.Ping):
            return
        if isinstance(msg, q.Probe):
            self._out.append(Send(q.ProbeAck(msg.n)))
            return
        if isinstance(msg, q.Proposal):
            for txn in msg.txns:
                self.proposals[txn.zxid] = txn
            self._append(msg.txns)
        elif isinstance(msg, q.Commit):
            self.commits.extend(msg.entries)
        elif isinstance(msg, q.Inform):
            txns = [e for e in msg.entries if isinstance(e, Txn)]
            for txn in txns:
                self.proposals[txn.zxid] = txn
            if txns:
                self._append(txns)
            self.commits.extend(e.zxid if isinstance(e, Txn) else e for e in msg.entries)
        elif isinstance(msg, q.LeaderInfo):
            self._on_leader_info(msg)
        elif isinstance(msg, q.Trunc):
            self.pending_log += 1
            self.appended = min(self.appended, msg.zxid)
            self._out.append(Tell("log", Truncate(msg.zxid)))
            self.log.info("sync_trunc", zxid=fmt(msg.zxid))
        elif isinstance(msg, q.Snap):
            self.pending_log += 1
            self.appended = msg.zxid  # the log restarts from the snapshot
            self._out.append(InstallSnapshot(msg.zxid, msg.data))
            self._out.append(Tell("log", Truncate(msg.zxid, snapshot=True)))
            self.log.info("sync_snap", zxid=fmt(msg.zxid), size=len(msg.data))
        elif isinstance(msg, q.Diff):
            if msg.txns:
                self._append(msg.txns)
            self.log.info("sync_diff", txns=len(msg.txns))
        elif isinstance(msg, q.NewLeader):
            if msg.zxid > self.appended:
                # Everything through NEWLEADER comes before it on the channel: a leader that names
                # more than it sent would leave this learner waiting for txns that never come.
                self._end("NEWLEADER is past what the leader sent", zxid=fmt(msg.zxid), appended=fmt(self.appended))
                return
            self.newleader = msg
            self._maybe_ack_new_leader()
        elif isinstance(msg, q.UpToDate):
            self._up_to_date()

    def _on_leader_info(self, msg: q.LeaderInfo) -> None:
        if msg.epoch < self.accepted_epoch:
            self._end("the leader's epoch is older than one accepted", epoch=msg.epoch, accepted=self.accepted_epoch)
            return
        fresh = msg.epoch > self.accepted_epoch
        if fresh:
            self.accepted_epoch = msg.epoch
            self._out.append(PersistEpoch("acceptedEpoch", msg.epoch))
        self.epoch = msg.epoch
        self.phase = Phase.SYNCING
        self._out.append(Send(q.AckEpoch(self.current_epoch, self.last_logged, fresh)))

    def _append(self, txns: list[Txn]) -> None:
        self._out.append(Tell("log", Append(txns=txns)))
        self.appended = max(self.appended, txns[-1].zxid)

    def _maybe_ack_new_leader(self) -> None:
        nl = self.newleader
        if nl is None or self.phase is not Phase.SYNCING or self.pending_log or self.last_logged < nl.zxid:
            return
        self.current_epoch = nl.epoch
        self._out.append(PersistEpoch("currentEpoch", nl.epoch))
        self.phase = Phase.ACKED
        self._out.append(Send(q.AckNewLeader(nl.zxid)))

    def _up_to_date(self) -> None:
        assert self.newleader is not None  # ACKED implies a NewLeader was acknowledged
        self.phase = Phase.SERVING
        self.released = self.newleader.zxid
        self.log.info("up_to_date", zxid=fmt(self.newleader.zxid), epoch=self.newleader.epoch, leader=self.leader)
        self._out.append(Tell("session", LeaderUp(epoch=self.newleader.epoch, role=self.role)))

    def _flush(self) -> None:
        """Committed entries to the session actor, in order, once they are on this disk."""
        if self.phase is not Phase.SERVING or self.ended:
            return
        commits = self.commits
        out: list[Any] = []
        while commits:
            head = commits[0]
            if isinstance(head, Marker):
                out.append(commits.popleft())
                continue
            if head > self.last_logged:
                break
            commits.popleft()
            txn = self.proposals.pop(head, None)
            if txn is None:
                if head <= self.released:
                    continue
                self._end("commit of a txn never proposed", zxid=fmt(head))
                return
            out.append(txn)
            self.released = head
        if out:
            self._out.append(Tell("session", Committed(entries=out)))

    # --- the session actor --------------------------------------------------------------------

    def local(self, msg: Any) -> None:
        if isinstance(msg, WriteRequest | OwnSession) and sent_in_another_epoch(msg, self.epoch):
            return  # queued for the role actor before this one: the session actor failed it already
        if isinstance(msg, WriteRequest):
            if self.phase is Phase.SERVING:
                self._out.append(Send(msg))
        elif isinstance(msg, Touch | OwnSession):
            if self.phase is not Phase.STARTING:
                self._out.append(Send(msg))
        elif isinstance(msg, Hello):
            if self.phase is Phase.SERVING:
                self._out.append(Tell("session", SyncPoint(zxid=self.released, epoch=self.epoch, role=self.role)))
