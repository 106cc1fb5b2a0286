"""Effects: what a pure core asks its shell to do, as data (etcd's Ready, in spirit).

A core's `step`/`tick` only changes its state and appends effects to its outbox; the shell drains
the outbox after each batch and carries the effects out, in order: sends after the writes they
follow, so that a message that promises durability is never sent before the write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Send:
    """A quorum message to a peer: the leader (from a learner), or learner `to` (from the leader,
    by channel identity)."""

    msg: Any
    to: bytes = b""


@dataclass(frozen=True, slots=True)
class Tell:
    """A message to another actor of this node ("log", "session", "role")."""

    dest: str
    msg: Any


@dataclass(frozen=True, slots=True)
class PersistEpoch:
    """Write `acceptedEpoch` or `currentEpoch` durably before anything after this effect."""

    name: str
    epoch: int


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """Write the leader's snapshot at `zxid` durably (ZAB's SNAP)."""

    zxid: int
    data: bytes


@dataclass(frozen=True, slots=True)
class PrepareSync:
    """Read, away from the leader's loop, what synchronizing learner `to` (its log ending at
    `learner_last`) up to `upto` takes (actors/leader/sync.py `prepare`); hand the result back to
    the core's `sync_ready`."""

    to: bytes
    learner_last: int
    upto: int


@dataclass(frozen=True, slots=True)
class Drop:
    """The leader drops learner channel `to` (gap, silence, a newer incarnation)."""

    to: bytes
    why: str


@dataclass(frozen=True, slots=True)
class EndRole:
    """This role is over: the node goes back to election (the actor exits EXIT_ROLE_ENDED)."""

    reason: str
    fields: dict[str, Any] = field(default_factory=dict)


class RoleCore:
    """The outbox of a role core (leader, learner): effects queue up in `_out` and `take_effects`
    drains them after `_flush` (what the core sends once per batch); `_end` ends the role once."""

    _out: list[Any]
    ended: bool

    def _flush(self) -> None:
        """Add what goes out once per batch (committed entries, proposals)."""

    def _context(self) -> dict[str, Any]:
        """Fields every EndRole of this core carries."""
        return {}

    def take_effects(self) -> list[Any]:
        self._flush()
        out, self._out = self._out, []
        return out

    def _end(self, reason: str, **fields: Any) -> None:
        if not self.ended:
            self.ended = True
            self._out.append(EndRole(reason, {**self._context(), **fields}))
