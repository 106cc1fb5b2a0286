"""Leader-side session expiry, pure (ZooKeeper's SessionTrackerImpl over an ExpiryQueue).

Rules (§1.6 of the reference):
- Deadlines are rounded UP to the next multiple of `tick_ms` (ExpiryQueue.roundToNextInterval:
  `(t // tick + 1) * tick`), so sessions share buckets and a timer fires at most once per tick.
  A session thus expires between `timeout` and `timeout + tick` after its last touch.
- `touch` (any request or ping seen by some node) moves a session to its new bucket; unknown ids
  are ignored (the session already ended or was never opened here).
- `expired(now)` reports every session whose bucket time is <= now, each once: a reported session
  stays known (until `remove`, normally when its CloseSessionTxn is proposed) but is not reported
  again unless a `touch` re-arms it.
Time is always a parameter (ms on the leader's monotonic clock: a wall-clock step expires nothing); nothing here reads a clock.
"""

from __future__ import annotations

import heapq


class SessionTracker:
    """Leader-side session expiry (ZooKeeper's ExpiryQueue in tick buckets).

    Owns: each tracked session's timeout and bucket.  In: add / touch / remove, `now_ms`.
    Out: `expired(now_ms)` ids (sorted), `next_deadline_ms()` for the shell's timer.
    """

    def __init__(self, *, tick_ms: int) -> None:
        if tick_ms <= 0:
            raise ValueError(f"tick_ms must be > 0, not {tick_ms}")
        self.tick_ms = tick_ms
        self._timeouts: dict[int, int] = {}  # session -> timeout ms (every tracked session)
        self._bucket_of: dict[int, int] = {}  # session -> bucket time (armed sessions only)
        self._buckets: dict[int, set[int]] = {}  # bucket time -> sessions
        self._heap: list[int] = []  # bucket times, possibly stale (lazy deletion)

    def __len__(self) -> int:
        return len(self._timeouts)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._timeouts

    def _round(self, t_ms: int) -> int:
        tick = self.tick_ms
        return (t_ms // tick + 1) * tick

    def _arm(self, session_id: int, deadline: int) -> None:
        old = self._bucket_of.get(session_id)
        if old == deadline:
            return
        if old is not None:
            self._unbucket(session_id, old)
        self._bucket_of[session_id] = deadline
        bucket = self._buckets.get(deadline)
        if bucket is None:
            self._buckets[deadline] = {session_id}
            heap = self._heap
            if len(heap) > 2 * len(self._buckets) + 64:
                # Too many stale entries (buckets emptied by touches): rebuild, keeping it bounded.
                heap[:] = list(self._buckets)
                heapq.heapify(heap)
            else:
                heapq.heappush(heap, deadline)
        else:
            bucket.add(session_id)

    def _unbucket(self, session_id: int, deadline: int) -> None:
        bucket = self._buckets.get(deadline)
        if bucket is not None:
            bucket.discard(session_id)
            if not bucket:
                del self._buckets[deadline]  # its heap entry goes stale and is skipped later

    def add(self, session_id: int, timeout_ms: int, now_ms: int) -> None:
        """Track a session (again): it expires `timeout_ms` (rounded up to a tick) after `now_ms`."""
        self._timeouts[session_id] = timeout_ms
        self._arm(session_id, self._round(now_ms + timeout_ms))

    def touch(self, session_id: int, now_ms: int) -> None:
        timeout = self._timeouts.get(session_id)
        if timeout is None:
            return
        self._arm(session_id, self._round(now_ms + timeout))

    def remove(self, session_id: int) -> None:
        self._timeouts.pop(session_id, None)
        old = self._bucket_of.pop(session_id, None)
        if old is not None:
            self._unbucket(session_id, old)

    def expired(self, now_ms: int) -> list[int]:
        """Sessions whose deadline is <= `now_ms`, sorted; each reported once until re-armed."""
        heap = self._heap
        out: list[int] = []
        while heap and heap[0] <= now_ms:
            deadline = heapq.heappop(heap)
            bucket = self._buckets.pop(deadline, None)
            if not bucket:
                continue
            for session_id in bucket:
                del self._bucket_of[session_id]
            out.extend(bucket)
        out.sort()
        return out

    def next_deadline_ms(self) -> int | None:
        """The earliest bucket time that has sessions in it, or None."""
        heap = self._heap
        buckets = self._buckets
        while heap and heap[0] not in buckets:
            heapq.heappop(heap)
        return heap[0] if heap else None
