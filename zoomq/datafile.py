"""zoomq's data file: the one format of `zoomq backup`, `restore`, `export` and `import` (pure).

A data file is one JSON document (UTF-8; `.gz` files are gzip-compressed), laid out so that it
can be written and read a node at a time: the header and the opening of the node list on the
first line, then one znode per line (each but the last followed by a comma), then `]}`.

    {"format":"zoomq-data","version":1,"source":{"kind":"zoomq","hosts":"127.0.0.1:2181"},
     "path":"/app","zxid":8589934605,"zxid_hex":"0x2_0000000d","created":"2026-12-01T12:00:00.000Z",
     "count":2,"skipped":{"ephemeral":{"count":1,"paths":["/app/lock"]},"unreadable":0,"acl_masked":0},
     "nodes":[
    {"path":"/app","data":"aGVsbG8=","acl":[{"perms":31,"scheme":"world","id":"anyone"}],"type":"persistent","ctime":1764590400000,"mtime":1764590400000,"version":0,"cversion":2,"aversion":0},
    {"path":"/app/jobs","data":null,"acl":[{"perms":31,"scheme":"world","id":"anyone"}],"type":"ttl","ttl":60000,"ctime":1764590400000,"mtime":1764590400000,"version":3,"cversion":0,"aversion":0}
    ]}

(The header is one line in a file; it is wrapped here.)

Header fields:
- `format` "zoomq-data" and `version` 1 (a reader refuses a newer version).
- `source`: where it came from: `{"kind": "zoomq", "hosts": ...}` (a live node, `zoomq backup` /
  `export`), `{"kind": "zoomq-data-dir", "data_dir": ...}` (a stopped node's files) or
  `{"kind": "zookeeper", "hosts": ...}` (`zoomq import zk://...`).
- `path`: the subtree's root; every node's path is at or below it (absolute paths).
- `zxid`: the zxid the whole file is consistent at, or null when not known (a ZooKeeper read
  node by node has no such point); `zxid_hex` the same in zoomq's `0xE_CCCCCCCC` form.
- `created`: when the file was made (ISO 8601, UTC).
- `count`: how many nodes follow.
- `skipped`: what was left out: `ephemeral` (never included: their count and paths),
  `unreadable` (nodes the reading session might not READ, each left out with everything below
  it), `acl_masked` (nodes whose digest ACL ids were shown to the reader as `user:x`, for lack
  of ADMIN on them: restoring them gives ACLs nobody matches), `vanished` (ZooKeeper: deleted
  while read).

Each node, parents before children (depth first, children by name):
- `path`; `data`: base64 of the value, or null for ZooKeeper's null value (not the same as "").
- `acl`: a list of `{"perms", "scheme", "id"}`; perms are ZooKeeper's bits (READ 1, WRITE 2,
  CREATE 4, DELETE 8, ADMIN 16; ALL 31).
- `type`: "persistent", "container" or "ttl" (with `ttl`, milliseconds). Sequential nodes are
  stored under their final names, as persistent (or ttl) nodes.
- `ctime`, `mtime` (ms since the epoch), `version`, `cversion`, `aversion`: the Stat as it was,
  for information (a restore into a live ensemble creates the nodes anew: version 0, now;
  a restore into a data dir keeps them, and continues sequence numbers after `cversion`).

Reading checks every node as the node would check a create, so that bad input fails before
anything is written, with ZooKeeper's error names and codes (`DataFileError`): MarshallingError
(-5) for what is not such a file (not JSON, wrong fields, bad base64, truncated), BadArgumentsError
(-8) for a bad path, a path outside the header's, an unknown type or TTL, InvalidACLError (-114)
for an ACL ZooKeeper would refuse, NoNodeError (-101) for a node before its parent,
NodeExistsError (-110) for a path listed twice. A file that does not have the layout above but
is a JSON document with these fields is read too (whole).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import msgspec

from actors.leader.prep import fixup_acl
from actors.protocol.txn import CONTAINER_OWNER, MAX_TTL_MS, ttl_of, ttl_owner
from actors.protocol.zxid import fmt
from zoomq.exceptions import (
    BadArgumentsError,
    InvalidACLError,
    MarshallingError,
    NodeExistsError,
    NoNodeError,
    ZookeeperError,
)
from zoomq.paths import validate_path
from zoomq.security import ACL, Id

FORMAT = "zoomq-data"
VERSION = 1
NODE_TYPES = ("persistent", "container", "ttl")
_NODES_OPEN = '"nodes":['
_END = "]}"


class DataFileError(Exception):
    """Bad input, named as ZooKeeper would name it: `error` is the kazoo exception class."""

    def __init__(self, error: type[ZookeeperError], message: str, where: str = "") -> None:
        super().__init__(message)
        self.error = error
        self.message = message
        self.where = where

    @property
    def code(self) -> int:
        return self.error.code

    def __str__(self) -> str:
        where = f"{self.where}: " if self.where else ""
        return f"{where}{self.error.__name__} ({self.error.code}): {self.message}"


@dataclass
class Header:
    path: str
    source: dict[str, Any]
    zxid: int | None
    created: str
    count: int
    ephemerals: list[str] = field(default_factory=list)
    unreadable: int = 0
    acl_masked: int = 0
    vanished: int = 0
    version: int = VERSION

    def to_json(self) -> dict[str, Any]:
        skipped: dict[str, Any] = {
            "ephemeral": {"count": len(self.ephemerals), "paths": self.ephemerals},
            "unreadable": self.unreadable,
            "acl_masked": self.acl_masked,
        }
        if self.vanished:
            skipped["vanished"] = self.vanished
        return {
            "format": FORMAT,
            "version": VERSION,
            "source": self.source,
            "path": self.path,
            "zxid": self.zxid,
            "zxid_hex": fmt(self.zxid) if self.zxid is not None else None,
            "created": self.created,
            "count": self.count,
            "skipped": skipped,
        }


@dataclass(slots=True)
class Entry:
    """One znode of a data file."""

    path: str
    data: bytes | None
    acl: list[ACL]
    type: str = "persistent"  # persistent | container | ttl
    ttl: int = 0
    ctime: int = 0
    mtime: int = 0
    version: int = 0
    cversion: int = 0
    aversion: int = 0

    @property
    def owner(self) -> int:
        """The ephemeralOwner a node of this type has (ZooKeeper's encoding of containers and TTLs)."""
        if self.type == "container":
            return CONTAINER_OWNER
        if self.type == "ttl":
            return ttl_owner(self.ttl)
        return 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "data": None if self.data is None else base64.b64encode(self.data).decode("ascii"),
            "acl": [{"perms": a.perms, "scheme": a.id.scheme, "id": a.id.id} for a in self.acl],
            "type": self.type,
        }
        if self.type == "ttl":
            out["ttl"] = self.ttl
        out.update(
            ctime=self.ctime, mtime=self.mtime, version=self.version, cversion=self.cversion, aversion=self.aversion
        )
        return out


