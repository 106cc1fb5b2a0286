"""Latencies in cumulative buckets (a Prometheus histogram's shape) plus ZooKeeper's min / avg /
max, per kind: the session actor's requests (from a request's arrival to its answer being sent,
per operation; reads answered at once count too: their latency is the queueing behind the
session's earlier writes, usually nothing) and the log actor's fsyncs.

Recording is one bisect and three additions: it runs on every request of the hot path."""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

# Upper bounds in milliseconds (and +Inf): from an in-memory read to a write stuck in a failover.
BUCKETS_MS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    25.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1000.0,
    2500.0,
    5000.0,
    10000.0,
)


class Latencies:
    def __init__(self) -> None:
        self.ops: dict[str, list[float]] = {}  # op -> [count per bucket ..., +Inf count, sum ms]
        self.count = 0
        self.total_ms = 0.0
        self.min_ms: float | None = None
        self.max_ms = 0.0

    def record(self, op: str, ms: float) -> None:
        row = self.ops.get(op)
        if row is None:
            row = self.ops[op] = [0.0] * (len(BUCKETS_MS) + 2)
        row[bisect_left(BUCKETS_MS, ms)] += 1
        row[-1] += ms
        self.count += 1
        self.total_ms += ms
        if self.min_ms is None or ms < self.min_ms:
            self.min_ms = ms
        if ms > self.max_ms:
            self.max_ms = ms

    @property
    def avg_ms(self) -> float:
        return self.total_ms / self.count if self.count else 0.0

    def snapshot(self) -> dict[str, Any]:
        """{op: {"buckets": [[le, cumulative count], ...], "count", "sum_ms"}} (le None = +Inf)."""
        out: dict[str, Any] = {}
        for op, row in self.ops.items():
            running = 0.0
            buckets = []
            for bound, n in zip((*BUCKETS_MS, None), row[:-1], strict=True):
                running += n
                buckets.append([bound, int(running)])
            out[op] = {"buckets": buckets, "count": int(running), "sum_ms": row[-1]}
        return out
