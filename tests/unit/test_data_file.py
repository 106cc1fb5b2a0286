"""The data tools without a node: the data file format (zoomq/datafile.py), backup and restore of
data dirs, `zoomq log dump` / `zoomq snapshot dump`, and one test per class of bad input, each
named by its kazoo exception and ZooKeeper code. The commands run in-process (zoomq.cli.main)."""

from __future__ import annotations

import base64
import fcntl
import gzip
import io
import json
import os
import sys
from pathlib import Path

import pytest
import structlog

from actors.log import snapshot as snapshots
from actors.log.recovery import load_state
from actors.log.txnlog import TxnLog
from actors.protocol.txn import (
    CONTAINER_OWNER,
    CloseSessionTxn,
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    Txn,
    ttl_owner,
)
from actors.protocol.zxid import epoch_of, make
from zoomq.cli import main
from zoomq.datafile import DataFile, Entry, Header, encode
from zoomq.security import ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, Id, make_digest_acl

pytestmark = pytest.mark.timeout(60)
T0 = 1_764_590_400_000
SECRET = [make_digest_acl("bob", "pw", all=True)]
SESSION = 0x1234


def write_log(version_dir: Path, txns: list[Txn]) -> None:
    version_dir.mkdir(parents=True, exist_ok=True)
    log = TxnLog(version_dir, roll_bytes=1 << 20, log=structlog.get_logger())
    log.recover()
    log.append(txns)
    log.sync()
    log.close()


def sample_txns() -> list[Txn]:
    """A session, every node type, values null / empty / binary / text, ACLs, a multi, deletes."""
    ops = [
        (SESSION, CreateSessionTxn(10_000, b"p" * 16)),
        (SESSION, CreateTxn("/app", b"hello", OPEN_ACL_UNSAFE)),
        (SESSION, CreateTxn("/app/bin", bytes(range(256)), OPEN_ACL_UNSAFE)),
        (SESSION, CreateTxn("/app/none", None, OPEN_ACL_UNSAFE)),
        (SESSION, CreateTxn("/app/empty", b"", READ_ACL_UNSAFE)),
        (SESSION, CreateTxn("/app/eph", b"e", OPEN_ACL_UNSAFE, SESSION)),
        (SESSION, CreateTxn("/app/c", b"", OPEN_ACL_UNSAFE, CONTAINER_OWNER)),
        (SESSION, CreateTxn("/app/t", b"t", SECRET, ttl_owner(60_000))),
        (
            SESSION,
            MultiTxn([CreateTxn("/app/c/q-0000000000", b"1", OPEN_ACL_UNSAFE), SetDataTxn("/app", b"hello2", 1)]),
        ),
        (SESSION, CreateTxn("/app/c/q-0000000001", b"2", OPEN_ACL_UNSAFE)),
        (SESSION, DeleteTxn("/app/c/q-0000000000")),
        (SESSION, SetACLTxn("/app/bin", [ACL(31, Id("world", "anyone")), ACL(1, Id("ip", "10.0.0.0/8"))], 1)),
        (0x99, CreateSessionTxn(10_000, b"q" * 16)),
        (0x99, CloseSessionTxn()),
    ]
    return [Txn(make(1, i), T0 + i, sid, i, op) for i, (sid, op) in enumerate(ops, start=1)]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_log(root / "version-1", sample_txns())
    return root


def run(*argv: str) -> int:
    return main(list(argv))


