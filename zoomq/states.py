"""Client-visible states and value types, with kazoo's names and shapes.

`ZnodeStat`, `WatchedEvent`, `EventType`, `KazooState` and `KeeperState` mirror
`kazoo.protocol.states`, so code written for kazoo reads them unchanged. `ZnodeStat` is a
NamedTuple in ZooKeeper's wire order; msgspec encodes it as an array on the wire.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class KazooState:
    """Connection state as the application sees it."""

    SUSPENDED = "SUSPENDED"  # connection lost, session may still be alive; retry later
    CONNECTED = "CONNECTED"  # connected, session alive
    LOST = "LOST"  # session gone (expired, closed, auth failed): ephemerals are gone


class KeeperState:
    """The lower-level session state, as ZooKeeper's KeeperState."""

    AUTH_FAILED = "AUTH_FAILED"
    CONNECTED = "CONNECTED"
    CONNECTED_RO = "CONNECTED_RO"
    CONNECTING = "CONNECTING"
    CLOSED = "CLOSED"
    EXPIRED_SESSION = "EXPIRED_SESSION"


class EventType:
    """Watch event types (kazoo's strings); codes are ZooKeeper's EventType values."""

    CREATED = "CREATED"
    DELETED = "DELETED"
    CHANGED = "CHANGED"
    CHILD = "CHILD"
    NONE = "NONE"
    RESYNC = "RESYNC"  # zoomq: a resumed persistent watch missed more than the node still holds


# ZooKeeper's numeric EventType codes (wire) -> kazoo's names.
EVENT_TYPE_MAP = {
    -1: EventType.NONE,
    1: EventType.CREATED,
    2: EventType.DELETED,
    3: EventType.CHANGED,
    4: EventType.CHILD,
    100: EventType.RESYNC,
}
EVENT_CODE = {name: code for code, name in EVENT_TYPE_MAP.items()}


class WatchedEvent(NamedTuple):
    """What a watch callback receives: `type` (EventType), `state` (KeeperState), `path`, and
    (zoomq) the `zxid` of the change, to resume a persistent watch from (add_watch since_zxid)."""

    type: str
    state: str
    path: str | None
    zxid: int = 0


class ZnodeStat(NamedTuple):
    """A znode's Stat, in ZooKeeper's wire order (times are ms since the epoch)."""

    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeralOwner: int  # noqa: N815 - ZooKeeper's name
    dataLength: int  # noqa: N815
    numChildren: int  # noqa: N815
    pzxid: int

    @property
    def acl_version(self) -> int:
        return self.aversion

    @property
    def children_version(self) -> int:
        return self.cversion

    @property
    def created(self) -> float:
        return self.ctime / 1000.0

    @property
    def last_modified(self) -> float:
        return self.mtime / 1000.0

    @property
    def owner_session_id(self) -> int | None:
        return self.ephemeralOwner or None

    @property
    def creation_transaction_id(self) -> int:
        return self.czxid

    @property
    def last_modified_transaction_id(self) -> int:
        return self.mzxid

    @property
    def data_length(self) -> int:
        return self.dataLength

    @property
    def children_count(self) -> int:
        return self.numChildren


class Callback(NamedTuple):
    type: str
    func: Any
    args: tuple


class AddWatchMode:
    """Modes of `Client.add_watch` (kazoo's names; ZooKeeper's AddWatchMode codes)."""

    PERSISTENT = 0
    PERSISTENT_RECURSIVE = 1


class WatcherType:
    """What `Client.remove_watches` removes (ZooKeeper's WatcherType codes)."""

    CHILDREN = 1
    DATA = 2
    ANY = 3