def node_type(owner: int) -> tuple[str, int] | None:
    """(type, ttl ms) of a znode from its ephemeralOwner; None for an ephemeral node."""
    if owner == 0:
        return "persistent", 0
    if owner == CONTAINER_OWNER:
        return "container", 0
    ttl = ttl_of(owner)
    if ttl is not None:
        return "ttl", ttl
    return None


def entry_from_stat(path: str, data: bytes | None, acl: Iterable[Any], stat: Any) -> Entry | None:
    """An Entry from a znode read through a client (zoomq's or kazoo's ZnodeStat and ACLs);
    None for an ephemeral node."""
    kind = node_type(stat.ephemeralOwner)
    if kind is None:
        return None
    acls = [ACL(int(a.perms), Id(str(a.id.scheme), str(a.id.id))) for a in acl]
    if data is not None and type(data) is not bytes:
        data = bytes(data)
    return Entry(path, data, acls, kind[0], kind[1], stat.ctime, stat.mtime, stat.version, stat.cversion, stat.aversion)


def is_masked(acl: Iterable[ACL]) -> bool:
    """Whether an ACL holds a digest id as shown to a reader without ADMIN (`user:x`)."""
    return any(a.id.scheme == "digest" and a.id.id.endswith(":x") for a in acl)


# --- writing ----------------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()


