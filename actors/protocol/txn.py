"""Transactions: what prep produces, the log stores, and every replica applies in zxid order.

A txn is idempotent and fully decided: prep has already resolved sequence names, versions,
ephemeral owners, the session password and the leader's wall time, so applying it never reads
a clock or makes a choice. `Marker` is not a txn: it is an ordered, unlogged result (an error,
a sync, a failed multi) that travels the commit stream so that a session's replies stay FIFO.
"""

from __future__ import annotations

import msgspec

from runtime.config import ServerEntry
from zoomq.protocol import MultiResult, PathResult
from zoomq.security import ACL

# ephemeralOwner markers for container and TTL nodes, as ZooKeeper's signed longs.
CONTAINER_OWNER = -(1 << 63)  # 0x8000000000000000
TTL_OWNER_BASE = (0xFF << 56) - (1 << 64)  # 0xFF00000000000000 as a signed long
MAX_TTL_MS = (1 << 40) - 1


def ttl_owner(ttl_ms: int) -> int:
    return TTL_OWNER_BASE | ttl_ms


def is_container(owner: int) -> bool:
    return owner == CONTAINER_OWNER


def ttl_of(owner: int) -> int | None:
    """The TTL in ms if `owner` marks a TTL node, else None."""
    if owner != CONTAINER_OWNER and owner < 0 and (owner & ~MAX_TTL_MS) == TTL_OWNER_BASE:
        return owner & MAX_TTL_MS
    return None


class TxnOp(msgspec.Struct, array_like=True, frozen=True, tag_field="tag"):
    """Base of the operation inside a txn."""


class CreateTxn(TxnOp, tag="create"):
    path: str  # final path (sequence suffix already applied)
    data: bytes | None  # None = no data (ZooKeeper's null), kept apart from b""
    acl: list[ACL]
    ephemeral_owner: int = 0  # session id, CONTAINER_OWNER, ttl_owner(ms), or 0


class DeleteTxn(TxnOp, tag="delete"):
    path: str


class SetDataTxn(TxnOp, tag="set"):
    path: str
    data: bytes | None
    version: int  # the node's version after this change


class SetACLTxn(TxnOp, tag="setacl"):
    path: str
    acl: list[ACL]
    version: int  # the node's aversion after this change


class CheckTxn(TxnOp, tag="check"):
    """A version check inside a multi: nothing to apply, a slot in the result list."""

    path: str


class MultiTxn(TxnOp, tag="multi"):
    ops: list[CreateTxn | DeleteTxn | SetDataTxn | SetACLTxn | CheckTxn]


class CreateSessionTxn(TxnOp, tag="session"):
    timeout_ms: int
    passwd: bytes


class CloseSessionTxn(TxnOp, tag="close"):
    """Ends the header's session: its ephemerals are deleted in sorted path order."""


class ReconfigTxn(TxnOp, tag="reconfig"):
    """The ensemble's membership from this txn on (a reconfig): /zookeeper/config shows it with
    `version=<this txn's zxid>`; it takes effect on each node when the txn commits there."""

    servers: list[ServerEntry]


AnyTxnOp = (
    CreateTxn
    | DeleteTxn
    | SetDataTxn
    | SetACLTxn
    | CheckTxn
    | MultiTxn
    | CreateSessionTxn
    | CloseSessionTxn
    | ReconfigTxn
)


class Txn(msgspec.Struct, array_like=True, frozen=True, tag="txn", tag_field="tag"):
    """One replicated transaction. (session_id, cxid) names the request that caused it."""

    zxid: int
    time_ms: int
    session_id: int
    cxid: int
    op: AnyTxnOp


class Marker(msgspec.Struct, array_like=True, frozen=True, tag="marker", tag_field="tag"):
    """An ordered, unlogged answer to (session_id, cxid): err != 0, or a sync/failed-multi body.
    `replay` != 0: the request was a re-sent one already applied at that zxid; each node answers
    it with the result its own tree remembers (DataTree.recent_result).
    `conn`, when not 0, is the client connection the answer is for: with cxid OWNED_CXID (no
    request) the leader took that connection as the session's owner (an OwnSession) and the
    session actor holding it completes its handshake; with SESSIONMOVED it is the connection
    whose request was refused. After a takeover the same session lives on two nodes and both
    may have a request with the same cxid outstanding: only the binding with that connection
    takes the answer."""

    session_id: int
    cxid: int
    err: int
    body: PathResult | MultiResult | None = None
    replay: int = 0
    conn: int = 0


OWNED_CXID = -1  # a Marker's cxid for "the session now belongs to connection `conn`" (never a client xid)


Entry = Txn | Marker
