"""Party and ShallowParty with kazoo's names, signatures and node layout: a group of members,
each an ephemeral child of the party path, so a member whose session ends leaves by itself.

Party: a member's node is `<uuid hex>__party__` and holds its identifier; iterating reads the
identifiers from the nodes. ShallowParty: a member's node is `<identifier>-<uuid hex>` and is
empty; iterating takes the identifiers from the names alone (one round trip, no reads).

    party = Party(client, "/workers", "worker-1")
    party.join()
    len(party), list(party)
    party.leave()
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from zoomq.exceptions import NodeExistsError, NoNodeError


class BaseParty:
    def __init__(self, client: Any, path: str, identifier: str | None = None) -> None:
        self.client = client
        self.path = path
        self.data = str(identifier or "").encode("utf-8")
        self.ensured_path = False
        self.participating = False
        self.node = ""
        self.create_path = ""

    def _ensure_parent(self) -> None:
        if not self.ensured_path:
            self.client.ensure_path(self.path)
            self.ensured_path = True

    def join(self) -> None:
        """Become a member (again, after a lost session took the membership away)."""
        self.client.retry(self._inner_join)

    def _inner_join(self) -> None:
        self._ensure_parent()
        try:
            self.client.create(self.create_path, self.data, ephemeral=True)
        except NodeExistsError:
            pass  # an earlier try of this call made it
        self.participating = True

    def leave(self) -> bool:
        """Stop being a member; False if this was not one."""
        self.participating = False
        return self.client.retry(self._inner_leave)

    def _inner_leave(self) -> bool:
        try:
            self.client.delete(self.create_path)
        except NoNodeError:
            return False
        return True

    def _get_children(self) -> list[str]:
        return self.client.retry(self.client.get_children, self.path)

    def __len__(self) -> int:
        self._ensure_parent()
        return len(self._get_children())


class Party(BaseParty):
    """Members' identifiers are kept in their nodes."""

    _NODE_NAME = "__party__"

    def __init__(self, client: Any, path: str, identifier: str | None = None) -> None:
        super().__init__(client, path, identifier)
        self.node = uuid.uuid4().hex + self._NODE_NAME
        self.create_path = f"{self.path}/{self.node}"

    def _get_children(self) -> list[str]:
        return [c for c in super()._get_children() if self._NODE_NAME in c]

    def __iter__(self) -> Iterator[str]:
        self._ensure_parent()
        for child in self._get_children():
            try:
                data, _ = self.client.retry(self.client.get, f"{self.path}/{child}")
            except NoNodeError:
                continue  # left meanwhile
            yield (data or b"").decode("utf-8")


class ShallowParty(BaseParty):
    """Members' identifiers are kept in their node names."""

    def __init__(self, client: Any, path: str, identifier: str | None = None) -> None:
        super().__init__(client, path, identifier)
        self.node = f"{identifier or ''}-{uuid.uuid4().hex}"
        self.create_path = f"{self.path}/{self.node}"

    def __iter__(self) -> Iterator[str]:
        self._ensure_parent()
        for child in self._get_children():
            # The uuid has no '-', so the identifier is everything before the last one
            # (kazoo cuts at the first '-', which truncates identifiers that contain one).
            yield child.rpartition("-")[0]
