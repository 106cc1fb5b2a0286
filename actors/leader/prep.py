"""The leader's request preparation (ZooKeeper's PrepRequestProcessor), pure.

In:  `WriteRequest`s (create, delete, setData, setACL, check, multi, sync, close, open session),
     session expiries from the SessionTracker, and reaping rounds (ZooKeeper's ContainerManager).
Out: a `Txn` (fully decided: final sequential path, new versions, ephemeral owner, leader time,
     next zxid) or a `Marker` (an ordered, unlogged answer: an error code, a sync, a failed multi).

Rules (§1.1-1.4, §1.6, §1.7, §5.6 of the reference):
- Prep validates against the committed state plus every txn it has already emitted: it owns its
  own `DataTree` and applies each txn to it before returning it, so later requests see it.
- Checks run in ZooKeeper's order. create: flags, TTL, data size, path, reserved paths, ACL
  (INVALIDACL), parent (NONODE), CREATE permission on the parent (NOAUTH), NODEEXISTS,
  NOCHILDRENFOREPHEMERALS, quota. delete: path, NONODE, DELETE on the parent, BADVERSION, NOTEMPTY.
  setData: path, size, NONODE, WRITE, quota, BADVERSION. setACL: path, INVALIDACL, NONODE, ADMIN,
  BADVERSION (against aversion). check: path, NONODE, READ, BADVERSION. Version -1 matches all.
- A multi is validated as one unit against the state as it would be after its earlier ops (an
  overlay of change records, ZooKeeper's outstandingChanges): success is one MultiTxn at one zxid;
  failure is a Marker whose MultiResult has 0 before the failing op, its code, then
  RUNTIMEINCONSISTENCY; prep's tree is not touched by a failed multi.
- zxid = epoch << 32 | counter; the counter restarts at 1 in a new epoch.
- A request whose (session, cxid) the tree remembers as applied (a client re-sent it after a lost
  connection) is not applied again: a Marker with `replay` = the original zxid, answered by each
  node with the result it remembers (so a retried sequential create makes one node).
- Bad input of any shape yields a Marker with a precise ZooKeeper code; prep never raises on it.
- Quotas (zoomq/quota.py): under /zookeeper only /zookeeper/quota/... may be written (the quota
  znodes, written by clients as ZooKeeper's CLI does); a limits znode must hold StatsTrack text
  and a stats znode is never set (the node writes its figures there): else BADARGUMENTS. A create or a growing setData that takes
  its quota root past a hard limit is QUOTAEXCEEDED (ZooKeeper 3.7's checkQuota, enforced here
  always: a hard limit that does not hold is no limit); past a soft limit it is logged and done.
  Usage counts everything prep emitted, and inside a multi the multi's earlier ops.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from actors.protocol import zxid as zx
from actors.protocol.internal import OpenSession, WriteRequest
from actors.protocol.txn import (
    CONTAINER_OWNER,
    MAX_TTL_MS,
    CheckTxn,
    CloseSessionTxn,
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    Marker,
    MultiTxn,
    ReconfigTxn,
    SetACLTxn,
    SetDataTxn,
    Txn,
    ttl_of,
    ttl_owner,
)
from actors.session.tree import CONFIG, DataTree, Znode, data_size, int32, is_ephemeral_owner
from runtime.config import Membership, ServerEntry, SpecError, reconfigured
from zoomq.exceptions import Codes
from zoomq.paths import validate_path
from zoomq.quota import LIMITS_NODE, QUOTA_PREFIX, QuotaLimits, quota_target
from zoomq.protocol import (
    CONTAINER,
    PERSISTENT_SEQUENTIAL_WITH_TTL,
    PERSISTENT_WITH_TTL,
    Check,
    Close,
    Create,
    Delete,
    Multi,
    MultiResult,
    OpResult,
    PathResult,
    Reconfig,
    SetACL,
    SetData,
    Sync,
)
from zoomq.security import ACL, Id, Permissions

ROOT = "/"
RESERVED = "/zookeeper"
RESERVED_PREFIX = "/zookeeper/"
MAX_FLAG = PERSISTENT_SEQUENTIAL_WITH_TTL
SEQUENTIAL_FLAGS = frozenset({2, 3, 6})
EPHEMERAL_FLAGS = frozenset({1, 3})
TTL_FLAGS = frozenset({PERSISTENT_WITH_TTL, PERSISTENT_SEQUENTIAL_WITH_TTL})
VALID_PERMS = Permissions.ALL
REAP_LIMIT = 10_000  # ZooKeeper's znode.container.maxPerMinute
QUOTA_LOG_EVERY = 1_000
# Auth schemes whose ids stand for the requester in an `auth` ACL (isAuthenticated providers).
_AUTHENTICATED_SCHEMES_EXCLUDED = frozenset({"ip", "world", "auth", "super"})

_OPEN_ENTRY = ACL(Permissions.ALL, Id("world", "anyone"))
_OPEN_ACL = [_OPEN_ENTRY]

_INT32_MAX = (1 << 31) - 1

_OK = Codes.OK
_BAD = Codes.BADARGUMENTS
_MISSING = object()

SubOp = CreateTxn | DeleteTxn | SetDataTxn | SetACLTxn | CheckTxn


class _Rec:
    """A znode as a multi's earlier ops left it (ZooKeeper's ChangeRecord): what checks read."""

    __slots__ = ("acl", "aversion", "creates", "ephemeral_owner", "num_children", "size", "version")

    def __init__(
        self,
        acl: list[ACL],
        version: int,
        aversion: int,
        ephemeral_owner: int,
        creates: int,
        num_children: int,
        size: int,
    ) -> None:
        self.size = size
        self.acl = acl
        self.version = version
        self.aversion = aversion
        self.ephemeral_owner = ephemeral_owner
        self.creates = creates
        self.num_children = num_children


Node = Znode | _Rec


def _size_of(node: Node) -> int:
    return node.size if type(node) is _Rec else data_size(node.data)  # type: ignore[union-attr]


class _Overlay:
    """The tree seen through a multi's pending changes; the tree itself is never written."""

    __slots__ = ("changes", "quota_delta", "tree")

    def __init__(self, tree: DataTree) -> None:
        self.tree = tree
        self.changes: dict[str, _Rec | None] = {}
        self.quota_delta: dict[str, tuple[int, int]] = {}  # quota root -> (znodes, bytes) added so far

    def get(self, path: str) -> Node | None:
        rec = self.changes.get(path, _MISSING)
        if rec is _MISSING:
            return self.tree.nodes.get(path)
        return rec  # type: ignore[return-value]

    def _mutable(self, path: str) -> _Rec:
        rec = self.changes.get(path, _MISSING)
        if isinstance(rec, _Rec):
            return rec
        node = self.tree.nodes[path]
        rec = _Rec(
            node.acl,
            node.version,
            node.aversion,
            node.ephemeral_owner,
            node.creates,
            len(node.children),
            data_size(node.data),
        )
        self.changes[path] = rec
        return rec

    def _count(self, path: str, count: int, size: int) -> None:
        root = self.tree.quota_root(path)
        if root is not None:
            c, b = self.quota_delta.get(root, (0, 0))
            self.quota_delta[root] = (c + count, b + size)

    def note(self, op: SubOp) -> None:
        kind = type(op)
        if kind is CreateTxn:
            parent = self._mutable(_parent(op.path))
            parent.creates += 1
            parent.num_children += 1
            size = data_size(op.data)
            self.changes[op.path] = _Rec(op.acl, 0, 0, op.ephemeral_owner, 0, 0, size)
            self._count(op.path, 1, size)
        elif kind is DeleteTxn:
            old = self.get(op.path)
            self._count(op.path, -1, -_size_of(old) if old is not None else 0)
            self._mutable(_parent(op.path)).num_children -= 1
            self.changes[op.path] = None
        elif kind is SetDataTxn:
            rec = self._mutable(op.path)
            size = data_size(op.data)
            self._count(op.path, 0, size - rec.size)
            rec.version = op.version
            rec.size = size
        elif kind is SetACLTxn:
            rec = self._mutable(op.path)
            rec.acl = op.acl
            rec.aversion = op.version


