"""Reads, answered from a node's own tree, with ZooKeeper's ACL checks (pure).

Rules: READ is needed on an existing node (getACL: READ or ADMIN; exists checks READ on an
existing node as ZooKeeper 3.8.4+/3.9.2+, ZOOKEEPER-2590); getACL shows digest ids only to a
session with ADMIN (ZooKeeper 3.8); getData / exists set a data watch (exists even on a missing
node) and getChildren a child watch; multiRead answers each read on its own; whoAmI lists what
auth added before the connection's own identities; getEphemerals lists this session's own.
getSubtree (zoomq's backup read) walks the subtree in one step, so it is consistent at the tree's
zxid: a node without READ is left out with everything below it (a backup must be restorable,
parents before children; the node is counted, what is below it is not), ephemerals are left out (listed when readable), digest ids
are masked as getACL masks them; more than `subtree_limit` znodes is BADARGUMENTS.
"""

from __future__ import annotations

import gc
from typing import Any

from actors.leader.prep import allowed
from actors.session.tree import DataTree, is_ephemeral_owner
from actors.session.watches import WatchTable
from zoomq import protocol as p
from zoomq.exceptions import Codes
from zoomq.paths import validate_path
from zoomq.security import ACL, Id, Permissions

CONNECTION_SCHEMES = frozenset({"ip", "x509", "sasl"})  # proven anew on each connection


DEFAULT_SUBTREE_LIMIT = 1_000_000  # NodeConfig.backup_max_znodes


def read_result(
    tree: DataTree,
    watches: WatchTable,
    session_id: int,
    auth: list[Id],
    req: Any,
    subtree_limit: int = DEFAULT_SUBTREE_LIMIT,
) -> tuple[int, Any]:
    """(error code, reply body) of a read by `session_id` (authenticated as `auth`)."""
    if isinstance(req, p.GetSubtree):
        return subtree_result(tree, auth, req.path, subtree_limit)
    if isinstance(req, p.WhoAmI):
        ids = sorted(auth, key=lambda ident: ident.scheme in CONNECTION_SCHEMES)
        return Codes.OK, p.WhoAmIResult([identity(ident) for ident in ids])
    if isinstance(req, p.MultiRead):
        results = []
        for op in req.ops:  # as many as one frame holds
            if isinstance(op, (p.GetData, p.GetChildren)):
                err, body = read_result(tree, watches, session_id, auth, op)
            else:
                err, body = Codes.BADARGUMENTS, None
            results.append(p.ReadResult(err, body))
        return Codes.OK, p.MultiReadResult(results)
    path = req.path if not isinstance(req, p.GetEphemerals) else req.prefix
    if validate_path(path) is not None:
        return Codes.BADARGUMENTS, None
    if isinstance(req, p.GetEphemerals):
        return Codes.OK, p.NamesResult([e for e in tree.ephemerals(session_id) if e.startswith(path)])
    node = tree.get(path)
    if node is not None and not may_read(node.acl, auth, isinstance(req, p.GetACL)):
        return Codes.NOAUTH, None
    if isinstance(req, p.GetData):
        if node is None:
            return Codes.NONODE, None
        if req.watch:
            watches.add_data(path, session_id)
        return Codes.OK, p.DataResult(node.data, tree.stat(node))
    if isinstance(req, p.Exists):
        if req.watch:
            watches.add_data(path, session_id)
        if node is None:
            return Codes.NONODE, None
        return Codes.OK, p.StatResult(tree.stat(node))
    if node is None:
        return Codes.NONODE, None
    if isinstance(req, p.GetChildren):
        if req.watch:
            watches.add_child(path, session_id)
        return Codes.OK, p.ChildrenResult(list(node.children), tree.stat(node) if req.include_stat else None)
    if isinstance(req, p.GetACL):
        acl = node.acl
        if not allowed(acl, Permissions.ADMIN, auth):
            acl = [masked(entry) for entry in acl]
        return Codes.OK, p.ACLResult(acl, tree.stat(node))
    # GetAllChildrenNumber
    return Codes.OK, p.CountResult(tree.count_descendants(path))


def subtree_result(tree: DataTree, auth: list[Id], path: str, limit: int) -> tuple[int, Any]:
    """getSubtree: every znode at and below `path` the session may read, with data, ACL and Stat,
    parents before children (depth first, children by name), at the tree's zxid."""
    if type(path) is not str or validate_path(path) is not None:
        return Codes.BADARGUMENTS, None
    top = tree.get(path)
    if top is None:
        return Codes.NONODE, None
    if not may_read(top.acl, auth):
        return Codes.NOAUTH, None
    if tree.count_descendants(path) + 1 > limit:
        return Codes.BADARGUMENTS, None
    # A million new objects would set off the cyclic collector again and again, each time over
    # the whole tree (most of the time taken): none of them is part of a cycle, so it waits.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _subtree(tree, auth, path)
    finally:
        if collecting:
            gc.enable()


def _subtree(tree: DataTree, auth: list[Id], path: str) -> tuple[int, Any]:
    nodes: list[p.SubtreeNode] = []
    ephemerals: list[str] = []
    unreadable = n_masked = 0
    all_nodes = tree.nodes
    stat = tree.stat
    node_of = p.SubtreeNode
    # Per ACL list (they are interned: a handful for a million znodes): None = no READ, else the
    # ACL as this session is shown it and whether that is masked.
    shown: dict[int, tuple[list[ACL], bool] | None] = {}
    stack = [path]
    while stack:
        at = stack.pop()
        node = all_nodes[at]
        acl = node.acl
        view = shown.get(id(acl), False)
        if view is False:
            if not may_read(acl, auth):
                view = None
            elif any(entry.id.scheme == "digest" for entry in acl) and not allowed(acl, Permissions.ADMIN, auth):
                view = ([masked(entry) for entry in acl], True)
            else:
                view = (acl, False)
            shown[id(acl)] = view
        if view is None:
            unreadable += 1  # and what is below it, uncounted: its size is not this session's to learn
            continue
        if is_ephemeral_owner(node.ephemeral_owner):
            ephemerals.append(at)  # an ephemeral has no children
            continue
        n_masked += view[1]
        nodes.append(node_of(at, node.data, view[0], stat(node)))
        if node.children:
            base = at if at != "/" else ""
            stack.extend([f"{base}/{name}" for name in sorted(node.children, reverse=True)])
    return Codes.OK, p.SubtreeResult(tree.last_zxid, nodes, ephemerals, unreadable, n_masked)


def may_read(acl: list[ACL], auth: list[Id], get_acl: bool = False) -> bool:
    """READ (getACL: READ or ADMIN)."""
    return allowed(acl, Permissions.READ, auth) or (get_acl and allowed(acl, Permissions.ADMIN, auth))


def masked(entry: ACL) -> ACL:
    """A digest id with its hash hidden (user:x), for readers without ADMIN."""
    if entry.id.scheme != "digest":
        return entry
    return ACL(entry.perms, Id("digest", entry.id.id.split(":", 1)[0] + ":x"))


def identity(ident: Id) -> p.AuthIdentity:
    """ZooKeeper's ClientInfo of an auth id: the digest scheme shows the user name only."""
    user = ident.id.split(":", 1)[0] if ident.scheme == "digest" else ident.id
    return p.AuthIdentity(ident.scheme, user)
