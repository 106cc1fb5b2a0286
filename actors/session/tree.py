"""The replicated data tree: znodes and sessions, changed only by applying txns in zxid order.

Rules (ZooKeeper's DataTree / DataNode, §1.2-1.4 and §1.6 of the reference):
- A txn is fully decided by prep; applying it reads no clock and makes no choice, so every
  replica that applies the same txns in the same order holds the same tree (`digest()`).
- Each znode keeps a count of child creates (`creates`, ZooKeeper's persisted cversion): prep
  names sequential children from it, and the client sees `cversion = 2*creates - numChildren`
  (creates + deletes), as DataNode.copyStat computes it. Deletes only move `pzxid`.
- Ephemerals (owner = a session id) die with their session: CloseSessionTxn deletes them in sorted
  path order. Container and TTL nodes are indexed here; prep decides when to reap them.
- A txn that cannot apply (missing parent, existing path, unknown session, ...) means replicas have
  diverged: `TreeInvariantError` (an AssertionError) crashes the actor, which restarts from disk.

Memory (1M znodes): `Znode` has __slots__, leaves share one empty frozenset for `children`, and
equal ACL lists share one list object (bounded intern table).

Quotas (zoomq/quota.py, ZooKeeper's pTrie and StatsTrack): a `zookeeper_limits` znode under
/zookeeper/quota makes its path a quota root; the tree keeps each root's usage (znodes of the
subtree, itself included, and their data bytes) as txns apply, and writes it into the root's
`zookeeper_stats` znode in place (no version change, as ZooKeeper). Usage is derived from the txns
only, so every replica holds the same; it is recomputed from the nodes after a snapshot load.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from actors.protocol.txn import (
    CONTAINER_OWNER,
    CheckTxn,
    CloseSessionTxn,
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    MultiTxn,
    ReconfigTxn,
    SetACLTxn,
    SetDataTxn,
    Txn,
    ttl_of,
)
from runtime.config import Membership, SpecError, membership_from_text, membership_text
from zoomq.quota import (
    LIMITS_NODE,
    QUOTA_PREFIX,
    STATS_NODE,
    QuotaLimits,
    QuotaUsage,
    quota_target,
    stats_path,
    usage_text,
)
from zoomq.protocol import (
    EVENT_NODE_CHILDREN_CHANGED,
    EVENT_NODE_CREATED,
    EVENT_NODE_DATA_CHANGED,
    EVENT_NODE_DELETED,
    CreateResult,
    DataResult,
    MultiResult,
    OpResult,
    ReplyBody,
    StatResult,
)
from zoomq.security import ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE
from zoomq.states import ZnodeStat

ROOT = "/"
ZOOKEEPER = "/zookeeper"
QUOTA = "/zookeeper/quota"
CONFIG = "/zookeeper/config"
MAX_INTERNED_ACLS = 4096
SNAPSHOT_FORMAT = 2  # 2: nodes in chunks of SNAPSHOT_CHUNK (read one at a time); 1: one flat list (still read)
SNAPSHOT_CHUNK = 4096
RECENT_PER_SESSION = 256  # results remembered per session for re-sent requests (= client MAX_IN_FLIGHT)

_ZOOKEEPER_PREFIX = ZOOKEEPER + "/"
_NO_CHILDREN: frozenset[str] = frozenset()
_EMPTY = b""
_INT32 = 1 << 32
_INT32_MAX = (1 << 31) - 1

Event = tuple[int, str]


def data_size(data: bytes | int | None) -> int:
    """Bytes of a znode's value: `data` is the value, or its length in a tree without values."""
    if data is None:
        return 0
    return data if type(data) is int else len(data)  # type: ignore[arg-type]


class Quota:
    """A quota root's limits and what its subtree holds now."""

    __slots__ = ("bytes", "count", "limits")

    def __init__(self, limits: QuotaLimits, count: int, size: int) -> None:
        self.limits = limits
        self.count = count
        self.bytes = size

    def usage(self) -> QuotaUsage:
        return QuotaUsage(self.count, self.bytes)


