"""CurveZMQ on a node's TCP ports: encryption and key-based authentication of clients and peers.

ZeroMQ does the cryptography (CurveCP handshake, then every frame encrypted and authenticated);
this module holds keys and the policy. A binding socket becomes a CURVE server with the node's
key pair and names a ZAP domain ("clients" or "peers"); an authenticator thread in the same
process answers ZeroMQ's ZAP requests for that domain: the connecting key must be one of the
allowed ones, else the handshake fails and the connection is dropped before any message reaches
the actor. A connecting socket becomes a CURVE client with its own pair and the server's public key.

Keys are ZeroMQ's certificate files (`zoomq keys generate`): `NAME.key` holds the public key,
`NAME.key_secret` both. Allowed client keys are the `*.key` files of a directory, read again when
the directory changes, so a client is admitted or revoked without a restart.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

CLIENTS = "clients"
PEERS = "peers"
ANY_CLIENT = "*"


class CurveError(ValueError):
    """A key file or key is missing or malformed."""


def secret_pair(path: str | os.PathLike[str]) -> tuple[bytes, bytes]:
    """(public, secret) z85 keys from a `.key_secret` file."""
    try:
        public, secret = zmq.auth.load_certificate(os.fspath(path))
    except (OSError, ValueError) as exc:
        raise CurveError(f"cannot read the key pair {path}: {exc}") from exc
    if not secret:
        raise CurveError(f"{path} holds no secret key (use the .key_secret file)")
    return public, secret


def public_key(value: str | bytes) -> bytes:
    """A z85 public key given inline (40 characters) or as the path of a `.key` file."""
    text = value.decode() if isinstance(value, bytes) else value
    if len(text) == 40 and not os.path.exists(text):
        key = text.encode()
    else:
        try:
            key, _ = zmq.auth.load_certificate(text)
        except (OSError, ValueError) as exc:
            raise CurveError(f"{text!r} is neither a 40-character z85 key nor a readable key file: {exc}") from exc
    try:
        if len(zmq.utils.z85.decode(key)) != 32:
            raise ValueError("not 32 bytes")
    except (ValueError, KeyError) as exc:
        raise CurveError(f"malformed public key {key!r}: {exc}") from exc
    return key


def generate(directory: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """Write `name.key` and `name.key_secret` (mode 0600) into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    public_file, secret_file = zmq.auth.create_certificates(os.fspath(directory), name)
    os.chmod(secret_file, 0o600)
    return Path(public_file), Path(secret_file)


def serve(sock: zmq.Socket, pair: tuple[bytes, bytes], domain: str) -> None:
    """Make `sock` (before bind) a CURVE server whose peers are checked in ZAP `domain`."""
    sock.curve_publickey, sock.curve_secretkey = pair
    sock.curve_server = True
    sock.zap_domain = domain.encode()


def connect_as(sock: zmq.Socket, pair: tuple[bytes, bytes], server_key: bytes) -> None:
    """Make `sock` (before connect) a CURVE client of the server with public key `server_key`."""
    sock.curve_publickey, sock.curve_secretkey = pair
    sock.curve_serverkey = server_key


class _DirectoryKeys:
    """Allowed keys: the `*.key` files of a directory, re-read when it changes (by mtime)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.stamp: float | None = None
        self.keys: set[bytes] = set()

    def callback(self, domain: str, key: bytes) -> bool:
        try:
            stamp = os.stat(self.directory).st_mtime_ns
        except OSError:
            return False
        if stamp != self.stamp:
            self.keys = set(zmq.auth.load_certificates(self.directory)) if os.path.isdir(self.directory) else set()
            self.stamp = stamp
        return key in self.keys


class _FixedKeys:
    def __init__(self, keys: set[bytes]) -> None:
        self.keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.keys


class _AnyKey:
    def callback(self, domain: str, key: bytes) -> bool:
        return True


def authenticator(ctx: zmq.Context, clients: str | None = None, peers: set[bytes] | None = None) -> ThreadAuthenticator:
    """Start the ZAP handler of this process for the given domains (before any CURVE bind)."""
    auth = ThreadAuthenticator(ctx)
    auth.start()
    if clients is not None:
        auth.configure_curve_callback(CLIENTS, _AnyKey() if clients == ANY_CLIENT else _DirectoryKeys(clients))
    if peers is not None:
        auth.configure_curve_callback(PEERS, _FixedKeys(set(peers)))
    return auth


def peer_keys(cfg: Any) -> dict[int, bytes]:
    """Each configured member's public key, by server id."""
    return {s.id: public_key(s.curve_public_key) for s in cfg.servers}
