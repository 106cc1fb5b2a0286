"""The leader actor: discovery and synchronization of the learners, then prep -> proposer ->
committer on one process. A standalone node is a leader whose quorum is itself.

Start: ask the log actor for its durable end (Hello -> LogReady) and load the state through it.
- Standalone: pick a new epoch above every epoch on disk, persist it, serve.
- Ensemble (ZAB): bind the quorum port (ROUTER); learners connect and send FollowerInfo.
  Discovery: once a quorum of participants (this node included) has, the new epoch is one above
  every accepted epoch seen; it is persisted as acceptedEpoch and sent (LeaderInfo). Each learner
  answers AckEpoch with its history end and is synchronized (actors.leader.sync: DIFF, TRUNC or
  SNAP, then NewLeader). When a quorum has acknowledged NewLeader the leader persists
  currentEpoch, sends UpToDate and serves. A learner that joins later is synchronized to the
  commit point, then receives the outstanding proposals, in the same FIFO stream.
  No quorum within init_limit ticks, or a quorum silent for sync_limit ticks: the role ends
  (exit EXIT_ROLE_ENDED) and the supervisor runs an election.

Broadcast, per batch: every WriteRequest (local or forwarded by a learner) goes through prep (a
Txn or an ordered Marker) into the proposer; the batch's txns go to the local log as ONE Append
and to the followers as ONE Proposal; `Logged` (local) and `Ack` (followers) advance the commit
point; committed entries go to the local session actor (`Committed`), to followers (`Commit`,
txns by zxid) and to observers (`Inform`, txns whole), each as one message in decided order.

Channels: frames `[seq, payload]` with a sequence number per direction and learner; a gap or a
stranger drops that learner, which then times out and comes back through election and sync.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import zmq

from actors.leader.prep import Prep
from actors.leader.proposer import Proposer
from actors.leader.sessions import SessionTracker
from actors.leader.sync import plan_sync
from actors.log import epochs, snapshot
from actors.log.recovery import load_state
from actors.log.txnlog import read_txns
from actors.protocol import quorum as q
from actors.protocol.internal import (
    Append,
    Committed,
    Hello,
    LeaderUp,
    LearnerStats,
    Logged,
    LogReady,
    SyncPoint,
    Touch,
    WriteRequest,
)
from actors.protocol.txn import CloseSessionTxn, CreateSessionTxn, Txn
from actors.protocol.zxid import epoch_of, fmt
from runtime.actor import Actor
from runtime.roles import EXIT_ROLE_ENDED

LOG_HELLO_RETRY_S = 1.0


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class LearnerPeer:
    """What the leader knows of one learner's channel."""

    ident: bytes
    sid: int
    observer: bool
    accepted_epoch: int
    last_zxid: int
    last_heard: float
    in_seq: int = 1  # FollowerInfo was 0
    out_seq: int = 0
    phase: str = "info"  # info -> epoch -> syncing -> acked -> active
    newleader_zxid: int = 0


