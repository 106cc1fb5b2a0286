"""bench/hist.py: HdrHistogram behind the harness's interface, merged across processes as JSON."""

from __future__ import annotations

import json
import random

import pytest

from bench.hist import Histogram

pytestmark = pytest.mark.timeout(30)


def test_percentiles_hold_three_significant_digits_and_the_exact_extremes():
    h = Histogram()
    values = list(range(1, 100_001))
    random.Random(5).shuffle(values)
    for v in values:
        h.record(v)
    assert (h.count, h.min, h.max) == (100_000, 1, 100_000)
    for q, exact in ((50, 50_000), (99, 99_000), (99.9, 99_900)):
        assert abs(h.percentile(q) - exact) <= exact / 1000
    assert abs(h.mean - 50_000.5) < 50


def test_histograms_from_several_processes_merge_through_json_as_if_recorded_in_one():
    parts = [Histogram() for _ in range(3)]
    whole = Histogram()
    rng = random.Random(9)
    for i in range(30_000):
        v = int(rng.expovariate(1 / 800)) + 1
        parts[i % 3].record(v)
        whole.record(v)
    merged = Histogram()
    for part in parts:
        merged.merge(Histogram.from_dict(json.loads(json.dumps(part.to_dict()))))
    assert merged.count == whole.count and merged.max == whole.max and merged.min == whole.min
    assert [merged.percentile(q) for q in (50, 90, 99, 99.9)] == [whole.percentile(q) for q in (50, 90, 99, 99.9)]
    summary = merged.summary_ms()
    assert summary["p50_ms"] <= summary["p99_ms"] <= summary["max_ms"]


def test_empty_negative_huge_and_foreign_records():
    empty = Histogram.from_dict(Histogram().to_dict())
    assert (empty.count, empty.percentile(99), empty.max, empty.mean) == (0, 0, 0, 0.0)
    h = Histogram()
    h.record(-5)
    h.record(1 << 50)
    assert h.count == 2 and h.max >= (1 << 40) - (1 << 30)
    with pytest.raises(ValueError, match="HdrHistogram"):
        Histogram.from_dict({"buckets": [[1, 2]], "count": 2})
