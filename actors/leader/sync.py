"""How the leader brings one learner to its history (ZAB's synchronization), pure.

In:  the learner's last logged zxid, the leader's diff window (the zxid its newest snapshot
     covers, `base`, and the zxids of its logged txns after it, ascending), and `sync_to`, the
     end of what is being synchronized.
Out: `SyncPlan(kind, common)`:
- "diff"  : the learner's log is a prefix of the leader's: send the txns after `common`.
- "trunc" : the learner holds txns the leader's history does not (a dead leader's proposals
            that were never committed): truncate it to `common`, then send the txns after it.
- "snap"  : the learner is older than the window: send the whole tree.

Why the greatest leader zxid <= the learner's last is the point in common: within one epoch the
txns any node logged are a prefix of that epoch leader's proposals, and everything before the
learner's last epoch is committed history the new leader holds (it was elected for having the
newest (epoch, zxid)); so the two logs agree up to that point and differ only after it.
"""

from __future__ import annotations

import bisect
from typing import Protocol

import msgspec

from actors.protocol.txn import Txn


class SyncPlan(msgspec.Struct, frozen=True):
    kind: str  # "diff" | "trunc" | "snap"
    common: int


class PreparedSync(msgspec.Struct, frozen=True):
    """What bringing one learner to `upto` takes, read from the leader's history (off its loop):
    the plan, the txns to send after `plan.common` (diff, trunc) or the state at `upto` (snap)."""

    upto: int
    plan: SyncPlan
    txns: list[Txn]
    snapshot: bytes | None = None
    snapshot_zxid: int = 0  # the state `snapshot` holds; `txns` follow it through `upto`


class History(Protocol):
    """The leader's own history (the shell's disk, the simulator's memory)."""

    def window(self, upto: int) -> tuple[int, list[Txn]]:
        """(base, txns): the txns after the newest snapshot at or below `upto`, through `upto`."""

    def snapshot(self, upto: int) -> tuple[int, bytes]:
        """(zxid, DataTree.to_snapshot bytes): a state at `zxid` <= `upto` from which the window's
        txns lead to `upto` (the newest snapshot as stored: nothing to decode or rebuild)."""


def prepare(history: History, learner_last: int, upto: int) -> PreparedSync:
    """Read what synchronizing a learner whose log ends at `learner_last` takes. The slow part of
    a learner's synchronization: the shell runs it away from the leader's loop. A learner already
    at `upto` (after a failover, most are) needs nothing read."""
    if learner_last == upto:
        return PreparedSync(upto, SyncPlan("diff", upto), [])
    base, txns = history.window(upto)
    plan = plan_sync(learner_last, base, [t.zxid for t in txns], upto)
    if plan.kind == "snap":
        at, data = history.snapshot(upto)  # then the txns after it: SNAP, then DIFF
        return PreparedSync(upto, plan, [t for t in txns if t.zxid > at], data, at)
    return PreparedSync(upto, plan, [t for t in txns if t.zxid > plan.common])


def plan_sync(learner_last: int, base: int, window: list[int], sync_to: int) -> SyncPlan:
    if learner_last == sync_to:
        return SyncPlan("diff", sync_to)
    if learner_last < base:
        return SyncPlan("snap", sync_to)
    upto = [z for z in window if z <= sync_to] if window and window[-1] > sync_to else window
    i = bisect.bisect_right(upto, learner_last)
    common = upto[i - 1] if i > 0 else base
    if common == learner_last:
        return SyncPlan("diff", common)
    return SyncPlan("trunc", common)
