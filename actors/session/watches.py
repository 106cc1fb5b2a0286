"""The watch table of one node: one-shot data/exist and child watches, per session.

Rules (ZooKeeper's WatchManager, §1.4 of the reference):
- getData/exists set a data watch (exists even on a missing node); getChildren sets a child watch.
- NodeCreated and NodeDataChanged fire data watches; NodeChildrenChanged fires child watches;
  NodeDeleted fires both, and a session watching both gets ONE event.
- A watch fires once and is gone. Watches die with their session (or its connection: the client
  re-registers them with SetWatches after a reconnect).
- Persistent watches (addWatch, ZooKeeper 3.6) stay until removed: PERSISTENT fires every event on
  its path (created, deleted, data and children changed); PERSISTENT_RECURSIVE fires created,
  deleted and data changed on its path and every path below it (never children changed).
  A session gets one event per change, however many of its watches match.
- removeWatches(path, type) removes the session's watches of that type on the path (children,
  data, persistent, persistent recursive, or any: all of them); nothing to remove is ZooKeeper's
  NOWATCHER. checkWatches(path, type) asks the same question without removing anything.
"""

from __future__ import annotations

from zoomq.paths import lineage
from zoomq.protocol import EVENT_NODE_CHILDREN_CHANGED, EVENT_NODE_CREATED, EVENT_NODE_DATA_CHANGED, EVENT_NODE_DELETED

_EMPTY: frozenset[int] = frozenset()
# Kinds of watch, as remembered per session.
DATA, CHILD, PERSISTENT, RECURSIVE = 0, 1, 2, 3
WATCHER_CHILDREN, WATCHER_DATA, WATCHER_ANY, WATCHER_PERSISTENT, WATCHER_RECURSIVE = (
    1,
    2,
    3,
    4,
    5,
)  # ZooKeeper's WatcherType
_KINDS_OF_TYPE = {
    WATCHER_CHILDREN: (CHILD,),
    WATCHER_DATA: (DATA,),
    WATCHER_ANY: (DATA, CHILD, PERSISTENT, RECURSIVE),
    WATCHER_PERSISTENT: (PERSISTENT,),
    WATCHER_RECURSIVE: (RECURSIVE,),
}


class WatchTable:
    def __init__(self) -> None:
        self.data: dict[str, set[int]] = {}
        self.child: dict[str, set[int]] = {}
        self.persistent: dict[str, set[int]] = {}
        self.recursive: dict[str, set[int]] = {}
        self._tables = (self.data, self.child, self.persistent, self.recursive)
        self._by_session: dict[int, set[tuple[int, str]]] = {}

    def _add(self, kind: int, path: str, session_id: int) -> None:
        self._tables[kind].setdefault(path, set()).add(session_id)
        self._by_session.setdefault(session_id, set()).add((kind, path))

    def add_data(self, path: str, session_id: int) -> None:
        self._add(DATA, path, session_id)

    def add_child(self, path: str, session_id: int) -> None:
        self._add(CHILD, path, session_id)

    def add_persistent(self, path: str, session_id: int, recursive: bool = False) -> None:
        self._add(RECURSIVE if recursive else PERSISTENT, path, session_id)

    def has(self, path: str, session_id: int, watcher_type: int) -> bool:
        """Whether the session has a watch of `watcher_type` on `path` (checkWatches)."""
        mine = self._by_session.get(session_id, ())
        return any((kind, path) in mine for kind in _KINDS_OF_TYPE.get(watcher_type, ()))

    def remove(self, path: str, session_id: int, watcher_type: int) -> bool:
        """Remove the session's watches of `watcher_type` on `path`; False if there were none."""
        kinds = _KINDS_OF_TYPE.get(watcher_type, ())
        mine = self._by_session.get(session_id, set())
        removed = False
        for kind in kinds:
            if (kind, path) in mine:
                mine.discard((kind, path))
                table = self._tables[kind]
                table[path].discard(session_id)
                if not table[path]:
                    del table[path]
                removed = True
        return removed

    def trigger(self, event_type: int, path: str) -> set[int] | frozenset[int]:
        """The sessions to notify of `event_type` on `path`; one-shot watches are consumed."""
        if event_type in (EVENT_NODE_CREATED, EVENT_NODE_DATA_CHANGED):
            hit = self.data.pop(path, None)
            kinds: tuple[int, ...] = (DATA,)
        elif event_type == EVENT_NODE_CHILDREN_CHANGED:
            hit = self.child.pop(path, None)
            kinds = (CHILD,)
        elif event_type == EVENT_NODE_DELETED:
            hit = self.data.pop(path, None)
            more = self.child.pop(path, None)
            if more:
                hit = more if hit is None else hit | more
            kinds = (DATA, CHILD)
        else:
            return _EMPTY
        if hit:
            for session_id in hit:
                mine = self._by_session.get(session_id)
                if mine is not None:
                    for kind in kinds:
                        mine.discard((kind, path))
        if self.persistent or self.recursive:
            lasting = self._lasting(event_type, path)
            if lasting:
                hit = lasting if not hit else hit | lasting
        return hit or _EMPTY

    def _lasting(self, event_type: int, path: str) -> set[int]:
        out: set[int] = set(self.persistent.get(path, ()))
        if self.recursive and event_type != EVENT_NODE_CHILDREN_CHANGED:
            for at in lineage(path):
                out |= self.recursive.get(at, _EMPTY)
        return out

    def drop_session(self, session_id: int) -> None:
        for kind, path in self._by_session.pop(session_id, ()):
            table = self._tables[kind]
            sessions = table.get(path)
            if sessions is not None:
                sessions.discard(session_id)
                if not sessions:
                    del table[path]

    def count(self) -> int:
        return sum(len(s) for table in self._tables for s in table.values())
