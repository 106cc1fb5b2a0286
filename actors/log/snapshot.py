"""Snapshot files `snapshot.<16-hex zxid>`: header, payload (the tree's msgpack image), crc trailer.

Written to a temp file, fsynced and renamed, so a crash leaves either the old set or the new file
whole; a truncated or corrupt snapshot is skipped (logged) and the previous one is used.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

from actors.log.epochs import numbered_files
from runtime.files import write_atomic

MAGIC = b"ZQSN"
VERSION = 1
HEADER = struct.Struct(">4sIQ")  # magic, version, zxid
TRAILER = struct.Struct(">I")  # crc32 of header + payload
PREFIX = "snapshot."


def _name(zxid: int) -> str:
    return f"{PREFIX}{zxid:016x}"


def write_snapshot(directory: Path, zxid: int, payload: bytes) -> Path:
    header = HEADER.pack(MAGIC, VERSION, zxid)
    crc = zlib.crc32(payload, zlib.crc32(header))
    return write_atomic(Path(directory) / _name(zxid), (header, payload, TRAILER.pack(crc)))


def list_snapshots(directory: Path) -> list[tuple[int, Path]]:
    """(zxid, path), newest first; temp files are not snapshots."""
    return numbered_files(directory, PREFIX)[::-1]


def read_snapshot(path: Path) -> tuple[int, bytes] | None:
    data = Path(path).read_bytes()
    if len(data) < HEADER.size + TRAILER.size:
        return None
    magic, version, zxid = HEADER.unpack_from(data, 0)
    if magic != MAGIC or version != VERSION:
        return None
    body = memoryview(data)[: len(data) - TRAILER.size]
    (crc,) = TRAILER.unpack_from(data, len(data) - TRAILER.size)
    if zlib.crc32(body) != crc:
        return None
    return zxid, bytes(body[HEADER.size :])


def load_newest_valid(directory: Path, log: Any = None) -> tuple[int, bytes] | None:
    for zxid, path in list_snapshots(directory):
        got = read_snapshot(path)
        if got is not None and got[0] == zxid:
            return got
        if log is not None:
            log.warning("snapshot_invalid", file=path.name)
    return None


def purge_snapshots(directory: Path, retain: int) -> int:
    """Keep the newest `retain` (at least 1) snapshots; return the oldest kept zxid (0 if none)."""
    snaps = list_snapshots(directory)
    keep = snaps[: max(1, retain)]
    for _, path in snaps[max(1, retain) :]:
        path.unlink(missing_ok=True)
    return keep[-1][0] if keep else 0


def remove_temp_files(directory: Path) -> int:
    """Leftovers of snapshot writes that died before their rename (call only when none runs)."""
    n = 0
    for tmp in Path(directory).glob(PREFIX + "*.tmp*"):
        tmp.unlink(missing_ok=True)
        n += 1
    return n
