"""Queue and LockingQueue with kazoo's names, signatures and node layout.

Queue: each item is a persistent sequential child of the queue path named
`entry-<priority, 3 digits>-<10-digit sequence>`, so sorting the names gives the order: the
lower priority number first, first in first out within a priority. `get()` reads the first
item and deletes it; when another consumer deleted it first, it tries the next one, so each
item goes to exactly one consumer. It returns None when the queue is empty.

    queue = Queue(client, "/jobs")
    queue.put(b"urgent", priority=1)
    queue.get()        # b"urgent"

LockingQueue: items live under `<path>/entries` (named `entry-<priority>-<sequence>`);
`get()` takes an item by creating the ephemeral `<path>/taken/<item name>` (holding this
queue object's id) and hands the item out without removing it. `consume()` then removes the
item and its lock together; `release()` removes only the lock, giving the item back. A lock
goes with its owner's session, so an item taken by a client that dies is handed out again.

    queue = LockingQueue(client, "/jobs")
    item = queue.get(timeout=5)
    ...                # work on it
    queue.consume()
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from zoomq.exceptions import NodeExistsError, NoNodeError

_POLL = 1.0  # longest wait in LockingQueue.get before looking again without a watch event


def _check_priority(priority: int) -> None:
    if not isinstance(priority, int):
        raise TypeError("priority must be an int")
    if priority < 0 or priority > 999:
        raise ValueError("priority must be between 0 and 999")


def _check_value(value: bytes) -> None:
    if not isinstance(value, bytes):
        raise TypeError("value must be a byte string")


class BaseQueue:
    def __init__(self, client: Any, path: str) -> None:
        self.client = client
        self.path = path
        self._entries_path = path
        self.structure_paths: tuple[str, ...] = (path,)
        self.ensured_path = False

    def _check_put_arguments(self, value: bytes, priority: int = 100) -> None:
        _check_value(value)
        _check_priority(priority)

    def _ensure_paths(self) -> None:
        if not self.ensured_path:
            for path in self.structure_paths:
                self.client.ensure_path(path)
            self.ensured_path = True

    def __len__(self) -> int:
        self._ensure_paths()
        _, stat = self.client.retry(self.client.get, self._entries_path)
        return stat.children_count


class Queue(BaseQueue):
    prefix = "entry-"

    def put(self, value: bytes, priority: int = 100) -> None:
        """Add `value`; lower `priority` numbers (0-999) come out first."""
        self._check_put_arguments(value, priority)
        self._ensure_paths()
        self.client.create(f"{self.path}/{self.prefix}{priority:03d}-", value, sequence=True)

    def get(self) -> bytes | None:
        """Remove and return the first item; None when the queue is empty."""
        self._ensure_paths()
        return self.client.retry(self._inner_get)

    def _inner_get(self) -> bytes | None:
        while True:
            children = sorted(self.client.get_children(self.path))
            if not children:
                return None
            for name in children:
                try:
                    data, _ = self.client.get(f"{self.path}/{name}")
                    self.client.delete(f"{self.path}/{name}")
                except NoNodeError:
                    continue  # another consumer took it: try the next one
                return data
            # Every item seen was taken by others meanwhile: look again.


class LockingQueue(BaseQueue):
    lock = "/taken"
    entries = "/entries"
    entry = "entry"

    def __init__(self, client: Any, path: str) -> None:
        super().__init__(client, path)
        self.id = uuid.uuid4().hex.encode()
        self.processing_element: tuple[str, bytes] | None = None
        self._lock_path = self.path + self.lock
        self._entries_path = self.path + self.entries
        self.structure_paths = (self._lock_path, self._entries_path)

    def _entry_prefix(self, priority: int) -> str:
        return f"{self._entries_path}/{self.entry}-{priority:03d}-"

    def put(self, value: bytes, priority: int = 100) -> None:
        """Add `value`; lower `priority` numbers (0-999) come out first."""
        self._check_put_arguments(value, priority)
        self._ensure_paths()
        self.client.create(self._entry_prefix(priority), value, sequence=True)

    def put_all(self, values: list[bytes], priority: int = 100) -> None:
        """Add all `values` at once (one transaction), in their order."""
        if not isinstance(values, list):
            raise TypeError("values must be a list of byte strings")
        _check_priority(priority)
        for value in values:
            _check_value(value)
        self._ensure_paths()
        with self.client.transaction() as transaction:
            for value in values:
                transaction.create(self._entry_prefix(priority), value, sequence=True)

    def get(self, timeout: float | None = None) -> bytes | None:
        """Take the first free item and lock it; block up to `timeout` seconds (None: until
        there is one). None on timeout. While an item taken here is neither consumed nor
        released, returns that item again."""
        self._ensure_paths()
        if self.processing_element is not None:
            return self.processing_element[1]
        return self._inner_get(timeout)

    def _inner_get(self, timeout: float | None) -> bytes | None:
        changed = threading.Event()

        def watch(event: Any) -> None:
            changed.set()

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            changed.clear()
            entries = self.client.retry(self.client.get_children, self._entries_path, watch=watch)
            taken = set(self.client.retry(self.client.get_children, self._lock_path, watch=watch))
            for name in sorted(entries):
                if name in taken:
                    continue
                value = self.client.retry(self._take, name)
                if value is not None:
                    self.processing_element = (name, value)
                    return value
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            changed.wait(_POLL if left is None else min(_POLL, left))

    def _take(self, name: str) -> bytes | None:
        """Lock item `name` and read it; None if someone else holds it or it is gone."""
        lock_path = f"{self._lock_path}/{name}"
        try:
            self.client.create(lock_path, self.id, ephemeral=True)
        except NodeExistsError:
            try:
                owner, _ = self.client.get(lock_path)
            except NoNodeError:
                return None  # released meanwhile; the next look will see it free
            if owner != self.id:
                return None  # locked by someone else
            # Ours: an earlier try of this create went through before the connection dropped.
        try:
            value, _ = self.client.get(f"{self._entries_path}/{name}")
        except NoNodeError:
            # Consumed by the previous holder just before we locked it.
            try:
                self.client.delete(lock_path)
            except NoNodeError:
                pass
            return None
        return value

    def holds_lock(self) -> bool:
        """Whether the item taken by `get()` is still locked by this queue object."""
        if self.processing_element is None:
            return False
        lock_path = f"{self._lock_path}/{self.processing_element[0]}"
        self.client.sync(lock_path)
        try:
            value, _ = self.client.retry(self.client.get, lock_path)
        except NoNodeError:
            return False
        return value == self.id

    def consume(self) -> bool:
        """Remove the item taken by `get()` (with its lock); True on success."""
        if self.processing_element is None or not self.holds_lock():
            return False
        name, _ = self.processing_element
        transaction = self.client.transaction()
        transaction.delete(f"{self._entries_path}/{name}")
        transaction.delete(f"{self._lock_path}/{name}")
        results = transaction.commit()
        if any(isinstance(r, Exception) for r in results):
            return False
        self.processing_element = None
        return True

    def release(self) -> bool:
        """Give the item taken by `get()` back to the queue; True on success."""
        if self.processing_element is None or not self.holds_lock():
            return False
        name, _ = self.processing_element
        try:
            self.client.retry(self.client.delete, f"{self._lock_path}/{name}")
        except NoNodeError:
            pass
        self.processing_element = None
        return True
