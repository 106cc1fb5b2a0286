"""CurveZMQ on a node's TCP ports: encryption and key-based authentication of clients and peers.

ZeroMQ does the cryptography (CurveCP handshake, then every frame encrypted and authenticated);
this module holds keys and the policy. A binding socket becomes a CURVE server with the node's
key pair and names a ZAP domain ("clients" or "peers"); an authenticator thread in the same
process answers ZeroMQ's ZAP requests for that domain: the connecting key must be one of the
allowed ones, else the handshake fails and the connection is dropped before any message reaches
the actor. A connecting socket becomes a CURVE client with its own pair and the server's public key.

Keys are ZeroMQ's certificate files (`zoomq keys generate`): `NAME.key` holds the public key,
`NAME.key_secret` both. Allowed client keys are the `*.key` files of a directory, read again when
the directory changes, so a client is admitted or revoked without a restart. Peers are the
configured members' keys, plus, where `curve_peer_keys` names a directory, each `server.<id>.key`
in it, read again when it changes: a server added by a reconfig is admitted (and connected to)
once its public key is there, without restarting the members.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
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
    """Allowed keys: those `load` finds in a directory (its `*.key` files by default), read again
    when it changes (by mtime) and, with `reread_s`, for a key not found once that long passed."""

    def __init__(
        self,
        directory: str,
        load: Callable[[str], set[bytes]] | None = None,
        reread_s: float | None = None,
    ) -> None:
        self.directory = directory
        self.load = load or (lambda d: set(zmq.auth.load_certificates(d)) if os.path.isdir(d) else set())
        self.reread_s = reread_s
        self.stamp: int | None = None
        self.read_at = 0.0
        self.keys: set[bytes] = set()

    def callback(self, domain: str, key: bytes) -> bool:
        try:
            stamp = os.stat(self.directory).st_mtime_ns
        except OSError:
            return False
        now = time.monotonic()
        missed = self.reread_s is not None and key not in self.keys and now - self.read_at >= self.reread_s
        if _changed(stamp, self.stamp) or missed:
            self.keys = self.load(self.directory)
            self.stamp, self.read_at = stamp, now
        return key in self.keys


def _changed(stamp: int, seen: int | None) -> bool:
    """Whether a directory whose mtime is `stamp` may differ from when it was `seen`: a new
    mtime, or one so recent that another change could have come within the same clock tick
    (the kernel's timestamps are coarser than their nanoseconds) without moving it."""
    return stamp != seen or time.time_ns() - stamp < 1_000_000_000


class _PeerKeys:
    """The configured members' keys, and the `server.<id>.key` files of a directory (if any).
    A file copied in is created (the directory changes) before it is written (it does not): read
    then, it held no key yet, so a refused key is looked for again once a second."""

    def __init__(self, keys: set[bytes], directory: str = "") -> None:
        self.fixed = keys
        self.joiners = (
            _DirectoryKeys(directory, lambda d: set(server_key_files(d).values()), reread_s=1.0) if directory else None
        )

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.fixed or (self.joiners is not None and self.joiners.callback(domain, key))


class _AnyKey:
    def callback(self, domain: str, key: bytes) -> bool:
        return True


def authenticator(
    ctx: zmq.Context, clients: str | None = None, peers: set[bytes] | None = None, peer_dir: str = ""
) -> ThreadAuthenticator:
    """Start the ZAP handler of this process for the given domains (before any CURVE bind)."""
    auth = ThreadAuthenticator(ctx)
    auth.start()
    if clients is not None:
        auth.configure_curve_callback(CLIENTS, _AnyKey() if clients == ANY_CLIENT else _DirectoryKeys(clients))
    if peers is not None:
        auth.configure_curve_callback(PEERS, _PeerKeys(set(peers), peer_dir))
    return auth


def server_key_file(directory: str | os.PathLike[str], sid: int) -> Path:
    """Where server `sid`'s public key is looked for in a `curve_peer_keys` directory."""
    return Path(directory) / f"server.{sid}.key"


def install_server_key(directory: str | os.PathLike[str], sid: int, public_file: str | os.PathLike[str]) -> Path:
    """Put server `sid`'s public key file into a `curve_peer_keys` directory, whole at once (a
    copy beside it renamed into place), so a node reading the directory never sees half a file."""
    public_key(os.fspath(public_file))  # a key file, not anything else
    target = server_key_file(directory, sid)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(public_file, temporary)
    os.replace(temporary, target)
    return target


def server_key_files(directory: str | os.PathLike[str]) -> dict[int, bytes]:
    """The well-formed `server.<id>.key` files of a directory, by server id (others are ignored)."""
    found: dict[int, bytes] = {}
    try:
        paths = list(Path(directory).glob("server.*.key"))
    except OSError:
        return found
    for path in paths:
        sid = path.name[len("server.") : -len(".key")]
        if not sid.isdigit():
            continue
        try:
            found[int(sid)] = public_key(str(path))
        except CurveError:
            continue
    return found


def peer_key(cfg: Any, sid: int) -> bytes | None:
    """Member `sid`'s public key: its curve_public_key, else `server.<sid>.key` in curve_peer_keys
    (read now), else None."""
    entry = next((s for s in cfg.servers if s.id == sid), None)
    if entry is not None and entry.curve_public_key:
        return public_key(entry.curve_public_key)
    if not cfg.curve_peer_keys:
        return None
    path = server_key_file(cfg.curve_peer_keys, sid)
    try:
        return public_key(str(path)) if path.is_file() else None
    except CurveError:
        return None


def peer_keys(cfg: Any) -> dict[int, bytes]:
    """Each member's public key whose key is known (peer_key), by server id."""
    keys = {s.id: peer_key(cfg, s.id) for s in cfg.servers}
    return {sid: key for sid, key in keys.items() if key is not None}
