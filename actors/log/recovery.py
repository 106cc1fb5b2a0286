"""Rebuild the data tree from disk: the newest valid snapshot, then the log after it."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

from actors.log.snapshot import list_snapshots, load_newest_valid
from actors.log.txnlog import read_txns
from actors.protocol.txn import Txn
from actors.protocol.zxid import fmt
from actors.session.tree import DataTree


def load_state(
    directory: Path, *, upto: int | None = None, log: Any, tail: deque[Txn] | None = None, keep_data: bool = True
) -> DataTree:
    return load_state_counted(directory, upto=upto, log=log, tail=tail, keep_data=keep_data)[0]


def load_state_counted(
    directory: Path, *, upto: int | None = None, log: Any, tail: deque[Txn] | None = None, keep_data: bool = True
) -> tuple[DataTree, int]:
    """The state, and how many logged txns were replayed on top of its snapshot (what the next
    snapshot would save a restart from replaying). `tail` gets the txns replayed (a bounded deque
    keeps the latest). `keep_data=False`: a tree without the values (DataTree's)."""
    directory = Path(directory)
    snap = load_newest_valid(directory, log) if directory.exists() else None
    if snap is not None and (upto is None or snap[0] <= upto):
        tree = DataTree.from_snapshot(snap[1], keep_data)
    else:
        tree = DataTree(keep_data)
    replayed = catch_up(tree, directory, upto, log, tail) if directory.exists() else 0
    log.info("state_loaded", snapshot=fmt(snap[0]) if snap else None, replayed=replayed, zxid=fmt(tree.last_zxid))
    return tree, replayed


def catch_up(tree: DataTree, directory: Path, upto: int | None, log: Any, tail: deque[Txn] | None = None) -> int:
    """Apply the logged txns after tree.last_zxid through `upto`; return how many."""
    n = 0
    for txn in read_txns(Path(directory), tree.last_zxid, upto):
        tree.apply(txn, results=False)
        if tail is not None:
            tail.append(txn)
        n += 1
    return n


def resume_state(
    tree: DataTree, directory: Path, *, upto: int, log: Any, tail: deque[Txn] | None = None
) -> DataTree | None:
    """`tree`, read from this disk earlier (a standby role actor's preload), caught up through
    `upto`; None if the disk moved under it in a way a catch-up cannot follow: the txn it ends
    with was truncated away, or a snapshot newer than it appeared (a leader's SNAP installed, whose
    history below may differ). The caller then reads the state whole."""
    directory = Path(directory)
    last = tree.last_zxid
    if last > upto or any(z > last for z, _ in list_snapshots(directory)):
        return None
    if last and not any(t.zxid == last for t in read_txns(directory, last - 1, last)):
        return None
    replayed = catch_up(tree, directory, upto, log, tail)
    log.info("state_loaded", preloaded=fmt(last), replayed=replayed, zxid=fmt(tree.last_zxid))
    return tree
