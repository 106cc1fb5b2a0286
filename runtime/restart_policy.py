"""What the supervisor does when one of its actors exits: the pure restart policy.

Rules (Erlang/OTP's restart intensity, as thespian and pykka borrow it):
- An actor that exits is restarted on its own after a backoff: `backoff_s` for its first restart
  in the window, doubled for each further restart of that actor within `window_s`, capped at
  `backoff_max_s`.
- More than `max_restarts` restarts (of any actor of the node) within `window_s` is the intensity
  limit: the node stops every actor and starts the whole set again (`RestartAll`), and the caller
  calls `reset()` once it has done so.
- A node-level restart "fails" when the intensity limit is reached again less than `stable_s`
  after it. After `max_node_restarts` failed node-level restarts in a row, restarting cannot help
  (a port in use, a broken data dir): the decision is `GiveUp` and the node exits non-zero.

Time comes in as `now` (monotonic seconds); nothing here reads a clock or touches a process.
"""

from __future__ import annotations

from collections import deque

import msgspec


class RestartActor(msgspec.Struct, frozen=True):
    """Start actor `name` again after `delay_s` seconds."""

    name: str
    delay_s: float


class RestartAll(msgspec.Struct, frozen=True):
    """Stop every actor of the node, then start the whole set again after `delay_s` seconds."""

    delay_s: float
    reason: str = ""


class GiveUp(msgspec.Struct, frozen=True):
    """Restarting does not help: stop everything and exit non-zero."""

    reason: str


Decision = RestartActor | RestartAll | GiveUp


class RestartPolicy:
    """Owns the restart history of one node's actors.

    In: `on_exit(name, now)` for every unexpected actor exit; `reset()` after a full restart.
    Out: a `Decision`.
    """

    def __init__(
        self,
        max_restarts: int,
        window_s: float,
        backoff_s: float,
        backoff_max_s: float,
        *,
        max_node_restarts: int = 3,
        stable_s: float | None = None,
    ) -> None:
        if max_restarts < 0 or window_s <= 0 or backoff_s < 0 or backoff_max_s < backoff_s:
            raise ValueError("need max_restarts >= 0, window_s > 0, 0 <= backoff_s <= backoff_max_s")
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.max_node_restarts = max_node_restarts
        self.stable_s = 2 * window_s if stable_s is None else stable_s
        self._recent: deque[float] = deque()  # restart times of any actor, within the window
        self._by_actor: dict[str, deque[float]] = {}  # restart times per actor, within the window
        self._last_node_restart: float | None = None
        self.failed_node_restarts = 0  # node-level restarts in a row that hit the limit again

    def on_exit(self, name: str, now: float) -> Decision:
        """Actor `name` exited at `now` without being asked to: what to do."""
        horizon = now - self.window_s
        recent = self._recent
        while recent and recent[0] <= horizon:
            recent.popleft()
        mine = self._by_actor.setdefault(name, deque())
        while mine and mine[0] <= horizon:
            mine.popleft()
        if len(recent) + 1 > self.max_restarts:
            return self._intensity_reached(name, now)
        delay = min(self.backoff_s * (2 ** len(mine)), self.backoff_max_s)
        recent.append(now)
        mine.append(now)
        return RestartActor(name, delay)

    def _intensity_reached(self, name: str, now: float) -> Decision:
        last = self._last_node_restart
        if last is not None and now - last < self.stable_s:
            self.failed_node_restarts += 1
        else:
            self.failed_node_restarts = 0
        reason = f"more than {self.max_restarts} restarts within {self.window_s:g}s (last: {name})"
        if self.failed_node_restarts >= self.max_node_restarts:
            return GiveUp(f"{reason}; {self.failed_node_restarts} node restarts in a row did not help")
        self._last_node_restart = now
        delay = min(self.backoff_s * (2**self.failed_node_restarts), self.backoff_max_s)
        return RestartAll(delay, reason)

    def reset(self) -> None:
        """The whole actor set was started again: per-actor history starts afresh.

        The count of failed node-level restarts survives, so that a node whose restarts keep
        failing gives up.
        """
        self._recent.clear()
        self._by_actor.clear()

    def recent_restarts(self, name: str | None = None) -> int:
        """Restarts recorded in the current window (of `name`, or of any actor)."""
        if name is None:
            return len(self._recent)
        return len(self._by_actor.get(name, ()))
