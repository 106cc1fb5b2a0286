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


class DataWatch:
    """`func(data, stat[, event])`; data and stat are None while the node does not exist."""

    def __init__(self, client: Any, path: str, func: Callable | None = None, *args: Any, **kwargs: Any) -> None:
        self._client = client
        self._path = path
        self._func: Callable | None = None
        self._stopped = False
        self._lock = threading.Lock()
        self._lost = False
        if func is not None:
            self(func)

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
        elif state == KazooState.CONNECTED and self._lost:
            self._lost = False
            threading.Thread(target=self._fetch, args=(None,), daemon=True).start()
        return None

    def _watcher(self, event: Any) -> None:
        self._fetch(event)

    def _fetch(self, event: Any) -> None:
        with self._lock:
            if self._stopped or self._func is None:
                return
            try:
                try:
                    data, stat = self._client.get(self._path, watch=self._watcher)
                except NoNodeError:
                    data = stat = None
                    if self._client.exists(self._path, watch=self._watcher) is not None:
                        return self._fetch_unlocked_retry()
            except (ConnectionClosedError, ZookeeperStoppedError):
                self._stopped = True
                return
            args = (data, stat, event) if _arity(self._func) >= 3 else (data, stat)
            if self._func(*args) is False:
                self._stopped = True
                self._client.remove_listener(self._on_state)
        return None

    def _fetch_unlocked_retry(self) -> None:
        threading.Thread(target=self._fetch, args=(None,), daemon=True).start()


class ChildrenWatch:
    """`func(children[, event])` with the current child names, now and after each change."""

    def __init__(
        self,
        client: Any,
        path: str,
        func: Callable | None = None,
        allow_session_lost: bool = True,
        send_event: bool = False,
    ) -> None:
        self._client = client
        self._path = path
        self._func: Callable | None = None
        self._allow_session_lost = allow_session_lost
        self._send_event = send_event
        self._stopped = False
        self._lost = False
        self._lock = threading.Lock()
        if func is not None:
            self(func)

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
            threading.Thread(target=self._fetch, args=(None,), daemon=True).start()
        return None

    def _watcher(self, event: Any) -> None:
        self._fetch(event)

    def _fetch(self, event: Any) -> None:
        with self._lock:
            if self._stopped or self._func is None:
                return
            try:
                children = self._client.get_children(self._path, watch=self._watcher)
            except NoNodeError:
                self._stopped = True
                return
            except (ConnectionClosedError, ZookeeperStoppedError):
                self._stopped = True
                return
            result = self._func(children, event) if self._send_event else self._func(children)
            if result is False:
                self._stopped = True
                self._client.remove_listener(self._on_state)
