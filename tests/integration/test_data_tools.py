"""The data tools against real nodes, through the command line: `zoomq backup` (live, one
consistent GetSubtree; offline, a stopped node's data dir), `zoomq restore` (into an empty data
dir a node then serves; into a running node under a path), `zoomq export` / `zoomq import FILE`,
`zoomq log dump` / `zoomq snapshot dump` on a node's real files, and the errors a node's refusals
become (kazoo names, ZooKeeper codes)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from actors.protocol.txn import CONTAINER_OWNER, ttl_of
from tests_support import asyncio_client
from zoomq.datafile import Entry, Header, encode
from zoomq.exceptions import BadArgumentsError
from zoomq.security import ACL, OPEN_ACL_UNSAFE, Id, Permissions, make_digest_acl
from zoomq.testing import ZoomqServer, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
BOB = ("digest", "bob:pw")
BOB_ALL = make_digest_acl("bob", "pw", all=True)
LOCKED_ACL = [ACL(Permissions.READ, Id("world", "anyone")), BOB_ALL]  # nobody but bob may create children


def cli(*argv: str, timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zoomq", *argv], capture_output=True, text=True, timeout=timeout)


def populate(zk) -> None:
    """Every kind of znode a backup must carry (and an ephemeral it must not)."""
    zk.create("/app", b"v0")
    zk.set("/app", b"v1")
    zk.set("/app", b"hello")  # version 2
    zk.create("/app/none", None)
    zk.create("/app/empty", b"")
    zk.create("/app/bin", bytes(range(256)))
    zk.create("/app/c", b"box", container=True)
    for _ in range(3):
        zk.create("/app/c/q-", b"job", sequence=True)
    zk.delete("/app/c/q-0000000000")
    zk.create("/app/t", b"ttl", ttl=3_600_000)
    zk.create("/app/locked", b"l")
    zk.create("/app/locked/k1", b"k1")
    zk.create("/app/locked/k1/deep", b"d")
    zk.set_acls("/app/locked", LOCKED_ACL)  # aversion 1
    zk.create("/app/secret", b"s", acl=[BOB_ALL])
    zk.create("/app/secret/inner", b"i")
    zk.create("/app/eph", b"e", ephemeral=True)


def shape(client, path: str) -> dict[str, tuple]:
    """{path relative to `path`: (data, ACL, type, version, aversion)} of a subtree, read in one step."""
    out = {}
    for node in client.get_subtree(path).nodes:
        owner = node.stat.ephemeralOwner
        kind = "container" if owner == CONTAINER_OWNER else f"ttl={ttl_of(owner)}" if ttl_of(owner) else "persistent"
        out[node.path[len(path) :] or "/"] = (node.data, node.acl, kind, node.stat.version, node.stat.aversion)
    return out


def nodes_of(path: Path) -> list[dict]:
    """The node lines of a data file (one JSON object a line, between the header and the end)."""
    return [json.loads(line.rstrip().rstrip(",")) for line in path.read_text().splitlines()[1:-1]]


def header_of(path: Path) -> dict:
    with open(path) as f:
        return json.loads(f.readline().rstrip() + "]}")


def test_backup_then_restore_into_a_new_data_dir_that_a_node_serves(node, tmp_path):
    zk = node.client(auth_data=[BOB])
    populate(zk)
    zk.set_quota("/app", count_hard=1_000)
    out = tmp_path / "backup.json"
    done = cli("backup", node.hosts, "--out", str(out), "--auth", "digest:bob:pw")
    assert done.returncode == 0, done.stderr
    assert "skipped 1 ephemeral" in done.stderr
    head = header_of(out)
    assert head["source"] == {"kind": "zoomq", "hosts": node.hosts} and head["zxid"] > 0
    assert head["skipped"]["ephemeral"] == {"count": 1, "paths": ["/app/eph"]} and head["skipped"]["unreadable"] == 0
    before = shape(zk, "/app")
    restored_dir = tmp_path / "restored"
    done = cli("restore", str(out), "--data-dir", str(restored_dir))
    assert done.returncode == 0, done.stderr
    restored = ZoomqServer(data_dir=restored_dir)
    restored.start()
    try:
        again = restored.client(auth_data=[BOB])
        after = shape(again, "/app")
        assert after == before  # data, ACL, type, versions (the ephemeral was never in it)
        assert after["/"][3] == 2 and after["/locked"][4] == 1
        assert after["/none"][0] is None and after["/empty"][0] == b""
        assert again.exists("/app/eph") is None
        _, stat = again.get("/app/t")
        assert (stat.ctime, stat.mtime) == zk.get("/app/t")[1][2:4]  # the Stat's times kept
        limits, usage = again.get_quota("/app")  # quotas (under /zookeeper/quota) came along, usage recounted
        assert limits.count_hard == 1_000 and usage.count == len(after)
        # Sequence numbers go on after the restored names.
        assert again.create("/app/c/q-", b"new", sequence=True) == "/app/c/q-0000000003"
        again.set("/app", b"next", version=2)  # versions kept: a conditional write still works
    finally:
        restored.stop()


def test_restore_into_a_running_node_under_another_path_and_its_node_exists_report(node, tmp_path):
    zk = node.client(auth_data=[BOB])
    populate(zk)
    out = tmp_path / "app.json"
    assert cli("backup", f"{node.hosts}/app", "--out", str(out), "--auth", "digest:bob:pw").returncode == 0
    done = cli("restore", str(out), "--to", f"{node.hosts}/copies/app", "--auth", "digest:bob:pw")
    assert done.returncode == 0, done.stderr
    original, copy = shape(zk, "/app"), shape(zk, "/copies/app")
    assert set(copy) == set(original) - {"/eph"}
    for path, (data, acl, kind, _version, _aversion) in copy.items():
        assert (data, acl, kind) == original[path][:3], path  # new nodes: versions start over
    assert zk.get_acls("/copies/app/locked")[0] == LOCKED_ACL  # its own ACL, given once its children were made
    assert zk.get("/copies/app/locked/k1/deep")[0] == b"d"
    zk.set("/copies/app/empty", b"changed")
    done = cli("restore", str(out), "--to", f"{node.hosts}/copies/app", "--auth", "digest:bob:pw")
    assert done.returncode == 1
    assert "NodeExistsError (-110): /copies/app (kept as it is)" in done.stderr
    assert f"{len(copy)} existed (kept; --overwrite sets their data)" in done.stderr
    assert zk.get("/copies/app/empty")[0] == b"changed"
    done = cli("restore", str(out), "--to", f"{node.hosts}/copies/app", "--auth", "digest:bob:pw", "--overwrite")
    assert done.returncode == 0, done.stderr
    assert zk.get("/copies/app/empty")[0] == b"" and "(data set)" in done.stderr


def test_a_backup_is_consistent_at_its_zxid_while_writes_go_on(node):
    zk = node.client()
    zk.create("/pair", b"")
    zk.create("/pair/a", b"0")
    zk.create("/pair/b", b"0")
    writer = node.client()
    stop = threading.Event()
    written = []

    def write() -> None:
        i = 0
        while not stop.is_set() and i < 20_000:
            i += 1
            tx = writer.transaction()
            tx.set_data("/pair/a", str(i).encode())
            tx.set_data("/pair/b", str(i).encode())
            tx.commit()
            written.append(i)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        seen = set()
        reads = 0
        while len(seen) < 20 and reads < 20_000:  # until reads fell between many writes (bounded)
            reads += 1
            result = zk.get_subtree("/pair")
            values = {n.path: n.data for n in result.nodes}
            assert values["/pair/a"] == values["/pair/b"]  # never one write's half
            assert all(n.stat.mzxid <= result.zxid for n in result.nodes)
            seen.add(values["/pair/a"])
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive() and written
    assert len(seen) >= 20  # the writes did go on meanwhile


def test_the_asyncio_client_reads_a_subtree_too(node):
    node.client().create("/aio/x", b"1", makepath=True)
    with asyncio_client(node.hosts) as client:
        result = client.get_subtree("/aio")
    assert [n.path for n in result.nodes] == ["/aio", "/aio/x"] and result.zxid > 0


def test_a_stopped_nodes_data_dir_backs_up_as_the_live_node_did_and_a_running_one_is_refused(tmp_path):
    server = ZoomqServer(data_dir=tmp_path / "data", snapshot_every=50)
    server.start()
    try:
        zk = server.client()
        zk.create("/n", b"")
        for i in range(120):  # a snapshot, and log after it
            zk.create(f"/n/{i:03d}", f"value {i}".encode())
        live = tmp_path / "live.json"
        assert cli("backup", server.hosts, "--path", "/n", "--out", str(live)).returncode == 0
        refused = cli("backup", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "x.json"))
        assert refused.returncode == 1 and "in use by a running zoomq node" in refused.stderr
        assert not (tmp_path / "x.json").exists()
        wait_for(
            lambda: any((tmp_path / "data" / "version-1").glob("snapshot.*")), timeout=30, what="a snapshot written"
        )
        snap = cli("snapshot", "dump", str(tmp_path / "data"))
        log = cli("log", "dump", str(tmp_path / "data" / "version-1"), "--json")
    finally:
        server.stop()
    offline = tmp_path / "offline.json"
    done = cli("backup", "--data-dir", str(tmp_path / "data"), "--path", "/n", "--out", str(offline))
    assert done.returncode == 0, done.stderr
    assert nodes_of(offline) == nodes_of(live) and len(nodes_of(live)) == 121
    assert header_of(offline)["zxid"] >= header_of(live)["zxid"]  # (sessions closed since)
    assert snap.returncode == 0 and "/n/000\n" in snap.stdout and "data = 'value 0'" in snap.stdout
    rows = [json.loads(line) for line in log.stdout.splitlines()]
    creates = [r["op"]["path"] for r in rows if r["type"] == "txn" and r["op"]["op"] == "create"]
    assert "/n/119" in creates and rows[-1]["type"] == "end" and rows[-1]["torn"] is None


def test_export_and_import_of_a_file_move_a_subtree(node, tmp_path):
    zk = node.client()
    zk.create("/src/a/b", b"x", makepath=True)
    zk.create("/src/c", b"y", container=True)
    out = tmp_path / "export.json.gz"
    done = cli("export", f"{node.hosts}/src", "--out", str(out))
    assert done.returncode == 0, done.stderr
    done = cli("import", str(out), "--to", f"{node.hosts}/dst")
    assert done.returncode == 0, done.stderr
    assert shape(zk, "/dst") == shape(zk, "/src")
    assert zk.get("/dst/a/b")[0] == b"x" and zk.exists("/dst/c").ephemeralOwner == CONTAINER_OWNER


def test_backup_errors_say_the_zookeeper_error(node, tmp_path):
    zk = node.client(auth_data=[BOB])
    populate(zk)
    out = str(tmp_path / "o.json")
    missing = cli("backup", node.hosts, "--path", "/nope", "--out", out)
    assert missing.returncode == 1 and "NoNodeError (-101)" in missing.stderr
    denied = cli("backup", node.hosts, "--path", "/app/secret", "--out", out)
    assert denied.returncode == 1 and "NoAuthError (-102)" in denied.stderr
    partial = cli("backup", node.hosts, "--path", "/app", "--out", out)  # without bob: some left out, said
    assert partial.returncode == 0
    assert "1 nodes the session may not READ were left out" in partial.stderr
    assert "digest ACL ids were shown as user:x" in partial.stderr  # /app/locked: no ADMIN for anyone
    assert header_of(Path(out))["skipped"]["unreadable"] == 1
    unreachable = cli("backup", "127.0.0.1:1", "--out", out, "--connect-timeout", "2")
    assert unreachable.returncode == 1 and "cannot connect to 127.0.0.1:1" in unreachable.stderr
    twice = cli("backup", f"{node.hosts}/app", "--path", "/app", "--out", out)
    assert twice.returncode == 2 and "given twice" in twice.stderr


def test_restore_errors_say_the_zookeeper_error_and_where(node, tmp_path):
    zk = node.client()
    zk.create("/src/a", b"x", makepath=True)
    zk.create("/closed", b"", acl=[ACL(Permissions.READ, Id("world", "anyone"))])
    out = tmp_path / "src.json"
    assert cli("backup", f"{node.hosts}/src", "--out", str(out)).returncode == 0
    denied = cli("restore", str(out), "--to", f"{node.hosts}/closed/src")
    assert denied.returncode == 1 and "NoAuthError (-102)" in denied.stderr and "/closed/src" in denied.stderr
    zk.create("/eph-parent", b"", ephemeral=True)
    under_eph = cli("restore", str(out), "--to", f"{node.hosts}/eph-parent/src")
    assert under_eph.returncode == 1 and "NoChildrenForEphemeralsError (-108)" in under_eph.stderr
    big = tmp_path / "big.json"  # a value over the node's max_data_bytes (1 MiB), among others in its batch
    entries = [
        Entry("/big", b"", OPEN_ACL_UNSAFE),
        *(Entry(f"/big/n{i}", b"x", OPEN_ACL_UNSAFE) for i in range(5)),
        Entry("/big/huge", b"y" * ((1 << 20) + 1), OPEN_ACL_UNSAFE),
    ]
    entries.sort(key=lambda e: e.path)
    big.write_bytes(b"".join(encode(Header("/big", {}, None, "", len(entries)), entries)))
    oversize = cli("restore", str(big), "--to", node.hosts)
    assert (
        oversize.returncode == 1
        and "BadArgumentsError (-8): /big/huge (a value over the node's max_data_bytes?)" in oversize.stderr
    )


def test_a_subtree_above_the_nodes_bound_is_refused_with_bad_arguments(tmp_path):
    server = ZoomqServer(data_dir=tmp_path / "data", backup_max_znodes=10)
    server.start()
    try:
        zk = server.client()
        for i in range(12):
            zk.create(f"/big/n{i}", b"", makepath=True)
        with pytest.raises(BadArgumentsError):
            zk.get_subtree("/big")
        done = cli("backup", server.hosts, "--path", "/big", "--out", str(tmp_path / "o.json"))
        assert done.returncode == 1
        assert "BadArgumentsError (-8): /big holds 13 znodes, more than the node's backup_max_znodes" in done.stderr
        assert len(zk.get_subtree("/big/n1").nodes) == 1
    finally:
        server.stop()
