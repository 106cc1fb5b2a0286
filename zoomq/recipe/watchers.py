"""DataWatch and ChildrenWatch with kazoo's signatures: a function called with the current state
of a node (or its children) now and after every change, until it returns False.

zoomq's client keeps watches across reconnects, so these only re-read after the session was
lost (a new session has no watches) — kazoo's recipes re-read after every reconnect.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any

from zoomq.exceptions import ConnectionClosedError, NoNodeError, ZookeeperStoppedError
from zoomq.states import KazooState


def _arity(func: Callable) -> int:
    try:
        return len(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return 2


class _Watch:
    """What both watch recipes share: call `func` now, after each event, and after a new session
    (a lost session's watches are gone), until it returns False."""

    _allow_session_lost = True

    def __init__(self, client: Any, path: str) -> None:
        self._client = client
        self._path = path
        self._func: Callable | None = None
        self._stopped = False
        self._lost = False
        self._lock = threading.Lock()

    def __call__(self, func: Callable) -> Callable:
        self._func = func
        self._client.add_listener(self._on_state)
        self._fetch(None)
        return func

    def _on_state(self, state: str) -> bool | None:
        if self._stopped:
            return True
        if state == KazooState.LOST:
            self._lost = True
            if not self._allow_session_lost:
                self._stopped = True
                return True
        elif state == KazooState.CONNECTED and self._lost:
            self._lost = False
            self._fetch_later()
        return None

    def _watcher(self, event: Any) -> None:
        self._fetch(event)

    def _fetch_later(self) -> None:
        # Never block the client's event thread on a round trip it must itself deliver.
        threading.Thread(target=self._fetch, args=(None,), daemon=True).start()

    def _finish(self, result: Any) -> None:
        if result is False:
            self._stopped = True
            self._client.remove_listener(self._on_state)

    def _fetch(self, event: Any) -> None:
        """Read the current state with a new watch and hand it to `func`, one read at a time."""
        with self._lock:
            if self._stopped or self._func is None:
                return
            try:
                args = self._read(event)
            except (ConnectionClosedError, ZookeeperStoppedError):
                self._stopped = True
                return
            if args is not None:
                self._finish(self._func(*args))

    def _read(self, event: Any) -> tuple | None:
        """The arguments for `func`, or None to call nothing this time."""
        raise NotImplementedError


class DataWatch(_Watch):
    """`func(data, stat[, event])`; data and stat are None while the node does not exist."""

    def __init__(self, client: Any, path: str, func: Callable | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(client, path)
        if func is not None:
            self(func)

    def _read(self, event: Any) -> tuple | None:
        try:
            data, stat = self._client.get(self._path, watch=self._watcher)
        except NoNodeError:
            data = stat = None
            if self._client.exists(self._path, watch=self._watcher) is not None:
                self._fetch_later()  # created in between: read it
                return None
        return (data, stat, event) if _arity(self._func) >= 3 else (data, stat)


class ChildrenWatch(_Watch):
    """`func(children[, event])` with the current child names, now and after each change."""

    def __init__(
        self,
        client: Any,
        path: str,
        func: Callable | None = None,
        allow_session_lost: bool = True,
        send_event: bool = False,
    ) -> None:
        super().__init__(client, path)
        self._allow_session_lost = allow_session_lost
        self._send_event = send_event
        if func is not None:
            self(func)

    def _read(self, event: Any) -> tuple | None:
        try:
            children = self._client.get_children(self._path, watch=self._watcher)
        except NoNodeError:
            self._stopped = True
            return None
        return (children, event) if self._send_event else (children,)