def encode(header: Header, entries: Iterable[Entry]) -> Iterator[bytes]:
    """The file's bytes, a line at a time (the header line, one line per node, the end). The
    entries must be as many as `header.count`, parents first (ValueError otherwise)."""
    head = _encoder.encode(header.to_json())
    yield head[:-1] + b"," + _NODES_OPEN.encode() + b"\n"
    held: bytes | None = None
    n = 0
    for entry in entries:
        if held is not None:
            yield held + b",\n"
        held = _encoder.encode(entry.to_json())
        n += 1
    if held is not None:
        yield held + b"\n"
    yield _END.encode() + b"\n"
    if n != header.count:
        raise ValueError(f"{n} nodes written where the header says {header.count}")


# --- reading ----------------------------------------------------------------------------------


class _AclRecord(msgspec.Struct):
    perms: int
    scheme: str
    id: str


class _NodeRecord(msgspec.Struct):
    path: str
    acl: list[_AclRecord]
    data: str | None = None
    type: str = "persistent"
    ttl: int | None = None
    ctime: int = 0
    mtime: int = 0
    version: int = 0
    cversion: int = 0
    aversion: int = 0


class _HeaderRecord(msgspec.Struct):
    format: str
    version: int
    path: str = "/"
    source: dict[str, Any] = {}
    zxid: int | None = None
    created: str = ""
    count: int | None = None
    skipped: dict[str, Any] = {}


_node_decoder = msgspec.json.Decoder(_NodeRecord)


