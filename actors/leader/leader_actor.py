"""The leader actor: prep -> proposer -> committer on one process (a standalone node is a leader
whose quorum is itself).

Start: ask the log actor for its durable end (Hello -> LogReady), pick a new epoch above every
epoch seen on disk and persist it, load the state from disk through that point, then announce
`LeaderUp` to the session actor. Write requests that arrive earlier are held (bounded).

Per batch: every WriteRequest goes through prep (a Txn or an ordered Marker) into the proposer;
the batch's txns go to the log as ONE Append (the log writer group-commits); `Logged` acks advance
the commit point; committed entries go to the session actor as one `Committed` message, in order.
Session expiry (SessionTracker) and container/TTL reaping run on timers and produce txns through
the same path.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from actors.leader.prep import Prep
from actors.leader.proposer import Proposer
from actors.leader.sessions import SessionTracker
from actors.log import epochs
from actors.log.recovery import load_state
from actors.protocol.internal import (
    Append,
    Committed,
    Hello,
    LeaderUp,
    Logged,
    LogReady,
    SyncPoint,
    Touch,
    WriteRequest,
)
from actors.protocol.txn import CloseSessionTxn, CreateSessionTxn, Txn
from actors.protocol.zxid import epoch_of, fmt
from runtime.actor import Actor

MAX_HELD_REQUESTS = 100_000
LOG_HELLO_RETRY_S = 1.0


def _now_ms() -> int:
    return int(time.time() * 1000)


class LeaderActor(Actor):
    name = "leader"

    def on_start(self, now: float) -> None:
        self.dir = Path(self.cfg.data_dir) / "version-1"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sid = self.cfg.sid
        self.ready = False
        self.held: list[WriteRequest] = []
        self.to_append: list[Txn] = []
        self.prep: Prep | None = None
        self.proposer: Proposer | None = None
        self.tracker = SessionTracker(tick_ms=self.cfg.tick_ms)
        self.epoch = 0
        self.next_reap = now + self.cfg.container_check_ms / 1000.0
        self.hello_due = now + LOG_HELLO_RETRY_S
        self.tell("log", Hello(origin=self.sid))

    # --- timers ---------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        if not self.ready:
            return self.hello_due
        deadline = self.next_reap
        due_ms = self.tracker.next_deadline_ms()
        if due_ms is not None:
            left_ms = due_ms - _now_ms()
            # Already due: a deadline in the past, so that the loop calls on_timer now.
            deadline = min(deadline, 0.0 if left_ms <= 0 else time.monotonic() + left_ms / 1000.0)
        return deadline

    def on_timer(self, now: float) -> None:
        if not self.ready:
            self.tell("log", Hello(origin=self.sid))
            self.hello_due = now + LOG_HELLO_RETRY_S
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

    # --- messages -------------------------------------------------------------------------------

    def on_message(self, msg: Any, now: float) -> None:
        if isinstance(msg, WriteRequest):
            if not self.ready:
                if len(self.held) < MAX_HELD_REQUESTS:
                    self.held.append(msg)
                return
            self._on_write(msg)
        elif isinstance(msg, Logged):
            if self.proposer is not None:
                self.proposer.logged(msg.sid, msg.zxid)
        elif isinstance(msg, Touch):
            now_ms = _now_ms()
            for session_id in msg.sessions:
                self.tracker.touch(session_id, now_ms)
        elif isinstance(msg, Hello):
            if self.ready:
                assert self.proposer is not None
                self.tell("session", SyncPoint(zxid=self.proposer.committed_zxid, epoch=self.epoch))
        elif isinstance(msg, LogReady):
            self._on_log_ready(msg)
        else:
            self.log.warning("unexpected_message", type=type(msg).__name__)

    def _on_log_ready(self, msg: LogReady) -> None:
        if self.ready:
            # The log actor restarted: whatever it had not made durable must be sent again.
            assert self.proposer is not None
            # What it has is durable (its Logged may have died with it); the rest goes again.
            self.proposer.logged(msg.sid, msg.last_zxid)
            missing = self.proposer.resend_after(msg.last_zxid)
            self.log.info("log_restarted", last_zxid=fmt(msg.last_zxid), resend=len(missing))
            if missing:
                self.tell("log", Append(txns=missing))
            return
        last = msg.last_zxid
        accepted = epochs.read_epoch(self.dir, "acceptedEpoch")
        current = epochs.read_epoch(self.dir, "currentEpoch")
        self.epoch = max(accepted, current, epoch_of(last)) + 1
        epochs.write_epoch(self.dir, "acceptedEpoch", self.epoch)
        epochs.write_epoch(self.dir, "currentEpoch", self.epoch)
        tree = load_state(self.dir, upto=last, log=self.log)
        self.prep = Prep(tree, epoch=self.epoch, max_data_bytes=self.cfg.max_data_bytes, log=self.log)
        self.proposer = Proposer(me=self.sid, voters=frozenset({self.sid}), committed_zxid=last)
        now_ms = _now_ms()
        for session_id, info in tree.sessions.items():
            self.tracker.add(session_id, info.timeout_ms, now_ms)
        self.ready = True
        self.log.info("leading", epoch=self.epoch, zxid=fmt(last), znodes=tree.node_count(), sessions=len(tree.sessions))
        self.tell("session", LeaderUp(epoch=self.epoch))
        held, self.held = self.held, []
        for req in held:
            self._on_write(req)

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
        if self.to_append:
            self.tell("log", Append(txns=self.to_append))
            self.to_append = []
        if self.proposer is not None:
            done = self.proposer.take_committed()
            if done:
                self.tell("session", Committed(entries=done))
