"""ACLs through crashes and failover: what get_acls returns (entries and aversion) is identical
after the node comes back or the leader dies, and every entry is still enforced — a stranger is
refused, add_auth on a fresh session is let in exactly as far as its entry says, and a session that
authenticated before the fault keeps its rights after it reconnects (its credentials are replayed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from zoomq import Client, KazooState
from zoomq.exceptions import NoAuthError
from zoomq.security import ACL, Id, make_acl, make_digest_acl, make_digest_acl_credential
from zoomq.testing import ZoomqEnsemble, ZoomqServer, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]

READ, WRITE, CREATE, DELETE, ADMIN, ALL = 1, 2, 4, 8, 16, 31
ALICE = make_digest_acl("alice", "secret", all=True)
BOB_RW = make_digest_acl("bob", "pw", read=True, write=True)
CAROL_C = make_digest_acl("carol", "pw", create=True, read=True)
WORLD_READ = make_acl("world", "anyone", read=True)


@contextlib.contextmanager
def _clients() -> Iterator[Callable[..., Client]]:
    """Clients made for one check, each stopped at the end (whatever happened)."""
    made: list[Client] = []

    def make(hosts: str, *auth: tuple[str, str], **kw: Any) -> Client:
        client = Client(hosts=hosts, auth_data=list(auth), **kw)
        made.append(client)
        client.start(timeout=30)
        return client

    try:
        yield make
    finally:
        for client in made:
            with contextlib.suppress(Exception):
                client.stop()


def _build(alice: Client) -> list[str]:
    """A tree with every kind of entry, some set at create and some by set_acls (aversion > 0)."""
    alice.create("/vault", b"vault", acl=[ALICE])
    alice.create("/vault/shared", b"shared", acl=[ALICE])
    alice.set_acls("/vault/shared", [ALICE, make_digest_acl("bob", "pw", read=True)])
    alice.set_acls("/vault/shared", [ALICE, BOB_RW], version=1)  # aversion 2
    alice.create("/vault/mine", b"mine", acl=[ACL(ALL, Id("auth", ""))])  # expands to alice's digest
    alice.create("/vault/drop", b"drop", acl=[ALICE, CAROL_C])
    alice.create("/vault/drop/letter", b"", acl=[ALICE])
    alice.create("/net", b"net", acl=[make_acl("ip", "127.0.0.0/8", read=True), ALICE])
    alice.create("/net/far", b"far", acl=[make_acl("ip", "10.0.0.0/8", all=True), ALICE])
    tx = alice.transaction()  # ACLs written by a multi are logged state too
    tx.create("/pub", b"pub", acl=[WORLD_READ, ALICE])
    tx.create("/pub/deep", b"deep", acl=[ALICE, make_digest_acl("bob", "pw", admin=True)])
    tx.commit()
    return [
        "/vault",
        "/vault/shared",
        "/vault/mine",
        "/vault/drop",
        "/vault/drop/letter",
        "/net",
        "/net/far",
        "/pub",
        "/pub/deep",
    ]


def _acl_view(alice: Client, paths: list[str]) -> dict[str, tuple[list[ACL], int]]:
    """Each node's ACL as its ADMIN holder sees it (unmasked), with its aversion."""
    view = {}
    for path in paths:
        acls, stat = alice.get_acls(path)
        view[path] = (sorted(acls), stat.aversion)
    return view


def _expected_view() -> dict[str, tuple[list[ACL], int]]:
    alice_id = Id("digest", make_digest_acl_credential("alice", "secret"))
    return {
        "/vault": (sorted([ALICE]), 0),
        "/vault/shared": (sorted([ALICE, BOB_RW]), 2),
        "/vault/mine": ([ACL(ALL, alice_id)], 0),
        "/vault/drop": (sorted([ALICE, CAROL_C]), 0),
        "/vault/drop/letter": ([ALICE], 0),
        "/net": (sorted([make_acl("ip", "127.0.0.0/8", read=True), ALICE]), 0),
        "/net/far": (sorted([make_acl("ip", "10.0.0.0/8", all=True), ALICE]), 0),
        "/pub": (sorted([WORLD_READ, ALICE]), 0),
        "/pub/deep": (sorted([ALICE, make_digest_acl("bob", "pw", admin=True)]), 0),
    }


