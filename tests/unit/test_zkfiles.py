"""Container and TTL types from Apache ZooKeeper's own files (zoomq/zkfiles.py), on files built
here byte by byte in ZooKeeper's jute layout (the integration test reads a real 3.8 server's)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from zoomq.zkfiles import (
    LOG_MAGIC,
    OP_CREATE,
    OP_CREATE_CONTAINER,
    OP_CREATE_TTL,
    OP_DELETE,
    OP_MULTI,
    SNAP_MAGIC,
    ZkFileError,
    node_types,
)

pytestmark = pytest.mark.timeout(30)
CONTAINER = -(1 << 63)
TTL_BASE = (0xFF << 56) - (1 << 64)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


def buf(b: bytes | None) -> bytes:
    return i32(-1) if b is None else i32(len(b)) + b


def s(text: str) -> bytes:
    return buf(text.encode())


ACLS = i32(1) + i32(31) + s("world") + s("anyone")


def snapshot(nodes: list[tuple[str, int]]) -> bytes:
    out = i32(SNAP_MAGIC) + i32(2) + i64(0)
    out += i32(1) + i64(0x100) + i32(30_000)  # one session
    out += i32(1) + i64(1) + ACLS  # the ACL cache
    for path, owner in [("", 0), *nodes]:
        out += (
            s(path)
            + buf(b"d")
            + i64(1)
            + i64(1)
            + i64(1)
            + i64(0)
            + i64(0)
            + i32(0)
            + i32(0)
            + i32(0)
            + i64(owner)
            + i64(1)
        )
    return out + s("/") + i64(0)


def txn(zxid: int, kind: int, record: bytes) -> bytes:
    entry = i64(0x100) + i32(1) + i64(zxid) + i64(0) + i32(kind) + record
    return i64(0) + buf(entry) + b"B"


def create(path: str) -> bytes:
    return s(path) + buf(b"x") + ACLS + b"\x00" + i32(1)


def log(*records: bytes) -> bytes:
    return i32(LOG_MAGIC) + i32(2) + i64(0) + b"".join(records)


def test_types_come_from_the_newest_snapshot_and_the_log_after_it(tmp_path: Path):
    v2 = tmp_path / "version-2"
    v2.mkdir()
    (v2 / "snapshot.0").write_bytes(snapshot([("/old", CONTAINER)]))
    (v2 / "snapshot.5").write_bytes(snapshot([("/c", CONTAINER), ("/t", TTL_BASE | 5_000), ("/p", 0), ("/e", 0x100)]))
    multi = (
        i32(2)
        + i32(OP_CREATE_TTL)
        + buf(s("/m/ttl") + buf(b"") + ACLS + i32(0) + i64(9_000))
        + i32(OP_CREATE_CONTAINER)
        + buf(s("/m/box") + buf(b"") + ACLS + i32(0))
    )
    (v2 / "log.1").write_bytes(
        log(txn(3, OP_CREATE_CONTAINER, s("/before") + buf(b"") + ACLS + i32(0)))
    )  # in the snapshot
    (v2 / "log.6").write_bytes(
        log(
            txn(6, OP_DELETE, s("/c")),
            txn(7, OP_CREATE, create("/c")),  # the same path again, now persistent
            txn(8, OP_CREATE_TTL, s("/t2") + buf(b"") + ACLS + i32(0) + i64(60_000)),
            txn(9, OP_MULTI, multi),
        )
        + b"\x00" * 64
    )  # the preallocated end
    assert node_types(tmp_path) == {
        "/t": ("ttl", 5_000),
        "/t2": ("ttl", 60_000),
        "/m/ttl": ("ttl", 9_000),
        "/m/box": ("container", 0),
    }


def test_a_log_cut_short_while_written_ends_the_read_there(tmp_path: Path):
    whole = log(
        txn(1, OP_CREATE_CONTAINER, s("/a") + buf(b"") + ACLS + i32(0)),
        txn(2, OP_CREATE_CONTAINER, s("/b") + buf(b"") + ACLS + i32(0)),
    )
    (tmp_path / "log.1").write_bytes(whole[:-7])
    assert node_types(tmp_path) == {"/a": ("container", 0)}


def test_what_is_not_a_zookeeper_data_dir_is_refused(tmp_path: Path):
    with pytest.raises(ZkFileError, match="not a ZooKeeper data dir"):
        node_types(tmp_path)
    (tmp_path / "snapshot.1").write_bytes(b"\x1f\x8b compressed")
    with pytest.raises(ZkFileError, match="compressed snapshot"):
        node_types(tmp_path)
