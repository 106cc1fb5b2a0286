"""Random ACLs and random credentials over the wire, against one real node.

Whatever a client sends as an ACL (any scheme, malformed digests and CIDRs, empty and unicode ids,
perms 0, > 31, negative, an empty list) or as add_auth credentials, the answer is success or one of
the clean kazoo errors, within a deadline; never a hang, another exception type, or a crashed actor.
Where the answer is known from ZooKeeper's rules the test holds the node to it: a valid ACL is
stored exactly (duplicates dropped, `auth` expanded to the session's ids), an invalid one is
INVALIDACL; a digest credential `user:password` is accepted and grants exactly what a digest ACL
for it grants, an unknown scheme is AUTHFAILED and ends the client (as kazoo). Each property runs
its examples and then checks that the node still serves: no actor was restarted, a fresh client
can create and read, and `ruok` says `imok`.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests_support import node_with_super

from zoomq import Client, KazooState
from zoomq.exceptions import (
    AuthFailedError,
    BadArgumentsError,
    InvalidACLError,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
)
from zoomq.security import ACL, Id, make_digest_acl, make_digest_acl_credential
from zoomq.testing import ZoomqServer, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

READ, ALL = 1, 31
DEADLINE = 15.0  # seconds any single answer may take before it counts as a hang
CLEAN = (InvalidACLError, NoAuthError, AuthFailedError, BadArgumentsError, NoNodeError, NodeExistsError)
SUPER_PW = "fuzz-super"
OWNER = make_digest_acl("owner", "pw", all=True)
OWNER_ID = OWNER.id
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)

_serial = itertools.count()


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    yield from node_with_super(tmp_path_factory, "acl-fuzz", SUPER_PW)


@pytest.fixture(scope="module")
def owner(node):
    zk = node.client(auth_data=[("digest", "owner:pw")])
    zk.create("/fz", b"", acl=[ACL(ALL, Id("world", "anyone"))])
    return zk


@pytest.fixture(scope="module")
def root(node):
    """The super user: sees every stored ACL, whatever the fuzz stored."""
    return node.client(auth_data=[("digest", f"super:{SUPER_PW}")])


def _answer(async_result) -> tuple[str, Any]:
    """('ok', value) or ('err', exception) — an answer must come within DEADLINE."""
    if not async_result.wait(DEADLINE):
        pytest.fail(f"no answer within {DEADLINE} s (a hang)")
    try:
        return "ok", async_result.get(timeout=0)
    except CLEAN as exc:
        return "err", exc
    except Exception as exc:  # noqa: BLE001 - the property under test
        pytest.fail(f"an unclean exception: {exc!r}")


def _still_serves(node: ZoomqServer, pids_before: dict[str, int]) -> None:
    assert node.running
    assert node.actor_pids() == pids_before, "an actor died and was restarted during the fuzz"
    fresh = Client(hosts=node.hosts)
    fresh.start(timeout=DEADLINE)
    try:
        path = f"/after-fuzz-{next(_serial)}"
        assert fresh.create_async(path, b"ok").get(timeout=DEADLINE) == path
        assert fresh.get_async(path).get(timeout=DEADLINE)[0] == b"ok"
        assert fresh.command("ruok") == "imok"
    finally:
        fresh.stop()


# --- ACLs ------------------------------------------------------------------------------------------
# Ids whose validity ZooKeeper's rules fix (scheme, id) -> valid. `auth` is valid here because the
# owner session has a digest identity. Everything else (random text, the 'super' scheme, perms
# outside 0..31) only has to get a clean answer.

KNOWN: dict[tuple[str, str], bool] = {
    ("world", "anyone"): True,
    ("world", ""): False,
    ("world", "Anyone"): False,
    ("WORLD", "anyone"): False,
    ("auth", ""): True,
    ("auth", "ignored"): True,
    ("digest", OWNER_ID.id): True,
    ("digest", make_digest_acl_credential("user", "pw")): True,
    ("digest", make_digest_acl_credential("jürgen", "ü:☃")): True,
    ("digest", ":abc"): True,
    ("digest", "u:p"): True,
    ("digest", "nocolon"): False,
    ("digest", ""): False,
    ("digest", "user:"): False,
    ("digest", "a:b:c"): False,
    ("digest", ":"): False,
    ("ip", "127.0.0.1"): True,
    ("ip", "127.0.0.0/8"): True,
    ("ip", "10.0.0.0/8"): True,
    ("ip", "0.0.0.0/0"): True,
    ("ip", "::1"): True,
    ("ip", "::1/128"): True,
    ("ip", "fe80::/10"): True,
    ("ip", "127.0.0.1/33"): False,
    ("ip", "::1/129"): False,
    ("ip", "256.0.0.1"): False,
    ("ip", "1.2.3"): False,
    ("ip", "127.0.0.1/"): False,
    ("ip", "1.2.3.4/-1"): False,
    ("ip", "localhost"): False,
    ("ip", ""): False,
    ("x509", "CN=x"): True,  # TLS client certificates (the gateway's secure port)
    ("sasl", "user"): True,  # SASL users (the gateway's DIGEST-MD5)
    ("x509", ""): False,
    ("sasl", ""): False,
    ("", "anyone"): False,
    ("nosuch", "id"): False,
}
_known_ids = st.sampled_from(sorted(KNOWN))
_random_ids = st.tuples(
    st.one_of(
        st.sampled_from(["world", "auth", "digest", "ip", "super", "", "x509", "wOrLd", "é", "ip\x00"]),
        st.text(max_size=8),
    ),
    st.one_of(
        st.text(max_size=24),
        st.sampled_from(["anyone", "::ffff:127.0.0.1", "fe80::1%eth0", "01.2.3.4", "127.0.0.1/+8"]),
    ),
)
_perms_in_range = st.integers(0, 31)
_perms_any = st.one_of(
    _perms_in_range, st.sampled_from([-1, 32, 63, 64, 2**31 - 1, -(2**31)]), st.integers(-(2**31), 2**31 - 1)
)
_known_entries = st.builds(lambda p, si: ACL(p, Id(*si)), _perms_in_range, _known_ids)
_any_entries = st.builds(lambda p, si: ACL(p, Id(*si)), _perms_any, st.one_of(_known_ids, _random_ids))
_valid_entries = st.builds(
    lambda p, si: ACL(p, Id(*si)), _perms_in_range, st.sampled_from(sorted(k for k, ok in KNOWN.items() if ok))
)
_acls = st.one_of(
    st.lists(_valid_entries, min_size=1, max_size=5),  # must be stored, exactly
    st.lists(_known_entries, max_size=4),  # the answer is fully known
    st.lists(st.one_of(_known_entries, _any_entries), max_size=4),  # only a clean answer is known
)


def _dedup(acl: list[ACL]) -> list[ACL]:
    out: list[ACL] = []
    for entry in acl:
        if entry not in out:
            out.append(entry)
    return out


def _expected(acl: list[ACL]) -> list[ACL] | None | str:
    """What ZooKeeper's fixupACL stores (duplicates of the request dropped, `auth` expanded to the
    session's ids), None for INVALIDACL, "?" when not known."""
    if not acl:
        return None
    out: list[ACL] = []
    unknown = False
    for entry in _dedup(acl):
        key = (entry.id.scheme, entry.id.id)
        if key not in KNOWN or not 0 <= entry.perms <= 31:
            unknown = True
            continue
        if not KNOWN[key]:
            return None  # one invalid entry refuses the list
        out.append(ACL(entry.perms, OWNER_ID) if entry.id.scheme == "auth" else entry)
    return "?" if unknown else out


