"""TreeCache: a local, event-driven mirror of a subtree (kazoo's `TreeCache` API).

It rests on one persistent recursive watch (`Client.add_watch(path, ..., recursive=True)`) instead
of a one-shot watch per node: every created, changed or deleted node below `path` arrives as one
event, and the cache re-reads just that node. After a reconnect the node the session resumed on
sends the events missed meanwhile (from its watch history), so the cache follows them as any
other; only when that history does not reach back far enough (a RESYNC event) or the session was
lost is the whole subtree read again and compared with the cache, so listeners see one
NODE_ADDED / NODE_UPDATED / NODE_REMOVED per difference.

Listeners get `TreeEvent(event_type, event_data)` on the client's event thread, in order;
INITIALIZED once after the first full read; CONNECTION_SUSPENDED / RECONNECTED / LOST follow the
session.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from zoomq.exceptions import NoNodeError, NoWatcherError
from zoomq.paths import basename, parent
from zoomq.states import EventType, KazooState, WatchedEvent, ZnodeStat

MAX_NODES = 1_000_000  # a bound on one full read of the subtree


class NodeData(NamedTuple):
    path: str
    data: bytes
    stat: ZnodeStat


class TreeEvent(NamedTuple):
    event_type: int
    event_data: NodeData | None

    NODE_ADDED = 0
    NODE_UPDATED = 1
    NODE_REMOVED = 2
    CONNECTION_SUSPENDED = 3
    CONNECTION_RECONNECTED = 4
    CONNECTION_LOST = 5
    INITIALIZED = 6


class TreeCache:
    def __init__(self, client: Any, path: str) -> None:
        self._client = client
        self._root = path.rstrip("/") or "/"
        self._nodes: dict[str, NodeData] = {}
        self._children: dict[str, set[str]] = {}
        self._listeners: list[Callable[[TreeEvent], Any]] = []
        self._lock = threading.RLock()
        self._started = False
        self._closed = False
        self._was_suspended = False
        self._lost = False  # the session ended since the last connection: the watch is gone

    # --- public -----------------------------------------------------------------------------

    def start(self) -> None:
        """Watch the subtree, read it whole, then announce INITIALIZED."""
        if self._started:
            raise RuntimeError("TreeCache already started")
        self._started = True
        self._client.add_listener(self._on_state)
        self._client.add_watch(self._root, self._on_event, recursive=True)
        with self._lock:
            self._resync()
        self._emit(TreeEvent(TreeEvent.INITIALIZED, None))

    def close(self) -> None:
        self._closed = True
        self._client.remove_listener(self._on_state)
        try:
            self._client.remove_watches(self._root)
        except NoWatcherError:
            pass  # never registered, or the session that held it is gone

    def listen(self, func: Callable[[TreeEvent], Any]) -> None:
        self._listeners.append(func)

    def get_data(self, path: str) -> NodeData | None:
        with self._lock:
            return self._nodes.get(path.rstrip("/") or "/")

    def get_children(self, path: str) -> frozenset[str] | None:
        with self._lock:
            kids = self._children.get(path.rstrip("/") or "/")
            return frozenset(kids) if kids is not None else None

    # --- events -------------------------------------------------------------------------------

    def _emit(self, event: TreeEvent) -> None:
        for func in list(self._listeners):
            try:
                func(event)
            except Exception:  # noqa: BLE001 - one listener must not stop the others
                self._client.log.exception("tree_cache_listener_failed")

    def _on_event(self, event: WatchedEvent) -> None:
        if self._closed or event.path is None:
            return
        if event.type == EventType.RESYNC:  # the node no longer holds all that was missed: read it all
            threading.Thread(target=self._resync_locked, name="zoomq-treecache", daemon=True).start()
            return
        with self._lock:
            if event.type == EventType.DELETED:
                self._remove(event.path)
            elif event.type in (EventType.CREATED, EventType.CHANGED):
                self._refresh(event.path)

    def _on_state(self, state: str) -> None:
        if self._closed:
            return
        if state == KazooState.SUSPENDED:
            self._was_suspended = True
            self._emit(TreeEvent(TreeEvent.CONNECTION_SUSPENDED, None))
        elif state == KazooState.LOST:
            self._lost = True
            self._emit(TreeEvent(TreeEvent.CONNECTION_LOST, None))
        elif state == KazooState.CONNECTED and self._was_suspended:
            self._was_suspended = False
            self._emit(TreeEvent(TreeEvent.CONNECTION_RECONNECTED, None))
            if self._lost:  # a new session: no watch, no history to resume from
                self._lost = False
                # The listener runs on the event thread; the reads go through the I/O thread.
                threading.Thread(target=self._after_reconnect, name="zoomq-treecache", daemon=True).start()

    def _resync_locked(self) -> None:
        try:
            if self._client.connected and not self._closed:
                with self._lock:
                    self._resync()
        except Exception:  # noqa: BLE001 - the next reconnect or RESYNC tries again
            self._client.log.exception("tree_cache_resync_failed")

    def _after_reconnect(self) -> None:
        try:
            if not self._client.connected or self._closed:
                return
            self._client.add_watch(self._root, self._on_event, recursive=True)  # a new session has none
            with self._lock:
                self._resync()
        except Exception:  # noqa: BLE001 - the next reconnect tries again
            self._client.log.exception("tree_cache_resync_failed")

    # --- the mirror ---------------------------------------------------------------------------

    def _refresh(self, path: str) -> None:
        try:
            data, stat = self._client.get(path)
        except NoNodeError:
            self._remove(path)
            return
        old = self._nodes.get(path)
        if old is not None and old.stat.mzxid == stat.mzxid:
            return
        node = NodeData(path, data, stat)
        self._nodes[path] = node
        if old is None:
            self._children.setdefault(path, set())
            if path != self._root:
                self._children.setdefault(parent(path), set()).add(basename(path))
            self._emit(TreeEvent(TreeEvent.NODE_ADDED, node))
        else:
            self._emit(TreeEvent(TreeEvent.NODE_UPDATED, node))

    def _remove(self, path: str) -> None:
        for kid in sorted(self._children.get(path, ())):
            self._remove(f"{path.rstrip('/')}/{kid}")
        node = self._nodes.pop(path, None)
        self._children.pop(path, None)
        if path != self._root:
            self._children.get(parent(path), set()).discard(basename(path))
        if node is not None:
            self._emit(TreeEvent(TreeEvent.NODE_REMOVED, node))

    def _resync(self) -> None:
        """Read the subtree whole and turn the differences into events."""
        seen: set[str] = set()
        todo = [self._root]
        while todo and len(seen) < MAX_NODES:
            path = todo.pop()
            try:
                kids = self._client.get_children(path)
            except NoNodeError:
                continue
            seen.add(path)
            self._refresh(path)
            for kid in kids:
                todo.append(f"{path.rstrip('/')}/{kid}")
        for path in sorted(set(self._nodes) - seen, key=len, reverse=True):
            if path in self._nodes:
                self._remove(path)
