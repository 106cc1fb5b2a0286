"""A node's simulated disk and log writer: what survives a crash is what was fsynced, plus maybe a
prefix of what was written after (a torn tail is cut at recovery, as the real log's framed records
are); epochs and snapshots are written atomically and durably at once, as the real shells do.

The log writer (the real log actor's behaviour): Append adds txns after the log's end (a
non-contiguous append is refused, as the real one does), an fsync a little later makes everything
appended before it durable and answers `Logged`; Truncate cuts the log (and, for an installed
snapshot, restarts it from the snapshot's zxid) and answers `LogReady`; Hello syncs what was
written and answers `LogReady` with the durable end.
"""

from __future__ import annotations

from typing import Any

from actors.protocol.internal import Append, Hello, Logged, LogReady, Truncate
from actors.protocol.txn import Txn
from actors.protocol.zxid import follows
from actors.session.tree import DataTree


class SimDisk:
    def __init__(self) -> None:
        self.log: list[Txn] = []  # durable
        self.base = 0  # the zxid the log continues from (a snapshot's), 0 for none
        self.pending: list[Txn] = []  # written, not yet fsynced
        self.epochs = {"acceptedEpoch": 0, "currentEpoch": 0}
        self.snapshots: dict[int, bytes] = {}
        self.membership: Any = None  # membership.json (written whole, durably, as the supervisor does)

    @property
    def last_durable(self) -> int:
        return self.log[-1].zxid if self.log else self.base

    @property
    def last_written(self) -> int:
        return self.pending[-1].zxid if self.pending else self.last_durable

    def crash(self, rng: Any) -> None:
        """Power off: a random prefix of the unsynced tail may have reached the platter."""
        keep = rng.randint(0, len(self.pending)) if self.pending else 0
        self.log.extend(self.pending[:keep])
        self.pending = []

    def state(self, upto: int) -> DataTree:
        """The tree at `upto` from disk: the newest snapshot at or below it, then the log."""
        snaps = [z for z in self.snapshots if z <= upto]
        tree = DataTree.from_snapshot(self.snapshots[max(snaps)]) if snaps else DataTree()
        for txn in self.log:
            if tree.last_zxid < txn.zxid <= upto:
                tree.apply(txn, results=False)
        return tree

    # --- the leader's History (actors/leader/leader.py) ---------------------------------------

    def window(self, upto: int) -> tuple[int, list[Txn]]:
        snaps = [z for z in self.snapshots if z <= upto]
        base = max(snaps) if snaps else 0
        return base, [t for t in self.log if base < t.zxid <= upto]

    def snapshot(self, upto: int) -> tuple[int, bytes]:
        base, _ = self.window(upto)  # the stored snapshot the window starts from, as the shell's
        return (base, self.snapshots[base]) if base else (upto, self.state(upto).to_snapshot())


class SimLog:
    """The log writer of one node over its SimDisk; answers through `reply(dest, msg)`."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.fsync_at: float | None = None
        self.syncing: int = 0  # how many pending txns the running fsync covers

    def receive(self, msg: Any) -> None:
        disk = self.node.disk
        if isinstance(msg, Append):
            for txn in msg.txns:
                if txn.zxid <= disk.last_written:
                    continue  # already has it (a resend)
                if not follows(disk.last_written, txn.zxid):
                    self.node.crash_actor("log: non-contiguous append")
                    return
                disk.pending.append(txn)
            self._start_fsync()
        elif isinstance(msg, Truncate):
            self._flush_now()
            if msg.snapshot:
                disk.log = []
                disk.base = msg.zxid
            else:
                disk.log = [t for t in disk.log if t.zxid <= msg.zxid]
            self.node.reply("role", LogReady(self.node.sid, disk.last_durable))
        elif isinstance(msg, Hello):
            self._flush_now()  # as the real log actor: everything written before a Hello is synced first
            self.node.reply(msg.reply_to or "role", LogReady(self.node.sid, disk.last_durable))

    def _start_fsync(self) -> None:
        if self.fsync_at is None and self.node.disk.pending:
            world = self.node.world
            self.fsync_at = world.now + world.rng.uniform(0.0002, 0.003) * world.faults.slow_disk
            self.syncing = len(self.node.disk.pending)
            incarnation = self.node.incarnation
            world.at(self.fsync_at, lambda: self._fsynced(incarnation), f"fsync {self.node.sid}")

    def _fsynced(self, incarnation: int) -> None:
        node = self.node
        if incarnation != node.incarnation or not node.up:
            return
        disk = node.disk
        done, disk.pending = disk.pending[: self.syncing], disk.pending[self.syncing :]
        disk.log.extend(done)
        self.fsync_at = None
        if done:
            node.reply("role", Logged(node.sid, disk.last_durable))
        self._start_fsync()

    def _flush_now(self) -> None:
        disk = self.node.disk
        disk.log.extend(disk.pending)
        disk.pending = []
