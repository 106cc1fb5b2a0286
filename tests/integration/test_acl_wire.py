"""Every permission bit, denied and granted, for every operation it guards — over the wire, on a
real node — and random ACLs and credentials that must only ever get clean errors."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zoomq.exceptions import (
    AuthFailedError,
    BadArgumentsError,
    InvalidACLError,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
)
from zoomq.security import ACL, Id, make_digest_acl, make_digest_acl_credential
from zoomq.testing import ZoomqServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

READ, WRITE, CREATE, DELETE, ADMIN, ALL = 1, 2, 4, 8, 16, 31
OWNER = make_digest_acl("owner", "pw", all=True)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    server = ZoomqServer(data_dir=tmp_path_factory.mktemp("acl") / "data")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def owner(node):
    return node.client(auth_data=[("digest", "owner:pw")])


@pytest.fixture(scope="module")
def user(node):
    return node.client(auth_data=[("digest", "user:pw")])


def _user_acl(perms: int) -> list[ACL]:
    # The owner keeps ALL so that setup and cleanup work; the user gets exactly `perms`.
    return [OWNER, ACL(perms, Id("digest", make_digest_acl_credential("user", "pw")))]


# op -> (the bit it needs, which node carries the ACL, the call)
OPS = {
    "get": (READ, "node", lambda zk, n: zk.get(n)),
    "get_children": (READ, "node", lambda zk, n: zk.get_children(n)),
    "exists": (READ, "node", lambda zk, n: zk.exists(n)),  # on an existing node, as ZooKeeper 3.8.4+
    "get_acls": (READ, "node", lambda zk, n: zk.get_acls(n)),  # READ or ADMIN (3.8)
    "set": (WRITE, "node", lambda zk, n: zk.set(n, b"new")),
    "create": (CREATE, "parent", lambda zk, n: zk.create(n + "/kid", b"")),
    "delete": (DELETE, "parent", lambda zk, n: zk.delete(n + "/victim")),
    "set_acls": (ADMIN, "node", lambda zk, n: zk.set_acls(n, _user_acl(ALL))),
    "multi-set": (WRITE, "node", lambda zk, n: _multi_set(zk, n)),
    "multi-create": (CREATE, "parent", lambda zk, n: _multi_create(zk, n)),
}


def _multi_set(zk, n):
    t = zk.transaction()
    t.set_data(n, b"via multi")
    results = t.commit()
    if isinstance(results[0], Exception):
        raise results[0]
    return results


def _multi_create(zk, n):
    t = zk.transaction()
    t.create(n + "/viamulti", b"")
    results = t.commit()
    if isinstance(results[0], Exception):
        raise results[0]
    return results


def _prepare(owner, path: str, perms: int) -> None:
    owner.create(path, b"data", acl=_user_acl(perms))
    owner.create(path + "/victim", b"", acl=[OWNER])


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("granted", [True, False], ids=["granted", "denied"])
def test_each_bit_guards_its_operation(owner, user, op, granted):
    bit, _, call = OPS[op]
    path = f"/m-{op}-{'g' if granted else 'd'}"
    perms = bit if granted else ALL & ~bit
    if op == "get_acls" and not granted:
        perms = ALL & ~(READ | ADMIN)  # either bit is enough for getACL
    _prepare(owner, path, perms)
    if granted:
        call(user, path)
    else:
        with pytest.raises(NoAuthError):
            call(user, path)
    # What was denied did not happen.
    if not granted:
        assert owner.get(path)[0] == b"data"
        assert owner.exists(path + "/victim") is not None
        assert owner.exists(path + "/kid") is None


def test_exists_of_a_missing_node_needs_no_permission_and_admin_alone_allows_get_acls(owner, user):
    owner.create("/m-none", b"", acl=_user_acl(0))
    assert user.exists("/m-none/missing") is None
    owner.create("/m-admin", b"", acl=_user_acl(ADMIN))
    acls, _ = user.get_acls("/m-admin")
    assert len(acls) == 2


def test_world_auth_ip_schemes(node, owner, user):
    owner.create("/s-world", b"", acl=[ACL(READ, Id("world", "anyone"))])
    assert node.client().get("/s-world")[0] == b""
    with pytest.raises(NoAuthError):
        node.client().set("/s-world", b"x")
    # auth: every id the creating session has authenticated with
    owner.create("/s-auth", b"", acl=[ACL(ALL, Id("auth", ""))])
    assert owner.get_acls("/s-auth")[0] == [OWNER]
    with pytest.raises(NoAuthError):
        user.get("/s-auth")
    with pytest.raises(InvalidACLError):
        node.client().create("/s-auth-none", b"", acl=[ACL(ALL, Id("auth", ""))])  # no ids to give
    # ip: the connection's real address, CIDR too
    for ident, allowed in (("127.0.0.1", True), ("127.0.0.0/8", True), ("10.0.0.0/8", False), ("::1/128", False)):
        path = "/s-ip-" + ident.replace("/", "_").replace(":", "_")
        owner.create(path, b"", acl=[ACL(READ, Id("ip", ident)), OWNER])
        if allowed:
            assert node.client().get(path)[0] == b""
        else:
            with pytest.raises(NoAuthError):
                node.client().get(path)


_SCHEMES = st.sampled_from(["world", "auth", "digest", "ip", "super", "", "x509", "wOrLd", "\u00e9"])
_IDS = st.one_of(
    st.sampled_from(["anyone", "", "user:abc=", "u:" + "A" * 27 + "=", "127.0.0.1", "10.0.0.0/33", "::1/129",
                     "1.2.3.4/-1", "::ffff:1.2.3.4", "not-an-ip", "user", ":", "a:b:c"]),
    st.text(max_size=20),
)
_PERMS = st.one_of(st.integers(min_value=-5, max_value=40), st.sampled_from([0, 31, 2**31 - 1, -(2**31)]))
_ACLS = st.lists(st.builds(lambda p, s, i: ACL(p, Id(s, i)), _PERMS, _SCHEMES, _IDS), max_size=4)
CLEAN = (InvalidACLError, NoAuthError, AuthFailedError, BadArgumentsError, NoNodeError, NodeExistsError)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(acl=_ACLS, scheme=_SCHEMES, credential=_IDS, n=st.integers(0, 10**9))
def test_random_acls_and_credentials_get_clean_errors(node, owner, acl, scheme, credential, n):
    path = f"/fuzz{n}"
    try:
        owner.create(path, b"", acl=acl)
    except CLEAN:
        pass
    try:
        owner.set_acls(path, acl)
    except CLEAN:
        pass
    probe = node.client()
    try:
        probe.add_auth(scheme, credential)
    except CLEAN:
        pass
    else:
        try:
            probe.get(path)
        except CLEAN:
            pass
    finally:
        probe.stop()
    assert owner.exists("/") is not None  # the node serves on


def test_the_node_still_serves_after_the_fuzz(node):
    fresh = node.client()
    assert fresh.create("/after-fuzz", b"ok") == "/after-fuzz"
    assert fresh.command("ruok") == "imok"
