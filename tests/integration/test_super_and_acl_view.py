"""The configured super user bypasses every ACL; getACL shows digests only to ADMIN holders."""

from __future__ import annotations

import pytest

from zoomq import Client
from zoomq.exceptions import NoAuthError
from zoomq.security import Permissions, make_acl, make_digest_acl, make_digest_acl_credential
from zoomq.testing import ZoomqServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def secured(tmp_path):
    server = ZoomqServer(data_dir=tmp_path / "d", super_digest=make_digest_acl_credential("super", "test")).start()
    yield server
    server.stop()


def _client(server: ZoomqServer, *auth: tuple[str, str]) -> Client:
    return server.client(auth_data=list(auth))


def test_super_user_bypasses_every_acl(secured):
    alice = _client(secured, ("digest", "alice:pw"))
    alice.create("/private", b"secret", acl=[make_digest_acl("alice", "pw", all=True)])
    alice.create("/private/kid", b"", acl=[make_digest_acl("alice", "pw", all=True)])
    nobody = _client(secured)
    with pytest.raises(NoAuthError):
        nobody.get("/private")
    wrong = _client(secured, ("digest", "super:wrong"))
    with pytest.raises(NoAuthError):
        wrong.get("/private")
    root = _client(secured, ("digest", "super:test"))
    assert root.get("/private")[0] == b"secret"
    root.set("/private", b"changed")
    root.set_acls("/private", [make_digest_acl("alice", "pw", all=True), make_acl("world", "anyone", read=True)])
    root.delete("/private/kid")
    assert nobody.get("/private")[0] == b"changed"


def test_super_is_off_unless_configured(node):
    alice = node.client(auth_data=[("digest", "alice:pw")])
    alice.create("/mine", b"", acl=[make_digest_acl("alice", "pw", all=True)])
    root = node.client(auth_data=[("digest", "super:test")])
    with pytest.raises(NoAuthError):
        root.get("/mine")


def test_get_acls_masks_digests_without_admin(node):
    alice = node.client(auth_data=[("digest", "alice:pw")])
    acl = [make_digest_acl("alice", "pw", all=True), make_acl("world", "anyone", read=True)]
    alice.create("/shown", b"", acl=acl)
    full, _ = alice.get_acls("/shown")
    assert make_digest_acl_credential("alice", "pw") in {a.id.id for a in full}
    reader = node.client()
    masked, _ = reader.get_acls("/shown")
    ids = {a.id.id for a in masked}
    assert "alice:x" in ids and make_digest_acl_credential("alice", "pw") not in ids
    assert {a.perms for a in masked} == {Permissions.ALL, Permissions.READ}


def test_a_malformed_super_digest_is_a_config_error(tmp_path):
    from runtime.config import ConfigError, load

    with pytest.raises(ConfigError):
        load(None, super_digest="no-colon-here")


def test_add_auth_waits_for_the_verdict_and_a_bad_credential_is_terminal(node):
    from zoomq import KazooState
    from zoomq.exceptions import AuthFailedError, ZookeeperError

    zk = node.client()
    assert zk.add_auth("digest", "alice:pw") is True
    zk.create("/auth-ok", b"", acl=[make_digest_acl("alice", "pw", all=True)])
    assert zk.get("/auth-ok")[0] == b""
    with pytest.raises(AuthFailedError):
        zk.add_auth("sasl-not-here", "x")  # an unknown scheme is refused (digest accepts anything, as ZooKeeper)
    assert zk.state == KazooState.LOST
    with pytest.raises(ZookeeperError):
        zk.get("/auth-ok")  # the client is done, as kazoo's AUTH_FAILED
    other = node.client()
    assert "auth-ok" in other.get_children("/")  # the node serves everyone else
