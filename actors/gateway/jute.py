"""ZooKeeper's wire records (jute, big-endian) <-> zoomq's client protocol messages. Pure: bytes in,
messages out and back; no sockets, no clocks (the gateway actor is the shell around it).

Only the translation lives here: every decision about a request (permissions, versions,
sequencing, watches, sessions) is the session actor's, exactly as for a native client.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

from zoomq import protocol as p
from zoomq.exceptions import Codes
from zoomq.security import ACL, Id
from zoomq.states import ZnodeStat

MAX_PACKET = 0xFFFFF  # jute.maxbuffer: 1,048,575 bytes per frame, as ZooKeeper

# ZooDefs.OpCode
NOTIFICATION, CREATE, DELETE, EXISTS, GET_DATA, SET_DATA, GET_ACL, SET_ACL, GET_CHILDREN = 0, 1, 2, 3, 4, 5, 6, 7, 8
SYNC, PING, GET_CHILDREN2, CHECK, MULTI, CREATE2, RECONFIG, CHECK_WATCHES, REMOVE_WATCHES = (
    9,
    11,
    12,
    13,
    14,
    15,
    16,
    17,
    18,
)
CREATE_CONTAINER, DELETE_CONTAINER, CREATE_TTL, MULTI_READ = 19, 20, 21, 22
AUTH, SET_WATCHES, SASL, GET_EPHEMERALS, GET_ALL_CHILDREN_NUMBER, SET_WATCHES2, ADD_WATCH, WHO_AM_I = (
    100,
    101,
    102,
    103,
    104,
    105,
    106,
    107,
)
CLOSE_SESSION = -11
ERROR = -1
WATCH_XID = -1

FOUR_LETTER_WORDS = frozenset({"ruok", "srvr", "stat", "mntr", "envi", "isro", "conf", "cons", "wchs"})

_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_HEADER = struct.Struct(">ii")  # RequestHeader{xid, type}
_REPLY = struct.Struct(">iqi")  # ReplyHeader{xid, zxid, err}
_MULTI = struct.Struct(">i?i")  # MultiHeader{type, done, err}
_STAT = struct.Struct(">qqqqiiiqiiq")


class JuteError(ValueError):
    """A record is truncated or malformed: ZooKeeper drops such a connection."""


class Unsupported(Exception):
    """A request answered at once with an error code and nothing else: UNIMPLEMENTED for an
    opcode this node does not serve, MARSHALLINGERROR where ZooKeeper answers that (a multiRead
    holding a write); the connection stays."""

    def __init__(self, xid: int, opcode: int, code: int = Codes.UNIMPLEMENTED) -> None:
        super().__init__(f"opcode {opcode}")
        self.xid = xid
        self.opcode = opcode
        self.code = code


class Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.buf):
            raise JuteError(f"record truncated at byte {self.pos} (wanted {n} more of {len(self.buf)})")
        chunk = self.buf[self.pos : end]
        self.pos = end
        return chunk

    def int(self) -> int:
        return _INT.unpack(self._take(4))[0]

    def long(self) -> int:
        return _LONG.unpack(self._take(8))[0]

    def bool(self) -> bool:
        return self._take(1) != b"\x00"

    def buffer(self) -> bytes | None:
        n = self.int()
        if n == -1:
            return None
        if n < -1:
            raise JuteError(f"negative buffer length {n}")
        return bytes(self._take(n))

    def ustring(self) -> str | None:
        raw = self.buffer()
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JuteError(f"string is not UTF-8: {exc}") from exc

    def path(self) -> str:
        return self.ustring() or ""

    def vector(self, item: Any) -> list[Any] | None:
        n = self.int()
        if n == -1:
            return None
        if n < -1 or n > len(self.buf):  # a count no record could hold
            raise JuteError(f"bad vector length {n}")
        return [item() for _ in range(n)]

    def strings(self) -> list[str]:
        return [s or "" for s in (self.vector(self.ustring) or [])]

    def acl(self) -> ACL:
        perms = self.int()
        return ACL(perms, Id(self.ustring() or "", self.ustring() or ""))

    def acls(self) -> list[ACL]:
        return self.vector(self.acl) or []

    def left(self) -> int:
        return len(self.buf) - self.pos


class Writer:
    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def int(self, v: int) -> Writer:
        self.parts.append(_INT.pack(v))
        return self

    def long(self, v: int) -> Writer:
        self.parts.append(_LONG.pack(v))
        return self

    def bool(self, v: bool) -> Writer:
        self.parts.append(b"\x01" if v else b"\x00")
        return self

    def buffer(self, v: bytes | None) -> Writer:
        if v is None:
            return self.int(-1)
        self.parts.append(_INT.pack(len(v)))
        self.parts.append(v)
        return self

    def ustring(self, v: str | None) -> Writer:
        return self.buffer(None if v is None else v.encode("utf-8"))

    def strings(self, values: list[str]) -> Writer:
        self.int(len(values))
        for v in values:
            self.ustring(v)
        return self

    def stat(self, s: ZnodeStat) -> Writer:
        self.parts.append(_STAT.pack(*s))
        return self

    def acls(self, acls: list[ACL]) -> Writer:
        self.int(len(acls))
        for a in acls:
            self.int(a.perms).ustring(a.id.scheme).ustring(a.id.id)
        return self

    def raw(self, b: bytes) -> Writer:
        self.parts.append(b)
        return self

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def frame(payload: bytes) -> bytes:
    """Length-prefixed, as every ZooKeeper message on the wire."""
    return _INT.pack(len(payload)) + payload


# --- handshake --------------------------------------------------------------------------------


def decode_connect(payload: bytes) -> tuple[p.Connect, bool]:
    """ConnectRequest -> (Connect, whether the client sent the readOnly flag)."""
    r = Reader(payload)
    r.int()  # protocolVersion (0)
    last_zxid, timeout, session_id = r.long(), r.int(), r.long()
    passwd = r.buffer() or b""
    has_ro = r.left() >= 1
    read_only = r.bool() if has_ro else False
    return p.Connect(p.PROTOCOL_VERSION, last_zxid, timeout, session_id, passwd, read_only), has_ro


def encode_connected(msg: p.Connected, with_ro: bool) -> bytes:
    w = Writer().int(0).int(msg.timeout_ms).long(msg.session_id).buffer(msg.passwd)
    if with_ro:
        w.bool(msg.read_only)
    return frame(w.bytes())


# --- requests ---------------------------------------------------------------------------------


def _create(r: Reader, xid: int, opcode: int) -> p.Create:
    path, data, acl, flags = r.path(), r.buffer(), r.acls(), r.int()  # a null buffer stays None
    ttl = r.long() if opcode == CREATE_TTL else 0
    if opcode == CREATE_CONTAINER and flags != p.CONTAINER:
        flags = p.CONTAINER
    return p.Create(xid, path, data, acl, flags, ttl)


class SaslToken(NamedTuple):
    """A SASL exchange step (GetSASLRequest): the gateway answers it itself."""

    token: bytes


class Request(NamedTuple):
    xid: int  # the client's
    opcode: int
    msg: Any  # the zoomq message for the session actor
    multi_types: list[int] | None = None  # a multi's op types: create and create2 answer differently


def decode_request(payload: bytes, xid_for: Any) -> Request:
    """A request frame -> Request. `xid_for()` gives the xid to use toward the session actor for a
    numbered request (the gateway numbers them itself). JuteError for a malformed record;
    Unsupported for an opcode this node does not serve."""
    r = Reader(payload)
    xid, opcode = r.int(), r.int()
    if opcode == PING:
        return Request(xid, opcode, p.Ping())
    if opcode == AUTH:
        r.int()  # AuthPacket.type (0)
        scheme = r.ustring() or ""
        return Request(xid, opcode, p.Auth(p.AUTH_XID, scheme, r.buffer() or b""))
    if opcode == SASL:
        return Request(xid, opcode, SaslToken(r.buffer() or b""))
    if opcode in (SET_WATCHES, SET_WATCHES2):
        rel = r.long()
        data, exist, child = r.strings(), r.strings(), r.strings()
        persistent, recursive = (r.strings(), r.strings()) if opcode == SET_WATCHES2 else ([], [])
        return Request(xid, opcode, p.SetWatches(p.SET_WATCHES_XID, rel, data, exist, child, persistent, recursive))
    if opcode == MULTI:
        ops, types = _multi(r)
        return Request(xid, opcode, p.Multi(xid_for(), ops), types)
    if opcode == MULTI_READ:
        reads, types = _multi_read(r)
        if reads is None:
            raise Unsupported(xid, opcode, Codes.MARSHALLINGERROR)  # as ZooKeeper: an answer, not a closed connection
        return Request(xid, opcode, p.MultiRead(xid_for(), reads), types)
    if opcode not in _DECODERS:
        raise Unsupported(xid, opcode)
    return Request(xid, opcode, _DECODERS[opcode](r, xid_for(), opcode))


def _op_list(r: Reader, decoders: dict[int, Any]) -> tuple[list[Any], list[int], int | None]:
    """A multi's or multiRead's ops up to the end marker: (ops, their types, the first op type
    that `decoders` does not allow, if any: reading stops there)."""
    ops: list[Any] = []
    types: list[int] = []
    for _ in range(len(r.buf)):  # bounded: every op takes at least one byte
        op_type, done, _err = _MULTI.unpack(r._take(_MULTI.size))
        if done:
            return ops, types, None
        decode = decoders.get(op_type)
        if decode is None:
            return ops, types, op_type
        ops.append(decode(r, op_type))
        types.append(op_type)
    raise JuteError("multi without its end marker")


_MULTI_OPS: dict[int, Any] = {
    CREATE: lambda r, t: _create(r, 0, t),
    CREATE2: lambda r, t: _create(r, 0, t),
    CREATE_CONTAINER: lambda r, t: _create(r, 0, t),
    CREATE_TTL: lambda r, t: _create(r, 0, t),
    DELETE: lambda r, t: p.Delete(0, r.path(), r.int()),
    SET_DATA: lambda r, t: p.SetData(0, r.path(), r.buffer(), r.int()),
    CHECK: lambda r, t: p.Check(0, r.path(), r.int()),
}
_READ_OPS: dict[int, Any] = {  # multiRead: getData and getChildren only
    GET_DATA: lambda r, t: p.GetData(0, r.path(), r.bool()),
    GET_CHILDREN: lambda r, t: p.GetChildren(0, r.path(), r.bool(), False),
}


def _multi(r: Reader) -> tuple[list[Any], list[int]]:
    ops, types, bad = _op_list(r, _MULTI_OPS)
    if bad is not None:
        raise JuteError(f"op type {bad} cannot be part of a multi")
    return ops, types


def _multi_read(r: Reader) -> tuple[list[Any] | None, list[int]]:
    """(None, ...) when an op other than a read is in it (ZooKeeper answers MARSHALLINGERROR)."""
    ops, types, bad = _op_list(r, _READ_OPS)
    return (None if bad is not None else ops), types


_DECODERS: dict[int, Any] = {
    CREATE: _create,
    CREATE2: _create,
    CREATE_CONTAINER: _create,
    CREATE_TTL: _create,
    DELETE: lambda r, xid, op: p.Delete(xid, r.path(), r.int()),
    EXISTS: lambda r, xid, op: p.Exists(xid, r.path(), r.bool()),
    GET_DATA: lambda r, xid, op: p.GetData(xid, r.path(), r.bool()),
    SET_DATA: lambda r, xid, op: p.SetData(xid, r.path(), r.buffer(), r.int()),
    GET_ACL: lambda r, xid, op: p.GetACL(xid, r.path()),
    SET_ACL: lambda r, xid, op: p.SetACL(xid, r.path(), r.acls(), r.int()),
    GET_CHILDREN: lambda r, xid, op: p.GetChildren(xid, r.path(), r.bool(), False),
    GET_CHILDREN2: lambda r, xid, op: p.GetChildren(xid, r.path(), r.bool(), True),
    SYNC: lambda r, xid, op: p.Sync(xid, r.path()),
    CHECK: lambda r, xid, op: p.Check(xid, r.path(), r.int()),
    CLOSE_SESSION: lambda r, xid, op: p.Close(xid),
    REMOVE_WATCHES: lambda r, xid, op: p.RemoveWatches(xid, r.path(), r.int()),
    CHECK_WATCHES: lambda r, xid, op: p.CheckWatches(xid, r.path(), r.int()),
    WHO_AM_I: lambda r, xid, op: p.WhoAmI(xid),
    GET_EPHEMERALS: lambda r, xid, op: p.GetEphemerals(xid, r.path() or "/"),
    GET_ALL_CHILDREN_NUMBER: lambda r, xid, op: p.GetAllChildrenNumber(xid, r.path()),
    ADD_WATCH: lambda r, xid, op: p.AddWatch(xid, r.path(), r.int()),
    # ReconfigRequest{ustring joiningServers, leavingServers, newMembers; long curConfigId}; null
    # strings stay None. Answered as GetDataResponse (the new config and its Stat): a DataResult.
    RECONFIG: lambda r, xid, op: p.Reconfig(xid, r.ustring(), r.ustring(), r.ustring(), r.long()),
}


# --- replies ----------------------------------------------------------------------------------


def encode_reply(xid: int, opcode: int, reply: p.Reply, multi_types: list[int] | None = None) -> bytes:
    """The zoomq reply to a request of `opcode`, as ZooKeeper's ReplyHeader + response record
    (the record only when err == 0, as ZooKeeper does)."""
    w = Writer().raw(_REPLY.pack(xid, reply.zxid, reply.err))
    body = reply.body
    if reply.err == Codes.OK and body is not None:
        _encode_body(w, opcode, body, multi_types)
    elif reply.err == Codes.OK and opcode == ADD_WATCH:
        w.int(0)  # ErrorResponse{err = 0}
    return frame(w.bytes())


def _encode_body(w: Writer, opcode: int, body: Any, multi_types: list[int] | None) -> None:
    if isinstance(body, p.CreateResult):
        w.ustring(body.path)
        if opcode != CREATE:
            w.stat(body.stat)
    elif isinstance(body, p.StatResult):
        w.stat(body.stat)
    elif isinstance(body, p.DataResult):
        w.buffer(body.data).stat(body.stat)
    elif isinstance(body, p.ChildrenResult):
        w.strings(body.children)
        if opcode == GET_CHILDREN2 and body.stat is not None:
            w.stat(body.stat)
    elif isinstance(body, p.ACLResult):
        w.acls(body.acl).stat(body.stat)
    elif isinstance(body, p.PathResult):
        w.ustring(body.path)
    elif isinstance(body, p.CountResult):
        w.int(body.count)
    elif isinstance(body, p.NamesResult):
        w.strings(body.names)
    elif isinstance(body, p.MultiResult):
        _encode_multi(w, body, multi_types or [])
    elif isinstance(body, p.MultiReadResult):
        _encode_multi_read(w, body, multi_types or [])
    elif isinstance(body, p.WhoAmIResult):
        w.int(len(body.identities))  # vector<ClientInfo{ustring authScheme, ustring user}>
        for ident in body.identities:
            w.ustring(ident.scheme).ustring(ident.user)


def _encode_multi(w: Writer, body: p.MultiResult, types: list[int]) -> None:
    failed = any(r.err for r in body.results)
    for op_type, r in zip(types, body.results, strict=False):
        if failed:
            w.raw(_MULTI.pack(ERROR, False, r.err)).int(r.err)
            continue
        w.raw(_MULTI.pack(op_type, False, 0))
        if op_type == CREATE:
            w.ustring(r.path)
        elif op_type in (CREATE2, CREATE_CONTAINER, CREATE_TTL):
            w.ustring(r.path).stat(r.stat or ZnodeStat(*([0] * 11)))
        elif op_type == SET_DATA:
            w.stat(r.stat or ZnodeStat(*([0] * 11)))
    w.raw(_MULTI.pack(-1, True, -1))


def _encode_multi_read(w: Writer, body: p.MultiReadResult, types: list[int]) -> None:
    """Each read on its own: its result, or an error slot (type -1, the code) for that read only."""
    for op_type, r in zip(types, body.results, strict=False):
        if r.err or r.body is None:
            w.raw(_MULTI.pack(ERROR, False, r.err)).int(r.err)
        elif op_type == GET_DATA:
            w.raw(_MULTI.pack(op_type, False, 0)).buffer(r.body.data).stat(r.body.stat)
        else:
            w.raw(_MULTI.pack(op_type, False, 0)).strings(r.body.children)
    w.raw(_MULTI.pack(-1, True, -1))


def encode_event(event: p.Event) -> bytes:
    return frame(
        Writer().raw(_REPLY.pack(WATCH_XID, event.zxid, 0)).int(event.type).int(event.state).ustring(event.path).bytes()
    )


def encode_error(xid: int, zxid: int, err: int) -> bytes:
    return frame(_REPLY.pack(xid, zxid, err))


def encode_sasl(xid: int, zxid: int, token: bytes) -> bytes:
    """SetSASLResponse{buffer token}."""
    return frame(Writer().raw(_REPLY.pack(xid, zxid, 0)).buffer(token).bytes())
