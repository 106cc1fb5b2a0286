"""The proposer/committer core: outstanding entries in decided order, committed by quorum.

In:  `propose(entry)` from prep (a Txn to replicate or a Marker that only needs ordering),
     `logged(sid, zxid)` when a voter's log has everything through zxid durable (ZAB's ACK).
Out: `take_committed()`: the entries whose turn has come, strictly in the order proposed.

Rules:
- A Txn commits once a quorum of voters has it durable AND the leader's own log has it durable,
  so that "committed" always implies "on this node's disk" (the local session actor may then
  read anything committed from disk when it resynchronises).
- Commits never skip: an entry is released only after every entry proposed before it.
- A Marker carries no zxid; it is released as soon as everything before it is released.
- `resend_after(zxid)` names the outstanding txns a restarted log (or a lagging learner) is missing.
- A reconfig (`reconfig(zxid, voters)`, proposed at zxid) commits only once a quorum of the old
  voters AND a quorum of the new ones have it (and so does every txn after it until then); from
  its commit on, the new voters alone decide (ZooKeeper's reconfig: both quorums ack the change).
  One reconfig at a time (prep refuses a second: ReconfigInProgress).
"""

from __future__ import annotations

from collections import deque

from actors.protocol import majority
from actors.protocol.txn import Entry, Txn


class Proposer:
    def __init__(self, *, me: int, voters: frozenset[int], committed_zxid: int) -> None:
        self.me = me
        self.voters = voters
        self.committed_zxid = committed_zxid
        self.last_proposed_zxid = committed_zxid
        self._queue: deque[Entry] = deque()
        self._acked: dict[int, int] = {sid: 0 for sid in voters}
        self.next_voters: tuple[int, frozenset[int]] | None = None  # (the reconfig's zxid, its voters)

    def propose(self, entry: Entry) -> None:
        if isinstance(entry, Txn):
            if entry.zxid <= self.last_proposed_zxid:
                raise AssertionError(f"zxid {entry.zxid:#x} proposed after {self.last_proposed_zxid:#x}")
            self.last_proposed_zxid = entry.zxid
        self._queue.append(entry)

    def reconfig(self, zxid: int, voters: frozenset[int]) -> None:
        """The txn at `zxid` (proposed) changes the voters to `voters` when it commits."""
        if self.next_voters is not None:
            raise AssertionError(f"reconfig at {zxid:#x} while the one at {self.next_voters[0]:#x} is outstanding")
        self.next_voters = (zxid, voters)

    def logged(self, sid: int, zxid: int) -> None:
        """`sid` (a voter, or a learner that may become one by a reconfig) has its log durable
        through zxid."""
        if zxid <= self._acked.get(sid, 0):
            return
        self._acked[sid] = zxid
        # The commit point: the highest zxid a quorum of voters has durable, the leader's own log included.
        point = min(majority.committed_point(self._acked, self.voters), self._acked.get(self.me, 0))
        if self.next_voters is not None and point >= self.next_voters[0]:
            at, voters = self.next_voters
            if majority.committed_point(self._acked, voters) < at:
                point = at - 1  # the reconfig and what follows wait for the new voters' quorum
            else:
                self.voters, self.next_voters = voters, None
                point = min(majority.committed_point(self._acked, voters), self._acked.get(self.me, 0))
        if point > self.committed_zxid:
            self.committed_zxid = min(point, self.last_proposed_zxid)

    def take_committed(self) -> list[Entry]:
        out: list[Entry] = []
        queue = self._queue
        committed = self.committed_zxid
        while queue:
            head = queue[0]
            if isinstance(head, Txn) and head.zxid > committed:
                break
            out.append(queue.popleft())
        return out

    def outstanding_txns(self) -> list[Txn]:
        return [e for e in self._queue if isinstance(e, Txn)]

    def resend_after(self, zxid: int) -> list[Txn]:
        return [e for e in self._queue if isinstance(e, Txn) and e.zxid > zxid]

    @property
    def acked(self) -> dict[int, int]:
        """Each server's durable log end, as its acks said (read-only view)."""
        return self._acked

    @property
    def pending(self) -> int:
        return len(self._queue)