def read_file(path: Path) -> tuple[Header, list[Entry]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as stream:
        data = DataFile(stream, path.name)
        return data.header, list(data.entries())


# --- the format ---------------------------------------------------------------------------------


def test_the_file_streams_a_line_per_node_and_reads_back_the_same():
    header = Header(
        path="/a",
        source={"kind": "zoomq", "hosts": "h:1"},
        zxid=make(2, 5),
        created="2026-12-01T00:00:00.000Z",
        count=3,
        ephemerals=["/a/e"],
    )
    entries = [
        Entry("/a", None, OPEN_ACL_UNSAFE),
        Entry("/a/b", b"", SECRET, "container", version=4, cversion=7),
        Entry("/a/b/c", b"\x00\xff", READ_ACL_UNSAFE, "ttl", 9_000, ctime=T0, mtime=T0 + 1, aversion=2),
    ]
    text = b"".join(encode(header, entries)).decode()
    lines = text.splitlines()
    assert len(lines) == 5 and lines[0].endswith('"nodes":[') and lines[-1] == "]}"  # streamable: a line per node
    doc = json.loads(text)  # and one JSON document
    assert doc["zxid_hex"] == "0x2_00000005" and doc["skipped"]["ephemeral"] == {"count": 1, "paths": ["/a/e"]}
    assert doc["nodes"][0]["data"] is None and doc["nodes"][1]["data"] == ""  # null kept apart from ""
    assert doc["nodes"][2] == {
        "path": "/a/b/c",
        "data": "AP8=",
        "acl": [{"perms": 1, "scheme": "world", "id": "anyone"}],
        "type": "ttl",
        "ttl": 9000,
        "ctime": T0,
        "mtime": T0 + 1,
        "version": 0,
        "cversion": 0,
        "aversion": 2,
    }
    data = DataFile(io.StringIO(text))
    assert data.header.zxid == make(2, 5) and data.header.ephemerals == ["/a/e"]
    assert list(data.entries()) == entries
    pretty = json.dumps(doc, indent=2)  # another layout of the same document is read whole
    assert list(DataFile(io.StringIO(pretty)).entries()) == entries


def test_backup_of_a_data_dir_restore_into_an_empty_one_and_back_up_again(data_dir, tmp_path, capsys):
    out = tmp_path / "b.json.gz"
    assert run("backup", "--data-dir", str(data_dir), "--out", str(out), "--quiet") == 0
    assert "skipped 1 ephemeral" in capsys.readouterr().err
    header, entries = read_file(out)
    assert (
        header.zxid == make(1, 14) and header.source["kind"] == "zoomq-data-dir" and header.ephemerals == ["/app/eph"]
    )
    by_path = {e.path: e for e in entries}
    assert [e.path for e in entries][:4] == ["/", "/app", "/app/bin", "/app/c"]  # parents first, children by name
    assert by_path["/app"].data == b"hello2" and by_path["/app"].version == 1
    assert by_path["/app/none"].data is None and by_path["/app/empty"].data == b""
    assert by_path["/app/bin"].data == bytes(range(256)) and by_path["/app/bin"].aversion == 1
    assert (by_path["/app/c"].type, by_path["/app/t"].type, by_path["/app/t"].ttl) == ("container", "ttl", 60_000)
    assert by_path["/app/t"].acl == SECRET  # the real digest id: restorable
    restored = tmp_path / "restored"
    assert run("restore", str(out), "--data-dir", str(restored), "-q") == 0
    tree = load_state(restored / "version-1", log=structlog.get_logger())
    assert epoch_of(tree.last_zxid) == 2  # an epoch after the source's
    assert (restored / "version-1" / "currentEpoch").read_text().strip() == "2"
    for entry in entries:
        node = tree.get(entry.path)
        assert node is not None, entry.path
        assert (node.data, node.acl, node.version, node.aversion) == (
            entry.data,
            entry.acl,
            entry.version,
            entry.aversion,
        )
        assert node.ephemeral_owner == entry.owner and node.ctime == entry.ctime and node.mtime == entry.mtime
    assert tree.get("/app/eph") is None and tree.sessions == {}
    assert tree.nodes["/app/c"].creates >= 2  # the next sequential child is q-0000000002, past the restored names
    again = tmp_path / "again.json"
    assert run("backup", "--data-dir", str(restored), "--out", str(again), "-q") == 0
    _, entries2 = read_file(again)
    strip = [(e.path, e.data, e.acl, e.type, e.ttl, e.version, e.aversion, e.ctime, e.mtime) for e in entries]
    assert [(e.path, e.data, e.acl, e.type, e.ttl, e.version, e.aversion, e.ctime, e.mtime) for e in entries2] == strip


def test_a_subtree_backup_restores_under_its_own_path_with_its_parents_made(data_dir, tmp_path):
    out = tmp_path / "c.json"
    assert run("backup", "--data-dir", str(data_dir / "version-1"), "--path", "/app/c", "--out", str(out), "-q") == 0
    header, entries = read_file(out)
    assert header.path == "/app/c" and [e.path for e in entries] == ["/app/c", "/app/c/q-0000000001"]
    assert run("restore", str(out), "--data-dir", str(tmp_path / "r"), "-q") == 0
    tree = load_state(tmp_path / "r" / "version-1", log=structlog.get_logger())
    assert tree.get("/app").data == b"" and tree.get("/app/c/q-0000000001").data == b"2"


# --- bad input: one test per class --------------------------------------------------------------


def _file(tmp_path: Path, header: dict | None = None, nodes: list | None = None, raw: str | None = None) -> Path:
    path = tmp_path / "in.json"
    if raw is None:
        head = {"format": "zoomq-data", "version": 1, "path": "/", "zxid": None, "created": "", **(header or {})}
        nodes = nodes if nodes is not None else []
        head.setdefault("count", len(nodes))
        raw = json.dumps(head)[:-1] + ',"nodes":[\n' + ",\n".join(json.dumps(n) for n in nodes) + "\n]}\n"
    path.write_text(raw)
    return path


def _node(path: str, **kw) -> dict:
    return {
        "path": path,
        "data": base64.b64encode(b"v").decode(),
        "acl": [{"perms": 31, "scheme": "world", "id": "anyone"}],
        "type": "persistent",
        **kw,
    }


def _refused(tmp_path: Path, capsys, file: Path) -> str:
    """Restore `file` into an empty data dir: refused with exit 1, nothing written; the message."""
    target = tmp_path / "target"
    assert run("restore", str(file), "--data-dir", str(target), "-q") == 1
    assert not target.exists() or not any(target.iterdir())
    return capsys.readouterr().err


def test_bad_input_not_a_data_file_is_marshalling_error(tmp_path, capsys):
    err = _refused(tmp_path, capsys, _file(tmp_path, raw="this is not json\n"))
    assert "MarshallingError (-5)" in err and "not a zoomq data file" in err
    err = _refused(tmp_path, capsys, _file(tmp_path, raw='{"format": "something-else", "version": 1, "nodes": []}'))
    assert "MarshallingError (-5)" in err


def test_bad_input_a_truncated_file_is_marshalling_error(tmp_path, capsys):
    whole = _file(tmp_path, nodes=[_node("/"), _node("/a"), _node("/a/b")]).read_text()
    cut = whole[: whole.index('"/a/b"') - 12]  # in the middle of the list: no closing ]}
    err = _refused(tmp_path, capsys, _file(tmp_path, raw=cut))
    assert "MarshallingError (-5)" in err and "truncated" in err


def test_bad_input_a_newer_format_version_is_marshalling_error(tmp_path, capsys):
    err = _refused(tmp_path, capsys, _file(tmp_path, header={"version": 2}, nodes=[]))
    assert "MarshallingError (-5)" in err and "format version 2" in err


def test_bad_input_a_field_of_the_wrong_kind_is_marshalling_error(tmp_path, capsys):
    err = _refused(tmp_path, capsys, _file(tmp_path, nodes=[_node("/", version="one")]))
    assert "MarshallingError (-5)" in err and "version" in err and "in.json:2" in err  # the line of the node


def test_bad_input_data_that_is_not_base64_is_marshalling_error(tmp_path, capsys):
    err = _refused(tmp_path, capsys, _file(tmp_path, nodes=[_node("/", data="%%%not base64")]))
    assert "MarshallingError (-5)" in err and "base64" in err


def test_bad_input_an_invalid_path_is_bad_arguments(tmp_path, capsys):
    err = _refused(tmp_path, capsys, _file(tmp_path, nodes=[_node("/"), _node("/a//b")]))
    assert "BadArgumentsError (-8)" in err and "invalid path '/a//b'" in err


def test_bad_input_a_path_outside_the_files_subtree_is_bad_arguments(tmp_path, capsys):
    err = _refused(tmp_path, capsys, _file(tmp_path, header={"path": "/a"}, nodes=[_node("/a"), _node("/b")]))
    assert "BadArgumentsError (-8)" in err and "not under" in err


def test_bad_input_an_unknown_type_or_ttl_is_bad_arguments(tmp_path, capsys):
    err = _refused(tmp_path, capsys, _file(tmp_path, nodes=[_node("/"), _node("/e", type="ephemeral")]))
    assert "BadArgumentsError (-8)" in err and "ephemeral nodes are never restored" in err
    err = _refused(tmp_path, capsys, _file(tmp_path, nodes=[_node("/"), _node("/t", type="ttl")]))
    assert "BadArgumentsError (-8)" in err and "needs a ttl" in err


def test_bad_input_an_acl_zookeeper_refuses_is_invalid_acl(tmp_path, capsys):
    err = _refused(tmp_path, capsys, _file(tmp_path, nodes=[_node("/", acl=[])]))
    assert "InvalidACLError (-114)" in err
    bad_scheme = [{"perms": 31, "scheme": "auth", "id": ""}]  # "auth" names the creator: nobody, in a file
    err = _refused(tmp_path, capsys, _file(tmp_path, nodes=[_node("/", acl=bad_scheme)]))
    assert "InvalidACLError (-114)" in err


def test_bad_input_a_node_before_its_parent_is_no_node(tmp_path, capsys):
    err = _refused(tmp_path, capsys, _file(tmp_path, nodes=[_node("/"), _node("/a/b"), _node("/a")]))
    assert "NoNodeError (-101)" in err and "comes before its parent /a" in err


def test_bad_input_a_path_listed_twice_is_node_exists(tmp_path, capsys):
    err = _refused(tmp_path, capsys, _file(tmp_path, nodes=[_node("/"), _node("/a"), _node("/a")]))
    assert "NodeExistsError (-110)" in err and "listed twice" in err


def test_bad_input_a_data_dir_that_is_not_empty_is_refused(tmp_path, capsys):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "something").write_text("x")
    assert run("restore", str(_file(tmp_path, nodes=[_node("/")])), "--data-dir", str(target)) == 1
    assert "is not empty (holds something)" in capsys.readouterr().err
    assert sorted(p.name for p in target.iterdir()) == ["something"]


