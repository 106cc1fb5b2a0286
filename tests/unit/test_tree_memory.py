"""What keeps a big tree small: the leader's prep tree holds no znode values
(DataTree(keep_data=False): what it decides must not change, only what it holds), and snapshots
are read a chunk of nodes at a time."""

from __future__ import annotations

import random

from actors.protocol.txn import CreateTxn, DeleteTxn, MultiTxn, SetACLTxn, SetDataTxn, Txn
from actors.session.tree import DataTree, data_size
from zoomq.security import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE


def _txns(n: int, seed: int) -> list[Txn]:
    rng = random.Random(seed)
    out: list[Txn] = []
    live: list[str] = []
    versions: dict[str, int] = {}
    for i in range(1, n + 1):
        zxid = (1 << 32) | i
        roll = rng.random()
        if not live or roll < 0.4:
            path = f"/n{i}"
            op = CreateTxn(path, rng.randbytes(rng.randrange(0, 200)), OPEN_ACL_UNSAFE, 0)
            live.append(path)
            versions[path] = 0
        elif roll < 0.7:
            path = rng.choice(live)
            versions[path] += 1
            op = SetDataTxn(path, rng.randbytes(50), versions[path])
        elif roll < 0.8:
            path = rng.choice(live)
            op = SetACLTxn(path, READ_ACL_UNSAFE if rng.random() < 0.5 else OPEN_ACL_UNSAFE, 1)
        elif roll < 0.9:
            path = live.pop(rng.randrange(len(live)))
            op = DeleteTxn(path)
        else:
            path = f"/m{i}"
            op = MultiTxn([CreateTxn(path, b"multi", OPEN_ACL_UNSAFE, 0), SetDataTxn(path, b"again", 1)])
            live.append(path)
            versions[path] = 1
        out.append(Txn(zxid, 1_000 + i, 1, i, op))
    return out


def _shape(tree: DataTree) -> dict:
    """Everything prep decides on: versions, ACLs, owners, children, zxids; not the values."""
    return {
        path: (
            n.version,
            n.aversion,
            n.creates,
            tuple(n.acl),
            n.ephemeral_owner,
            sorted(n.children),
            n.czxid,
            n.mzxid,
            n.pzxid,
        )
        for path, n in tree.nodes.items()
    }


def test_a_tree_without_values_agrees_on_everything_else_and_holds_no_bytes():
    full, lean = DataTree(), DataTree(keep_data=False)
    for txn in _txns(2_000, seed=7):
        full.apply(txn)
        lean.apply(txn, results=False)
    assert _shape(lean) == _shape(full)
    assert any(n.data for n in full.nodes.values())

    def sizes_only(tree: DataTree) -> bool:  # a length where the value was (the boot nodes: the shared b"")
        return all(n.data is None or n.data == b"" or type(n.data) is int for n in tree.nodes.values())

    assert sizes_only(lean)
    assert all(data_size(lean.nodes[p].data) == data_size(n.data) for p, n in full.nodes.items())
    # from a snapshot: the same
    again = DataTree.from_snapshot(full.to_snapshot(), keep_data=False)
    assert _shape(again) == _shape(full) and sizes_only(again)
    assert again.last_zxid == full.last_zxid


def test_snapshots_are_read_a_chunk_at_a_time_and_the_flat_format_still_reads():
    from actors.session import tree as t

    full = DataTree()
    for txn in _txns(3 * t.SNAPSHOT_CHUNK, seed=11):
        full.apply(txn)
    blob = full.to_snapshot()
    head = t._snapshot_decoder.decode(blob)
    assert head.format == 2 and len(head.nodes) == -(-len(full.nodes) // t.SNAPSHOT_CHUNK) > 1
    assert DataTree.from_snapshot(blob).digest() == full.digest()
    # format 1, as earlier versions wrote it
    images = list(t._images(head))
    old = t._snapshot_encoder.encode(t._Snapshot(1, head.last_zxid, head.sessions, head.acls, images, head.recent))
    assert DataTree.from_snapshot(old).digest() == full.digest()
