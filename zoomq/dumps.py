"""`zoomq log dump` and `zoomq snapshot dump`: a node's on-disk txn log and snapshots, readable
(as ZooKeeper's TxnLogToolkit and SnapshotFormatter show theirs), or as JSON lines (`--json`).

The files are only read, never changed (a running node's directory can be dumped). A log's torn
or corrupt tail (what recovery cuts at the next start) is reported where it begins, with why;
a snapshot that fails its checks is reported and the next older one shown (a directory), or
refused (a file named on the command line).

Text output: one line per txn, `<time> zxid <0xE_CCCCCCCC> session <id> cxid <n> <op> ...`,
a multi's ops indented below it; values are shown as quoted text when they are printable UTF-8,
else as hex, cut after `max_data` bytes. JSON lines: `{"type": "file"|"txn"|"torn"|"end", ...}`
for a log, `{"type": "snapshot", ...}` then `{"type": "znode", ...}` per znode for a snapshot;
values there are base64 (null kept apart from ""), as in data files.
"""

from __future__ import annotations

import base64
import datetime
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from actors.log import records
from actors.log import snapshot as snapshots
from actors.log.txnlog import ZERO_END, list_logs
from actors.protocol.txn import (
    CheckTxn,
    CloseSessionTxn,
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    MultiTxn,
    ReconfigTxn,
    SetACLTxn,
    SetDataTxn,
    Txn,
)
from actors.protocol.zxid import fmt
from zoomq.backup import ToolError, find_data_dir
from zoomq.datafile import node_type
from zoomq.security import ACL

MAX_DATA = 256  # bytes of a value shown in text output
_txn_decoder = msgspec.msgpack.Decoder(Txn)
_json = msgspec.json.Encoder()


