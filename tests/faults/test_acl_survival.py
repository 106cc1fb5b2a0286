"""ACLs are part of snapshots: a node restarted from a snapshot (not only from its log) has them and
enforces them (test_acl_failover.py covers restarts from the log, SIGKILL and leader failover)."""

from __future__ import annotations

import pytest

from zoomq.exceptions import NoAuthError
from zoomq.security import make_acl, make_digest_acl
from zoomq.testing import ZoomqServer, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]

ALICE = make_digest_acl("alice", "secret", all=True)
READERS = make_digest_acl("bob", "pw", read=True)


def _secure_tree(zk) -> dict[str, list]:
    zk.add_auth("digest", "alice:secret")
    wanted = {
        "/vault": [ALICE],
        "/vault/shared": [ALICE, READERS],
        "/local-only": [make_acl("ip", "127.0.0.1", read=True, write=True), ALICE],
    }
    for path, acl in wanted.items():
        zk.create(path, path.encode(), acl=acl)
    zk.set_acls("/vault/shared", [ALICE, READERS])  # aversion 1: the set is logged too
    return wanted


def _check(node_client, wanted: dict[str, list]) -> None:
    stranger = node_client()
    for path in ("/vault", "/vault/shared"):
        with pytest.raises(NoAuthError):
            stranger.get(path)
    assert stranger.get("/local-only")[0] == b"/local-only"  # ip 127.0.0.1
    bob = node_client(auth_data=[("digest", "bob:pw")])
    assert bob.get("/vault/shared")[0] == b"/vault/shared"
    with pytest.raises(NoAuthError):
        bob.set("/vault/shared", b"no")
    alice = node_client(auth_data=[("digest", "alice:secret")])
    for path, acl in wanted.items():
        acls, stat = alice.get_acls(path)
        assert sorted(acls) == sorted(acl), path
    assert alice.get_acls("/vault/shared")[1].aversion == 1


@pytest.mark.parametrize("how", ["from-snapshot"])
def test_acls_survive_a_standalone_restart(tmp_path, how):
    extra = {"snapshot_every": 5} if how == "from-snapshot" else {}
    node = ZoomqServer(data_dir=tmp_path / "data", **extra)
    node.start()
    try:
        wanted = _secure_tree(node.client())
        if how == "from-snapshot":
            zk = node.client()
            for i in range(12):  # past the snapshot interval: the ACLs then come from a snapshot
                zk.create(f"/filler{i}", b"")
            wait_for(lambda: any((tmp_path / "data" / "version-1").glob("snapshot.*")), timeout=30, what="a snapshot")
        if how == "sigkill":
            node.kill()
            node.start()
        else:
            node.restart()
        _check(lambda **kw: node.client(**kw), wanted)
    finally:
        node.stop()
