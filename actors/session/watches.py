"""The watch table of one node: one-shot data/exist and child watches, per session.

Rules (ZooKeeper's WatchManager, §1.4 of the reference):
- getData/exists set a data watch (exists even on a missing node); getChildren sets a child watch.
- NodeCreated and NodeDataChanged fire data watches; NodeChildrenChanged fires child watches;
  NodeDeleted fires both, and a session watching both gets ONE event.
- A watch fires once and is gone. Watches die with their session (or its connection: the client
  re-registers them with SetWatches after a reconnect).
"""

from __future__ import annotations

from zoomq.protocol import EVENT_NODE_CHILDREN_CHANGED, EVENT_NODE_CREATED, EVENT_NODE_DATA_CHANGED, EVENT_NODE_DELETED

_EMPTY: frozenset[int] = frozenset()


class WatchTable:
    def __init__(self) -> None:
        self.data: dict[str, set[int]] = {}
        self.child: dict[str, set[int]] = {}
        self._by_session: dict[int, set[tuple[bool, str]]] = {}

    def add_data(self, path: str, session_id: int) -> None:
        self.data.setdefault(path, set()).add(session_id)
        self._by_session.setdefault(session_id, set()).add((False, path))

    def add_child(self, path: str, session_id: int) -> None:
        self.child.setdefault(path, set()).add(session_id)
        self._by_session.setdefault(session_id, set()).add((True, path))

    def trigger(self, event_type: int, path: str) -> set[int] | frozenset[int]:
        """The sessions to notify of `event_type` on `path`; their watches are consumed."""
        if event_type in (EVENT_NODE_CREATED, EVENT_NODE_DATA_CHANGED):
            hit = self.data.pop(path, None)
            kinds = (False,)
        elif event_type == EVENT_NODE_CHILDREN_CHANGED:
            hit = self.child.pop(path, None)
            kinds = (True,)
        elif event_type == EVENT_NODE_DELETED:
            hit = self.data.pop(path, None)
            more = self.child.pop(path, None)
            if more:
                hit = more if hit is None else hit | more
            kinds = (False, True)
        else:
            return _EMPTY
        if not hit:
            return _EMPTY
        for session_id in hit:
            mine = self._by_session.get(session_id)
            if mine is not None:
                for kind in kinds:
                    mine.discard((kind, path))
        return hit

    def drop_session(self, session_id: int) -> None:
        for is_child, path in self._by_session.pop(session_id, ()):
            table = self.child if is_child else self.data
            sessions = table.get(path)
            if sessions is not None:
                sessions.discard(session_id)
                if not sessions:
                    del table[path]

    def count(self) -> int:
        return sum(len(s) for s in self.data.values()) + sum(len(s) for s in self.child.values())
