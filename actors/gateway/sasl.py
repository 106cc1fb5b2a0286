"""SASL DIGEST-MD5 for ZooKeeper clients (kazoo's `sasl_options` / auth_data ("sasl", "user:pw")),
the server side of RFC 2831 as ZooKeeper runs it: realm and server name "zk-sasl-md5", service
"zookeeper", quality of protection "auth" only (no integrity or confidentiality layer), users and
passwords from the node's `sasl_users` (ZooKeeper's JAAS `user_<name>="<password>"` entries).

Pure: tokens in, tokens out. `DigestMd5Server.step(token)` returns the next challenge, or raises
SaslFailure (the gateway then drops the connection, as ZooKeeper does); once `user` is set the
client is authenticated as `sasl:<user>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

REALM = "zk-sasl-md5"
DIGEST_URI = "zookeeper/zk-sasl-md5"
MAX_TOKEN = 4096  # RFC 2831 caps a digest-response at 4096 bytes
_PAIR = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,]*)\s*(?:,|$)')


class SaslFailure(Exception):
    """The client did not prove it knows a configured user's password (or spoke garbage)."""


def _md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()  # noqa: S324 - DIGEST-MD5 is defined on MD5


def _hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # noqa: S324


def parse(token: bytes) -> dict[str, str]:
    """The name=value pairs of a digest-response (quoted values unquoted)."""
    if len(token) > MAX_TOKEN:
        raise SaslFailure("digest-response too long")
    try:
        text = token.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SaslFailure("digest-response is not UTF-8") from exc
    out: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        match = _PAIR.match(text, pos)
        if match is None or match.end() == pos:
            raise SaslFailure(f"malformed digest-response at {pos}")
        name, value = match.group(1).lower(), match.group(2).strip()
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        if name in out:
            raise SaslFailure(f"{name} given twice")
        out[name] = value
        pos = match.end()
    return out


def response_value(user: str, password: str, fields: dict[str, str], a2_prefix: str) -> str:
    """RFC 2831 2.1.2.1: the request-digest (a2_prefix "AUTHENTICATE") or rspauth (a2_prefix "")."""
    realm = fields.get("realm", REALM)
    a1 = _md5(f"{user}:{realm}:{password}".encode()) + f":{fields['nonce']}:{fields['cnonce']}".encode()
    if "authzid" in fields:
        a1 += f":{fields['authzid']}".encode()
    a2 = f"{a2_prefix}:{fields['digest-uri']}".encode()
    kd = f"{_hex(a1)}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:{fields.get('qop', 'auth')}:{_hex(a2)}"
    return _hex(kd.encode())


class DigestMd5Server:
    """One client's DIGEST-MD5 exchange: empty token -> challenge; digest-response -> rspauth."""

    def __init__(self, users: dict[str, str], nonce: bytes) -> None:
        self.users = users
        self.nonce = base64.b64encode(nonce).decode()
        self.challenged = False
        self.user: str | None = None  # set once authenticated

    def step(self, token: bytes) -> bytes:
        if self.user is not None:
            return b""  # already complete: nothing more to say
        if not self.challenged:
            self.challenged = True
            return (f'realm="{REALM}",nonce="{self.nonce}",qop="auth",charset=utf-8,algorithm=md5-sess').encode()
        fields = parse(token)
        for needed in ("username", "nonce", "cnonce", "nc", "digest-uri", "response"):
            if needed not in fields:
                raise SaslFailure(f"digest-response lacks {needed}")
        if fields["nonce"] != self.nonce or fields.get("qop", "auth") != "auth" or fields.get("realm", REALM) != REALM:
            raise SaslFailure("nonce, realm or qop not the ones offered")
        if fields["digest-uri"] != DIGEST_URI:
            raise SaslFailure(f"digest-uri must be {DIGEST_URI}")
        user = fields["username"]
        password = self.users.get(user)
        if password is None:
            raise SaslFailure(f"unknown user {user!r}")
        expected = response_value(user, password, fields, "AUTHENTICATE")
        if not hmac.compare_digest(expected, fields["response"].lower()):
            raise SaslFailure(f"wrong password for {user!r}")
        if fields.get("authzid", user) != user:
            raise SaslFailure("authorizing as another user is not allowed")
        self.user = user
        return f"rspauth={response_value(user, password, fields, '')}".encode()