class LeaderActor(Actor):
    name = "role"

    def on_start(self, now: float) -> None:
        cfg = self.cfg
        self.dir = Path(cfg.data_dir) / "version-1"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sid = cfg.sid
        self.ensemble = bool(cfg.servers)
        self.voters = frozenset(s.id for s in cfg.servers if s.role != "observer") or frozenset({self.sid})
        self.quorum = len(self.voters) // 2 + 1
        self.tick_s = cfg.tick_ms / 1000.0
        self.phase = "starting"  # -> discovery -> sync -> broadcast
        self.ready = False
        self.to_append: list[Txn] = []
        self.prep: Prep | None = None
        self.tree: Any = None  # the state loaded at start (prep's, once the epoch is known)
        self.proposer: Proposer | None = None
        self.tracker = SessionTracker(tick_ms=cfg.tick_ms)
        self.epoch = 0
        self.last_logged = 0  # the leader's own history end at start
        self.learners: dict[bytes, LearnerPeer] = {}
        self.next_reap = now + cfg.container_check_ms / 1000.0
        self.hello_due = now + LOG_HELLO_RETRY_S
        self.init_deadline = now + cfg.init_limit * self.tick_s
        self.heartbeat_due = now
        self.peer_decoder = msgspec.msgpack.Decoder(q.ToLeader)
        self.router: zmq.Socket | None = None
        if self.ensemble:
            me = next(s for s in cfg.servers if s.id == self.sid)
            self.router = self.ctx.socket(zmq.ROUTER)
            self.router.setsockopt(zmq.LINGER, 0)
            self.router.setsockopt(zmq.SNDHWM, 0)
            self.router.setsockopt(zmq.RCVHWM, 0)
            self.secure_bind(self.router, f"tcp://{me.host}:{me.quorum_port}", "peers")
            self.add_socket(self.router, self._on_peer_frames, copy=True)
        self.tell("log", Hello(origin=self.sid))

    # --- timers ---------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        if self.phase == "starting":
            return self.hello_due
        if not self.ready:
            return min(self.init_deadline, self.heartbeat_due) if self.ensemble else None
        deadline = self.next_reap
        if self.ensemble:
            deadline = min(deadline, self.heartbeat_due)
        due_ms = self.tracker.next_deadline_ms()
        if due_ms is not None:
            left_ms = due_ms - _now_ms()
            # Already due: a deadline in the past, so that the loop calls on_timer now.
            deadline = min(deadline, 0.0 if left_ms <= 0 else time.monotonic() + left_ms / 1000.0)
        return deadline

    def on_timer(self, now: float) -> None:
        if self.phase == "starting":
            self.tell("log", Hello(origin=self.sid))
            self.hello_due = now + LOG_HELLO_RETRY_S
            return
        if self.ensemble and now >= self.heartbeat_due:
            self._heartbeat(now)
        if not self.ready:
            if self.ensemble and now >= self.init_deadline:
                self.end(EXIT_ROLE_ENDED, "no quorum synchronized in time", phase=self.phase,
                         learners=sorted(p.sid for p in self.learners.values()))
            return
        assert self.prep is not None
        now_ms = _now_ms()
        expired = self.tracker.expired(now_ms)
        if expired:
            self.log.info("sessions_expired", sessions=[hex(s) for s in expired])
            for txn in self.prep.expire(expired, now_ms):
                self._propose(txn)
        if now >= self.next_reap:
            self.next_reap = now + self.cfg.container_check_ms / 1000.0
            for txn in self.prep.reap(now_ms):
                self._propose(txn)

    def _heartbeat(self, now: float) -> None:
        self.heartbeat_due = now + max(0.02, self.tick_s / 2)
        limit = self.cfg.sync_limit * self.tick_s
        ping = self.encoder.encode(q.Ping())
        alive = {self.sid}
        for peer in list(self.learners.values()):
            if now - peer.last_heard > limit:
                self._drop(peer, "silent")
                continue
            self._send(peer, ping)
            if not peer.observer and peer.phase in ("acked", "active"):
                alive.add(peer.sid)
        if self.ready and len(alive & self.voters) < self.quorum:
            self.end(EXIT_ROLE_ENDED, "lost the quorum", alive=sorted(alive))
        learners = list(self.learners.values())
        synced = [p for p in learners if p.phase in ("acked", "active")]
        self.tell("session", LearnerStats(
            learners=len(learners),
            synced_followers=sum(1 for p in synced if not p.observer),
            synced_observers=sum(1 for p in synced if p.observer),
            pending_syncs=sum(1 for p in learners if p.phase == "syncing"),
        ))

    # --- local messages -------------------------------------------------------------------------

    def on_message(self, msg: Any, now: float) -> None:
        if isinstance(msg, WriteRequest):
            if self.ready:  # else: the session fails it when this leader announces itself
                self._on_write(msg)
        elif isinstance(msg, Logged):
            if self.proposer is not None and msg.sid == self.sid:
                self.proposer.logged(msg.sid, msg.zxid)
        elif isinstance(msg, Touch):
            self._touch(msg)
        elif isinstance(msg, Hello):
            if self.ready:
                assert self.proposer is not None
                role = "leader" if self.ensemble else "standalone"
                self.tell("session", SyncPoint(zxid=self.proposer.committed_zxid, epoch=self.epoch, role=role))
        elif isinstance(msg, LogReady):
            self._on_log_ready(msg, now)
        else:
            self.log.warning("unexpected_message", type=type(msg).__name__)

    def _touch(self, msg: Touch) -> None:
        now_ms = _now_ms()
        for session_id in msg.sessions:
            self.tracker.touch(session_id, now_ms)

    def _on_log_ready(self, msg: LogReady, now: float) -> None:
        if self.phase != "starting":
            if self.proposer is None:
                if msg.last_zxid != self.last_logged:
                    self.end(EXIT_ROLE_ENDED, "the log changed under a leader being established")
                return
            # The log actor restarted: whatever it had not made durable must be sent again.
            # What it has is durable (its Logged may have died with it); the rest goes again.
            self.proposer.logged(msg.sid, msg.last_zxid)
            missing = self.proposer.resend_after(msg.last_zxid)
            self.log.info("log_restarted", last_zxid=fmt(msg.last_zxid), resend=len(missing))
            if missing:
                self.tell("log", Append(txns=missing))
            return
        last = self.last_logged = msg.last_zxid
        tree = self.tree = load_state(self.dir, upto=last, log=self.log)
        if not self.ensemble:
            accepted = epochs.read_epoch(self.dir, "acceptedEpoch")
            current = epochs.read_epoch(self.dir, "currentEpoch")
            self._set_epoch(max(accepted, current, epoch_of(last)) + 1)
            self._establish(now)
            return
        self.phase = "discovery"
        self.init_deadline = now + self.cfg.init_limit * self.tick_s
        self.log.info("discovery", zxid=fmt(last), znodes=tree.node_count())
        for peer in list(self.learners.values()):
            self._on_follower_info(peer)

    def _set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        epochs.write_epoch(self.dir, "acceptedEpoch", epoch)
        self.prep = Prep(self.tree, epoch=epoch, max_data_bytes=self.cfg.max_data_bytes, log=self.log)

    def _establish(self, now: float) -> None:
        """A quorum holds this leader's history: it is committed; serve."""
        assert self.prep is not None
        epochs.write_epoch(self.dir, "currentEpoch", self.epoch)
        last = self.last_logged
        self.proposer = Proposer(me=self.sid, voters=self.voters, committed_zxid=last)
        for peer in self.learners.values():
            if not peer.observer and peer.phase in ("acked", "active"):
                self.proposer.logged(peer.sid, peer.newleader_zxid)
        tree = self.prep.tree
        now_ms = _now_ms()
        for session_id, info in tree.sessions.items():
            self.tracker.add(session_id, info.timeout_ms, now_ms)
        self.ready = True
        self.phase = "broadcast"
        role = "leader" if self.ensemble else "standalone"
        self.log.info("leading", epoch=self.epoch, zxid=fmt(last), znodes=tree.node_count(), sessions=len(tree.sessions),
                      learners=sorted(p.sid for p in self.learners.values() if p.phase == "acked"))
        self.tell("session", LeaderUp(epoch=self.epoch, role=role))
        for peer in self.learners.values():
            if peer.phase == "acked":
                self._up_to_date(peer)

    # --- learners -------------------------------------------------------------------------------

    def _send(self, peer: LearnerPeer, payload: bytes) -> None:
        assert self.router is not None
        try:
            self.router.send_multipart([peer.ident, q.SEQ.pack(peer.out_seq), payload], zmq.NOBLOCK)
        except zmq.Again:
            self._drop(peer, "send queue full")
            return
        peer.out_seq += 1

    def _tell_peer(self, peer: LearnerPeer, msg: Any) -> None:
        self._send(peer, self.encoder.encode(msg))

    def _drop(self, peer: LearnerPeer, why: str) -> None:
        if self.learners.pop(peer.ident, None) is not None:
            self.log.warning("learner_dropped", sid=peer.sid, why=why, phase=peer.phase)

    def _on_peer_frames(self, frames: list[bytes], now: float) -> None:
        if len(frames) != 3 or len(frames[1]) != q.SEQ.size:
            self.log.warning("bad_peer_frames", parts=len(frames))
            return
        ident, seq_b, payload = frames
        (seq,) = q.SEQ.unpack(seq_b)
        try:
            msg = self.peer_decoder.decode(payload)
        except msgspec.DecodeError as exc:
            self.log.warning("bad_peer_message", error=str(exc)[:200])
            return
        peer = self.learners.get(ident)
        if peer is None:
            if not isinstance(msg, q.FollowerInfo) or seq != 0:
                return  # a channel we dropped, or a stranger: it times out and starts over
            if not any(s.id == msg.sid for s in self.cfg.servers):
                self.log.warning("unknown_learner", sid=msg.sid)
                return
            for old in [p for p in self.learners.values() if p.sid == msg.sid]:
                self._drop(old, "reconnected")
            observer = next(s.role == "observer" for s in self.cfg.servers if s.id == msg.sid)
            peer = LearnerPeer(ident, msg.sid, observer, msg.accepted_epoch, msg.last_zxid, now)
            self.learners[ident] = peer
            self.log.info("learner_connected", sid=msg.sid, observer=observer, last_zxid=fmt(msg.last_zxid),
                          accepted_epoch=msg.accepted_epoch)
            if self.phase != "starting":
                self._on_follower_info(peer)
            return
        if seq != peer.in_seq:
            self._drop(peer, f"sequence gap: got {seq}, expected {peer.in_seq}")
            return
        peer.in_seq += 1
        peer.last_heard = now
        if isinstance(msg, q.Ack):
            if self.proposer is not None and not peer.observer and peer.phase in ("syncing", "acked", "active"):
                self.proposer.logged(peer.sid, msg.zxid)
        elif isinstance(msg, WriteRequest):
            if self.ready:
                self._on_write(msg)
        elif isinstance(msg, Touch):
            if self.ready:
                self._touch(msg)
        elif isinstance(msg, q.AckEpoch):
            self._on_ack_epoch(peer, msg, now)
        elif isinstance(msg, q.AckNewLeader):
            self._on_ack_new_leader(peer, msg, now)
        elif isinstance(msg, q.Ping):
            pass
        else:
            self.log.warning("unexpected_peer_message", sid=peer.sid, type=type(msg).__name__)

    def _on_follower_info(self, peer: LearnerPeer) -> None:
        if self.phase == "discovery":
            voters_in = {p.sid for p in self.learners.values() if not p.observer} | {self.sid}
            if len(voters_in & self.voters) < self.quorum:
                return
            accepted = max(
                [epochs.read_epoch(self.dir, "acceptedEpoch"), epochs.read_epoch(self.dir, "currentEpoch"), epoch_of(self.last_logged)]
                + [p.accepted_epoch for p in self.learners.values()]
            )
            self._set_epoch(accepted + 1)
            self.phase = "sync"
            self.log.info("new_epoch", epoch=self.epoch, learners=sorted(voters_in))
            for other in self.learners.values():
                self._send_epoch(other)
        elif self.phase in ("sync", "broadcast"):
            if peer.accepted_epoch >= self.epoch:
                self.end(EXIT_ROLE_ENDED, "a learner has accepted a newer epoch", sid=peer.sid, epoch=peer.accepted_epoch)
                return
            self._send_epoch(peer)

    def _send_epoch(self, peer: LearnerPeer) -> None:
        if peer.phase == "info":
            peer.phase = "epoch"
            self._tell_peer(peer, q.LeaderInfo(self.epoch))

    def _on_ack_epoch(self, peer: LearnerPeer, msg: q.AckEpoch, now: float) -> None:
        if peer.phase != "epoch":
            return
        mine = (epochs.read_epoch(self.dir, "currentEpoch"), self.last_logged)
        if (msg.current_epoch, msg.last_zxid) > mine and not self.ready:
            self.end(EXIT_ROLE_ENDED, "a learner has a newer history than this leader", sid=peer.sid, zxid=fmt(msg.last_zxid))
            return
        peer.last_zxid = msg.last_zxid
        self._synchronize(peer)

    def _synchronize(self, peer: LearnerPeer) -> None:
        """Send DIFF / TRUNC / SNAP and NewLeader; from here on the learner is in the stream."""
        sync_to = self.last_logged if self.proposer is None else self.proposer.committed_zxid
        # The diff window: the txns logged after the newest snapshot (anything older goes by SNAP).
        snaps = [z for z, _ in snapshot.list_snapshots(self.dir) if z <= sync_to]
        base = snaps[0] if snaps else 0
        history = list(read_txns(self.dir, base, sync_to))
        plan = plan_sync(peer.last_zxid, base, [t.zxid for t in history], sync_to)
        if plan.kind == "snap":
            tree = self.tree if self.proposer is None else load_state(self.dir, upto=sync_to, log=self.log)
            self._tell_peer(peer, q.Snap(sync_to, tree.to_snapshot()))
            sent = 0
        else:
            if plan.kind == "trunc":
                self._tell_peer(peer, q.Trunc(plan.common))
            txns = [t for t in history if t.zxid > plan.common]
            if txns:
                self._tell_peer(peer, q.Diff(txns))
            sent = len(txns)
        self._tell_peer(peer, q.NewLeader(self.epoch, sync_to))
        peer.phase = "syncing"
        peer.newleader_zxid = sync_to
        if self.proposer is not None and not peer.observer:
            outstanding = self.proposer.resend_after(sync_to)
            if outstanding:
                self._tell_peer(peer, q.Proposal(outstanding))
        self.log.info("learner_sync", sid=peer.sid, kind=plan.kind, common=fmt(plan.common), to=fmt(sync_to), txns=sent)

    def _on_ack_new_leader(self, peer: LearnerPeer, msg: q.AckNewLeader, now: float) -> None:
        if peer.phase != "syncing" or msg.zxid != peer.newleader_zxid:
            return
        peer.phase = "acked"
        if self.ready:
            assert self.proposer is not None
            if not peer.observer:
                self.proposer.logged(peer.sid, msg.zxid)
            self._up_to_date(peer)
            return
        acked = {p.sid for p in self.learners.values() if p.phase == "acked" and not p.observer} | {self.sid}
        if len(acked & self.voters) >= self.quorum:
            self._establish(now)

    def _up_to_date(self, peer: LearnerPeer) -> None:
        peer.phase = "active"
        self._tell_peer(peer, q.UpToDate())
        self.log.info("learner_up_to_date", sid=peer.sid, observer=peer.observer)

    # --- writes ---------------------------------------------------------------------------------

    def _on_write(self, req: WriteRequest) -> None:
        assert self.prep is not None
        entry = self.prep.step(req, _now_ms())
        self._propose(entry)

    def _propose(self, entry: Any) -> None:
        assert self.proposer is not None
        self.proposer.propose(entry)
        if isinstance(entry, Txn):
            self.to_append.append(entry)
            op = entry.op
            if isinstance(op, CreateSessionTxn):
                self.tracker.add(entry.session_id, op.timeout_ms, _now_ms())
            elif isinstance(op, CloseSessionTxn):
                self.tracker.remove(entry.session_id)

    def on_batch_end(self, now: float) -> None:
        streaming = [p for p in self.learners.values() if p.phase in ("syncing", "acked", "active")]
        if self.to_append:
            self.tell("log", Append(txns=self.to_append))
            followers = [p for p in streaming if not p.observer]
            if followers:
                payload = self.encoder.encode(q.Proposal(self.to_append))
                for peer in followers:
                    self._send(peer, payload)
            self.to_append = []
        if self.proposer is not None:
            done = self.proposer.take_committed()
            if done:
                self.tell("session", Committed(entries=done))
                if streaming:
                    commit = inform = None
                    for peer in streaming:
                        if peer.observer:
                            inform = inform or self.encoder.encode(q.Inform(done))
                            self._send(peer, inform)
                        else:
                            commit = commit or self.encoder.encode(
                                q.Commit([e.zxid if isinstance(e, Txn) else e for e in done])
                            )
                            self._send(peer, commit)

    def on_stop(self) -> None:
        self.log.info("leader_stopping", pid=os.getpid(), phase=self.phase)

