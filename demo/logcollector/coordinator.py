"""The coordinator: assigns sources to collectors. Every collector runs one of these in a thread;
the Election recipe lets exactly one of them act at a time, and when that collector dies (its
session ends, taking its election node with it) the next contender takes over.

The coordinator keeps no state of its own: each round reads the whole picture from zoomq and
moves sources so that

1. every source is assigned to a live collector: a source that is not assigned yet, or whose
   collector is gone (its ephemeral node under collectors/ vanished with its session), goes to the
   least-loaded collector, starting from the newest checkpoint anyone recorded for it;
2. the load is even: while the busiest collector has more than one source more than the idlest
   (a collector that just joined has none), one source moves from the busiest to the idlest.

"Least loaded": fewest sources assigned, then the lowest lines/s reported in its status znode.

A move is one atomic transaction: a versioned set of sources/<src> (its `assigned` field; a
coordinator that read an old version fails instead of assigning the source a second time), the
delete of the old task node, the create of the new one with the checkpoint, and a record under
reassignments/. The old collector sees its task disappear, stops, records its final checkpoint
and deletes its ownership node in one transaction; the new collector starts only once it has
created that node itself, and resumes from the newest checkpoint it can find. When the old
collector is dead, its ownership node went with its session.

A round runs when the set of collectors or sources changes (children watches) and every
ROUND_INTERVAL_S.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any

from demo.logcollector.common import (
    COLLECTORS,
    ELECTION,
    REASSIGNMENTS,
    SOURCES,
    STATUS,
    TASKS,
    decode,
    encode,
    log,
)
from zoomq.exceptions import KazooException, NodeExistsError, NoNodeError, NotEmptyError

ROUND_INTERVAL_S = 1.0
STATUS_RETAIN_S = 10.0  # a dead collector's status (its checkpoints) is kept this long for successors


class Coordinator(threading.Thread):
    def __init__(self, client: Any, name: str, stop: threading.Event) -> None:
        super().__init__(name="coordinator", daemon=True)
        self.client = client
        self.name = name  # the collector this runs in
        self.stop_event = stop
        self.trigger = threading.Event()
        self.leading = False
        self.election = client.Election(ELECTION, name)

    # --- election -----------------------------------------------------------------------------

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.election.run(self._lead)  # blocks until elected; returns when _lead does
            except KazooException as exc:
                if self.stop_event.is_set():
                    break
                log(self.name, f"coordinator: {type(exc).__name__}: {exc}; contending again")
            except Exception:  # noqa: BLE001 - leadership is given up (the lock released); contend again
                log(self.name, "coordinator failed:\n" + traceback.format_exc())
            self.stop_event.wait(0.5)

    def stop(self) -> None:
        """Withdraw from the election (or step down); the collector's stop event is already set."""
        self.election.cancel()
        self.trigger.set()
        self.join(10.0)

    def _lead(self) -> None:
        self.leading = True
        log(self.name, "elected coordinator")
        self.client.ChildrenWatch(COLLECTORS)(self._on_change)
        self.client.ChildrenWatch(SOURCES)(self._on_change)
        try:
            while not self.stop_event.is_set() and self.election.lock.is_acquired:
                try:
                    self.round()
                except (NoNodeError, NodeExistsError, NotEmptyError) as exc:
                    log(self.name, f"coordinator: the tree changed under this round ({type(exc).__name__}); again")
                self.trigger.wait(ROUND_INTERVAL_S)
                self.trigger.clear()
        finally:
            self.leading = False
            log(self.name, "no longer coordinator")

    def _on_change(self, _children: list[str]) -> bool | None:
        if not self.leading:
            return False  # stop watching: another coordinator acts now
        self.trigger.set()
        return None

    # --- one round ----------------------------------------------------------------------------

    def round(self) -> None:
        client = self.client
        live = sorted(client.get_children(COLLECTORS))
        sources: dict[str, tuple[dict[str, Any], int]] = {}
        for src in sorted(client.get_children(SOURCES)):
            data, stat = client.get(f"{SOURCES}/{src}")
            sources[src] = (decode(data), stat.version)
        status: dict[str, dict[str, Any]] = {}
        for name in client.get_children(STATUS):
            try:
                status[name] = decode(client.get(f"{STATUS}/{name}")[0])
            except NoNodeError:
                continue
        if live:
            self._assign_orphans(live, sources, status)
            self._rebalance(live, sources, status)
        self._clean_up(status)

    def _counts(self, live: list[str], sources: dict[str, tuple[dict[str, Any], int]]) -> dict[str, int]:
        counts = dict.fromkeys(live, 0)
        for info, _ in sources.values():
            if info.get("assigned") in counts:
                counts[info["assigned"]] += 1
        return counts

    @staticmethod
    def _least_loaded(counts: dict[str, int], status: dict[str, dict[str, Any]]) -> str:
        return min(counts, key=lambda c: (counts[c], float(status.get(c, {}).get("rate", 0.0)), c))

    def _assign_orphans(
        self, live: list[str], sources: dict[str, tuple[dict[str, Any], int]], status: dict[str, dict[str, Any]]
    ) -> None:
        counts = self._counts(live, sources)
        for src, (info, _) in sources.items():
            holder = info.get("assigned")
            if holder in counts:
                continue
            target = self._least_loaded(counts, status)
            reason = "collector gone" if holder else "initial"
            if self._move(src, sources, holder, target, reason, status):
                counts[target] += 1

    def _rebalance(
        self, live: list[str], sources: dict[str, tuple[dict[str, Any], int]], status: dict[str, dict[str, Any]]
    ) -> None:
        for _ in range(len(sources)):
            counts = self._counts(live, sources)
            busiest = max(counts, key=lambda c: (counts[c], float(status.get(c, {}).get("rate", 0.0)), c))
            idlest = self._least_loaded(counts, status)
            if counts[busiest] - counts[idlest] <= 1:
                return
            # Move the source the busiest collector got last: it has the least invested in it.
            candidates = [src for src, (info, _) in sources.items() if info.get("assigned") == busiest]
            src = max(candidates, key=lambda s: (sources[s][0].get("assigned_at", 0.0), s))
            if not self._move(src, sources, busiest, idlest, "rebalance", status):
                return

    def _checkpoint(self, src: str, holder: str | None, status: dict[str, dict[str, Any]]) -> dict[str, int]:
        """The newest checkpoint recorded for `src`: in its current task node, or in any
        collector's status. Each is the truth about lines the sink acknowledged, so the newest
        (highest line) is where to resume."""
        best = {"line": 0, "offset": 0}
        if holder:
            try:
                task = decode(self.client.get(f"{TASKS}/{holder}/{src}")[0])
                best = {"line": int(task.get("line", 0)), "offset": int(task.get("offset", 0))}
            except NoNodeError:
                pass
        for value in status.values():
            entry = value.get("offsets", {}).get(src)
            if entry and int(entry["line"]) > best["line"]:
                best = {"line": int(entry["line"]), "offset": int(entry["offset"])}
        return best

    def _move(
        self,
        src: str,
        sources: dict[str, tuple[dict[str, Any], int]],
        holder: str | None,
        target: str,
        reason: str,
        status: dict[str, dict[str, Any]],
    ) -> bool:
        info, version = sources[src]
        checkpoint = self._checkpoint(src, holder, status)
        now = time.time()
        new_info = {
            **info,
            "assigned": target,
            "assigned_at": now,
            "moves": int(info.get("moves", 0)) + (1 if holder else 0),
        }
        task = {"file": info["file"], **checkpoint, "from": holder, "reason": reason}
        self._ensure(f"{TASKS}/{target}")
        tx = self.client.transaction()
        tx.set_data(f"{SOURCES}/{src}", encode(new_info), version=version)
        if holder and self.client.exists(f"{TASKS}/{holder}/{src}") is not None:
            tx.delete(f"{TASKS}/{holder}/{src}")
        tx.create(f"{TASKS}/{target}/{src}", encode(task))
        if holder:
            record = {"src": src, "from": holder, "to": target, "reason": reason, "ts": now, "line": checkpoint["line"]}
            tx.create(f"{REASSIGNMENTS}/r-", encode(record), sequence=True)
        results = tx.commit()
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            log(self.name, f"coordinator: moving {src} to {target} failed ({failed[0]!r}); next round re-reads")
            return False
        sources[src] = (new_info, version + 1)
        where = f"from {holder} " if holder else ""
        log(self.name, f"coordinator: {src} {where}-> {target} ({reason}), resume after line {checkpoint['line']}")
        return True

    def _ensure(self, path: str) -> None:
        try:
            self.client.create(path, b"")
        except NodeExistsError:
            pass

    def _clean_up(self, status: dict[str, dict[str, Any]]) -> None:
        """Remove what collectors that are gone left behind: their empty task lists, and their
        status once no successor can still need its checkpoints."""
        tasks = self.client.get_children(TASKS)
        # Read who is alive only now, after listing the task lists: a collector registers before it
        # creates its task list, so one that joined during this round is in this list. (The list
        # read at the start of the round would call it dead and delete its new, empty task list.)
        live = set(self.client.get_children(COLLECTORS))
        for name in tasks:
            if name in live:
                continue
            try:
                self.client.delete(f"{TASKS}/{name}")  # only if empty: NotEmptyError otherwise
            except (NoNodeError, NotEmptyError):
                continue
        tasks = self.client.get_children(TASKS)
        for name, value in status.items():
            if name in live or name in tasks:
                continue
            if time.time() - float(value.get("ts", 0.0)) > STATUS_RETAIN_S:
                try:
                    self.client.delete(f"{STATUS}/{name}")
                except NoNodeError:
                    pass