def _parent(path: str) -> str:
    i = path.rfind("/")
    return path[:i] if i > 0 else ROOT


def _valid_ip_id(ident: str) -> bool:
    """`addr` or `addr/bits`, IPv4 or IPv6 (ZooKeeper's IPAuthenticationProvider.isValid)."""
    addr, slash, bits = ident.partition("/")
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    if not slash:
        return True
    if not (bits.isascii() and bits.isdigit()):
        return False
    return int(bits) <= ip.max_prefixlen


def _ip_matches(client: str, acl_id: str) -> bool:
    addr, slash, bits = acl_id.partition("/")
    try:
        want = ipaddress.ip_address(addr)
        have = ipaddress.ip_address(client)
    except ValueError:
        return False
    if want.version != have.version:
        return False
    prefix = int(bits) if slash and bits.isascii() and bits.isdigit() else want.max_prefixlen
    if prefix > want.max_prefixlen:
        return False
    shift = want.max_prefixlen - prefix
    return (int(want) >> shift) == (int(have) >> shift)


def _valid_id(ident: Id) -> bool:
    scheme, value = ident.scheme, ident.id
    if not isinstance(scheme, str) or not isinstance(value, str):
        return False
    if scheme == "world":
        return value == "anyone"
    if scheme == "digest":
        _user, sep, digest = value.partition(":")
        return bool(sep) and bool(digest) and ":" not in digest
    if scheme == "ip":
        return _valid_ip_id(value)
    if scheme in ("x509", "sasl"):
        return bool(value)  # a certificate subject, a SASL user (ZooKeeper's providers accept any)
    return False  # "super" is an identity a session can have, not a scheme an ACL can name


