"""Latency histograms for the harness: HdrHistogram (the `hdrhistogram` package, Gil Tene's
design), 3 significant digits over 1 µs .. ~12.7 days, behind the small interface the load
generators and reports use. Histograms travel between processes as HdrHistogram's compressed
encoding inside JSON and merge without losing precision.

```python
h = Histogram()
h.record(1234)                      # µs
h.merge(Histogram.from_dict(other.to_dict()))   # across processes, as JSON
h.percentile(99.9), h.max, h.count
```
"""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram

SIGNIFICANT_DIGITS = 3
MAX_VALUE = (1 << 40) - 1  # ~12.7 days in µs: larger values are clamped


class Histogram:
    """An HdrHistogram of non-negative integer values (the harness records microseconds)."""

    __slots__ = ("_h", "_max", "_min")

    def __init__(self) -> None:
        self._h = HdrHistogram(1, MAX_VALUE, SIGNIFICANT_DIGITS)
        self._min = self._max = 0  # exact (the histogram's own are its buckets' edges)

    def record(self, value: int) -> None:
        value = min(max(int(value), 0), MAX_VALUE)
        if not self._h.get_total_count() or value < self._min:
            self._min = value
        self._max = max(self._max, value)
        self._h.record_value(value)

    def merge(self, other: Histogram) -> Histogram:
        """Add `other`'s counts into this histogram (returns self)."""
        if other.count:
            self._min = other._min if not self.count else min(self._min, other._min)
            self._max = max(self._max, other._max)
            self._h.add(other._h)
        return self

    @property
    def count(self) -> int:
        return self._h.get_total_count()

    @property
    def min(self) -> int:
        return self._min

    @property
    def max(self) -> int:
        return self._max

    @property
    def mean(self) -> float:
        return self._h.get_mean_value() if self.count else 0.0

    def percentile(self, q: float) -> int:
        """The value at percentile `q` (0..100), within HdrHistogram's precision (capped by the
        exact max); 0 when empty."""
        return min(self._h.get_value_at_percentile(q), self._max) if self.count else 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form: HdrHistogram's compressed, base64 encoding, and the exact extremes."""
        return {
            "hdr": self._h.encode().decode("ascii") if self.count else "",
            "count": self.count,
            "min": self._min,
            "max": self._max,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        encoded = data.get("hdr")
        if encoded is None:
            raise ValueError("not an HdrHistogram record (no 'hdr' field): written by an older bench?")
        if not encoded:
            return cls()
        merged = cls()
        merged._h.add(HdrHistogram.decode(encoded))
        merged._min, merged._max = (
            int(data.get("min", merged._h.get_min_value())),
            int(data.get("max", merged._h.get_max_value())),
        )
        return merged

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


__all__ = ["MAX_VALUE", "SIGNIFICANT_DIGITS", "Histogram"]
