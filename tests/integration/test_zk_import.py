"""`zoomq import zk://...`: a live Apache ZooKeeper 3.8 subtree of 10,000 znodes copied into zoomq
(data, ACLs, persistent, sequential under their final names, container and TTL nodes; ephemerals
listed and skipped), checked node by node. ZooKeeper runs standalone from the Debian package
(/usr/share/java/zookeeper.jar, as bench/targets.py finds it), on a free port with its own temp
data dir, and is stopped with its whole process tree by PID at the end. ZooKeeper 3.6+ shows its
clients container and TTL nodes as persistent ones: their types come from its data dir
(--zk-data-dir)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import namedtuple

import pytest

from bench.targets import ZooKeeperTarget, zookeeper_classpath
from zoomq.security import ACL, Id, Permissions, make_digest_acl

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(420),
    pytest.mark.skipif(
        zookeeper_classpath() is None,
        reason="Apache ZooKeeper or Java is not installed (apt-get install zookeeper; needs java on PATH)",
    ),
]
kazoo_client = pytest.importorskip("kazoo.client", reason="kazoo (the `migrate` extra) reads ZooKeeper")
from kazoo.protocol.serialization import Create2, long_struct  # noqa: E402
from kazoo.security import ACL as KACL  # noqa: E402
from kazoo.security import Id as KId  # noqa: E402
from kazoo.security import make_digest_acl as kazoo_digest_acl  # noqa: E402

DIRS, PER_DIR = 99, 100  # /mig + 99 dirs x (1 + 100 children) = 10,000 znodes
CONTAINER_OWNER = -(1 << 63)
TTL_MS = 3_600_000


class CreateContainer(Create2):
    """ZooKeeper's createContainer (opcode 19): what kazoo 2.11 has no method for."""

    type = 19


class CreateTTL(namedtuple("CreateTTL", "path data acl flags ttl")):
    """ZooKeeper's createTTL (opcode 21): Create2's fields and the TTL in ms."""

    type = 21

    def serialize(self) -> bytearray:
        out = Create2(self.path, self.data, self.acl, self.flags).serialize()
        out.extend(long_struct.pack(self.ttl))
        return out

    @classmethod
    def deserialize(cls, data, offset):
        return Create2.deserialize(data, offset)


def _call(zk, request):
    result = zk.handler.async_result()
    zk._call(request, result)
    return result.get(timeout=30)


@pytest.fixture
def zookeeper():
    target = ZooKeeperTarget(nodes=1, tick_ms=2000, heap_mb=512, extra_cfg={"extendedTypesEnabled": "true"})
    try:
        target.start(timeout=120)
        yield target
    finally:
        target.stop()  # SIGTERM, then SIGKILL of the whole tree by PID; its temp dir removed


def _fill(zk) -> dict[str, tuple]:
    """The source tree; returns what every non-ephemeral node must be: {path: (data, acl, type)}."""
    open_acl = [KACL(Permissions.ALL, KId("world", "anyone"))]
    bob = kazoo_digest_acl("bob", "pw", all=True)
    locked = [KACL(Permissions.READ, KId("world", "anyone")), bob]
    expected: dict[str, tuple] = {}

    def want(path, data, acl, kind="persistent"):
        expected[path] = (data, [ACL(a.perms, Id(a.id.scheme, a.id.id)) for a in acl], kind)

    zk.create("/mig", b"root")
    want("/mig", b"root", open_acl)
    pending = []
    for d in range(DIRS):
        acl = locked if d % 10 == 3 else [bob] if d % 10 == 7 else open_acl
        zk.create(f"/mig/d{d:02d}", f"dir {d}".encode())  # children first, then its ACL (ZooKeeper checks CREATE)
        want(f"/mig/d{d:02d}", f"dir {d}".encode(), acl)
        for i in range(PER_DIR):
            data = bytes([i, 0, 255]) if i % 5 == 0 else b"" if i % 7 == 0 else f"value {d}/{i}".encode()
            pending.append(zk.create_async(f"/mig/d{d:02d}/n{i:03d}", data))
            want(f"/mig/d{d:02d}/n{i:03d}", data, open_acl)
        if len(pending) > 2000:
            for result in pending:
                result.get(timeout=60)
            pending = []
    for result in pending:
        result.get(timeout=60)
    for d in range(DIRS):
        acl = locked if d % 10 == 3 else [bob] if d % 10 == 7 else open_acl
        if acl is not open_acl:
            zk.set_acls(f"/mig/d{d:02d}", acl)
    # Sequential (stored and restored under their final names), container, TTL, ephemerals.
    for _ in range(3):
        name = zk.create("/mig/d00/job-", b"seq", sequence=True)
        want(name, b"seq", open_acl)
    _call(zk, CreateContainer("/mig/d01/box", b"c", open_acl, 4))
    want("/mig/d01/box", b"c", open_acl, "container")
    zk.create("/mig/d01/box/in", b"i")
    want("/mig/d01/box/in", b"i", open_acl)
    _call(zk, CreateTTL("/mig/d02/ttl", b"t", open_acl, 5, TTL_MS))
    want("/mig/d02/ttl", b"t", open_acl, f"ttl={TTL_MS}")
    for i in range(3):
        zk.create(f"/mig/d04/eph{i}", b"e", ephemeral=True)
    # /mig/d00's 3 children more than the others, the container's child, the TTL node: and the
    # 9,999 + 1 above.
    assert len(expected) == 1 + DIRS * (1 + PER_DIR) + 3 + 2 + 1
    return expected