class TreeInvariantError(AssertionError):
    """A txn could not be applied: this replica diverged from the leader's decisions."""


def int32(value: int) -> int:
    """`value` wrapped to a Java int, as ZooKeeper's counters overflow."""
    if -(1 << 31) <= value <= _INT32_MAX:
        return value
    return (value + (1 << 31)) % _INT32 - (1 << 31)


def is_ephemeral_owner(owner: int) -> bool:
    """True if `owner` is a session id (not 0, not a container/TTL marker): EphemeralType.NORMAL."""
    return owner != 0 and owner != CONTAINER_OWNER and ttl_of(owner) is None


class Znode:
    """One znode. `children` holds names (not paths); leaves share an empty frozenset."""

    __slots__ = (
        "acl",
        "aversion",
        "children",
        "creates",
        "ctime",
        "czxid",
        "data",
        "ephemeral_owner",
        "mtime",
        "mzxid",
        "pzxid",
        "version",
    )

    def __init__(
        self,
        data: bytes | None,
        acl: list[ACL],
        czxid: int,
        ctime: int,
        ephemeral_owner: int = 0,
    ) -> None:
        self.data = data
        self.acl = acl
        self.czxid = czxid
        self.mzxid = czxid
        self.ctime = ctime
        self.mtime = ctime
        self.version = 0
        self.aversion = 0
        self.ephemeral_owner = ephemeral_owner
        self.pzxid = czxid
        self.creates = 0
        self.children: set[str] | frozenset[str] = _NO_CHILDREN

    @property
    def num_children(self) -> int:
        return len(self.children)

    @property
    def cversion(self) -> int:
        """The client-visible cversion: creates + deletes (ZooKeeper's DataNode.copyStat)."""
        return int32(2 * self.creates - len(self.children))

    def __repr__(self) -> str:
        return (
            f"Znode(data={self.data[:32] if isinstance(self.data, bytes) else self.data!r}, version={self.version}, cversion={self.cversion}, "
            f"aversion={self.aversion}, owner={self.ephemeral_owner:#x}, children={len(self.children)})"
        )


class SessionInfo(msgspec.Struct, array_like=True, frozen=True, gc=False):
    timeout_ms: int
    passwd: bytes


class _NodeImage(msgspec.Struct, array_like=True, gc=False):
    """A znode in a snapshot (children are implied by the paths)."""

    path: str
    data: bytes | None
    acl: int  # index into _Snapshot.acls
    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    aversion: int
    ephemeral_owner: int
    pzxid: int
    creates: int


class _Snapshot(msgspec.Struct, array_like=True):
    """Format 1 (one flat list of nodes): what earlier versions wrote; read through _ChunkedSnapshot."""

    format: int
    last_zxid: int
    sessions: dict[int, SessionInfo]
    acls: list[list[ACL]]
    nodes: list[_NodeImage]  # parents before children (the tree's insertion order)
    recent: dict[int, list[tuple[int, int, ReplyBody | None]]] = {}  # session -> [(cxid, zxid, body)]


class _ChunkedSnapshot(msgspec.Struct, array_like=True):
    """A snapshot as written (format 2) and as read (both formats): the nodes stay undecoded
    (Raw views into the bytes) until the tree is built from them a chunk at a time, so that a
    million decoded node images never live at once (nor fragment the heap the tree is left in)."""

    format: int
    last_zxid: int
    sessions: dict[int, SessionInfo]
    acls: list[list[ACL]]
    nodes: list[msgspec.Raw]  # format 2: each an encoded list[_NodeImage]; format 1: each one _NodeImage
    recent: dict[int, list[tuple[int, int, ReplyBody | None]]] = {}