def fixup_acl(acl: Any, auth: list[Id]) -> list[ACL] | int:
    """The ACL list to store, or INVALIDACL (ZooKeeper's PrepRequestProcessor.fixupACL).

    Duplicates go; `auth` entries become one entry per authenticated id of the requester.
    """
    if not isinstance(acl, list) or not acl:
        return Codes.INVALIDACL
    if len(acl) == 1 and acl[0] == _OPEN_ENTRY:
        return _OPEN_ACL  # the common case, shared (nobody mutates a stored ACL list)
    out: list[ACL] = []
    for entry in acl:
        if not isinstance(entry, tuple) or len(entry) != 2:
            return Codes.INVALIDACL
        perms, ident = entry
        if type(perms) is not int or not 0 <= perms <= VALID_PERMS:
            return Codes.INVALIDACL
        if not isinstance(ident, tuple) or len(ident) != 2:
            return Codes.INVALIDACL
        ident = Id(*ident)
        if ident.scheme == "auth":
            found = False
            for who in auth:
                if who.scheme not in _AUTHENTICATED_SCHEMES_EXCLUDED:
                    found = True
                    item = ACL(perms, Id(who.scheme, who.id))
                    if item not in out:
                        out.append(item)
            if not found:
                return Codes.INVALIDACL
            continue
        if not _valid_id(ident):
            return Codes.INVALIDACL
        item = ACL(perms, ident)
        if item not in out:
            out.append(item)
    return out


def allowed(acl: list[ACL], perm: int, auth: list[Id]) -> bool:
    """ZooKeeper's checkACL: empty ACL or a super id allows all; else some entry with `perm` must
    name world:anyone or one of the requester's ids (ip entries by address prefix)."""
    if not acl:
        return True
    for entry in acl:
        if entry.perms & perm:
            ident = entry.id
            if ident.scheme == "world" and ident.id == "anyone":
                return True
            for who in auth:
                if who.scheme == ident.scheme and (
                    who.id == ident.id or (ident.scheme == "ip" and _ip_matches(who.id, ident.id))
                ):
                    return True
    return any(who.scheme == "super" for who in auth)


def _version_ok(expected: Any, current: int) -> bool:
    return expected == -1 or expected == current


class ReconfigGate:
    """What prep asks the leader about a reconfig: whether reconfigs are on, the membership in
    force (committed), and whether a quorum of a proposed membership's voters is synchronized
    with the leader now (ZooKeeper refuses a config it could not commit: NewConfigNoQuorum)."""

    enabled: bool = False
    ensemble: bool = True

    def active(self) -> Membership:
        raise NotImplementedError

    def synced_quorum(self, servers: list[ServerEntry]) -> bool:
        raise NotImplementedError