@pytest.mark.parametrize("how", ["create", "set_acls"])
def test_random_acls_get_exact_or_clean_answers(node, owner, root, how):
    pids = node.actor_pids()

    @FUZZ
    @given(acl=_acls)
    def one(acl: list[ACL]) -> None:
        path = f"/fz/n{next(_serial)}"
        if how == "set_acls":
            owner.create(path, b"", acl=[OWNER])
            outcome, value = _answer(owner.set_acls_async(path, acl))
        else:
            outcome, value = _answer(owner.create_async(path, b"", acl=acl))
        want = _expected(acl)
        if outcome == "err":
            assert isinstance(value, InvalidACLError), value  # the parent is open, the name is new
            assert want is None or want == "?", f"a valid ACL was refused: {acl}"
            stored = root.get_acls_async(path).get(timeout=DEADLINE)[0] if how == "set_acls" else None
            assert stored in (None, [OWNER]), "a refused ACL changed the node"
            if how == "create":
                assert root.exists_async(path).get(timeout=DEADLINE) is None
            return
        assert want is not None, f"an invalid ACL was stored: {acl}"
        stored, stat = root.get_acls_async(path).get(timeout=DEADLINE)
        assert stat.aversion == (1 if how == "set_acls" else 0)
        if want != "?":
            # ZooKeeper keeps a duplicate an `auth` expansion makes; dropping it is as good.
            assert stored in (want, _dedup(want)), (acl, stored)
        else:
            assert set(stored) <= {ACL(e.perms, OWNER_ID) if e.id.scheme == "auth" else e for e in acl}

    one()
    _still_serves(node, pids)


# --- credentials ------------------------------------------------------------------------------------

