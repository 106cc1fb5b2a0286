"""SASL DIGEST-MD5 (RFC 2831) as the gateway runs it, against the pure-sasl client kazoo uses."""

from __future__ import annotations

import pytest

from actors.gateway.sasl import DIGEST_URI, REALM, DigestMd5Server, SaslFailure, parse, response_value

pytestmark = pytest.mark.timeout(30)
USERS = {"bob": "s3cret", "eve": "other"}


def _client(user: str, password: str):
    puresasl = pytest.importorskip("puresasl.client", reason="pure-sasl is a test dependency")
    return puresasl.SASLClient("zk-sasl-md5", "zookeeper", mechanism="DIGEST-MD5", username=user, password=password)


def _exchange(server: DigestMd5Server, client) -> None:
    challenge = None
    for _ in range(5):
        if client.complete:
            return
        token = client.process(challenge) or b""
        if client.complete and not token:
            return
        challenge = server.step(token)
    raise AssertionError("the exchange did not finish")


def test_kazoos_client_authenticates_and_checks_the_servers_proof():
    server = DigestMd5Server(USERS, b"n" * 16)
    client = _client("bob", "s3cret")
    _exchange(server, client)
    assert server.user == "bob" and client.complete


@pytest.mark.parametrize(("user", "password"), [("bob", "wrong"), ("mallory", "s3cret")])
def test_a_wrong_password_or_unknown_user_fails(user, password):
    server = DigestMd5Server(USERS, b"n" * 16)
    with pytest.raises(SaslFailure):
        _exchange(server, _client(user, password))
    assert server.user is None


def _answer(nonce: str, **override: str) -> bytes:
    fields = {
        "username": "bob",
        "realm": REALM,
        "nonce": nonce,
        "cnonce": "abc",
        "nc": "00000001",
        "qop": "auth",
        "digest-uri": DIGEST_URI,
    }
    fields["response"] = response_value("bob", "s3cret", fields, "AUTHENTICATE")
    fields.update(override)
    return ",".join(f'{k}="{v}"' for k, v in fields.items()).encode()


@pytest.mark.parametrize(
    "bad", ["replayed-nonce", "other-uri", "integrity-qop", "garbage", "too-long", "missing-cnonce", "not-utf8"]
)
def test_malformed_or_foreign_responses_fail(bad):
    server = DigestMd5Server(USERS, b"n" * 16)
    server.step(b"")
    token = {
        "replayed-nonce": _answer("someone-elses"),
        "other-uri": _answer(server.nonce, **{"digest-uri": "http/example"}),
        "integrity-qop": _answer(server.nonce, qop="auth-int"),
        "garbage": b"=,=,,",
        "too-long": b"a=" + b"x" * 5000,
        "missing-cnonce": _answer(server.nonce).replace(b'cnonce="abc",', b""),
        "not-utf8": b"\xff\xfe",
    }[bad]
    with pytest.raises(SaslFailure):
        server.step(token)
    assert server.user is None


def test_a_hand_written_response_is_accepted_and_quoted_pairs_parse():
    server = DigestMd5Server(USERS, b"n" * 16)
    server.step(b"")
    assert server.step(_answer(server.nonce)).startswith(b"rspauth=")
    assert parse(b'a="x\\"y", b=2') == {"a": 'x"y', "b": "2"}
