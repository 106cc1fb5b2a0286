"""The follower actor (and, with `observer = True`, the observer): a learner of the leader.

Start: read whom to follow (runtime.roles), ask the log actor for the durable end of the log,
connect a DEALER to the leader's quorum port with an identity of its own (a new channel per actor
incarnation), and send FollowerInfo.

Synchronization (ZAB phase 2 and 3, learner side):
- LeaderInfo(e): refuse an epoch below our acceptedEpoch (the role ends); persist it; AckEpoch.
- Trunc / Snap / Diff: truncate the log, install the leader's snapshot, append missing txns
  (all through the log actor, in order).
- NewLeader(e, z): once the log holds everything through z durably, persist currentEpoch = e and
  send AckNewLeader(z).
- UpToDate: everything through z is committed: announce `LeaderUp` to the session actor and
  serve.

Broadcast: Proposal -> Append to the log -> `Logged` -> Ack (followers only). Commit (txns by
zxid) or Inform (observers, txns whole) -> queued, and released to the session actor in order once
this node's log holds them, so that "committed" always implies "on this node's disk" (the session
actor resynchronises from disk). Local writes and session touches are forwarded to the leader.

A closed connection to the leader, silence from it for sync_limit ticks (init_limit before UpToDate), a sequence gap, or an
inconsistency ends the role (exit EXIT_ROLE_ENDED): the supervisor runs an election and a fresh
learner synchronizes again. Nothing here is trusted across a broken channel.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from typing import Any

import msgspec
import zmq
import zmq.utils.monitor

from actors.log import epochs, snapshot
from actors.protocol import quorum as q
from actors.protocol.internal import (
    Append,
    Committed,
    Hello,
    LeaderUp,
    Logged,
    LogReady,
    SyncPoint,
    Touch,
    Truncate,
    WriteRequest,
)
from actors.protocol.txn import Marker, Txn
from actors.protocol.zxid import fmt
from runtime.actor import Actor
from runtime.roles import EXIT_ROLE_ENDED, read_role

LOG_HELLO_RETRY_S = 1.0


class FollowerActor(Actor):
    name = "role"
    observer = False

    def on_start(self, now: float) -> None:
        cfg = self.cfg
        self.dir = Path(cfg.data_dir) / "version-1"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sid = cfg.sid
        self.tick_s = cfg.tick_ms / 1000.0
        self.role_name = "observer" if self.observer else "follower"
        role = read_role(self.run_dir)
        leader = next((s for s in cfg.servers if role is not None and s.id == role.leader), None)
        if role is None or leader is None or leader.id == self.sid:
            raise SystemExit(f"{self.role_name}: no leader to follow in {self.run_dir}/role.json")
        self.leader_sid = leader.id
        self.peer_decoder = msgspec.msgpack.Decoder(q.ToLearner)
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.setsockopt(zmq.SNDHWM, 0)
        self.dealer.setsockopt(zmq.RCVHWM, 0)
        self.dealer.setsockopt(zmq.IDENTITY, f"{self.sid}-{os.getpid()}-{os.urandom(4).hex()}".encode())
        self.secure_connect(self.dealer, f"tcp://{leader.host}:{leader.quorum_port}", leader.id)
        self.add_socket(self.dealer, self._on_leader_frames, copy=True)
        # A dead leader's process closes its connections: notice at once, not at the heartbeat
        # timeout (a hung one is caught by the timeout).
        self.monitor = self.dealer.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self.add_socket(self.monitor, self._on_monitor, copy=True)
        self.out_seq = 0
        self.in_seq = 0
        self.phase = "starting"  # -> connecting -> syncing -> serving
        self.last_logged = -1
        self.epoch = 0
        self.newleader: q.NewLeader | None = None
        self.proposals: dict[int, Txn] = {}
        self.commits: deque[int | Marker] = deque()
        self.released_zxid = 0
        self.to_session: list[Any] = []
        self.pending_log = 0  # Truncate / snapshot installs not yet answered by LogReady
        self.appended = -1  # the last zxid handed to the log actor
        self.last_heard = now
        self.deadline = now + cfg.init_limit * self.tick_s
        self.heartbeat_due = now
        self.hello_due = now + LOG_HELLO_RETRY_S
        self.tell("log", Hello(origin=self.sid))
        self.log.info("following", leader=self.leader_sid, observer=self.observer)

    # --- channel --------------------------------------------------------------------------------

    def _to_leader(self, msg: Any) -> None:
        try:
            self.dealer.send_multipart([q.SEQ.pack(self.out_seq), self.encoder.encode(msg)], zmq.NOBLOCK)
        except zmq.Again:
            self.end(EXIT_ROLE_ENDED, "cannot send to the leader")
            return
        self.out_seq += 1

    def _on_leader_frames(self, frames: list[bytes], now: float) -> None:
        if self._stopping:
            return
        if len(frames) != 2 or len(frames[0]) != q.SEQ.size:
            self.end(EXIT_ROLE_ENDED, "malformed frames from the leader")
            return
        (seq,) = q.SEQ.unpack(frames[0])
        if seq != self.in_seq:
            self.end(EXIT_ROLE_ENDED, "sequence gap from the leader", got=seq, expected=self.in_seq)
            return
        self.in_seq += 1
        self.last_heard = now
        try:
            msg = self.peer_decoder.decode(frames[1])
        except msgspec.DecodeError as exc:
            self.end(EXIT_ROLE_ENDED, "undecodable message from the leader", error=str(exc)[:200])
            return
        self._on_leader(msg, now)

    def _on_monitor(self, frames: list[bytes], now: float) -> None:
        event = zmq.utils.monitor.parse_monitor_message(frames)
        if event["event"] == zmq.EVENT_DISCONNECTED and not self._stopping:
            self.end(EXIT_ROLE_ENDED, "the connection to the leader closed", leader=self.leader_sid, phase=self.phase)

    def on_stop(self) -> None:
        self.dealer.disable_monitor()

    # --- timers ---------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        if self.phase == "starting":
            return min(self.hello_due, self.deadline)
        return min(self.heartbeat_due, self.deadline)

    def on_timer(self, now: float) -> None:
        if self.phase == "starting" and now >= self.hello_due:
            self.tell("log", Hello(origin=self.sid))
            self.hello_due = now + LOG_HELLO_RETRY_S
        if now >= self.deadline:
            self.end(EXIT_ROLE_ENDED, "leader silent" if self.phase == "serving" else "synchronization timed out",
                     leader=self.leader_sid, phase=self.phase)
            return
        if self.phase != "starting" and now >= self.heartbeat_due:
            self.heartbeat_due = now + max(0.02, self.tick_s / 2)
            self._to_leader(q.Ping())

    # --- the leader's messages ------------------------------------------------------------------

    def _on_leader(self, msg: Any, now: float) -> None:
        limit = (self.cfg.sync_limit if self.phase == "serving" else self.cfg.init_limit) * self.tick_s
        self.deadline = now + limit
        if isinstance(msg, q.Ping):
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
            accepted = epochs.read_epoch(self.dir, "acceptedEpoch")
            if msg.epoch < accepted:
                self.end(EXIT_ROLE_ENDED, "the leader's epoch is older than one accepted", epoch=msg.epoch, accepted=accepted)
                return
            if msg.epoch > accepted:
                epochs.write_epoch(self.dir, "acceptedEpoch", msg.epoch)
            self.epoch = msg.epoch
            self.phase = "syncing"
            self._to_leader(q.AckEpoch(epochs.read_epoch(self.dir, "currentEpoch"), self.last_logged))
        elif isinstance(msg, q.Trunc):
            self.pending_log += 1
            self.tell("log", Truncate(msg.zxid))
            self.log.info("sync_trunc", zxid=fmt(msg.zxid))
        elif isinstance(msg, q.Snap):
            snapshot.write_snapshot(self.dir, msg.zxid, msg.data)
            self.pending_log += 1
            self.tell("log", Truncate(msg.zxid, snapshot=True))
            self.log.info("sync_snap", zxid=fmt(msg.zxid), size=len(msg.data))
        elif isinstance(msg, q.Diff):
            if msg.txns:
                self._append(msg.txns)
            self.log.info("sync_diff", txns=len(msg.txns))
        elif isinstance(msg, q.NewLeader):
            self.newleader = msg
            self._maybe_ack_new_leader()
        elif isinstance(msg, q.UpToDate):
            self._up_to_date()
        else:
            self.log.warning("unexpected_leader_message", type=type(msg).__name__)

    def _append(self, txns: list[Txn]) -> None:
        self.tell("log", Append(txns=txns))
        self.appended = max(self.appended, txns[-1].zxid)

    def _maybe_ack_new_leader(self) -> None:
        nl = self.newleader
        if nl is None or self.pending_log or self.last_logged < nl.zxid or self.phase != "syncing":
            return
        epochs.write_epoch(self.dir, "currentEpoch", nl.epoch)
        self.phase = "acked"
        self._to_leader(q.AckNewLeader(nl.zxid))

    def _up_to_date(self) -> None:
        nl = self.newleader
        if nl is None or self.phase != "acked":
            self.end(EXIT_ROLE_ENDED, "UpToDate before the synchronization finished", phase=self.phase)
            return
        self.phase = "serving"
        self.released_zxid = nl.zxid
        self.deadline = self.last_heard + self.cfg.sync_limit * self.tick_s
        self.log.info("up_to_date", zxid=fmt(nl.zxid), epoch=nl.epoch, leader=self.leader_sid)
        self.tell("session", LeaderUp(epoch=nl.epoch, role=self.role_name))

    def _release(self) -> None:
        """Pass committed entries to the session actor, in order, once they are on this disk."""
        if self.phase != "serving":
            return
        commits = self.commits
        out = self.to_session
        while commits:
            head = commits[0]
            if isinstance(head, Marker):
                out.append(commits.popleft())
                continue
            if head > self.last_logged:
                return
            commits.popleft()
            txn = self.proposals.pop(head, None)
            if txn is None:
                if head <= self.released_zxid:
                    continue
                self.end(EXIT_ROLE_ENDED, "commit of a txn never proposed", zxid=fmt(head))
                return
            out.append(txn)
            self.released_zxid = head

    # --- local messages -------------------------------------------------------------------------

    def on_message(self, msg: Any, now: float) -> None:
        if isinstance(msg, Logged):
            if msg.sid != self.sid or self.phase == "starting":
                return
            self.last_logged = max(self.last_logged, msg.zxid)
            if not self.observer and self.phase in ("acked", "serving"):
                self._to_leader(q.Ack(msg.zxid))
            self._maybe_ack_new_leader()
        elif isinstance(msg, LogReady):
            self._on_log_ready(msg)
        elif isinstance(msg, WriteRequest):
            if self.phase == "serving":
                self._to_leader(msg)
        elif isinstance(msg, Touch):
            if self.phase != "starting":
                self._to_leader(msg)
        elif isinstance(msg, Hello):
            if self.phase == "serving":
                self.tell("session", SyncPoint(zxid=self.released_zxid, epoch=self.epoch, role=self.role_name))
        else:
            self.log.warning("unexpected_message", type=type(msg).__name__)

    def _on_log_ready(self, msg: LogReady) -> None:
        if self.phase == "starting":
            self.last_logged = self.appended = msg.last_zxid
            self.phase = "connecting"
            self.deadline = max(self.deadline, self.last_heard + self.cfg.init_limit * self.tick_s)
            accepted = epochs.read_epoch(self.dir, "acceptedEpoch")
            self._to_leader(q.FollowerInfo(self.sid, accepted, msg.last_zxid, self.observer))
            return
        if self.pending_log:
            self.pending_log -= 1
            self.last_logged = self.appended = msg.last_zxid
            self._maybe_ack_new_leader()
            return
        if msg.last_zxid >= self.appended:
            # A repeated answer (or a restarted log actor that lost nothing we sent): its end is durable.
            if msg.last_zxid > self.last_logged:
                self.on_message(Logged(self.sid, msg.last_zxid), 0.0)
            return
        # The log actor restarted and lost appends we sent: start over from a clean sync.
        self.end(EXIT_ROLE_ENDED, "the log actor restarted", last_zxid=fmt(msg.last_zxid))

    def on_batch_end(self, now: float) -> None:
        self._release()
        if self.to_session:
            self.tell("session", Committed(entries=self.to_session))
            self.to_session = []
