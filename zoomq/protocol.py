"""The client protocol: every message between a client and a node's session actor.

Transport: the node's client port is a ZeroMQ ROUTER on tcp; a client is a DEALER. Each ZeroMQ
frame holds exactly one message, msgpack-encoded as a tagged array (`array_like`: the field order
below is the wire contract; fields are only ever appended, with defaults). A multipart message is
simply several messages sent together (batching); each frame is decoded on its own.

Rules (docs/protocol.md has the long form):
- The first message on a connection is `Connect`; the node answers `Connected`. A `Connected` with
  `timeout_ms == 0` means the session expired (or the password was wrong): start a new session.
- Every request carries a client-chosen `xid`; the reply carries the same xid. Replies come back in
  request order per session. Special xids as ZooKeeper: -2 ping, -4 auth, -8 set-watches.
- `Reply.err` is ZooKeeper's error code (`zoomq.exceptions.Codes`); `body` is present only when
  `err == 0` (and for multi, where per-op errors are inside the body, as ZooKeeper does it).
- `Event` is a watch notification; it arrives before any reply that shows the new state.
"""

from __future__ import annotations

import msgspec

from zoomq.security import ACL
from zoomq.states import ZnodeStat

PROTOCOL_VERSION = 1
PING_XID = -2
AUTH_XID = -4
SET_WATCHES_XID = -8

# CreateMode flags, as ZooKeeper numbers them.
PERSISTENT = 0
EPHEMERAL = 1
PERSISTENT_SEQUENTIAL = 2
EPHEMERAL_SEQUENTIAL = 3
CONTAINER = 4
PERSISTENT_WITH_TTL = 5
PERSISTENT_SEQUENTIAL_WITH_TTL = 6

# addWatch modes and WatcherType codes (removeWatches), as ZooKeeper numbers them.
WATCH_MODE_PERSISTENT = 0
WATCH_MODE_PERSISTENT_RECURSIVE = 1
WATCHER_CHILDREN = 1
WATCHER_DATA = 2
WATCHER_ANY = 3
WATCHER_PERSISTENT = 4
WATCHER_PERSISTENT_RECURSIVE = 5

# ZooKeeper's numeric EventType and KeeperState codes used in `Event`.
EVENT_NODE_CREATED = 1
EVENT_NODE_DELETED = 2
EVENT_NODE_DATA_CHANGED = 3
EVENT_NODE_CHILDREN_CHANGED = 4
EVENT_RESYNC = 100  # zoomq only: the events a resumed persistent watch asked for are no longer held
STATE_SYNC_CONNECTED = 3


class Msg(msgspec.Struct, array_like=True, frozen=True, tag_field="tag"):
    """Base of every client-protocol message."""


# --- client -> node ---------------------------------------------------------------------------


class Connect(Msg, tag="connect"):
    protocol_version: int
    last_zxid_seen: int
    timeout_ms: int
    session_id: int = 0
    passwd: bytes = b""
    read_only: bool = False
    # The client's address as the node's ZooKeeper-protocol gateway saw it (for the ip scheme).
    # Ignored from anyone but the gateway.
    peer: str = ""
    # The subject (RFC 2253) of the client certificate the gateway's TLS port verified: the
    # session is authenticated as x509:<subject>. Ignored from anyone but the gateway.
    x509: str = ""


class Create(Msg, tag="create"):
    xid: int
    path: str
    data: bytes | None  # None = no data (ZooKeeper's null), distinct from b""
    acl: list[ACL]
    flags: int = PERSISTENT
    ttl: int = 0


class Delete(Msg, tag="delete"):
    xid: int
    path: str
    version: int = -1


class Exists(Msg, tag="exists"):
    xid: int
    path: str
    watch: bool = False
    linearizable: bool = False  # answered at a commit index the leader confirmed (see docs/protocol.md)


class GetData(Msg, tag="get"):
    xid: int
    path: str
    watch: bool = False
    linearizable: bool = False


class SetData(Msg, tag="set"):
    xid: int
    path: str
    data: bytes | None
    version: int = -1


class GetACL(Msg, tag="getacl"):
    xid: int
    path: str


class SetACL(Msg, tag="setacl"):
    xid: int
    path: str
    acl: list[ACL]
    version: int = -1


