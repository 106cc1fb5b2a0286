"""Lock, ReadLock, WriteLock and Semaphore with kazoo's names, signatures and node layout.

A contender creates an ephemeral sequential child of the lock path named
`<uuid hex><kind><10-digit sequence>` (kind `__lock__` for exclusive and write locks, `__rlock__`
for read locks; the node holds the contender's identifier). It holds the lock when no child that
excludes it has a smaller sequence number; otherwise it watches only the nearest such child (its
predecessor), so a release wakes one waiter, not all of them (no herd effect).

As in kazoo, `acquire` raises `LockTimeout` when its timeout runs out while waiting for a
predecessor, returns False when it must not block, and raises `CancelledError` after `cancel()`.
Unlike kazoo, `is_acquired` turns False by itself when the session is lost (the ephemeral node,
and with it the lock, is gone then).
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from typing import Any, Self

from zoomq.exceptions import (
    BadVersionError,
    CancelledError,
    KazooException,
    LockTimeout,
    NodeExistsError,
    NoNodeError,
)
from zoomq.retry import ForceRetryError, KazooRetry, RetryFailedError
from zoomq.states import KazooState

_LOCK_NAMES = ("__lock__", "__rlock__")
_SEQ_DIGITS = 10


def _retry(deadline: float | None = None) -> KazooRetry:
    """Retries forever (or until `deadline` seconds) on connection trouble and on a session
    expiry that failed a request: the recipe re-checks its node and makes a new one if needed."""
    retry = KazooRetry(max_tries=None, delay=0.1, backoff=2, max_delay=1.0, deadline=deadline)
    retry.retry_exceptions = KazooRetry.RETRY_EXCEPTIONS + KazooRetry.EXPIRED_EXCEPTIONS
    return retry


def _sequence_key(child: str) -> str:
    """Sort key of a lock child: its sequence number (padded, so strings sort like numbers);
    children of other kinds sort last ('~' sorts after every digit)."""
    for name in _LOCK_NAMES:
        at = child.find(name)
        if at != -1:
            return child[at + len(name) :]
    return "~"


def _decode(data: bytes | None) -> str:
    return (data or b"").decode("utf-8")


def _identifiers(client: Any, path: str, children: list[str]) -> list[str]:
    """The identifiers (node data) of `children` of `path`, skipping those gone meanwhile."""
    out = []
    for child in children:
        try:
            data, _ = client.get(f"{path}/{child}")
        except NoNodeError:
            continue
        out.append(_decode(data))
    return out


class _SessionListener:
    """Registers `_on_state` as a client listener while an acquire needs it (once at most)."""

    client: Any
    _state_lock: threading.Lock
    _listening: bool

    def _on_state(self, state: str) -> bool | None:
        raise NotImplementedError

    def _listen(self) -> None:
        with self._state_lock:
            if self._listening:
                return
            self._listening = True
        self.client.add_listener(self._on_state)

    def _unlisten(self) -> None:
        with self._state_lock:
            if not self._listening:
                return
            self._listening = False
        self.client.remove_listener(self._on_state)


class Lock(_SessionListener):
    """An exclusive lock; `with lock:` acquires (blocking) and releases it.

    `identifier` is stored in this contender's node; `contenders()` lists them in lock order.
    """

    # The kind of node this contender creates, and the kinds of earlier nodes that make it wait.
    _NODE_NAME = "__lock__"
    _EXCLUDE_NAMES: tuple[str, ...] = ("__lock__",)

    def __init__(
        self,
        client: Any,
        path: str,
        identifier: str | None = None,
        extra_lock_patterns: tuple[str, ...] | list[str] = (),
    ) -> None:
        self.client = client
        self.path = path
        self.identifier = identifier
        self.data = str(identifier or "").encode("utf-8")
        self.node: str | None = None
        self.prefix = uuid.uuid4().hex + self._NODE_NAME
        self.create_path = f"{self.path}/{self.prefix}"
        self.is_acquired = False
        self.cancelled = False
        self.assured_path = False
        self.create_tried = False
        self.wake_event = threading.Event()
        kinds = "|".join(re.escape(x) for x in (*self._EXCLUDE_NAMES, *extra_lock_patterns))
        self._contenders_re = re.compile(rf"(?:{kinds})(-?\d{{{_SEQ_DIGITS}}})$")
        self._lock = threading.Lock()  # one thread at a time in acquire
        self._state_lock = threading.Lock()  # is_acquired vs. the session listener
        self._listening = False
        self._acquiring = False
        self._session_lost = False  # since this attempt began

    # --- session ------------------------------------------------------------------------------

    def _on_state(self, state: str) -> bool | None:
        """Runs on the client's event thread: wake a waiting acquire on any change; a lost
        session takes the ephemeral node, and so the lock, with it."""
        self.wake_event.set()
        if state != KazooState.LOST:
            return None
        with self._state_lock:
            self._session_lost = True
            if self.is_acquired:
                self.is_acquired = False
                self.node = None
            if not self._acquiring:
                self._listening = False
                return True  # nothing left to watch for
        return None

    # --- acquire ------------------------------------------------------------------------------

    def acquire(self, blocking: bool = True, timeout: float | None = None, ephemeral: bool = True) -> bool:
        """Take the lock; True when held. Non-blocking: False at once if another holds it.
        Raises LockTimeout when `timeout` seconds pass while waiting, CancelledError after
        `cancel()`."""
        if not self._lock.acquire(blocking, -1 if timeout is None or not blocking else timeout):
            return False
        already_acquired = self.is_acquired
        self._acquiring = True
        self._listen()
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            try:
                gotten = _retry(timeout)(self._inner_acquire, blocking, deadline, ephemeral)
            except RetryFailedError:
                gotten = False
            except KazooException:
                if not already_acquired:
                    self._best_effort_cleanup()
                    self.cancelled = False
                raise
            if not gotten and not already_acquired:
                self._best_effort_cleanup()
            return gotten
        finally:
            self._acquiring = False
            if not self.is_acquired:
                self._unlisten()
            self._lock.release()

    def _ensure_path(self) -> None:
        self.client.ensure_path(self.path)
        self.assured_path = True

    def _find_node(self) -> str | None:
        """Our node from an earlier try, if it is still there and still ours: a node left by a
        lost session is deleted when the server expires that session, so it is no use."""
        for child in self.client.get_children(self.path):
            if not child.startswith(self.prefix):
                continue
            stat = self.client.exists(f"{self.path}/{child}")
            session = self.client.client_id
            if stat is None:
                return None
            if stat.ephemeralOwner and session is not None and stat.ephemeralOwner != session[0]:
                try:
                    self.client.delete(f"{self.path}/{child}")
                except NoNodeError:
                    pass
                return None
            return child
        return None

    def _inner_acquire(self, blocking: bool, deadline: float | None, ephemeral: bool) -> bool:
        if self.is_acquired:
            if not blocking:
                return False
            raise ForceRetryError()  # held through this object by another thread: wait for it
        if not self.assured_path:
            self._ensure_path()
        with self._state_lock:
            self._session_lost = False  # what the server says from here on is authoritative
        node = None
        if self.create_tried:
            node = self._find_node()  # a retried create may have made our node already
        else:
            self.create_tried = True
        if node is None:
            created = self.client.create(self.create_path, self.data, ephemeral=ephemeral, sequence=True)
            node = created[len(self.path) + 1 :]
        self.node = node

        while True:
            self.wake_event.clear()
            if self.cancelled:
                raise CancelledError("lock acquisition was cancelled")
            predecessor = self._get_predecessor(node)
            if predecessor is None:
                with self._state_lock:
                    if self._session_lost:
                        raise ForceRetryError()  # our node may be gone with the old session
                    self.is_acquired = True
                return True
            if not blocking:
                return False
            try:
                # Watch only the nearest earlier contender that excludes us.
                self.client.get(f"{self.path}/{predecessor}", watch=self._watch_predecessor)
            except NoNodeError:
                continue  # already gone: look again
            left = None if deadline is None else deadline - time.monotonic()
            if (left is not None and left <= 0) or not self.wake_event.wait(left):
                raise LockTimeout(f"failed to acquire lock on {self.path} within the timeout")

    def _watch_predecessor(self, event: Any) -> None:
        self.wake_event.set()

    def _get_predecessor(self, node: str) -> str | None:
        """The nearest earlier child that excludes `node`, or None if it may hold the lock."""
        own = int(node[-_SEQ_DIGITS:])
        children = self.client.get_children(self.path)
        if node not in children:
            raise ForceRetryError()  # our node went with a lost session: make a new one
        best: tuple[int, str] | None = None
        for child in children:
            match = self._contenders_re.search(child)
            if match is None:
                continue
            seq = int(match.group(1))
            if seq < own and (best is None or seq > best[0]):
                best = (seq, child)
        return None if best is None else best[1]

    def _best_effort_cleanup(self) -> None:
        try:
            node = self.node or self._find_node()
            if node:
                self.client.delete(f"{self.path}/{node}")
        except KazooException:
            pass
        self.node = None
        self.create_tried = False

    # --- release and inspection ---------------------------------------------------------------

    def release(self) -> bool:
        """Give the lock up; False if it was not held."""
        try:
            return self.client.retry(self._inner_release)
        finally:
            if not self.is_acquired and not self._acquiring:
                self._unlisten()

    def _inner_release(self) -> bool:
        if not self.is_acquired:
            return False
        try:
            self.client.delete(f"{self.path}/{self.node}")
        except NoNodeError:
            pass
        with self._state_lock:
            self.is_acquired = False
            self.node = None
            self.create_tried = False
        return True

    def cancel(self) -> None:
        """Make a waiting (or the next) acquire raise CancelledError."""
        self.cancelled = True
        self.wake_event.set()

    def _get_sorted_children(self) -> list[str]:
        children = self.client.get_children(self.path)
        children.sort(key=_sequence_key)
        return children

    def contenders(self) -> list[str]:
        """Identifiers of everyone holding or waiting for this lock, the holder(s) first."""
        if not self.assured_path:
            self._ensure_path()
        return _identifiers(self.client, self.path, self._get_sorted_children())

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class WriteLock(Lock):
    """The exclusive side of a shared lock: waits for every earlier read or write lock."""

    _NODE_NAME = "__lock__"
    _EXCLUDE_NAMES = ("__lock__", "__rlock__")


class ReadLock(Lock):
    """The shared side: waits only for earlier write locks (any number of readers hold it)."""

    _NODE_NAME = "__rlock__"
    _EXCLUDE_NAMES = ("__lock__",)


class Semaphore(_SessionListener):
    """At most `max_leases` holders at a time (kazoo's layout: one child of `path` per lease
    holder, `path`'s data is max_leases, and a Lock at `path + "-lock"` orders the takers)."""

    def __init__(self, client: Any, path: str, identifier: str | None = None, max_leases: int = 1) -> None:
        self.client = client
        self.path = path
        self.lock_path = path + "-lock"
        self.identifier = identifier or ""
        self.data = self.identifier.encode("utf-8")
        self.max_leases = max_leases
        self.node_name = uuid.uuid4().hex
        self.create_path = f"{self.path}/{self.node_name}"
        self.is_acquired = False
        self.cancelled = False
        self.assured_path = False
        self.wake_event = threading.Event()
        self._session_expired = False
        self._lock: Lock | None = None
        self._state_lock = threading.Lock()
        self._listening = False

    def _ensure_path(self) -> None:
        """Make `path` holding max_leases, or check that an existing one agrees."""
        parent = self.path.rsplit("/", 1)[0]
        if parent:
            self.client.ensure_path(parent)
        mine = str(self.max_leases).encode("utf-8")
        try:
            self.client.create(self.path, mine)
        except NodeExistsError:
            data, stat = self.client.get(self.path)
            if not data:  # made by someone else (e.g. ensure_path): claim it
                try:
                    self.client.set(self.path, mine, version=stat.version)
                    data = mine
                except BadVersionError:
                    data, _ = self.client.get(self.path)
            try:
                leases = int(_decode(data))
            except ValueError:
                leases = None  # not ours to judge: the data is used for something else
            if leases is not None and leases != self.max_leases:
                raise ValueError(f"inconsistent max leases: {leases}, expected: {self.max_leases}") from None
        self.assured_path = True

    def _on_state(self, state: str) -> bool | None:
        if state == KazooState.LOST:
            self._session_expired = True
            self.is_acquired = False  # the lease node went with the session
            self.wake_event.set()
        return None

    def cancel(self) -> None:
        """Make a waiting acquire raise CancelledError."""
        self.cancelled = True
        self.wake_event.set()
        lock = self._lock
        if lock is not None:
            lock.cancel()

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take a lease; True when held. Raises LockTimeout or CancelledError as Lock does."""
        self.cancelled = False
        self._listen()
        try:
            self.is_acquired = _retry()(self._inner_acquire, blocking, timeout)
        except KazooException:
            self._best_effort_cleanup()
            self.cancelled = False
            raise
        finally:
            if not self.is_acquired:
                self._unlisten()
        return self.is_acquired

    def _inner_acquire(self, blocking: bool, timeout: float | None) -> bool:
        self._session_expired = False
        if not self.assured_path:
            self._ensure_path()
        if self.client.exists(self.create_path):
            return True  # a lease we already hold (a retried create made it)
        deadline = None if timeout is None else time.monotonic() + timeout
        lock = self._lock = Lock(self.client, self.lock_path, self.identifier)
        try:
            if self.cancelled:
                raise CancelledError("semaphore acquisition was cancelled")
            if not lock.acquire(blocking=blocking, timeout=timeout):
                return False
            while True:
                self.wake_event.clear()
                if self._get_lease():
                    return True
                if not blocking:
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if (left is not None and left <= 0) or not self.wake_event.wait(left):
                    raise LockTimeout(f"failed to acquire a lease on {self.path} within the timeout")
        finally:
            self._lock = None
            lock.release()

    def _watch_lease_change(self, event: Any) -> None:
        self.wake_event.set()

    def _get_lease(self) -> bool:
        if self._session_expired:
            raise ForceRetryError("session lost: start over")
        if self.cancelled:
            raise CancelledError("semaphore acquisition was cancelled")
        holders = self.client.get_children(self.path, watch=self._watch_lease_change)
        if len(holders) < self.max_leases:
            try:
                self.client.create(self.create_path, self.data, ephemeral=True)
            except NodeExistsError:
                pass
        return self.client.exists(self.create_path) is not None

    def _best_effort_cleanup(self) -> None:
        try:
            self.client.delete(self.create_path)
        except KazooException:
            pass

    def release(self) -> bool:
        """Give the lease back; False if none was held."""
        try:
            return self.client.retry(self._inner_release)
        finally:
            self._unlisten()

    def _inner_release(self) -> bool:
        if not self.is_acquired:
            return False
        try:
            self.client.delete(self.create_path)
        except NoNodeError:
            pass
        self.is_acquired = False
        return True

    def lease_holders(self) -> list[str]:
        """Identifiers of the current lease holders."""
        if not self.client.exists(self.path):
            return []
        return _identifiers(self.client, self.path, self.client.get_children(self.path))

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
