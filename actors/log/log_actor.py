"""The log writer actor: appends txns and fsyncs them in groups, then acknowledges.

Rules:
- Nothing is acknowledged (`Logged`) before the fsync that covers it.
- One fsync per batch: every Append received while the previous fsync ran is written and synced
  together (group commit, as ZooKeeper's SyncRequestProcessor).
- On start the log is recovered (torn tail cut), snapshots beyond the retention (one finished as
  the node went down, before its purge) are purged, and `LogReady` says where it ends; a `Hello`
  gets the same answer (to its `reply_to`), so a restarted role actor or the election learns the
  durable end. The durable end is the log's last txn, or a newer snapshot installed from a
  leader (ZAB's SNAP), whichever is later.
- `Truncate(zxid)` drops the txns after zxid (ZAB's TRUNC) and answers `LogReady`.
- `Snapshotted(zxid)` rolls the log and purges snapshots beyond the retention and the logs that
  no kept snapshot needs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec

from actors.log import snapshot
from actors.log.txnlog import TxnLog
from actors.protocol.internal import Append, Hello, Logged, LogReady, LogStats, Snapshotted, Truncate
from actors.protocol.zxid import fmt
from runtime.actor import Actor
from runtime.latency import Latencies

STATS_EVERY_S = 2.0  # fsync latencies to the ops actor, when /metrics is on


class LogActor(Actor):
    name = "log"

    def on_start(self, now: float) -> None:
        self.dir = Path(self.cfg.data_dir) / "version-1"
        self.txnlog = TxnLog(self.dir, roll_bytes=self.cfg.log_roll_bytes, log=self.log)
        last = self.txnlog.recover()
        removed = snapshot.remove_temp_files(self.dir)
        if len(snapshot.list_snapshots(self.dir)) > self.cfg.snapshot_retain:
            # A snapshot finished as the node went down, before its purge: purge now.
            self.txnlog.purge(snapshot.purge_snapshots(self.dir, self.cfg.snapshot_retain))
        newest = snapshot.list_snapshots(self.dir)
        if newest and newest[0][0] > last:
            last = self.txnlog.last_zxid = newest[0][0]  # a leader's snapshot newer than the log
        self.reply_to = "role"
        self.dirty = False
        self.fsyncs = Latencies()
        self.stats_due = now if self.cfg.metrics_port else None  # only the ops actor wants them
        self.log.info("log_recovered", last_zxid=fmt(last), temp_files_removed=removed)
        self.tell(self.reply_to, LogReady(sid=self.cfg.sid, last_zxid=last))

    def on_message(self, msg: Any, now: float) -> None:
        if isinstance(msg, Append):
            if self.txnlog.append(msg.txns):
                self.dirty = True
            if self.txnlog.gap_opened:  # appends were lost on the way: the sender must know at once
                self.txnlog.sync()
                self.dirty = False
                self.tell(self.reply_to, LogReady(sid=self.cfg.sid, last_zxid=self.txnlog.last_zxid))
        elif isinstance(msg, Hello):
            self.txnlog.sync()
            self.tell(msg.reply_to or self.reply_to, LogReady(sid=self.cfg.sid, last_zxid=self.txnlog.last_zxid))
        elif isinstance(msg, Truncate):
            self.txnlog.truncate_after(msg.zxid)
            if msg.snapshot:
                self.txnlog.last_zxid = msg.zxid
            self.dirty = False
            self.log.info("log_truncated", zxid=fmt(msg.zxid), snapshot=msg.snapshot)
            self.tell(self.reply_to, LogReady(sid=self.cfg.sid, last_zxid=self.txnlog.last_zxid))
        elif isinstance(msg, Snapshotted):
            self.txnlog.roll()
            oldest_kept = snapshot.purge_snapshots(self.dir, self.cfg.snapshot_retain)
            removed = self.txnlog.purge(oldest_kept)
            self.log.info("purged", snapshot=fmt(msg.zxid), oldest_kept=fmt(oldest_kept), logs_removed=len(removed))
        else:
            self.log.warning("unexpected_message", type=type(msg).__name__)

    def on_batch_end(self, now: float) -> None:
        if self.dirty:
            started = time.perf_counter()
            self.txnlog.sync()
            self.fsyncs.record("fsync", (time.perf_counter() - started) * 1000.0)
            self.dirty = False
            self.tell(self.reply_to, Logged(sid=self.cfg.sid, zxid=self.txnlog.last_zxid))

    # --- /metrics (the ops actor) ---------------------------------------------------------------

    def next_deadline(self) -> float | None:
        return self.stats_due

    def on_timer(self, now: float) -> None:
        if self.stats_due is not None and now >= self.stats_due:
            self.stats_due = now + STATS_EVERY_S
            self.tell("ops", LogStats(msgspec.json.encode(self.fsyncs.snapshot()), self.bus.queued_by_dest()))

    def on_stop(self) -> None:
        self.txnlog.close()