class GetChildren(Msg, tag="children"):
    xid: int
    path: str
    watch: bool = False
    include_stat: bool = False
    linearizable: bool = False


class Sync(Msg, tag="sync"):
    xid: int
    path: str


class Check(Msg, tag="check"):
    xid: int
    path: str
    version: int


MultiOp = Create | Delete | SetData | Check


class Multi(Msg, tag="multi"):
    xid: int
    ops: list[MultiOp]


class Ping(Msg, tag="ping"):
    xid: int = PING_XID


class Close(Msg, tag="close"):
    xid: int


class Auth(Msg, tag="auth"):
    xid: int
    scheme: str
    credential: bytes


class SetWatches(Msg, tag="setwatches"):
    """Re-arm watches after a reconnect; fire what changed after `relative_zxid` (ZooKeeper's setWatches2)."""

    xid: int
    relative_zxid: int
    data: list[str]
    exist: list[str]
    child: list[str]
    persistent: list[str] = []
    persistent_recursive: list[str] = []


class AddWatch(Msg, tag="addwatch"):
    xid: int
    path: str
    mode: int = WATCH_MODE_PERSISTENT
    # >= 0: also send every matching event after this zxid, from the node's history window
    # (or one EVENT_RESYNC if the window no longer reaches back that far). zoomq only.
    since_zxid: int = -1


class RemoveWatches(Msg, tag="rmwatches"):
    xid: int
    path: str
    watcher_type: int = WATCHER_ANY


class CheckWatches(Msg, tag="chkwatches"):
    """Whether this session has a watch of `watcher_type` on `path` (ZooKeeper's checkWatches):
    OK, or NOWATCHER."""

    xid: int
    path: str
    watcher_type: int = WATCHER_ANY


class MultiRead(Msg, tag="multiread"):
    """Several reads answered together, each on its own (ZooKeeper's multiRead): no atomicity,
    a failed read is an error in its slot and the others still answer."""

    xid: int
    ops: list[GetData | GetChildren]


class WhoAmI(Msg, tag="whoami"):
    """The identities this session is authenticated as (ZooKeeper 3.9's whoAmI)."""

    xid: int


class GetEphemerals(Msg, tag="ephemerals"):
    xid: int
    prefix: str = "/"


class GetAllChildrenNumber(Msg, tag="count"):
    xid: int
    path: str


class GetSubtree(Msg, tag="subtree"):
    """Every znode of the subtree at `path` with its data, ACL and Stat, read in one step of the
    node's session actor: consistent at the zxid the node has applied (zoomq only; what `zoomq
    backup` reads). Nodes without READ for the session are left out with everything below them
    (counted), ephemerals are left out (listed); a subtree of more than the node's
    `backup_max_znodes` znodes is refused with BADARGUMENTS. Answered with a SubtreeResult."""

    xid: int
    path: str = "/"


class AdminCommand(Msg, tag="admin"):
    """A four-letter-word style query (ruok, srvr, stat, mntr, ...); answered by `AdminReply`."""

    xid: int
    command: str


class Reconfig(Msg, tag="reconfig"):
    """Change the ensemble's membership (ZooKeeper 3.5+ reconfig; kazoo's `client.reconfig`).
    Incremental: `joining` (comma-separated server specs, `server.<id>=<host>:<quorum port>:
    <election port>[:participant|observer];[<client host>:]<client port>`) and `leaving`
    (comma-separated ids); or whole: `new_members` (comma-separated specs). `from_config`: the
    config version (the zxid of /zookeeper/config's `version=` line) it must still be, -1 = any.
    Answered with a DataResult: the new /zookeeper/config and its Stat."""

    xid: int
    joining: str | None = None
    leaving: str | None = None
    new_members: str | None = None
    from_config: int = -1