def test_bad_input_a_data_dir_a_running_node_holds_is_refused(data_dir, tmp_path, capsys):
    fd = os.open(data_dir / "zoomq.pid", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"4242\n")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the node's supervisor holds it
        assert run("backup", "--data-dir", str(data_dir), "--out", str(tmp_path / "x.json")) == 1
        err = capsys.readouterr().err
        assert "in use by a running zoomq node (pid 4242" in err
        assert not (tmp_path / "x.json").exists()
    finally:
        os.close(fd)
    assert run("backup", "--data-dir", str(data_dir), "--out", str(tmp_path / "x.json"), "-q") == 0  # released: fine


def test_bad_input_a_directory_without_zoomq_data_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for argv in (
        ["backup", "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "o.json")],
        ["log", "dump", str(tmp_path / "empty")],
        ["snapshot", "dump", str(tmp_path / "nowhere")],
    ):
        assert run(*argv) == 1
        err = capsys.readouterr().err
        assert "not a zoomq data dir" in err or "no such directory" in err


def test_bad_input_a_missing_subtree_of_a_data_dir_is_no_node(data_dir, tmp_path, capsys):
    assert run("backup", "--data-dir", str(data_dir), "--path", "/nope", "--out", str(tmp_path / "o.json")) == 1
    assert "NoNodeError (-101)" in capsys.readouterr().err
    assert run("backup", "--data-dir", str(data_dir), "--path", "bad", "--out", str(tmp_path / "o.json")) == 2
    assert "BadArgumentsError (-8)" in capsys.readouterr().err


# --- log and snapshot dumps ---------------------------------------------------------------------


def test_log_dump_shows_every_txn_readably_and_as_json(data_dir, capsys):
    assert run("log", "dump", str(data_dir)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("log.0000000100000001 (first zxid 0x1_00000001")
    assert "zxid 0x1_00000001 session 0x1234 cxid 1 createSession timeout=10000ms" in out[1]
    assert any("create /app data='hello' acl=[world:anyone:cdrwa] persistent" in line for line in out)
    assert any("create /app/t data='t' acl=[digest:bob:" in line and "ttl=60000ms" in line for line in out)
    assert any("create /app/eph" in line and "ephemeral owner=0x1234" in line for line in out)
    binary = next(line for line in out if "create /app/bin" in line)
    assert "data=0x000102" in binary  # not printable: hex, cut
    multi = out.index(next(line for line in out if "multi 2 ops" in line))
    assert out[multi + 1].startswith("    create /app/c/q-0000000000") and out[multi + 2].startswith("    setData /app")
    assert out[-1] == "14 txns in 1 log files, 0x1_00000001 .. 0x1_0000000e"
    assert run("log", "dump", str(data_dir / "version-1"), "--json") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    txns = [r for r in rows if r["type"] == "txn"]
    assert len(txns) == 14 and txns[2]["op"]["data"] == base64.b64encode(bytes(range(256))).decode()
    assert txns[3]["op"]["data"] is None and rows[-1] == {
        "type": "end",
        "files": 1,
        "txns": 14,
        "first_zxid": make(1, 1),
        "last_zxid": make(1, 14),
        "torn": None,
    }


def test_log_dump_reports_a_torn_tail_instead_of_failing(data_dir, capsys):
    (log_file,) = sorted((data_dir / "version-1").glob("log.*"))
    size = log_file.stat().st_size
    with open(log_file, "ab") as f:
        f.write(b"\x00\x00\x01\x00\xde\xad\xbe\xef" + b"partial")  # a record cut short by a crash
    assert run("log", "dump", str(data_dir)) == 0
    captured = capsys.readouterr()
    assert f"torn tail: {log_file.name} at offset {size}: torn record; 15 bytes after it" in captured.out
    assert "Traceback" not in captured.out + captured.err
    assert captured.out.splitlines()[-1].endswith("; torn tail")
    assert run("log", "dump", str(data_dir), "--json") == 0
    torn = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"torn"' in line][0]
    assert torn == {"type": "torn", "file": log_file.name, "offset": size, "reason": "torn record", "bytes": 15}


def test_snapshot_dump_shows_sessions_znodes_stats_and_data_and_skips_a_corrupt_newest(data_dir, tmp_path, capsys):
    tree = load_state(data_dir / "version-1", log=structlog.get_logger())
    snapshots.write_snapshot(data_dir / "version-1", tree.last_zxid, tree.to_snapshot())
    assert run("snapshot", "dump", str(data_dir)) == 0
    out = capsys.readouterr().out
    assert "snapshot.000000010000000e: zxid 0x1_0000000e, snapshot format 2, 1 sessions" in out
    assert "0x1234 timeout 10000 ms, 1 ephemerals" in out
    assert "/app/none\n" in out and "  data = null" in out
    assert "ephemeralOwner = 0x8000000000000000 (container)" in out
    assert "/app\n  cZxid = 0x1_00000002" in out and "data = 'hello2'" in out
    assert run("snapshot", "dump", str(data_dir), "--json") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["type"] == "snapshot" and rows[0]["sessions"] == [
        {"id": "0x1234", "timeout_ms": 10000, "ephemerals": 1}
    ]
    nodes = {r["path"]: r for r in rows[1:]}
    assert nodes["/app/bin"]["data"] == base64.b64encode(bytes(range(256))).decode()
    assert nodes["/app"]["stat"]["version"] == 1 and nodes["/app"]["stat"]["numChildren"] == 6
    newer = data_dir / "version-1" / f"snapshot.{make(1, 20):016x}"
    whole = snapshots.HEADER.pack(snapshots.MAGIC, snapshots.VERSION, make(1, 20)) + tree.to_snapshot()
    newer.write_bytes(whole[: len(whole) // 2])  # a torn newer snapshot: reported, the older one shown
    assert run("snapshot", "dump", str(data_dir)) == 0
    captured = capsys.readouterr()
    assert f"skipped {newer.name}: invalid snapshot" in captured.err and "zxid 0x1_0000000e" in captured.out
    assert run("snapshot", "dump", str(newer)) == 1  # named: refused, not shown
    assert "invalid snapshot" in capsys.readouterr().err


def test_import_from_zookeeper_without_kazoo_says_what_to_install(tmp_path, capsys, monkeypatch):
    for name in ("kazoo", "kazoo.client", "kazoo.exceptions"):
        monkeypatch.setitem(sys.modules, name, None)  # as if the `migrate` extra were not installed
    assert run("import", "zk://127.0.0.1:2181/app", "--out", str(tmp_path / "o.json")) == 1
    assert "reading ZooKeeper needs kazoo: pip install 'zoomq[migrate]'" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()