def when(ms: int) -> str:
    return (
        datetime.datetime.fromtimestamp(ms / 1000.0, tz=datetime.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def show_data(data: bytes | int | None, limit: int = MAX_DATA) -> str:
    """A value shown safely: `null`, quoted text when it is printable UTF-8, else `0x` + hex."""
    if data is None:
        return "null"
    if isinstance(data, int):
        return f"<{data} bytes>"
    cut = data[:limit] if limit else data
    more = f"... ({len(data)} bytes)" if len(cut) < len(data) else ""
    text = None
    for back in (0, 1, 2, 3) if more else (0,):  # a cut may fall inside a character
        try:
            text = cut[: len(cut) - back].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    if text is not None and all(ch.isprintable() or ch in "\n\t" for ch in text):
        return _quote(text) + more
    return "0x" + cut.hex() + more


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\t", "\\t") + "'"


def acl_text(acl: list[ACL]) -> str:
    from zoomq.shell import format_perms

    return "[" + ", ".join(f"{a.id.scheme}:{a.id.id}:{format_perms(a.perms)}" for a in acl) + "]"


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _acl_json(acl: list[ACL]) -> list[dict[str, Any]]:
    return [{"perms": a.perms, "scheme": a.id.scheme, "id": a.id.id} for a in acl]


def _owner_text(owner: int) -> str:
    kind = node_type(owner)
    if kind is None:
        return f"ephemeral owner=0x{owner & (2**64 - 1):x}"
    return f"ttl={kind[1]}ms" if kind[0] == "ttl" else kind[0]


def op_text(op: Any, limit: int) -> list[str]:
    """A txn's operation as text: its line, and (a multi) one line per op after it."""
    if isinstance(op, CreateTxn):
        return [
            f"create {op.path} data={show_data(op.data, limit)} acl={acl_text(op.acl)} {_owner_text(op.ephemeral_owner)}"
        ]
    if isinstance(op, DeleteTxn):
        return [f"delete {op.path}"]
    if isinstance(op, SetDataTxn):
        return [f"setData {op.path} data={show_data(op.data, limit)} version={op.version}"]
    if isinstance(op, SetACLTxn):
        return [f"setACL {op.path} acl={acl_text(op.acl)} aversion={op.version}"]
    if isinstance(op, CheckTxn):
        return [f"check {op.path}"]
    if isinstance(op, MultiTxn):
        lines = [f"multi {len(op.ops)} ops"]
        for sub in op.ops:
            lines += ["    " + line for line in op_text(sub, limit)]
        return lines
    if isinstance(op, CreateSessionTxn):
        return [f"createSession timeout={op.timeout_ms}ms"]
    if isinstance(op, CloseSessionTxn):
        return ["closeSession"]
    if isinstance(op, ReconfigTxn):
        return ["reconfig " + ", ".join(s.spec() for s in op.servers)]
    return [type(op).__name__]


def op_json(op: Any) -> dict[str, Any]:
    if isinstance(op, CreateTxn):
        kind = node_type(op.ephemeral_owner)
        out: dict[str, Any] = {
            "op": "create",
            "path": op.path,
            "data": _b64(op.data),
            "acl": _acl_json(op.acl),
            "ephemeral_owner": op.ephemeral_owner,
            "node_type": kind[0] if kind else "ephemeral",
        }
        if kind and kind[0] == "ttl":
            out["ttl"] = kind[1]
        return out
    if isinstance(op, DeleteTxn):
        return {"op": "delete", "path": op.path}
    if isinstance(op, SetDataTxn):
        return {"op": "setData", "path": op.path, "data": _b64(op.data), "version": op.version}
    if isinstance(op, SetACLTxn):
        return {"op": "setACL", "path": op.path, "acl": _acl_json(op.acl), "aversion": op.version}
    if isinstance(op, CheckTxn):
        return {"op": "check", "path": op.path}
    if isinstance(op, MultiTxn):
        return {"op": "multi", "ops": [op_json(sub) for sub in op.ops]}
    if isinstance(op, CreateSessionTxn):
        return {"op": "createSession", "timeout_ms": op.timeout_ms}
    if isinstance(op, CloseSessionTxn):
        return {"op": "closeSession"}
    if isinstance(op, ReconfigTxn):
        return {"op": "reconfig", "servers": [s.spec() for s in op.servers]}
    return {"op": type(op).__name__}


def _session(session_id: int) -> str:
    return f"0x{session_id & (2**64 - 1):x}"


# --- the log ------------------------------------------------------------------------------------


@dataclass
class LogSummary:
    files: int = 0
    txns: int = 0
    first: int | None = None
    last: int | None = None
    torn: str | None = None


def _log_files(target: Path) -> list[tuple[int, Path]]:
    if target.is_file():
        if not target.name.startswith("log."):
            raise ToolError(f"{target}: not a log file (log.<16 hex digits>)")
        return [(int(target.name[4:], 16) if len(target.name) == 20 else 0, target)]
    data_dir = find_data_dir(target)
    logs = list_logs(data_dir.version_dir)
    if not logs:
        raise ToolError(f"{data_dir.version_dir}: no log files (log.*)")
    return logs


def dump_log(target: Path, write: Callable[[str], None], *, as_json: bool = False, limit: int = MAX_DATA) -> LogSummary:
    """Every txn of the log at `target` (a data dir, its version-1, or one log file), in order."""
    logs = _log_files(target)
    summary = LogSummary()
    for i, (first, path) in enumerate(logs):
        summary.files += 1
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue  # purged while listed
        payloads, end, reason = records.scan(data)
        if as_json:
            write(
                _json.encode(
                    {
                        "type": "file",
                        "name": path.name,
                        "first_zxid": first,
                        "first_zxid_hex": fmt(first),
                        "bytes": len(data),
                    }
                ).decode()
            )
        else:
            write(f"{path.name} (first zxid {fmt(first)}, {len(data)} bytes)")
        offset = 0
        for payload in payloads:
            at = offset
            offset += records.HEADER.size + len(payload)
            try:
                txn = _txn_decoder.decode(payload)
            except msgspec.DecodeError as exc:
                reason, end = f"undecodable record ({exc})", at
                break
            summary.txns += 1
            summary.first = txn.zxid if summary.first is None else summary.first
            summary.last = txn.zxid
            if as_json:
                write(
                    _json.encode(
                        {
                            "type": "txn",
                            "file": path.name,
                            "offset": at,
                            "zxid": txn.zxid,
                            "zxid_hex": fmt(txn.zxid),
                            "time_ms": txn.time_ms,
                            "time": when(txn.time_ms),
                            "session": _session(txn.session_id),
                            "cxid": txn.cxid,
                            "op": op_json(txn.op),
                        }
                    ).decode()
                )
            else:
                lines = op_text(txn.op, limit)
                write(
                    f"{when(txn.time_ms)} zxid {fmt(txn.zxid)} session {_session(txn.session_id)} cxid {txn.cxid} {lines[0]}"
                )
                for line in lines[1:]:
                    write(line)
        if reason is None or (reason == ZERO_END and _zeros(data, end)):
            continue  # a clean end (the unused, preallocated tail of a log file is zeros)
        left = len(data) - end
        summary.torn = (
            f"{path.name} at offset {end}: {reason}; {left} bytes after it are not valid txns (recovery cuts them)"
        )
        if as_json:
            write(
                _json.encode(
                    {"type": "torn", "file": path.name, "offset": end, "reason": reason, "bytes": left}
                ).decode()
            )
        else:
            write(f"torn tail: {summary.torn}")
        if i + 1 < len(logs):
            later = ", ".join(p.name for _, p in logs[i + 1 :])
            note = f"not read after the torn tail (recovery drops them): {later}"
            write(
                _json.encode({"type": "dropped", "files": [p.name for _, p in logs[i + 1 :]]}).decode()
                if as_json
                else note
            )
        break
    if as_json:
        write(
            _json.encode(
                {
                    "type": "end",
                    "files": summary.files,
                    "txns": summary.txns,
                    "first_zxid": summary.first,
                    "last_zxid": summary.last,
                    "torn": summary.torn,
                }
            ).decode()
        )
    else:
        span = f", {fmt(summary.first)} .. {fmt(summary.last)}" if summary.first is not None else ""
        write(f"{summary.txns} txns in {summary.files} log files{span}" + ("; torn tail" if summary.torn else ""))
    return summary


def _zeros(data: bytes, start: int) -> bool:
    return data.count(0, start) == len(data) - start


# --- snapshots ----------------------------------------------------------------------------------


def check_snapshot(path: Path) -> tuple[int, bytes]:
    """(zxid, payload) of a snapshot file; ToolError saying what is wrong with a bad one."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ToolError(f"{path.name}: {exc.strerror or exc}") from None
    header, trailer = snapshots.HEADER, snapshots.TRAILER
    if len(data) < header.size + trailer.size:
        raise ToolError(f"{path.name}: invalid snapshot: truncated ({len(data)} bytes)")
    magic, version, zxid = header.unpack_from(data, 0)
    if magic != snapshots.MAGIC:
        raise ToolError(f"{path.name}: not a zoomq snapshot (magic {magic!r})")
    if version != snapshots.VERSION:
        raise ToolError(f"{path.name}: snapshot file version {version}, this zoomq reads {snapshots.VERSION}")
    (crc,) = trailer.unpack_from(data, len(data) - trailer.size)
    body = memoryview(data)[: len(data) - trailer.size]
    if zlib.crc32(body) != crc:
        raise ToolError(f"{path.name}: invalid snapshot: bad checksum (truncated or corrupt)")
    name = path.name
    try:
        named = int(name[len(snapshots.PREFIX) :], 16) if name.startswith(snapshots.PREFIX) else None
    except ValueError:
        named = None
    if named is not None and named != zxid:
        raise ToolError(f"{name}: invalid snapshot: it holds zxid {fmt(zxid)}, not the one its name says")
    return zxid, bytes(body[header.size :])


def pick_snapshot(target: Path, report: Callable[[str], None]) -> tuple[Path, int, bytes]:
    """The snapshot to show: the file named, or the newest valid one of a data dir (invalid ones
    are reported and skipped)."""
    if target.is_file():
        zxid, payload = check_snapshot(target)
        return target, zxid, payload
    data_dir = find_data_dir(target)
    found = snapshots.list_snapshots(data_dir.version_dir)
    if not found:
        raise ToolError(
            f"{data_dir.version_dir}: no snapshot files (snapshot.*): a node writes one every snapshot_every txns"
        )
    for _zxid, path in found:
        try:
            zxid, payload = check_snapshot(path)
        except ToolError as exc:
            report(f"skipped {exc}")
            continue
        return path, zxid, payload
    raise ToolError(f"{data_dir.version_dir}: no valid snapshot among {len(found)}")


def dump_snapshot(
    target: Path,
    write: Callable[[str], None],
    report: Callable[[str], None],
    *,
    as_json: bool = False,
    limit: int = MAX_DATA,
) -> int:
    """The znodes and sessions of a snapshot; returns how many znodes."""
    from actors.session.tree import _images, _snapshot_decoder, int32

    path, zxid, payload = pick_snapshot(target, report)
    try:
        snap = _snapshot_decoder.decode(payload)
        images = list(_images(snap))
    except (msgspec.DecodeError, struct.error, ValueError) as exc:
        raise ToolError(f"{path.name}: invalid snapshot: undecodable ({exc})") from None
    children: dict[str, int] = {}
    ephemerals: dict[int, int] = {}
    for image in images:
        if image.path != "/":
            parent = image.path.rsplit("/", 1)[0] or "/"
            children[parent] = children.get(parent, 0) + 1
        kind = node_type(image.ephemeral_owner)
        if kind is None:
            ephemerals[image.ephemeral_owner] = ephemerals.get(image.ephemeral_owner, 0) + 1
    sessions = sorted(snap.sessions.items())
    if as_json:
        write(
            _json.encode(
                {
                    "type": "snapshot",
                    "file": path.name,
                    "zxid": zxid,
                    "zxid_hex": fmt(zxid),
                    "format": snap.format,
                    "znodes": len(images),
                    "sessions": [
                        {"id": _session(sid), "timeout_ms": info.timeout_ms, "ephemerals": ephemerals.get(sid, 0)}
                        for sid, info in sessions
                    ],
                }
            ).decode()
        )
    else:
        write(
            f"{path.name}: zxid {fmt(zxid)}, snapshot format {snap.format}, {len(sessions)} sessions, {len(images)} znodes"
        )
        write("sessions:")
        for sid, info in sessions:
            write(f"  {_session(sid)} timeout {info.timeout_ms} ms, {ephemerals.get(sid, 0)} ephemerals")
        write("znodes:")
    for image in images:
        acl = snap.acls[image.acl] if 0 <= image.acl < len(snap.acls) else []
        n = children.get(image.path, 0)
        stat = {
            "czxid": image.czxid,
            "mzxid": image.mzxid,
            "ctime": image.ctime,
            "mtime": image.mtime,
            "version": image.version,
            "cversion": int32(2 * image.creates - n),
            "aversion": image.aversion,
            "ephemeralOwner": image.ephemeral_owner,
            "dataLength": len(image.data) if image.data is not None else 0,
            "numChildren": n,
            "pzxid": image.pzxid,
        }
        if as_json:
            write(
                _json.encode(
                    {"type": "znode", "path": image.path, "data": _b64(image.data), "acl": _acl_json(acl), "stat": stat}
                ).decode()
            )
            continue
        write(image.path)
        write(f"  cZxid = {fmt(image.czxid)}  ctime = {when(image.ctime)}")
        write(f"  mZxid = {fmt(image.mzxid)}  mtime = {when(image.mtime)}")
        write(
            f"  pZxid = {fmt(image.pzxid)}  cversion = {stat['cversion']}  dataVersion = {image.version}  "
            f"aclVersion = {image.aversion}"
        )
        write(
            f"  ephemeralOwner = 0x{image.ephemeral_owner & (2**64 - 1):x} ({_owner_text(image.ephemeral_owner)})  "
            f"dataLength = {stat['dataLength']}  numChildren = {n}"
        )
        write(f"  acl = {acl_text(acl)}")
        write(f"  data = {show_data(image.data, limit)}")
    return len(images)