def _enforced(make: Callable[..., Client], hosts: str, tag: str) -> None:
    """Every entry of the tree still does what it says, for sessions opened now on `hosts`."""
    stranger = make(hosts)
    for path in ("/vault", "/vault/shared", "/vault/mine", "/vault/drop", "/net/far", "/pub/deep"):
        with pytest.raises(NoAuthError):
            stranger.get(path)
    assert stranger.get("/net")[0] == b"net"  # ip 127.0.0.0/8
    assert stranger.get("/pub")[0] == b"pub"  # world READ
    with pytest.raises(NoAuthError):
        stranger.set("/pub", b"no")
    with pytest.raises(NoAuthError):
        stranger.create(f"/vault/drop/{tag}-stranger", b"")

    bob = make(hosts)  # credentials given after the session is open
    with pytest.raises(NoAuthError):
        bob.get("/vault/shared")
    assert bob.add_auth("digest", "bob:pw") is True
    assert bob.get("/vault/shared")[0] == b"shared"
    bob.set("/vault/shared", b"shared")  # WRITE, from the second set_acls
    with pytest.raises(NoAuthError):
        bob.set_acls("/vault/shared", [BOB_RW])  # no ADMIN
    with pytest.raises(NoAuthError):
        bob.get("/vault/mine")
    assert bob.get_acls("/pub/deep")[0]  # ADMIN alone lets getACL through
    with pytest.raises(NoAuthError):
        bob.get("/pub/deep")

    carol = make(hosts, ("digest", "carol:pw"))
    carol.create(f"/vault/drop/{tag}-carol", b"")  # CREATE on the parent
    with pytest.raises(NoAuthError):
        carol.delete(f"/vault/drop/{tag}-carol")  # but no DELETE
    with pytest.raises(NoAuthError):
        carol.get("/vault/drop/letter")

    alice = make(hosts, ("digest", "alice:secret"))
    assert alice.get("/vault/mine")[0] == b"mine"  # the expanded auth entry
    alice.delete(f"/vault/drop/{tag}-carol")
    with pytest.raises(NoAuthError):
        make(hosts, ("digest", "alice:wrong")).get("/vault")


@pytest.mark.parametrize("how", ["stop-start", "sigkill"])
def test_acls_are_identical_and_enforced_after_a_standalone_restart(tmp_path, how):
    node = ZoomqServer(data_dir=tmp_path / "data")
    node.start()
    try:
        with _clients() as make:
            alice = make(node.hosts, ("digest", "alice:secret"))
            paths = _build(alice)
            before = _acl_view(alice, paths)
            assert before == _expected_view()
            # A session that authenticated with add_auth and stays open through the outage.
            keeper = make(node.hosts, timeout=30.0)
            keeper.add_auth("digest", "alice:secret")
            session = keeper.client_id
            assert keeper.get("/vault")[0] == b"vault"

            if how == "sigkill":
                node.kill()
            else:
                node.stop()
            assert not node.running
            node.start()

            wait_for(lambda: keeper.state == KazooState.CONNECTED, timeout=30, what="the keeper back")
            assert keeper.client_id == session, "the session did not survive the restart"
            assert keeper.get("/vault")[0] == b"vault"  # its credentials were replayed
            keeper.set("/vault", b"vault")

            fresh_alice = make(node.hosts, ("digest", "alice:secret"))
            assert _acl_view(fresh_alice, paths) == before
            _enforced(make, node.hosts, how)
            # And again after a second crash on top of the first (the restarted node's own log).
            node.kill()
            node.start()
            assert _acl_view(make(node.hosts, ("digest", "alice:secret")), paths) == before
            _enforced(make, node.hosts, how + "-2")
    finally:
        node.stop()


def _synced_view(make: Callable[..., Client], hosts: str, paths: list[str], want: dict) -> None:
    alice = make(hosts, ("digest", "alice:secret"))
    alice.sync("/")
    wait_for(lambda: _acl_view(alice, paths) == want, timeout=20, what=f"the ACLs on {hosts}")


def test_acls_are_identical_and_enforced_on_every_survivor_after_the_leaders_sigkill(tmp_path):
    with ZoomqEnsemble(3, base_dir=tmp_path / "ens") as ens, _clients() as make:
        leader = ens.leader()
        others = [n for n in ens.nodes if n is not leader]
        # The writer sits on the leader; so does a session that will have to move.
        on_leader = ",".join([leader.hosts, *(n.hosts for n in others)])
        alice = make(on_leader, ("digest", "alice:secret"), randomize_hosts=False, timeout=20.0)
        assert "Mode: leader" in alice.command("srvr")
        paths = _build(alice)
        before = _acl_view(alice, paths)
        assert before == _expected_view()
        mover = make(on_leader, randomize_hosts=False, timeout=20.0)
        mover.add_auth("digest", "bob:pw")
        assert "Mode: leader" in mover.command("srvr")
        assert mover.get("/vault/shared")[0] == b"shared"
        session = mover.client_id
        for node in others:  # replicated before the fault
            _synced_view(make, node.hosts, paths, before)

        leader.kill()
        new_leader = ens.wait_leader(exclude=leader)
        assert new_leader in others

        # The moved session kept its identity: its add_auth was replayed on the new node.
        mover.set("/vault/shared", b"shared")
        assert mover.client_id == session and mover.state == KazooState.CONNECTED
        with pytest.raises(NoAuthError):
            mover.get("/vault")
        for node in others:
            assert ens.role_of(node) in ("leader", "follower")
            _synced_view(make, node.hosts, paths, before)
            _enforced(make, node.hosts, f"n{node.port}")

        # An ACL change after the failover reaches the other survivor and is enforced there.
        writer, reader = others
        w = make(writer.hosts, ("digest", "alice:secret"))
        w.set_acls("/pub", [ALICE])
        after = dict(before, **{"/pub": ([ALICE], 1)})
        _synced_view(make, reader.hosts, paths, after)
        stranger = make(reader.hosts)
        stranger.sync("/pub")
        with pytest.raises(NoAuthError):
            stranger.get("/pub")
