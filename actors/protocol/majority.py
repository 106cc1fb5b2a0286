"""Quorum arithmetic, the one place it is written (ZooKeeper's QuorumMaj; etcd's quorum/).

A quorum of a voter set is any strict majority of it; observers never count. Everything that asks
"is this enough?" (discovery, establishment, the leader's liveness, commit, election) asks here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping


def size(voters: Collection[int]) -> int:
    """How many voters make a quorum."""
    return len(voters) // 2 + 1


def reached(sids: Collection[int], voters: Collection[int]) -> bool:
    """Whether the voters among `sids` are a quorum."""
    return sum(1 for sid in set(sids) if sid in voters) >= size(voters)


def committed_point(acked: Mapping[int, int], voters: Collection[int]) -> int:
    """The highest value at least a quorum of voters has reached (each voter's value in `acked`,
    0 when missing): the commit index of their logged positions."""
    values = sorted((acked.get(sid, 0) for sid in voters), reverse=True)
    return values[size(voters) - 1]
