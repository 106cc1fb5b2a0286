"""The coordination scenarios ZooKeeper is used for, as small APIs on the recipes.

- `ConfigCenter`: configuration publish/subscribe (push-pull: a watch says "changed", the
  subscriber re-reads): the current value at subscription, then a callback on every change.
- `ServiceRegistry`: a naming service. Providers register an address under a name (an
  ephemeral sequential node, gone with the provider's session); consumers resolve the live list,
  and `pick()` balances over it client-side (round robin or random) from a cache that follows
  registrations and departures through a children watch.
- `Membership`: cluster membership. Members join with an ephemeral node; a listener is told who
  joined and who left (a member whose session expires leaves).
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable
from typing import Any

from zoomq.exceptions import NodeExistsError, NoNodeError


class ConfigCenter:
    def __init__(self, client: Any, path: str) -> None:
        self.client = client
        self.path = path

    def publish(self, value: bytes) -> None:
        """Set the configuration (created with its parents on first publish)."""
        try:
            self.client.set(self.path, value)
        except NoNodeError:
            try:
                self.client.create(self.path, value, makepath=True)
            except NodeExistsError:
                self.client.set(self.path, value)

    def subscribe(self, callback: Callable[[bytes | None], Any]) -> None:
        """`callback(value)` now (None while unpublished) and after every change."""

        def on_change(data: bytes | None, _stat: Any) -> None:
            callback(data)

        self.client.DataWatch(self.path)(on_change)


class ServiceRegistry:
    def __init__(self, client: Any, root: str = "/services") -> None:
        self.client = client
        self.root = root.rstrip("/")
        self._cache: dict[str, list[str]] = {}
        self._rr: dict[str, itertools.count] = {}
        self._lock = threading.Lock()

    def register(self, name: str, address: str) -> str:
        """Announce a provider of `name` at `address`; it is withdrawn with this session."""
        path = f"{self.root}/{name}/provider-"
        return self.client.create(path, address.encode(), ephemeral=True, sequence=True, makepath=True)

    def unregister(self, node_path: str) -> None:
        try:
            self.client.delete(node_path)
        except NoNodeError:
            pass

    def resolve(self, name: str) -> list[str]:
        """The addresses of the live providers of `name`, in registration order (read now)."""
        base = f"{self.root}/{name}"
        try:
            children = sorted(self.client.get_children(base))
        except NoNodeError:
            return []
        out = []
        for child in children:
            try:
                out.append(self.client.get(f"{base}/{child}")[0].decode())
            except NoNodeError:
                continue
        return out

    def follow(self, name: str) -> None:
        """Keep a local provider list for `name` that follows registrations and departures."""
        with self._lock:
            if name in self._cache:
                return
            self._cache[name] = []
            self._rr[name] = itertools.count()
        self.client.ensure_path(f"{self.root}/{name}")

        def on_children(_children: list[str]) -> None:
            addresses = self.resolve(name)
            with self._lock:
                self._cache[name] = addresses

        self.client.ChildrenWatch(f"{self.root}/{name}")(on_children)

    def providers(self, name: str) -> list[str]:
        """The followed provider list (call `follow(name)` first; empty until it is read)."""
        self.follow(name)
        with self._lock:
            return list(self._cache[name])

    def pick(self, name: str, strategy: str = "round_robin") -> str | None:
        """One live provider of `name`, round robin (default) or at random; None if there is none."""
        current = self.providers(name)
        if not current:
            return None
        if strategy == "random":
            return random.choice(current)
        if strategy != "round_robin":
            raise ValueError(f"unknown strategy {strategy!r} (round_robin or random)")
        return current[next(self._rr[name]) % len(current)]


class Membership:
    def __init__(self, client: Any, path: str) -> None:
        self.client = client
        self.path = path.rstrip("/")
        self._known: set[str] | None = None

    def join(self, member_id: str, data: bytes = b"") -> str:
        """Join as `member_id` (an ephemeral node: leaving is automatic when the session ends)."""
        return self.client.create(f"{self.path}/{member_id}", data, ephemeral=True, makepath=True)

    def leave(self, member_id: str) -> None:
        try:
            self.client.delete(f"{self.path}/{member_id}")
        except NoNodeError:
            pass

    def members(self) -> list[str]:
        try:
            return sorted(self.client.get_children(self.path))
        except NoNodeError:
            return []

    def listen(self, on_join: Callable[[str], Any], on_leave: Callable[[str], Any]) -> None:
        """`on_join(id)` for every member present now and joining later; `on_leave(id)` for every
        member that leaves (or whose session expires)."""
        self.client.ensure_path(self.path)

        def on_children(children: list[str]) -> None:
            now = set(children)
            before = self._known or set()
            self._known = now
            for member in sorted(now - before):
                on_join(member)
            for member in sorted(before - now):
                on_leave(member)

        self.client.ChildrenWatch(self.path)(on_children)
