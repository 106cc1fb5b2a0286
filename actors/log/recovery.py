"""Rebuild the data tree from disk: the newest valid snapshot, then the log after it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actors.log.snapshot import load_newest_valid
from actors.log.txnlog import read_txns
from actors.protocol.zxid import fmt
from actors.session.tree import DataTree


def load_state(directory: Path, *, upto: int | None = None, log: Any) -> DataTree:
    return load_state_counted(directory, upto=upto, log=log)[0]


def load_state_counted(directory: Path, *, upto: int | None = None, log: Any) -> tuple[DataTree, int]:
    """The state, and how many logged txns were replayed on top of its snapshot (what the next
    snapshot would save a restart from replaying)."""
    directory = Path(directory)
    snap = load_newest_valid(directory, log) if directory.exists() else None
    if snap is not None and (upto is None or snap[0] <= upto):
        tree = DataTree.from_snapshot(snap[1])
    else:
        tree = DataTree()
    replayed = catch_up(tree, directory, upto, log) if directory.exists() else 0
    log.info("state_loaded", snapshot=fmt(snap[0]) if snap else None, replayed=replayed, zxid=fmt(tree.last_zxid))
    return tree, replayed


def catch_up(tree: DataTree, directory: Path, upto: int | None, log: Any) -> int:
    """Apply the logged txns after tree.last_zxid through `upto`; return how many."""
    n = 0
    for txn in read_txns(Path(directory), tree.last_zxid, upto):
        tree.apply(txn, results=False)
        n += 1
    return n
