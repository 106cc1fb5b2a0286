"""Barrier and DoubleBarrier with kazoo's names, signatures and node layout.

Barrier: the barrier is up while its node exists. `create()` puts it up, `remove()` takes it
down, and `wait()` blocks until it is down (True) or the timeout runs out (False).

    barrier = Barrier(client, "/gate")
    barrier.create()
    ...                       # elsewhere: barrier.wait(timeout=30)
    barrier.remove()          # lets every waiter through

DoubleBarrier: `num_clients` participants meet twice. `enter()` makes an ephemeral child of the
barrier path (a uuid, holding the identifier) and blocks until `num_clients` children exist;
the one that sees the count reached creates the child `ready`, which wakes the others.
`leave()` removes this participant's child and blocks until every participant has left: the
lowest child waits for the highest one to go and goes last; the others go at once and wait for
the lowest one.

Waits wake on watch events and also look again every second, so a watch lost with a session
does not leave a waiter stuck.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from typing import Any

from zoomq.exceptions import KazooException, NodeExistsError, NoNodeError
from zoomq.states import EventType

_POLL = 1.0  # longest wait before looking again without a watch event
_READY = "ready"


class Barrier:
    def __init__(self, client: Any, path: str) -> None:
        self.client = client
        self.path = path

    def create(self) -> None:
        """Put the barrier up (make its node, and any missing parents)."""
        self.client.retry(self.client.ensure_path, self.path)

    def remove(self) -> bool:
        """Take the barrier down; False if it was not up."""
        try:
            self.client.retry(self.client.delete, self.path)
        except NoNodeError:
            return False
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the barrier is down: True then, False if `timeout` seconds passed."""
        cleared = threading.Event()

        def watch(event: Any) -> None:
            if event.type == EventType.DELETED:
                cleared.set()

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.client.retry(self.client.exists, self.path, watch=watch) is None:
                return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            if cleared.wait(_POLL if left is None else min(_POLL, left)):
                return True


class DoubleBarrier:
    def __init__(self, client: Any, path: str, num_clients: int, identifier: str | None = None) -> None:
        self.client = client
        self.path = path
        self.num_clients = num_clients
        self._identifier = identifier or f"{socket.getfqdn()}-{os.getpid()}"
        self.participating = False
        self.assured_path = False
        self.node_name = uuid.uuid4().hex
        self.create_path = f"{self.path}/{self.node_name}"
        self._ready_path = f"{self.path}/{_READY}"

    # --- enter --------------------------------------------------------------------------------

    def enter(self) -> None:
        """Join and block until `num_clients` participants have joined."""
        try:
            self.client.retry(self._inner_enter)
            self.participating = True
        except KazooException:
            self._best_effort_cleanup()
            self.participating = False

    def _inner_enter(self) -> bool:
        if not self.assured_path:
            self.client.ensure_path(self.path)
            self.assured_path = True
        try:
            self.client.create(self.create_path, self._identifier.encode("utf-8"), ephemeral=True)
        except NodeExistsError:
            pass  # made by an earlier try of this call
        woken = threading.Event()
        ready_seen = threading.Event()

        def watch(event: Any) -> None:
            if event.type == EventType.CREATED:
                ready_seen.set()  # `ready` may be gone again (the first leavers delete it)
            woken.set()

        while True:
            woken.clear()
            if ready_seen.is_set():
                return True
            if self.client.exists(self._ready_path, watch=watch) is not None:
                return True
            members = [c for c in self.client.get_children(self.path) if c != _READY]
            if len(members) >= self.num_clients:
                self.client.ensure_path(self._ready_path)
                return True
            woken.wait(_POLL)

    # --- leave --------------------------------------------------------------------------------

    def leave(self) -> None:
        """Leave and block until every participant has left."""
        try:
            self.client.retry(self._inner_leave)
        except KazooException:
            self._best_effort_cleanup()
        self.participating = False

    def _inner_leave(self) -> bool:
        try:
            self.client.delete(self._ready_path)
        except NoNodeError:
            pass
        woken = threading.Event()

        def watch(event: Any) -> None:
            if event.type == EventType.DELETED:
                woken.set()

        while True:
            woken.clear()
            try:
                children = sorted(c for c in self.client.get_children(self.path) if c != _READY)
            except NoNodeError:
                return True
            if not children:
                return True
            if children == [self.node_name]:
                self._delete_own()
                return True
            if self.node_name == children[0]:
                # The lowest goes last: wait for the highest to go.
                if self.client.exists(f"{self.path}/{children[-1]}", watch=watch) is None:
                    continue
            else:
                self._delete_own()
                # Wait for the lowest, which goes last.
                if self.client.exists(f"{self.path}/{children[0]}", watch=watch) is None:
                    continue
            woken.wait(_POLL)

    def _delete_own(self) -> None:
        try:
            self.client.delete(self.create_path)
        except NoNodeError:
            pass

    def _best_effort_cleanup(self) -> None:
        try:
            self.client.retry(self.client.delete, self.create_path)
        except (NoNodeError, KazooException):
            pass
