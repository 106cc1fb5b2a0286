"""Messages between nodes: the election protocol (election port) and ZAB's quorum protocol
(leader <-> learners on the leader's quorum port).

Quorum channel framing: every message is a multipart `[seq, payload]` where `seq` is an 8-byte
big-endian counter per direction and per channel (a learner actor incarnation). The receiver
expects exactly the next number: a gap means messages were lost, and the learner goes back to
election and synchronization instead of trusting a half-delivered stream.
"""

from __future__ import annotations

import struct

import msgspec

from actors.protocol.internal import OwnSession, Touch, WriteRequest
from actors.protocol.txn import Entry, Marker, Txn

SEQ = struct.Struct(">Q")

LOOKING = "looking"
FOLLOWING = "following"
LEADING = "leading"
OBSERVING = "observing"


class Notification(msgspec.Struct, array_like=True, frozen=True, tag="vote", tag_field="tag"):
    """A fast-leader-election notification: `sid` (in `state`, election round `round`) votes for
    `leader`, whose history ends at (`epoch`, `zxid`)."""

    sid: int
    state: str
    round: int
    leader: int
    zxid: int
    epoch: int
    # The membership the sender has in force, when a reconfig made it (0 / empty: the configured
    # one): a node that missed that reconfig's commit (down, cut off, its log ahead of what it
    # applied) takes it from any peer, as ZooKeeper's notifications carry their config.
    config_version: int = 0
    config: bytes = b""


class Peer(msgspec.Struct, array_like=True, frozen=True, tag_field="tag"):
    """Base of the quorum protocol's messages."""


# --- learner -> leader ---------------------------------------------------------------------------


class FollowerInfo(Peer, tag="finfo"):
    """Discovery: a learner's accepted epoch and the end of its log."""

    sid: int
    accepted_epoch: int
    last_zxid: int
    observer: bool = False


class AckEpoch(Peer, tag="ackepoch"):
    current_epoch: int
    last_zxid: int
    # False: the learner had accepted this epoch already (from this leader before a reconnect, or
    # from a rival that proposed the same number): it syncs, but it does not count towards the
    # quorum that establishes the epoch, since no learner may vouch for one epoch twice (ZooKeeper
    # sends -1 as the epoch for this).
    fresh: bool = True


class AckNewLeader(Peer, tag="acknl"):
    zxid: int


class Ack(Peer, tag="ack"):
    """Everything through `zxid` is durable in the learner's log."""

    zxid: int


class Ping(Peer, tag="ping"):
    """Heartbeat, both directions."""


class ProbeAck(Peer, tag="probeack"):
    """The answer to Probe(n): this learner still follows the leader that sent it."""

    n: int


# --- leader -> learner ---------------------------------------------------------------------------


class LeaderInfo(Peer, tag="linfo"):
    epoch: int


class Trunc(Peer, tag="trunc"):
    """Drop every txn after `zxid` (ones the new leader's history does not have)."""

    zxid: int


class Snap(Peer, tag="snap"):
    """The leader's whole tree at `zxid` (the learner is too far behind for a diff)."""

    zxid: int
    data: bytes


class Diff(Peer, tag="diff"):
    txns: list[Txn]


class NewLeader(Peer, tag="newleader"):
    """Synchronization sent: the learner has the leader's history through `zxid` once logged."""

    epoch: int
    zxid: int


class UpToDate(Peer, tag="uptodate"):
    """A quorum has the leader's history: serve clients."""


class Probe(Peer, tag="probe"):
    """Does a quorum still follow me? Answers that are not txns (syncs, checks, errors) wait for a
    quorum of ProbeAck(n) to a probe sent after they were decided (Raft's ReadIndex)."""

    n: int


class Proposal(Peer, tag="proposal"):
    txns: list[Txn]


class Commit(Peer, tag="commit"):
    """Committed entries in decided order: a txn as its zxid (sent earlier as a Proposal), a
    Marker (an ordered answer that changes nothing) whole."""

    entries: list[int | Marker]


class Inform(Peer, tag="inform"):
    """Committed entries, whole, for an observer (it never saw the proposals)."""

    entries: list[Entry]


class Dropped(Peer, tag="dropped"):
    """To a learner whose channel the leader no longer knows (it dropped it: silent, behind...):
    start over now instead of waiting out its own timeouts. Sent on a fresh channel, so a learner
    past its first message sees a sequence gap, which ends its role just the same."""

    reason: str


ToLeader = FollowerInfo | AckEpoch | AckNewLeader | Ack | Ping | WriteRequest | Touch | ProbeAck | OwnSession
ToLearner = (
    LeaderInfo | Trunc | Snap | Diff | NewLeader | UpToDate | Proposal | Commit | Inform | Ping | Probe | Dropped
)