ClientMsg = (
    Connect
    | Create
    | Delete
    | Exists
    | GetData
    | SetData
    | GetACL
    | SetACL
    | GetChildren
    | Sync
    | Check
    | Multi
    | Ping
    | Close
    | Auth
    | SetWatches
    | AddWatch
    | RemoveWatches
    | GetEphemerals
    | GetAllChildrenNumber
    | AdminCommand
    | CheckWatches
    | MultiRead
    | WhoAmI
    | Reconfig
    | GetSubtree
)
WriteOp = Create | Delete | SetData | SetACL | Check | Multi | Sync | Close | Reconfig
READ_OPS = (Exists, GetData, GetACL, GetChildren, GetEphemerals, GetAllChildrenNumber, MultiRead, WhoAmI, GetSubtree)
WRITE_OPS = (Create, Delete, SetData, SetACL, Check, Multi, Sync, Close, Reconfig)

# --- node -> client ---------------------------------------------------------------------------


class CreateResult(Msg, tag="created"):
    path: str
    stat: ZnodeStat


class StatResult(Msg, tag="stat"):
    stat: ZnodeStat


class DataResult(Msg, tag="data"):
    data: bytes | None
    stat: ZnodeStat


class ChildrenResult(Msg, tag="kids"):
    children: list[str]
    stat: ZnodeStat | None = None


class ACLResult(Msg, tag="acls"):
    acl: list[ACL]
    stat: ZnodeStat


class PathResult(Msg, tag="path"):
    path: str


class OpResult(msgspec.Struct, array_like=True, frozen=True):
    """One op's outcome in a multi: `err` 0 = ok; `path` for create; `stat` for create/set."""

    err: int
    path: str | None = None
    stat: ZnodeStat | None = None


class MultiResult(Msg, tag="multi"):
    results: list[OpResult]


class ReadResult(msgspec.Struct, array_like=True, frozen=True):
    """One read's outcome in a MultiRead: `err` 0 = ok, with `body`."""

    err: int
    body: DataResult | ChildrenResult | None = None


class MultiReadResult(Msg, tag="multiread"):
    results: list[ReadResult]


class AuthIdentity(msgspec.Struct, array_like=True, frozen=True):
    """One identity of a session, as ZooKeeper's ClientInfo: the scheme and the user name."""

    scheme: str
    user: str


class WhoAmIResult(Msg, tag="whoami"):
    identities: list[AuthIdentity]


class CountResult(Msg, tag="count"):
    count: int


class NamesResult(Msg, tag="names"):
    names: list[str]


class TextResult(Msg, tag="text"):
    text: str


class SubtreeNode(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One znode of a SubtreeResult: its full path, value (None apart from b""), ACL and Stat
    (the ephemeralOwner field tells containers and TTL nodes, as ZooKeeper encodes them)."""

    path: str
    data: bytes | None
    acl: list[ACL]
    stat: ZnodeStat


class SubtreeResult(Msg, tag="subtree"):
    """A GetSubtree's answer. `zxid`: the node's applied zxid, the one point the whole subtree
    is consistent at. `nodes`: parents before children (depth first, children by name).
    `ephemerals`: the ephemeral znodes left out (those the session may read). `unreadable`: how
    many znodes were left out because the session may not READ them (each with everything below
    it, which is not counted). `masked`: the znodes whose digest ACL ids are shown as `user:x`
    (no ADMIN on them, as getACL shows them)."""

    zxid: int
    nodes: list[SubtreeNode]
    ephemerals: list[str] = []
    unreadable: int = 0
    masked: int = 0


ReplyBody = (
    CreateResult
    | StatResult
    | DataResult
    | ChildrenResult
    | ACLResult
    | PathResult
    | MultiResult
    | CountResult
    | NamesResult
    | TextResult
    | MultiReadResult
    | WhoAmIResult
    | SubtreeResult
)


class Connected(Msg, tag="connected"):
    protocol_version: int
    timeout_ms: int  # negotiated; 0 = session expired / refused
    session_id: int
    passwd: bytes
    read_only: bool = False
    last_zxid: int = 0
    # The xid of the session's latest write the node remembers: a program that resumes a session
    # it did not open itself (client_id) numbers its requests after it, so that none of them is
    # taken for a re-sent one and answered with an older result.
    last_cxid: int = 0


class Reply(Msg, tag="r"):
    xid: int
    zxid: int
    err: int
    body: ReplyBody | None = None


class Event(Msg, tag="e"):
    zxid: int
    type: int  # EVENT_NODE_*
    state: int  # STATE_SYNC_CONNECTED
    path: str


ServerMsg = Connected | Reply | Event
