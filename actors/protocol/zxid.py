"""zxid = (epoch << 32) | counter, as ZooKeeper builds it."""

from __future__ import annotations

COUNTER_BITS = 32
COUNTER_MASK = (1 << COUNTER_BITS) - 1


def make(epoch: int, counter: int) -> int:
    return (epoch << COUNTER_BITS) | counter


def epoch_of(zxid: int) -> int:
    return zxid >> COUNTER_BITS


def counter_of(zxid: int) -> int:
    return zxid & COUNTER_MASK


def fmt(zxid: int) -> str:
    """`0x1_00000003`: epoch, then counter, both hex."""
    return f"0x{epoch_of(zxid):x}_{counter_of(zxid):08x}"


def follows(last: int, zxid: int) -> bool:
    """True if `zxid` is the txn right after `last`: the next counter, or the first of a new epoch."""
    return zxid == last + 1 or (epoch_of(zxid) > epoch_of(last) and counter_of(zxid) == 1)