def test_a_live_zookeeper_subtree_of_10000_znodes_arrives_node_by_node(zookeeper, node, tmp_path):
    zk_hosts, zk_data = zookeeper.nodes()[0].hosts, zookeeper.nodes()[0].data_dir
    source = kazoo_client.KazooClient(hosts=zk_hosts, timeout=20, auth_data=[("digest", "bob:pw")])
    source.start(timeout=30)
    try:
        expected = _fill(source)
        out = tmp_path / "zk.json"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "zoomq",
                "import",
                f"zk://{zk_hosts}/mig",
                "--to",
                node.hosts,
                "--out",
                str(out),
                "--zk-auth",
                "digest:bob:pw",
                "--auth",
                "digest:bob:pw",
                "--zk-data-dir",
                str(zk_data),
            ],
            capture_output=True,
            text=True,
            timeout=360,
        )
        # Without ZooKeeper's files the types are not to be had (3.6+ shows them as persistent): said.
        plain = subprocess.run(
            [sys.executable, "-m", "zoomq", "import", f"zk://{zk_hosts}/mig/d01", "--to", f"{node.hosts}/plain"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        source.stop()
        source.close()
    assert done.returncode == 0, done.stderr[-3000:]
    assert "types from ZooKeeper's files: 1 container and 1 TTL nodes in the subtree" in done.stderr
    assert f"read {len(expected)} znodes of ZooKeeper {zk_hosts} /mig (skipped 3 ephemeral)" in done.stderr
    for i in range(3):
        assert f"skipped ephemeral /mig/d04/eph{i}" in done.stderr
    with open(out) as f:
        head = json.loads(f.readline().rstrip() + "]}")
    assert head["source"] == {"kind": "zookeeper", "hosts": zk_hosts} and head["zxid"] is None
    assert head["count"] == len(expected) and head["skipped"]["ephemeral"]["count"] == 3
    zk = node.client(auth_data=[("digest", "bob:pw")])
    arrived = {}
    for n in zk.get_subtree("/mig").nodes:
        owner = n.stat.ephemeralOwner
        ttl = (owner & ((1 << 40) - 1)) if owner < 0 and owner != CONTAINER_OWNER else None
        kind = "container" if owner == CONTAINER_OWNER else f"ttl={ttl}" if ttl else "persistent"
        arrived[n.path] = (n.data, n.acl, kind)
    assert len(arrived) == len(expected)
    wrong = [path for path, want in expected.items() if arrived.get(path) != want]
    assert not wrong, [(path, expected[path], arrived.get(path)) for path in wrong[:5]]
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert "give --zk-data-dir DIR" in plain.stderr and zk.get("/plain/box")[0] == b"c"
    assert zk.get_acls("/mig/d03")[0] == [
        ACL(Permissions.READ, Id("world", "anyone")),
        make_digest_acl("bob", "pw", all=True),
    ]
