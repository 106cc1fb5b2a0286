"""TLS for the ZooKeeper-protocol port (ZooKeeper's `secureClientPort`), over memory buffers.

The gateway reads and writes TCP bytes through a ZeroMQ STREAM socket, so TLS runs on Python's
`ssl.SSLObject` with two `MemoryBIO`s per connection: ciphertext in, plaintext out, and back. No
socket, no thread, no clock here: the gateway actor feeds bytes and sends what comes out.

Identity (ZooKeeper's X509AuthenticationProvider): a client that presents a certificate the
configured CA verifies is authenticated as `x509:<subject>`, the subject written as RFC 2253
(most specific first: `CN=client,O=Example,C=US`), which is what Java's X500Principal.getName()
gives ZooKeeper; ACL entries name it that way.
"""

from __future__ import annotations

import ssl
from typing import Any

READ_CHUNK = 1 << 16

# Attribute names as RFC 2253 writes them (Python's getpeercert() uses the long names).
_SHORT = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}
_CLIENT_AUTH = {"need": ssl.CERT_REQUIRED, "want": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}


class TlsError(ValueError):
    """The TLS settings cannot be used (missing or unreadable certificate, key or CA)."""


def server_context(cert: str, key: str, ca: str = "", client_auth: str = "") -> ssl.SSLContext:
    """The gateway's TLS context. `client_auth` as ZooKeeper's ssl.clientAuth: "need" (a client
    certificate signed by `ca` is required), "want" (checked when given) or "none"; empty = "need"
    when a CA is given, else "none"."""
    mode = client_auth or ("need" if ca else "none")
    if mode not in _CLIENT_AUTH:
        raise TlsError(f"zk_tls_client_auth must be need, want or none, not {client_auth!r}")
    if mode != "none" and not ca:
        raise TlsError(f"zk_tls_client_auth = {mode!r} needs zk_tls_ca (the CA that signs client certificates)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
        if ca:
            ctx.load_verify_locations(ca)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"cannot load the TLS certificate, key or CA: {exc}") from exc
    ctx.verify_mode = _CLIENT_AUTH[mode]
    return ctx


def rfc2253(subject: Any) -> str:
    """A certificate subject from `getpeercert()` as RFC 2253 text (reversed RDN order, escaped)."""
    parts = []
    for rdn in reversed(subject or ()):
        parts.append("+".join(f"{_SHORT.get(name, name)}={_escape(value)}" for name, value in rdn))
    return ",".join(parts)


def _escape(value: str) -> str:
    out = []
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;=' or (ch == "#" and i == 0) or (ch == " " and i in (0, len(value) - 1)):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


class TlsConnection:
    """One server-side TLS connection over memory buffers.

    `receive(ciphertext)` returns the plaintext now readable (b"" during the handshake);
    `send(plaintext)` queues it; `take_output()` returns the ciphertext to write to the peer
    (handshake records included). `closed` once the peer sent close_notify.
    Raises ssl.SSLError on a failed handshake or a corrupt record: drop the connection.
    """

    __slots__ = ("_in", "_out", "_obj", "handshaken", "closed", "identity")

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = ctx.wrap_bio(self._in, self._out, server_side=True)
        self.handshaken = False
        self.closed = False
        self.identity = ""  # the client certificate's subject (RFC 2253), when it sent a valid one

    def receive(self, data: bytes) -> bytes:
        self._in.write(data)
        if not self.handshaken:
            try:
                self._obj.do_handshake()
            except ssl.SSLWantReadError:
                return b""
            self.handshaken = True
            cert = self._obj.getpeercert()
            if cert:
                self.identity = rfc2253(cert.get("subject"))
        chunks = []
        for _ in range(len(data) + 1):  # bounded: each round consumes input or stops
            try:
                chunk = self._obj.read(READ_CHUNK)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.closed = True
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def send(self, plaintext: bytes) -> None:
        if plaintext:
            self._obj.write(plaintext)

    def take_output(self) -> bytes:
        return self._out.read()
