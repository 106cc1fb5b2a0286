"""Messages between the actors of a node (over ipc://) and, later, between nodes.

Every actor has one inbox; each frame is one message of that inbox's union. Actors only tell:
an answer is a message matched by ids, never a blocking ask.
"""

from __future__ import annotations

import msgspec

from actors.protocol.txn import Entry, Txn
from runtime.config import ServerEntry
from zoomq.protocol import Check, Close, Create, Delete, Multi, Reconfig, SetACL, SetData, Sync
from zoomq.security import Id


class Internal(msgspec.Struct, array_like=True, frozen=True, tag_field="tag"):
    """Base of internal messages."""


class OpenSession(Internal, tag="open"):
    """A new session, id and password chosen by the session actor that took the connection."""

    session_id: int
    timeout_ms: int
    passwd: bytes


ForwardedOp = Create | Delete | SetData | SetACL | Check | Multi | Sync | Close | Reconfig | OpenSession


class WriteRequest(Internal, tag="wreq"):
    """A write (or sync / session open / close) sent from a session actor to the leader's prep."""

    origin: int  # server id of the node holding the client's connection
    session_id: int
    cxid: int
    op: ForwardedOp
    auth: list[Id] = []
    # The client connection the session is bound to there (ZooKeeper's session owner): a request
    # through a connection that no longer owns the session is answered SESSIONMOVED. 0 = unchecked.
    conn: int = 0
    # The leader's epoch the session actor was synchronized with when it sent this (0 = unchecked):
    # a request queued for a role actor that has since ended must not reach the next leader.
    epoch: int = 0


class OwnSession(Internal, tag="own"):
    """A session resumed on a new connection: from now on it is that connection's (the newest
    connection owns a session, as in ZooKeeper)."""

    origin: int
    session_id: int
    conn: int
    epoch: int = 0  # as WriteRequest.epoch: a resume heard by an older leader must not move it now


def sent_in_another_epoch(msg: WriteRequest | OwnSession, epoch: int) -> bool:
    """Stamped by a session actor that followed another leader than the one of `epoch` (it sat
    queued for a role actor that ended): that session actor has failed it already, and a resume
    that old must not take a session from the connection that resumed it since."""
    return msg.epoch != 0 and msg.epoch != epoch


class Touch(Internal, tag="touch"):
    """Sessions that showed activity (requests or pings) since the last report."""

    origin: int
    sessions: list[int]


class Hello(Internal, tag="hello"):
    """A session actor (re)started or lost track: asks where the committed stream stands.
    To the log actor: asks for its durable end (`LogReady`), sent to `reply_to` (default: the
    role actor)."""

    origin: int
    reply_to: str = ""


class SyncPoint(Internal, tag="syncpoint"):
    """Answer to Hello: everything up to `zxid` is committed and on this node's disk; every
    Committed message after this one carries entries after it. `epoch` is the leader's."""

    zxid: int
    epoch: int
    role: str = "standalone"


class Committed(Internal, tag="commit"):
    """Committed txns (in zxid order) and markers, in the order the leader decided them."""

    entries: list[Entry]


class LeaderUp(Internal, tag="leaderup"):
    """A (new) leader chain is serving: forwarded requests not yet answered are lost. `role`:
    what this node is in it (standalone, leader, follower, observer)."""

    epoch: int
    role: str = "standalone"


class Looking(Internal, tag="looking"):
    """To the session actor: this node left the quorum (no role actor runs); refuse clients
    so that they go to a node that can serve them."""


class Reconfigured(Internal, tag="reconfigured"):
    """From the session actor to the supervisor: a reconfig committed here (or the state read
    from disk holds one): the membership from `version` (its zxid) on. The supervisor keeps it in
    the data dir and hands it to the election actor (and a role actor it concerns)."""

    servers: list[ServerEntry]
    version: int


class Look(Internal, tag="look"):
    """To the election actor: start an election round; `suspect`: the leader this node followed
    until its role ended (-1: none), not voted for during `suspect_ms` (actors/election/fle.py)."""

    suspect: int = -1
    suspect_ms: int = 0


class Elected(Internal, tag="elected"):
    """From the election actor to the supervisor: the outcome (`state` is leading, following
    or observing; `leader` the winner's sid). From the supervisor to a restarted election actor:
    the state the node is serving in, so that it answers peers that look."""

    state: str
    leader: int
    zxid: int
    epoch: int
    round: int = 0


class Truncate(Internal, tag="trunc"):
    """To the log actor: drop every txn after `zxid` (ZAB's TRUNC). With `snapshot` set, a
    snapshot at `zxid` was just installed: the log then continues from `zxid`. Answered by
    `LogReady`."""

    zxid: int
    snapshot: bool = False


class Append(Internal, tag="append"):
    """Log these txns (zxids increasing, contiguous after what the log has) and fsync."""

    txns: list[Txn]


class Logged(Internal, tag="logged"):
    """Everything up to `zxid` is durable in `sid`'s log (the ACK of ZAB)."""

    sid: int
    zxid: int


class LogReady(Internal, tag="logready"):
    """The log actor (re)started; its durable log ends at `last_zxid`."""

    sid: int
    last_zxid: int


class Snapshotted(Internal, tag="snapped"):
    """A snapshot through `zxid` is on disk: the log may roll and purge."""

    zxid: int


class Ready(Internal, tag="ready"):
    """An actor finished starting (to the supervisor)."""

    actor: str
    pid: int


class StatusQuery(Internal, tag="statusq"):
    reply_to: str


class AdminQuery(Internal, tag="adminq"):
    """From the ops actor to the session actor: an AdminServer command ("json:<command>") or
    "metrics"; answered with AdminAnswer (JSON text) to `reply_to`."""

    id: int
    command: str
    reply_to: str


class AdminAnswer(Internal, tag="admina"):
    id: int
    text: bytes


class LogStats(Internal, tag="logstats"):
    """From the log actor to the ops actor (when /metrics is on), every few seconds: its fsyncs'
    latency histogram (runtime/latency.py `Latencies.snapshot()`, as JSON)."""

    fsync: bytes
    queued: dict[str, int] = {}  # its bus queues: frames not yet written, per destination


class LearnerStats(Internal, tag="lstats"):
    """From the leader to its session actor, every heartbeat: its learners, for `mntr`
    (ZooKeeper's zk_learners / zk_synced_followers / zk_synced_observers / zk_pending_syncs)."""

    learners: int  # connected, in any phase
    synced_followers: int  # voting followers past synchronization
    synced_observers: int
    pending_syncs: int  # learners being synchronized (DIFF/TRUNC/SNAP sent, NEWLEADER not acked)
    # zoomq's ZAB counters (for /metrics): txns proposed, entries committed, commit rounds
    # (committed / rounds = the batch size), and each voting learner's lag (txns its log is
    # behind the last commit).
    proposed: int = 0
    committed: int = 0
    commit_rounds: int = 0
    lag: dict[int, int] = {}


InternalMsg = (
    WriteRequest
    | OwnSession
    | Touch
    | Hello
    | SyncPoint
    | Committed
    | LeaderUp
    | Looking
    | Look
    | Reconfigured
    | Elected
    | Truncate
    | Append
    | Logged
    | LogReady
    | Snapshotted
    | Ready
    | StatusQuery
    | AdminQuery
    | AdminAnswer
    | LogStats
    | LearnerStats
)
