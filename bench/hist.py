"""A latency histogram in the manner of HdrHistogram: log-linear buckets, mergeable, percentiles.

Values are non-negative integers (the harness records microseconds). Values below 2**SUB_BITS
each have a bucket of their own; above, every power of two is cut into 2**(SUB_BITS-1) equal
buckets, so a bucket is never wider than 1/2**(SUB_BITS-1) of the values in it (SUB_BITS = 8:
0.8 %, about HdrHistogram's 2 significant digits). Recording is one `bit_length`, one shift and
one list increment, cheap enough to run in a client's I/O thread for every reply.

```python
h = Histogram()
h.record(1234)                      # µs
h.merge(Histogram.from_dict(other.to_dict()))   # across processes, as JSON
h.percentile(99.9), h.max, h.count
```
"""

from __future__ import annotations

import math
from typing import Any

SUB_BITS = 8
_SUB = 1 << SUB_BITS  # values below this are exact
_HALF = _SUB >> 1  # buckets per power of two above it
MAX_VALUE = (1 << 40) - 1  # ~12.7 days in µs: larger values are clamped
_SIZE = _SUB + (MAX_VALUE.bit_length() - SUB_BITS) * _HALF


def bucket_of(value: int) -> int:
    """The bucket index of `value` (clamped to [0, MAX_VALUE])."""
    if value < _SUB:
        return max(0, value)
    value = min(value, MAX_VALUE)
    shift = value.bit_length() - SUB_BITS  # >= 1
    return _SUB + (shift - 1) * _HALF + ((value >> shift) - _HALF)


def bucket_range(index: int) -> tuple[int, int]:
    """(lowest, highest) value that falls into bucket `index`."""
    if index < _SUB:
        return index, index
    shift = (index - _SUB) // _HALF + 1
    sub = (index - _SUB) % _HALF + _HALF
    return sub << shift, ((sub + 1) << shift) - 1


class Histogram:
    """Counts per log-linear bucket plus exact count, min, max and sum."""

    __slots__ = ("count", "counts", "max", "min", "total")

    def __init__(self) -> None:
        self.counts = [0] * _SIZE
        self.count = 0
        self.min = 0
        self.max = 0
        self.total = 0  # sum of recorded values, for the mean

    def record(self, value: int) -> None:
        value = int(value)
        value = max(value, 0)
        if value < _SUB:
            self.counts[value] += 1
        else:
            v = min(value, MAX_VALUE)
            shift = v.bit_length() - SUB_BITS
            self.counts[_SUB + (shift - 1) * _HALF + ((v >> shift) - _HALF)] += 1
        if self.count == 0 or value < self.min:
            self.min = value
        self.max = max(self.max, value)
        self.count += 1
        self.total += value

    def merge(self, other: Histogram) -> Histogram:
        """Add `other`'s counts into this histogram (returns self)."""
        if other.count == 0:
            return self
        counts = self.counts
        for i, c in enumerate(other.counts):
            if c:
                counts[i] += c
        self.min = other.min if self.count == 0 else min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total
        return self

    def percentile(self, q: float) -> int:
        """The value at percentile `q` (0..100): the highest value of the bucket holding the
        ceil(q% * count)-th smallest value, capped by the exact max (0 when empty)."""
        if self.count == 0:
            return 0
        rank = max(1, math.ceil(q / 100.0 * self.count - 1e-9))  # the rank-th smallest value
        seen = 0
        for i, c in enumerate(self.counts):
            if c:
                seen += c
                if seen >= rank:
                    return min(bucket_range(i)[1], self.max)
        return self.max

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form: only the non-empty buckets, as [index, count] pairs."""
        return {
            "sub_bits": SUB_BITS,
            "buckets": [[i, c] for i, c in enumerate(self.counts) if c],
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "total": self.total,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        if data.get("sub_bits", SUB_BITS) != SUB_BITS:
            raise ValueError(f"histogram with sub_bits {data.get('sub_bits')}, expected {SUB_BITS}")
        h = cls()
        for i, c in data.get("buckets", []):
            h.counts[int(i)] += int(c)
        h.count = int(data.get("count", 0))
        h.min = int(data.get("min", 0))
        h.max = int(data.get("max", 0))
        h.total = int(data.get("total", 0))
        return h

    def summary_ms(self, unit_us: bool = True) -> dict[str, float]:
        """p50 / p90 / p99 / p99.9 / max / mean in milliseconds (values recorded in µs)."""
        scale = 1000.0 if unit_us else 1.0
        return {
            "p50_ms": round(self.percentile(50) / scale, 3),
            "p90_ms": round(self.percentile(90) / scale, 3),
            "p99_ms": round(self.percentile(99) / scale, 3),
            "p999_ms": round(self.percentile(99.9) / scale, 3),
            "max_ms": round(self.max / scale, 3),
            "mean_ms": round(self.mean / scale, 3),
        }


__all__ = ["MAX_VALUE", "SUB_BITS", "Histogram", "bucket_of", "bucket_range"]
