"""Which znodes of an Apache ZooKeeper are containers and TTL nodes, from its data dir (pure).

ZooKeeper 3.6 and later tell clients `ephemeralOwner = 0` for container and TTL nodes
(DataTree.getClientEphemeralOwner), so `zoomq import zk://...` cannot learn their types through
the client protocol. Its own files hold them: the newest snapshot (`version-2/snapshot.<zxid>`:
each node's StatPersisted keeps the raw ephemeralOwner, 0x8000000000000000 for a container,
0xFF00000000000000 | ttl for a TTL node) and the txn logs after it (`log.<zxid>`: createContainer
and createTTL txns, deletes). `node_types` reads just that: path -> ("container", 0) or ("ttl", ms).

The files are jute (ZooKeeper's big-endian binary records); only what is needed is decoded. A
log may be read while the server writes it: a record cut short, or the preallocated zeros at its
end, end the read there. Uncompressed snapshots only (ZooKeeper's default; `snapshot.compression
.method` snappy or gzip are refused with a message).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from actors.protocol.txn import CONTAINER_OWNER, ttl_of

SNAP_MAGIC = 0x5A4B534E  # "ZKSN"
LOG_MAGIC = 0x5A4B4C47  # "ZKLG"
OP_CREATE, OP_DELETE, OP_MULTI, OP_CREATE2, OP_CREATE_CONTAINER, OP_DELETE_CONTAINER, OP_CREATE_TTL = (
    1,
    2,
    14,
    15,
    19,
    20,
    21,
)

NodeTypes = dict[str, tuple[str, int]]


class ZkFileError(ValueError):
    """A file that is not what its name says (or a format this reader does not take)."""


class _Reader:
    """Jute's binary archive: big-endian ints and longs, length-prefixed strings and buffers."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes | memoryview, pos: int = 0) -> None:
        self.buf = memoryview(buf)
        self.pos = pos

    def _take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise EOFError
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        return struct.unpack(">i", self._take(4))[0]

    def long(self) -> int:
        return struct.unpack(">q", self._take(8))[0]

    def byte(self) -> int:
        return self._take(1)[0]

    def buffer(self) -> bytes | None:
        n = self.int()
        return None if n < 0 else bytes(self._take(n))

    def string(self) -> str | None:
        data = self.buffer()
        return None if data is None else data.decode("utf-8", "replace")

    def skip_acls(self) -> None:
        n = self.int()
        for _ in range(max(n, 0)):
            self.int()
            self.string()
            self.string()


def version_dir(data_dir: str | Path) -> Path:
    """ZooKeeper's `version-2` directory of a dataDir (or the directory itself)."""
    given = Path(data_dir)
    if (given / "version-2").is_dir():
        return given / "version-2"
    if any(given.glob("snapshot.*")) or any(given.glob("log.*")):
        return given
    raise ZkFileError(f"{given}: not a ZooKeeper data dir (no version-2/ with snapshot.* or log.* files)")


def _numbered(directory: Path, prefix: str) -> list[tuple[int, Path]]:
    out = []
    for path in directory.glob(prefix + "*"):
        try:
            out.append((int(path.name[len(prefix) :], 16), path))
        except ValueError:
            continue
    return sorted(out)


def _owner_type(owner: int) -> tuple[str, int] | None:
    if owner == CONTAINER_OWNER:
        return "container", 0
    ttl = ttl_of(owner)
    return ("ttl", ttl) if ttl is not None else None


def snapshot_types(path: Path) -> tuple[int, NodeTypes]:
    """(the snapshot's zxid, its container and TTL nodes)."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b" or data[:4] == b"\xff\x06\x00\x00":
        raise ZkFileError(f"{path.name}: a compressed snapshot (gzip or snappy): not read here")
    r = _Reader(data)
    try:
        if r.int() != SNAP_MAGIC:
            raise ZkFileError(f"{path.name}: not a ZooKeeper snapshot")
        r.int()  # version
        r.long()  # dbid
        for _ in range(max(r.int(), 0)):  # sessions: id, timeout
            r.long()
            r.int()
        for _ in range(max(r.int(), 0)):  # the ACL cache: key, ACL list
            r.long()
            r.skip_acls()
        types: NodeTypes = {}
        while True:
            node_path = r.string()
            if node_path == "/" or node_path is None:
                break
            r.buffer()  # data
            r.long()  # acl key
            for _ in range(4):  # czxid, mzxid, ctime, mtime
                r.long()
            for _ in range(3):  # version, cversion, aversion
                r.int()
            kind = _owner_type(r.long())
            r.long()  # pzxid
            if kind is not None:
                types[node_path] = kind
    except EOFError:
        raise ZkFileError(f"{path.name}: truncated snapshot") from None
    return int(path.name[len("snapshot.") :], 16), types


def log_txns(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(zxid, type, record bytes) of each complete txn of a ZooKeeper log file."""
    data = path.read_bytes()
    r = _Reader(data)
    try:
        if r.int() != LOG_MAGIC:
            raise ZkFileError(f"{path.name}: not a ZooKeeper txn log")
        r.int()
        r.long()
        while True:
            r.long()  # crc
            entry = r.buffer()
            if not entry:  # the preallocated zeros: the end
                return
            if r.byte() != 0x42:  # 'B', end of record
                return
            t = _Reader(entry)
            t.long()  # client (session) id
            t.int()  # cxid
            zxid = t.long()
            t.long()  # time
            kind = t.int()
            yield zxid, kind, entry[t.pos :]
    except EOFError:
        return  # a record cut short (being written, or a crash): what came before stands


def _apply(types: NodeTypes, kind: int, record: bytes) -> None:
    r = _Reader(record)
    if kind in (OP_CREATE, OP_CREATE2, OP_CREATE_CONTAINER, OP_CREATE_TTL, OP_DELETE, OP_DELETE_CONTAINER):
        path = r.string()
        if path is None:
            return
        if kind == OP_CREATE_CONTAINER:
            types[path] = ("container", 0)
        elif kind == OP_CREATE_TTL:
            r.buffer()
            r.skip_acls()
            r.int()  # parent cversion
            types[path] = ("ttl", r.long())
        else:
            types.pop(path, None)  # a plain create (or a delete): not a container or TTL node
    elif kind == OP_MULTI:
        for _ in range(max(r.int(), 0)):
            sub_kind = r.int()
            sub = r.buffer()
            if sub is not None:
                _apply(types, sub_kind, sub)


def node_types(data_dir: str | Path) -> NodeTypes:
    """path -> ("container", 0) | ("ttl", ms) for every container and TTL node of a ZooKeeper's
    data dir: its newest readable snapshot, then the txns logged after it."""
    directory = version_dir(data_dir)
    types: NodeTypes = {}
    since = -1
    problems = []
    for zxid, path in reversed(_numbered(directory, "snapshot.")):
        try:
            since, types = snapshot_types(path)
            break
        except (ZkFileError, OSError) as exc:
            problems.append(str(exc))
    logs = _numbered(directory, "log.")
    if since < 0 and not logs:
        raise ZkFileError("; ".join(problems) or f"{directory}: no snapshot or log files")
    for i, (first, path) in enumerate(logs):
        later = logs[i + 1][0] if i + 1 < len(logs) else None
        if later is not None and later <= since + 1:
            continue  # every txn of this file is in the snapshot
        try:
            for zxid, kind, record in log_txns(path):
                if zxid > since:
                    try:
                        _apply(types, kind, record)
                    except EOFError:
                        continue
        except FileNotFoundError:
            continue  # purged meanwhile
    return types