class Prep:
    """Validates writes against committed + outstanding state and turns each into a Txn or a Marker.

    Owns `tree` (committed + outstanding: every txn it emits is applied to it at once).
    """

    gate: ReconfigGate | None = None  # reconfigs: set by the leader of an ensemble

    def __init__(self, tree: DataTree, *, epoch: int, max_data_bytes: int, log: Any, check_acls: bool = True) -> None:
        self.tree = tree
        self.epoch = epoch
        self.max_data_bytes = max_data_bytes
        self.log = log
        self.check_acls = check_acls
        # (quota root, "count" | "bytes") -> times passed (logged: the first, then one in QUOTA_LOG_EVERY)
        self._quota_warnings: dict[tuple[str, str], int] = {}
        last = tree.last_zxid
        last_epoch = zx.epoch_of(last)
        if last_epoch > epoch:
            raise AssertionError(f"tree at {zx.fmt(last)} is ahead of epoch {epoch}")
        self._counter = zx.counter_of(last) if last_epoch == epoch else 0
        self._single: dict[type, Callable[[Any, Any, int, list[Id]], Any]] = {
            Create: self._check_create,
            Delete: self._check_delete,
            SetData: self._check_set_data,
            SetACL: self._check_set_acl,
        }

    @property
    def last_zxid(self) -> int:
        return self.tree.last_zxid

    # --- entry points -----------------------------------------------------------------------------

    def step(self, req: WriteRequest, now_ms: int) -> Txn | Marker:
        try:
            session_id = req.session_id
            cxid = req.cxid
            op = req.op
            auth = req.auth
        except AttributeError:
            self.log.warning("prep_bad_request", type=type(req).__name__)
            return Marker(0, 0, _BAD)
        if type(session_id) is not int or type(cxid) is not int:
            return Marker(session_id if type(session_id) is int else 0, cxid if type(cxid) is int else 0, _BAD)
        if auth and (not isinstance(auth, list) or not all(isinstance(a, Id) for a in auth)):
            auth = []
        done = self.tree.recent_result(session_id, cxid) if cxid > 0 else None
        if done is not None:
            return Marker(session_id, cxid, 0, None, replay=done[0])  # a re-sent request: not twice
        try:
            decision = self._decide(session_id, cxid, op, auth)
        except (TypeError, ValueError, AttributeError, OverflowError, IndexError, KeyError) as exc:
            # Deciding only reads the tree, so nothing needs undoing.
            self.log.warning("prep_bad_input", op=type(op).__name__, error=repr(exc)[:200])
            return Marker(session_id, cxid, _BAD)
        if type(decision) is Marker:
            return decision
        txn_session, txn_op = decision
        return self._emit(txn_session, cxid, txn_op, now_ms)

    def expire(self, session_ids: list[int], now_ms: int) -> list[Txn]:
        """A CloseSessionTxn for each session in `session_ids` that is still live."""
        out = []
        for session_id in session_ids:
            if session_id in self.tree.sessions:
                out.append(self._emit(session_id, 0, CloseSessionTxn(), now_ms))
        return out

    def reap(self, now_ms: int, *, limit: int = REAP_LIMIT) -> list[Txn]:
        """DeleteTxns for empty containers that once had a child and for childless TTL nodes whose
        `now - mtime > ttl` (ZooKeeper's ContainerManager.getCandidates), at most `limit`."""
        nodes = self.tree.nodes
        due: list[str] = []
        for path in self.tree.containers:
            node = nodes[path]
            if not node.children and node.creates > 0:
                due.append(path)
        for path in self.tree.ttls:
            node = nodes[path]
            if not node.children:
                ttl = ttl_of(node.ephemeral_owner)
                if ttl and now_ms - node.mtime > ttl:
                    due.append(path)
        due.sort()
        return [self._emit(0, 0, DeleteTxn(path), now_ms) for path in due[:limit]]

    # --- dispatch ---------------------------------------------------------------------------------

    def _decide(self, session_id: int, cxid: int, op: Any, auth: list[Id]) -> Marker | tuple[int, Any]:
        """A Marker, or (txn session id, txn op) to emit. Reads the tree, never writes it."""
        tree = self.tree
        kind = type(op)
        if kind is OpenSession:
            return self._open_session(session_id, cxid, op)
        if session_id not in tree.sessions:
            return Marker(session_id, cxid, Codes.SESSIONEXPIRED)
        check = self._single.get(kind)
        if check is not None:
            result = check(tree.nodes, op, session_id, auth)
            if type(result) is int:
                return Marker(session_id, cxid, result)
            return session_id, result
        if kind is Multi:
            return self._multi(session_id, cxid, op, auth)
        if kind is Check:
            result = self._check_check(tree.nodes, op, session_id, auth)
            return Marker(session_id, cxid, result if type(result) is int else _OK)
        if kind is Sync:
            if validate_path(op.path) is not None:
                return Marker(session_id, cxid, _BAD)
            return Marker(session_id, cxid, _OK, PathResult(op.path))
        if kind is Close:
            return session_id, CloseSessionTxn()
        if kind is Reconfig:
            return self._reconfig(session_id, cxid, op, auth)
        return Marker(session_id, cxid, Codes.UNIMPLEMENTED)

    def _reconfig(self, session_id: int, cxid: int, op: Reconfig, auth: list[Id]) -> Marker | tuple[int, Any]:
        """ZooKeeper's checks, in its order (PrepRequestProcessor): enabled, an ensemble, no other
        reconfig outstanding, the expected version, the specs parse, a synchronized quorum of
        the new voters, and last WRITE on /zookeeper/config (world may only read it: a super
        user, or an ACL the operator set)."""
        gate = self.gate
        if gate is None or not gate.enabled:
            return Marker(session_id, cxid, Codes.RECONFIGDISABLED)
        if not gate.ensemble:
            return Marker(session_id, cxid, Codes.UNIMPLEMENTED)  # a standalone node (as ZooKeeper's)
        active = gate.active()
        outstanding = self.tree.membership
        if outstanding is not None and outstanding.version > active.version:
            return Marker(session_id, cxid, Codes.RECONFIGINPROGRESS)
        for field in (op.joining, op.leaving, op.new_members):
            if field is not None and not isinstance(field, str):
                return Marker(session_id, cxid, _BAD)
        if type(op.from_config) is not int:
            return Marker(session_id, cxid, _BAD)
        if op.from_config != -1 and op.from_config != active.version:
            return Marker(session_id, cxid, Codes.BADVERSION)
        try:
            servers = reconfigured(active.servers, op.joining, op.leaving, op.new_members)
        except SpecError as exc:
            self.log.info("reconfig_refused", error=str(exc))
            return Marker(session_id, cxid, _BAD)
        if not gate.synced_quorum(servers):
            return Marker(session_id, cxid, Codes.NEWCONFIGNOQUORUM)
        if self.check_acls and not allowed(self.tree.nodes[CONFIG].acl, Permissions.WRITE, auth):
            return Marker(session_id, cxid, Codes.NOAUTH)
        return session_id, ReconfigTxn(servers)

    def _emit(self, session_id: int, cxid: int, op: Any, now_ms: int) -> Txn:
        counter = self._counter + 1
        if counter > zx.COUNTER_MASK:
            raise AssertionError(f"zxid counter exhausted in epoch {self.epoch}: a new epoch is needed")
        self._counter = counter
        txn = Txn(zx.make(self.epoch, counter), now_ms, session_id, cxid, op)
        self.tree.apply(txn, results=False)
        return txn

    def _open_session(self, session_id: int, cxid: int, op: OpenSession) -> Marker | tuple[int, Any]:
        sid = op.session_id
        if (
            type(sid) is not int
            or type(op.timeout_ms) is not int
            or not 0 < op.timeout_ms <= _INT32_MAX
            or not isinstance(op.passwd, bytes)
            or sid in self.tree.sessions
            or not -(1 << 63) <= sid < (1 << 63)
        ):
            return Marker(session_id, cxid, _BAD)
        return sid, CreateSessionTxn(op.timeout_ms, op.passwd)

    # --- checks: each returns the decided txn op, or an error code --------------------------------
    # `view` is the tree's node dict for a single op, or a multi's _Overlay; both have .get(path).

    def _data_ok(self, data: Any) -> bool:
        return data is None or (type(data) is bytes and len(data) <= self.max_data_bytes)

    def _check_create(self, view: Any, op: Create, session_id: int, auth: list[Id]) -> CreateTxn | int:
        flags = op.flags
        if type(flags) is not int or not 0 <= flags <= MAX_FLAG:
            return _BAD
        ttl = op.ttl
        if type(ttl) is not int:
            return _BAD
        if flags in TTL_FLAGS:
            if not 0 < ttl <= MAX_TTL_MS:
                return _BAD
        elif ttl > 0:
            return _BAD  # a TTL is only valid with a TTL mode (EphemeralType.validateTTL)
        if not self._data_ok(op.data):
            return _BAD
        path = op.path
        sequential = flags in SEQUENTIAL_FLAGS
        if validate_path(path, sequential=sequential) is not None:
            return _BAD
        if path.startswith(RESERVED_PREFIX) and not self._quota_node_ok(path, op.data, create=True):
            return Codes.NODEEXISTS if view.get(path) is not None else _BAD  # /zookeeper/quota, /zookeeper/config
        acl = fixup_acl(op.acl, auth)
        if type(acl) is int:
            return acl
        # The root's "parent" is the root itself, so create("/") ends in NodeExists (after the
        # CREATE check on the root), as ZooKeeper's PrepRequestProcessor answers it.
        parent_path = _parent(path) if path[-1] != "/" else path.rstrip("/") or ROOT
        parent = view.get(parent_path)
        if parent is None:
            return Codes.NONODE
        if self.check_acls and not allowed(parent.acl, Permissions.CREATE, auth):
            return Codes.NOAUTH
        if sequential:
            path = f"{path}{int32(parent.creates):010d}"
        if view.get(path) is not None:
            return Codes.NODEEXISTS
        if is_ephemeral_owner(parent.ephemeral_owner):
            return Codes.NOCHILDRENFOREPHEMERALS
        if flags in EPHEMERAL_FLAGS:
            owner = session_id
        elif flags == CONTAINER:
            owner = CONTAINER_OWNER
        elif flags in TTL_FLAGS:
            owner = ttl_owner(ttl)
        else:
            owner = 0
        if self.tree.quotas and self._over_quota(view, path, 1, data_size(op.data)):
            return Codes.QUOTAEXCEEDED
        return CreateTxn(path, op.data, acl, owner)

    def _check_delete(self, view: Any, op: Delete, session_id: int, auth: list[Id]) -> DeleteTxn | int:
        path = op.path
        if validate_path(path) is not None or type(op.version) is not int:
            return _BAD
        if path == ROOT or path == RESERVED or (path.startswith(RESERVED_PREFIX) and not path.startswith(QUOTA_PREFIX)):
            return _BAD
        # As ZooKeeper: the parent's DELETE permission is checked before the child is looked up,
        # so a session without it cannot learn which children exist.
        parent = view.get(_parent(path))
        if parent is None:
            return Codes.NONODE
        if self.check_acls and not allowed(parent.acl, Permissions.DELETE, auth):
            return Codes.NOAUTH
        node = view.get(path)
        if node is None:
            return Codes.NONODE
        if not _version_ok(op.version, node.version):
            return Codes.BADVERSION
        if node.num_children:
            return Codes.NOTEMPTY
        return DeleteTxn(path)

    def _check_set_data(self, view: Any, op: SetData, session_id: int, auth: list[Id]) -> SetDataTxn | int:
        path = op.path
        if validate_path(path) is not None or type(op.version) is not int or not self._data_ok(op.data):
            return _BAD
        if path.startswith(QUOTA_PREFIX) and not self._quota_node_ok(path, op.data, create=False):
            return _BAD
        node = view.get(path)
        if node is None:
            return Codes.NONODE
        if self.check_acls and not allowed(node.acl, Permissions.WRITE, auth):
            return Codes.NOAUTH
        if self.tree.quotas:
            grows = data_size(op.data) - _size_of(node)
            if grows > 0 and self._over_quota(view, path, 0, grows):
                return Codes.QUOTAEXCEEDED
        if not _version_ok(op.version, node.version):
            return Codes.BADVERSION
        return SetDataTxn(path, op.data, int32(node.version + 1))

    def _quota_node_ok(self, path: str, data: Any, *, create: bool) -> bool:
        """Under /zookeeper only the quota subtree is written: a limits znode holding StatsTrack
        text, a stats znode created (the node then writes its own figures into it, whatever
        it was created with) but never set, any other znode there."""
        if not path.startswith(QUOTA_PREFIX):
            return False
        about = quota_target(path)
        if about is None:
            return True
        if about[1] != LIMITS_NODE:
            return create
        try:
            QuotaLimits.parse(data)
        except (ValueError, UnicodeDecodeError):
            return False
        return True

    def _over_quota(self, view: Any, path: str, count: int, size: int) -> bool:
        """Whether adding `count` znodes and `size` bytes at `path` passes a hard limit of its
        quota root (ZooKeeper's checkQuota; a soft limit passed is logged only)."""
        tree = self.tree
        root = tree.quota_root(path)
        if root is None:
            return False
        quota = tree.quotas[root]
        limits = quota.limits
        extra_count, extra_size = view.quota_delta.get(root, (0, 0)) if type(view) is _Overlay else (0, 0)
        checks = []
        if count:
            checks.append(("count", quota.count + extra_count + count, limits.count, limits.count_hard))
        if size > 0:
            checks.append(("bytes", quota.bytes + extra_size + size, limits.bytes, limits.bytes_hard))
        for what, value, soft, hard in checks:
            limit = hard if hard > -1 else soft
            if limit > -1 and value > limit:
                seen = self._quota_warnings[root, what] = self._quota_warnings.get((root, what), 0) + 1
                if seen % QUOTA_LOG_EVERY == 1:
                    self.log.warning(
                        "quota_exceeded", quota=root, what=what, value=value, limit=limit, hard=hard > -1, seen=seen
                    )
                if hard > -1:
                    return True
        return False

    def _check_set_acl(self, view: Any, op: SetACL, session_id: int, auth: list[Id]) -> SetACLTxn | int:
        path = op.path
        if validate_path(path) is not None or type(op.version) is not int:
            return _BAD
        acl = fixup_acl(op.acl, auth)
        if type(acl) is int:
            return acl
        node = view.get(path)
        if node is None:
            return Codes.NONODE
        if self.check_acls and not allowed(node.acl, Permissions.ADMIN, auth):
            return Codes.NOAUTH
        if not _version_ok(op.version, node.aversion):
            return Codes.BADVERSION
        return SetACLTxn(path, acl, int32(node.aversion + 1))

    def _check_check(self, view: Any, op: Check, session_id: int, auth: list[Id]) -> CheckTxn | int:
        path = op.path
        if validate_path(path) is not None or type(op.version) is not int:
            return _BAD
        node = view.get(path)
        if node is None:
            return Codes.NONODE
        if self.check_acls and not allowed(node.acl, Permissions.READ, auth):
            return Codes.NOAUTH
        if not _version_ok(op.version, node.version):
            return Codes.BADVERSION
        return CheckTxn(path)

    # --- multi ------------------------------------------------------------------------------------

    def _multi(self, session_id: int, cxid: int, op: Multi, auth: list[Id]) -> Marker | tuple[int, Any]:
        ops = op.ops
        if not isinstance(ops, list):
            return Marker(session_id, cxid, _BAD)
        overlay = _Overlay(self.tree)
        decided: list[SubOp] = []
        for i, sub in enumerate(ops):
            kind = type(sub)
            check = self._single.get(kind)
            if check is None and kind is Check:
                check = self._check_check
            if check is None:
                result: Any = _BAD
            else:
                try:
                    result = check(overlay, sub, session_id, auth)
                except (TypeError, ValueError, AttributeError, OverflowError, IndexError, KeyError) as exc:
                    self.log.warning("prep_bad_multi_op", op=kind.__name__, error=repr(exc)[:200])
                    result = _BAD
            if type(result) is int:
                return Marker(session_id, cxid, _OK, _failed_multi(len(ops), i, result))
            overlay.note(result)
            decided.append(result)
        return session_id, MultiTxn(decided)


def _failed_multi(count: int, failed_at: int, code: int) -> MultiResult:
    """Every slot an error (§5.6): 0 before the failing op, its code, RUNTIMEINCONSISTENCY after."""
    ok = OpResult(_OK)
    later = OpResult(Codes.RUNTIMEINCONSISTENCY)
    return MultiResult([ok] * failed_at + [OpResult(code)] + [later] * (count - failed_at - 1))