_snapshot_encoder = msgspec.msgpack.Encoder()
_snapshot_decoder = msgspec.msgpack.Decoder(_ChunkedSnapshot)
_chunk_decoder = msgspec.msgpack.Decoder(list[_NodeImage])
_image_decoder = msgspec.msgpack.Decoder(_NodeImage)
_digest_encoder = msgspec.msgpack.Encoder()


def _images(snap: _ChunkedSnapshot) -> Iterator[_NodeImage]:
    """The node images of a snapshot in order, decoded a chunk at a time (format 1: one by one)."""
    if snap.format == 1:
        for raw in snap.nodes:
            yield _image_decoder.decode(raw)
        return
    for raw in snap.nodes:
        yield from _chunk_decoder.decode(raw)


def _split(path: str) -> tuple[str, str]:
    i = path.rfind("/")
    return (path[:i] if i > 0 else ROOT), path[i + 1 :]


class DataTree:
    """The znodes (path -> Znode) and sessions of one replica, plus indexes derived from them.

    In: `apply(txn)` in zxid order.  Out: the reply body for the txn's client and the watch
    events it causes, in the order they happen.
    """

    def __init__(self, keep_data: bool = True) -> None:
        """`keep_data=False`: znode values are not kept, only their lengths (`data` is the length,
        an int, or None; the digest then does not describe the values; the znodes under
        /zookeeper/quota keep theirs). The leader's prep tree needs versions, ACLs, owners,
        children and sizes (for quotas) only, and holds a million znodes in far less memory:
        lengths up to 256 are Python's shared small ints."""
        self._reset()
        self.keep_data = keep_data
        # As ZooKeeper boots: the reserved subtree exists, added without counting as child creates.
        root = Znode(_EMPTY, self.intern_acl(OPEN_ACL_UNSAFE), 0, 0)
        self.nodes[ROOT] = root
        self._attach(ZOOKEEPER, Znode(_EMPTY, self.intern_acl(OPEN_ACL_UNSAFE), 0, 0))
        self._attach(QUOTA, Znode(_EMPTY, self.intern_acl(OPEN_ACL_UNSAFE), 0, 0))
        self._attach(CONFIG, Znode(_EMPTY, self.intern_acl(READ_ACL_UNSAFE), 0, 0))

    def _reset(self) -> None:
        self.last_zxid = 0
        self.sessions: dict[int, SessionInfo] = {}
        self.nodes: dict[str, Znode] = {}
        self._ephemerals: dict[int, set[str]] = {}
        self.containers: set[str] = set()
        self.ttls: set[str] = set()
        # session -> {cxid: (zxid, reply body)}: the results of the session's latest requests,
        # so that a request re-sent after a lost connection is answered, not applied twice.
        self.recent: dict[int, dict[int, tuple[int, ReplyBody | None]]] = {}
        # The ACLs of nodes removed by the txns applied since the caller last cleared it (filled
        # only when events are asked for): a watch event about a node is delivered only to a
        # session that could read it, and a deleted node's ACL is needed for that.
        self.removed_acls: dict[str, list[ACL]] = {}
        self.quotas: dict[str, Quota] = {}  # quota root path -> its limits and usage
        # The membership the latest reconfig txn set (/zookeeper/config shows it); None: none yet,
        # the configured one holds.
        self.membership: Membership | None = None
        self._acls: dict[tuple[ACL, ...], list[ACL]] = {}
        self._ops: dict[type, Callable[[Any, int, int, bool, list[Event] | None], Any]] = {
            CreateTxn: self._create,
            DeleteTxn: self._delete,
            SetDataTxn: self._set_data,
            SetACLTxn: self._set_acl,
            CheckTxn: self._check,
            ReconfigTxn: self._reconfig,
        }

    def _attach(self, path: str, node: Znode) -> None:
        """Add a boot node under its parent without touching the parent's counters."""
        parent_path, name = _split(path)
        parent = self.nodes[parent_path]
        if parent.children is _NO_CHILDREN:
            parent.children = {name}
        else:
            parent.children.add(name)  # type: ignore[union-attr]
        self.nodes[path] = node

    # --- reads ------------------------------------------------------------------------------------

    def get(self, path: str) -> Znode | None:
        return self.nodes.get(path)

    def stat(self, node: Znode) -> ZnodeStat:
        n = len(node.children)
        return ZnodeStat(
            node.czxid,
            node.mzxid,
            node.ctime,
            node.mtime,
            node.version,
            int32(2 * node.creates - n),
            node.aversion,
            node.ephemeral_owner,
            data_size(node.data),
            n,
            node.pzxid,
        )

    def children(self, path: str) -> list[str] | None:
        node = self.nodes.get(path)
        return None if node is None else list(node.children)

    def ephemerals(self, session_id: int) -> list[str]:
        return sorted(self._ephemerals.get(session_id, ()))

    def count_descendants(self, path: str) -> int:
        """Every znode below `path` (not itself); 0 if it does not exist (getAllChildrenNumber)."""
        if path == ROOT:
            return len(self.nodes) - 1
        nodes = self.nodes
        node = nodes.get(path)
        if node is None:
            return 0
        count = 0
        stack = [(path, node)]
        while stack:
            base, cur = stack.pop()
            kids = cur.children
            if not kids:
                continue
            count += len(kids)
            for name in kids:
                child_path = base + "/" + name
                child = nodes[child_path]
                if child.children:
                    stack.append((child_path, child))
        return count

    def node_count(self) -> int:
        return len(self.nodes)

    def intern_acl(self, acl: list[ACL]) -> list[ACL]:
        """One shared list object per distinct ACL list (bounded; beyond the bound, `acl` itself)."""
        key = tuple(acl)
        shared = self._acls.get(key)
        if shared is not None:
            return shared
        if len(self._acls) >= MAX_INTERNED_ACLS:
            return acl
        shared = list(key)
        self._acls[key] = shared
        return shared

    # --- apply ------------------------------------------------------------------------------------

    def apply(self, txn: Txn, *, results: bool = True) -> tuple[ReplyBody | None, list[Event]]:
        """Apply one txn at `txn.zxid`: (reply body, watch events in order).

        `results=False` skips building the reply and the events (prep's own copy needs neither).
        """
        zxid = txn.zxid
        if zxid <= self.last_zxid:
            raise TreeInvariantError(f"txn zxid {zxid:#x} is not after the tree's {self.last_zxid:#x}")
        op = txn.op
        events: list[Event] | None = [] if results else None
        kind = type(op)
        handler = self._ops.get(kind)
        cxid = txn.cxid
        # A client's request: its reply body is remembered even when the caller needs none.
        remember = cxid > 0 and txn.session_id in self.sessions
        if handler is not None:
            body = handler(op, zxid, txn.time_ms, results or remember, events)
        elif kind is MultiTxn:
            body = self._multi(op, zxid, txn.time_ms, results or remember, events)
        elif kind is CreateSessionTxn:
            if txn.session_id in self.sessions:
                raise TreeInvariantError(f"session {txn.session_id:#x} created twice")
            self.sessions[txn.session_id] = SessionInfo(op.timeout_ms, op.passwd)
            body = None
        elif kind is CloseSessionTxn:
            self._close_session(txn.session_id, zxid, events)
            body = None
        else:
            raise TreeInvariantError(f"unknown txn op {kind.__name__}")
        self.last_zxid = zxid
        if remember and kind is not CloseSessionTxn:
            table = self.recent.get(txn.session_id)
            if table is None:
                table = self.recent[txn.session_id] = {}
            table.pop(cxid, None)  # a reused xid (after wrap-around) counts as the newest
            table[cxid] = (zxid, body)
            if len(table) > RECENT_PER_SESSION:
                del table[next(iter(table))]
        return body, events if events is not None else []

    def last_cxid(self, session_id: int) -> int:
        """The xid of the session's latest remembered write (0 if none)."""
        table = self.recent.get(session_id)
        return next(reversed(table)) if table else 0

    def recent_result(self, session_id: int, cxid: int) -> tuple[int, ReplyBody | None] | None:
        """(zxid, reply body) of the session's request `cxid` if it was applied recently."""
        table = self.recent.get(session_id)
        return table.get(cxid) if table is not None else None

    def _create(
        self, op: CreateTxn, zxid: int, time_ms: int, results: bool, events: list[Event] | None
    ) -> CreateResult | None:
        path = op.path
        nodes = self.nodes
        if path in nodes:
            raise TreeInvariantError(f"create of existing {path!r} at {zxid:#x}")
        parent_path, name = _split(path)
        parent = nodes.get(parent_path)
        if parent is None or not name:
            raise TreeInvariantError(f"create of {path!r} without parent at {zxid:#x}")
        owner = op.ephemeral_owner
        node = Znode(self._held(path, op.data), self.intern_acl(op.acl), zxid, time_ms, owner)
        nodes[path] = node
        kids = parent.children
        if kids is _NO_CHILDREN:
            parent.children = {name}
        else:
            kids.add(name)  # type: ignore[union-attr]
        parent.creates += 1
        parent.pzxid = zxid
        if owner:
            self._index_owner(path, owner)
        if self.quotas or path.startswith(QUOTA_PREFIX):
            self._quota_changed(path, node, 1, data_size(node.data))
        if events is not None:
            events.append((EVENT_NODE_CREATED, path))
            events.append((EVENT_NODE_CHILDREN_CHANGED, parent_path))
        return CreateResult(path, self.stat(node)) if results else None

    def _index_owner(self, path: str, owner: int) -> None:
        if owner == CONTAINER_OWNER:
            self.containers.add(path)
        elif ttl_of(owner) is not None:
            self.ttls.add(path)
        else:
            paths = self._ephemerals.get(owner)
            if paths is None:
                self._ephemerals[owner] = {path}
            else:
                paths.add(path)

    def _unindex_owner(self, path: str, owner: int) -> None:
        if owner == CONTAINER_OWNER:
            self.containers.discard(path)
        elif ttl_of(owner) is not None:
            self.ttls.discard(path)
        else:
            paths = self._ephemerals.get(owner)
            if paths is not None:
                paths.discard(path)
                if not paths:
                    del self._ephemerals[owner]

    def _delete(self, op: DeleteTxn, zxid: int, time_ms: int, results: bool, events: list[Event] | None) -> None:
        self._remove(op.path, zxid, events)

    def _remove(self, path: str, zxid: int, events: list[Event] | None) -> None:
        nodes = self.nodes
        node = nodes.get(path)
        if node is None or path == ROOT:
            raise TreeInvariantError(f"delete of missing {path!r} at {zxid:#x}")
        if node.children:
            raise TreeInvariantError(f"delete of non-empty {path!r} at {zxid:#x}")
        parent_path, name = _split(path)
        parent = nodes[parent_path]
        del nodes[path]
        if self.quotas or path.startswith(QUOTA_PREFIX):
            self._quota_changed(path, node, -1, -data_size(node.data), removed=True)
        kids = parent.children
        kids.discard(name)  # type: ignore[union-attr]
        if not kids:
            parent.children = _NO_CHILDREN
        parent.pzxid = zxid
        if node.ephemeral_owner:
            self._unindex_owner(path, node.ephemeral_owner)
        if events is not None:
            self.removed_acls[path] = node.acl
            events.append((EVENT_NODE_DELETED, path))
            events.append((EVENT_NODE_CHILDREN_CHANGED, parent_path))

    def _set_data(
        self, op: SetDataTxn, zxid: int, time_ms: int, results: bool, events: list[Event] | None
    ) -> StatResult | None:
        node = self.nodes.get(op.path)
        if node is None:
            raise TreeInvariantError(f"set of missing {op.path!r} at {zxid:#x}")
        old = data_size(node.data)
        node.data = self._held(op.path, op.data)
        if self.quotas or op.path.startswith(QUOTA_PREFIX):
            self._quota_changed(op.path, node, 0, data_size(node.data) - old)
        node.version = op.version
        node.mzxid = zxid
        node.mtime = time_ms
        if events is not None:
            events.append((EVENT_NODE_DATA_CHANGED, op.path))
        return StatResult(self.stat(node)) if results else None

    def _set_acl(
        self, op: SetACLTxn, zxid: int, time_ms: int, results: bool, events: list[Event] | None
    ) -> StatResult | None:
        node = self.nodes.get(op.path)
        if node is None:
            raise TreeInvariantError(f"setACL of missing {op.path!r} at {zxid:#x}")
        node.acl = self.intern_acl(op.acl)
        node.aversion = op.version
        return StatResult(self.stat(node)) if results else None

    def _reconfig(
        self, op: ReconfigTxn, zxid: int, time_ms: int, results: bool, events: list[Event] | None
    ) -> DataResult | None:
        node = self.nodes[CONFIG]
        node.data = membership_text(op.servers, zxid)
        node.version = int32(node.version + 1)
        node.mzxid = zxid
        node.mtime = time_ms
        self.membership = Membership(list(op.servers), zxid)
        if events is not None:
            events.append((EVENT_NODE_DATA_CHANGED, CONFIG))
        return DataResult(node.data, self.stat(node)) if results else None

    def _check(self, op: CheckTxn, zxid: int, time_ms: int, results: bool, events: list[Event] | None) -> None:
        if op.path not in self.nodes:
            raise TreeInvariantError(f"check of missing {op.path!r} at {zxid:#x}")

    def _multi(
        self, op: MultiTxn, zxid: int, time_ms: int, results: bool, events: list[Event] | None
    ) -> MultiResult | None:
        out: list[OpResult] = []
        ops = self._ops
        for sub in op.ops:
            handler = ops.get(type(sub))
            if handler is None:
                raise TreeInvariantError(f"op {type(sub).__name__} inside a multi at {zxid:#x}")
            body = handler(sub, zxid, time_ms, results, events)
            if results:
                if body is None:
                    out.append(OpResult(0))
                elif type(body) is CreateResult:
                    out.append(OpResult(0, body.path, body.stat))
                else:
                    out.append(OpResult(0, None, body.stat))
        return MultiResult(out) if results else None

    def _close_session(self, session_id: int, zxid: int, events: list[Event] | None) -> None:
        if session_id not in self.sessions:
            raise TreeInvariantError(f"close of unknown session {session_id:#x} at {zxid:#x}")
        del self.sessions[session_id]
        self.recent.pop(session_id, None)
        # Ephemerals have no children, so sorted order is always a valid deletion order.
        for path in sorted(self._ephemerals.get(session_id, ())):
            self._remove(path, zxid, events)

    # --- whole-tree views -------------------------------------------------------------------------

    def digest(self) -> int:
        """A deterministic 64-bit checksum of everything the tree holds (order-independent)."""
        enc = _digest_encoder.encode
        blake = hashlib.blake2b
        total = 0
        for path, n in self.nodes.items():
            record = (
                path,
                n.data,
                n.acl,
                n.czxid,
                n.mzxid,
                n.ctime,
                n.mtime,
                n.version,
                n.aversion,
                n.ephemeral_owner,
                n.pzxid,
                n.creates,
                len(n.children),
            )
            total += int.from_bytes(blake(enc(record), digest_size=8).digest(), "little")
        for session_id, info in self.sessions.items():
            total += int.from_bytes(blake(enc((session_id, info)), digest_size=8).digest(), "little")
        for session_id, table in self.recent.items():  # the results re-sent requests are answered with
            total += int.from_bytes(blake(enc((session_id, list(table.items()))), digest_size=8).digest(), "little")
        total += int.from_bytes(blake(enc(self.last_zxid), digest_size=8).digest(), "little")
        return total & ((1 << 64) - 1)

    def to_snapshot(self) -> bytes:
        if not self.keep_data:
            raise TreeInvariantError("a tree without values cannot be written as a snapshot")
        acl_index: dict[int, int] = {}
        acls: list[list[ACL]] = []
        chunks: list[msgspec.Raw] = []
        images: list[_NodeImage] = []
        for path, n in self.nodes.items():
            if len(images) == SNAPSHOT_CHUNK:
                chunks.append(msgspec.Raw(_snapshot_encoder.encode(images)))
                images = []
            idx = acl_index.get(id(n.acl))
            if idx is None:
                idx = acl_index[id(n.acl)] = len(acls)
                acls.append(n.acl)
            images.append(
                _NodeImage(
                    path,
                    n.data,
                    idx,
                    n.czxid,
                    n.mzxid,
                    n.ctime,
                    n.mtime,
                    n.version,
                    n.aversion,
                    n.ephemeral_owner,
                    n.pzxid,
                    n.creates,
                )
            )
        recent = {sid: [(cxid, z, body) for cxid, (z, body) in table.items()] for sid, table in self.recent.items()}
        if images:
            chunks.append(msgspec.Raw(_snapshot_encoder.encode(images)))
        return _snapshot_encoder.encode(
            _ChunkedSnapshot(SNAPSHOT_FORMAT, self.last_zxid, self.sessions, acls, chunks, recent)
        )

    @classmethod
    def from_snapshot(cls, data: bytes, keep_data: bool = True) -> DataTree:
        """Rebuild a tree from `to_snapshot` bytes (`keep_data` as the constructor's). Raises
        msgspec.DecodeError or TreeInvariantError on bytes that are not a consistent snapshot."""
        snap = _snapshot_decoder.decode(data)
        if snap.format not in (1, SNAPSHOT_FORMAT):
            raise TreeInvariantError(f"snapshot format {snap.format} is not 1 or {SNAPSHOT_FORMAT}")
        tree = cls.__new__(cls)
        tree._reset()
        tree.keep_data = keep_data
        tree.last_zxid = snap.last_zxid
        tree.sessions = dict(snap.sessions)
        tree.recent = {sid: {cxid: (z, body) for cxid, z, body in rows} for sid, rows in snap.recent.items()}
        acls = [tree.intern_acl(acl) for acl in snap.acls]
        nodes = tree.nodes
        for image in _images(snap):
            path = image.path
            if not 0 <= image.acl < len(acls):
                raise TreeInvariantError(f"snapshot node {path!r} names ACL #{image.acl}")
            held = (
                image.data
                if keep_data or path.startswith(QUOTA_PREFIX) or path == CONFIG or image.data is None
                else len(image.data)
            )
            node = Znode(held, acls[image.acl], image.czxid, image.ctime, image.ephemeral_owner)
            node.mzxid = image.mzxid
            node.mtime = image.mtime
            node.version = image.version
            node.aversion = image.aversion
            node.pzxid = image.pzxid
            node.creates = image.creates
            if path in nodes:
                raise TreeInvariantError(f"snapshot holds {path!r} twice")
            if path == ROOT:
                nodes[path] = node
                continue
            parent_path, name = _split(path)
            parent = nodes.get(parent_path)
            if parent is None or not name:
                raise TreeInvariantError(f"snapshot node {path!r} comes before its parent")
            nodes[path] = node
            if parent.children is _NO_CHILDREN:
                parent.children = {name}
            else:
                parent.children.add(name)  # type: ignore[union-attr]
            if node.ephemeral_owner:
                tree._index_owner(path, node.ephemeral_owner)
        if ROOT not in nodes:
            raise TreeInvariantError("snapshot has no root")
        tree._rebuild_quotas()
        config = nodes.get(CONFIG)
        if config is not None and config.mzxid and isinstance(config.data, bytes):
            tree.membership = parse_membership(config.data)
        return tree

    # --- quotas -----------------------------------------------------------------------------------

    def _held(self, path: str, data: bytes | None) -> bytes | int | None:
        """What a znode keeps of its value (see __init__'s keep_data)."""
        if self.keep_data or data is None or path.startswith(QUOTA_PREFIX) or path == CONFIG:
            return data
        return len(data)

    def quota_root(self, path: str) -> str | None:
        """The quota root `path` counts toward (itself or its nearest ancestor with a quota)."""
        quotas = self.quotas
        if not quotas or path == ZOOKEEPER or path.startswith(_ZOOKEEPER_PREFIX):
            return None
        while True:
            if path in quotas:
                return path
            if path == ROOT:
                return None
            i = path.rfind("/")
            path = path[:i] if i > 0 else ROOT

    def _subtree_usage(self, top: str) -> tuple[int, int]:
        nodes = self.nodes
        node = nodes.get(top)
        if node is None:
            return 0, 0
        count, size = 0, 0
        stack = [(top, node)]
        while stack:
            path, node = stack.pop()
            count += 1
            size += data_size(node.data)
            base = path if path != ROOT else ""
            stack.extend((f"{base}/{name}", nodes[f"{base}/{name}"]) for name in node.children)
        return count, size

    def _add_quota(self, target: str, limits_data: Any) -> None:
        try:
            limits = QuotaLimits.parse(limits_data)
        except ValueError:
            limits = QuotaLimits()  # prep refuses such text; one read from an older disk limits nothing
        quota = self.quotas.get(target)
        if quota is not None:
            quota.limits = limits
            return
        count, size = self._subtree_usage(target)
        self.quotas[target] = Quota(limits, count, size)
        self._render_stats(target)

    def _render_stats(self, target: str) -> None:
        quota = self.quotas.get(target)
        node = self.nodes.get(stats_path(target))
        if quota is not None and node is not None:
            node.data = usage_text(quota.usage())

    def _quota_changed(self, path: str, node: Znode, count: int, size: int, removed: bool = False) -> None:
        """`path` gained `count` znodes and `size` bytes (negative when removed). A limits znode
        makes, changes or (removed) ends its quota; a stats znode shows the node's figures
        whatever was written; any other path counts toward its quota root."""
        about = quota_target(path)
        if about is not None:
            target, name = about
            if name != LIMITS_NODE:
                if not removed:
                    self._render_stats(target)
            elif removed:
                self.quotas.pop(target, None)
            else:
                self._add_quota(target, node.data)
            return
        root = self.quota_root(path)
        if root is not None:
            quota = self.quotas[root]
            quota.count += count
            quota.bytes += size
            self._render_stats(root)

    def _rebuild_quotas(self) -> None:
        """Every quota root from the limits znodes under /zookeeper/quota, usage recomputed."""
        self.quotas = {}
        top = self.nodes.get(QUOTA)
        if top is None:
            return
        stack = [QUOTA]
        while stack:
            path = stack.pop()
            for name in self.nodes[path].children:
                child = f"{path}/{name}"
                if name == LIMITS_NODE and quota_target(child) is not None:
                    self._add_quota(quota_target(child)[0], self.nodes[child].data)  # type: ignore[index]
                elif name != STATS_NODE:
                    stack.append(child)


def parse_membership(text: bytes) -> Membership:
    """/zookeeper/config's content back into a Membership (as a reconfig txn wrote it)."""
    try:
        return membership_from_text(text)
    except SpecError as exc:
        raise TreeInvariantError(f"{CONFIG} does not hold a membership: {exc}") from exc
