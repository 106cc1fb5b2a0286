"""The ACL matrix over the wire, on one real node: for every permission bit and every operation it
guards, the operation is DENIED (NoAuthError, and nothing changes) when the ACL grants everything
but that bit, and GRANTED when the ACL grants only that bit. Then each scheme (world, auth, digest,
ip, super) with what it matches and which ids it refuses, multi-op transactions, and the ZooKeeper
behaviours a port from kazoo relies on (check order, what watch events may reveal, add_auth).

What ZooKeeper (3.8.4+ / 3.9.2+) checks, and so what is expected here:
  READ   on the node      getData, getChildren(2), getAllChildrenNumber, exists of an EXISTING node
                          (ZOOKEEPER-2590; exists of a missing node needs nothing), addWatch, check
  WRITE  on the node      setData
  CREATE on the parent    create (every mode)
  DELETE on the parent    delete (the child's own ACL does not matter)
  ADMIN  on the node      setACL
  READ or ADMIN           getACL (digests shown as `user:x` without ADMIN)
  nothing                 sync, getEphemerals
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import threading
from collections.abc import Callable
from typing import Any

import pytest
from tests_support import node_with_super

from zoomq import Client, KazooState
from zoomq.exceptions import (
    AuthFailedError,
    InvalidACLError,
    NoAuthError,
    NoNodeError,
    RolledBackError,
    RuntimeInconsistency,
)
from zoomq.security import ACL, Id, make_acl, make_digest_acl, make_digest_acl_credential
from zoomq.testing import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

READ, WRITE, CREATE, DELETE, ADMIN, ALL = 1, 2, 4, 8, 16, 31
BITS = {"READ": READ, "WRITE": WRITE, "CREATE": CREATE, "DELETE": DELETE, "ADMIN": ADMIN}

SUPER_PW = "sup3r-secret"
OWNER = make_digest_acl("owner", "pw", all=True)
USER_ID = Id("digest", make_digest_acl_credential("user", "pw"))
WORLD = Id("world", "anyone")
OPEN = [ACL(ALL, WORLD)]

_serial = itertools.count()


# --- fixtures: one node for the module, a few long-lived clients ---------------------------------


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    yield from node_with_super(tmp_path_factory, "acl-matrix", SUPER_PW)


@pytest.fixture(scope="module")
def owner(node):
    """Holds ALL on every node the tests make: setup, and the view of what really happened."""
    return node.client(auth_data=[("digest", "owner:pw")])


@pytest.fixture(scope="module")
def user(node):
    """The session whose rights each matrix case sets (digest user:pw, and ip 127.0.0.1)."""
    return node.client(auth_data=[("digest", "user:pw")])


@pytest.fixture(scope="module")
def anon(node):
    """No add_auth at all: only its ip identity (127.0.0.1)."""
    return node.client()


@pytest.fixture(scope="module")
def root(node):
    """The configured super user."""
    return node.client(auth_data=[("digest", f"super:{SUPER_PW}")])


@pytest.fixture
def connect(node):
    """Fresh clients for one test, stopped after it."""
    made: list[Client] = []

    def make(*auth: tuple[str, str], **kw: Any) -> Client:
        client = Client(hosts=node.hosts, auth_data=list(auth), **kw)
        client.start(timeout=15)
        made.append(client)
        return client

    yield make
    for client in made:
        with contextlib.suppress(Exception):
            client.stop()


def _fresh(stem: str) -> str:
    return f"/{stem}-{next(_serial)}"


def _commit(tx) -> list[Any]:
    """A transaction's results, or its failing op's exception (the others must be rolled back)."""
    results = tx.commit()
    errors = [r for r in results if isinstance(r, Exception)]
    if errors:
        real = [e for e in errors if not isinstance(e, RolledBackError | RuntimeInconsistency)]
        assert len(real) == 1, results
        assert len(errors) == len(results), f"a failed multi must fail every op: {results}"
        raise real[0]
    return results


# --- the matrix ------------------------------------------------------------------------------------
# Every case works on X (made by the owner with ACL [OWNER, user:<perms>], data b"orig", and one
# child X/victim whose own ACL is [OWNER] only). `call` is what the user does; `effect` checks, from
# the owner's view, that the granted call did what it says.


def _noop_watch(*_: Any) -> None:
    pass


def _tx(zk, build: Callable[[Any], None]) -> list[Any]:
    tx = zk.transaction()
    build(tx)
    return _commit(tx)


class Op:
    def __init__(self, call: Callable[[Any, str], Any], effect: Callable[[Any, str, Any], None] | None = None) -> None:
        self.call = call
        self.effect = effect or (lambda owner, x, result: None)


def _result(predicate: Callable[[Any], bool]) -> Callable[[Any, str, Any], None]:
    def check(owner, x, result):
        assert predicate(result), result

    return check


def _eff_set(owner, x, _):
    assert owner.get(x)[0] == b"new"


def _eff_child(name: str):
    def check(owner, x, _):
        assert any(c.startswith(name) for c in owner.get_children(x)), owner.get_children(x)

    return check


def _eff_gone(owner, x, _):
    assert owner.exists(x + "/victim") is None


def _eff_set_acls(owner, x, stat):
    acls, st = owner.get_acls(x)
    assert st.aversion == 1 and stat.aversion == 1
    assert sorted(acls) == sorted([OWNER, ACL(ALL, USER_ID)])


OPS: dict[str, Op] = {
    "get": Op(lambda zk, x: zk.get(x), _result(lambda r: r[0] == b"orig")),
    "get+watch": Op(lambda zk, x: zk.get(x, watch=_noop_watch)),
    "get_children": Op(lambda zk, x: zk.get_children(x), _result(lambda r: r == ["victim"])),
    "get_children+stat": Op(
        lambda zk, x: zk.get_children(x, include_data=True),
        _result(lambda r: r[0] == ["victim"] and r[1].numChildren == 1),
    ),
    "get_children+watch": Op(lambda zk, x: zk.get_children(x, watch=_noop_watch)),
    "get_children_count": Op(lambda zk, x: zk.get_children_count(x), _result(lambda r: r == 1)),
    "exists": Op(lambda zk, x: zk.exists(x), _result(lambda r: r is not None and r.numChildren == 1)),
    "exists+watch": Op(lambda zk, x: zk.exists(x, watch=_noop_watch)),
    "add_watch": Op(lambda zk, x: zk.add_watch(x, _noop_watch)),
    "add_watch-recursive": Op(lambda zk, x: zk.add_watch(x, _noop_watch, recursive=True)),
    "get_acls": Op(lambda zk, x: zk.get_acls(x), _result(lambda r: len(r[0]) == 2)),
    "set": Op(lambda zk, x: zk.set(x, b"new"), _eff_set),
    "set-versioned": Op(lambda zk, x: zk.set(x, b"new", version=0), _eff_set),
    "create": Op(lambda zk, x: zk.create(x + "/kid", b""), _eff_child("kid")),
    "create-ephemeral": Op(lambda zk, x: zk.create(x + "/eph", b"", ephemeral=True), _eff_child("eph")),
    "create-sequential": Op(lambda zk, x: zk.create(x + "/seq-", b"", sequence=True), _eff_child("seq-")),
    "create-container": Op(lambda zk, x: zk.create(x + "/box", b"", container=True), _eff_child("box")),
    "create-open-acl": Op(lambda zk, x: zk.create(x + "/kid", b"", acl=OPEN), _eff_child("kid")),
    "delete": Op(lambda zk, x: zk.delete(x + "/victim"), _eff_gone),
    "delete-versioned": Op(lambda zk, x: zk.delete(x + "/victim", version=0), _eff_gone),
    "set_acls": Op(lambda zk, x: zk.set_acls(x, [OWNER, ACL(ALL, USER_ID)]), _eff_set_acls),
    "multi-check": Op(lambda zk, x: _tx(zk, lambda t: t.check(x, 0))),
    "multi-set_data": Op(lambda zk, x: _tx(zk, lambda t: t.set_data(x, b"new")), _eff_set),
    "multi-create": Op(lambda zk, x: _tx(zk, lambda t: t.create(x + "/kid", b"")), _eff_child("kid")),
    "multi-delete": Op(lambda zk, x: _tx(zk, lambda t: t.delete(x + "/victim")), _eff_gone),
}

# (operation, the bit that guards it). getACL is guarded by READ *or* ADMIN: it appears under each.
MATRIX: list[tuple[str, str]] = [
    *(
        (op, "READ")
        for op in (
            "get",
            "get+watch",
            "get_children",
            "get_children+stat",
            "get_children+watch",
            "get_children_count",
            "exists",
            "exists+watch",
            "add_watch",
            "add_watch-recursive",
            "get_acls",
            "multi-check",
        )
    ),
    ("get_acls", "ADMIN"),
    *((op, "WRITE") for op in ("set", "set-versioned", "multi-set_data")),
    *(
        (op, "CREATE")
        for op in (
            "create",
            "create-ephemeral",
            "create-sequential",
            "create-container",
            "create-open-acl",
            "multi-create",
        )
    ),
    *((op, "DELETE") for op in ("delete", "delete-versioned", "multi-delete")),
    ("set_acls", "ADMIN"),
]


def _denied_perms(op: str, bit: int) -> int:
    if op == "get_acls":
        return ALL & ~(READ | ADMIN)  # either bit alone is enough for getACL
    return ALL & ~bit


def _make_x(owner, perms: int) -> str:
    x = _fresh("mx")
    owner.create(x, b"orig", acl=[OWNER, ACL(perms, USER_ID)])
    owner.create(x + "/victim", b"", acl=[OWNER])
    return x


def _unchanged(owner, x: str) -> None:
    data, stat = owner.get(x)
    _, astat = owner.get_acls(x)
    assert (data, stat.version, astat.aversion) == (b"orig", 0, 0)
    assert owner.get_children(x) == ["victim"]


@pytest.mark.parametrize(("op", "bit"), MATRIX, ids=[f"{op}-needs-{bit}" for op, bit in MATRIX])
def test_denied_without_the_bit(owner, user, op, bit):
    x = _make_x(owner, _denied_perms(op, BITS[bit]))
    with pytest.raises(NoAuthError):
        OPS[op].call(user, x)
    _unchanged(owner, x)


@pytest.mark.parametrize(("op", "bit"), MATRIX, ids=[f"{op}-needs-{bit}" for op, bit in MATRIX])
def test_granted_with_only_the_bit(owner, user, op, bit):
    x = _make_x(owner, BITS[bit])
    result = OPS[op].call(user, x)
    OPS[op].effect(owner, x, result)


@pytest.mark.parametrize("bit", sorted(BITS), ids=lambda b: f"only-{b}")
def test_one_bit_grants_nothing_else(owner, user, bit):
    """The complement: with a single bit, every operation guarded by another bit is refused."""
    granted = BITS[bit]
    for op, needs in MATRIX:
        if BITS[needs] == granted or (op == "get_acls" and granted in (READ, ADMIN)):
            continue
        x = _make_x(owner, granted)
        with pytest.raises(NoAuthError):
            OPS[op].call(user, x)
        _unchanged(owner, x)


def _exists_missing(zk, x):
    assert zk.exists(x + "/missing") is None


def _get_missing(zk, x):
    with pytest.raises(NoNodeError):
        zk.get(x + "/missing")


UNGUARDED = {
    "exists-of-a-missing-child": _exists_missing,
    "exists+watch-of-a-missing-child": lambda zk, x: zk.exists(x + "/missing", watch=_noop_watch),
    "get-of-a-missing-child": _get_missing,  # NONODE, not NOAUTH: reads check the node itself
    "sync": lambda zk, x: zk.sync(x),
    "get_ephemerals": lambda zk, x: zk.get_ephemerals(x),
}


@pytest.mark.parametrize("op", sorted(UNGUARDED))
def test_operations_no_bit_guards(owner, user, op):
    x = _fresh("mx-none")
    owner.create(x, b"orig", acl=[OWNER])  # the user has no entry at all
    UNGUARDED[op](user, x)


def test_get_acls_with_read_only_masks_digests_and_with_admin_shows_them(owner, user):
    entries = [OWNER, make_acl("ip", "10.0.0.0/8", read=True), make_acl("world", "anyone", create=True)]
    x_read = _fresh("mx-gacl")
    owner.create(x_read, b"", acl=[*entries, ACL(READ, USER_ID)])
    acls, _ = user.get_acls(x_read)
    assert sorted(acls) == sorted(
        [
            ACL(ALL, Id("digest", "owner:x")),
            entries[1],
            entries[2],
            ACL(READ, Id("digest", "user:x")),
        ]
    )
    x_admin = _fresh("mx-gacl")
    owner.create(x_admin, b"", acl=[*entries, ACL(ADMIN, USER_ID)])
    acls, _ = user.get_acls(x_admin)
    assert sorted(acls) == sorted([*entries, ACL(ADMIN, USER_ID)])


# --- multi: each op is checked against the state the earlier ops leave ----------------------------


def test_a_denied_op_fails_the_whole_multi(owner, user):
    base = _fresh("mx-multi")
    owner.create(base, b"", acl=OPEN)
    x = _make_x(owner, ALL & ~WRITE)
    tx = user.transaction()
    tx.create(base + "/first", b"")
    tx.set_data(x, b"new")
    tx.create(base + "/third", b"")
    results = tx.commit()
    assert isinstance(results[1], NoAuthError), results
    assert isinstance(results[0], RolledBackError) and isinstance(results[2], RuntimeInconsistency), results
    assert owner.get_children(base) == []
    _unchanged(owner, x)


def test_multi_checks_ops_against_nodes_it_created(owner, user):
    base = _fresh("mx-multi")
    owner.create(base, b"", acl=OPEN)
    # A node the multi creates READ-only for the user: a later set_data in it is refused ...
    with pytest.raises(NoAuthError):
        _tx(
            user,
            lambda t: (t.create(base + "/ro", b"", acl=[OWNER, ACL(READ, USER_ID)]), t.set_data(base + "/ro", b"x")),
        )
    # ... a child under a node it creates without CREATE is refused ...
    with pytest.raises(NoAuthError):
        _tx(
            user,
            lambda t: (
                t.create(base + "/nc", b"", acl=[OWNER, ACL(ALL & ~CREATE, USER_ID)]),
                t.create(base + "/nc/kid", b""),
            ),
        )
    # ... and deleting its child needs DELETE on it as the multi left it.
    with pytest.raises(NoAuthError):
        _tx(
            user,
            lambda t: (
                t.create(base + "/nd", b"", acl=[OWNER, ACL(ALL & ~DELETE, USER_ID)]),
                t.create(base + "/nd/kid", b""),
                t.delete(base + "/nd/kid"),
            ),
        )
    assert owner.get_children(base) == []
    # With the bits, the same shapes go through.
    _tx(
        user,
        lambda t: (
            t.create(base + "/rw", b"", acl=[OWNER, ACL(READ | WRITE, USER_ID)]),
            t.set_data(base + "/rw", b"x"),
        ),
    )
    _tx(
        user,
        lambda t: (
            t.create(base + "/c", b"", acl=[OWNER, ACL(CREATE | DELETE, USER_ID)]),
            t.create(base + "/c/kid", b""),
            t.delete(base + "/c/kid"),
        ),
    )
    assert sorted(owner.get_children(base)) == ["c", "rw"]
    assert owner.get(base + "/rw")[0] == b"x"


# --- schemes -----------------------------------------------------------------------------------------


def test_world_anyone_matches_every_session(owner, user, anon, connect):
    x = _fresh("mx-world")
    owner.create(x, b"w", acl=[OWNER, ACL(READ | CREATE, WORLD)])
    stranger = connect(("digest", "stranger:pw"))
    for zk in (user, anon, stranger):
        assert zk.get(x)[0] == b"w"
        with pytest.raises(NoAuthError):
            zk.set(x, b"no")
    anon.create(x + "/by-anon", b"")
    assert owner.get_children(x) == ["by-anon"]


@pytest.mark.parametrize("ident", ["someone", "", "Anyone", "anyone "])
def test_world_names_only_anyone(owner, ident):
    x = _fresh("mx-world")
    with pytest.raises(InvalidACLError):
        owner.create(x, b"", acl=[ACL(READ, Id("world", ident))])
    owner.create(x, b"", acl=[OWNER])
    with pytest.raises(InvalidACLError):
        owner.set_acls(x, [OWNER, ACL(READ, Id("world", ident))])
    assert owner.get_acls(x)[0] == [OWNER]


def test_auth_expands_to_every_id_the_creating_session_authenticated(connect, anon):
    both = connect(("digest", "a:1"), ("digest", "b:2"))
    x = _fresh("mx-auth")
    both.create(x, b"", acl=[ACL(READ | WRITE | ADMIN, Id("auth", ""))])
    a_id = Id("digest", make_digest_acl_credential("a", "1"))
    b_id = Id("digest", make_digest_acl_credential("b", "2"))
    acls, _ = both.get_acls(x)
    assert sorted(acls) == sorted([ACL(READ | WRITE | ADMIN, a_id), ACL(READ | WRITE | ADMIN, b_id)])  # not ip
    assert connect(("digest", "b:2")).get(x)[0] == b""
    for zk in (anon, connect(("digest", "c:3")), connect(("digest", "a:wrong"))):
        with pytest.raises(NoAuthError):
            zk.get(x)
    # The id of an auth entry is ignored (ZooKeeper: any id), and set_acls expands it the same way.
    y = _fresh("mx-auth")
    both.create(y, b"", acl=[ACL(ALL, Id("auth", "whatever"))])
    both.set_acls(y, [ACL(READ | ADMIN, Id("auth", ""))])
    assert sorted(both.get_acls(y)[0]) == sorted([ACL(READ | ADMIN, a_id), ACL(READ | ADMIN, b_id)])


def test_auth_without_authentication_is_an_invalid_acl(owner, anon):
    x = _fresh("mx-auth")
    with pytest.raises(InvalidACLError):
        anon.create(x, b"", acl=[ACL(ALL, Id("auth", ""))])  # only an ip identity: nothing to expand
    assert owner.exists(x) is None
    owner.create(x, b"", acl=OPEN)
    with pytest.raises(InvalidACLError):
        anon.set_acls(x, [ACL(ALL, Id("auth", ""))])
    assert owner.get_acls(x)[0] == OPEN


def test_auth_by_the_super_user_names_its_digest(root):
    x = _fresh("mx-auth")
    root.create(x, b"", acl=[ACL(ALL, Id("auth", ""))])
    assert root.get_acls(x)[0] == [ACL(ALL, Id("digest", make_digest_acl_credential("super", SUPER_PW)))]


@pytest.mark.parametrize(
    ("credential", "granted"),
    [
        ("user:pw", True),
        (None, False),
        ("user:wrong", False),
        ("User:pw", False),
        ("user:pw ", False),
        ("user2:pw", False),
    ],
    ids=["right", "none", "wrong-password", "wrong-case-user", "trailing-space", "other-user"],
)
def test_digest_matches_exactly_its_user_and_password(owner, connect, credential, granted):
    x = _fresh("mx-digest")
    owner.create(x, b"d", acl=[OWNER, make_digest_acl("user", "pw", read=True)])
    zk = connect(*([("digest", credential)] if credential else []))
    if granted:
        assert zk.get(x)[0] == b"d"
    else:
        with pytest.raises(NoAuthError):
            zk.get(x)


def test_digest_add_auth_grants_at_once_on_the_same_session(owner, connect):
    x = _fresh("mx-digest")
    user, pw = "jürgen", "pä:ss:wörd ☃"  # unicode, and colons in the password
    owner.create(x, b"d", acl=[OWNER, make_digest_acl(user, pw, read=True, write=True)])
    zk = connect()
    with pytest.raises(NoAuthError):
        zk.get(x)
    assert zk.add_auth("digest", f"{user}:{pw}") is True
    assert zk.get(x)[0] == b"d"
    zk.set(x, b"e")
    assert owner.get(x)[0] == b"e"


@pytest.mark.parametrize("ident", ["nocolon", "", "user:", "a:b:c", ":"])
def test_malformed_digest_ids_are_invalid(owner, ident):
    with pytest.raises(InvalidACLError):
        owner.create(_fresh("mx-digest"), b"", acl=[OWNER, ACL(READ, Id("digest", ident))])


def test_a_digest_id_with_an_empty_user_is_valid(owner):
    x = _fresh("mx-digest")  # ZooKeeper: ":abc".split(":") has two parts
    owner.create(x, b"", acl=[OWNER, ACL(READ, Id("digest", ":abc"))])
    assert ACL(READ, Id("digest", ":abc")) in owner.get_acls(x)[0]


@pytest.mark.parametrize(
    ("ident", "granted"),
    [
        ("127.0.0.1", True),
        ("127.0.0.1/32", True),
        ("127.0.0.0/8", True),
        ("127.0.0.0/24", True),
        ("0.0.0.0/0", True),
        ("127.0.0.2", False),
        ("10.0.0.0/8", False),
        ("128.0.0.0/1", False),
        ("::1", False),  # an IPv6 id never matches an IPv4 client
        ("::1/128", False),
    ],
)
def test_ip_matches_the_connections_address(owner, user, anon, ident, granted):
    x = _fresh("mx-ip")
    owner.create(x, b"i", acl=[OWNER, ACL(READ | WRITE, Id("ip", ident))])
    owner.create(x + "/kid", b"", acl=OPEN)
    for zk in (anon, user):  # a digest identity does not hide the ip one
        if granted:
            assert zk.get(x)[0] == b"i"
            zk.set(x, b"i")
        else:
            with pytest.raises(NoAuthError):
                zk.get(x)
            with pytest.raises(NoAuthError):
                zk.set(x, b"no")
        with pytest.raises(NoAuthError):
            zk.delete(x + "/kid")  # the ip entry grants no DELETE
    assert owner.get_children(x) == ["kid"]


@pytest.mark.parametrize(
    "ident",
    ["127.0.0.1/33", "256.0.0.1", "1.2.3", "::1/129", "127.0.0.1/", "127.0.0.1/-1", "127.0.0.1/8/8", "localhost", ""],
)
def test_malformed_ip_ids_are_invalid(owner, ident):
    with pytest.raises(InvalidACLError):
        owner.create(_fresh("mx-ip"), b"", acl=[OWNER, ACL(READ, Id("ip", ident))])


def test_the_super_user_passes_every_check(owner, root, connect):
    x = _make_x(owner, 0)  # the user has an entry with no bits; the super user has none at all
    assert root.get(x)[0] == b"orig"
    assert root.exists(x) is not None
    assert root.get_children(x) == ["victim"]
    acls, _ = root.get_acls(x)
    assert OWNER in acls  # unmasked, though no entry grants it ADMIN
    root.set(x, b"by-root")
    root.create(x + "/kid", b"")
    root.delete(x + "/victim")
    _tx(root, lambda t: (t.check(x, 1), t.create(x + "/tx", b""), t.delete(x + "/kid")))
    root.set_acls(x, [OWNER])
    assert owner.get(x)[0] == b"by-root" and owner.get_children(x) == ["tx"]
    assert owner.get_acls(x)[0] == [OWNER]
    for wrong in (("digest", "super:wrong"), ("digest", f"Super:{SUPER_PW}")):
        with pytest.raises(NoAuthError):
            connect(wrong).get(x)


def test_super_via_add_auth_on_an_open_session(owner, connect):
    x = _make_x(owner, 0)
    zk = connect()
    with pytest.raises(NoAuthError):
        zk.get(x)
    zk.add_auth("digest", f"super:{SUPER_PW}")
    assert zk.get(x)[0] == b"orig"


# --- behaviours where ZooKeeper 3.8.4+ is exact about order and disclosure ---------------------------


def test_super_is_not_an_acl_scheme(owner):
    with pytest.raises(InvalidACLError):
        owner.create(_fresh("mx-super"), b"", acl=[OWNER, ACL(READ, Id("super", "anything"))])


def test_add_auth_ip_is_accepted_and_grants_only_the_real_address(owner, connect):
    x = _fresh("mx-ip")
    owner.create(x, b"", acl=[OWNER, ACL(READ, Id("ip", "10.0.0.0/8"))])
    zk = connect()
    assert zk.add_auth("ip", "10.1.2.3") is True
    assert zk.state == KazooState.CONNECTED
    with pytest.raises(NoAuthError):
        zk.get(x)  # a claimed address grants nothing


@pytest.mark.parametrize("credential", ["token-without-colon", ":pw"])
def test_any_digest_credential_is_accepted(owner, connect, credential):
    x = _fresh("mx-digest")
    user = credential.split(":", 1)[0]
    ident = f"{user}:{base64.b64encode(hashlib.sha1(credential.encode()).digest()).decode()}"
    owner.create(x, b"t", acl=[OWNER, ACL(READ, Id("digest", ident))])
    zk = connect()
    try:
        assert zk.add_auth("digest", credential) is True
    except AuthFailedError:
        pytest.fail("AUTHFAILED")
    assert zk.get(x)[0] == b"t"


def test_delete_checks_the_parents_delete_bit_before_the_childs_existence(owner, user):
    x = _make_x(owner, ALL & ~DELETE)
    with pytest.raises(NoAuthError):
        user.delete(x + "/missing")


class _Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self.lock:
            self.seen.append((str(event.type), event.path))

    def paths(self) -> list[str]:
        with self.lock:
            return [p for _, p in self.seen]


def test_a_recursive_watch_does_not_reveal_children_it_cannot_read(owner, anon):
    base = _fresh("mx-leak")
    owner.create(base, b"", acl=[OWNER, ACL(READ, WORLD)])
    events = _Events()
    anon.add_watch(base, events, recursive=True)
    owner.create(base + "/secret-name", b"", acl=[OWNER])
    owner.create(base + "/public", b"", acl=[OWNER, ACL(READ, WORLD)])  # events arrive in order:
    wait_for(lambda: base + "/public" in events.paths(), timeout=10, what="the readable child's event")
    assert base + "/secret-name" not in events.paths()


def test_an_exists_watch_does_not_fire_for_a_node_created_unreadable(owner, anon):
    base = _fresh("mx-leak")
    owner.create(base, b"", acl=[OWNER, ACL(READ, WORLD)])
    events = _Events()
    assert anon.exists(base + "/secret", watch=events) is None  # missing: no check, the watch is set
    assert anon.exists(base + "/public", watch=events) is None
    owner.create(base + "/secret", b"", acl=[OWNER])
    owner.create(base + "/public", b"", acl=[OWNER, ACL(READ, WORLD)])
    wait_for(lambda: base + "/public" in events.paths(), timeout=10, what="the readable node's event")
    assert base + "/secret" not in events.paths()
