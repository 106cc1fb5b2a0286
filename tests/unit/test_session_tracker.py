"""SessionTracker: ZooKeeper's ExpiryQueue in tick buckets, driven by explicit time (§1.6)."""

from __future__ import annotations

import random

import pytest

from actors.leader.sessions import SessionTracker

pytestmark = pytest.mark.timeout(30)

TICK = 100


def test_deadline_is_rounded_up_to_the_next_tick() -> None:
    t = SessionTracker(tick_ms=TICK)
    t.add(1, 1_000, now_ms=5_050)  # 6_050 -> bucket 6_100
    t.add(2, 1_000, now_ms=5_000)  # exactly on a tick still moves to the next: 6_100
    assert t.next_deadline_ms() == 6_100
    assert t.expired(6_099) == []
    assert t.expired(6_100) == [1, 2]


def test_a_session_expires_between_timeout_and_timeout_plus_a_tick_after_its_last_touch() -> None:
    rng = random.Random(7)
    for _ in range(200):
        t = SessionTracker(tick_ms=TICK)
        timeout = rng.randint(1, 5_000)
        now = rng.randint(0, 10**9)
        t.add(9, timeout, now)
        deadline = t.next_deadline_ms()
        assert deadline is not None and now + timeout < deadline <= now + timeout + TICK
        assert t.expired(deadline - 1) == []
        assert t.expired(deadline) == [9]


def test_touch_postpones_expiry() -> None:
    t = SessionTracker(tick_ms=TICK)
    t.add(1, 1_000, 0)
    t.add(2, 1_000, 0)
    t.touch(1, 900)
    assert t.expired(1_100) == [2]
    assert t.next_deadline_ms() == 2_000
    assert t.expired(1_999) == []
    assert t.expired(2_000) == [1]


def test_touch_of_unknown_ids_is_ignored() -> None:
    t = SessionTracker(tick_ms=TICK)
    t.touch(42, 0)
    assert len(t) == 0 and t.next_deadline_ms() is None and t.expired(10**12) == []


def test_expired_sessions_are_reported_once_until_touched_or_removed() -> None:
    t = SessionTracker(tick_ms=TICK)
    t.add(1, 500, 0)
    t.add(2, 500, 0)
    assert t.expired(600) == [1, 2]
    assert t.expired(10_000) == []
    assert 1 in t and 2 in t  # still known until removed (its CloseSessionTxn is proposed)
    assert t.next_deadline_ms() is None
    t.touch(1, 10_000)  # a late touch re-arms it
    assert t.expired(10_500) == []
    assert t.expired(10_600) == [1]
    t.remove(2)
    t.touch(2, 20_000)
    assert 2 not in t and t.expired(10**9) == []


def test_remove_stops_tracking() -> None:
    t = SessionTracker(tick_ms=TICK)
    t.add(1, 500, 0)
    t.add(2, 800, 0)
    t.remove(1)
    t.remove(1)  # twice is fine
    t.remove(77)  # unknown is fine
    assert t.next_deadline_ms() == 900
    assert t.expired(10_000) == [2]
    assert len(t) == 1


def test_add_again_replaces_the_timeout() -> None:
    t = SessionTracker(tick_ms=TICK)
    t.add(1, 10_000, 0)
    t.add(1, 200, 0)
    assert t.next_deadline_ms() == 300
    t.touch(1, 1_000)
    assert t.next_deadline_ms() == 1_300


def test_expired_is_sorted_and_spans_several_buckets() -> None:
    t = SessionTracker(tick_ms=TICK)
    for sid, timeout in [(5, 300), (3, 100), (9, 200), (1, 300), (7, 10_000)]:
        t.add(sid, timeout, 0)
    assert t.expired(400) == [1, 3, 5, 9]
    assert t.next_deadline_ms() == 10_100


def test_next_deadline_skips_buckets_emptied_by_touches() -> None:
    t = SessionTracker(tick_ms=TICK)
    t.add(1, 1_000, 0)
    for now in range(0, 50_000, 50):
        t.touch(1, now)
    assert t.next_deadline_ms() == 51_000  # last touch at 49_950 + 1_000, rounded up to a tick
    assert len(t._heap) <= 2 * len(t._buckets) + 65  # stale entries stay bounded


def test_many_sessions_against_a_reference_model() -> None:
    rng = random.Random(1234)
    t = SessionTracker(tick_ms=TICK)
    deadline: dict[int, int | None] = {}  # None = reported, not re-armed
    timeouts: dict[int, int] = {}
    now = 0
    for _ in range(5_000):
        now += rng.randint(0, 60)
        sid = rng.randint(1, 40)
        roll = rng.random()
        if roll < 0.2:
            timeouts[sid] = rng.randint(100, 2_000)
            t.add(sid, timeouts[sid], now)
            deadline[sid] = (now + timeouts[sid]) // TICK * TICK + TICK
        elif roll < 0.7:
            t.touch(sid, now)
            if sid in timeouts:
                deadline[sid] = (now + timeouts[sid]) // TICK * TICK + TICK
        elif roll < 0.8:
            t.remove(sid)
            timeouts.pop(sid, None)
            deadline.pop(sid, None)
        else:
            want = sorted(s for s, d in deadline.items() if d is not None and d <= now)
            assert t.expired(now) == want
            for s in want:
                deadline[s] = None
        armed = [d for d in deadline.values() if d is not None]
        assert t.next_deadline_ms() == (min(armed) if armed else None)


def test_tick_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SessionTracker(tick_ms=0)