USERS = ["alice", "bob", "jürgen"]
PASSWORDS = ["pw", "pw ", "ü:☃", ""]
_cred_known = st.builds(lambda u, p: ("digest", f"{u}:{p}"), st.sampled_from(USERS), st.sampled_from(PASSWORDS))
_cred_super = st.just(("digest", f"super:{SUPER_PW}"))
_cred_bad_scheme = st.tuples(
    st.one_of(
        st.sampled_from(["", "world", "auth", "super", "x509", "sasl", "Digest", "digest ", "nosuch"]),
        st.text(max_size=8),
    ),
    st.text(max_size=16),
).filter(lambda sc: sc[0] not in ("digest", "ip"))
_cred_any = st.tuples(
    st.sampled_from(["digest", "ip"]),
    st.one_of(st.text(max_size=16), st.sampled_from(["nocolon", ":", ":pw", "a::", "10.0.0.1"])),
)
_credentials = st.one_of(_cred_known, _cred_super, _cred_bad_scheme, _cred_any)
_digest_entries = st.builds(
    lambda p, u, pw: ACL(p, Id("digest", make_digest_acl_credential(u, pw))),
    _perms_in_range,
    st.sampled_from(USERS),
    st.sampled_from(PASSWORDS),
)
_other_entries = st.builds(
    lambda p, ident: ACL(p, ident),
    _perms_in_range,
    st.sampled_from(
        [
            Id("world", "anyone"),
            Id("ip", "127.0.0.1"),
            Id("ip", "127.0.0.0/8"),
            Id("ip", "10.0.0.0/8"),
            Id("ip", "::1/128"),
        ]
    ),
)
_guard = st.lists(st.one_of(_digest_entries, _other_entries), max_size=4)
_IP_MATCHES = {"127.0.0.1": True, "127.0.0.0/8": True, "10.0.0.0/8": False, "::1/128": False}


def _ids_for(credential: tuple[str, str]) -> set[Id]:
    _, cred = credential
    user, _, password = cred.partition(":")
    return {Id("digest", make_digest_acl_credential(user, password))}


def _may_read(guard: list[ACL], ids: set[Id], is_super: bool) -> bool:
    if is_super:
        return True
    for entry in guard:
        if not entry.perms & READ:
            continue
        if entry.id == Id("world", "anyone") or entry.id in ids:
            return True
        if entry.id.scheme == "ip" and _IP_MATCHES[entry.id.id]:
            return True
    return False


@FUZZ
@given(credential=_credentials, guard=_guard, at_start=st.booleans())
def _credential_example(node, owner, credential: tuple[str, str], guard: list[ACL], at_start: bool) -> None:
    path = f"/fz/g{next(_serial)}"
    owner.create(path, b"guarded", acl=[OWNER, *guard])
    scheme, cred = credential
    known_good = credential in (("digest", f"super:{SUPER_PW}"),) or (
        scheme == "digest" and cred.partition(":")[0] in USERS and ":" in cred
    )
    known_bad = scheme not in ("digest", "ip")  # no provider: AUTHFAILED, as ZooKeeper
    client = Client(hosts=node.hosts, timeout=4.0, auth_data=[credential] if at_start else None)
    try:
        client.start(timeout=DEADLINE)
        if at_start:
            # The credential went out with the handshake; the first answer carries the verdict.
            outcome, value = _answer(client.get_async(path))
            auth_ok = not isinstance(value, AuthFailedError)
        else:
            outcome, value = _answer(client.add_auth_async(scheme, cred))
            auth_ok = outcome == "ok"
            if auth_ok:
                assert value is True
                outcome, value = _answer(client.get_async(path))
        if known_good:
            assert auth_ok, f"{credential!r} was refused"
        if known_bad:
            assert not auth_ok, f"{credential!r} was accepted"
        if not auth_ok:
            assert isinstance(value, AuthFailedError), value
            # As kazoo: the client is done; every later call fails at once with AuthFailedError.
            wait_for(lambda: client.state == KazooState.LOST, timeout=DEADLINE, what="the client LOST")
            _, later = _answer(client.exists_async("/"))
            assert isinstance(later, AuthFailedError), later
            return
        assert client.state == KazooState.CONNECTED
        if scheme == "digest":
            expected = _may_read(guard, _ids_for(credential), cred == f"super:{SUPER_PW}")
            if expected:
                assert outcome == "ok" and value[0] == b"guarded", (credential, guard, value)
            else:
                assert isinstance(value, NoAuthError), (credential, guard, value)
        else:
            assert outcome == "ok" or isinstance(value, NoAuthError), value
    finally:
        with contextlib.suppress(Exception):
            client.stop()


def test_random_credentials_get_clean_answers_and_grant_exactly(node, owner):
    pids = node.actor_pids()
    _credential_example(node, owner)
    _still_serves(node, pids)