class DataFile:
    """Reads a data file: `header` at once, then `entries()` one at a time, each checked.

    Raises DataFileError for bad input (see the module's docstring)."""

    def __init__(self, stream: IO[str], name: str = "data file") -> None:
        self.stream = stream
        self.name = name
        self._line = 1
        self._whole: list[Any] | None = None
        try:
            first = stream.readline()
        except (UnicodeDecodeError, OSError, EOFError) as exc:
            raise DataFileError(MarshallingError, f"not a zoomq data file: {exc}", name) from None
        stripped = first.rstrip("\r\n")
        if stripped.startswith("{") and stripped.endswith(_NODES_OPEN):
            doc = self._json(stripped + _END, "the header line")
        else:
            try:
                rest = stream.read()
            except (UnicodeDecodeError, OSError, EOFError) as exc:
                raise DataFileError(MarshallingError, f"not a zoomq data file: {exc}", name) from None
            doc = self._json(first + rest, "the file")
            nodes = doc.get("nodes") if isinstance(doc, dict) else None
            if not isinstance(nodes, list):
                raise DataFileError(MarshallingError, 'not a zoomq data file: no "nodes" list', name)
            self._whole = nodes
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise DataFileError(MarshallingError, f'not a zoomq data file (its "format" must be {FORMAT!r})', name)
        try:
            head = msgspec.convert({k: v for k, v in doc.items() if k != "nodes"}, _HeaderRecord)
        except msgspec.ValidationError as exc:
            raise DataFileError(MarshallingError, f"bad header: {exc}", name) from None
        if head.version > VERSION or head.version < 1:
            raise DataFileError(
                MarshallingError, f"format version {head.version} is not one this zoomq reads (1..{VERSION})", name
            )
        if validate_path(head.path) is not None:
            raise DataFileError(BadArgumentsError, f"header path {head.path!r}: {validate_path(head.path)}", name)
        count = head.count if head.count is not None else (len(self._whole) if self._whole is not None else None)
        if count is None or count < 0:
            raise DataFileError(MarshallingError, "bad header: no node count", name)
        skipped = head.skipped if isinstance(head.skipped, dict) else {}
        eph = skipped.get("ephemeral") if isinstance(skipped.get("ephemeral"), dict) else {}
        self.header = Header(
            path=head.path,
            source=head.source,
            zxid=head.zxid,
            created=head.created,
            count=count,
            ephemerals=[p for p in eph.get("paths", []) if isinstance(p, str)],
            unreadable=_int(skipped.get("unreadable")),
            acl_masked=_int(skipped.get("acl_masked")),
            vanished=_int(skipped.get("vanished")),
            version=head.version,
        )
        self._prefix = head.path.rstrip("/") + "/"
        self._seen: set[str] = set()
        self._parents: set[str] = set()
        self._done = False

    def _json(self, text: str, what: str) -> Any:
        try:
            return msgspec.json.decode(text)
        except msgspec.DecodeError as exc:
            raise DataFileError(
                MarshallingError, f"not a zoomq data file: {what} is not JSON ({exc})", self.name
            ) from None

    @property
    def parents(self) -> set[str]:
        """Paths that have children in the file (complete once `entries()` ran to its end)."""
        return self._parents

    def entries(self) -> Iterator[Entry]:
        """Every node, checked (once: the file is read as it goes)."""
        if self._done:
            raise RuntimeError("a DataFile is read once")
        self._done = True
        n = 0
        count = self.header.count
        if self._whole is not None:
            for i, raw in enumerate(self._whole):
                where = f"{self.name}: node #{i + 1}"
                try:
                    record = msgspec.convert(raw, _NodeRecord)
                except msgspec.ValidationError as exc:
                    raise DataFileError(MarshallingError, f"bad node: {exc}", where) from None
                yield self._check(record, where)
                n += 1
        else:
            ended = False
            for line in self.stream:
                self._line += 1
                text = line.strip()
                if not text:
                    continue
                where = f"{self.name}:{self._line}"
                if text == _END:
                    ended = True
                    break
                if text.endswith(","):
                    text = text[:-1]
                try:
                    record = _node_decoder.decode(text)
                except msgspec.ValidationError as exc:
                    raise DataFileError(MarshallingError, f"bad node: {exc}", where) from None
                except msgspec.DecodeError as exc:
                    raise DataFileError(MarshallingError, f"a node line that is not JSON ({exc})", where) from None
                yield self._check(record, where)
                n += 1
            if not ended:
                raise DataFileError(
                    MarshallingError,
                    f"truncated: the file ends after {n} of {count} nodes, without its closing ]}}",
                    self.name,
                )
        if n != count:
            raise DataFileError(
                MarshallingError, f"{n} nodes where the header says {count}: the file is damaged", self.name
            )

    def _check(self, r: _NodeRecord, where: str) -> Entry:
        path = r.path
        reason = validate_path(path)
        if reason is not None:
            raise DataFileError(BadArgumentsError, f"invalid path {path!r}: {reason}", where)
        root = self.header.path
        if path != root and not path.startswith(self._prefix):
            raise DataFileError(BadArgumentsError, f"{path} is not under the file's path {root}", where)
        if path in self._seen:
            raise DataFileError(NodeExistsError, f"{path} is listed twice", where)
        if path != root:
            parent = path.rsplit("/", 1)[0] or "/"
            if parent not in self._seen:
                raise DataFileError(
                    NoNodeError, f"{path} comes before its parent {parent} (parents must come first)", where
                )
            self._parents.add(parent)
        if r.data is None:
            data = None
        else:
            try:
                data = base64.b64decode(r.data, validate=True)
            except (binascii.Error, ValueError):
                raise DataFileError(MarshallingError, f"{path}: data is not base64", where) from None
        acl = [ACL(a.perms, Id(a.scheme, a.id)) for a in r.acl]
        fixed = fixup_acl(acl, [])
        if isinstance(fixed, int):
            raise DataFileError(InvalidACLError, f"{path}: ACL {_acl_text(acl) or '(empty)'} is not valid", where)
        if r.type not in NODE_TYPES:
            hint = " (ephemeral nodes are never restored)" if r.type == "ephemeral" else ""
            raise DataFileError(
                BadArgumentsError, f"{path}: unknown node type {r.type!r}{hint}; one of {', '.join(NODE_TYPES)}", where
            )
        ttl = r.ttl or 0
        if r.type == "ttl":
            if not 0 < ttl <= MAX_TTL_MS:
                raise DataFileError(
                    BadArgumentsError, f"{path}: a ttl node needs a ttl in ms, 1..{MAX_TTL_MS} (got {r.ttl!r})", where
                )
        elif ttl:
            raise DataFileError(BadArgumentsError, f"{path}: a ttl ({ttl}) on a {r.type} node", where)
        self._seen.add(path)
        return Entry(path, data, fixed, r.type, ttl, r.ctime, r.mtime, r.version, r.cversion, r.aversion)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _acl_text(acl: Iterable[ACL]) -> str:
    return ",".join(f"{a.id.scheme}:{a.id.id}:{a.perms}" for a in acl)
